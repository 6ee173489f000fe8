"""Boxes of chunks reassemble exactly what NumPy selects, each chunk once (no IO)."""

from __future__ import annotations

import numpy as np
from hypothesis import assume, given
from hypothesis import strategies as st

from lsio.plan import (
    Box,
    box_chunk_coords,
    grid_shape,
    normalize_basic,
    normalize_orthogonal,
    plan_boxes,
)
from tests.strategies import basic_selections, chunkings, shapes


def _assemble(
    data: np.ndarray, chunks: tuple[int, ...], boxes: list[Box], out_shape: tuple[int, ...]
) -> np.ndarray:
    """Copy each box's chunks into a new output the way the engine does, checking coverage."""
    out = np.zeros(out_shape, dtype=data.dtype)
    written = np.zeros(out_shape, dtype=np.int64)
    padded_shape = tuple(g * c for g, c in zip(grid_shape(data.shape, chunks), chunks, strict=True))
    padded = np.zeros(padded_shape, dtype=data.dtype)
    padded[tuple(slice(0, s) for s in data.shape)] = data
    for box in boxes:
        for coords in box_chunk_coords(box).tolist():
            chunk = padded[
                tuple(slice(c * k, (c + 1) * k) for c, k in zip(coords, chunks, strict=True))
            ]
            part = chunk[tuple(slice(lo, hi) for lo, hi in zip(box.lo, box.hi, strict=True))]
            where: list[slice] = []
            for d, o in enumerate(box.out_start):
                if o is None:
                    continue
                j = coords[d] - box.first[d]
                n = box.hi[d] - box.lo[d]
                where.append(slice(o + j * n, o + (j + 1) * n))
            kept = tuple(s for s, o in zip(part.shape, box.out_start, strict=True) if o is not None)
            out[tuple(where)] = part.reshape(kept)
            written[tuple(where)] += 1
    assert np.all(written == 1)  # every output element exactly once
    return out


@given(data=st.data())
def test_boxes_reassemble_basic_selections(data: st.DataObject) -> None:
    shape = data.draw(shapes())
    assume(shape)  # 0-d arrays take the general path
    chunks = data.draw(chunkings(shape))
    per_shard = tuple(data.draw(st.integers(1, 3)) for _ in shape)
    most = data.draw(st.integers(1, 9))
    sel = normalize_basic(data.draw(basic_selections(shape)), shape)
    boxes = plan_boxes(sel, chunks, per_shard, most)
    if boxes is None:  # steps other than 1
        return
    arr = np.arange(int(np.prod(shape)), dtype=np.int64).reshape(shape)
    expected = arr[tuple(_as_numpy(d) for d in sel.dims)]
    np.testing.assert_array_equal(_assemble(arr, chunks, boxes, sel.shape), expected)
    for box in boxes:
        assert box.size <= most
        first_shard = [f // s for f, s in zip(box.first, per_shard, strict=True)]
        last_shard = [
            (f + n - 1) // s for f, n, s in zip(box.first, box.counts, per_shard, strict=True)
        ]
        assert first_shard == last_shard  # a box lies in one shard


def _as_numpy(d: object) -> object:
    from lsio.plan import IntIndex, Progression

    if isinstance(d, IntIndex):
        return d.index
    assert isinstance(d, Progression)
    if d.count == 0:  # its start may be -1 (a reversed empty slice), which NumPy reads as the last
        return slice(0, 0)
    stop = d.start + d.step * d.count
    return slice(d.start, None if stop < 0 else stop, d.step)


def test_whole_chunk_runs_make_one_box_per_shard() -> None:
    sel = normalize_basic((slice(0, 4), 0, slice(None)), (8, 3, 32))
    boxes = plan_boxes(sel, (1, 1, 4), (4, 1, 4), 64)
    assert boxes is not None
    assert [(b.first, b.counts) for b in boxes] == [((0, 0, 0), (4, 1, 4)), ((0, 0, 4), (4, 1, 4))]
    assert all(b.full((1, 1, 4)) for b in boxes)


def test_partial_head_and_tail_are_boxes_of_their_own() -> None:
    sel = normalize_basic(slice(3, 13), (16,))
    boxes = plan_boxes(sel, (4,), (4,), 16)
    assert boxes is not None
    assert [(b.first, b.counts, b.lo, b.hi, b.out_start) for b in boxes] == [
        ((0,), (1,), (3,), (4,), (0,)),
        ((1,), (2,), (0,), (4,), (1,)),
        ((3,), (1,), (0,), (1,), (9,)),
    ]


def test_array_indexes_and_steps_are_left_to_the_general_planner() -> None:
    assert plan_boxes(normalize_orthogonal(([1, 3],), (8,)), (2,), (1,), 8) is None
    assert plan_boxes(normalize_basic(slice(0, 8, 2), (8,)), (2,), (1,), 8) is None
    assert plan_boxes(normalize_basic(slice(4, 4), (8,)), (2,), (1,), 8) == []
