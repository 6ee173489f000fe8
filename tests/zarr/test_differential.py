"""lsio reads exactly what zarr-python reads, for stores zarr-python wrote."""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

import lsio
import zarr
from tests.strategies import basic_selections, orthogonal_selections, vectorized_selections
from tests.zarr.zarr_stores import StoreSpec, store_specs, write_store


def assert_same(actual: Any, expected: Any) -> None:
    actual, expected = np.asarray(actual), np.asarray(expected)
    assert actual.shape == expected.shape
    # lsio returns native byte order; zarr-python keeps a v2 store's byte order.
    assert actual.dtype == expected.dtype.newbyteorder("=")
    np.testing.assert_array_equal(actual, expected, strict=False)


def _open_both(spec: StoreSpec, root: Path) -> tuple[lsio.Array, Any]:
    path = root / "a.zarr"
    write_store(spec, path)
    return lsio.open_array(path), zarr.open_array(str(path), mode="r")


@given(spec=store_specs(), data=st.data())
def test_basic_selection_matches_zarr(spec: StoreSpec, data: st.DataObject) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        a, z = _open_both(spec, Path(tmp))
        assert a.shape == z.shape
        assert a.chunks == z.chunks
        assert a.shards == z.shards
        full = z[...]
        assert_same(np.asarray(a), full)
        for _ in range(3):
            sel = data.draw(basic_selections(spec.shape))
            # zarr-python rejects negative steps; NumPy on its full read is the oracle then.
            assert_same(a[sel], full[sel])


def numpy_oindex(full: np.ndarray, sel: tuple[Any, ...]) -> np.ndarray:
    """Orthogonal indexing done with NumPy, one axis at a time."""
    basic = tuple(slice(None) if isinstance(s, np.ndarray) else s for s in sel)
    result = full[basic]
    axis = 0
    for s in sel:
        if isinstance(s, int | np.integer):
            continue
        if isinstance(s, np.ndarray):
            idx = np.flatnonzero(s) if s.dtype == bool else s
            result = np.take(result, idx, axis=axis)
        axis += 1
    return result


@given(spec=store_specs(), data=st.data())
def test_orthogonal_selection_matches_zarr(spec: StoreSpec, data: st.DataObject) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        a, z = _open_both(spec, Path(tmp))
        full = z[...]
        for _ in range(3):
            sel = data.draw(orthogonal_selections(spec.shape))
            result = a.oindex[sel]
            assert_same(result, numpy_oindex(full, sel))
            if 0 not in spec.shape:  # zarr-python fails on empty masks of empty axes
                assert_same(result, z.oindex[sel])


@given(spec=store_specs(), data=st.data())
def test_vectorized_selection_matches_zarr(spec: StoreSpec, data: st.DataObject) -> None:
    if not spec.shape:
        return
    with tempfile.TemporaryDirectory() as tmp:
        a, z = _open_both(spec, Path(tmp))
        full = z[...]
        for _ in range(3):
            sel = data.draw(vectorized_selections(spec.shape))
            expected = full[sel]
            assert_same(a.vindex[sel], expected)
            if 0 not in spec.shape:
                assert_same(a.vindex[sel], z.vindex[sel])


@given(spec=store_specs(zarr_format=3, sharded=True), data=st.data())
def test_sharded_reads_match_zarr(spec: StoreSpec, data: st.DataObject) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        a, z = _open_both(spec, Path(tmp))
        full = z[...]
        assert_same(a[...], full)
        sel = data.draw(basic_selections(spec.shape, negative_steps=False))
        assert_same(a[sel], z[sel])


@pytest.mark.parametrize("threads", [1, 3])
@given(spec=store_specs(), data=st.data())
def test_out_buffer_and_threads(threads: int, spec: StoreSpec, data: st.DataObject) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "a.zarr"
        write_store(spec, path)
        a = lsio.open_array(path, config=lsio.ReadConfig(threads=threads))
        z = zarr.open_array(str(path), mode="r")
        sel = data.draw(basic_selections(spec.shape))
        expected = z[...][sel]
        out = np.empty(np.shape(expected), dtype=a.dtype)
        assert a.read(sel, out=out) is out
        assert_same(out, expected)


@pytest.mark.parametrize("shape", [(7,), (3, 7)])
def test_vindex_takes_a_mask_as_a_list(tmp_path: Path, shape: tuple[int, ...]) -> None:
    z = zarr.create_array(
        str(tmp_path / "a.zarr"), shape=shape, chunks=(2,) * len(shape), dtype="i2"
    )
    z[...] = np.arange(np.prod(shape), dtype="i2").reshape(shape)
    mask = (np.arange(np.prod(shape)).reshape(shape) % 3 == 0).tolist()
    a = lsio.open_array(tmp_path / "a.zarr")
    assert_same(a.vindex[mask], z.vindex[mask])
    assert_same(a.vindex[(mask,)], z.vindex[np.asarray(mask)])
