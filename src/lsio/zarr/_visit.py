"""Visiting every chunk of a region once, in the workers, right after it is decoded.

The streaming counterpart of reads: nothing is assembled. Each worker thread
gets its own visitor (no locks), and is handed each chunk's part that lies in
the region while it is hot in cache. Chunks are planned in windows of whole
shards, so memory stays bounded by the window's plan, the workers' buffers and
the IO queue, whatever the size of the array.
"""

from __future__ import annotations

import itertools
import math
import threading
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol, TypeVar, cast

import numpy as np

from lsio.compute import DecodeError, RunningMoments, load_scatter_kernel, run_all
from lsio.plan import OrthogonalSelection, Progression, ReadTask, execute_reads, project_dims
from lsio.zarr._engine import chunk_error
from lsio.zarr._locate import locate_chunks
from lsio.zarr._visitfiles import (
    FileRun,
    box_windows,
    decode_files,
    plan_file_runs,
    read_ahead_runs,
)
from lsio.zarr._visitruns import Run, decode_run, fold_run, full_box, full_windows, plan_runs

if TYPE_CHECKING:
    from lsio.zarr._array import Array

__all__ = ["BatchVisitor", "ChunkInfo", "ChunkVisitor", "visit_chunks"]


@dataclass(frozen=True, slots=True)
class ChunkInfo:
    """One chunk of a visit.

    Attributes:
        coords: Chunk coordinates (read grid: inner chunks of sharded arrays).
        chunk_sel: The part of the chunk inside the region (an int drops a dimension).
        out_sel: Where that part lies in the region (one slice per kept dimension).
        full: Whether the part is the whole chunk.
        size: Number of elements in the part.
    """

    coords: tuple[int, ...]
    chunk_sel: tuple[Any, ...]
    out_sel: tuple[slice, ...]
    full: bool
    size: int


class ChunkVisitor(Protocol):
    """What a visit hands chunks to; one instance per worker thread."""

    def slot(self, info: ChunkInfo) -> np.ndarray | None:
        """A C-contiguous chunk-shaped buffer to decode a full chunk into, or ``None``."""

    def commit(self, info: ChunkInfo) -> None:
        """The chunk was decoded into the buffer the last :meth:`slot` call returned."""

    def present(self, part: np.ndarray, info: ChunkInfo) -> None:
        """The chunk's part in the region; a view valid only during the call."""

    def absent(self, info: ChunkInfo) -> None:
        """The chunk is not stored: its part holds the fill value."""


class BatchVisitor(ChunkVisitor, Protocol):
    """A visitor that also takes runs of full chunks decoded side by side."""

    def batch(self) -> np.ndarray:
        """A C-contiguous ``(n, *chunk_shape)`` buffer for up to ``n`` full chunks."""

    def commit_batch(self, count: int, info: ChunkInfo) -> None:
        """``count`` full chunks were decoded into the buffer's first slots.

        They agree along the visit's ``batch_dims``; ``info`` is the first one.
        """

    def fold_target(self, info: ChunkInfo, count: int) -> tuple[RunningMoments, np.ndarray] | None:
        """Where a run of ``count`` full chunks can be folded in as each decodes, or ``None``.

        The running statistics and a one-chunk ``(a, k, b)`` scratch (see
        :meth:`lsio.compute.RunningMoments.fold_stored`); ``None`` sends the
        run through :meth:`batch` and :meth:`commit_batch`.
        """

    def folded(self, count: int) -> None:
        """``count`` full chunks were folded in through :meth:`fold_target`."""


V = TypeVar("V", bound=ChunkVisitor)


def _by_shard(parts: list[Any], per_shard: int) -> list[list[Any]]:
    """A dimension's chunk parts, grouped by the shard they are in."""
    groups: dict[int, list[Any]] = {}
    for p in parts:
        groups.setdefault(p[0] // per_shard, []).append(p)
    return list(groups.values())


def _windows(
    array: Array, sel: OrthogonalSelection, window_chunks: int
) -> Iterator[list[ChunkInfo]]:
    """ChunkInfos in shard-major order, cut into lists of about ``window_chunks``."""
    chunk_shape = array.read_chunk_shape
    per_dim = project_dims(sel, chunk_shape)
    per_shard = array.chunks_per_shard
    grouped = [_by_shard(parts, n) for parts, n in zip(per_dim, per_shard, strict=True)]
    window: list[ChunkInfo] = []
    for shard in itertools.product(*grouped):
        window.extend(_info(combo, chunk_shape) for combo in itertools.product(*shard))
        if len(window) >= window_chunks:
            yield window
            window = []
    if window:
        yield window


def _info(combo: tuple[Any, ...], chunk_shape: tuple[int, ...]) -> ChunkInfo:
    """The ChunkInfo of one chunk from its per-dimension projections."""
    chunk_sel = tuple(p[1] for p in combo)
    size = 1
    full = True
    for cs, n in zip(chunk_sel, chunk_shape, strict=True):
        if isinstance(cs, slice):
            size *= cs.stop - cs.start
            full = full and cs.start == 0 and cs.stop == n
        else:
            full = False
    out_sel = tuple(p[2] for p in combo if isinstance(p[2], slice))
    return ChunkInfo(tuple(p[0] for p in combo), chunk_sel, out_sel, full, size)


def _partial_windows(
    array: Array, sel: OrthogonalSelection, box: list[tuple[int, int]], window_chunks: int
) -> Iterator[list[ChunkInfo]]:
    """The chunks outside ``box`` (the region's edges), each once, ``window_chunks`` at a time.

    A chunk is outside the box when some dimension ``d`` is: enumerated as the
    chunks inside the box along dimensions before ``d``, outside along ``d``,
    anywhere after.
    """
    chunk_shape = array.read_chunk_shape
    parts = project_dims(sel, chunk_shape)
    inside = [[p for p in ps if lo <= p[0] < hi] for ps, (lo, hi) in zip(parts, box, strict=True)]
    outside = [
        [p for p in ps if not lo <= p[0] < hi] for ps, (lo, hi) in zip(parts, box, strict=True)
    ]
    window: list[ChunkInfo] = []
    for d in range(len(parts)):
        for combo in itertools.product(*inside[:d], outside[d], *parts[d + 1 :]):
            window.append(_info(combo, chunk_shape))
            if len(window) >= window_chunks:
                yield window
                window = []
    if window:
        yield window


def visit_chunks(
    array: Array,
    sel: OrthogonalSelection,
    make_visitor: Callable[[], V],
    window_chunks: int = 8192,
    batch_chunks: int = 0,
    batch_dims: tuple[int, ...] = (),
) -> list[V]:
    """Hand every chunk part of ``sel`` to a per-thread visitor; return the visitors.

    Args:
        array: The array to visit.
        sel: A normalised basic selection with unit steps (ints and slices).
        make_visitor: Creates the visitor of a thread on its first chunk.
        window_chunks: Chunks planned at a time (default 8192; whole shards are
            never split across windows).
        batch_chunks: When above 0 (default 0) the visitors are
            :class:`BatchVisitor` s with room for this many chunks, and the full
            chunks of an array of plain bytes with a compiled decoder are planned
            as arrays and decoded by the compiled kernel into the batch buffers:
            runs of a shard's inner chunks (see :mod:`lsio.zarr._visitruns`), or
            batches of chunk files (:mod:`lsio.zarr._visitfiles`); the rest go one
            by one.
        batch_dims: Dimensions along which the chunks of a run agree (default
            none; the dimensions a reduction keeps).

    Returns:
        Every visitor created, for the caller to merge. Absent chunks are handed
        to the visitor of the thread that found them absent.

    Raises:
        ValueError: When the selection has steps other than 1.
        ChunkError: When a chunk cannot be decoded (naming its key and range).
    """
    if any(isinstance(d, Progression) and d.step != 1 for d in sel.dims):
        raise ValueError("a visit needs unit steps")
    visitors: dict[int, V] = {}

    def visitor() -> V:
        tid = threading.get_ident()
        v = visitors.get(tid)
        if v is None:
            v = visitors[tid] = make_visitor()
        return v

    decode = array.chunk_decoder
    chunk_shape = array.read_chunk_shape
    ctx = array.context
    scratch = ctx.scratch

    def handle(task: ReadTask[ChunkInfo], data: memoryview | None) -> None:
        info = task.item
        v = visitor()
        if data is None:
            v.absent(info)
            return
        try:
            if info.full:
                slot = v.slot(info)
                if slot is not None:
                    decode(data, slot)
                    v.commit(info)
                    return
            chunk = scratch.array(chunk_shape, array.dtype)
            decode(data, chunk)
        except DecodeError as exc:
            raise chunk_error(exc, task.key, task.range, info.coords) from exc
        v.present(chunk[info.chunk_sel], info)

    store = ctx.store
    box = _kernel_box(array, sel, batch_chunks)
    decoder = array.c_decoder
    kernel = load_scatter_kernel(decoder) if box is not None and decoder is not None else None
    if kernel is None:
        box = None
    windows: Iterable[list[ChunkInfo]] = (
        _windows(array, sel, window_chunks)
        if box is None
        else _partial_windows(array, sel, box, window_chunks)
    )
    for window in windows:
        tasks: list[ReadTask[ChunkInfo]] = []
        located = locate_chunks(array, [info.coords for info in window])
        for info, where in zip(window, located, strict=True):
            if where is None:
                visitor().absent(info)
            else:
                tasks.append(ReadTask(store, where[0], where[1], info))
        execute_reads(tasks, handle, ctx.pool, ctx.batches, ctx.workers)
    if box is None or kernel is None:
        return list(visitors.values())

    starts = [d.start for d in sel.dims if isinstance(d, Progression)]
    whole = tuple(slice(0, n) for n in chunk_shape)
    size = math.prod(chunk_shape)

    def info_of(coords: Any) -> ChunkInfo:
        out = tuple(
            slice(c * n - a, (c + 1) * n - a)
            for c, n, a in zip(coords, chunk_shape, starts, strict=True)
        )
        return ChunkInfo(tuple(coords), whole, out, True, size)

    def handle_run(task: ReadTask[Run], data: memoryview | None) -> None:
        v = cast("BatchVisitor", visitor())
        if data is None:  # the shard went away since it was located
            for coords in task.item.coords.tolist():
                v.absent(info_of(coords))
            return
        first = info_of(task.item.coords[0].tolist())
        count = task.item.coords.shape[0]
        target = v.fold_target(first, count)
        if target is not None:
            fold_run(array, kernel, task, data, *target)
            v.folded(count)
            return
        decode_run(array, kernel, task, data, v.batch())
        v.commit_batch(count, first)

    if array.metadata.sharding is None:
        raised = threading.Lock()

        def handle_files(item: tuple[FileRun, np.ndarray | None]) -> None:
            run, taken = item
            if taken is not None:
                with raised:  # never lowered by a worker that started earlier
                    taken[0] = max(int(taken[0]), run.first)
            v = cast("BatchVisitor", visitor())
            decoded, missing = decode_files(array, kernel, run, v.batch())
            for coords in missing.tolist():
                v.absent(info_of(coords))
            if len(decoded):
                v.commit_batch(decoded.shape[0], info_of(decoded[0].tolist()))

        for coords in box_windows(box, window_chunks):
            file_runs = plan_file_runs(array, coords, batch_dims, batch_chunks)
            taken = read_ahead_runs(array, file_runs)  # files on disk: reads in flight
            try:
                run_all(ctx.pool, handle_files, [(r, taken) for r in file_runs], ctx.workers)
            finally:
                if taken is not None:
                    taken[0] = coords.shape[0]  # every file taken: the read-ahead ends
        return list(visitors.values())
    for coords in full_windows(box, array.chunks_per_shard, window_chunks):
        runs, absent = plan_runs(array, coords, batch_dims, batch_chunks)
        for c in absent.tolist():
            visitor().absent(info_of(c))
        # Runs are decoded into the visitors' batches or folded: no view is kept.
        execute_reads(runs, handle_run, ctx.pool, ctx.batches, ctx.workers, release=True)
    return list(visitors.values())


def _kernel_box(
    array: Array, sel: OrthogonalSelection, batch_chunks: int
) -> list[tuple[int, int]] | None:
    """The chunk-coordinate box of the full chunks that go to the kernel, or ``None``."""
    if batch_chunks <= 0 or array.c_decoder is None:
        return None
    if not all(isinstance(d, Progression) and d.step == 1 for d in sel.dims):
        return None
    bounds = [(d.start, d.start + d.count) for d in sel.dims if isinstance(d, Progression)]
    return full_box(bounds, array.read_chunk_shape)
