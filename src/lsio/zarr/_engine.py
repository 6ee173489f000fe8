"""Executing read jobs of one or many arrays together.

A job is "this selection of this array, into this buffer". All jobs of a call
or a :class:`lsio.Batch` are planned together: the union of the chunks they
touch is computed per array, each chunk is read once and decoded once, and the
decoded chunk is scattered to every job that needs it, in the same worker,
while it is in cache.
"""

from __future__ import annotations

import concurrent.futures as cf
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from lsio._errors import ChunkError
from lsio.compute import DecodeError, ScratchPool
from lsio.io import ByteRange
from lsio.plan import (
    ChunkProjection,
    OrthogonalSelection,
    ReadTask,
    VectorSelection,
    copy_from_chunk,
    execute_reads,
    fill_projection,
    project,
    whole_chunk_target,
)

if TYPE_CHECKING:
    from lsio.zarr._array import Array

__all__ = ["ChunkWork", "ReadJob", "Target", "fill_targets", "run_jobs"]

Target = tuple[np.ndarray, ChunkProjection]


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


def fill_targets(value: Any, targets: list[Target]) -> None:
    """Write the fill value where a missing chunk's targets expect data."""
    for out, proj in targets:
        fill_projection(value, proj, out)


def run_jobs(
    jobs: Sequence[ReadJob], pool: cf.Executor | None, batches: int, scratch: ScratchPool
) -> None:
    """Read every job; on failure raise the first error (outputs are then incomplete)."""
    per_array: dict[int, tuple[Array, dict[tuple[int, ...], list[Target]]]] = {}
    for job in jobs:
        _, chunks = per_array.setdefault(id(job.array), (job.array, {}))
        for p in project(job.selection, job.array.read_chunk_shape):
            chunks.setdefault(p.coords, []).append((job.out, p))
    tasks: list[ReadTask[ChunkWork]] = []
    for array, chunks in per_array.values():
        tasks.extend(array.chunk_tasks(chunks))

    def handle(task: ReadTask[ChunkWork], data: memoryview | None) -> None:
        work = task.item
        array = work.array
        if data is None:
            fill_targets(array.fill_value, work.targets)
            return
        try:
            _decode_and_scatter(array, data, work.targets, scratch)
        except DecodeError as exc:
            rng = task.range
            where = (
                f"inner chunk {work.coords} at bytes [{rng.start}, {rng.end})"
                if isinstance(rng, ByteRange)
                else f"chunk {work.coords}"
            )
            raise ChunkError(f"{exc} ({where})", key=task.key) from exc

    execute_reads(tasks, handle, pool, batches)


def _decode_and_scatter(
    array: Array, data: memoryview, targets: list[Target], scratch: ScratchPool
) -> None:
    shape = array.read_chunk_shape
    pipeline = array.chunk_pipeline
    decoded: np.ndarray | None = None
    skip = -1
    for i, (out, proj) in enumerate(targets):
        view = whole_chunk_target(proj, shape, out)
        if view is not None:
            pipeline.decode_into(data, view)
            decoded, skip = view, i
            break
    if decoded is None:
        decoded = scratch.array(shape, array.dtype)
        pipeline.decode_into(data, decoded)
    for i, (out, proj) in enumerate(targets):
        if i != skip:
            copy_from_chunk(decoded, proj, out)
