"""``affine_into`` equals NumPy's two-pass ``(x - offset) / scale``, bit for bit."""

from __future__ import annotations

from typing import Any

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from lsio.compute import affine_into

_DTYPES = [
    "bool",
    "int8",
    "uint8",
    "int16",
    "uint16",
    "int32",
    "uint32",
    "int64",
    "uint64",
    "float32",
    "float64",
]


def _reference(x: np.ndarray, offset: np.ndarray, scale: np.ndarray, axis: int) -> np.ndarray:
    shape = [1] * x.ndim
    shape[axis] = -1
    out = np.empty(x.shape, dtype=offset.dtype)
    with np.errstate(all="ignore"):  # float64 beyond float32's range: inf, as compiled
        np.subtract(x, offset.reshape(shape), out=out, casting="unsafe")
        out /= scale.reshape(shape)
    return out


@st.composite
def _cases(draw: st.DrawFn) -> tuple[np.ndarray, np.ndarray, np.ndarray, int]:
    dtype = np.dtype(draw(st.sampled_from(_DTYPES)))
    out_dtype = np.dtype(draw(st.sampled_from(["float32", "float64"])))
    shape = draw(hnp.array_shapes(min_dims=1, max_dims=4, min_side=0, max_side=7))
    x = draw(hnp.arrays(dtype, shape))
    if draw(st.booleans()):  # a non-contiguous view: the NumPy path
        x = x.T
    axis = draw(st.integers(0, x.ndim - 1))
    n = x.shape[axis]
    finite = st.floats(-1e4, 1e4, width=8 * out_dtype.itemsize)
    offset = draw(hnp.arrays(out_dtype, n, elements=finite))
    scale = draw(hnp.arrays(out_dtype, n, elements=st.floats(0.125, 1e3, width=32)))
    return x, offset, scale, axis


@settings(max_examples=300, deadline=None)
@given(_cases())
def test_equals_numpy(case: tuple[np.ndarray, np.ndarray, np.ndarray, int]) -> None:
    x, offset, scale, axis = case
    out = np.full(x.shape, 7, dtype=offset.dtype)
    affine_into(x, out, offset, scale, axis)
    np.testing.assert_array_equal(out, _reference(x, offset, scale, axis))


def test_batch_of_crops() -> None:
    """The loader's layout: (batch, time, channel, y, x) along channel, long rows."""
    rng = np.random.default_rng(1)
    x: Any = rng.integers(-3000, 3000, (3, 2, 11, 64, 65)).astype(np.int16)
    offset = rng.normal(100, 30, 11).astype(np.float32)
    scale = rng.uniform(1, 40, 11).astype(np.float32)
    out = np.empty(x.shape, np.float32)
    affine_into(x, out, offset, scale, 2)
    np.testing.assert_array_equal(out, _reference(x, offset, scale, 2))
