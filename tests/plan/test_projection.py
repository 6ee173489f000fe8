"""Selections projected onto a chunk grid reassemble exactly what NumPy selects (no IO)."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from lsio import SelectionError
from lsio.plan import (
    Progression,
    copy_from_chunk,
    grid_shape,
    normalize_basic,
    normalize_orthogonal,
    normalize_vectorized,
    project,
)
from tests.strategies import (
    basic_selections,
    chunkings,
    orthogonal_selections,
    shapes,
    vectorized_selections,
)
from tests.zarr.test_differential import numpy_oindex


def _assemble(full: np.ndarray, chunks: tuple[int, ...], sel: Any) -> np.ndarray:
    """Run the projection against chunks cut from ``full``; every chunk visited once."""
    out = np.full(sel.shape, -1, dtype=full.dtype)
    seen = set()
    for p in project(sel, chunks):
        assert p.coords not in seen
        seen.add(p.coords)
        assert all(
            0 <= c < g for c, g in zip(p.coords, grid_shape(full.shape, chunks), strict=True)
        )
        region = tuple(slice(c * k, (c + 1) * k) for c, k in zip(p.coords, chunks, strict=True))
        chunk = np.full(chunks, -2, dtype=full.dtype)  # padding must never be selected
        block = full[region]
        chunk[tuple(slice(0, n) for n in block.shape)] = block
        copy_from_chunk(chunk, p, out)
    return out


def _data(shape: tuple[int, ...]) -> np.ndarray:
    return np.arange(int(np.prod(shape)), dtype=np.int64).reshape(shape)


@given(data=st.data())
def test_basic(data: st.DataObject) -> None:
    shape = data.draw(shapes())
    chunks = data.draw(chunkings(shape))
    selection = data.draw(basic_selections(shape))
    full = _data(shape)
    np.testing.assert_array_equal(
        _assemble(full, chunks, normalize_basic(selection, shape)), full[selection]
    )


@given(data=st.data())
def test_orthogonal(data: st.DataObject) -> None:
    shape = data.draw(shapes())
    chunks = data.draw(chunkings(shape))
    selection = data.draw(orthogonal_selections(shape))
    full = _data(shape)
    got = _assemble(full, chunks, normalize_orthogonal(selection, shape))
    np.testing.assert_array_equal(got, numpy_oindex(full, selection))


@given(data=st.data())
def test_vectorized(data: st.DataObject) -> None:
    shape = data.draw(shapes(max_ndim=3).filter(lambda s: len(s) > 0))
    chunks = data.draw(chunkings(shape))
    selection = data.draw(vectorized_selections(shape))
    full = _data(shape)
    got = _assemble(full, chunks, normalize_vectorized(selection, shape))
    np.testing.assert_array_equal(got, full[selection])


def test_vectorized_boolean_mask() -> None:
    full = _data((5, 6))
    mask = full % 3 == 0
    np.testing.assert_array_equal(
        _assemble(full, (2, 4), normalize_vectorized(mask, full.shape)), full[mask]
    )


def test_mask_in_a_tuple_and_0d_integer_arrays() -> None:
    full = _data((5, 6))
    mask = full % 4 == 1
    np.testing.assert_array_equal(
        _assemble(full, (2, 4), normalize_vectorized((mask,), full.shape)), full[mask]
    )
    sel = normalize_basic((np.array(2), slice(1, 3)), full.shape)  # 0-d: an int, as in NumPy
    np.testing.assert_array_equal(_assemble(full, (2, 4), sel), full[np.array(2), 1:3])
    assert sel.shape == (2,)


def test_negative_step_progression() -> None:
    sel = normalize_basic(slice(None, None, -3), (10,))
    assert sel.dims == (Progression(9, -3, 4),)
    parts = list(project(sel, (4,)))
    assert [p.coords for p in parts] == [(2,), (1,), (0,)]
    # A chunk slice ending before the chunk's first element must not wrap to -1.
    assert parts[-1].chunk_sel[0] == slice(3, None, -3)  # positions 3 and 0


@pytest.mark.parametrize(
    ("selection", "message"),
    [
        ((0, 0, 0), "too many indices"),
        ((..., ...), "single ellipsis"),
        ("x", "unsupported index 'x'"),
        ((1.5,), "unsupported index 1.5"),
        ((slice(0, 1, 0),), "slice step cannot be zero"),
    ],
)
def test_bad_basic_selections(selection: Any, message: str) -> None:
    with pytest.raises(SelectionError, match=message):
        normalize_basic(selection, (3, 4))


def test_bad_vectorized_selections() -> None:
    with pytest.raises(SelectionError, match="one index per dimension"):
        normalize_vectorized(([0, 1],), (3, 4))
    with pytest.raises(SelectionError, match="cannot be broadcast"):
        normalize_vectorized(([0, 1], [0, 1, 2]), (3, 4))
    with pytest.raises(SelectionError, match="integer arrays only"):
        normalize_vectorized((slice(None), [0]), (3, 4))
    with pytest.raises(SelectionError, match="out of bounds"):
        normalize_vectorized(([0, 3], [0, 0]), (3, 4))
