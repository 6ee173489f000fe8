"""Partial summary statistics of blocks of data, and their exact or stable merge.

A :class:`Moments` holds, for every kept position (e.g. every channel), the
count, NaN count, sum, minimum, maximum and what the variance needs. Blocks are
reduced right after they are decoded and partials are merged in any order:

- integers up to 16 bits keep exact sums and sums of squares (Python integers at
  the merge, so nothing overflows whatever the dataset size), so mean and
  variance are exact up to the final rounding;
- wider integers keep exact sums and merge mean and squared deviations with the
  formulas of Chan, Golub and LeVeque (1979);
- floats do the same in float64 and skip NaN (counted in ``nan_count``).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from fractions import Fraction
from typing import Any

import numpy as np
import numpy.typing as npt

from lsio.compute._kernels import as_akb, float_moments, int_moments

__all__ = ["Moments", "fill_moments", "moments_kind", "reduce_block", "small_int_moments"]

_Arr = npt.NDArray[Any]

SMALL_INT, WIDE_INT, FLOAT = "small_int", "wide_int", "float"


def moments_kind(dtype: np.dtype[Any]) -> str:
    """How statistics of ``dtype`` are accumulated; raises ``TypeError`` when not ordered."""
    if dtype.kind == "b" or (dtype.kind in "iu" and dtype.itemsize <= 2):
        return SMALL_INT
    if dtype.kind in "iu":
        return WIDE_INT
    if dtype.kind == "f":
        return FLOAT
    raise TypeError(f"statistics need a boolean, integer or real floating dtype, not {dtype}")


@dataclass(slots=True)
class Moments:
    """Partial statistics over ``k`` kept positions (all arrays have shape ``(k,)``).

    Attributes:
        kind: One of ``small_int``, ``wide_int``, ``float`` (see :func:`moments_kind`).
        count: Values that are not NaN (int64).
        nan_count: NaN values (int64; zero for integers).
        total: Sum of the values: Python ints (object array) for integers, float64 for floats.
        sumsq: Sum of squares as Python ints (``small_int`` only, else ``None``).
        mean: Mean of the values counted (float64; ``wide_int`` and ``float``).
        m2: Sum of squared deviations from ``mean`` (float64; ``wide_int`` and ``float``).
        minimum: Smallest value: float64 (NaN where ``count`` is 0) for floats; int64
            (uint64 for unsigned data) for integers.
        maximum: Largest value, like ``minimum``.
    """

    kind: str
    count: _Arr
    nan_count: _Arr
    total: _Arr
    sumsq: _Arr | None
    mean: _Arr
    m2: _Arr
    minimum: _Arr
    maximum: _Arr

    @classmethod
    def empty(cls, dtype: np.dtype[Any], k: int) -> Moments:
        """Statistics of no values of ``dtype``."""
        kind = moments_kind(dtype)
        zeros = np.zeros(k, dtype=np.int64)
        if kind == FLOAT:
            lo, hi = np.full(k, np.nan), np.full(k, np.nan)
        else:
            acc = _extreme_dtype(dtype)
            info = np.iinfo(acc)
            lo, hi = np.full(k, info.max, dtype=acc), np.full(k, info.min, dtype=acc)
        total = _int_objects(zeros) if kind != FLOAT else np.zeros(k)
        return cls(
            kind,
            zeros.copy(),
            zeros.copy(),
            total,
            _int_objects(zeros) if kind == SMALL_INT else None,
            np.zeros(k),
            np.zeros(k),
            lo,
            hi,
        )

    def merge(self, other: Moments, where: Any = slice(None)) -> None:
        """Fold ``other`` into the positions ``where`` of these statistics (in place)."""
        n_a = self.count[where]
        n_b = other.count
        n = n_a + n_b
        self.total[where] = self.total[where] + other.total
        if self.kind == SMALL_INT:
            assert self.sumsq is not None
            assert other.sumsq is not None
            self.sumsq[where] = self.sumsq[where] + other.sumsq
        else:
            mean_a = self.mean[where]
            # Infinite values make inf - inf = NaN here, as in NumPy's own variance.
            with np.errstate(invalid="ignore", divide="ignore", over="ignore"):
                delta = other.mean - mean_a
                frac = np.where(n > 0, n_b / np.maximum(n, 1), 0.0)
                self.mean[where] = mean_a + delta * frac
                self.m2[where] = self.m2[where] + other.m2 + delta * delta * n_a * frac
        self.count[where] = n
        self.nan_count[where] = self.nan_count[where] + other.nan_count
        if self.kind == FLOAT:
            self.minimum[where] = np.fmin(self.minimum[where], other.minimum)
            self.maximum[where] = np.fmax(self.maximum[where], other.maximum)
        else:
            self.minimum[where] = np.minimum(self.minimum[where], other.minimum)
            self.maximum[where] = np.maximum(self.maximum[where], other.maximum)

    def finish(self) -> dict[str, _Arr]:
        """``count, nan_count, sum, mean, var, std, min, max`` as float/int arrays."""
        count = self.count
        with np.errstate(invalid="ignore", divide="ignore"):
            if self.kind == FLOAT:
                total = self.total.astype(np.float64)
                # The sum over the count (not the merged mean): infinities stay infinite.
                mean = np.where(count > 0, total / np.maximum(count, 1), np.nan)
                var = np.where(count > 0, self.m2 / np.maximum(count, 1), np.nan)
            else:
                total = self.total.copy()
                mean = np.array(
                    [_exact_ratio(int(s), int(n)) for s, n in zip(total, count, strict=True)]
                )
                if self.kind == SMALL_INT:
                    assert self.sumsq is not None
                    var = np.array(
                        [
                            _exact_var(int(s), int(q), int(n))
                            for s, q, n in zip(total, self.sumsq, count, strict=False)
                        ]
                    )
                else:
                    var = np.where(count > 0, self.m2 / np.maximum(count, 1), np.nan)
            var = np.maximum(var, 0.0)
        return {
            "count": count.copy(),
            "nan_count": self.nan_count.copy(),
            "sum": total,
            "mean": mean,
            "var": var,
            "std": np.sqrt(var),
            "min": self.minimum.copy(),
            "max": self.maximum.copy(),
        }


def _extreme_dtype(dtype: np.dtype[Any]) -> np.dtype[Any]:
    return np.dtype(np.uint64 if dtype.kind == "u" else np.int64)


def _exact_ratio(s: int, n: int) -> float:
    return float(Fraction(s, n)) if n else math.nan


def _exact_var(s: int, q: int, n: int) -> float:
    if n == 0:
        return math.nan
    return float(Fraction(q * n - s * s, n * n))


def _int_objects(values: _Arr) -> _Arr:
    out = np.empty(values.shape, dtype=object)
    out[...] = [int(v) for v in values.reshape(-1)] if values.ndim else int(values)
    return out


def _exact_sum(x: _Arr, axis: tuple[int, ...], n_per: int) -> _Arr:
    """Exact integer sums over ``axis`` as Python ints (no overflow for any dtype)."""
    if x.dtype.itemsize <= 2:
        # int32 accumulation is twice as fast as int64 and exact while it cannot overflow.
        largest = 2 ** (8 * x.dtype.itemsize - (0 if x.dtype.kind == "u" else 1))
        acc = np.int32 if n_per * largest < 2**31 else np.int64
        return _int_objects(x.sum(axis=axis, dtype=acc).reshape(-1))
    if x.dtype.itemsize < 8:
        return _int_objects(x.sum(axis=axis, dtype=np.int64).reshape(-1))
    # 64-bit: the high and low halves summed separately cannot overflow for < 2**31 values.
    if x.dtype.kind == "u":
        hi = (x >> np.uint64(32)).sum(axis=axis, dtype=np.uint64).reshape(-1)
        lo = (x & np.uint64(0xFFFFFFFF)).sum(axis=axis, dtype=np.uint64).reshape(-1)
    else:
        hi = (x >> 32).sum(axis=axis, dtype=np.int64).reshape(-1)
        lo = (x & 0xFFFFFFFF).sum(axis=axis, dtype=np.int64).reshape(-1)
    return _int_objects(
        np.array([(int(h) << 32) + int(v) for h, v in zip(hi, lo, strict=False)], dtype=object)
    )


def reduce_block(x: _Arr, axis: tuple[int, ...]) -> Moments:
    """Statistics of ``x`` over ``axis``, one entry per position of the other axes (C order).

    ``x`` may be any strided view; it is not modified. Blocks over 2**31
    values per kept position must be split by the caller.
    """
    kind = moments_kind(x.dtype)
    kept = [n for d, n in enumerate(x.shape) if d not in axis]
    k = math.prod(kept)
    n_per = math.prod(x.shape[d] for d in axis)
    if x.size == 0:
        return Moments.empty(x.dtype, k)
    fused = _reduce_fused(x, axis, kind)
    if fused is not None:
        return fused
    if kind == FLOAT:
        return _reduce_float(x, axis, k, n_per)
    count = np.full(k, n_per, dtype=np.int64)
    acc = _extreme_dtype(x.dtype)
    minimum = x.min(axis=axis).reshape(-1).astype(acc)
    maximum = x.max(axis=axis).reshape(-1).astype(acc)
    total = _exact_sum(x, axis, n_per)
    if kind == SMALL_INT:
        # One pass casts and squares (uint16 squares need more than 31 bits).
        wide = np.int64 if x.dtype.itemsize == 2 and x.dtype.kind == "u" else np.int32
        squares = np.square(x, dtype=wide)
        sumsq = _int_objects(squares.sum(axis=axis, dtype=np.int64).reshape(-1))
        zeros = np.zeros(k)
        return Moments(
            kind, count, np.zeros(k, np.int64), total, sumsq, zeros, zeros.copy(), minimum, maximum
        )
    mean = np.array([float(Fraction(int(s), n_per)) for s in total])
    dev = x.astype(np.float64) - mean.reshape(_keepdims_shape(x.shape, axis))
    np.multiply(dev, dev, out=dev)
    m2 = dev.sum(axis=axis).reshape(-1)
    return Moments(kind, count, np.zeros(k, np.int64), total, None, mean, m2, minimum, maximum)


def _reduce_fused(x: _Arr, axis: tuple[int, ...], kind: str) -> Moments | None:
    """The compiled single-pass reduction, where the block's layout allows it."""
    if kind == WIDE_INT or (kind == FLOAT and x.dtype.itemsize < 4):
        return None
    akb = as_akb(x, axis)
    if akb is None:
        return None
    if kind == FLOAT:
        count, total, mean, m2, lo, hi = float_moments(akb)
        return Moments(
            FLOAT, count, akb.shape[0] * akb.shape[2] - count, total, None, mean, m2, lo, hi
        )
    lo, hi, total, sumsq = int_moments(akb)
    return small_int_moments(x.dtype, akb.shape[0] * akb.shape[2], lo, hi, total, sumsq)


def small_int_moments(
    dtype: np.dtype[Any], n: int, lo: _Arr, hi: _Arr, total: _Arr, sumsq: _Arr
) -> Moments:
    """The :class:`Moments` of ``n`` values per position of a small-integer ``dtype``.

    From the int64 minimum, maximum, sum and sum of squares per position (as
    :func:`lsio.compute.int_moments` gives them); the arrays are copied.
    """
    k = lo.shape[0]
    acc = _extreme_dtype(dtype)
    return Moments(
        SMALL_INT,
        np.full(k, n, dtype=np.int64),
        np.zeros(k, dtype=np.int64),
        _int_objects(total),
        _int_objects(sumsq),
        np.zeros(k),
        np.zeros(k),
        lo.astype(acc),
        hi.astype(acc),
    )


def _keepdims_shape(shape: tuple[int, ...], axis: tuple[int, ...]) -> tuple[int, ...]:
    return tuple(1 if d in axis else n for d, n in enumerate(shape))


def _reduce_float(x: _Arr, axis: tuple[int, ...], k: int, n_per: int) -> Moments:
    nan = np.isnan(x)
    nan_count = nan.sum(axis=axis, dtype=np.int64).reshape(-1)
    values = np.where(nan, 0.0, x.astype(np.float64)) if nan_count.any() else x.astype(np.float64)
    count = n_per - nan_count
    total = values.sum(axis=axis).reshape(-1)
    with np.errstate(invalid="ignore", divide="ignore"):
        mean = np.where(count > 0, total / np.maximum(count, 1), 0.0)
    with np.errstate(invalid="ignore", over="ignore"):  # infinities give NaN, like NumPy
        dev = values - mean.reshape(_keepdims_shape(x.shape, axis))
        if nan_count.any():
            dev[nan] = 0.0
        np.multiply(dev, dev, out=dev)
        m2 = dev.sum(axis=axis).reshape(-1)
    minimum = np.fmin.reduce(x, axis=axis).reshape(-1).astype(np.float64)
    maximum = np.fmax.reduce(x, axis=axis).reshape(-1).astype(np.float64)
    return Moments(FLOAT, count, nan_count, total, None, mean, m2, minimum, maximum)


def fill_moments(value: Any, dtype: np.dtype[Any], k: int, n_per: int) -> Moments:
    """Statistics of ``n_per`` copies of ``value`` at each of ``k`` positions (absent chunks)."""
    kind = moments_kind(dtype)
    m = Moments.empty(dtype, k)
    v = np.asarray(value, dtype=dtype)
    if kind == FLOAT and bool(np.isnan(v)):
        m.nan_count[:] = n_per
        return m
    m.count[:] = n_per
    if kind == FLOAT:
        m.minimum[:] = float(v)
        m.maximum[:] = float(v)
        m.total[:] = float(v) * n_per
        m.mean[:] = float(v)
        return m
    iv = int(v)
    m.minimum[:] = iv
    m.maximum[:] = iv
    m.total[:] = [iv * n_per] * k
    if kind == SMALL_INT:
        assert m.sumsq is not None
        m.sumsq[:] = [iv * iv * n_per] * k
    else:
        m.mean[:] = float(iv)
    return m
