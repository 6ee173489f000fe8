"""The per-thread visitor that reduces chunks as they are decoded.

Full chunks are decoded into slots of a per-thread batch buffer and reduced a
batch at a time (a handful of NumPy calls per batch instead of per chunk);
partial chunks (at the region's edges) are reduced on their own. Partials are
merged into the visitor's running statistics at the kept positions they cover.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import numpy as np
import numpy.typing as npt

from lsio.compute import (
    Moments,
    RunningMoments,
    as_akb,
    fill_moments,
    has_running_moments,
    histogram_block,
    reduce_block,
    running_moments,
)
from lsio.zarr import ChunkInfo

__all__ = ["Plan", "Reducer"]

_Arr = npt.NDArray[Any]

# A batch of full chunks is reduced when it reaches this many bytes. Larger
# batches amortise the Python around each (a planned run, a kernel call, a merge
# of partials) over more chunks; measured on 90 KB int16 chunks (in-process A/B,
# 4 alternating rounds of whole-array statistics): 1 MB 0.970 GB/s median, 4 MB
# 1.014, although a 4 MB batch no longer stays in a core's L2 cache.
_BATCH_BYTES = 4 << 20

# Kept positions up to which batches fold into running sums (up to ~50 MB of
# running arrays per thread); beyond, each batch merges into the statistics.
_RUNNING_POSITIONS = 1 << 20


class Plan:
    """What a reduction keeps and drops, in the region's dimensions.

    Args:
        region_shape: Shape of the selected region (dimensions indexed by an int dropped).
        axis: Region axes reduced over.
        chunk_shape: Shape of a read chunk of the array (the region keeps every
            array dimension, so a full chunk is a block of the region as it is).
        dtype: The array's data type.
        fill_value: Value of chunks that are not stored.
        edges: Histogram bin edges per kept position, shape ``(k, bins + 1)``, or ``None``.
        uniform: Whether every row of ``edges`` is evenly spaced.
        moments: Whether to compute the statistics (default ``True``); ``False``
            for a histogram-only pass whose statistics are known already.
    """

    def __init__(
        self,
        region_shape: tuple[int, ...],
        axis: tuple[int, ...],
        chunk_shape: tuple[int, ...],
        dtype: np.dtype[Any],
        fill_value: Any,
        edges: _Arr | None = None,
        uniform: bool = True,
        moments: bool = True,
    ) -> None:
        self.region_shape = region_shape
        self.axis = axis
        self.kept = tuple(d for d in range(len(region_shape)) if d not in axis)
        self.kept_shape = tuple(region_shape[d] for d in self.kept)
        self.k = math.prod(self.kept_shape)
        self.chunk_shape = chunk_shape
        self.dtype = dtype
        self.fill_value = fill_value
        self.edges = edges
        self.uniform = uniform
        self.moments = moments

    def positions(self, info: ChunkInfo) -> _Arr:
        """Flat kept positions (C order) that a chunk part covers."""
        ranges = [np.arange(info.out_sel[d].start, info.out_sel[d].stop) for d in self.kept]
        if not ranges:
            return np.zeros(1, dtype=np.intp)
        grid = np.ix_(*ranges)
        flat: _Arr = np.ravel_multi_index(grid, self.kept_shape).reshape(-1)
        return flat


class Reducer:
    """Running statistics (and histogram) of the chunks one thread is handed.

    :attr:`moments` and :attr:`counts` hold every chunk once :meth:`finish`
    has run.

    Args:
        plan: What to keep and reduce.
        progress: Called with (decoded bytes, chunks) after each reduction step.
    """

    def __init__(self, plan: Plan, progress: Callable[[int, int], None] | None = None) -> None:
        self.plan = plan
        self.moments = Moments.empty(plan.dtype, plan.k)
        self.counts = (
            np.zeros((plan.k, plan.edges.shape[1] - 1), dtype=np.int64)
            if plan.edges is not None
            else None
        )
        self._progress = progress
        itemsize = plan.dtype.itemsize
        chunk_bytes = max(1, math.prod(plan.chunk_shape) * itemsize)
        self._capacity = max(1, _BATCH_BYTES // chunk_bytes)
        self._batch: _Arr | None = None
        self._filled = 0
        self._batch_key: tuple[slice, ...] | None = None
        self._batch_info: ChunkInfo | None = None
        self._positions: dict[tuple[tuple[int, int], ...], _Arr] = {}
        # Per kept-position range, statistics kept in flat arrays between merges
        # (None: blocks are reduced on their own, for dtypes without running
        # sums, and where the arrays would add much memory to the statistics
        # themselves: reductions keeping millions of positions).
        runs = plan.moments and plan.k <= _RUNNING_POSITIONS and has_running_moments(plan.dtype)
        self._running: dict[tuple[tuple[int, int], ...], RunningMoments] | None = (
            {} if runs else None
        )
        self._chunk: _Arr | None = None

    # -- ChunkVisitor -----------------------------------------------------------------

    def slot(self, info: ChunkInfo) -> np.ndarray | None:
        """The next slot of the batch of chunks covering the same kept positions."""
        key = tuple(info.out_sel[d] for d in self.plan.kept)
        if self._batch_key != key or self._filled == self._capacity:
            self.flush()
        if self._batch is None:
            self._batch = np.empty((self._capacity, *self.plan.chunk_shape), self.plan.dtype)
        self._batch_key = key
        self._batch_info = info
        slot: np.ndarray = self._batch[self._filled, ...]  # a view, also for 0-d chunks
        return slot

    def commit(self, info: ChunkInfo) -> None:
        """Count the chunk decoded into the last slot."""
        self._filled += 1

    def batch(self) -> np.ndarray:
        """The batch buffer, emptied (pending chunks reduced) for a run of full chunks."""
        self.flush()
        if self._batch is None:
            self._batch = np.empty((self._capacity, *self.plan.chunk_shape), self.plan.dtype)
        return self._batch

    def commit_batch(self, count: int, info: ChunkInfo) -> None:
        """Reduce the ``count`` chunks decoded into the batch; ``info`` is the first."""
        assert self._batch is not None, "batch() hands out the buffer first"
        self._reduce(self._batch[:count], count, info, batched=True)

    def fold_target(self, info: ChunkInfo, count: int) -> tuple[RunningMoments, _Arr] | None:
        """Where a run of ``count`` full chunks (``info`` the first) can be folded in as each decodes.

        Returns the running statistics of the run's positions and a one-chunk
        scratch viewed as the reduction wants it (``(a, k, b)``), for
        :meth:`lsio.compute.RunningMoments.fold_stored`: each chunk is then
        reduced right after it is decoded, while it is in cache, with no batch
        buffer. ``None`` where the run goes through :meth:`batch` (a histogram
        is asked for, the dtype has no running sums, or the layout cannot be
        viewed so); call :meth:`folded` after folding.
        """
        plan = self.plan
        if self._running is None or self.counts is not None:
            return None
        running = self._running_of(info)
        if not running.folds:
            return None
        if self._chunk is None:
            stored = np.dtype(np.uint8) if plan.dtype == np.bool_ else plan.dtype
            self._chunk = as_akb(np.empty(plan.chunk_shape, stored), plan.axis)
        if self._chunk is None:
            return None
        values = count * self._chunk.shape[0] * self._chunk.shape[2]
        if not running.room(values) and running.n:
            self.moments.merge(running.take(), self._where(info))
        if not running.room(values):
            return None
        return running, self._chunk

    def folded(self, count: int) -> None:
        """``count`` full chunks were folded in through :meth:`fold_target`."""
        if self._progress is not None:
            itemsize = self.plan.dtype.itemsize
            self._progress(count * math.prod(self.plan.chunk_shape) * itemsize, count)

    @property
    def capacity(self) -> int:
        """Chunks the batch buffer holds."""
        return self._capacity

    def present(self, part: np.ndarray, info: ChunkInfo) -> None:
        """Reduce a partial chunk on its own."""
        self._reduce(part, 1, info)

    def absent(self, info: ChunkInfo) -> None:
        """Count a missing chunk's fill values without decoding anything."""
        plan = self.plan
        k_part = math.prod(info.out_sel[d].stop - info.out_sel[d].start for d in plan.kept)
        n_per = info.size // max(k_part, 1)
        where = self._where(info)
        if plan.moments:
            self.moments.merge(fill_moments(plan.fill_value, plan.dtype, k_part, n_per), where)
        if self.counts is not None and plan.edges is not None:
            # Every one of the n_per values at a position falls in the fill value's bin.
            one = np.full((k_part, 1), plan.fill_value, dtype=plan.dtype)
            self.counts[where] += n_per * histogram_block(
                one, (1,), plan.edges[where], plan.uniform
            )
        if self._progress is not None:
            self._progress(info.size * plan.dtype.itemsize, 1)

    # -- reduction --------------------------------------------------------------------

    def flush(self) -> None:
        """Reduce the chunks waiting in the batch."""
        if self._filled and self._batch is not None and self._batch_info is not None:
            n, self._filled = self._filled, 0
            self._reduce(self._batch[:n], n, self._batch_info, batched=True)

    def finish(self) -> None:
        """Reduce what is pending and bring :attr:`moments` up to date; call after the last chunk."""
        self.flush()
        for key, running in (self._running or {}).items():
            if running.n:
                self.moments.merge(running.take(), self._positions[key])

    def _reduce(self, part: _Arr, chunks: int, info: ChunkInfo, batched: bool = False) -> None:
        plan = self.plan
        # Reduced axes of the part: the plan's, shifted past the batch axis when batched.
        axis = (*tuple(d + 1 for d in plan.axis), 0) if batched else plan.axis
        where = self._where(info)
        if plan.moments and not self._accumulate(part, axis, info, where):
            self.moments.merge(reduce_block(part, axis), where)
        if self.counts is not None and plan.edges is not None:
            self.counts[where] += histogram_block(part, axis, plan.edges[where], plan.uniform)
        if self._progress is not None:
            self._progress(part.nbytes, chunks)

    def _accumulate(self, part: _Arr, axis: tuple[int, ...], info: ChunkInfo, where: _Arr) -> bool:
        """Fold ``part`` into the running statistics of its positions; ``False`` if it cannot be."""
        if self._running is None:
            return False
        akb = as_akb(part, axis)
        if akb is None:
            return False
        running = self._running_of(info)
        values = akb.shape[0] * akb.shape[2]
        if not running.room(values) and running.n:
            self.moments.merge(running.take(), where)
        if not running.room(values):
            return False  # more values than the running sums take: on its own
        running.add(akb)
        return True

    def _running_of(self, info: ChunkInfo) -> RunningMoments:
        """The running statistics of the kept positions ``info`` covers (made on first use)."""
        assert self._running is not None
        key = tuple((info.out_sel[d].start, info.out_sel[d].stop) for d in self.plan.kept)
        running = self._running.get(key)
        if running is None:
            where = self._where(info)
            running = running_moments(self.plan.dtype, where.shape[0])
            assert running is not None, "the dtype was checked at construction"
            self._running[key] = running
        return running

    def _where(self, info: ChunkInfo) -> _Arr:
        key = tuple((info.out_sel[d].start, info.out_sel[d].stop) for d in self.plan.kept)
        found = self._positions.get(key)
        if found is None:
            found = self._positions[key] = self.plan.positions(info)
        return found
