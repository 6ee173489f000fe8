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

import numba
import numpy as np
import numpy.typing as npt

from lsio.compute._cdecode import decoded_within
from lsio.compute._kernels import _int_rows, float_moments_into, int_moments_into
from lsio.compute._moments import FLOAT, SMALL_INT, Moments, moments_kind, small_int_moments
from lsio.io import libc_extern

__all__ = ["RunningMoments", "has_running_moments", "running_moments"]

_Arr = npt.NDArray[Any]

# Values per position that int64 sums of squares of 16-bit values take without
# overflow (each square is under 2**32).
INT_LIMIT = 2**31


_memcpy = libc_extern("memcpy", 3)


@numba.njit(nogil=True, cache=True)
def _fold_ints(
    code: int,
    ctx: int,
    data: int,
    base: int,
    length: int,
    offsets: Any,
    sizes: Any,
    chunk: Any,
    lo: Any,
    hi: Any,
    total: Any,
    sumsq: Any,
) -> int:  # pragma: no cover - compiled
    hdr = np.empty(4, dtype=np.uint32)
    raw = chunk.reshape(-1).view(np.uint8)
    dst = raw.ctypes.data
    nbytes = raw.shape[0]
    for c in range(offsets.shape[0]):
        src = decoded_within(code, ctx, hdr, dst, nbytes, data, base, length, offsets[c], sizes[c])
        if src == 0:
            return c
        if src != dst:  # stored as it is
            _memcpy(dst, src, nbytes)
        _int_rows(chunk, lo, hi, total, sumsq)
    return -1


class RunningMoments:
    """Running statistics of ``(a, k, b)`` blocks over their first and last axes.

    Use :func:`running_moments`.

    Attributes:
        n: Values per position folded in since the statistics were last taken.
    """

    folds = False
    """Whether :meth:`fold_stored` decodes and folds chunks one by one."""

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

    def fold_stored(
        self, code: int, ctx: int, data: int, base: int, length: int, offsets: _Arr, sizes: _Arr,
        chunk: _Arr,
    ) -> int:  # fmt: skip
        """Decode stored chunks one by one into ``chunk`` and fold each in while it is in cache.

        Args:
            code: The compressor's code (:attr:`lsio.compute.CDecoder.code`).
            ctx: The calling thread's decoder context.
            data: Address of the bytes read.
            base: The object offset of the first byte read.
            length: How many bytes were read (none past them is read).
            offsets: Each chunk's object offset (int64).
            sizes: Each chunk's stored size (int64).
            chunk: An ``(a, k, b)`` C-contiguous array of the dtype (``uint8``
                for booleans): the scratch each chunk decodes into, viewed as
                the reduction wants it.

        Returns:
            ``-1``, or the first chunk that did not decode or is cut off (those
            before it are folded in). :meth:`room` must allow ``a * b`` values
            per chunk.

        Raises:
            NotImplementedError: Where :attr:`folds` is false (floats: their
                batches reduce as fast, 0.975 measured folded one by one).
        """
        raise NotImplementedError("only small integers fold chunk by chunk")


class _Ints(RunningMoments):
    folds = True  # 1.041x whole-array int16 statistics against reducing 4 MB batches

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

    def fold_stored(
        self, code: int, ctx: int, data: int, base: int, length: int, offsets: _Arr, sizes: _Arr,
        chunk: _Arr,
    ) -> int:  # fmt: skip
        bad: int = _fold_ints(
            code, ctx, data, base, length, offsets, sizes, chunk,
            self.lo, self.hi, self.total, self.sumsq,
        )  # fmt: skip
        done = offsets.shape[0] if bad < 0 else bad
        self.n += done * chunk.shape[0] * chunk.shape[2]
        return bad


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


def _kind(dtype: np.dtype[Any]) -> type[RunningMoments] | None:
    kind = moments_kind(dtype)
    if kind == SMALL_INT:
        return _Ints
    if kind == FLOAT and dtype.itemsize >= 4:
        return _Floats
    return None


def running_moments(dtype: np.dtype[Any], k: int) -> RunningMoments | None:
    """Running statistics of ``k`` positions of ``dtype``; ``None`` where blocks must be reduced on their own.

    Integers up to 16 bits (booleans too), float32 and float64 run; wider
    integers (their exact sums need Python integers as they go) and float16
    do not.
    """
    made = _kind(dtype)
    return None if made is None else made(dtype, k)


def has_running_moments(dtype: np.dtype[Any]) -> bool:
    """Whether :func:`running_moments` runs for ``dtype``."""
    return _kind(dtype) is not None
