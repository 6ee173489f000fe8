"""Writing a selection of an array: whole stored objects, encoded in parallel, replaced atomically.

The unit of writing is a stored object: a chunk, or a whole shard of a sharded
array. An object the selection covers only in part is read, updated and
rewritten (read-modify-write). Each object is encoded in a worker and written
to a temporary name that is then renamed over the old one, so readers (and a
writer killed half-way) only ever see a whole old or a whole new object. An
object that holds only the fill value is deleted instead of written.

Concurrent writers to different objects are safe; two writers to the same
object race (the last rename wins, and a read-modify-write may lose the other's
update).
"""

from __future__ import annotations

import dataclasses
import itertools
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import numpy as np

from lsio._errors import InvalidArgumentError, ReadOnlyError
from lsio.compute import GridEncoder, ScratchPool, load_grid_encoder, run_all
from lsio.io import Writer
from lsio.plan import int_shape, normalize_basic, project_dims
from lsio.zarr._attrs import rewrite_metadata
from lsio.zarr._engine import ReadJob, run_jobs
from lsio.zarr._metadata import ArrayMetadata
from lsio.zarr._sharding import is_fill

if TYPE_CHECKING:
    from lsio.zarr._array import Array

__all__ = ["cast_values", "int_out_of_range", "resize_array", "write_many", "write_selection"]


def int_out_of_range(arr: np.ndarray, dtype: np.dtype[Any]) -> tuple[int, int, int] | None:
    """For integer (or boolean) ``arr``: ``(value, low, high)`` of a value outside ``dtype``'s range.

    ``None`` when every value fits.

    Ranges, not round trips: ``int8 -1 -> uint8 -> int8`` comes back as -1.
    """
    if not arr.size or np.can_cast(arr.dtype, dtype, casting="safe"):
        return None
    lo, hi = (0, 1) if dtype.kind == "b" else (int(np.iinfo(dtype).min), int(np.iinfo(dtype).max))
    small, big = int(arr.min()), int(arr.max())
    if lo <= small and big <= hi:
        return None
    return (small if small < lo else big), lo, hi


def cast_values(values: Any, dtype: np.dtype[Any], shape: tuple[int, ...]) -> np.ndarray:
    """``values`` as ``dtype`` broadcast to ``shape``; refuses values that would change.

    Integers (and booleans) must fit the target type exactly: ``300`` into
    ``uint8``, ``1.5`` or NaN into an integer type raise instead of wrapping or
    truncating. Floats may round to a narrower float type.
    """
    try:
        arr = np.asarray(values)
    except (TypeError, ValueError) as exc:
        raise InvalidArgumentError(f"values cannot be made an array: {exc}") from None
    if arr.dtype.kind not in "biufc":
        raise InvalidArgumentError(
            f"values of dtype {arr.dtype} cannot be written to a {dtype} array"
        )
    if dtype.kind in "biu" and arr.dtype.kind in "biu":
        outside = int_out_of_range(arr, dtype)
        if outside is not None:
            value, lo, hi = outside
            raise InvalidArgumentError(
                f"value {value} cannot be stored exactly as {dtype} (range {lo}..{hi})"
            )
        cast = arr.astype(dtype, copy=False)
    elif dtype.kind in "biu" and not np.can_cast(arr.dtype, dtype, casting="safe"):
        with np.errstate(invalid="ignore", over="ignore"):
            cast = arr.astype(dtype)
            exact = np.asarray(cast.astype(arr.dtype) == arr) & (
                np.isfinite(arr) if arr.dtype.kind in "fc" else True
            )
        if not bool(np.all(exact)):
            bad = arr.reshape(-1)[int(np.argmin(exact.reshape(-1)))] if arr.ndim else arr[()]
            raise InvalidArgumentError(f"value {bad!r} cannot be stored exactly as {dtype}")
    elif dtype.kind == "f" and arr.dtype.kind == "c":
        raise InvalidArgumentError(f"complex values cannot be written to a {dtype} array")
    else:
        cast = arr.astype(dtype, copy=False)
    try:
        return np.broadcast_to(cast, shape)
    except ValueError:
        raise InvalidArgumentError(
            f"values of shape {arr.shape} do not fit the selection's shape {shape}"
        ) from None


def write_selection(array: Array, selection: Any, values: Any) -> None:
    """Write ``values`` to ``array[selection]`` (ints and slices, any steps)."""
    write_many(array, [selection], [values])


def write_many(array: Array, selections: Sequence[Any], values: Sequence[Any]) -> None:
    """Write ``values[k]`` to ``array[selections[k]]`` for every k, each object written once.

    The objects all selections touch are planned together; an object is read
    (when no single selection covers it), updated with every selection in
    order (later ones win where they overlap) and written once.
    """
    ctx = array.context
    if not ctx.writable:
        raise ReadOnlyError(
            f"{array.store_url} is open read-only; open it with mode='r+' (or 'a') to write"
        )
    store = ctx.store
    if not isinstance(store, Writer):
        raise ReadOnlyError(f"the store {store.url} cannot be written to")
    if len(selections) != len(values):
        raise InvalidArgumentError(
            f"{len(selections)} selections but {len(values)} values; give one value per selection"
        )
    meta = array.metadata
    unit = meta.chunk_shape  # a chunk, or a whole shard
    datas: list[np.ndarray] = []
    per_object: dict[tuple[int, ...], list[tuple[int, tuple[Any, ...]]]] = {}
    for k, selection in enumerate(selections):
        sel = normalize_basic(selection, array.shape)
        if any(isinstance(d, np.ndarray) for d in sel.dims):
            raise InvalidArgumentError("writes take ints and slices, not index arrays")
        datas.append(cast_values(values[k], array.dtype, sel.shape))
        for parts in itertools.product(*project_dims(sel, unit)):
            per_object.setdefault(tuple(p[0] for p in parts), []).append((k, parts))
    sharding = meta.sharding
    scratch = ScratchPool()  # encoders' layout copies: one reused buffer per worker
    grid = _grid_encoder(meta, array.dtype)

    def encode(block: np.ndarray) -> memoryview | None:
        """The stored bytes of an object, or ``None`` when it holds only the fill value."""
        if sharding is not None:
            if grid is not None:
                return sharding.encode_with(block, grid)
            return sharding.encode_stored(block, scratch)
        if grid is not None:
            out, sizes, end = grid.encode(block, block.shape)
            return None if sizes[0] < 0 else out[:end].data
        return None if is_fill(block, meta.fill_value) else meta.pipeline.encode(block, scratch)

    def write_object(coords: tuple[int, ...]) -> None:
        region = tuple(
            slice(c * n, min((c + 1) * n, s))
            for c, n, s in zip(coords, unit, meta.shape, strict=True)
        )
        valid = tuple(slice(0, r.stop - r.start) for r in region)
        updates = [
            (tuple(p[1] for p in parts), datas[k][tuple(p[2] for p in parts if p[2] is not None)])
            for k, parts in per_object[coords]
        ]
        covering = [i for i, (inner, _) in enumerate(updates) if _covers(inner, valid)]
        if covering and covering[-1] == len(updates) - 1 and updates[-1][1].shape == unit:
            block = updates[-1][1]  # the last values are the whole object: encode them as they are
        else:
            block = np.full(unit, meta.fill_value, dtype=array.dtype)
            if not covering:
                # The object as stored now, under a fresh index: a cached one may
                # describe a shard another handle has rewritten since, and
                # decoding the new bytes by it would store garbage for good.
                array.forget_shards([coords])
                # Read in this worker, not on the pool: the pool's workers are busy writing.
                old = normalize_basic(region, meta.shape)
                run_jobs([ReadJob(array, old, block[valid])], ctx, serial=True)
            for inner, src in updates[covering[-1] if covering else 0 :]:
                block[inner] = src
        key = array.chunk_key(coords)
        encoded = encode(block)
        if encoded is None:
            store.delete(key)
        else:
            store.put(key, encoded)

    def write_run(run: _WholeRun) -> None:
        assert grid is not None
        out, sizes, end = grid.encode(datas[run.k][run.sel], unit)
        stored = sizes >= 0
        keys = [array.chunk_key(c) for c in run.coords]
        store.put_many(
            [k for k, s in zip(keys, stored.tolist(), strict=True) if s],
            out[:end],
            np.concatenate(([0], np.cumsum(sizes[stored]))),
        )
        for key in itertools.compress(keys, (~stored).tolist()):
            store.delete(key)

    def task(item: tuple[int, ...] | _WholeRun) -> None:
        if isinstance(item, _WholeRun):
            write_run(item)
        else:
            write_object(item)

    runs: list[_WholeRun] = []
    if sharding is None and grid is not None:
        runs = _whole_runs(per_object, unit)
    in_runs = {c for run in runs for c in run.coords}
    items: list[tuple[int, ...] | _WholeRun] = [c for c in per_object if c not in in_runs]
    items += runs
    # Each worker writes whole objects (or runs of them); a failure stops the
    # rest and is raised. Objects in last-dimension-slowest order: neighbouring
    # tasks (run at the same time) then sit in different directories of
    # "/"-separated keys, so workers do not queue on one directory's lock to
    # create and rename files (measured: 11% of the CPU time spinning on it with
    # C-order tasks on 2 workers). A run lies in one directory.
    try:
        run_all(ctx.pool, task, sorted(items, key=lambda c: _first(c)[::-1]), ctx.workers)
    finally:  # shards written before a failure are new too
        array.forget_shards(per_object)


# Runs of whole chunks are cut at this many chunks: enough to spread a Python
# call over many files, few enough that the workers get even shares.
_RUN_CHUNKS = 16


@dataclasses.dataclass(frozen=True, slots=True)
class _WholeRun:
    """Adjacent chunks along the last dimension, each wholly given by values ``k``.

    Attributes:
        k: Index of the values.
        sel: The run's block in those values (one unit-step slice per dimension).
        coords: The chunks' grid coordinates, in order along the last dimension.
    """

    k: int
    sel: tuple[slice, ...]
    coords: tuple[tuple[int, ...], ...]


def _first(item: tuple[int, ...] | _WholeRun) -> tuple[int, ...]:
    return item.coords[0] if isinstance(item, _WholeRun) else item


def _whole_runs(
    per_object: dict[tuple[int, ...], list[tuple[int, tuple[Any, ...]]]],
    unit: tuple[int, ...],
) -> list[_WholeRun]:
    """Runs of objects that the last values written to them cover wholly, as blocks of those values.

    Such an object needs no read and no assembly: its chunk is a block of the
    values, and a run of them along the last dimension is one block that the
    grid encoder takes in one call. Objects at the array's edge (shorter than a
    chunk) and objects that an int index or a step selects are left out.
    """
    runs: list[_WholeRun] = []
    current: list[tuple[tuple[int, ...], int, tuple[slice, ...]]] = []
    full = tuple(slice(0, n) for n in unit)

    def close() -> None:
        if len(current) > 1:
            first, last = current[0][2], current[-1][2]
            sel = (*first[:-1], slice(first[-1].start, last[-1].stop))
            runs.append(_WholeRun(current[0][1], sel, tuple(c for c, _, _ in current)))
        current.clear()

    for coords in sorted(per_object):
        k, parts = per_object[coords][-1]
        sel = tuple(p[2] for p in parts)
        # Every dimension a slice of the values (no int index) taking the whole chunk.
        if not all(isinstance(s, slice) for s in sel) or not _covers(
            tuple(p[1] for p in parts), full
        ):
            close()
            continue
        if current:
            prev, pk, psel = current[-1]
            if (
                pk != k
                or prev[:-1] != coords[:-1]
                or prev[-1] + 1 != coords[-1]
                or psel[:-1] != sel[:-1]
                or psel[-1].stop != sel[-1].start
                or len(current) == _RUN_CHUNKS
            ):
                close()
        current.append((coords, k, sel))
    close()
    return runs


def _grid_encoder(meta: ArrayMetadata, dtype: np.dtype[Any]) -> GridEncoder | None:
    """The compiled encoder of the array's (inner) chunks, where it applies."""
    pipeline, fill = meta.pipeline, meta.fill_value
    if meta.sharding is not None:
        pipeline, fill = meta.sharding.inner, meta.sharding.fill_value
    compression = pipeline.grid_settings(dtype)
    return None if compression is None else load_grid_encoder(compression, dtype, fill)


def _covers(inner: tuple[Any, ...], valid: tuple[slice, ...]) -> bool:
    """Whether the chunk selection ``inner`` takes every valid element of the object."""
    for s, v in zip(inner, valid, strict=True):
        if isinstance(s, int):
            if v.stop != 1:
                return False
        elif not (s.step in (None, 1) and s.start == 0 and s.stop == v.stop):
            return False
    return True


def resize_array(array: Array, shape: int | Sequence[int]) -> ArrayMetadata:
    """Store ``shape`` as the array's shape; returns the new metadata.

    Shrinking first rewrites the removed region with the fill value (chunks
    entirely outside the new shape are deleted, edge chunks rewritten), so
    growing again later shows the fill value, not old data. Growing writes only
    the metadata, which is replaced atomically, last.
    """
    meta = array.metadata
    new_shape = int_shape(shape, "new shape", len(meta.shape), positive=False)
    for d, (old, new) in enumerate(zip(meta.shape, new_shape, strict=True)):
        if new < old:
            write_selection(array, (slice(None),) * d + (slice(new, old),), meta.fill_value)

    def change(doc: dict[str, Any]) -> None:
        doc["shape"] = list(new_shape)

    rewrite_metadata(array, "zarr.json" if meta.zarr_format == 3 else ".zarray", change)
    return dataclasses.replace(meta, shape=new_shape)
