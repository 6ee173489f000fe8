"""xarray with engine="lsio" against engine="zarr" (zarr-python, with and without zarrs).

Usage::

    python -m benchmarks.xr_backend [--timesteps 48] [--repeats 3] [--engines lsio,zarr,zarr+zarrs]

Makes (once) a group like the satellite benchmark's (int16 (time, 11, 1024,
1024), inner chunks (1, 11, 64, 64) zstd level 3 in (4, 11, 512, 512) shards,
with time, y and x coordinates) and times what an xarray user does with it:
opening it, random 4 x 11 x 128 x 128 crops one by one through ``isel`` and
``.values``, and a per-channel mean through Dask, chunked as each engine
chooses (``chunks={}``: lsio the shards, zarr the inner chunks) and by the
shards for every engine. Files are read
just before each timed run (warm page cache). Prints a Markdown table with
lsio / best peer.
"""

from __future__ import annotations

import argparse
import statistics
import time
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from benchmarks.data import CHANNELS, CHUNK, SHARD, slab
from benchmarks.limits import warm

ROOT = Path("/tmp/lsio-bench/xr")
SIDE = 1024
CROP = (4, CHANNELS, 128, 128)


def make(timesteps: int) -> Path:
    """The benchmark group, written with lsio unless it is there already."""
    import lsio

    path = ROOT / f"sat-{timesteps}.zarr"
    if (path / "COMPLETE").exists():
        return path
    g = lsio.create_group(path, overwrite=True, attrs={"title": "satellite-like"})
    a = g.create_array(
        "sat",
        shape=(timesteps, CHANNELS, SIDE, SIDE),
        dtype="int16",
        chunks=CHUNK,
        shards=SHARD,
        compressor="zstd:3",
        dims=("time", "channel", "y", "x"),
        attrs={"units": "counts"},
    )
    for t in range(0, timesteps, SHARD[0]):
        a[t : t + SHARD[0]] = slab(t, t + SHARD[0], SIDE)
    coords: dict[str, tuple[np.ndarray, dict[str, Any]]] = {
        "time": (np.arange(timesteps, dtype="int64") * 15, {"units": "minutes since 2024-01-01"}),
        "channel": (np.arange(CHANNELS, dtype="int16"), {}),
        "y": (np.linspace(60.0, 30.0, SIDE), {"units": "degrees_north"}),
        "x": (np.linspace(-20.0, 20.0, SIDE), {"units": "degrees_east"}),
    }
    for name, (values, attrs) in coords.items():
        c = g.create_array(
            name,
            shape=values.shape,
            dtype=values.dtype,
            chunks=values.shape,
            dims=(name,),
            attrs=attrs,
        )
        c[...] = values
    (path / "COMPLETE").touch()
    return path


def _open(engine: str, path: Path, **kwargs: Any) -> Any:
    import xarray as xr

    if engine == "lsio":
        return xr.open_dataset(path, engine="lsio", **kwargs)
    return _in_pipeline(
        engine, lambda: xr.open_dataset(path, engine="zarr", consolidated=False, **kwargs)
    )


def _in_pipeline(engine: str, fn: Callable[[], Any]) -> Any:
    """``fn()``, under the engine's zarr-python codec pipeline (zarrs or the default one)."""
    import zarr

    if engine == "lsio":
        return fn()
    pipeline = (
        "zarrs.ZarrsCodecPipeline"
        if engine == "zarr+zarrs"
        else "zarr.core.codec_pipeline.BatchedCodecPipeline"
    )
    with zarr.config.set({"codec_pipeline.path": pipeline}):
        return fn()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--timesteps", type=int, default=48)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--engines", default="lsio,zarr,zarr+zarrs")
    args = parser.parse_args()
    warnings.simplefilter("ignore")
    engines = args.engines.split(",")
    path = make(args.timesteps)
    rng = np.random.default_rng(1)
    starts = [
        (
            int(rng.integers(0, args.timesteps - CROP[0] + 1)),
            int(rng.integers(0, SIDE - 128)),
            int(rng.integers(0, SIDE - 128)),
        )
        for _ in range(64)
    ]
    nbytes = args.timesteps * CHANNELS * SIDE * SIDE * 2
    rows: dict[str, dict[str, list[float]]] = {}

    def crops(ds: Any) -> None:
        for t, y, x in starts:
            _ = (
                ds["sat"]
                .isel(time=slice(t, t + 4), y=slice(y, y + 128), x=slice(x, x + 128))
                .values
            )

    for repeat in range(args.repeats):
        for engine in engines[repeat % len(engines) :] + engines[: repeat % len(engines)]:
            row = rows.setdefault(engine, {})
            warm(path)
            t0 = time.perf_counter()
            ds = _open(engine, path)
            row.setdefault("open (ms)", []).append((time.perf_counter() - t0) * 1e3)
            _in_pipeline(engine, lambda ds=ds: crops(ds))  # first touches: untimed
            warm(path)
            t0 = time.perf_counter()
            _in_pipeline(engine, lambda ds=ds: crops(ds))
            row.setdefault("crops one by one (samples/s)", []).append(
                len(starts) / (time.perf_counter() - t0)
            )
            # Dask chunks: the engine's choice (chunks={}: shards for lsio, inner
            # chunks for zarr), then the shards for every engine.
            shard_chunks = dict(zip(("time", "channel", "y", "x"), SHARD, strict=True))
            for label, chunks in (("chunks={}", {}), ("shard chunks", shard_chunks)):
                warm(path)
                lazy = _open(engine, path, chunks=chunks)
                t0 = time.perf_counter()
                _in_pipeline(engine, lambda lazy=lazy: lazy["sat"].mean(("time", "y", "x")).values)
                row.setdefault(f"mean per channel, Dask, {label} (GB/s)", []).append(
                    nbytes / (time.perf_counter() - t0) / 1e9
                )
            print(
                f"  {engine}: " + ", ".join(f"{k} {v[-1]:.3g}" for k, v in row.items()), flush=True
            )
    workloads = list(next(iter(rows.values())))
    print()
    print("| workload | " + " | ".join(engines) + " | lsio / best peer |")
    print("|---|" + "---|" * len(engines) + "---|")
    for w in workloads:
        med = {e: statistics.median(rows[e][w]) for e in engines}
        cells = " | ".join(
            f"{med[e]:.3g} [{min(rows[e][w]):.3g}-{max(rows[e][w]):.3g}]" for e in engines
        )
        peers = [v for e, v in med.items() if e != "lsio"]
        if "lsio" in med and peers:
            best = min(peers) if w.startswith("open") else max(peers)
            ratio = best / med["lsio"] if w.startswith("open") else med["lsio"] / best
            print(f"| {w} | {cells} | {ratio:.2f} |")
        else:
            print(f"| {w} | {cells} | - |")


if __name__ == "__main__":
    main()
