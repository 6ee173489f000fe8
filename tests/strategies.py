"""Hypothesis strategies shared by the test suite: shapes, chunkings, dtypes, selections."""

from __future__ import annotations

from typing import Any

import numpy as np
from hypothesis import strategies as st

DTYPES = [
    "bool",
    "int8",
    "int16",
    "int32",
    "int64",
    "uint8",
    "uint16",
    "uint32",
    "uint64",
    "float16",
    "float32",
    "float64",
    "complex64",
    "complex128",
]


@st.composite
def shapes(draw: st.DrawFn, max_ndim: int = 4, max_side: int = 11) -> tuple[int, ...]:
    """Shapes including 0-d and zero-length dimensions."""
    ndim = draw(st.integers(0, max_ndim))
    return tuple(draw(st.lists(st.integers(0, max_side), min_size=ndim, max_size=ndim)))


@st.composite
def chunkings(draw: st.DrawFn, shape: tuple[int, ...]) -> tuple[int, ...]:
    """Chunk shapes: each side 1..(side+2), so edge chunks are often partial."""
    return tuple(draw(st.integers(1, max(1, s + 2))) for s in shape)


def values(
    draw: st.DrawFn, shape: tuple[int, ...], dtype: np.dtype[Any], nan: bool = True
) -> np.ndarray:
    """Random contents (with NaNs for floats when ``nan``)."""
    seed = draw(st.integers(0, 2**32 - 1))
    rng = np.random.default_rng(seed)
    if dtype.kind == "b":
        arr = rng.integers(0, 2, size=shape).astype(bool)
    elif dtype.kind in "iu":
        info = np.iinfo(dtype)
        arr = rng.integers(info.min, info.max, size=shape, dtype=dtype, endpoint=True)
    elif dtype.kind == "f":
        arr = (rng.standard_normal(size=shape) * 100).astype(dtype)
    else:
        arr = (rng.standard_normal(size=shape) + 1j * rng.standard_normal(size=shape)).astype(dtype)
    arr = np.array(arr, dtype=dtype)
    if nan and dtype.kind in "fc" and arr.size:
        arr.reshape(-1)[rng.integers(0, arr.size, size=max(1, arr.size // 10))] = np.nan
    return arr


def fill_values(dtype: np.dtype[Any]) -> st.SearchStrategy[Any]:
    """Fill values valid for ``dtype``, including NaN and infinities for floats."""
    if dtype.kind == "b":
        return st.booleans()
    if dtype.kind in "iu":
        info = np.iinfo(dtype)
        return st.integers(int(info.min), int(info.max))
    special = st.sampled_from([np.nan, np.inf, -np.inf, 0.0, -1.5])
    if dtype.kind == "f":
        return st.one_of(special, st.floats(-1000, 1000, width=16))
    return st.builds(complex, special, st.sampled_from([0.0, 2.5, np.nan]))


def _dim_basic(draw: st.DrawFn, size: int) -> Any:
    kind = draw(st.sampled_from(["int", "slice", "full"] if size else ["slice", "full"]))
    if kind == "int":
        return draw(st.integers(-size, size - 1))
    if kind == "full":
        return slice(None)
    start = draw(st.none() | st.integers(-size - 2, size + 2))
    stop = draw(st.none() | st.integers(-size - 2, size + 2))
    step = draw(st.none() | st.integers(1, 4) | st.integers(-4, -1))
    return slice(start, stop, step)


@st.composite
def basic_selections(draw: st.DrawFn, shape: tuple[int, ...], negative_steps: bool = True) -> Any:
    """Tuples of ints and slices, sometimes shortened or with an Ellipsis."""
    sel = [_dim_basic(draw, s) for s in shape]
    if not negative_steps:
        sel = [
            slice(x.start, x.stop, abs(x.step)) if isinstance(x, slice) and x.step else x
            for x in sel
        ]
    form = draw(st.sampled_from(["tuple", "short", "ellipsis"]))
    if form == "short" and sel:
        sel = sel[: draw(st.integers(0, len(sel)))]
    elif form == "ellipsis":
        pos = draw(st.integers(0, len(sel)))
        cut = draw(st.integers(pos, len(sel)))
        sel = [*sel[:pos], Ellipsis, *sel[cut:]]
    return tuple(sel)


@st.composite
def orthogonal_selections(draw: st.DrawFn, shape: tuple[int, ...]) -> tuple[Any, ...]:
    """Per-dimension ints, positive-step slices, integer arrays (unsorted, repeats) and masks."""
    sel: list[Any] = []
    for size in shape:
        kinds = ["slice", "mask"] + (["int", "array"] if size else [])
        kind = draw(st.sampled_from(kinds))
        if kind == "int":
            sel.append(draw(st.integers(-size, size - 1)))
        elif kind == "slice":
            start = draw(st.none() | st.integers(0, size))
            sel.append(
                slice(start, draw(st.none() | st.integers(0, size + 1)), draw(st.integers(1, 3)))
            )
        elif kind == "array":
            sel.append(
                np.array(draw(st.lists(st.integers(-size, size - 1), min_size=1, max_size=6)))
            )
        else:
            sel.append(
                np.array(draw(st.lists(st.booleans(), min_size=size, max_size=size)), dtype=bool)
            )
    return tuple(sel)


@st.composite
def vectorized_selections(draw: st.DrawFn, shape: tuple[int, ...]) -> tuple[Any, ...]:
    """One integer array per dimension, broadcast to a common (possibly 2-d) shape."""
    if 0 in shape:
        return tuple(np.zeros(0, dtype=np.int64) for _ in shape)
    n = draw(st.integers(1, 8))
    two_d = draw(st.booleans())
    sel = []
    for size in shape:
        idx = np.array(draw(st.lists(st.integers(-size, size - 1), min_size=n, max_size=n)))
        sel.append(idx.reshape(1, n) if two_d and draw(st.booleans()) else idx)
    return tuple(sel)
