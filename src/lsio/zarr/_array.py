"""The :class:`Array`: a Zarr array opened for reading."""

from __future__ import annotations

import math
import threading
from collections import OrderedDict
from collections.abc import Iterable
from typing import Any

import numpy as np
import numpy.typing as npt

from lsio._errors import ChunkError, InvalidArgumentError
from lsio.compute import DecodeError
from lsio.io import ByteRange, SuffixRange, WholeObject
from lsio.plan import (
    ChunkProjection,
    IntIndex,
    OrthogonalSelection,
    ReadTask,
    VectorSelection,
    copy_from_chunk,
    execute_reads,
    fill_projection,
    normalize_basic,
    normalize_orthogonal,
    normalize_vectorized,
    project,
    whole_chunk_target,
)
from lsio.zarr._context import Context
from lsio.zarr._metadata import ArrayMetadata
from lsio.zarr._sharding import MISSING, ShardingCodec, parse_shard_index

__all__ = ["Array"]

_Index = npt.NDArray[np.uint64] | None
_METADATA_FILES = frozenset({"zarr.json", ".zarray", ".zattrs", ".zgroup", ".zmetadata"})


class Array:
    """A Zarr v2 or v3 array, read with NumPy indexing semantics.

    Obtain one with :func:`lsio.open_array`, :func:`lsio.open` or from a group.
    Reads are planned per call: each chunk (inner chunk, for sharded arrays) that
    the selection touches is read once and decoded by the worker threads, straight
    into the result where a chunk maps onto a contiguous block of it.
    """

    def __init__(self, ctx: Context, path: str, meta: ArrayMetadata) -> None:
        self._ctx = ctx
        self._path = path
        self._meta = meta
        self._prefix = f"{path}/" if path else ""
        self._index_cache: OrderedDict[tuple[int, ...], _Index] = OrderedDict()
        self._cache_lock = threading.Lock()
        sharding = meta.sharding
        self._sharding: ShardingCodec | None = sharding
        self._read_chunks = sharding.chunk_shape if sharding is not None else meta.chunk_shape

    # -- description -----------------------------------------------------------------

    @property
    def metadata(self) -> ArrayMetadata:
        """The parsed metadata."""
        return self._meta

    @property
    def path(self) -> str:
        """Path of the array inside its store ('' for the root)."""
        return self._path

    @property
    def name(self) -> str:
        """Last component of :attr:`path`."""
        return self._path.rsplit("/", 1)[-1]

    @property
    def store_url(self) -> str:
        """Where the store is."""
        return self._ctx.store.url

    @property
    def shape(self) -> tuple[int, ...]:
        """Array shape."""
        return self._meta.shape

    @property
    def ndim(self) -> int:
        """Number of dimensions."""
        return len(self._meta.shape)

    @property
    def size(self) -> int:
        """Number of elements."""
        return math.prod(self._meta.shape)

    @property
    def dtype(self) -> np.dtype[Any]:
        """Element type (native byte order)."""
        return self._meta.dtype

    @property
    def chunks(self) -> tuple[int, ...]:
        """Shape of the chunks (the inner chunks, when sharded), as in zarr-python."""
        ab = self._meta.pipeline.array_bytes
        return ab.chunk_shape if isinstance(ab, ShardingCodec) else self._meta.chunk_shape

    @property
    def shards(self) -> tuple[int, ...] | None:
        """Shape of the shards, or ``None`` when not sharded."""
        return (
            self._meta.chunk_shape
            if isinstance(self._meta.pipeline.array_bytes, ShardingCodec)
            else None
        )

    @property
    def dims(self) -> tuple[str | None, ...] | None:
        """Dimension names, or ``None`` when the store names none."""
        return self._meta.dims

    @property
    def attrs(self) -> dict[str, Any]:
        """User attributes (a copy)."""
        return dict(self._meta.attrs)

    @property
    def fill_value(self) -> Any:
        """Value of elements whose chunk is not stored."""
        return self._meta.fill_value

    @property
    def nbytes(self) -> int:
        """Bytes of the whole array in memory."""
        return self.size * self.dtype.itemsize

    @property
    def zarr_format(self) -> int:
        """2 or 3."""
        return self._meta.zarr_format

    @property
    def codecs(self) -> list[str]:
        """Codec names in encoding order (inner codecs of a shard after ``sharding_indexed``)."""
        names = self._meta.pipeline.names
        ab = self._meta.pipeline.array_bytes
        while isinstance(ab, ShardingCodec):
            names += ab.inner.names
            ab = ab.inner.array_bytes
        return names

    def stored_size(self) -> tuple[int, int]:
        """``(bytes, objects)`` of the chunks or shards stored for this array.

        Lists the store below the array, so it costs one listing per directory.
        """
        store = self._ctx.store
        total = count = 0
        pending = [self._path]
        while pending:
            prefix = pending.pop()
            files, dirs = store.list_dir(prefix)
            for name in files:
                if prefix == self._path and name in _METADATA_FILES:
                    continue
                key = f"{prefix}/{name}" if prefix else name
                size = store.size(key)
                if size is not None:
                    total += size
                    count += 1
            pending.extend(f"{prefix}/{d}" if prefix else d for d in dirs)
        return total, count

    def __len__(self) -> int:
        if not self.shape:
            raise TypeError("len() of a 0-d array")
        return self.shape[0]

    def __repr__(self) -> str:
        return f"<lsio.Array {self._path or '/'!r} shape={self.shape} dtype={self.dtype} chunks={self.chunks}>"

    # -- reading ---------------------------------------------------------------------

    def __getitem__(self, selection: Any) -> Any:
        sel = normalize_basic(selection, self.shape)
        out = self._read(sel, None)
        scalar = all(isinstance(d, IntIndex) for d in sel.dims) and not _has_ellipsis(selection)
        return out[()] if scalar else out

    def __array__(self, dtype: Any = None, copy: bool | None = None) -> np.ndarray:
        arr = self._read(normalize_basic(Ellipsis, self.shape), None)
        return arr if dtype is None else arr.astype(dtype, copy=False)

    def read(self, selection: Any = Ellipsis, out: np.ndarray | None = None) -> np.ndarray:
        """Read a basic selection (integers, slices, Ellipsis; NumPy semantics).

        Args:
            selection: What to read; defaults to the whole array.
            out: Optional array to write the result into; must have the result's
                shape and this array's dtype, and be writable.

        Returns:
            ``out`` when given, else a new array.
        """
        return self._read(normalize_basic(selection, self.shape), out)

    @property
    def oindex(self) -> _OIndex:
        """Orthogonal indexing: ``a.oindex[[1, 5], :, mask]``."""
        return _OIndex(self)

    @property
    def vindex(self) -> _VIndex:
        """Vectorised (point) indexing: ``a.vindex[rows, cols]``."""
        return _VIndex(self)

    def _read(
        self, sel: OrthogonalSelection | VectorSelection, out: np.ndarray | None
    ) -> np.ndarray:
        out = _prepare_out(out, sel.shape, self.dtype)
        if isinstance(sel, VectorSelection) and not out.flags.c_contiguous:
            # Points are scattered through a flat view, which needs contiguous memory.
            out[...] = self._read(sel, None)
            return out
        projections = list(project(sel, self._read_chunks))
        tasks: list[ReadTask[ChunkProjection]] = []
        fill = self._meta.fill_value
        if self._sharding is None:
            for p in projections:
                tasks.append(ReadTask(self._key(p.coords), WholeObject(), p))
        else:
            tasks = self._inner_chunk_tasks(projections, out)
        chunk_shape = self._read_chunks
        pipeline = self._sharding.inner if self._sharding is not None else self._meta.pipeline
        dtype = self.dtype

        def handle(task: ReadTask[ChunkProjection], data: memoryview | None) -> None:
            proj = task.item
            if data is None:
                fill_projection(fill, proj, out)
                return
            try:
                target = whole_chunk_target(proj, chunk_shape, out)
                if target is not None:
                    pipeline.decode_into(data, target)
                else:
                    copy_from_chunk(pipeline.decode(data, chunk_shape, dtype), proj, out)
            except DecodeError as exc:
                raise ChunkError(f"{exc} ({_where(task)})", key=self._prefix + task.key) from exc

        execute_reads(self._ctx.store, tasks, handle, self._ctx.pool, self._ctx.batches)
        return out

    # -- chunk locations ---------------------------------------------------------------

    def _key(self, coords: tuple[int, ...]) -> str:
        return self._prefix + self._meta.key_encoding.key(coords)

    def _inner_chunk_tasks(
        self, projections: list[ChunkProjection], out: np.ndarray
    ) -> list[ReadTask[ChunkProjection]]:
        """Turn inner-chunk projections into byte-range reads within their shards."""
        assert self._sharding is not None
        per_shard = self._sharding.chunks_per_shard(self._meta.chunk_shape)
        shard_of = [
            tuple(c // n for c, n in zip(p.coords, per_shard, strict=True)) for p in projections
        ]
        indexes = self._shard_indexes(set(shard_of))
        tasks: list[ReadTask[ChunkProjection]] = []
        for p, shard in zip(projections, shard_of, strict=True):
            index = indexes[shard]
            inner = tuple(c % n for c, n in zip(p.coords, per_shard, strict=True))
            if index is None or index[inner][0] == MISSING:
                fill_projection(self._meta.fill_value, p, out)
                continue
            offset, length = (int(v) for v in index[inner])
            tasks.append(ReadTask(self._key(shard), ByteRange(offset, offset + length), p))
        return tasks

    def _shard_indexes(self, shards: Iterable[tuple[int, ...]]) -> dict[tuple[int, ...], _Index]:
        """Indexes of ``shards`` (``None`` for a shard that is not stored), cached, fetched in one batch."""
        assert self._sharding is not None
        codec = self._sharding
        found: dict[tuple[int, ...], _Index] = {}
        wanted: list[tuple[int, ...]] = []
        with self._cache_lock:
            for s in shards:
                if s in self._index_cache:
                    self._index_cache.move_to_end(s)
                    found[s] = self._index_cache[s]
                else:
                    wanted.append(s)
        if not wanted:
            return found
        size = codec.index_nbytes(self._meta.chunk_shape)
        rng = SuffixRange(size) if codec.index_location == "end" else ByteRange(0, size)
        per_shard = codec.chunks_per_shard(self._meta.chunk_shape)
        lock = threading.Lock()

        def handle(task: ReadTask[tuple[int, ...]], data: memoryview | None) -> None:
            index: _Index = None
            if data is not None:
                try:
                    index = parse_shard_index(data, codec, per_shard)
                except DecodeError as exc:
                    raise ChunkError(f"shard index: {exc}", key=task.key) from exc
            with lock:
                found[task.item] = index

        tasks = [ReadTask(self._key(s), rng, s) for s in wanted]
        execute_reads(self._ctx.store, tasks, handle, self._ctx.pool, self._ctx.batches)
        limit = self._ctx.config.shard_index_cache
        with self._cache_lock:
            for s in wanted:
                self._index_cache[s] = found[s]
                self._index_cache.move_to_end(s)
            while len(self._index_cache) > limit:
                self._index_cache.popitem(last=False)
        return found


def _where(task: ReadTask[ChunkProjection]) -> str:
    rng = task.range
    if isinstance(rng, ByteRange):
        return f"inner chunk {task.item.coords} at bytes [{rng.start}, {rng.end})"
    return f"chunk {task.item.coords}"


def _has_ellipsis(selection: Any) -> bool:
    items = selection if isinstance(selection, tuple) else (selection,)
    return any(x is Ellipsis for x in items)


def _prepare_out(
    out: np.ndarray | None, shape: tuple[int, ...], dtype: np.dtype[Any]
) -> np.ndarray:
    if out is None:
        return np.empty(shape, dtype=dtype)
    if not isinstance(out, np.ndarray):
        raise InvalidArgumentError(f"out must be a numpy.ndarray, got {type(out).__name__}")
    if out.shape != shape:
        raise InvalidArgumentError(f"out has shape {out.shape}, the selection has shape {shape}")
    if out.dtype != dtype:
        raise InvalidArgumentError(f"out has dtype {out.dtype}, the array has dtype {dtype}")
    if not out.flags.writeable:
        raise InvalidArgumentError("out is read-only")
    return out


class _OIndex:
    """``a.oindex[...]``: orthogonal selections."""

    def __init__(self, array: Array) -> None:
        self._array = array

    def __getitem__(self, selection: Any) -> np.ndarray:
        return self.read(selection)

    def read(self, selection: Any, out: np.ndarray | None = None) -> np.ndarray:
        """Read an orthogonal selection, into ``out`` when given."""
        return self._array._read(normalize_orthogonal(selection, self._array.shape), out)


class _VIndex:
    """``a.vindex[...]``: vectorised (point) selections."""

    def __init__(self, array: Array) -> None:
        self._array = array

    def __getitem__(self, selection: Any) -> np.ndarray:
        return self.read(selection)

    def read(self, selection: Any, out: np.ndarray | None = None) -> np.ndarray:
        """Read points, into ``out`` (of any memory layout) when given."""
        return self._array._read(normalize_vectorized(selection, self._array.shape), out)
