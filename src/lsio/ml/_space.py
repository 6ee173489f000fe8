"""The sample space: valid crop starts per dimension, with whole groups of combinations ruled out.

Most exclusion rules act on one dimension at a time (a crop out of bounds, across
a time gap, beyond an alignment tolerance), so the samples are the product of
the starts that remain along each dimension. A rule such as "the crop must touch
a stored chunk" acts on combinations instead. Its outcome depends on a start
only through which chunks the crop covers, so the starts along each dimension
fall into classes (same chunks covered by every source) and the rule is decided
once per combination of classes, a grid far smaller than the samples. Sample
ids number the samples of the kept cells in order, so an id maps to its starts
with a binary search and arithmetic, never a table of all samples.
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence
from typing import Any

import numpy as np
import numpy.typing as npt

__all__ = ["SampleSpace", "any_stored"]

_Arr = npt.NDArray[Any]


class SampleSpace:
    """Samples as kept cells of a grid of per-dimension classes of starts.

    Args:
        labels: Per dimension, the class of each valid start (ints from 0); one
            class per dimension makes the space the plain product of the starts.
        keep: Boolean grid over the classes (shape: classes per dimension);
            ``None`` keeps every cell.
    """

    def __init__(self, labels: Sequence[_Arr], keep: _Arr | None = None) -> None:
        self._order: list[_Arr] = []
        self._sizes: list[_Arr] = []
        self._offsets: list[_Arr] = []
        for lab in labels:
            lab = np.asarray(lab, dtype=np.int64)
            sizes = np.bincount(lab, minlength=int(lab.max(initial=-1)) + 1).astype(np.int64)
            self._order.append(np.argsort(lab, kind="stable"))
            self._sizes.append(sizes)
            self._offsets.append(np.cumsum(sizes) - sizes)
        self._grid = tuple(s.size for s in self._sizes)
        counts = np.ones(self._grid, dtype=np.int64)
        for axis, sizes in enumerate(self._sizes):
            counts = counts * sizes.reshape(
                [-1 if a == axis else 1 for a in range(len(self._grid))]
            )
        if keep is not None:
            counts = np.where(keep, counts, 0)
        self._cells = np.flatnonzero(counts)
        self._kept = counts.reshape(-1)[self._cells]
        self._cum = np.cumsum(self._kept)
        self.size = int(self._cum[-1]) if self._cum.size else 0

    def choose(self, ids: _Arr) -> tuple[_Arr, ...]:
        """Per dimension, the position among its valid starts of each sample in ``ids``."""
        ids = np.asarray(ids, dtype=np.int64)
        cell = np.searchsorted(self._cum, ids, side="right")
        rest = ids - (self._cum[cell] - self._kept[cell])
        classes = np.unravel_index(self._cells[cell], self._grid)
        picked: list[_Arr] = []
        # Within a cell, samples run over the classes' members in C order (last dim fastest).
        for axis in reversed(range(len(self._grid))):
            k = classes[axis]
            size = self._sizes[axis][k]
            rest, within = np.divmod(rest, size)
            picked.append(self._order[axis][self._offsets[axis][k] + within])
        return tuple(reversed(picked))


def any_stored(stored: _Arr, bounds: Sequence[tuple[Any, Any]]) -> _Arr:
    """Whether any ``True`` of ``stored`` lies in each box of chunk ranges.

    Args:
        stored: Boolean grid (e.g. :meth:`lsio.Array.stored_chunks`).
        bounds: Per dimension of ``stored``, ``(first, stop)`` chunk indices:
            ints, or integer arrays that broadcast against each other (one box
            per broadcast position).

    Returns:
        Boolean array of the broadcast shape.
    """
    # Inclusion-exclusion over a summed-area table: one gather per box corner.
    table = np.zeros(tuple(n + 1 for n in stored.shape), dtype=np.int64)
    table[tuple(slice(1, None) for _ in stored.shape)] = stored
    for axis in range(stored.ndim):
        np.cumsum(table, axis=axis, out=table)
    total: _Arr | int = 0
    for corner in itertools.product((0, 1), repeat=stored.ndim):
        index = tuple(b[c] for b, c in zip(bounds, corner, strict=True))
        sign = -1 if (stored.ndim - sum(corner)) % 2 else 1
        total = total + sign * table[index]
    return np.asarray(total) > 0
