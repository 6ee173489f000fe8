"""CropSampler: alignment by coordinates against brute force, rule checks, epochs by step."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import lsio
from lsio.ml import CropSampler


def labelled(root: Path, dims: tuple[str, ...], coords: dict[str, np.ndarray]) -> lsio.Array:
    """An int16 array under ``root`` with a coordinate array per dimension (xarray convention)."""
    shape = tuple(len(coords[d]) for d in dims)
    g = lsio.create_group(root, overwrite=True)
    a = g.create_array("data", shape=shape, dtype="int16", chunks=shape, dims=dims)
    a[...] = np.arange(np.prod(shape), dtype=np.int64).reshape(shape).astype(np.int16)
    for d in dims:
        values = np.asarray(coords[d])
        g.create_array(d, shape=values.shape, dtype=values.dtype, chunks=values.shape, dims=(d,))[
            ...
        ] = values
    node = g["data"]
    assert isinstance(node, lsio.Array)
    return node


def brute_center(pc: np.ndarray, plen: int, sc: np.ndarray, slen: int) -> dict[int, int]:
    """Primary start -> the secondary start whose crop centre is nearest (lowest index on ties),
    for every primary start whose centre is within half a grid step of a secondary crop centre
    range."""
    out = {}
    centres = np.array([(sc[s] + sc[s + slen - 1]) / 2 for s in range(len(sc) - slen + 1)])
    ordered = np.sort(sc)
    lo = centres.min() - (ordered[1] - ordered[0]) / 2
    hi = centres.max() + (ordered[-1] - ordered[-2]) / 2
    for p in range(len(pc) - plen + 1):
        target = (pc[p] + pc[p + plen - 1]) / 2
        if lo <= target <= hi:
            dist = np.abs(centres - target)
            out[p] = int(np.flatnonzero(dist == dist.min())[0 if sc[-1] > sc[0] else -1])
    return out


@settings(deadline=None, max_examples=25)
@given(
    seed=st.integers(0, 2**32 - 1),
    plen=st.integers(1, 6),
    slen=st.integers(1, 5),
    descending=st.booleans(),
)
def test_center_alignment_takes_the_crop_with_the_nearest_centre(
    tmp_path_factory: pytest.TempPathFactory, seed: int, plen: int, slen: int, descending: bool
) -> None:
    rng = np.random.default_rng(seed)
    root = tmp_path_factory.mktemp("center")
    pc = np.cumsum(rng.uniform(0.5, 1.5, 30))  # an irregular primary grid
    sc = 3 + np.cumsum(rng.uniform(1.0, 4.0, 12))  # a coarser one, covering part of it
    sc = sc[::-1].copy() if descending else sc
    p = labelled(root / "p.zarr", ("x",), {"x": pc})
    s = labelled(root / "s.zarr", ("x",), {"x": sc})
    expected = brute_center(pc, plen, sc, slen)
    if not expected:
        with pytest.raises(lsio.InvalidArgumentError, match="no valid sample"):
            CropSampler(
                {"p": p, "s": s}, crop={"p": {"x": plen}, "s": {"x": slen}}, align={"s": {"x": "x"}}
            )
        return
    sampler = CropSampler(
        {"p": p, "s": s}, crop={"p": {"x": plen}, "s": {"x": slen}}, align={"s": {"x": "x"}}
    )
    starts = sampler.starts(np.arange(sampler.size))
    got = dict(zip(starts["p"]["x"].tolist(), starts["s"]["x"].tolist(), strict=True))
    assert got == expected


def test_a_secondary_grid_far_away_or_ending_before_is_no_valid_sample(tmp_path: Path) -> None:
    p = labelled(
        tmp_path / "p.zarr", ("time", "x"), {"time": np.arange(10) * 10, "x": np.arange(20.0)}
    )
    far = labelled(tmp_path / "far.zarr", ("x",), {"x": 1e7 + np.arange(20.0)})
    with pytest.raises(lsio.InvalidArgumentError, match="no valid sample"):
        CropSampler(
            {"p": p, "s": far}, crop={"p": {"x": 4}, "s": {"x": 1}}, align={"s": {"x": "x"}}
        )
    # Runs every 10 that ended long before the primary starts: nothing is "before" within a step.
    old = labelled(tmp_path / "old.zarr", ("time",), {"time": np.arange(5) * 10 - 10_000})
    with pytest.raises(lsio.InvalidArgumentError, match="no valid sample"):
        CropSampler(
            {"p": p, "s": old},
            crop={"p": {"time": 2}, "s": {"time": 1}},
            align={"s": {"time": ("time", "before")}},
        )
    # A tolerance wider than the runs' spacing says how far back is still fine.
    ok = CropSampler(
        {"p": p, "s": old},
        crop={"p": {"time": 2}, "s": {"time": 1}},
        align={"s": {"time": ("time", "before")}},
        tolerance={"s": {"time": 20_000}},
    )
    assert ok.size == 9


def test_before_stops_one_step_past_the_last_value(tmp_path: Path) -> None:
    p = labelled(tmp_path / "p.zarr", ("time",), {"time": np.arange(40)})
    s = labelled(tmp_path / "s.zarr", ("time",), {"time": np.arange(0, 30, 6)})  # 0 .. 24
    sampler = CropSampler(
        {"p": p, "s": s},
        crop={"p": {"time": 1}, "s": {"time": 1}},
        align={"s": {"time": ("time", "before")}},
    )
    starts = sampler.starts(np.arange(sampler.size))
    assert sorted(starts["p"]["time"].tolist()) == list(range(31))  # up to 24 + 6
    assert all(
        s_ == t // 6 if t < 30 else 4
        for t, s_ in zip(starts["p"]["time"].tolist(), starts["s"]["time"].tolist(), strict=True)
    )


def test_aligned_coordinates_must_be_monotonic(tmp_path: Path) -> None:
    p = labelled(tmp_path / "p.zarr", ("lon",), {"lon": np.arange(10.0, 60.0, 1.0)})
    wrapped = labelled(
        tmp_path / "w.zarr", ("lon",), {"lon": np.array([340.0, 350, 0, 10, 20, 30, 40, 50])}
    )
    with pytest.raises(lsio.InvalidArgumentError, match=r"coordinates of w\.lon must be strictly"):
        CropSampler({"p": p, "w": wrapped}, crop={"p": {"lon": 2}}, align={"w": {"lon": "lon"}})


def test_max_gap_works_on_descending_coordinates(tmp_path: Path) -> None:
    p = labelled(tmp_path / "p.zarr", ("time",), {"time": np.array([100, 90, 80, 50, 40, 30])})
    s = CropSampler({"p": p}, crop={"p": {"time": 2}}, max_gap={"time": 10})
    assert sorted(s.starts(np.arange(s.size))["p"]["time"].tolist()) == [0, 1, 3, 4]


def test_rules_with_unknown_names_or_bad_values_are_refused(tmp_path: Path) -> None:
    p = labelled(tmp_path / "p.zarr", ("time", "x"), {"time": np.arange(10), "x": np.arange(20.0)})
    s = labelled(tmp_path / "s.zarr", ("x",), {"x": np.arange(0.0, 20.0, 2.0)})
    base: dict[str, Any] = {
        "sources": {"p": p, "s": s},
        "crop": {"p": {"time": 2, "x": 4}, "s": {"x": 2}},
        "align": {"s": {"x": "x"}},
    }
    cases: list[tuple[dict[str, Any], str]] = [
        ({"max_gap": {"tme": 1}}, r"max_gap names \['tme'\], which the primary 'p' does not crop"),
        ({"stride": {"tme": 5}}, r"stride names \['tme'\]"),
        ({"stride": {"x": 0}}, "strides must be >= 1"),
        ({"stride": {"x": 1.5}}, "stride of 'x' must be an integer"),
        ({"tolerance": {"ss": {"x": 1}}}, "tolerance names 'ss', which align does not name"),
        ({"tolerance": {"s": {"y": 1}}}, r"tolerance of 's' names \['y'\]"),
        ({"align": {"s": {"x": ("x",)}}}, r"align of s\.x must be a primary dimension"),
        ({"align": {"s": {"x": ("x", "lead")}}}, r"align of s\.x must be"),
        ({"crop": {"p": {"time": 2.7}}}, r"crop of p\.time must be an integer"),
        ({"batch_size": 2.5}, "batch_size must be an integer"),
        ({"seed": None}, "seed must be an integer"),
        ({"rank": True}, "rank must be an integer"),
    ]
    for change, message in cases:
        with pytest.raises(lsio.InvalidArgumentError, match=message):
            CropSampler(**{**base, **change})
    sampler = CropSampler(**base)
    with pytest.raises(lsio.InvalidArgumentError, match="step must be an integer"):
        sampler[1.5]  # type: ignore[index]
    assert len(sampler[2**62]) == sampler.batch_size  # far steps are fine: epochs key the shuffle


@pytest.mark.parametrize(("world", "batch"), [(3, 4), (2, 5), (1, 7)])
def test_every_epoch_deals_each_sample_once_plus_padding(
    tmp_path: Path, world: int, batch: int
) -> None:
    p = labelled(tmp_path / "p.zarr", ("x",), {"x": np.arange(100.0)})
    ranks = [
        CropSampler(
            {"p": p}, crop={"p": {"x": 3}}, batch_size=batch, rank=r, world_size=world, seed=4
        )
        for r in range(world)
    ]
    n, spe = ranks[0].size, ranks[0].steps_per_epoch
    assert n == 98
    assert spe == -(-n // (batch * world))
    for epoch in range(3):
        ids = [
            i
            for step in range(epoch * spe, (epoch + 1) * spe)
            for r in ranks
            for i in r.ids(step).tolist()
        ]
        # Every sample in every epoch; the last step's padding repeats the epoch's first ones.
        assert set(ids) == set(range(n))
        pad = spe * batch * world - n
        assert len(ids) == n + pad
        assert ids[n:] == ids[:pad]
