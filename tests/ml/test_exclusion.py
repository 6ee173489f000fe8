"""Exclusion of crops that would hold only the fill value, planned from the stores alone."""

from __future__ import annotations

import itertools
from pathlib import Path

import numpy as np
import pytest

import lsio
from lsio.ml import CropSampler, Loader

SHAPE, CHUNKS = (6, 2, 32, 32), (1, 2, 8, 8)
CROP = {"time": 2, "y": 12, "x": 12}


def _patchy(path: Path, shards: tuple[int, ...] | None, seed: int) -> tuple[lsio.Array, np.ndarray]:
    """An array where only some chunks hold data; returns it and the chunks that do."""
    rng = np.random.default_rng(seed)
    grid = tuple(n // c for n, c in zip(SHAPE, CHUNKS, strict=True))
    has = rng.random(grid) < 0.08
    a = lsio.create(
        path,
        shape=SHAPE,
        dtype="i2",
        chunks=CHUNKS,
        shards=shards,
        fill_value=0,
        dims=("time", "channel", "y", "x"),
    )
    values = np.zeros(SHAPE, dtype="i2")
    for c in np.argwhere(has):
        values[tuple(slice(i * n, (i + 1) * n) for i, n in zip(c, CHUNKS, strict=True))] = 1 + c[0]
    a[...] = values
    return a, has


def _touches(has: np.ndarray, starts: tuple[int, ...], crop: tuple[int, ...]) -> bool:
    box = tuple(
        slice(s // c, (s + n - 1) // c + 1) for s, n, c in zip(starts, crop, CHUNKS, strict=True)
    )
    return bool(has[box].any())


@pytest.mark.parametrize("shards", [None, (2, 2, 16, 16)])
def test_only_crops_touching_stored_chunks_are_sampled(
    tmp_path: Path, shards: tuple[int, ...] | None
) -> None:
    a, has = _patchy(tmp_path / "sat.zarr", shards, seed=3)
    s = CropSampler({"sat": a}, crop={"sat": CROP}, seed=1, batch_size=7, skip_empty=True)
    crop = (CROP["time"], SHAPE[1], CROP["y"], CROP["x"])
    expected = {
        (t, y, x)
        for t, y, x in itertools.product(*(range(SHAPE[i] - crop[i] + 1) for i in (0, 2, 3)))
        if _touches(has, (t, 0, y, x), crop)
    }
    starts = s.starts(np.arange(s.size))["sat"]
    got = list(
        zip(starts["time"].tolist(), starts["y"].tolist(), starts["x"].tolist(), strict=True)
    )
    assert len(got) == len(set(got))
    assert set(got) == expected
    everything = CropSampler({"sat": a}, crop={"sat": CROP}, batch_size=7)
    assert 0 < s.size < everything.size
    # Every delivered crop holds data; an epoch covers each sample once.
    seen = []
    for batch in Loader(s, prefetch=2):
        assert all(np.any(crop_ != 0) for crop_ in batch["sat"])
        seen += batch["ids"].tolist()
    assert set(seen) == set(range(s.size))


def test_a_secondary_source_can_be_required_to_hold_data(tmp_path: Path) -> None:
    sat, _ = _patchy(tmp_path / "sat.zarr", None, seed=5)
    sat[...] = 1  # the primary is full; only the secondary decides
    b = lsio.create(
        tmp_path / "b.zarr",
        shape=(6, 32, 32),
        dtype="f4",
        chunks=(1, 4, 4),
        fill_value=np.nan,
        dims=("time", "y", "x"),
    )
    has = np.zeros((6, 8, 8), dtype=bool)
    has[2, 5, 1] = has[4, 0, 7] = True
    for t, i, j in np.argwhere(has):
        b[t, i * 4 : (i + 1) * 4, j * 4 : (j + 1) * 4] = 1.0
    s = CropSampler(
        {"sat": sat, "b": b},
        crop={"sat": CROP, "b": {"time": 1, "y": 6, "x": 6}},
        align={"b": {"time": ("time", "before"), "y": "y", "x": "x"}},
        skip_empty=["b"],
    )
    # Without coordinates the dimensions are indices: sat's crop centre is y + 5.5, and b's
    # 6-long crop with that centre starts at y + 3.
    expected = {
        (t, y, x)
        for t, y, x in itertools.product(range(5), range(21), range(21))
        if has[t, (y + 3) // 4 : (y + 8) // 4 + 1, (x + 3) // 4 : (x + 8) // 4 + 1].any()
    }
    picked = s.starts(np.arange(s.size))
    assert np.array_equal(picked["b"]["y"], picked["sat"]["y"] + 3)
    got = set(zip(*(picked["sat"][d].tolist() for d in ("time", "y", "x")), strict=True))
    assert got == expected
    assert s.size == len(expected)


def test_no_crop_with_data_is_a_clear_error(tmp_path: Path) -> None:
    a = lsio.create(
        tmp_path / "e.zarr",
        shape=SHAPE,
        dtype="i2",
        chunks=CHUNKS,
        fill_value=0,
        dims=("time", "channel", "y", "x"),
    )
    with pytest.raises(lsio.InvalidArgumentError, match="only the fill value"):
        CropSampler({"sat": a}, crop={"sat": CROP}, skip_empty=True)
    with pytest.raises(lsio.InvalidArgumentError, match="unknown sources"):
        CropSampler({"sat": a}, crop={"sat": CROP}, skip_empty=["nwp"])
