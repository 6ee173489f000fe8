"""Visiting every chunk of a region once, in the workers, right after it is decoded.

The streaming counterpart of reads: nothing is assembled. Each worker thread
gets its own visitor (no locks), and is handed each chunk's part that lies in
the region while it is hot in cache. Chunks are planned in windows of whole
shards, so memory stays bounded by the window's plan, the workers' buffers and
the IO queue, whatever the size of the array.
"""

from __future__ import annotations

import itertools
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol, TypeVar

import numpy as np

from lsio.compute import DecodeError
from lsio.plan import OrthogonalSelection, Progression, ReadTask, execute_reads, project_dims
from lsio.zarr._engine import chunk_error

if TYPE_CHECKING:
    from lsio.zarr._array import Array

__all__ = ["ChunkInfo", "ChunkVisitor", "visit_chunks"]


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
        for combo in itertools.product(*shard):
            chunk_sel = tuple(p[1] for p in combo)
            size = 1
            full = True
            for cs, n in zip(chunk_sel, chunk_shape, strict=True):
                if isinstance(cs, slice):
                    size *= cs.stop - cs.start
                    full = full and cs.start == 0 and cs.stop == n
                else:
                    full = False
            window.append(
                ChunkInfo(
                    tuple(p[0] for p in combo),
                    chunk_sel,
                    tuple(p[2] for p in combo if isinstance(p[2], slice)),
                    full,
                    size,
                )
            )
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
) -> list[V]:
    """Hand every chunk part of ``sel`` to a per-thread visitor; return the visitors.

    Args:
        array: The array to visit.
        sel: A normalised basic selection with unit steps (ints and slices).
        make_visitor: Creates the visitor of a thread on its first chunk.
        window_chunks: Chunks planned at a time (default 8192; whole shards are
            never split across windows).

    Returns:
        Every visitor created, for the caller to merge. Absent chunks are handed
        to the visitor of the calling thread.

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
    for window in _windows(array, sel, window_chunks):
        tasks: list[ReadTask[ChunkInfo]] = []
        located = array.locate_chunks([info.coords for info in window])
        for info, where in zip(window, located, strict=True):
            if where is None:
                visitor().absent(info)
            else:
                tasks.append(ReadTask(store, where[0], where[1], info))
        execute_reads(tasks, handle, ctx.pool, ctx.batches)
    return list(visitors.values())
