"""The :class:`Array`: a Zarr array opened for reading."""

from __future__ import annotations

import asyncio
import math
from collections.abc import Callable, Iterable, Sequence
from functools import partial
from typing import TYPE_CHECKING, Any, overload

import numpy as np
import numpy.typing as npt

from lsio._errors import InvalidArgumentError
from lsio.compute import CDecoder, RawDecoder
from lsio.io import Store
from lsio.plan import (
    IntIndex,
    OrthogonalSelection,
    VectorSelection,
    grid_shape,
    normalize_basic,
    normalize_orthogonal,
    normalize_vectorized,
)
from lsio.zarr._context import Context

if TYPE_CHECKING:
    from lsio.zarr._batch import Batch, ReadFuture
from lsio.zarr._engine import ReadJob, run_jobs
from lsio.zarr._metadata import ArrayMetadata
from lsio.zarr._node import Node
from lsio.zarr._presence import stored_inner_chunks, stored_objects, stored_sizes
from lsio.zarr._shard_index import Index, ShardIndexes
from lsio.zarr._sharding import ShardingCodec
from lsio.zarr._write import resize_array, write_many, write_selection

_I64 = npt.NDArray[np.int64]

__all__ = ["Array"]


class Array(Node[ArrayMetadata]):
    """A Zarr v2 or v3 array, read with NumPy indexing semantics.

    Obtain one with :func:`lsio.open_array`, :func:`lsio.open` or from a group.
    Reads are planned per call: each chunk (inner chunk, for sharded arrays) that
    the selection touches is read once and decoded by the worker threads, straight
    into the result where a chunk maps onto a contiguous block of it.
    """

    def __init__(self, ctx: Context, path: str, meta: ArrayMetadata) -> None:
        super().__init__(ctx, path, meta)
        self._prefix = f"{path}/" if path else ""
        sharding = meta.sharding
        self._sharding: ShardingCodec | None = sharding
        self._indexes = (
            ShardIndexes(ctx, sharding, meta.chunk_shape, self._key)
            if sharding is not None
            else None
        )
        self._read_chunks = sharding.chunk_shape if sharding is not None else meta.chunk_shape
        pipeline = sharding.inner if sharding is not None else meta.pipeline
        self._decoder = pipeline.contiguous_decoder(meta.dtype)
        self._c_decoder = pipeline.c_decoder(meta.dtype)

    # -- description -----------------------------------------------------------------

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
    def fill_value(self) -> Any:
        """Value of elements whose chunk is not stored."""
        return self._meta.fill_value

    @property
    def nbytes(self) -> int:
        """Bytes of the whole array in memory."""
        return self.size * self.dtype.itemsize

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

        Lists the store below the array: one listing per directory and a size per object,
        or, where the store lists a whole tree with sizes (object stores), one listing.
        """
        known = stored_sizes(self._ctx.store, self._path)
        return sum(known), len(known)

    def stored_chunks(self) -> npt.NDArray[np.bool_]:
        """``True`` for every chunk (inner chunk, when sharded) that is stored.

        The result has one entry per chunk of :attr:`read_chunk_shape`'s grid.
        Chunks not stored hold only the fill value. Found without reading any
        chunk: by listing the array's objects and, for sharded arrays, reading
        the indexes of the stored shards.
        """
        meta = self._meta
        objects = stored_objects(
            self._ctx.store, self._path, meta.key_encoding, grid_shape(self.shape, meta.chunk_shape)
        )
        if self._sharding is None:
            return objects
        window = max(1, self._ctx.config.shard_index_cache)
        grid = grid_shape(self.shape, self._read_chunks)
        return stored_inner_chunks(objects, self.chunks_per_shard, grid, self.shard_indexes, window)

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

    @overload
    def read(
        self, selection: Any = ..., out: np.ndarray | None = ..., batch: None = ...
    ) -> np.ndarray: ...

    @overload
    def read(
        self, selection: Any = ..., out: np.ndarray | None = ..., *, batch: Batch
    ) -> ReadFuture: ...

    def read(
        self, selection: Any = Ellipsis, out: np.ndarray | None = None, batch: Batch | None = None
    ) -> np.ndarray | ReadFuture:
        """Read a basic selection (integers, slices, Ellipsis; NumPy semantics).

        Args:
            selection: What to read; defaults to the whole array.
            out: Optional array to write the result into; must have the result's
                shape and this array's dtype, and be writable.
            batch: Queue the read in this :class:`lsio.Batch` instead of reading now.

        Returns:
            ``out`` when given, else a new array; with ``batch``, a future whose
            ``result()`` gives it after the batch ran.
        """
        sel = normalize_basic(selection, self.shape)
        if batch is not None:
            return batch.add(ReadJob(self, sel, self._prepare_out(out, sel.shape)))
        return self._read(sel, out)

    def read_many(
        self, selections: Sequence[Any], out: np.ndarray | None = None
    ) -> list[np.ndarray] | np.ndarray:
        """Read many basic selections in one planned batch.

        Each chunk that any selection touches is read and decoded once and copied
        to every result that needs it.

        Args:
            selections: Basic selections (e.g. random crops).
            out: Optional array of shape ``(len(selections), *crop_shape)`` to fill;
                needs every selection to have the same result shape.

        Returns:
            ``out`` when given, else a list of arrays (one per selection).

        Raises:
            InvalidArgumentError: ``out`` does not fit the selections.
            LsioError: The first failed read; the other results are then incomplete.
        """
        if isinstance(selections, str | bytes) or not isinstance(selections, Iterable):
            raise InvalidArgumentError(
                f"selections must be a sequence of selections, got {type(selections).__name__}"
            )
        sels = [normalize_basic(s, self.shape) for s in selections]
        if out is not None:
            shapes = {s.shape for s in sels}
            if len(shapes) > 1:
                raise InvalidArgumentError(
                    f"out= needs selections of one shape; got shapes {sorted(shapes)}"
                )
            crop = shapes.pop() if shapes else out.shape[1:]
            _check_out(out, (len(sels), *crop), self.dtype)
            outs = [out[i, ...] for i in range(len(sels))]  # views, also for 0-d crops
        else:
            outs = [self._ctx.outputs.empty(s.shape, self.dtype) for s in sels]
        self._run([ReadJob(self, s, o) for s, o in zip(sels, outs, strict=True)])
        return out if out is not None else outs

    async def read_async(
        self, selection: Any = Ellipsis, out: np.ndarray | None = None
    ) -> np.ndarray:
        """:meth:`read` for asyncio: runs the same plan on the worker threads."""
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(
            None, partial(self._read, normalize_basic(selection, self.shape), out)
        )

    async def read_many_async(
        self, selections: Sequence[Any], out: np.ndarray | None = None
    ) -> list[np.ndarray] | np.ndarray:
        """:meth:`read_many` for asyncio: runs the same plan on the worker threads."""
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(None, partial(self.read_many, list(selections), out))

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
        out = self._prepare_out(out, sel.shape)
        if isinstance(sel, VectorSelection) and not out.flags.c_contiguous:
            # Points are scattered through a flat view, which needs contiguous memory.
            out[...] = self._read(sel, None)
            return out
        self._run([ReadJob(self, sel, out)])
        return out

    def _prepare_out(self, out: np.ndarray | None, shape: tuple[int, ...]) -> np.ndarray:
        if out is None:
            return self._ctx.outputs.empty(shape, self.dtype)
        return _check_out(out, shape, self.dtype)

    def _run(self, jobs: list[ReadJob]) -> None:
        run_jobs(jobs, self._ctx)

    # -- the engine's view of the array ------------------------------------------------

    @property
    def read_chunk_shape(self) -> tuple[int, ...]:
        """Shape of the unit of reading: the inner chunks when shards can be read in parts."""
        return self._read_chunks

    @property
    def store(self) -> Store:
        """The store the array's objects are read from."""
        return self._ctx.store

    @property
    def reads_inner_chunks(self) -> bool:
        """Whether the unit of reading is an inner chunk of a shard (else a whole object)."""
        return self._sharding is not None

    @property
    def chunks_per_shard(self) -> tuple[int, ...]:
        """Read-grid chunks along each dimension of a shard (all 1 when unsharded)."""
        if self._sharding is None:
            return (1,) * self.ndim
        return self._sharding.chunks_per_shard(self._meta.chunk_shape)

    @property
    def chunk_decoder(self) -> Callable[[memoryview, np.ndarray], None]:
        """Decodes one unit of reading (see :attr:`read_chunk_shape`) into a C-contiguous array."""
        return self._decoder

    @property
    def chunk_nbytes(self) -> int:
        """Bytes of one decoded unit of reading."""
        return math.prod(self._read_chunks) * self._meta.dtype.itemsize

    @property
    def raw_chunk_decoder(self) -> RawDecoder | None:
        """Decodes one unit of reading between raw addresses, where the codecs allow it."""
        return None if self._c_decoder is None else self._c_decoder.raw

    @property
    def c_decoder(self) -> CDecoder | None:
        """The compiled decoder of one unit of reading, where the codecs allow it.

        See :meth:`lsio.compute.CodecPipeline.c_decoder`: plain bytes stored as
        they are or compressed by zstd, blosc, gzip, zlib or lz4.
        """
        return self._c_decoder

    def chunk_key(self, coords: tuple[int, ...]) -> str:
        """Store key of the stored object (chunk or shard) at grid ``coords``."""
        return self._key(coords)

    def chunk_keys(self, coords: npt.NDArray[np.int64]) -> list[str]:
        """Store keys of the stored objects at grid coordinates ``coords`` (one per row)."""
        key = self._key
        return [key(tuple(c)) for c in coords.tolist()]

    def forget_shards(self, shards: Iterable[tuple[int, ...]]) -> None:
        """Drop cached indexes of ``shards`` (grid coordinates), e.g. rewritten by another handle."""
        if self._indexes is not None:
            self._indexes.forget(shards)

    # -- writing ------------------------------------------------------------------------

    def __setitem__(self, selection: Any, values: Any) -> None:
        """``a[selection] = values``: see :meth:`write`."""
        write_selection(self, selection, values)

    def write(self, selection: Any, values: Any) -> None:
        """Write ``values`` (broadcast to the selection's shape) to ``a[selection]``.

        Selections are NumPy basic selections (ints, slices with any step,
        Ellipsis). Objects (chunks, or whole shards) the selection covers in part
        are read, updated and rewritten; every object is replaced atomically, and
        one that holds only the fill value is deleted. Values must be storable
        exactly in integer dtypes (``300`` into ``uint8`` raises).

        Raises:
            ReadOnlyError: The array was opened with mode ``"r"``.
            InvalidArgumentError: Values of the wrong shape or not storable.
            SelectionError: Out-of-bounds selections.
        """
        write_selection(self, selection, values)

    def write_many(self, selections: Sequence[Any], values: Sequence[Any]) -> None:
        """Write ``values[k]`` to ``a[selections[k]]`` for all k, planned together.

        Each stored object the selections touch is read at most once and written
        once, with every selection applied in order (later ones win where they
        overlap). ``values`` may be an array whose first axis runs over the
        selections.
        """
        write_many(self, selections, values)

    def resize(self, new_shape: int | Sequence[int]) -> None:
        """Change the shape (same number of dimensions; an int for a 1-d array); see :func:`resize_array`.

        Raises:
            ReadOnlyError: The array was opened read-only.
            InvalidArgumentError: A shape that is not ints, of another rank, or with negative sides.
        """
        self._meta = resize_array(self, new_shape)
        if self._indexes is not None:
            self._indexes.forget()

    def _key(self, coords: tuple[int, ...]) -> str:
        return self._prefix + self._meta.key_encoding.key(coords)

    def shard_indexes(self, shards: Iterable[tuple[int, ...]]) -> dict[tuple[int, ...], Index]:
        """Indexes of ``shards``, cached; see :meth:`ShardIndexes.get`."""
        assert self._indexes is not None
        return self._indexes.get(shards)


def _has_ellipsis(selection: Any) -> bool:
    items = selection if isinstance(selection, tuple) else (selection,)
    return any(x is Ellipsis for x in items)


def _check_out(out: np.ndarray, shape: tuple[int, ...], dtype: np.dtype[Any]) -> np.ndarray:
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
