"""Compiled single-pass kernels for the per-chunk work NumPy needs several passes for.

NumPy computes a block's minimum, maximum, sum and sum of squares in four
passes (plus a widening copy for the squares); on 16-bit data that is ~1.6 GB/s
per core, a third of the time zstd takes to decode the same bytes. Numba
compiles one loop that does all four while each row is in L1 cache, integers
through the explicit vector code of :mod:`lsio.compute._simd` (~22 GB/s per
core on int16, against ~8 GB/s for the plain loop; ``BENCHMARKS.md``), and
releases the GIL while it runs.

The kernels work on a block viewed as ``(a, k, b)``: reduce over the first and
last axes, keep the middle one. :func:`as_akb` finds that view (without copying)
when the kept axes of a block are adjacent, which covers the usual reductions
(per channel, per variable, per time step, everything); other layouts stay on
the NumPy path. Kernels are compiled on first use (about a second per dtype,
cached on disk by Numba afterwards).
"""

from __future__ import annotations

import math
from typing import Any

import numba
import numpy as np
import numpy.typing as npt

from lsio.compute._simd import LANES, MAX_VECTORS, vector_float_sums, vector_moments

__all__ = ["as_akb", "float_moments", "float_moments_into", "int_moments", "int_moments_into"]

_Arr = npt.NDArray[Any]


def as_akb(x: _Arr, axis: tuple[int, ...]) -> _Arr | None:
    """``x`` viewed as ``(a, k, b)`` with ``axis`` folded into ``a`` and ``b``, or ``None``.

    ``None`` when the kept axes (those not in ``axis``, ignoring length-1 axes)
    are not adjacent, or when the view would need a copy.
    """
    kept = [d for d in range(x.ndim) if d not in axis and x.shape[d] != 1]
    if kept and kept[-1] - kept[0] + 1 != len(kept):
        return None
    if not x.flags.c_contiguous:
        return None
    if kept:
        first, last = kept[0], kept[-1] + 1
    else:
        first = last = x.ndim
    a = math.prod(x.shape[:first])
    k = math.prod(x.shape[first:last])
    b = math.prod(x.shape[last:])
    return x.reshape(a, k, b)


@numba.njit(nogil=True, cache=True)
def _int_rows(x: Any, lo: Any, hi: Any, total: Any, sumsq: Any) -> None:  # pragma: no cover
    a_n, k_n, b_n = x.shape
    full = b_n - b_n % LANES
    step = MAX_VECTORS * LANES
    for a in range(a_n):
        for k in range(k_n):
            row = x[a, k]
            mn = lo[k]
            mx = hi[k]
            s = np.int64(0)
            q = np.int64(0)
            for i in range(0, full, step):
                part = vector_moments(row, i, (min(i + step, full) - i) // LANES)
                mn = min(mn, part[0])
                mx = max(mx, part[1])
                s += part[2]
                q += part[3]
            for i in range(full, b_n):
                v = np.int64(row[i])
                mn = min(mn, v)
                mx = max(mx, v)
                s += v
                q += v * v
            lo[k] = mn
            hi[k] = mx
            total[k] += s
            sumsq[k] += q


def int_moments(x: _Arr) -> tuple[_Arr, _Arr, _Arr, _Arr]:
    """Minimum, maximum, sum and sum of squares (int64) over axes 0 and 2 of ``x``.

    Args:
        x: An ``(a, k, b)`` array of integers of at most 16 bits (booleans are
            read as ``uint8``), with at most 2**31 values per kept position so
            that the int64 sums cannot overflow.

    Returns:
        Four int64 arrays of shape ``(k,)``.
    """
    k = x.shape[1]
    lo = np.full(k, np.iinfo(np.int64).max, dtype=np.int64)
    hi = np.full(k, np.iinfo(np.int64).min, dtype=np.int64)
    total = np.zeros(k, dtype=np.int64)
    sumsq = np.zeros(k, dtype=np.int64)
    int_moments_into(x, lo, hi, total, sumsq)
    return lo, hi, total, sumsq


def int_moments_into(x: _Arr, lo: _Arr, hi: _Arr, total: _Arr, sumsq: _Arr) -> None:
    """:func:`int_moments` of ``x`` folded into running int64 arrays of shape ``(k,)``, in place.

    One compiled call and no new arrays: for callers that reduce many blocks
    of the same positions. The caller keeps the values per position summed
    since ``total`` and ``sumsq`` were zero at 2**31 or fewer.
    """
    if x.dtype == np.bool_:
        x = x.view(np.uint8)
    x = np.ascontiguousarray(x)  # the vector loop reads rows as contiguous runs
    _int_rows(x, lo, hi, total, sumsq)


# Reassociation lets LLVM sum in vector lanes; NaN stays honoured (no "nnan"), so the
# test that skips NaN is kept.
_LANE_SUMS = {"reassoc", "nsz", "contract"}


@numba.njit(nogil=True, cache=True, fastmath=_LANE_SUMS)
def _squared_deviations(row: Any, mu: float) -> float:  # pragma: no cover
    d2 = 0.0
    for i in range(row.shape[0]):
        v = np.float64(row[i])
        d = v - mu
        d2 += d * d if v == v else 0.0
    return d2


@numba.njit(nogil=True, cache=True)
def _float_rows(
    x: Any, count: Any, total: Any, mean: Any, m2: Any, lo: Any, hi: Any
) -> None:  # pragma: no cover
    a_n, k_n, b_n = x.shape
    full = b_n - b_n % LANES
    step = MAX_VECTORS * LANES
    for a in range(a_n):
        for k in range(k_n):
            row = x[a, k]
            n = 0
            s = 0.0
            mn = np.inf
            mx = -np.inf
            for i in range(0, full, step):
                part = vector_float_sums(row, i, (min(i + step, full) - i) // LANES)
                n += part[0]
                s += part[1]
                mn = min(mn, part[2])
                mx = max(mx, part[3])
            for i in range(full, b_n):
                v = np.float64(row[i])
                if v == v:  # not NaN
                    n += 1
                    s += v
                    mn = min(mn, v)
                    mx = max(mx, v)
            if n == 0:
                continue
            mu = s / n
            d2 = _squared_deviations(row, mu)
            # Chan et al.: fold this row's (n, mu, d2) into the running position.
            n_a = count[k]
            n_t = n_a + n
            delta = mu - mean[k]
            frac = n / n_t
            mean[k] += delta * frac
            m2[k] += d2 + delta * delta * n_a * frac
            count[k] = n_t
            total[k] += s
            lo[k] = min(lo[k], mn)
            hi[k] = max(hi[k], mx)


def float_moments(x: _Arr) -> tuple[_Arr, _Arr, _Arr, _Arr, _Arr, _Arr]:
    """Count, sum, mean, squared deviations, minimum and maximum over axes 0 and 2, NaN skipped.

    Args:
        x: An ``(a, k, b)`` array of float32 or float64.

    Returns:
        ``count`` (int64) and ``total, mean, m2, minimum, maximum`` (float64), each
        of shape ``(k,)``; ``minimum`` and ``maximum`` are NaN where ``count`` is 0.
    """
    k = x.shape[1]
    count = np.zeros(k, dtype=np.int64)
    total = np.zeros(k)
    mean = np.zeros(k)
    m2 = np.zeros(k)
    lo = np.full(k, np.inf)
    hi = np.full(k, -np.inf)
    float_moments_into(x, count, total, mean, m2, lo, hi)
    empty = count == 0
    lo[empty] = np.nan
    hi[empty] = np.nan
    return count, total, mean, m2, lo, hi


def float_moments_into(
    x: _Arr, count: _Arr, total: _Arr, mean: _Arr, m2: _Arr, lo: _Arr, hi: _Arr
) -> None:
    """:func:`float_moments` of ``x`` merged into running arrays of shape ``(k,)``, in place.

    Each row is merged with the formulas of Chan et al.; ``lo`` and ``hi``
    start at +inf and -inf (and stay there where nothing was counted). One
    compiled call and no new arrays.
    """
    x = np.ascontiguousarray(x)  # the vector loop reads rows as contiguous runs
    _float_rows(x, count, total, mean, m2, lo, hi)
