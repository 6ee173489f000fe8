"""The compiled reductions against NumPy, for every dtype and reducible layout."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from lsio.compute._kernels import as_akb, float_moments, int_moments
from lsio.compute._moments import reduce_block
from lsio.compute._simd import LANES, MAX_VECTORS

_SMALL_INTS = ["bool", "int8", "uint8", "int16", "uint16"]


@st.composite
def _blocks(draw: st.DrawFn, dtypes: list[str]) -> tuple[np.ndarray, tuple[int, ...]]:
    dtype = np.dtype(draw(st.sampled_from(dtypes)))
    shape = draw(hnp.array_shapes(min_dims=1, max_dims=4, min_side=1, max_side=6))
    if dtype.kind == "f":
        elements = st.floats(-1e6, 1e6, width=8 * dtype.itemsize) | st.just(float("nan"))
        x = draw(hnp.arrays(dtype, shape, elements=elements))
    else:
        x = draw(hnp.arrays(dtype, shape))
    axis = tuple(sorted(draw(st.sets(st.integers(0, len(shape) - 1), min_size=1))))
    return x, axis


def _assert_int_moments_exact(x: np.ndarray) -> None:
    """int_moments of an (a, k, b) block equal NumPy's on int64 (min/max where b > 0)."""
    lo, hi, total, sumsq = int_moments(x)
    wide = x.astype(np.int64)
    if x.shape[2]:
        np.testing.assert_array_equal(lo, wide.min(axis=(0, 2)))
        np.testing.assert_array_equal(hi, wide.max(axis=(0, 2)))
    np.testing.assert_array_equal(total, wide.sum(axis=(0, 2)))
    np.testing.assert_array_equal(sumsq, (wide * wide).sum(axis=(0, 2)))


def test_as_akb_views_adjacent_kept_axes_without_copying() -> None:
    x = np.arange(2 * 3 * 4 * 5).reshape(2, 3, 4, 5)
    akb = as_akb(x, (0, 3))
    assert akb is not None
    assert akb.shape == (2, 12, 5)
    assert np.shares_memory(akb, x)
    assert as_akb(x, (1,)) is None  # kept 0, 2, 3: 0 is apart from the others
    assert as_akb(x, (0, 1)) is not None  # kept 2, 3 at the end: b == 1
    assert as_akb(x, (1, 3)) is None  # kept 0 and 2 are apart
    assert as_akb(x[:, :, :, ::2], (0, 3)) is None  # a copy would be needed
    one = np.zeros((4, 1, 3, 1, 5))
    assert as_akb(one, (0, 1, 3, 4)) is not None  # length-1 axes are ignored


@settings(max_examples=150, deadline=None)
@given(_blocks(_SMALL_INTS))
def test_int_moments_equal_numpy(block: tuple[np.ndarray, tuple[int, ...]]) -> None:
    x, axis = block
    akb = as_akb(x, axis)
    if akb is None:
        return
    _assert_int_moments_exact(akb)


@pytest.mark.parametrize("dtype", _SMALL_INTS)
@pytest.mark.parametrize(
    "length", [0, 1, LANES - 1, LANES, 5 * LANES + 3, MAX_VECTORS * LANES + 37]
)
def test_int_moments_exact_at_extremes_tails_and_long_rows(dtype: str, length: int) -> None:
    # Rows of extreme values stress the vector loop's 32-bit lanes (sums and paired
    # squares), the scalar tail and the cut of rows longer than one vector call.
    rng = np.random.default_rng(length)
    info = np.iinfo(np.uint8 if dtype == "bool" else dtype)
    x = rng.integers(info.min, info.max, size=(2, 3, length), endpoint=True).astype(dtype)
    if length:
        x[0, 0] = info.min
        x[1, 1] = info.max
        x[1, 2, ::2] = info.min
    _assert_int_moments_exact(x)


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("length", [1, LANES - 1, LANES, 5 * LANES + 3, MAX_VECTORS * LANES + 37])
def test_float_moments_at_nan_inf_tails_and_long_rows(dtype: str, length: int) -> None:
    # The vector loop: NaN skipped in every lane, rows wholly NaN, infinities,
    # the scalar tail and rows longer than one vector call.
    rng = np.random.default_rng(length)
    x = rng.normal(280.0, 10.0, size=(2, 4, length)).astype(dtype)
    x[0, 0, ::3] = np.nan
    x[:, 1] = np.nan
    x[1, 2, -1] = np.inf
    x[0, 3, 0] = -np.inf
    count, total, mean, m2, lo, hi = float_moments(x)
    wide = x.astype(np.float64)
    ok = ~np.isnan(wide)
    np.testing.assert_array_equal(count, ok.sum(axis=(0, 2)))
    with np.errstate(invalid="ignore"):
        np.testing.assert_allclose(total, np.nansum(wide, axis=(0, 2)), rtol=1e-12)
    np.testing.assert_array_equal(lo[[0, 2, 3]], np.nanmin(wide[:, [0, 2, 3]], axis=(0, 2)))
    np.testing.assert_array_equal(hi[[0, 2, 3]], np.nanmax(wide[:, [0, 2, 3]], axis=(0, 2)))
    assert np.isnan(lo[1])
    assert np.isnan(hi[1])
    assert count[1] == 0
    np.testing.assert_allclose(mean[0], np.nanmean(wide[:, 0]), rtol=1e-12)
    np.testing.assert_allclose(m2[0] / count[0], np.nanvar(wide[:, 0]), rtol=1e-9)
    # An infinity leaves no finite variance, as in NumPy.
    assert np.isnan(m2[2])
    assert np.isnan(m2[3])


def test_int_moments_take_non_contiguous_blocks() -> None:
    x = np.arange(4 * 3 * 40, dtype=np.int16).reshape(4, 3, 40)[::2, :, 1:]
    _assert_int_moments_exact(x)


@settings(max_examples=150, deadline=None)
@given(_blocks(["float32", "float64"]))
def test_float_moments_equal_numpy(block: tuple[np.ndarray, tuple[int, ...]]) -> None:
    x, axis = block
    akb = as_akb(x, axis)
    if akb is None:
        return
    count, total, mean, m2, lo, hi = float_moments(akb)
    rows = np.moveaxis(akb, 1, 0).reshape(akb.shape[1], -1).astype(np.float64)
    for j, row in enumerate(rows):
        v = row[~np.isnan(row)]
        assert count[j] == v.size
        if v.size == 0:
            assert np.isnan(lo[j])
            assert np.isnan(hi[j])
            continue
        assert lo[j] == v.min()
        assert hi[j] == v.max()
        np.testing.assert_allclose(total[j], v.sum(), rtol=1e-12, atol=1e-6)
        np.testing.assert_allclose(mean[j], v.mean(), rtol=1e-12, atol=1e-9)
        np.testing.assert_allclose(m2[j], ((v - v.mean()) ** 2).sum(), rtol=1e-9, atol=1e-6)


@pytest.mark.parametrize("dtype", ["int16", "uint16", "float32"])
def test_reduce_block_same_on_fused_and_numpy_layouts(dtype: str) -> None:
    # Kept axes 1 and 3 are apart (NumPy path); the same data transposed keeps
    # them adjacent (compiled path). Both must give the same statistics.
    rng = np.random.default_rng(0)
    x = (rng.standard_normal((3, 4, 5, 2)) * 1000).astype(dtype)
    apart = reduce_block(x, (0, 2)).finish()
    adjacent = reduce_block(np.ascontiguousarray(x.transpose(0, 2, 1, 3)), (0, 1)).finish()
    assert apart.keys() == adjacent.keys()
    for name, value in apart.items():
        np.testing.assert_allclose(
            np.asarray(value, dtype=np.float64),
            np.asarray(adjacent[name], dtype=np.float64),
            rtol=1e-12,
            err_msg=name,
        )
