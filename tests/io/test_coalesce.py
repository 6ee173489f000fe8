"""Properties of range coalescing (pure, no IO)."""

from __future__ import annotations

import itertools

import pytest
from hypothesis import given
from hypothesis import strategies as st

from lsio.io import coalesce_ranges

ranges = st.lists(
    st.tuples(st.integers(0, 10_000), st.integers(0, 500)).map(lambda t: (t[0], t[0] + t[1])),
    max_size=60,
)


@given(ranges=ranges, gap=st.integers(0, 1000), size=st.integers(1, 5000))
def test_every_range_served_once_and_covered(
    ranges: list[tuple[int, int]], gap: int, size: int
) -> None:
    reads = coalesce_ranges(
        [s for s, _ in ranges], [e for _, e in ranges], max_gap=gap, max_size=size
    )
    members = sorted(m for r in reads for m in r.members)
    assert members == list(range(len(ranges)))
    for r in reads:
        for m in r.members:
            s, e = ranges[m]
            assert r.start <= s
            assert e <= r.end
        # A read is as tight as its members allow.
        assert r.start == min(ranges[m][0] for m in r.members)
        assert r.end == max(ranges[m][1] for m in r.members)
        # Only reads of one member may exceed the size bound.
        assert r.end - r.start <= size or len(r.members) == 1 or _one_dense_run(r, ranges, size)
    starts = [r.start for r in reads]
    assert starts == sorted(starts)


def _one_dense_run(read: object, ranges: list[tuple[int, int]], size: int) -> bool:
    # A member longer than max_size can make a merged read longer too.
    return any(ranges[m][1] - ranges[m][0] > size for m in read.members)  # type: ignore[attr-defined]


@given(ranges=ranges, gap=st.integers(0, 1000))
def test_separated_reads_are_farther_apart_than_the_gap(
    ranges: list[tuple[int, int]], gap: int
) -> None:
    reads = coalesce_ranges(
        [s for s, _ in ranges], [e for _, e in ranges], max_gap=gap, max_size=10**9
    )
    for a, b in itertools.pairwise(reads):
        assert b.start - a.end > gap


def test_examples() -> None:
    reads = coalesce_ranges([0, 10, 100, 5], [8, 20, 120, 7], max_gap=5, max_size=1000)
    assert [(r.start, r.end, sorted(r.members)) for r in reads] == [
        (0, 20, [0, 1, 3]),
        (100, 120, [2]),
    ]
    split = coalesce_ranges([0, 10, 20], [10, 20, 30], max_gap=0, max_size=15)
    assert [(r.start, r.end) for r in split] == [(0, 10), (10, 20), (20, 30)]
    assert coalesce_ranges([], [], max_gap=0, max_size=1) == []


def test_invalid_ranges() -> None:
    with pytest.raises(ValueError, match="start <= end"):
        coalesce_ranges([5], [4], max_gap=0, max_size=1)
    with pytest.raises(ValueError, match="max_gap >= 0"):
        coalesce_ranges([0], [1], max_gap=-1, max_size=1)
