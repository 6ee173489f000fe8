"""A synthetic satellite + NWP pair with real coordinates (for the demo, tests and benchmarks)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from lsio._errors import InvalidArgumentError
from lsio.ml._sampler import CropSampler
from lsio.zarr import Array, Group, create_group

__all__ = ["ALIGN", "CROP", "SatNwp", "make_sat_nwp"]

HOUR = 3600


# The usual pairing of the two: 4 hourly images of 128 km with the forecast of the same
# hours (from the latest run before them) over 128 km around the same centre.
CROP = {"sat": {"time": 4, "y": 128, "x": 128}, "nwp": {"step": 4, "y": 32, "x": 32}}
ALIGN = {
    "nwp": {
        "y": "y",
        "x": "x",
        "init_time": ("time", "before"),
        "step": ("time", "lead", "init_time"),
    }
}


@dataclass(frozen=True)
class SatNwp:
    """The two datasets: ``sat`` (time, channel, y, x) and ``nwp`` (init_time, step, variable, y, x)."""

    sat: Array
    nwp: Array

    def sampler(self, **kwargs: Any) -> CropSampler:
        """A :class:`CropSampler` with the usual crops and alignment (``CROP``, ``ALIGN``)."""
        kwargs.setdefault("max_gap", {"time": HOUR})
        return CropSampler({"sat": self.sat, "nwp": self.nwp}, crop=CROP, align=ALIGN, **kwargs)


def make_sat_nwp(
    root: str | Path,
    *,
    timesteps: int = 48,
    side: int = 256,
    channels: int = 11,
    gap_at: int | None = 20,
    seed: int = 0,
    compressor: str | None = "zstd:1",
    chunk: int = 64,
) -> SatNwp:
    """Write the pair under ``root`` (two groups) and open both arrays.

    Satellite: hourly images (time in seconds since 2024-01-01; one hour missing
    after ``gap_at``), ``channels`` int16 channels on a 1 km grid (y, x in
    metres). NWP: runs every 6 hours covering the satellite period, 8 hourly
    steps, 4 float32 variables on a 4 km grid over a larger area. Both stored
    with ``compressor`` (default zstd level 1).

    The satellite is sharded: inner chunks (1, channels, chunk, chunk) (default
    64), shards of 4 timesteps and up to 256 x 256 pixels.

    Raises:
        InvalidArgumentError: ``chunk`` is not positive or does not divide the shard's side.
    """
    shard_side = min(256, side)
    if chunk <= 0 or shard_side % chunk:
        raise InvalidArgumentError(
            f"make_sat_nwp: chunk={chunk} must be a positive divisor of the shard side {shard_side}"
        )
    root = Path(root)
    rng = np.random.default_rng(seed)
    hours = np.arange(timesteps + (1 if gap_at is not None else 0), dtype=np.int64)
    if gap_at is not None:
        hours = np.delete(hours, gap_at + 1)
    sat_time = hours * HOUR
    sat_y = np.arange(side, dtype=np.float64) * 1000.0
    sat_x = np.arange(side, dtype=np.float64) * 1000.0
    g = create_group(root / "sat.zarr", overwrite=True, attrs={"title": "synthetic satellite"})
    sat = g.create_array(
        "data",
        shape=(timesteps, channels, side, side),
        dtype="int16",
        chunks=(1, channels, chunk, chunk),
        shards=(4, channels, shard_side, shard_side),
        dims=("time", "channel", "y", "x"),
        compressor=compressor,
    )
    yy, xx = np.meshgrid(np.linspace(0, 6, side), np.linspace(0, 6, side), indexing="ij")
    for t in range(timesteps):
        base = np.sin(yy + 0.2 * t) * np.cos(xx - 0.1 * t) * 900 + 1000
        sat[t] = (
            base[None]
            + 50 * np.arange(channels)[:, None, None]
            + rng.normal(0, 5, (channels, side, side))
        ).astype(np.int16)
    for name, values in (
        ("time", sat_time),
        ("channel", np.arange(channels)),
        ("y", sat_y),
        ("x", sat_x),
    ):
        g.create_array(
            name, shape=values.shape, dtype=values.dtype, chunks=values.shape, dims=(name,)
        )[...] = values
    runs = int(np.ceil((sat_time[-1] / HOUR + 1) / 6)) + 1
    nwp_side = side // 4 + 16  # a 4 km grid reaching 32 km beyond the satellite's on each side
    nwp_y = (np.arange(nwp_side) - 8) * 4000.0
    steps = 8
    n = create_group(root / "nwp.zarr", overwrite=True, attrs={"title": "synthetic NWP"})
    nwp = n.create_array(
        "data",
        shape=(runs, steps, 4, nwp_side, nwp_side),
        dtype="float32",
        chunks=(1, steps, 4, 40, 40),
        dims=("init_time", "step", "variable", "y", "x"),
        compressor=compressor,
    )
    nwp[...] = rng.normal(280, 10, (runs, steps, 4, nwp_side, nwp_side)).astype(np.float32)
    coords: tuple[tuple[str, np.ndarray], ...] = (
        ("init_time", np.arange(runs, dtype=np.int64) * 6 * HOUR),
        ("step", np.arange(steps) * HOUR),
        ("variable", np.arange(4)),
        ("y", nwp_y),
        ("x", nwp_y.copy()),
    )
    for name, values in coords:
        n.create_array(
            name, shape=values.shape, dtype=values.dtype, chunks=values.shape, dims=(name,)
        )[...] = values
    return SatNwp(_member(g, "data"), _member(n, "data"))


def _member(group: Group, name: str) -> Array:
    node = group[name]
    assert isinstance(node, Array)
    return node
