"""The ``sharding_indexed`` codec: many inner chunks in one stored object, plus an index."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt

from lsio.compute import CodecPipeline, DecodeError, GridEncoder, ScratchPool
from lsio.plan import grid_shape

__all__ = ["MISSING", "ShardingCodec", "is_fill", "parse_shard_index"]

MISSING = np.uint64(2**64 - 1)


@dataclass(frozen=True, slots=True)
class ShardingCodec:
    """Zarr v3 ``sharding_indexed`` (an array->bytes codec).

    Attributes:
        chunk_shape: Shape of the inner chunks.
        inner: Codecs of each inner chunk (may itself hold a sharding codec).
        index: Codecs of the index (fixed-size: ``bytes`` and ``crc32c``).
        index_location: ``"start"`` or ``"end"`` of the shard.
        fill_value: Value of inner chunks that are not stored.
    """

    chunk_shape: tuple[int, ...]
    inner: CodecPipeline
    index: CodecPipeline
    index_location: str
    fill_value: Any
    name: str = "sharding_indexed"

    def chunks_per_shard(self, shard_shape: tuple[int, ...]) -> tuple[int, ...]:
        """Inner chunks along each dimension of a shard."""
        return grid_shape(shard_shape, self.chunk_shape)

    def _inner_region(self, coords: tuple[int, ...]) -> tuple[slice, ...]:
        """Where the inner chunk at ``coords`` lies in its shard."""
        return tuple(
            slice(c * k, (c + 1) * k) for c, k in zip(coords, self.chunk_shape, strict=True)
        )

    def index_nbytes(self, shard_shape: tuple[int, ...]) -> int:
        """Encoded size of the index of a shard of ``shard_shape``."""
        n = self.chunks_per_shard(shard_shape)
        size = self.index.encoded_size((*n, 2), np.dtype(np.uint64))
        assert size is not None, "validated when the codec was built"
        return size

    def decode(self, data: memoryview, shape: tuple[int, ...], dtype: np.dtype[Any]) -> np.ndarray:
        """Decode a whole shard held in memory (used for nested sharding)."""
        n = self.chunks_per_shard(shape)
        size = self.index_nbytes(shape)
        if len(data) < size:
            raise DecodeError(f"shard of {len(data)} bytes is too short for its {size}-byte index")
        raw = data[:size] if self.index_location == "start" else data[len(data) - size :]
        index = parse_shard_index(raw, self, n)
        out = np.empty(shape, dtype=dtype)
        for coords in np.ndindex(*n):
            region = self._inner_region(coords)
            offset, nbytes = (int(v) for v in index[coords])
            if offset == int(MISSING):
                out[region] = self.fill_value
                continue
            if offset + nbytes > len(data):
                raise DecodeError(
                    f"inner chunk {coords} at [{offset}, {offset + nbytes}) lies past the shard's "
                    f"end ({len(data)} bytes)"
                )
            chunk = self.inner.decode(data[offset : offset + nbytes], self.chunk_shape, dtype)
            target = out[region]
            target[...] = chunk[tuple(slice(0, s) for s in target.shape)]
        return out

    def encode(self, arr: np.ndarray) -> memoryview:
        """Encode a whole shard: its stored inner chunks back to back, then or before the index.

        Inner chunks that hold only the fill value are not stored (their index
        entry is the "missing" marker), like zarr-python's default.
        """
        return self.encode_stored(arr) or self._encoded_empty(arr.shape)

    def _encoded_empty(self, shape: tuple[int, ...]) -> memoryview:
        n = self.chunks_per_shard(shape)
        return self.index.encode(np.full((*n, 2), MISSING, dtype=np.uint64))

    def encode_stored(
        self, arr: np.ndarray, scratch: ScratchPool | None = None
    ) -> memoryview | None:
        """Like :meth:`encode`, but ``None`` when every inner chunk is the fill value.

        ``scratch`` lends the inner chunks' layout copies a reused buffer per thread.
        """
        n = self.chunks_per_shard(arr.shape)
        index = np.full((*n, 2), MISSING, dtype=np.uint64)
        parts: list[memoryview] = []
        offset = self.index_nbytes(arr.shape) if self.index_location == "start" else 0
        for coords in np.ndindex(*n):
            region = self._inner_region(coords)
            chunk = arr[region]
            if chunk.shape != self.chunk_shape:  # a partial chunk at the array's edge
                full = np.full(self.chunk_shape, self.fill_value, dtype=arr.dtype)
                full[tuple(slice(0, s) for s in chunk.shape)] = chunk
                chunk = full
            if is_fill(chunk, self.fill_value):
                continue
            data = self.inner.encode(chunk, scratch)
            index[coords] = (offset, len(data))
            offset += len(data)
            parts.append(data)
        if not parts:
            return None
        encoded_index = self.index.encode(index)
        if self.index_location == "start":
            parts.insert(0, encoded_index)
        else:
            parts.append(encoded_index)
        return memoryview(b"".join(parts))

    def encode_with(self, arr: np.ndarray, encoder: GridEncoder) -> memoryview | None:
        """Like :meth:`encode_stored`, with every inner chunk encoded by one ``encoder`` call.

        ``arr`` must be a whole shard. The result lies in the calling thread's
        output buffer of ``encoder``: valid until the thread encodes again.
        """
        n = self.chunks_per_shard(arr.shape)
        size = self.index_nbytes(arr.shape)
        start = size if self.index_location == "start" else 0
        out, sizes, end = encoder.encode(arr, self.chunk_shape, start, size)
        stored = sizes >= 0
        if not bool(stored.any()):
            return None
        kept = np.where(stored, sizes, 0)
        index = np.full((stored.shape[0], 2), MISSING, dtype=np.uint64)
        index[stored, 0] = (start + np.cumsum(kept) - kept)[stored]
        index[stored, 1] = sizes[stored]
        encoded = np.frombuffer(self.index.encode(index.reshape(*n, 2)), dtype=np.uint8)
        if start:
            out[:size] = encoded
            return out[:end].data
        out[end : end + size] = encoded
        return out[: end + size].data


def is_fill(arr: np.ndarray, fill_value: Any) -> bool:
    """Whether every element of ``arr`` equals ``fill_value`` (NaN equals NaN, per part)."""
    fill = np.asarray(fill_value, dtype=arr.dtype)
    if arr.size == 0:
        return True
    # Data chunks usually differ at their first element: no pass over the data then.
    if not bool(_equal(np.asarray(arr[(0,) * arr.ndim]), fill)):
        return False
    return bool(np.all(_equal(arr, fill)))


def _equal(a: np.ndarray, fill: np.ndarray) -> np.ndarray:
    if a.dtype.kind == "c":
        parts: np.ndarray = _same(a.real, fill.real) & _same(a.imag, fill.imag)
        return parts
    if a.dtype.kind == "f":
        return _same(a, fill)
    equal: np.ndarray = a == fill
    return equal


def _same(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    same: np.ndarray = (a == b) | (np.isnan(a) & np.isnan(b))
    return same


def parse_shard_index(
    raw: memoryview, codec: ShardingCodec, chunks_per_shard: tuple[int, ...]
) -> npt.NDArray[np.uint64]:
    """Decode a shard index to an array ``(*chunks_per_shard, 2)`` of (offset, nbytes).

    Raises:
        DecodeError: Wrong size, failed checksum, or an entry that is half missing.
    """
    expected = codec.index_nbytes(
        tuple(c * k for c, k in zip(chunks_per_shard, codec.chunk_shape, strict=True))
    )
    if len(raw) != expected:
        raise DecodeError(
            f"shard index has {len(raw)} bytes, expected {expected} (truncated shard?)"
        )
    index = codec.index.decode(raw, (*chunks_per_shard, 2), np.dtype(np.uint64))
    offsets, nbytes = index[..., 0], index[..., 1]
    if bool(np.any((offsets == MISSING) != (nbytes == MISSING))):
        raise DecodeError("shard index has an entry with only one of offset and length missing")
    present = offsets != MISSING
    # Checked before the sum, which would wrap in uint64 (and a size of 2**63 or
    # more reads as negative, i.e. "not stored", once the index is seen as int64).
    top = np.uint64(2**63 - 1)
    start, size = offsets[present], nbytes[present]
    if bool(np.any((start > top) | (size > top) | (start > top - np.minimum(size, top)))):
        raise DecodeError("shard index has an entry whose range overflows")
    # A copy: a cached index must not keep the (possibly large) read buffer alive.
    return index.astype(np.uint64, copy=True)
