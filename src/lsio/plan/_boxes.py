"""Planning basic selections as boxes of chunks, so that per-chunk work is a C call.

A unit-step basic selection takes, along each dimension, a partial first chunk,
a run of whole chunks and a partial last chunk. The product of one such class
per dimension is a *box*: chunks laid out regularly in the output, each giving
the same part of itself. A box's chunks can be decoded into a stack and copied
into the output with one NumPy call, or decoded straight into the output where
each chunk is a contiguous block of it; no per-chunk Python objects are needed.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from lsio.plan._selection import IntIndex, OrthogonalSelection, Progression

__all__ = ["Box", "box_chunk_coords", "plan_boxes"]


@dataclass(frozen=True, slots=True)
class Box:
    """A regular block of chunks, each contributing the same part to the output.

    Attributes:
        first: Grid coordinates of the box's first chunk.
        counts: Chunks along each dimension.
        lo: Per dimension, the first element taken from each chunk.
        hi: Per dimension, one past the last element taken from each chunk.
        out_start: Per dimension, where the box starts in the output; ``None``
            for a dimension indexed by an integer (absent from the output).
    """

    first: tuple[int, ...]
    counts: tuple[int, ...]
    lo: tuple[int, ...]
    hi: tuple[int, ...]
    out_start: tuple[int | None, ...]

    @property
    def size(self) -> int:
        """Number of chunks in the box."""
        return math.prod(self.counts)

    def full(self, chunks: tuple[int, ...]) -> bool:
        """Whether every chunk is taken whole."""
        return all(lo == 0 and hi == c for lo, hi, c in zip(self.lo, self.hi, chunks, strict=True))


# One class of a dimension: (first chunk, count, lo, hi, output start or None).
_Segment = tuple[int, int, int, int, int | None]


def _classes(sel: IntIndex | Progression, chunk: int) -> list[_Segment]:
    """A dimension's partial head, run of whole chunks and partial tail."""
    if isinstance(sel, IntIndex):
        c, k = divmod(sel.index, chunk)
        return [(c, 1, k, k + 1, None)]
    start, stop = sel.start, sel.start + sel.count
    first, last = start // chunk, (stop - 1) // chunk
    if first == last:
        lo = start - first * chunk
        return [(first, 1, lo, lo + sel.count, 0)]
    out: list[_Segment] = []
    run0, run1 = first, last + 1  # the run of whole chunks, [run0, run1)
    if start % chunk:
        out.append((first, 1, start % chunk, chunk, 0))
        run0 = first + 1
    tail = stop - last * chunk
    if tail < chunk:
        run1 = last
    if run1 > run0:
        out.append((run0, run1 - run0, 0, chunk, run0 * chunk - start))
    if tail < chunk:
        out.append((last, 1, 0, tail, last * chunk - start))
    return out


def _pieces(seg: _Segment, chunk: int, per_shard: int, most: int) -> list[_Segment]:
    """``seg`` cut at shard boundaries and into pieces of at most ``most`` chunks."""
    c0, n, lo, hi, o0 = seg
    out: list[_Segment] = []
    c = c0
    while c < c0 + n:
        end = min(c0 + n, (c // per_shard + 1) * per_shard, c + most)
        o = None if o0 is None else o0 + (c - c0) * chunk
        out.append((c, end - c, lo, hi, o))
        c = end
    return out


def plan_boxes(
    selection: OrthogonalSelection,
    chunks: tuple[int, ...],
    chunks_per_shard: tuple[int, ...],
    max_chunks: int,
) -> list[Box] | None:
    """Cut a basic selection into boxes of at most ``max_chunks`` chunks, none across a shard.

    Args:
        selection: A normalised selection.
        chunks: Chunk shape of the grid read.
        chunks_per_shard: Chunks per shard along each dimension (all 1 when not
            sharded), so that each box lies in one stored object.
        max_chunks: Largest box; bounds the scratch memory a worker decodes into.

    Returns:
        The boxes, in C order of the grid, or ``None`` when the selection has
        integer arrays or steps other than 1 (the general planner handles those).
    """
    classes: list[list[_Segment]] = []
    for sel, c in zip(selection.dims, chunks, strict=True):
        if isinstance(sel, Progression):
            if sel.step != 1:
                return None
            if sel.count == 0:
                return []
        elif not isinstance(sel, IntIndex):
            return None
        classes.append(_classes(sel, c))
    # Budget per dimension from the last one backwards, so boxes are C-order slabs.
    most: list[int] = [1] * len(chunks)
    budget = max(1, max_chunks)
    for d in range(len(chunks) - 1, -1, -1):
        longest = max(n for _, n, _, _, _ in classes[d])
        most[d] = max(1, min(longest, chunks_per_shard[d], budget))
        budget = max(1, budget // most[d])
    per_dim = [
        [p for seg in segs for p in _pieces(seg, c, s, m)]
        for segs, c, s, m in zip(classes, chunks, chunks_per_shard, most, strict=True)
    ]
    boxes: list[Box] = []
    for combo in _product(per_dim):
        boxes.append(
            Box(
                first=tuple(s[0] for s in combo),
                counts=tuple(s[1] for s in combo),
                lo=tuple(s[2] for s in combo),
                hi=tuple(s[3] for s in combo),
                out_start=tuple(s[4] for s in combo),
            )
        )
    return boxes


def _product(per_dim: list[list[_Segment]]) -> list[tuple[_Segment, ...]]:
    combos: list[tuple[_Segment, ...]] = [()]
    for segs in per_dim:
        combos = [(*c, s) for c in combos for s in segs]
    return combos


def box_chunk_coords(box: Box) -> npt.NDArray[np.int64]:
    """Grid coordinates of a box's chunks, shape ``(box.size, ndim)``, in C order."""
    grid = np.indices(box.counts, dtype=np.int64).reshape(len(box.counts), -1).T
    coords: npt.NDArray[np.int64] = grid + np.asarray(box.first, dtype=np.int64)
    return coords
