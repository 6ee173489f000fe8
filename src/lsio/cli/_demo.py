"""``lsio demo``: generate a satellite-like sample, describe it and read it back."""

from __future__ import annotations

import shutil
import tempfile
import time
from collections.abc import Callable
from functools import partial
from pathlib import Path
from typing import Any, TextIO

import numpy as np

from lsio._errors import LsioError
from lsio.cli._info import describe, format_bytes, render_tree
from lsio.cli._stats import print_stats
from lsio.ml import Loader, make_sat_nwp, random_crops
from lsio.plan import ReadConfig
from lsio.statistics import stats
from lsio.zarr import Array, create, create_group, open_array, open_group

__all__ = ["run_demo"]

CROP = (4, 11, 128, 128)


def _sample(shape: tuple[int, ...], seed: int) -> np.ndarray:
    """Smooth fields plus noise, as int16 counts: compresses like real imagery."""
    t, c, y, x = shape
    rng = np.random.default_rng(seed)
    yy = np.linspace(0, 4 * np.pi, y, dtype=np.float32)[:, None]
    xx = np.linspace(0, 4 * np.pi, x, dtype=np.float32)[None, :]
    out = np.empty(shape, dtype=np.int16)
    for ti in range(t):
        for ci in range(c):
            field = np.sin(yy + 0.3 * ti + ci) * np.cos(xx - 0.2 * ti) * 800 + 1000 + 60 * ci
            out[ti, ci] = field + rng.normal(0, 8, size=(y, x)).astype(np.float32)
    return out


def _write_sample(root: Path, timesteps: int) -> np.ndarray:
    """The sample, written with lsio's writer: sharded v3 in a group, and a v2 copy."""
    shape = (timesteps, 11, 256, 256)
    data = _sample(shape, seed=0)
    group = create_group(root / "demo.zarr", attrs={"title": "lsio demo sample"})
    dims = ("time", "channel", "y", "x")
    sat = group.create_array(
        "sat",
        shape=shape,
        dtype="int16",
        chunks=(1, 11, 64, 64),
        shards=(4, 11, 128, 128),
        compressor="zstd:3",
        dims=dims,
        attrs={"units": "counts"},
    )
    sat[...] = data
    for name, values in (("time", np.arange(timesteps) * 3600), ("channel", np.arange(11))):
        coord = group.create_array(
            name, shape=values.shape, dtype="int64", chunks=values.shape, dims=(name,)
        )
        coord[...] = values
    v2 = create(
        root / "sat_v2.zarr",
        shape=shape,
        dtype="int16",
        chunks=(1, 11, 64, 64),
        compressor="zstd:3",
        dims=dims,
        zarr_format=2,
    )
    v2[...] = data
    return data


def _best_of(fn: Callable[[], Any], repeats: int = 3) -> float:
    best = float("inf")
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - t0)
    return best


def _read_all(array: Any) -> None:
    array[...]


def _read_crops(array: Any, crops: list[tuple[slice, ...]]) -> None:
    for crop in crops:
        array[crop]


def run_demo(path: str | None, threads: int | None, timesteps: int, out: TextIO) -> None:
    """Generate the sample, print its tree, check lsio against zarr-python, time both."""
    tmp = None if path else tempfile.mkdtemp(prefix="lsio-demo-")
    root = Path(path or tmp or ".")
    root.mkdir(parents=True, exist_ok=True)
    try:
        t0 = time.perf_counter()
        data = _write_sample(root, timesteps)
        print(
            f"wrote sample ({format_bytes(data.nbytes)}) to {root} in {time.perf_counter() - t0:.1f} s\n",
            file=out,
        )
        group = open_group(root / "demo.zarr")
        print(render_tree(describe(group), "demo.zarr"), file=out)
        v2 = open_array(root / "sat_v2.zarr", config=ReadConfig(threads=threads))
        print(render_tree(describe(v2), "sat_v2.zarr"), file=out)
        sat = open_array(root / "demo.zarr" / "sat", config=ReadConfig(threads=threads))
        _check_and_time(sat, v2, data, root, out)
        _demo_stats(sat, data, out)
        _demo_loader(root, out)
    finally:
        if tmp is not None:
            shutil.rmtree(tmp, ignore_errors=True)


def _check_and_time(sat: Array, v2: Array, data: np.ndarray, root: Path, out: TextIO) -> None:
    crops = random_crops(sat.shape, CROP, 32, seed=1)
    for arr in (sat, v2):
        if not np.array_equal(arr[...], data) or any(
            not np.array_equal(arr[c], data[c]) for c in crops
        ):
            raise LsioError(f"demo: lsio read of {arr.store_url} differs from the data written")
    print("\nlsio reads equal the data written (whole array and 32 random crops)\n", file=out)
    try:
        import zarr
    except ImportError:
        print(
            "zarr-python is not installed: no speed comparison (pip install 'lsio[zarr]')", file=out
        )
        return
    z_sat = zarr.open_array(str(root / "demo.zarr" / "sat"), mode="r")
    z_v2 = zarr.open_array(str(root / "sat_v2.zarr"), mode="r")
    crop_bytes = int(np.prod(CROP)) * 2 * len(crops)
    rows = []
    for label, ours, theirs in (("sharded v3", sat, z_sat), ("v2", v2, z_v2)):
        whole_l = _best_of(partial(_read_all, ours))
        whole_z = _best_of(partial(_read_all, theirs))
        crop_l = _best_of(partial(_read_crops, ours, crops))
        crop_z = _best_of(partial(_read_crops, theirs, crops))
        rows.append((label, "whole array", data.nbytes / whole_l, data.nbytes / whole_z))
        rows.append((label, "32 crops 4x11x128x128", crop_bytes / crop_l, crop_bytes / crop_z))
    print(f"{'store':<12}{'read':<24}{'lsio GB/s':>10}{'zarr GB/s':>11}{'ratio':>8}", file=out)
    for label, what, ours_rate, theirs_rate in rows:
        print(
            f"{label:<12}{what:<24}{ours_rate / 1e9:>10.2f}{theirs_rate / 1e9:>11.2f}"
            f"{ours_rate / theirs_rate:>7.1f}x",
            file=out,
        )


def _demo_stats(sat: Array, data: np.ndarray, out: TextIO) -> None:
    """Per-channel statistics with the progress bar; checked against NumPy, rate reported."""
    print("\nper-channel statistics of demo.zarr/sat (lsio.stats, dims time,y,x):", file=out)
    t0 = time.perf_counter()
    s = stats(sat, dims=("time", "y", "x"), progress=True)
    elapsed = time.perf_counter() - t0
    expected_mean = data.mean(axis=(0, 2, 3), dtype=np.float64)
    if not (
        np.array_equal(s.min, data.min(axis=(0, 2, 3)))
        and np.array_equal(s.max, data.max(axis=(0, 2, 3)))
        and np.allclose(s.mean, expected_mean, rtol=1e-12)
    ):
        raise LsioError("demo: lsio.stats differs from NumPy's statistics of the data written")
    print_stats(s, out)
    # A first call may compile kernels (about a second, on a fresh install: Numba
    # caches what it can): time a second pass too, which is what a long job runs at.
    t0 = time.perf_counter()
    stats(sat, dims=("time", "y", "x"))
    again = time.perf_counter() - t0
    print(
        f"\nstatistics of {format_bytes(sat.nbytes)} (equal to NumPy's): "
        f"{sat.nbytes / again / 1e9:.2f} GB/s ({elapsed:.2f} s for the first call, which "
        f"compiles the kernels on a fresh install)",
        file=out,
    )


def _demo_loader(root: Path, out: TextIO, seconds: float = 3.0) -> None:
    """Stream training batches of a satellite + NWP pair for a few seconds; report the rate."""
    pair = make_sat_nwp(root / "ml", timesteps=24, side=256)
    sampler = pair.sampler(seed=42, batch_size=32)
    print(
        f"\ntraining loader: {len(sampler):,} valid samples of sat (4, 11, 128, 128) int16 + "
        "nwp (1, 4, 4, 32, 32) float32, aligned by coordinates; batches of 32, prefetch 4",
        file=out,
    )
    for _ in Loader(sampler, steps=2):  # opens files and fetches shard indexes once
        pass
    loader = Loader(sampler, prefetch=4, start_step=2, steps=10**9)
    samples = nbytes = 0
    t0 = time.perf_counter()
    for batch in loader:
        samples += len(batch["ids"])
        nbytes += batch["sat"].nbytes + batch["nwp"].nbytes
        if time.perf_counter() - t0 > seconds:
            break
    elapsed = time.perf_counter() - t0
    print(
        f"delivered {samples} samples in {elapsed:.1f} s: {samples / elapsed:.0f} samples/s, "
        f"{nbytes / elapsed / 1e9:.2f} GB/s (a small pair: the crops of a batch share many "
        "chunks, each read once; `python -m benchmarks.loader` measures a larger one)",
        file=out,
    )
