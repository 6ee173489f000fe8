"""The sample space: kept cells of classes of starts, and the stored-chunk box test."""

from __future__ import annotations

import itertools

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from lsio.ml._space import SampleSpace, any_stored


@st.composite
def spaces(draw: st.DrawFn) -> tuple[list[np.ndarray], np.ndarray | None]:
    ndim = draw(st.integers(1, 3))
    labels = []
    for _ in range(ndim):
        n = draw(st.integers(1, 7))
        k = draw(st.integers(1, n))
        # Every class in 0..k-1 has a member, in any order.
        lab = np.array(
            draw(
                st.permutations(
                    list(range(k)) + [draw(st.integers(0, k - 1)) for _ in range(n - k)]
                )
            )
        )
        labels.append(lab)
    grid = tuple(int(lab.max()) + 1 for lab in labels)
    keep = None
    if draw(st.booleans()):
        keep = np.array(
            draw(st.lists(st.booleans(), min_size=int(np.prod(grid)), max_size=int(np.prod(grid))))
        ).reshape(grid)
    return labels, keep


@settings(deadline=None)
@given(space=spaces())
def test_ids_number_every_kept_combination_once(
    space: tuple[list[np.ndarray], np.ndarray | None],
) -> None:
    labels, keep = space
    expected = {
        combo
        for combo in itertools.product(*(range(lab.size) for lab in labels))
        if keep is None or keep[tuple(lab[i] for lab, i in zip(labels, combo, strict=True))]
    }
    s = SampleSpace(labels, keep)
    assert s.size == len(expected)
    picked = s.choose(np.arange(s.size))
    got = list(zip(*(p.tolist() for p in picked), strict=True)) if s.size else []
    assert len(got) == len(set(got))
    assert set(got) == expected


def test_one_class_per_dimension_is_c_order() -> None:
    s = SampleSpace([np.zeros(3, dtype=np.int64), np.zeros(4, dtype=np.int64)])
    ids = np.arange(12)
    for got, want in zip(s.choose(ids), np.unravel_index(ids, (3, 4)), strict=True):
        np.testing.assert_array_equal(got, want)


@settings(deadline=None)
@given(data=st.data())
def test_any_stored_matches_a_direct_look(data: st.DataObject) -> None:
    shape = tuple(data.draw(st.lists(st.integers(1, 5), min_size=1, max_size=3)))
    flags = data.draw(
        st.lists(st.booleans(), min_size=int(np.prod(shape)), max_size=int(np.prod(shape)))
    )
    stored = np.array(flags, dtype=bool).reshape(shape)
    boxes = []
    for n in shape:
        first = data.draw(st.integers(0, n - 1))
        boxes.append((first, data.draw(st.integers(first + 1, n))))
    # One box as ints, and the same box as arrays broadcast along the first dimension.
    want = bool(stored[tuple(slice(a, b) for a, b in boxes)].any())
    assert bool(any_stored(stored, boxes)) == want
    as_arrays = [(np.array([a, a]), np.array([b, b])) for a, b in boxes]
    np.testing.assert_array_equal(any_stored(stored, as_arrays), [want, want])
