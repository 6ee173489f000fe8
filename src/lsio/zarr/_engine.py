"""Executing read jobs of one or many arrays together.

A job is "this selection of this array, into this buffer". All jobs of a call
or a :class:`lsio.Batch` are planned together: the union of the chunks they
touch is computed per array, each chunk is read once and decoded once, and the
decoded chunk is scattered to every job that needs it, in the same worker,
while it is in cache.

Planning (main thread) turns each chunk projection into a :class:`Target` that
the worker can apply with one NumPy call: decode straight into a contiguous
block of the output (``DIRECT``), copy a slice of the decoded chunk into a view
of the output (``COPY``), or the general orthogonal/vectorised scatter.
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence
from dataclasses import dataclass
from functools import partial
from typing import TYPE_CHECKING, Any

import numpy as np

from lsio.compute import (
    DecodeError,
    ScratchPool,
    load_scatter_kernel,
    run_all,
    zstd_content_size,
)
from lsio.plan import (
    ChunkProjection,
    OrthogonalSelection,
    ReadTask,
    VectorSelection,
    copy_from_chunk,
    execute_reads,
    fill_projection,
    project,
    project_dims,
)
from lsio.zarr._boxread import BoxWork, buffer_address, chunk_error, plan_box_reads, run_boxes
from lsio.zarr._kernelread import KernelGroup, fill_absent, plan_kernel_reads, run_kernel_group
from lsio.zarr._locate import locate_chunks
from lsio.zarr._runs import RunWork, merge_runs

if TYPE_CHECKING:
    from lsio.zarr._array import Array
    from lsio.zarr._context import Context

__all__ = [
    "ChunkWork",
    "ReadJob",
    "Target",
    "chunk_error",
    "chunk_tasks",
    "fill_targets",
    "run_jobs",
]

DIRECT, COPY, GENERAL = 0, 1, 2


@dataclass(frozen=True, slots=True)
class Target:
    """Where (part of) a decoded chunk goes.

    Attributes:
        kind: ``DIRECT``: ``dst`` is a C-contiguous block of the output that is
            exactly the chunk. ``COPY``: ``dst[...] = chunk[src]``. ``GENERAL``:
            ``copy_from_chunk(chunk, proj, dst)``.
        dst: A view of the output (``DIRECT``, ``COPY``) or the output (``GENERAL``).
        src: Slices of the chunk (``COPY``).
        proj: The projection (``GENERAL``).
    """

    kind: int
    dst: np.ndarray
    src: Any = None
    proj: ChunkProjection | None = None


@dataclass(frozen=True, slots=True)
class ReadJob:
    """One selection of one array, to be written into ``out`` (of the selection's shape)."""

    array: Array
    selection: OrthogonalSelection | VectorSelection
    out: np.ndarray


@dataclass(frozen=True, slots=True)
class ChunkWork:
    """A chunk to read once and scatter to every target that needs part of it."""

    array: Array
    coords: tuple[int, ...]
    targets: list[Target]


def _add(chunks: dict[tuple[int, ...], list[Target]], coords: tuple[int, ...], t: Target) -> None:
    found = chunks.get(coords)
    if found is None:
        chunks[coords] = [t]
    else:
        found.append(t)


def _plan_basic(
    sel: OrthogonalSelection,
    chunk_shape: tuple[int, ...],
    out: np.ndarray,
    chunks: dict[tuple[int, ...], list[Target]],
) -> None:
    """Targets of a basic selection (ints and slices only), without per-chunk projections.

    The hot path of crops and block reads: per dimension the parts are computed
    once; per chunk only the output view is made.
    """
    per_dim = project_dims(sel, chunk_shape)
    # A part is "full" when it takes the whole chunk extent, in order, to a slice.
    full = [
        [
            isinstance(cs, slice)
            and cs.step in (None, 1)
            and cs.start == 0
            and cs.stop == n
            and os_ is not None
            for _, cs, os_ in parts
        ]
        for parts, n in zip(per_dim, chunk_shape, strict=True)
    ]
    index_lists = [range(len(parts)) for parts in per_dim]
    for combo in itertools.product(*index_lists):
        parts = [per_dim[d][i] for d, i in enumerate(combo)]
        coords = tuple(p[0] for p in parts)
        dst = out[(*(p[2] for p in parts if p[2] is not None), Ellipsis)]
        if all(full[d][i] for d, i in enumerate(combo)) and dst.flags.c_contiguous:
            _add(chunks, coords, Target(DIRECT, dst))
        else:
            _add(chunks, coords, Target(COPY, dst, tuple(p[1] for p in parts)))


def fill_targets(value: Any, targets: list[Target]) -> None:
    """Write the fill value where a missing chunk's targets expect data."""
    for t in targets:
        if t.kind == GENERAL:
            assert t.proj is not None
            fill_projection(value, t.proj, t.dst)
        else:
            t.dst[...] = value


def chunk_tasks(
    array: Array, chunks: dict[tuple[int, ...], list[Target]]
) -> list[ReadTask[ChunkWork]]:
    """Reads for the given chunks of ``array`` (read-grid coordinates) and their targets.

    Chunks known to be missing (absent from their shard's index) get the fill
    value written into their targets here, and need no read.
    """
    store = array.store
    tasks: list[ReadTask[ChunkWork]] = []
    for (c, targets), where in zip(chunks.items(), locate_chunks(array, list(chunks)), strict=True):
        if where is None:
            fill_targets(array.fill_value, targets)
        else:
            tasks.append(ReadTask(store, where[0], where[1], ChunkWork(array, c, targets)))
    return tasks


def run_jobs(jobs: Sequence[ReadJob], ctx: Context, serial: bool = False) -> None:
    """Read every job; on failure raise the first error (outputs are then incomplete).

    Unit-step basic selections of arrays with a compiled decoder go to the compiled kernel (see
    :mod:`lsio.zarr._kernelread`); those of other arrays are read box by box
    (see :mod:`lsio.zarr._boxread`); the rest, and boxes sharing a chunk with
    another job, are planned chunk by chunk here. The calling thread and up to
    ``ctx.workers - 1`` threads of ``ctx.pool`` do the work (see :func:`lsio.compute.run_all`);
    where a crop's chunk files are on disk, up to ``max(ctx.workers,
    ctx.disk_workers) - 1`` threads (of ``ctx.disk_pool`` where that is more
    than ``ctx.workers``) with the calling thread (see :class:`lsio.ReadConfig`).
    With ``serial``, the calling thread alone does it all, and no row is
    copied past the caches (a writer's worker reading what it updates and
    encodes next, while the pool writes).
    """
    pool = None if serial else ctx.pool
    batches = 1 if serial else ctx.batches
    workers = None if serial else ctx.workers
    disk_workers = 1 if serial else ctx.disk_workers
    stream_from = None if serial else ctx.config.stream_from
    scratch = ctx.scratch
    per_array: dict[int, tuple[Array, list[ReadJob]]] = {}
    for job in jobs:
        per_array.setdefault(id(job.array), (job.array, []))[1].append(job)
    tasks: list[ReadTask[Any]] = []
    boxes: list[BoxWork] = []
    groups: list[KernelGroup] = []
    on_disk = False  # a crop's chunk files are on disk: more workers wait for them
    for array, array_jobs in per_array.values():
        decoder = array.c_decoder
        kernel = load_scatter_kernel(decoder) if decoder is not None else None
        if kernel is not None:
            array_groups, plan, array_jobs = plan_kernel_reads(
                array, array_jobs, kernel, batches, disk_workers, stream_from
            )
            if plan is not None:
                fill_absent(plan)
                on_disk = on_disk or (plan.claims is not None and plan.claims.crop_on_disk)
            groups.extend(array_groups)
        works, rest, parts = plan_box_reads(array, array_jobs)
        boxes.extend(works)
        chunks: dict[tuple[int, ...], list[Target]] = {}
        shape = array.read_chunk_shape
        for part, out in parts:
            _plan_basic(part, shape, out, chunks)
        for job in rest:
            sel = job.selection
            if isinstance(sel, OrthogonalSelection) and not any(
                isinstance(d, np.ndarray) for d in sel.dims
            ):
                _plan_basic(sel, shape, job.out, chunks)
                continue
            for p in project(sel, shape):
                # Array indexes and points: the general scatter (never in place).
                _add(chunks, p.coords, Target(GENERAL, job.out, proj=p))
        if chunks:
            single: list[ReadTask[Any]] = []
            to_scratch: list[ReadTask[ChunkWork]] = []
            for t in chunk_tasks(array, chunks):
                direct = any(x.kind == DIRECT for x in t.item.targets)
                (single if direct else to_scratch).append(t)
            tasks.extend(single)
            tasks.extend(merge_runs(array, to_scratch))

    def handle(task: ReadTask[Any], data: memoryview | None) -> None:
        work = task.item
        if isinstance(work, RunWork):
            _decode_run(work, task, data, scratch)
            return
        array = work.array
        if data is None:
            fill_targets(array.fill_value, work.targets)
            return
        try:
            _decode_and_scatter(array, data, work.targets, scratch)
        except DecodeError as exc:
            raise chunk_error(exc, task.key, task.range, work.coords) from exc

    kernel_pool, kernel_workers = pool, workers
    if on_disk and workers is not None and disk_workers > workers:
        kernel_pool, kernel_workers = ctx.disk_pool, disk_workers
    run_all(kernel_pool, partial(run_kernel_group, scratch=scratch), groups, kernel_workers)
    execute_reads(tasks, handle, pool, batches, workers, release=True)  # decoded into outputs
    run_boxes(boxes, pool, batches, scratch, workers)


def _decode_run(
    work: RunWork, task: ReadTask[Any], data: memoryview | None, scratch: ScratchPool
) -> None:
    """Decode a run of chunks with one call and scatter each (or chunk by chunk on failure)."""
    array = work.array
    if data is None:  # the shard went away since its index was read
        for chunk in work.chunks:
            fill_targets(array.fill_value, chunk.targets)
        return
    raw = array.raw_chunk_decoder
    assert raw is not None
    n, nbytes = len(work.chunks), array.chunk_nbytes
    stack = scratch.array((n, *array.read_chunk_shape), array.dtype)
    if _each_fits(array, data, work) and (
        raw(stack.ctypes.data, n * nbytes, buffer_address(data), len(data)) == n * nbytes
    ):
        for i, chunk in enumerate(work.chunks):
            _scatter(stack[i], chunk.targets)
        return
    # Something in the run is wrong: decode chunk by chunk to name the culprit.
    base = work.ranges[0].start
    for chunk, rng in zip(work.chunks, work.ranges, strict=True):
        part = data[rng.start - base : rng.end - base]
        try:
            _decode_and_scatter(array, part, chunk.targets, scratch)
        except DecodeError as exc:
            raise chunk_error(exc, task.key, rng, chunk.coords) from exc


def _each_fits(array: Array, data: memoryview, work: RunWork) -> bool:
    """Whether every chunk of a run says it decodes to one chunk's bytes.

    One call decodes the run, and only its total is checked after: chunks of
    158 and 162 bytes where 160 are due would pass it and shift the values
    between them. Uncompressed chunks must be exactly a chunk long; zstd frames
    must record that size in their header (one without it is decoded on its own).
    """
    nbytes = array.chunk_nbytes
    zstd = array.c_decoder is not None and array.c_decoder.name == "zstd"
    base = work.ranges[0].start
    for rng in work.ranges:
        part = data[rng.start - base : rng.end - base]
        if (zstd_content_size(part) if zstd else len(part)) != nbytes:
            return False
    return True


def _decode_and_scatter(
    array: Array, data: memoryview, targets: list[Target], scratch: ScratchPool
) -> None:
    decode = array.chunk_decoder
    first = targets[0]
    if len(targets) == 1 and first.kind == DIRECT:
        decode(data, first.dst)
        return
    direct = next((t for t in targets if t.kind == DIRECT), None)
    chunk = direct.dst if direct is not None else scratch.array(array.read_chunk_shape, array.dtype)
    decode(data, chunk)
    _scatter(chunk, targets, direct)


def _scatter(chunk: np.ndarray, targets: list[Target], done: Target | None = None) -> None:
    """Copy a decoded chunk to its targets (``done``: one it was decoded into)."""
    for t in targets:
        if t.kind == COPY:
            np.copyto(t.dst, chunk[t.src])
        elif t.kind == DIRECT:
            if t is not done:  # another read wants this whole chunk too
                np.copyto(t.dst, chunk)
        else:
            assert t.proj is not None
            copy_from_chunk(chunk, t.proj, t.dst)
