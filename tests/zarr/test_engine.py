"""How the engine plans basic selections: in place where a chunk is a contiguous block."""

from __future__ import annotations

import numpy as np

from lsio.plan import normalize_basic
from lsio.zarr._engine import COPY, DIRECT, Target, _plan_basic


def _plan(shape: tuple[int, ...], chunks: tuple[int, ...], out: np.ndarray) -> list[Target]:
    planned: dict[tuple[int, ...], list[Target]] = {}
    _plan_basic(normalize_basic(Ellipsis, shape), chunks, out, planned)
    return [t for ts in planned.values() for t in ts]


def test_contiguous_blocks_are_decoded_in_place() -> None:
    out = np.empty((4, 6))
    targets = _plan((4, 6), (2, 6), out)
    assert len(targets) == 2
    assert all(t.kind == DIRECT and t.dst.base is out for t in targets)


def test_strided_blocks_are_copied() -> None:
    out = np.empty((4, 6))
    targets = _plan((4, 6), (2, 3), out)  # (2, 3) blocks of a (4, 6) array are strided
    assert len(targets) == 4
    assert all(t.kind == COPY for t in targets)


def test_partial_edge_chunks_are_copied() -> None:
    out = np.empty((5, 6))
    kinds = sorted(t.kind for t in _plan((5, 6), (2, 6), out))
    assert kinds == [DIRECT, DIRECT, COPY]  # rows 4..5 of a chunk of 2 rows: only one row exists
