"""Reading unit-step basic selections through the compiled decode-and-scatter kernel.

For arrays whose chunks are plain native bytes compressed with zstd (the
common case, and the one :attr:`Array.raw_chunk_decoder` names), every crop or
block of a call is planned with NumPy into integer tables, with no Python
object per chunk: the pieces each selection takes from each chunk, the union
of the chunks (each read and decoded once however many selections need it),
where each is stored, and reads of chunks stored close together in one object.
A worker hands each read to :class:`lsio.compute.ScatterKernel`, which decodes
and scatters every chunk of it without the GIL.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, NoReturn

import numpy as np
import numpy.typing as npt

from lsio.compute import DecodeError, ScatterKernel, ScatterTables, ScratchPool, plan_pieces
from lsio.io import ByteRange, WholeObject
from lsio.plan import IntIndex, OrthogonalSelection, Progression, ReadTask, grid_shape
from lsio.zarr._boxread import buffer_address, chunk_error

if TYPE_CHECKING:
    from lsio.zarr._array import Array
    from lsio.zarr._engine import ReadJob

__all__ = [
    "KernelPlan",
    "KernelRun",
    "c_strides",
    "decode_rows",
    "fill_absent",
    "plan_kernel_reads",
    "raise_for_row",
    "run_kernel_task",
]

_I64 = npt.NDArray[np.int64]

# Chunks of one object closer than this are read by one request, gap included
# (from the page cache a gap costs a copy; through a memory map, nothing).
GAP_BYTES = 64 * 1024
# Decoded bytes of one task at most: enough to amortise a task's Python, few
# enough that a batch still spreads over the workers.
TASK_BYTES = 4 << 20


@dataclass(frozen=True, slots=True)
class KernelPlan:
    """The tables of one array's part of a call, and what keeps their addresses valid.

    Attributes:
        array: The array read.
        kernel: The compiled kernel.
        tables: The plan (see :class:`lsio.compute.ScatterTables`).
        coords: ``(c, ndim)`` read-grid coordinates of each chunk row (for errors).
        absent: Chunk rows ``0:absent`` are known to be absent (not stored).
        fills: Holds a decoded chunk of the fill value once one is needed (made
            lazily: most reads meet no missing chunk, and a chunk can be large).
        outs: The outputs the pieces point into (kept alive here).
    """

    array: Array
    kernel: ScatterKernel
    tables: ScatterTables
    coords: _I64
    absent: int
    fills: list[np.ndarray]
    outs: list[np.ndarray]


@dataclass(frozen=True, slots=True)
class KernelRun:
    """Chunk rows ``first:stop`` of a plan, read by one request."""

    plan: KernelPlan
    first: int
    stop: int


def _dim_bounds(sel: OrthogonalSelection) -> list[tuple[int, int, int]] | None:
    """``(start, stop, kept)`` per dimension, or ``None`` unless ints and unit-step slices."""
    out = []
    for d in sel.dims:
        if isinstance(d, IntIndex):
            out.append((d.index, d.index + 1, 0))
        elif isinstance(d, Progression) and (d.step == 1 or d.count == 1) and d.count > 0:
            out.append((d.start, d.start + d.count, 1))
        else:
            return None
    return out


def _pieces(
    bounds: _I64, outs: list[np.ndarray], chunk: tuple[int, ...], cstr: _I64
) -> tuple[_I64, _I64]:
    """Read-grid coordinates of every chunk the boxes touch, and the piece rows.

    Args:
        bounds: ``(j, ndim, 3)``: start, stop and whether the dimension is kept
            in the output (0 for an integer index), per box and dimension.
        outs: Each box's output.
        chunk: The read chunk shape.
        cstr: Byte strides of a decoded chunk.
    """
    j, ndim = bounds.shape[:2]
    kept = bounds[:, :, 2].astype(bool)
    ostr = np.zeros((j, ndim), dtype=np.int64)
    for b, out in enumerate(outs):
        ostr[b, kept[b]] = out.strides
    base = np.array([out.ctypes.data for out in outs], dtype=np.int64)
    return plan_pieces(
        np.ascontiguousarray(bounds[:, :, :2]), base, ostr, np.asarray(chunk, np.int64), cstr
    )


def plan_kernel_reads(
    array: Array, jobs: Sequence[ReadJob], kernel: ScatterKernel
) -> tuple[list[ReadTask[KernelRun]], KernelPlan | None, list[ReadJob]]:
    """Plan the jobs of ``array`` the kernel can do.

    Returns:
        The read tasks, the plan (whose chunks known to be absent are the rows
        before the first task's; ``None`` when there is nothing to do), and the
        jobs left for the general engine (selections with steps or arrays).
    """
    rest: list[ReadJob] = []
    mine: list[tuple[list[tuple[int, int, int]], np.ndarray]] = []
    for job in jobs:
        sel = job.selection
        bounds = _dim_bounds(sel) if isinstance(sel, OrthogonalSelection) and sel.dims else None
        if bounds is None or not job.out.flags.writeable or job.out.dtype != array.dtype:
            rest.append(job)
        elif job.out.size:
            mine.append((bounds, job.out))
    if not mine:
        return [], None, rest
    chunk = array.read_chunk_shape
    dtype = array.dtype
    cstr = c_strides(chunk, dtype.itemsize)
    outs = [out for _, out in mine]
    coords, pieces = _pieces(np.array([b for b, _ in mine], dtype=np.int64), outs, chunk, cstr)
    grid = grid_shape(array.shape, chunk)
    ids = np.ravel_multi_index(tuple(coords.T), grid)
    uniq, inverse = np.unique(ids, return_inverse=True)
    chunk_coords = np.stack(np.unravel_index(uniq, grid), axis=1).astype(np.int64)
    keys, key_of, offsets, sizes = array.locate_table(chunk_coords)
    # Chunks known absent first, then by object and offset (the order of a shard file).
    order = np.lexsort((offsets, key_of, sizes >= 0))
    rank = np.empty_like(order)
    rank[order] = np.arange(len(order))
    piece_chunk = rank[inverse.reshape(-1)]
    by_chunk = np.argsort(piece_chunk, kind="stable")
    pieces = pieces[by_chunk]
    piece_chunk = piece_chunk[by_chunk]
    n_chunks = len(order)
    piece_ptr = np.zeros(n_chunks + 1, dtype=np.int64)
    np.cumsum(np.bincount(piece_chunk, minlength=n_chunks), out=piece_ptr[1:])
    table = np.empty((n_chunks, 3), dtype=np.int64)
    table[:, 0] = offsets[order]
    table[:, 1] = sizes[order]
    table[:, 2] = _direct_rows(pieces, piece_chunk, n_chunks, chunk, cstr, dtype.itemsize)
    tables = ScatterTables(
        table, piece_ptr, pieces, cstr, math.prod(chunk) * dtype.itemsize, dtype.itemsize
    )
    plan = KernelPlan(
        array,
        kernel,
        tables,
        chunk_coords[order],
        int(np.count_nonzero(sizes < 0)),
        [],
        outs,
    )
    return _tasks(plan, keys, key_of[order]), plan, rest


def _direct_rows(
    pieces: _I64, piece_chunk: _I64, n_chunks: int, chunk: tuple[int, ...], cstr: _I64, item: int
) -> _I64:
    """Per chunk, a piece that is the whole chunk in a C-contiguous block of its output."""
    ndim = len(chunk)
    shape = np.asarray(chunk, dtype=np.int64)
    full = (pieces[:, 2 : 2 + ndim] == shape).all(axis=1)
    # Strides only matter along dimensions longer than one.
    strided = pieces[:, 2 + ndim :] == cstr
    contiguous = (strided | (shape == 1)).all(axis=1) & (pieces[:, 0] % item == 0)
    rows = np.flatnonzero(full & contiguous)
    direct = np.full(n_chunks, -1, dtype=np.int64)
    direct[piece_chunk[rows[::-1]]] = rows[::-1]  # the first such piece wins
    return direct


def _tasks(plan: KernelPlan, keys: list[str], key_of: _I64) -> list[ReadTask[KernelRun]]:
    """Reads of chunks stored close together in one object (chunk rows in file order)."""
    table = plan.tables.chunks
    store = plan.array.store
    n = len(table)
    if not plan.array.reads_inner_chunks:
        whole = WholeObject()
        return [
            ReadTask(store, keys[key_of[i]], whole, KernelRun(plan, i, i + 1)) for i in range(n)
        ]
    offsets, sizes = table[:, 0], table[:, 1]
    first = plan.absent
    if first == n:
        return []
    # A task ends where the object changes, where a gap of more than GAP_BYTES
    # opens (the bytes between chunks are read too), or at TASK_BYTES decoded.
    per_task = max(1, TASK_BYTES // max(1, plan.tables.chunk_nbytes))
    ends = offsets + sizes
    cut = np.ones(n, dtype=bool)
    cut[first + 1 :] = (key_of[first + 1 :] != key_of[first:-1]) | (
        offsets[first + 1 :] - ends[first:-1] > GAP_BYTES
    )
    # Split long runs every per_task chunks.
    run_start = np.maximum.accumulate(np.where(cut, np.arange(n), 0))
    cut[first:] |= (np.arange(first, n) - run_start[first:]) % per_task == 0
    firsts = np.flatnonzero(cut[first:]) + first
    stops = np.append(firsts[1:], n)
    # The end of a task's range: the furthest end of its chunks (file order may
    # repeat an offset for chunks that share stored bytes).
    last_end = np.maximum.reduceat(ends, firsts)
    return [
        ReadTask(store, keys[k], ByteRange(o, e), KernelRun(plan, a, b))
        for k, o, e, a, b in zip(
            key_of[firsts].tolist(),
            offsets[firsts].tolist(),
            last_end.tolist(),
            firsts.tolist(),
            stops.tolist(),
            strict=True,
        )
    ]


def _fill_address(plan: KernelPlan) -> int:
    """Address of a chunk of fill values (made on first need; a race makes two, harmlessly)."""
    if not plan.fills:
        array = plan.array
        plan.fills.append(np.full(array.read_chunk_shape, array.fill_value, dtype=array.dtype))
    address: int = plan.fills[0].ctypes.data
    return address


def fill_absent(plan: KernelPlan) -> None:
    """Write the fill value into the pieces of the chunks known to be absent."""
    if plan.absent:
        plan.kernel.run(plan.tables, 0, plan.absent, 0, 0, 0, _fill_address(plan))


def run_kernel_task(
    task: ReadTask[KernelRun], data: memoryview | None, scratch: ScratchPool
) -> None:
    """Decode and scatter the chunks of one read; a chunk that fails is named in the error."""
    run = task.item
    plan = run.plan
    tables = plan.tables
    if data is None:  # the object is missing (or went away since its index was read)
        plan.kernel.run(tables, run.first, run.stop, 0, 0, 0, _fill_address(plan))
        return
    buf = scratch.array((tables.chunk_nbytes,), np.dtype(np.uint8))
    bad = decode_rows(plan.kernel, tables, run.first, run.stop, task, data, buf.ctypes.data)
    if bad >= 0:
        raise_for_row(plan.array, tables, plan.coords[bad], task, data, bad)


def decode_rows(
    kernel: ScatterKernel,
    tables: ScatterTables,
    first: int,
    stop: int,
    task: ReadTask[Any],
    data: memoryview,
    scratch: int,
) -> int:
    """Run the kernel on chunk rows ``first:stop``, read by ``task`` as ``data``.

    Returns ``-1``, or the first row that did not decode or is cut off: a short
    read (an object shorter than its index says) decodes what is there, and the
    kernel never reads past the bytes it is given.
    """
    whole = -1 if isinstance(task.range, ByteRange) else len(data)
    base = task.range.start if isinstance(task.range, ByteRange) else 0
    if whole == 0:
        return first
    end = stop
    if whole < 0:
        chunks = tables.chunks[first:stop]
        cut = np.flatnonzero(chunks[:, 0] + chunks[:, 1] - base > len(data))
        if cut.size:
            end = first + int(cut[0])
    bad = -1
    if end > first:
        bad = kernel.run(tables, first, end, buffer_address(data), base, scratch, 0, whole)
    return end if bad < 0 and end < stop else bad


def raise_for_row(
    array: Array,
    tables: ScatterTables,
    coords: _I64,
    task: ReadTask[Any],
    data: memoryview,
    row: int,
) -> NoReturn:
    """Raise the error of chunk ``row`` (at grid ``coords``), which :func:`decode_rows` named."""
    whole = not isinstance(task.range, ByteRange)
    base = 0 if whole else task.range.start  # type: ignore[union-attr]
    offset, size = (int(v) for v in tables.chunks[row, :2])
    part = data if whole else data[offset - base : offset - base + size]
    rng = task.range if whole else ByteRange(offset, offset + size)
    where = tuple(int(c) for c in coords)
    try:
        array.chunk_decoder(part, np.empty(array.read_chunk_shape, array.dtype))
    except DecodeError as exc:
        raise chunk_error(exc, task.key, rng, where) from exc
    raise chunk_error(DecodeError("chunk did not decode to its size"), task.key, rng, where)


def c_strides(shape: tuple[int, ...], itemsize: int) -> _I64:
    """Byte strides of a C-ordered array of ``shape``."""
    return np.array([math.prod(shape[d + 1 :]) * itemsize for d in range(len(shape))], np.int64)
