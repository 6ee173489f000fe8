"""``(x - offset) / scale`` per kept position, cast to a float dtype, in one compiled pass.

NumPy needs two passes for it (a subtraction that casts, then an in-place
division) over an output twice the size of 16-bit input: ~24 ms for a batch of
32 satellite crops (46 MB of int16) on one core here, more than reading and
decoding the batch takes on both. The compiled loop reads each input value
once and writes each output value once (~4x less time, ``BENCHMARKS.md``),
and releases the GIL.

Results equal NumPy's ``(x - offset) / scale`` computed the way
:class:`lsio.ml.Normalize` always has: the subtraction in the type NumPy
promotes the input and offset to, cast to the output dtype, then divided in the
output dtype.
"""

from __future__ import annotations

from typing import Any

import numba
import numpy as np
import numpy.typing as npt

from lsio.compute._kernels import as_akb

__all__ = ["affine_into"]

_Arr = npt.NDArray[Any]


@numba.njit(nogil=True, cache=True)
def _akb_affine(x: Any, out: Any, offset: Any, scale: Any) -> None:  # pragma: no cover
    a_n, k_n, b_n = x.shape
    for a in range(a_n):
        for k in range(k_n):
            m = offset[k]
            s = scale[k]
            src = x[a, k]
            dst = out[a, k]
            for b in range(b_n):
                # Two stores, one element: the first casts the difference to the output
                # dtype (as NumPy's subtract with out= does), then the division in it.
                dst[b] = src[b] - m
                dst[b] = dst[b] / s


def affine_into(x: _Arr, out: _Arr, offset: _Arr, scale: _Arr, axis: int) -> None:
    """Write ``(x - offset) / scale`` into ``out``, ``offset`` and ``scale`` along ``axis``.

    Args:
        x: Input of any real dtype.
        out: Output of ``x``'s shape and a float dtype (e.g. float32).
        offset: 1-D, ``out``'s dtype, of length ``x.shape[axis]``.
        scale: Like ``offset``.
        axis: The axis of ``x`` that ``offset`` and ``scale`` run along.

    Compiled when ``x`` and ``out`` are C-contiguous (once per pair of dtypes,
    about a second, cached on disk by Numba); otherwise NumPy does the same
    arithmetic in two passes. Bool and complex inputs take the NumPy path.
    Values beyond the output dtype's range become infinite, without a warning.
    """
    shape = [1] * x.ndim
    shape[axis] = -1
    others = tuple(d for d in range(x.ndim) if d != axis)
    xs = as_akb(x, others) if x.dtype.kind in "iuf" and x.size else None
    outs = as_akb(out, others) if xs is not None else None
    if xs is None or outs is None or xs.shape[1] != offset.size:
        with np.errstate(all="ignore"):  # overflow gives inf, NaN stays NaN: as compiled
            np.subtract(x, offset.reshape(shape), out=out, casting="unsafe")
            out /= scale.reshape(shape)
        return
    _akb_affine(xs, outs, offset, scale)
