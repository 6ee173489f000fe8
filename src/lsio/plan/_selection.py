"""Normalising user selections (NumPy-style indexes) against an array shape.

Three selection kinds, as in zarr-python: *basic* (integers, slices, Ellipsis),
*orthogonal* (each dimension indexed independently, integer arrays and boolean
masks allowed) and *vectorised* (integer arrays broadcast together to points, or
one boolean mask of the array's shape). Everything here is pure and checks
bounds, so that later stages only see valid, non-negative positions.
"""

from __future__ import annotations

import operator
from dataclasses import dataclass
from typing import Any, TypeAlias

import numpy as np
import numpy.typing as npt

from lsio._errors import InvalidArgumentError, SelectionError

__all__ = [
    "int_shape",
    "DimSelection",
    "IntIndex",
    "OrthogonalSelection",
    "Progression",
    "VectorSelection",
    "normalize_basic",
    "normalize_orthogonal",
    "normalize_vectorized",
]


@dataclass(frozen=True, slots=True)
class IntIndex:
    """A single position; the dimension is dropped from the result."""

    index: int


@dataclass(frozen=True, slots=True)
class Progression:
    """Positions ``start + k * step`` for ``k`` in ``range(count)``; ``step != 0``."""

    start: int
    step: int
    count: int

    def positions(self) -> npt.NDArray[np.int64]:
        """All positions as an array (ascending or descending)."""
        return self.start + self.step * np.arange(self.count, dtype=np.int64)


DimSelection: TypeAlias = IntIndex | Progression | npt.NDArray[np.int64]


@dataclass(frozen=True, slots=True)
class OrthogonalSelection:
    """One entry per array dimension; integer arrays are 1-d, valid positions.

    Basic selections are orthogonal selections without arrays.
    """

    dims: tuple[DimSelection, ...]

    @property
    def shape(self) -> tuple[int, ...]:
        """Shape of the result."""
        out: list[int] = []
        for d in self.dims:
            if isinstance(d, Progression):
                out.append(d.count)
            elif isinstance(d, np.ndarray):
                out.append(int(d.size))
        return tuple(out)


@dataclass(frozen=True, slots=True)
class VectorSelection:
    """Points: ``coords[:, p]`` are the coordinates of point ``p``.

    Attributes:
        coords: ``(ndim, npoints)`` valid positions.
        shape: Shape of the result; ``prod(shape) == npoints``.
    """

    coords: npt.NDArray[np.int64]
    shape: tuple[int, ...]


def _is_int(x: Any) -> bool:
    if isinstance(x, np.ndarray):  # a 0-d integer array is an integer, as in NumPy
        return x.ndim == 0 and x.dtype.kind in "iu"
    return isinstance(x, int | np.integer) and not isinstance(x, bool | np.bool_)


def _int_index(x: Any, size: int, axis: int) -> IntIndex:
    i = operator.index(x)
    if not -size <= i < size:
        raise SelectionError(f"index {i} is out of bounds for axis {axis} with size {size}")
    return IntIndex(i + size if i < 0 else i)


def _progression(s: slice, size: int, axis: int) -> Progression:
    try:
        start, stop, step = s.indices(size)
    except (TypeError, ValueError) as exc:
        raise SelectionError(f"invalid slice {s} for axis {axis}: {exc}") from exc
    return Progression(start, step, len(range(start, stop, step)))


def _index_array(x: Any, size: int, axis: int) -> npt.NDArray[np.int64]:
    arr = np.asarray(x)
    if arr.dtype == np.bool_:
        if arr.shape != (size,):
            raise SelectionError(
                f"boolean index of shape {arr.shape} does not match axis {axis} of size {size}"
            )
        return np.flatnonzero(arr).astype(np.int64)
    if arr.size == 0 and arr.dtype.kind not in "iu":
        arr = arr.astype(np.int64)
    if arr.dtype.kind not in "iu":
        raise SelectionError(
            f"index for axis {axis} has dtype {arr.dtype}; use integers or booleans"
        )
    if arr.ndim != 1:
        raise SelectionError(f"orthogonal index for axis {axis} must be 1-d, got {arr.ndim}-d")
    arr = arr.astype(np.int64, copy=False)
    if arr.size and (arr.min() < -size or arr.max() >= size):
        bad = arr[(arr < -size) | (arr >= size)][0]
        raise SelectionError(f"index {bad} is out of bounds for axis {axis} with size {size}")
    return np.where(arr < 0, arr + size, arr)


def _expand(selection: Any, ndim: int) -> list[Any]:
    """Turn a selection into one entry per dimension, expanding ``...``."""
    items = list(selection) if isinstance(selection, tuple) else [selection]
    if any(x is None for x in items):
        raise SelectionError("np.newaxis (None) is not supported in lsio selections")
    n_ellipsis = sum(1 for x in items if x is Ellipsis)
    if n_ellipsis > 1:
        raise SelectionError("an index can only have a single ellipsis ('...')")
    if n_ellipsis:
        pos = next(i for i, x in enumerate(items) if x is Ellipsis)
        fill = ndim - (len(items) - 1)
        if fill < 0:
            raise SelectionError(
                f"too many indices for array: array is {ndim}-dimensional, "
                f"but {len(items) - 1} were indexed"
            )
        items[pos : pos + 1] = [slice(None)] * fill
    if len(items) > ndim:
        raise SelectionError(
            f"too many indices for array: array is {ndim}-dimensional, but {len(items)} were indexed"
        )
    return items + [slice(None)] * (ndim - len(items))


def normalize_basic(selection: Any, shape: tuple[int, ...]) -> OrthogonalSelection:
    """Normalise a basic selection (NumPy ``a[...]`` semantics).

    A single integer array or boolean mask among the entries is accepted too,
    since NumPy gives the same result as an orthogonal index then.

    Raises:
        SelectionError: Out of bounds, wrong types, or several array indexes
            (their NumPy meaning differs; use ``oindex`` or ``vindex``).
    """
    if isinstance(selection, np.ndarray) and selection.dtype == np.bool_ and selection.ndim > 1:
        raise SelectionError(
            "a multi-dimensional boolean mask is a vectorised selection; use a.vindex[mask]"
        )
    items = _expand(selection, len(shape))
    arrays = sum(1 for x in items if not (_is_int(x) or isinstance(x, slice)))
    if arrays > 1:
        raise SelectionError(
            "more than one array index in a basic selection; "
            "use a.oindex[...] (orthogonal) or a.vindex[...] (vectorised)"
        )
    return _orthogonal(items, shape)


def normalize_orthogonal(selection: Any, shape: tuple[int, ...]) -> OrthogonalSelection:
    """Normalise an orthogonal selection: each dimension indexed independently."""
    return _orthogonal(_expand(selection, len(shape)), shape)


def _orthogonal(items: list[Any], shape: tuple[int, ...]) -> OrthogonalSelection:
    dims: list[DimSelection] = []
    for axis, (x, size) in enumerate(zip(items, shape, strict=True)):
        if _is_int(x):
            dims.append(_int_index(x, size, axis))
        elif isinstance(x, slice):
            dims.append(_progression(x, size, axis))
        elif isinstance(x, list | tuple | np.ndarray):
            dims.append(_index_array(x, size, axis))
        else:
            raise SelectionError(
                f"unsupported index {x!r} of type {type(x).__name__} for axis {axis}; "
                "use integers, slices, integer arrays or boolean masks"
            )
    return OrthogonalSelection(tuple(dims))


def normalize_vectorized(selection: Any, shape: tuple[int, ...]) -> VectorSelection:
    """Normalise a vectorised (point) selection.

    Accepts one integer array (or integer) per dimension, broadcast together, or a
    single boolean mask of the array's shape.
    """
    ndim = len(shape)
    if isinstance(selection, tuple) and len(selection) == 1:
        only = np.asarray(selection[0])
        if only.dtype == np.bool_:  # (mask,), as zarr-python takes it
            selection = only
    elif isinstance(selection, list):
        only = np.asarray(selection)
        if only.dtype == np.bool_:  # a mask as a list, as zarr-python takes it
            selection = only
    if isinstance(selection, np.ndarray) and selection.dtype == np.bool_:
        if selection.shape != shape:
            raise SelectionError(
                f"boolean mask of shape {selection.shape} does not match array shape {shape}"
            )
        coords = np.stack(np.nonzero(selection)).astype(np.int64).reshape(ndim, -1)
        return VectorSelection(coords, (coords.shape[1],))
    items = list(selection) if isinstance(selection, tuple) else [selection]
    if len(items) != ndim:
        raise SelectionError(
            f"vectorised selection needs one index per dimension ({ndim}), got {len(items)}"
        )
    arrays: list[npt.NDArray[np.int64]] = []
    for axis, x in enumerate(items):
        if isinstance(x, slice) or x is Ellipsis or x is None:
            raise SelectionError(
                f"vectorised selection takes integer arrays only; axis {axis} got {x!r}"
            )
        arr = np.asarray(x)
        if arr.dtype == np.bool_:
            raise SelectionError(
                "boolean arrays in a vectorised selection must be a single mask of the array's shape"
            )
        if arr.size == 0 and arr.dtype.kind not in "iu":
            arr = arr.astype(np.int64)
        if arr.dtype.kind not in "iu":
            raise SelectionError(f"index for axis {axis} has dtype {arr.dtype}; use integers")
        arrays.append(arr.astype(np.int64, copy=False))
    try:
        bshape = np.broadcast_shapes(*(a.shape for a in arrays))
    except ValueError as exc:
        raise SelectionError(f"vectorised indexes cannot be broadcast together: {exc}") from exc
    coords = np.empty((ndim, int(np.prod(bshape, dtype=np.int64))), dtype=np.int64)
    for axis, (arr, size) in enumerate(zip(arrays, shape, strict=True)):
        flat = np.broadcast_to(arr, bshape).reshape(-1)
        if flat.size and (flat.min() < -size or flat.max() >= size):
            bad = flat[(flat < -size) | (flat >= size)][0]
            raise SelectionError(f"index {bad} is out of bounds for axis {axis} with size {size}")
        coords[axis] = np.where(flat < 0, flat + size, flat)
    return VectorSelection(coords, tuple(bshape))


def int_shape(value: Any, name: str, ndim: int | None, positive: bool) -> tuple[int, ...]:
    """``value`` (an int, or a sequence of ints) as a shape; ``name`` is what the errors call it.

    Raises:
        InvalidArgumentError: Not ints (bools and floats are refused), another
            number of dimensions than ``ndim`` (when given), or sides below 1
            (``positive``) or 0.
    """
    items = (value,) if isinstance(value, int | np.integer) else value
    try:
        out = tuple(int(v) for v in items)
        if any(
            isinstance(v, bool | np.bool_) or not isinstance(v, int | np.integer) for v in items
        ):
            raise TypeError
    except (TypeError, ValueError):
        raise InvalidArgumentError(f"{name} must be a sequence of ints, got {value!r}") from None
    if ndim is not None and len(out) != ndim:
        raise InvalidArgumentError(f"{name} {out} has {len(out)} dimensions, the array has {ndim}")
    if any(v < (1 if positive else 0) for v in out):
        raise InvalidArgumentError(f"{name} {out} must be {'positive' if positive else '>= 0'}")
    return out
