"""Codecs: the typed stages that turn stored bytes back into chunk arrays.

Three kinds, as in the Zarr v3 spec: bytes->bytes (compressors, checksums),
array->bytes (serialisation) and array->array (e.g. transpose). Each stage
decodes; a :class:`CodecPipeline` chains them and decodes straight into a
caller's buffer when the chain allows it.
"""

from __future__ import annotations

import functools
import math
import struct
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

import crc32c as _crc32c
import numcodecs
import numpy as np
import numpy.typing as npt
import zstandard

from lsio._errors import LsioError
from lsio.compute._cdecode import CDecoder, c_decoder
from lsio.compute._deflate import deflate_compressors
from lsio.compute._encode import GridCompression
from lsio.compute._scratch import ScratchPool
from lsio.compute._zstd import ZstdError, load_zstd_decoders, zstd_content_size

__all__ = [
    "ArrayArrayCodec",
    "ArrayBytesCodec",
    "BytesBytesCodec",
    "BytesCodec",
    "CodecPipeline",
    "Crc32cCodec",
    "DecodeError",
    "NumcodecsCodec",
    "TransposeCodec",
    "zstd_content_size",
]


class DecodeError(LsioError, ValueError):
    """Stored bytes could not be decoded (corrupt, truncated, or a failed checksum).

    Raised without a location; the format layer re-raises it as a
    :class:`lsio.ChunkError` that names the chunk key.
    """


class BytesBytesCodec(Protocol):
    """A bytes->bytes stage such as a compressor or a checksum."""

    @property
    def name(self) -> str:
        """The codec's name in metadata."""
        ...

    def decode(self, data: memoryview) -> memoryview:
        """Undo this stage."""
        ...

    def encode(self, data: memoryview) -> memoryview:
        """Apply this stage."""
        ...

    def encoded_size(self, size: int) -> int | None:
        """Encoded size of ``size`` input bytes, or ``None`` when it depends on the data."""
        ...


class ArrayBytesCodec(Protocol):
    """The array->bytes stage: turns bytes into an array of a given shape and dtype."""

    @property
    def name(self) -> str:
        """The codec's name in metadata."""
        ...

    def decode(self, data: memoryview, shape: tuple[int, ...], dtype: np.dtype[Any]) -> np.ndarray:
        """Decode ``data`` to an array of ``shape`` and native-endian ``dtype``."""
        ...

    def encode(self, arr: np.ndarray) -> memoryview:
        """Serialise ``arr`` (any layout, native or not) to bytes."""
        ...


class ArrayArrayCodec(Protocol):
    """An array->array stage such as transpose."""

    @property
    def name(self) -> str:
        """The codec's name in metadata."""
        ...

    def encoded_shape(self, shape: tuple[int, ...]) -> tuple[int, ...]:
        """Shape of the encoded array for a decoded array of ``shape``."""
        ...

    def decode(self, arr: np.ndarray) -> np.ndarray:
        """Undo this stage (may return a view)."""
        ...

    def encode(self, arr: np.ndarray) -> np.ndarray:
        """Apply this stage (may return a view)."""
        ...


def _as_view(buf: Any) -> memoryview:
    view = memoryview(buf)
    return view if view.format == "B" and view.ndim == 1 else view.cast("B")


@dataclass(frozen=True, slots=True)
class NumcodecsCodec:
    """A compressor implemented by numcodecs (blosc, zstd, gzip, zlib, lz4, bz2, lzma).

    Attributes:
        name: Codec name, for messages.
        codec: The numcodecs codec instance; its ``decode`` releases the GIL.
    """

    name: str
    codec: Any

    def decode(self, data: memoryview) -> memoryview:
        """Decompress into a new buffer."""
        if self.name == "blosc":
            _check_blosc_frame(data)
        try:
            return _as_view(self.codec.decode(data))
        except Exception as exc:
            raise DecodeError(f"{self.name} decode failed: {exc}") from exc

    def encode(self, data: memoryview) -> memoryview:
        """Compress into a new buffer; the GIL is released while it works.

        zstd goes through ``zstandard`` (a newer libzstd with a reused context
        per thread: ~25% faster than numcodecs' on image chunks), gzip and zlib
        through libdeflate (~2x zlib's speed at the same level; any gzip or
        zlib reader reads its output); the rest through numcodecs.
        """
        if self.name == "zstd":
            level = int(self.codec.level)
            checksum = bool(getattr(self.codec, "checksum", False))
            return _as_view(_zstd_compressor(level, checksum).compress(data))
        if self.name in ("gzip", "zlib"):
            compressors = deflate_compressors()
            if compressors is not None:
                return compressors.compress(self.name, self.deflate_level(), data)
        return _as_view(self.codec.encode(data))

    def deflate_level(self) -> int:
        """A gzip or zlib codec's level, zlib's default (-1) read as the 6 it stands for."""
        level = int(self.codec.level)
        return 6 if level < 0 else level

    def in_place(self) -> Callable[[memoryview, np.ndarray], None] | None:
        """A function that decompresses straight into a C-contiguous array, or ``None``.

        Available for zstd and blosc, whose headers record the decoded size, so a
        size mismatch raises :class:`DecodeError` instead of leaving bytes unset.
        """
        if self.name == "zstd":
            fast = zstd_decoder()

            def zstd(data: memoryview, out: np.ndarray) -> None:
                try:
                    fast(data, out)
                except ZstdError as exc:
                    raise DecodeError(str(exc)) from exc

            return zstd
        if self.name == "blosc":
            return self._blosc_into
        return None

    def _blosc_into(self, data: memoryview, out: np.ndarray) -> None:
        _check_blosc_frame(data)
        size = blosc_content_size(data)
        if size != out.nbytes:
            raise DecodeError(f"blosc data decodes to {size} bytes, expected {out.nbytes}")
        try:
            self.codec.decode(data, out=out.reshape(-1).view(np.uint8))
        except Exception as exc:
            raise DecodeError(f"blosc decode failed: {exc}") from exc

    def encoded_size(self, size: int) -> int | None:
        """Compressed sizes depend on the data."""
        return None


# Per-thread zstd compression contexts: a cache of reusable state, not configuration.
_COMPRESSORS = threading.local()


def _zstd_compressor(level: int, checksum: bool) -> Any:
    """The calling thread's compressor for these settings (zstandard's are not thread-safe)."""
    cache: dict[tuple[int, bool], Any] | None = getattr(_COMPRESSORS, "by_settings", None)
    if cache is None:
        cache = _COMPRESSORS.by_settings = {}
    found = cache.get((level, checksum))
    if found is None:
        found = cache[(level, checksum)] = zstandard.ZstdCompressor(
            level=level, write_checksum=checksum, write_content_size=True
        )
    return found


@functools.cache
def zstd_decoder() -> Callable[[memoryview, np.ndarray], None]:
    """The process's zstd decoder; loading libzstd is done once (it is read-only state)."""
    return load_zstd_decoders()[0]


def _check_blosc_frame(data: memoryview) -> None:
    """Refuse blosc data shorter than its header says: c-blosc would read past its end.

    A truncated chunk otherwise ends the process (a segmentation fault) or
    decodes to whatever lies past the buffer. The compiled decoder checks the
    same (see :mod:`lsio.compute._cdecode`).
    """
    if len(data) < 16:
        raise DecodeError(f"blosc data of {len(data)} bytes is shorter than a blosc header")
    stored = int(struct.unpack_from("<I", data, 12)[0])
    if not 16 <= stored <= len(data):
        raise DecodeError(f"blosc header gives {stored} compressed bytes, the data has {len(data)}")


def blosc_content_size(data: memoryview) -> int | None:
    """Decompressed size recorded in a blosc (v1) header, or ``None`` if too short."""
    if len(data) < 16:
        return None
    return int(struct.unpack_from("<I", data, 4)[0])


@dataclass(frozen=True, slots=True)
class Crc32cCodec:
    """Zarr v3 ``crc32c``: a little-endian CRC32C of the data appended as 4 bytes."""

    name: str = "crc32c"

    def decode(self, data: memoryview) -> memoryview:
        """Check and strip the checksum."""
        if len(data) < 4:
            raise DecodeError(f"crc32c: {len(data)} bytes is too short to hold a checksum")
        body = data[:-4]
        stored = int.from_bytes(data[-4:], "little")
        actual = _crc32c.crc32c(body)
        if stored != actual:
            raise DecodeError(
                f"crc32c checksum mismatch: stored {stored:#010x}, computed {actual:#010x}"
            )
        return body

    def encode(self, data: memoryview) -> memoryview:
        """Append the checksum."""
        out = bytearray(len(data) + 4)
        out[:-4] = data
        out[-4:] = _crc32c.crc32c(data).to_bytes(4, "little")
        return memoryview(out)

    def encoded_size(self, size: int) -> int | None:
        """Four bytes more than the input."""
        return size + 4


@dataclass(frozen=True, slots=True)
class BytesCodec:
    """Zarr ``bytes``: the raw elements in C order with the given byte order.

    Attributes:
        endian: ``"little"``, ``"big"``, or ``None`` for single-byte types.
        order: Memory order of the stored elements, ``"C"`` or ``"F"`` (Zarr v2 only).
    """

    endian: str | None = "little"
    order: str = "C"
    name: str = "bytes"

    def stored_dtype(self, dtype: np.dtype[Any]) -> np.dtype[Any]:
        """The dtype of the stored elements, with this codec's byte order."""
        if dtype.itemsize == 1 or self.endian is None:
            return dtype
        return dtype.newbyteorder("<" if self.endian == "little" else ">")

    def decode(self, data: memoryview, shape: tuple[int, ...], dtype: np.dtype[Any]) -> np.ndarray:
        """View ``data`` as an array; converts to native byte order when needed."""
        stored = self.stored_dtype(dtype)
        expected = math.prod(shape) * dtype.itemsize
        if len(data) != expected:
            raise DecodeError(f"chunk has {len(data)} bytes, expected {expected} for shape {shape}")
        arr: np.ndarray = np.frombuffer(data, dtype=stored).reshape(shape, order=self.order)  # type: ignore[call-overload]
        return arr if stored.isnative else arr.astype(stored.newbyteorder("="))

    def encode(self, arr: np.ndarray, scratch: ScratchPool | None = None) -> memoryview:
        """The elements in this codec's order and byte order (no copy when already so).

        A copy, when needed, goes into ``scratch`` (this thread's reused buffer,
        valid until the thread's next request) instead of a new array.
        """
        stored = self.stored_dtype(arr.dtype.newbyteorder("="))
        needs_copy = not arr.flags.c_contiguous or arr.dtype != stored
        if scratch is not None and self.order == "C" and needs_copy:
            # A fresh array per chunk costs page faults on every first touch.
            buf = scratch.array(arr.shape, stored)
            np.copyto(buf, arr, casting="unsafe")
            return buf.reshape(-1).data.cast("B")
        out = np.asarray(arr, dtype=stored, order=self.order)  # type: ignore[call-overload]
        if not (out.flags.c_contiguous if self.order == "C" else out.flags.f_contiguous):
            out = out.copy(order=self.order)
        return memoryview(out.reshape(-1, order=self.order)).cast("B")

    def is_plain(self, dtype: np.dtype[Any]) -> bool:
        """Whether decoding is a plain memcpy into a C-ordered native array."""
        return self.order == "C" and self.stored_dtype(dtype).isnative


@dataclass(frozen=True, slots=True)
class TransposeCodec:
    """Zarr v3 ``transpose``: the encoded array is ``decoded.transpose(order)``."""

    order: tuple[int, ...]
    name: str = "transpose"

    def encoded_shape(self, shape: tuple[int, ...]) -> tuple[int, ...]:
        """Permute ``shape`` by ``order``."""
        return tuple(shape[i] for i in self.order)

    def decode(self, arr: np.ndarray) -> np.ndarray:
        """Apply the inverse permutation (a view)."""
        return arr.transpose(np.argsort(self.order))

    def encode(self, arr: np.ndarray) -> np.ndarray:
        """Apply the permutation (a view)."""
        return arr.transpose(self.order)


@dataclass(frozen=True, slots=True)
class CodecPipeline:
    """A chain: array->array stages, one array->bytes stage, bytes->bytes stages.

    Attributes:
        array_array: Applied first when encoding, so undone last when decoding.
        array_bytes: The serialisation stage.
        bytes_bytes: Applied last when encoding, so undone first when decoding.
    """

    array_array: tuple[ArrayArrayCodec, ...]
    array_bytes: ArrayBytesCodec
    bytes_bytes: tuple[BytesBytesCodec, ...]

    @property
    def names(self) -> list[str]:
        """Codec names in encoding order."""
        names = [c.name for c in self.array_array]
        names.append(self.array_bytes.name)
        names.extend(c.name for c in self.bytes_bytes)
        return names

    def encoded_size(self, shape: tuple[int, ...], dtype: np.dtype[Any]) -> int | None:
        """Stored size of a chunk when every stage has a fixed size, else ``None``."""
        if not isinstance(self.array_bytes, BytesCodec):
            return None
        size: int | None = math.prod(shape) * dtype.itemsize
        for codec in self.bytes_bytes:
            size = None if size is None else codec.encoded_size(size)
        return size

    def decode(self, data: memoryview, shape: tuple[int, ...], dtype: np.dtype[Any]) -> np.ndarray:
        """Decode one stored chunk to an array of ``shape`` and native ``dtype``."""
        for codec in reversed(self.bytes_bytes):
            data = codec.decode(data)
        encoded_shapes = [shape]
        for aa in self.array_array:
            encoded_shapes.append(aa.encoded_shape(encoded_shapes[-1]))
        arr = self.array_bytes.decode(data, encoded_shapes[-1], dtype)
        for aa in reversed(self.array_array):
            arr = aa.decode(arr)
        return arr

    def encode(self, arr: np.ndarray, scratch: ScratchPool | None = None) -> memoryview:
        """Encode one chunk (an array of the chunk's shape) to its stored bytes.

        With ``scratch``, a chunk that must be laid out anew for a compressor is
        copied into the calling thread's reused buffer (the compressor's output
        is always new memory, so the result never points into the scratch).
        """
        for aa in self.array_array:
            arr = aa.encode(arr)
        if self.bytes_bytes and isinstance(self.array_bytes, BytesCodec):
            data = self.array_bytes.encode(arr, scratch)
        else:
            data = self.array_bytes.encode(arr)
        for bb in self.bytes_bytes:
            data = bb.encode(data)
        return data

    def contiguous_decoder(self, dtype: np.dtype[Any]) -> Callable[[memoryview, np.ndarray], None]:
        """A decoder specialised for this chain, for C-contiguous outputs of ``dtype``.

        The chain is resolved once (per array, not per chunk), so that decoding a
        chunk costs a couple of Python calls for the common chains: checksums
        over one compressor (or none) over plain native bytes, decompressed
        straight into the output. Other chains decode to a temporary and copy.
        """
        plain = self._plain(dtype)
        stages = list(self.bytes_bytes)
        checks: list[BytesBytesCodec] = []
        while stages and isinstance(stages[-1], Crc32cCodec):
            checks.append(stages.pop())
        compressor = stages[0] if len(stages) == 1 else None
        if not plain or len(stages) > 1 or not isinstance(compressor, NumcodecsCodec | None):

            def generic(data: memoryview, out: np.ndarray) -> None:
                out[...] = self.decode(data, out.shape, out.dtype)

            return generic
        into = compressor.in_place() if compressor is not None else None
        if into is not None and not checks:
            return into
        array_bytes = self.array_bytes

        def decode(data: memoryview, out: np.ndarray) -> None:
            for check in checks:
                data = check.decode(data)
            if into is not None:
                into(data, out)
            elif compressor is not None:
                out[...] = array_bytes.decode(compressor.decode(data), out.shape, out.dtype)
            else:
                if len(data) != out.nbytes:
                    raise DecodeError(f"chunk has {len(data)} bytes, expected {out.nbytes}")
                out.reshape(-1).view(np.uint8)[:] = np.frombuffer(data, dtype=np.uint8)

        return decode

    def c_decoder(self, dtype: np.dtype[Any]) -> CDecoder | None:
        """The compiled decoder of this chain's chunks (see :mod:`lsio.compute._cdecode`), or ``None``.

        Available when a chunk is plain native bytes, stored as they are or
        compressed by one of zstd, blosc, gzip, zlib or lz4 and nothing else,
        and the compressor's C library loads: then a chunk decodes with one C
        call and no Python objects, which is what small chunks need.
        """
        if not self._plain(dtype) or len(self.bytes_bytes) > 1:
            return None
        if not self.bytes_bytes:
            return c_decoder("none")
        codec = self.bytes_bytes[0]
        return c_decoder(codec.name) if isinstance(codec, NumcodecsCodec) else None

    def grid_settings(self, dtype: np.dtype[Any]) -> GridCompression | None:
        """How :func:`lsio.compute.load_grid_encoder` would compress this chain's chunks, or ``None``.

        For the chains the compiled encoder handles: native-order bytes,
        uncompressed (``"none"``) or compressed by zstd, gzip, zlib or blosc
        and nothing else.
        """
        if not self._plain(dtype) or len(self.bytes_bytes) > 1:
            return None
        if not self.bytes_bytes:
            return GridCompression("none")
        codec = self.bytes_bytes[0]
        if not isinstance(codec, NumcodecsCodec):
            return None
        c = codec.codec
        if codec.name in ("gzip", "zlib"):
            return GridCompression(codec.name, codec.deflate_level())
        if codec.name == "zstd":
            return GridCompression("zstd", int(c.level), bool(getattr(c, "checksum", False)))
        if codec.name != "blosc":
            return None
        # As numcodecs compresses: the byte stage hands blosc a byte buffer, so
        # without a configured typesize it shuffles by 1; "auto" shuffles bits
        # of single bytes, bytes of wider items.
        typesize = int(getattr(c, "_typesize", None) or 1)
        shuffle = int(c.shuffle)
        if shuffle == -1:
            shuffle = 2 if typesize == 1 else 1
        return GridCompression(
            "blosc", int(c.clevel), False, str(c.cname), shuffle, typesize, int(c.blocksize)
        )

    def _plain(self, dtype: np.dtype[Any]) -> bool:
        """Whether the chain serialises as plain native C-order bytes, with no array stage."""
        return (
            not self.array_array
            and isinstance(self.array_bytes, BytesCodec)
            and self.array_bytes.is_plain(dtype)
        )

    def decode_into(self, data: memoryview, out: npt.NDArray[Any]) -> None:
        """Decode one stored chunk into ``out``, whose shape is the chunk's.

        Decompresses straight into ``out`` when it is C-contiguous and the chain
        allows it (see :meth:`contiguous_decoder`); otherwise decodes to a
        temporary and copies.
        """
        if out.flags.c_contiguous:
            self.contiguous_decoder(out.dtype)(data, out)
        else:
            out[...] = self.decode(data, out.shape, out.dtype)


def numcodecs_codec(name: str, config: dict[str, Any]) -> NumcodecsCodec:
    """A :class:`NumcodecsCodec` from a numcodecs ``id`` and its configuration."""
    return NumcodecsCodec(name, numcodecs.get_codec({"id": name, **config}))


def check_order(order: Sequence[int], ndim: int) -> tuple[int, ...]:
    """Validate a transpose permutation for ``ndim`` dimensions."""
    perm = tuple(int(i) for i in order)
    if sorted(perm) != list(range(ndim)):
        raise ValueError(f"transpose order {list(perm)} is not a permutation of 0..{ndim - 1}")
    return perm
