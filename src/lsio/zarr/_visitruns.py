"""The full chunks of a visit, planned with NumPy and decoded in runs by the compiled kernel.

A visit of a whole array (statistics of a dataset) is almost all full chunks.
Planning them one Python object at a time costs the calling thread ~10 µs per
chunk, CPU the workers need on a small machine, and leaves them idle between
windows. Here the full chunks of a sharded array (plain bytes with a compiled decoder) are
planned as arrays, a window of whole shards at a time: located in one call,
sorted by object, kept coordinates and offset, and cut into runs of chunks
stored close together in one object whose coordinates along the visitor's
``batch_dims`` agree. Each run is one read and one kernel call that decodes its
chunks side by side into the worker's batch buffer.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np
import numpy.typing as npt

from lsio.compute import RunningMoments, ScatterKernel, ScatterTables
from lsio.io import ByteRange
from lsio.plan import ReadTask, c_strides
from lsio.zarr._boxread import buffer_address
from lsio.zarr._kernelread import GAP_BYTES
from lsio.zarr._locate import locate_table
from lsio.zarr._segments import decode_rows, raise_for_row

if TYPE_CHECKING:
    from lsio.zarr._array import Array

__all__ = [
    "Run",
    "batch_bounds",
    "decode_run",
    "fold_run",
    "full_box",
    "full_windows",
    "kept_ids",
    "plan_runs",
    "slot_tables",
]

_I64 = npt.NDArray[np.int64]


@dataclass(frozen=True, slots=True)
class Run:
    """Full chunks read by one request and decoded by one kernel call.

    Attributes:
        coords: ``(n, ndim)`` read-grid coordinates (equal along the batch dims).
        tables: The kernel's tables, each chunk decoded into the next slot; the
            pieces' destinations are relative to the batch buffer, whose address
            only the worker knows.
    """

    coords: _I64
    tables: ScatterTables


def full_box(
    bounds: list[tuple[int, int]], chunk_shape: tuple[int, ...]
) -> list[tuple[int, int]] | None:
    """Per dimension the range of chunk coordinates whose chunks lie wholly in ``bounds``."""
    box = [(-(-a // n), b // n) for (a, b), n in zip(bounds, chunk_shape, strict=True)]
    return box if all(lo < hi for lo, hi in box) else None


def full_windows(
    box: list[tuple[int, int]], per_shard: tuple[int, ...], window_chunks: int
) -> Iterator[_I64]:
    """Coordinates of the chunks in ``box``, shard by shard, about ``window_chunks`` at a time."""
    shard_ranges = [range(lo // p, -(-hi // p)) for (lo, hi), p in zip(box, per_shard, strict=True)]
    parts: list[_I64] = []
    count = 0
    for shard in itertools.product(*shard_ranges):
        axes = [
            np.arange(max(lo, s * p), min(hi, (s + 1) * p), dtype=np.int64)
            for (lo, hi), s, p in zip(box, shard, per_shard, strict=True)
        ]
        grid = np.stack(np.meshgrid(*axes, indexing="ij"), axis=-1).reshape(-1, len(box))
        parts.append(grid)
        count += grid.shape[0]
        if count >= window_chunks:
            yield np.concatenate(parts)
            parts, count = [], 0
    if parts:
        yield np.concatenate(parts)


def plan_runs(
    array: Array, coords: _I64, batch_dims: tuple[int, ...], batch_chunks: int
) -> tuple[list[ReadTask[Run]], _I64]:
    """Runs of the stored chunks among ``coords``; returns the reads and the absent chunks."""
    keys, key_of, offsets, sizes = locate_table(array, coords)
    absent = coords[sizes < 0]
    stored = sizes >= 0
    coords, key_of, offsets, sizes = coords[stored], key_of[stored], offsets[stored], sizes[stored]
    n = coords.shape[0]
    if n == 0:
        return [], absent
    kept_id = kept_ids(coords, batch_dims)
    order = np.lexsort((offsets, kept_id, key_of))
    coords, key_of, kept_id = coords[order], key_of[order], kept_id[order]
    offsets, sizes = offsets[order], sizes[order]
    ends = offsets + sizes
    cut = np.ones(n, dtype=bool)
    cut[1:] = (
        (key_of[1:] != key_of[:-1])
        | (kept_id[1:] != kept_id[:-1])
        | (offsets[1:] - ends[:-1] > GAP_BYTES)
    )
    starts, stops = batch_bounds(cut, batch_chunks)
    stop_bytes = np.maximum.reduceat(ends, starts)
    store = array.store
    tasks = []
    for s, e, end in zip(starts.tolist(), stops.tolist(), stop_bytes.tolist(), strict=True):
        tables = slot_tables(array, offsets[s:e], sizes[s:e], 0)
        run = Run(coords[s:e], tables)
        tasks.append(ReadTask(store, keys[int(key_of[s])], ByteRange(int(offsets[s]), end), run))
    return tasks, absent


def kept_ids(coords: _I64, batch_dims: tuple[int, ...]) -> _I64:
    """One integer per row of ``coords``, equal where the coordinates along ``batch_dims`` are."""
    kept = coords[:, list(batch_dims)]
    kept_id = np.zeros(coords.shape[0], np.int64)
    for d in range(kept.shape[1]):
        kept_id = kept_id * (int(kept[:, d].max()) + 1) + kept[:, d]
    return kept_id


def batch_bounds(cut: npt.NDArray[np.bool_], batch_chunks: int) -> tuple[_I64, _I64]:
    """Starts and stops of the batches: a new one where ``cut`` is set and every ``batch_chunks``.

    Stretches between cuts longer than a batch are split every
    ``batch_chunks``-th chunk. ``cut[0]`` must be set; ``cut`` is updated.
    """
    n = cut.shape[0]
    stretch = np.cumsum(cut) - 1
    first = np.flatnonzero(cut)
    cut |= (np.arange(n) - first[stretch]) % batch_chunks == 0
    starts = np.flatnonzero(cut)
    return starts, np.append(starts[1:], n)


def slot_tables(array: Array, offsets: _I64, sizes: _I64, base: int) -> ScatterTables:
    """Tables decoding each chunk straight into the next slot of a batch buffer at address ``base``.

    ``offsets`` and ``sizes`` are the chunks' stored bytes (0 for whole
    objects); a base of 0 leaves the slots relative, for the caller to add
    its buffer's address.
    """
    m = offsets.shape[0]
    shape = np.asarray(array.read_chunk_shape, dtype=np.int64)
    itemsize = array.dtype.itemsize
    strides = c_strides(array.read_chunk_shape, itemsize)
    nbytes = math.prod(array.read_chunk_shape) * itemsize
    chunks = np.empty((m, 3), dtype=np.int64)
    chunks[:, 0] = offsets
    chunks[:, 1] = sizes
    chunks[:, 2] = np.arange(m)
    pieces = np.zeros((m, 2 + 2 * len(shape)), dtype=np.int64)
    pieces[:, 0] = base + np.arange(m) * nbytes
    pieces[:, 2 : 2 + len(shape)] = shape
    pieces[:, 2 + len(shape) :] = strides
    return ScatterTables(
        chunks, np.arange(m + 1, dtype=np.int64), pieces, strides, nbytes, itemsize
    )


def decode_run(
    array: Array, kernel: ScatterKernel, task: ReadTask[Run], data: memoryview, buf: np.ndarray
) -> None:
    """Decode the chunks of ``task`` into the first slots of ``buf`` (the batch buffer).

    Raises:
        ChunkError: Naming the first chunk that did not decode (or was cut off).
    """
    tables = task.item.tables
    tables.pieces[:, 0] += buf.ctypes.data  # each run is decoded once
    bad = decode_rows(kernel, tables, 0, len(tables.chunks), task.range, data, 0)
    if bad >= 0:
        raise_for_row(array, tables, bad, task.item.coords[bad], task.key, task.range, data)


def fold_run(
    array: Array,
    kernel: ScatterKernel,
    task: ReadTask[Run],
    data: memoryview,
    running: RunningMoments,
    chunk: np.ndarray,
) -> None:
    """Decode the chunks of ``task`` one by one into ``chunk`` and fold each into ``running``.

    Each chunk is reduced while it is in cache, with no batch buffer (see
    :meth:`lsio.compute.RunningMoments.fold_stored`).

    Raises:
        ChunkError: Naming the first chunk that did not decode (or was cut off).
    """
    tables = task.item.tables
    rng = task.range
    assert isinstance(rng, ByteRange)
    decoder = kernel.decoder
    bad = running.fold_stored(
        decoder.code,
        decoder.context(),
        buffer_address(data),
        rng.start,
        len(data),
        np.ascontiguousarray(tables.chunks[:, 0]),
        np.ascontiguousarray(tables.chunks[:, 1]),
        chunk,
    )
    if bad >= 0:
        raise_for_row(array, tables, bad, task.item.coords[bad], task.key, rng, data)
