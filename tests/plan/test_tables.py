"""plan_box_tables against a brute-force plan of the same boxes, for generated grids and indexes."""

from __future__ import annotations

import itertools
import math
from collections import Counter

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from lsio.plan import grid_shape, plan_box_tables, touched_shards


@st.composite
def layouts(draw: st.DrawFn) -> dict:
    ndim = draw(st.integers(1, 3))
    chunk = tuple(draw(st.integers(1, 4)) for _ in range(ndim))
    sharded = draw(st.booleans())
    per_shard = tuple(draw(st.integers(1, 3)) for _ in range(ndim)) if sharded else None
    shape = tuple(draw(st.integers(1, 14)) for _ in range(ndim))
    boxes = []
    for _ in range(draw(st.integers(1, 4))):
        box = []
        for n in shape:
            lo = draw(st.integers(0, n - 1))
            box.append((lo, draw(st.integers(lo + 1, n))))
        boxes.append(box)
    return {
        "chunk": chunk,
        "per_shard": per_shard,
        "shape": shape,
        "boxes": boxes,
        "seed": draw(st.integers(0, 2**16)),
        "gap": draw(st.sampled_from([0, 8, 1 << 16])),
        "read_chunks": draw(st.integers(1, 5)),
        "batches": draw(st.integers(1, 6)),
        "group_chunks": draw(st.integers(1, 8)),
        "min_group_chunks": draw(st.integers(0, 8)),
    }


def _expected_pieces(
    boxes: list[list[tuple[int, int]]], chunk: tuple[int, ...], item: int
) -> Counter[tuple[int, ...]]:
    """(chunk coords, dst, src, extents) of every piece, by brute force."""
    cstr = [math.prod(chunk[d + 1 :]) * item for d in range(len(chunk))]
    out: Counter[tuple[int, ...]] = Counter()
    for j, box in enumerate(boxes):
        oshape = [hi - lo for lo, hi in box]
        ostr = [math.prod(oshape[d + 1 :]) * item for d in range(len(box))]
        ranges = [range(lo // c, (hi - 1) // c + 1) for (lo, hi), c in zip(box, chunk, strict=True)]
        for coords in itertools.product(*ranges):
            dst, src, ext = j * 1_000_000, 0, []
            for d, ((lo, hi), c, k) in enumerate(zip(box, chunk, coords, strict=True)):
                a, b = max(lo, k * c), min(hi, (k + 1) * c)
                dst += (a - lo) * ostr[d]
                src += (a - k * c) * cstr[d]
                ext.append(b - a)
            out[(*coords, dst, src, *ext)] += 1
    return out


@settings(max_examples=200, deadline=None)
@given(layouts())
def test_tables_match_a_brute_force_plan(lay: dict) -> None:
    chunk, per_shard, shape = lay["chunk"], lay["per_shard"], lay["shape"]
    boxes, item, ndim = lay["boxes"], 2, len(chunk)
    grid = grid_shape(shape, chunk)
    bounds = np.array(boxes, dtype=np.int64)
    base = np.arange(len(boxes), dtype=np.int64) * 1_000_000
    ostr = np.zeros((len(boxes), ndim), dtype=np.int64)
    for j, box in enumerate(boxes):
        oshape = [hi - lo for lo, hi in box]
        ostr[j] = [math.prod(oshape[d + 1 :]) * item for d in range(ndim)]
    rng = np.random.default_rng(lay["seed"])
    nbytes = math.prod(chunk) * item
    stored: dict[tuple[int, ...], tuple[int, int]] = {}  # read-grid coords -> offset, size
    if per_shard is None:
        shard_ids = np.zeros(0, dtype=np.int64)
        index = np.zeros((0, 1, 2), dtype=np.int64)
    else:
        span = np.multiply(chunk, per_shard)
        shard_grid = grid_shape(shape, tuple(int(s) for s in span))
        shard_ids = touched_shards(bounds, span, np.asarray(shard_grid, dtype=np.int64))
        inner = math.prod(per_shard)
        # Random offsets and sizes, some chunks missing, one shard in three missing.
        index = np.full((len(shard_ids), inner, 2), -1, dtype=np.int64)
        for s, sid in enumerate(shard_ids.tolist()):
            if rng.random() < 0.33:
                continue
            sc = np.unravel_index(sid, shard_grid)
            for i in range(inner):
                if rng.random() < 0.2:
                    continue
                off, size = int(rng.integers(0, 200)), int(rng.integers(1, 40))
                index[s, i] = (off, size)
                ic = np.unravel_index(i, per_shard)
                c = tuple(int(a) * p + int(b) for a, p, b in zip(sc, per_shard, ic, strict=True))
                stored[c] = (off, size)
    plan = plan_box_tables(
        bounds,
        base,
        ostr,
        chunk,
        grid,
        item,
        per_shard=per_shard,
        shard_ids=shard_ids,
        index=index,
        gap=lay["gap"],
        read_bytes=lay["read_chunks"] * nbytes,
        batches=lay["batches"],
        group_bytes=lay["group_chunks"] * nbytes,
        min_group_bytes=lay["min_group_chunks"] * nbytes,
    )
    t = plan.tables
    n = len(t.chunks)
    coords = [tuple(c) for c in plan.coords.tolist()]
    assert len(set(coords)) == n  # each chunk once
    # The pieces, with their chunk's coordinates, are exactly the brute-force ones.
    got: Counter[tuple[int, ...]] = Counter()
    for r in range(n):
        for p in range(t.piece_ptr[r], t.piece_ptr[r + 1]):
            row = t.pieces[p].tolist()
            assert row[2 + ndim :] == ostr[row[0] // 1_000_000].tolist()
            got[(*coords[r], *row[: 2 + ndim])] += 1
    assert got == _expected_pieces(boxes, chunk, item)
    # Where each chunk is stored, and the order: absent first, then object and offset.
    offsets, sizes = t.chunks[:, 0].tolist(), t.chunks[:, 1].tolist()
    absent = plan.absent
    for r, c in enumerate(coords):
        if per_shard is None:
            assert (offsets[r], sizes[r]) == (0, 0)
            assert plan.key_of[r] == r
        elif c in stored:
            assert (offsets[r], sizes[r]) == stored[c]
            assert r >= absent
        else:
            assert sizes[r] == -1
            assert r < absent
    order = list(zip(plan.key_of[absent:].tolist(), offsets[absent:], strict=True))
    assert order == sorted(order)
    # A piece decoded into straight is its chunk's, whole and C-contiguous.
    for r in range(n):
        direct = int(t.chunks[r, 2])
        if direct >= 0:
            assert t.piece_ptr[r] <= direct < t.piece_ptr[r + 1]
            row = t.pieces[direct]
            assert row[2 : 2 + ndim].tolist() == list(chunk)
            for d in range(ndim):
                assert chunk[d] == 1 or row[2 + ndim + d] == t.chunk_strides[d]
    # Reads cover the stored chunks in order: one object each, gaps and sizes bounded.
    reads = plan.reads.tolist()
    assert [r[0] for r in reads[:1]] == ([absent] if n > absent else [])
    for (f, s, k, start, end), nxt in itertools.zip_longest(reads, reads[1:]):
        assert f < s <= n
        assert nxt is None or nxt[0] == s
        assert s - f <= lay["read_chunks"] or per_shard is None
        assert set(plan.key_of[f:s].tolist()) == {k}
        if per_shard is None:
            assert s - f == 1
            continue
        assert start == offsets[f]
        assert end == max(o + z for o, z in zip(offsets[f:s], sizes[f:s], strict=True))
        reach = offsets[f] + sizes[f]
        for o, z in zip(offsets[f + 1 : s], sizes[f + 1 : s], strict=True):
            assert o - reach <= lay["gap"]
            reach = max(reach, o + z)
    if reads:
        assert reads[-1][1] == n
    # Groups: contiguous, non-empty, covering every read; a group reaches past
    # its share of the chunks by its last read only.
    groups = plan.groups.tolist()
    assert groups[0] == 0
    assert groups[-1] == len(reads)
    assert all(a < b for a, b in itertools.pairwise(groups))
    present = n - absent
    fewest = max(1, lay["min_group_chunks"])  # chunks a share holds at least
    shares = max(min(lay["batches"], -(-present // fewest)), -(-present // lay["group_chunks"]), 1)
    assert len(groups) - 1 <= shares
    for g, (a, b) in enumerate(itertools.pairwise(groups)):
        if b - a >= 2:
            done = reads[b - 2][1] - absent  # chunks done before the group's last read
            assert done * shares < (g + 1) * present
