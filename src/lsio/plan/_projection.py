"""Projecting normalised selections onto a regular chunk grid.

For every chunk a selection touches, a :class:`ChunkProjection` says which
elements of the chunk are wanted and where they go in the output. The work per
dimension is vectorised with NumPy; the per-chunk product is plain data.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any, TypeAlias

import numpy as np
import numpy.typing as npt

from lsio.plan._selection import IntIndex, OrthogonalSelection, Progression, VectorSelection

__all__ = [
    "ChunkProjection",
    "project_dims",
    "copy_from_chunk",
    "fill_projection",
    "grid_shape",
    "project",
]

ChunkIndex: TypeAlias = int | slice | npt.NDArray[np.int64]
OutIndex: TypeAlias = slice | npt.NDArray[np.int64]


@dataclass(frozen=True, slots=True)
class ChunkProjection:
    """The part of one chunk that a selection needs.

    Attributes:
        coords: Chunk coordinates in the grid.
        chunk_sel: Orthogonal: one int/slice/int-array per chunk dimension.
            Vectorised: one int-array of point positions per chunk dimension.
        out_sel: Orthogonal: one slice/int-array per kept output dimension.
            Vectorised: a single int-array of positions in the flattened output.
        vectorized: Which of the two layouts above applies.
    """

    coords: tuple[int, ...]
    chunk_sel: tuple[ChunkIndex, ...]
    out_sel: tuple[OutIndex, ...]
    vectorized: bool = False


def grid_shape(shape: tuple[int, ...], chunks: tuple[int, ...]) -> tuple[int, ...]:
    """Number of chunks along each dimension."""
    return tuple(math.ceil(s / c) for s, c in zip(shape, chunks, strict=True))


_DimPart: TypeAlias = tuple[int, ChunkIndex, OutIndex | None]


def _project_dim(sel: Any, chunk: int) -> list[_DimPart]:
    if isinstance(sel, IntIndex):
        return [(sel.index // chunk, sel.index % chunk, None)]
    if isinstance(sel, Progression):
        return _project_progression(sel, chunk)
    return _project_array(sel, chunk)


def _project_progression(sel: Progression, chunk: int) -> list[_DimPart]:
    if sel.count == 0:
        return []
    if sel.step == 1:
        first, last = sel.start // chunk, (sel.start + sel.count - 1) // chunk
        parts: list[_DimPart] = []
        for c in range(first, last + 1):
            lo = max(sel.start, c * chunk)
            hi = min(sel.start + sel.count, (c + 1) * chunk)
            parts.append(
                (c, slice(lo - c * chunk, hi - c * chunk), slice(lo - sel.start, hi - sel.start))
            )
        return parts
    pos = sel.positions()
    cid = pos // chunk
    bounds = np.concatenate(([0], np.flatnonzero(np.diff(cid)) + 1, [pos.size])).tolist()
    parts = []
    for k0, k1 in itertools.pairwise(bounds):
        c = int(cid[k0])
        first = int(pos[k0]) - c * chunk
        last = int(pos[k1 - 1]) - c * chunk
        stop = last + (1 if sel.step > 0 else -1)
        parts.append((c, slice(first, None if stop < 0 else stop, sel.step), slice(k0, k1)))
    return parts


def _project_array(arr: npt.NDArray[np.int64], chunk: int) -> list[_DimPart]:
    if arr.size == 0:
        return []
    cid = arr // chunk
    if arr.size == 1 or bool(np.all(cid[1:] >= cid[:-1])):
        order = None
        sorted_cid = cid
    else:
        order = np.argsort(cid, kind="stable")
        sorted_cid = cid[order]
    bounds = np.concatenate(([0], np.flatnonzero(np.diff(sorted_cid)) + 1, [arr.size])).tolist()
    parts: list[_DimPart] = []
    for k0, k1 in itertools.pairwise(bounds):
        c = int(sorted_cid[k0])
        if order is None:
            idx = arr[k0:k1] - c * chunk
            out: OutIndex = slice(k0, k1)
        else:
            positions = order[k0:k1]
            idx = arr[positions] - c * chunk
            out = positions
        parts.append((c, idx, out))
    return parts


def project_dims(
    selection: OrthogonalSelection, chunks: tuple[int, ...]
) -> list[list[tuple[int, ChunkIndex, OutIndex | None]]]:
    """Per dimension: ``(chunk index, selection in the chunk, selection in the output)``.

    The output selection is ``None`` for a dimension indexed by an integer. The
    chunks a selection touches are the product of these lists.
    """
    return [_project_dim(sel, c) for sel, c in zip(selection.dims, chunks, strict=True)]


def project(
    selection: OrthogonalSelection | VectorSelection, chunks: tuple[int, ...]
) -> Iterator[ChunkProjection]:
    """Yield the projection of ``selection`` onto each chunk it touches.

    Args:
        selection: A normalised selection (all positions valid).
        chunks: The chunk shape of the grid.

    Yields:
        One projection per touched chunk, each chunk once.
    """
    if isinstance(selection, VectorSelection):
        yield from _project_points(selection, chunks)
        return
    for combo in itertools.product(*project_dims(selection, chunks)):
        yield ChunkProjection(
            coords=tuple(p[0] for p in combo),
            chunk_sel=tuple(p[1] for p in combo),
            out_sel=tuple(p[2] for p in combo if p[2] is not None),
        )


def _project_points(
    selection: VectorSelection, chunks: tuple[int, ...]
) -> Iterator[ChunkProjection]:
    coords = selection.coords
    if coords.shape[1] == 0:
        return
    chunk_arr = np.asarray(chunks, dtype=np.int64).reshape(-1, 1)
    ccoords = coords // chunk_arr
    if len(chunks) == 0:
        yield ChunkProjection((), (), (np.arange(coords.shape[1]),), vectorized=True)
        return
    dims = tuple(int(ccoords[d].max()) + 1 for d in range(len(chunks)))
    linear = np.ravel_multi_index(tuple(ccoords), dims)
    order = np.argsort(linear, kind="stable")
    sorted_lin = linear[order]
    bounds = np.concatenate(([0], np.flatnonzero(np.diff(sorted_lin)) + 1, [order.size])).tolist()
    for k0, k1 in itertools.pairwise(bounds):
        positions = order[k0:k1]
        c = tuple(int(v) for v in ccoords[:, positions[0]])
        local = coords[:, positions] - chunk_arr * np.asarray(c, dtype=np.int64).reshape(-1, 1)
        yield ChunkProjection(c, tuple(local), (positions,), vectorized=True)


def _orthogonal_take(chunk: np.ndarray, sel: tuple[ChunkIndex, ...]) -> np.ndarray:
    """``chunk[sel]`` with orthogonal (not NumPy-vectorised) meaning for arrays."""
    basic = tuple(slice(None) if isinstance(s, np.ndarray) else s for s in sel)
    view: np.ndarray = chunk[basic]
    kept = [s for s in sel if not isinstance(s, int)]
    arrays = [i for i, s in enumerate(kept) if isinstance(s, np.ndarray)]
    if not arrays:
        return view
    if len(arrays) == 1:
        i = arrays[0]
        taken: np.ndarray = view[(slice(None),) * i + (kept[i],)]
        return taken
    grid = np.ix_(
        *(
            s if isinstance(s, np.ndarray) else np.arange(n)
            for s, n in zip(kept, view.shape, strict=True)
        )
    )
    taken = view[grid]
    return taken


def _out_index(out_shape: tuple[int, ...], sel: tuple[OutIndex, ...]) -> Any:
    arrays = [i for i, s in enumerate(sel) if isinstance(s, np.ndarray)]
    if len(arrays) <= 1:
        return sel
    return np.ix_(
        *(
            s if isinstance(s, np.ndarray) else np.arange(*s.indices(n))
            for s, n in zip(sel, out_shape, strict=True)
        )
    )


def copy_from_chunk(chunk: np.ndarray, proj: ChunkProjection, out: np.ndarray) -> None:
    """Copy the selected part of a decoded ``chunk`` into ``out``."""
    if proj.vectorized:
        out.reshape(-1)[proj.out_sel[0]] = chunk[proj.chunk_sel]
    else:
        out[_out_index(out.shape, proj.out_sel)] = _orthogonal_take(chunk, proj.chunk_sel)


def fill_projection(value: Any, proj: ChunkProjection, out: np.ndarray) -> None:
    """Set the elements of ``out`` that ``proj`` covers to ``value`` (a missing chunk)."""
    if proj.vectorized:
        out.reshape(-1)[proj.out_sel[0]] = value
    else:
        out[_out_index(out.shape, proj.out_sel)] = value
