"""Statistics of many blocks of the same positions, kept in flat arrays between merges.

A whole-array pass reduces a thousand 4 MB batches per 4 GB. Building a
:class:`~lsio.compute.Moments` per batch (exact Python integers for integer
sums, a NumPy merge) cost ~80 us of Python per batch, while the other worker
waited for the GIL. Here each block is folded into running arrays by one
compiled call, and a :class:`~lsio.compute.Moments` is made only when the
caller takes the statistics:

- integers up to 16 bits: int64 minimum, maximum, sum and sum of squares,
  taken before a position has more values than int64 squares allow (2**31);
- float32 and float64: count, float64 sum, mean and squared deviations merged
  row by row with the formulas of Chan et al. (the kernel's own merge), NaN
  skipped.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import numpy.typing as npt

from lsio.compute._kernels import float_moments_into, int_moments_into
from lsio.compute._moments import FLOAT, SMALL_INT, Moments, moments_kind, small_int_moments

__all__ = ["RunningMoments", "running_moments"]

_Arr = npt.NDArray[Any]

# Values per position that int64 sums of squares of 16-bit values take without
# overflow (each square is under 2**32).
INT_LIMIT = 2**31


class RunningMoments:
    """Running statistics of ``(a, k, b)`` blocks over their first and last axes.

    Use :func:`running_moments`.

    Attributes:
        n: Values per position folded in since the statistics were last taken.
    """

    def __init__(self, dtype: np.dtype[Any], k: int) -> None:
        self.dtype = dtype
        self.k = k
        self.n = 0

    def room(self, values: int) -> bool:
        """Whether ``values`` more per position can be folded in before :meth:`take`."""
        return True

    def add(self, x: _Arr) -> None:
        """Fold in an ``(a, k, b)`` block; :meth:`room` must allow ``a * b`` values."""
        raise NotImplementedError

    def take(self) -> Moments:
        """The statistics folded in so far, as :class:`Moments`; starts again from none."""
        raise NotImplementedError


class _Ints(RunningMoments):
    def __init__(self, dtype: np.dtype[Any], k: int) -> None:
        super().__init__(dtype, k)
        self.lo = np.empty(k, dtype=np.int64)
        self.hi = np.empty(k, dtype=np.int64)
        self.total = np.empty(k, dtype=np.int64)
        self.sumsq = np.empty(k, dtype=np.int64)
        self._reset()

    def _reset(self) -> None:
        self.lo.fill(np.iinfo(np.int64).max)
        self.hi.fill(np.iinfo(np.int64).min)
        self.total.fill(0)
        self.sumsq.fill(0)
        self.n = 0

    def room(self, values: int) -> bool:
        return self.n + values <= INT_LIMIT

    def add(self, x: _Arr) -> None:
        int_moments_into(x, self.lo, self.hi, self.total, self.sumsq)
        self.n += x.shape[0] * x.shape[2]

    def take(self) -> Moments:
        found = small_int_moments(self.dtype, self.n, self.lo, self.hi, self.total, self.sumsq)
        self._reset()
        return found


class _Floats(RunningMoments):
    def __init__(self, dtype: np.dtype[Any], k: int) -> None:
        super().__init__(dtype, k)
        self.count = np.empty(k, dtype=np.int64)
        self.total = np.empty(k)
        self.mean = np.empty(k)
        self.m2 = np.empty(k)
        self.lo = np.empty(k)
        self.hi = np.empty(k)
        self._reset()

    def _reset(self) -> None:
        for a in (self.count, self.total, self.mean, self.m2):
            a.fill(0)
        self.lo.fill(np.inf)
        self.hi.fill(-np.inf)
        self.n = 0

    def add(self, x: _Arr) -> None:
        float_moments_into(x, self.count, self.total, self.mean, self.m2, self.lo, self.hi)
        self.n += x.shape[0] * x.shape[2]

    def take(self) -> Moments:
        empty = self.count == 0
        found = Moments(
            FLOAT,
            self.count.copy(),
            self.n - self.count,
            self.total.copy(),
            None,
            self.mean.copy(),
            self.m2.copy(),
            np.where(empty, np.nan, self.lo),
            np.where(empty, np.nan, self.hi),
        )
        self._reset()
        return found


def running_moments(dtype: np.dtype[Any], k: int) -> RunningMoments | None:
    """Running statistics of ``k`` positions of ``dtype``; ``None`` where blocks must be reduced on their own.

    Integers up to 16 bits (booleans too), float32 and float64 run; wider
    integers (their exact sums need Python integers as they go) and float16
    do not.
    """
    kind = moments_kind(dtype)
    if kind == SMALL_INT:
        return _Ints(dtype, k)
    if kind == FLOAT and dtype.itemsize >= 4:
        return _Floats(dtype, k)
    return None
