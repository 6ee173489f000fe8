"""Partial histograms of blocks of data, one histogram per kept position."""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import numpy.typing as npt

__all__ = ["histogram_block", "rows"]

_Arr = npt.NDArray[Any]


def rows(x: _Arr, axis: tuple[int, ...]) -> _Arr:
    """``x`` as a 2-D array: one row per position of the kept axes (C order), reduced axes flat."""
    kept = [d for d in range(x.ndim) if d not in axis]
    k = math.prod(x.shape[d] for d in kept)
    return np.moveaxis(x, kept, range(len(kept))).reshape(k, -1)


def histogram_block(x: _Arr, axis: tuple[int, ...], edges: _Arr, uniform: bool) -> _Arr:
    """Counts of ``x`` over ``axis`` in the bins given by ``edges`` (shape ``(k, bins + 1)``).

    Bins follow :func:`numpy.histogram`: half-open ``[e_i, e_i+1)`` except the
    last, which includes its right edge; values outside the edges and NaN are
    not counted. ``uniform`` says that each row of ``edges`` is evenly spaced,
    which allows binning by arithmetic instead of a search.

    Returns:
        int64 counts of shape ``(k, bins)``.
    """
    k, nb = edges.shape[0], edges.shape[1] - 1
    counts = np.zeros((k, nb), dtype=np.int64)
    if x.size == 0:
        return counts
    y = rows(x, axis)
    for r in range(k):
        counts[r] = _row_counts(y[r], edges[r], uniform)
    return counts


def _row_counts(v: _Arr, e: _Arr, uniform: bool) -> _Arr:
    nb = e.size - 1
    lo, hi = e[0], e[-1]
    # Comparisons with NaN are false, so NaN is dropped here too.
    keep = (v >= lo) & (v <= hi)
    if not keep.all():
        v = v[keep]
    if v.size == 0:
        return np.zeros(nb, dtype=np.int64)
    if uniform and hi > lo:
        vf = v.astype(np.float64)
        idx = ((vf - lo) * (nb / (hi - lo))).astype(np.intp)
        np.minimum(idx, nb - 1, out=idx)
        # Rounding can put a value one bin off near an edge; fix it as NumPy does.
        idx[vf < e[idx]] -= 1
        up = (vf >= e[np.minimum(idx + 1, nb)]) & (idx != nb - 1)
        idx[up] += 1
    else:
        idx = np.searchsorted(e, v, side="right") - 1
        np.minimum(idx, nb - 1, out=idx)
    return np.bincount(idx, minlength=nb).astype(np.int64)
