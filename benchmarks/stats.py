"""Whole-array per-channel statistics: lsio.stats against Dask, xarray and a peer loop.

Usage::

    python -m benchmarks.stats [--size full|quick] [--repeats 3] [--runners lsio,dask-zarr,...]
                               [--dtype int16|float32] [--layout sharded|unsharded]

Every runner computes min, max, mean and std per channel (reducing time, y and
x) of the sharded satellite-like array made by ``benchmarks.data`` (int16, or
with ``--dtype float32`` its float32 copy with NaN gaps, which every runner
skips: NumPy's and Dask's ``nan*`` functions, xarray's default), or with
``--layout unsharded`` the same int16 data with a file per chunk, from the
page cache (the files are read just before each run). Each run is a fresh
process, so its peak RSS is its own. Prints a Markdown table with GB/s of
decoded data, lsio / peer, lsio / the all-cores codec limit and peak RSS.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

from benchmarks import limits
from benchmarks.data import CHUNK, SHARD, generate, generate_float

AXES = (0, 2, 3)
RUNNERS = ("lsio", "dask+zarr-python", "xarray+dask", "tensorstore+numpy")


def _lsio(path: Path, times: int | None) -> dict[str, Any]:
    import lsio

    s = lsio.stats(lsio.open_array(path), axis=AXES, selection=(slice(0, times),))
    return {"mean": s.mean.tolist(), "std": s.std.tolist(), "min": s.min.tolist()}


def _dask_zarr(path: Path, times: int | None) -> dict[str, Any]:
    import dask
    import dask.array as da

    # Shard-sized blocks: the default (one task per 90 KB inner chunk) is ~4x slower.
    x = da.from_zarr(str(path), chunks=SHARD)[:times]
    if x.dtype.kind == "f":
        parts = (da.nanmin(x, axis=AXES), da.nanmean(x, axis=AXES), da.nanstd(x, axis=AXES))
    else:
        parts = (x.min(axis=AXES), x.mean(axis=AXES), x.std(axis=AXES))
    with dask.config.set(scheduler="threads"):
        lo, mean, std = dask.compute(*parts)
    return {"mean": mean.tolist(), "std": std.tolist(), "min": lo.tolist()}


def _xarray(path: Path, times: int | None) -> dict[str, Any]:
    import dask
    import xarray as xr

    # xarray opens groups: a group beside the array that links to it.
    group = path.parent / f"xr_group_{path.stem}.zarr"
    if not group.exists():
        group.mkdir()
        (group / "zarr.json").write_text('{"zarr_format": 3, "node_type": "group"}')
        (group / "sat").symlink_to(path.resolve())
    chunks = dict(zip(("time", "channel", "y", "x"), SHARD, strict=True))
    ds = xr.open_zarr(str(group), consolidated=False, chunks=chunks)
    sat = ds["sat"].isel(time=slice(0, times))
    dims = ("time", "y", "x")
    with dask.config.set(scheduler="threads"):
        lo, mean, std = dask.compute(sat.min(dims), sat.mean(dims), sat.std(dims))
    return {"mean": mean.values.tolist(), "std": std.values.tolist(), "min": lo.values.tolist()}


def _tensorstore(path: Path, times: int | None) -> dict[str, Any]:
    import tensorstore as ts

    t = ts.open(
        {"driver": "zarr3", "kvstore": {"driver": "file", "path": str(path)}}, read=True
    ).result()[:times]
    shape = t.shape
    floats = np.dtype(t.dtype.numpy_dtype).kind == "f"
    n = np.zeros(shape[1], dtype=np.int64)
    s = np.zeros(shape[1], dtype=np.float64 if floats else np.int64)
    q = np.zeros(shape[1], dtype=np.float64)
    lo = np.full(shape[1], np.inf)
    for t0 in range(0, shape[0], SHARD[0]):
        block = t[t0 : t0 + SHARD[0]].read().result()
        if floats:
            n += np.count_nonzero(~np.isnan(block), axis=AXES)
            lo = np.fmin(lo, np.nanmin(block, axis=AXES))
            s += np.nansum(block, axis=AXES, dtype=np.float64)
            q += np.nansum(np.square(block, dtype=np.float64), axis=AXES)
        else:
            n += block.size // shape[1]
            lo = np.minimum(lo, block.min(axis=AXES))
            s += block.sum(axis=AXES, dtype=np.int64)
            q += np.square(block, dtype=np.float64).sum(axis=AXES)
    mean = s / n
    std = np.sqrt(q / n - mean * mean)
    return {"mean": mean.tolist(), "std": std.tolist(), "min": lo.tolist()}


_FUNCS = {
    "lsio": _lsio,
    "dask+zarr-python": _dask_zarr,
    "xarray+dask": _xarray,
    "tensorstore+numpy": _tensorstore,
}


def _child(runner: str, path: Path) -> None:
    """Run one measurement in this (fresh) process; print JSON.

    The runner first warms up on the first shard's timesteps, untimed: imports,
    thread pools and lsio's kernel compilation (about a second, once per
    process) stay out of the rate, which is meant to extrapolate to terabytes.
    """
    _FUNCS[runner](path, SHARD[0])
    t0 = time.perf_counter()
    result = _FUNCS[runner](path, None)
    secs = time.perf_counter() - t0
    rss = limits.peak_rss()
    print(json.dumps({"secs": secs, "rss": rss, "result": result}))


def _measure(runner: str, path: Path) -> dict[str, Any]:
    limits.warm(path)
    out = subprocess.run(
        [sys.executable, "-m", "benchmarks.stats", "--child", runner, "--path", str(path)],
        check=True,
        capture_output=True,
        text=True,
    )
    return json.loads(out.stdout.strip().splitlines()[-1])  # type: ignore[no-any-return]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--size", default="full", choices=["full", "quick"])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--runners", default=",".join(RUNNERS))
    parser.add_argument("--dtype", default="int16", choices=["int16", "float32"])
    parser.add_argument("--layout", default="sharded", choices=["sharded", "unsharded"])
    parser.add_argument("--data-dir", default="/tmp/lsio-bench")
    parser.add_argument("--child", help=argparse.SUPPRESS)
    parser.add_argument("--path", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        _child(args.child, Path(args.path))
        return
    if args.dtype == "float32":
        if args.layout != "sharded":
            raise SystemExit("--dtype float32 has a sharded copy only")
        path = sharded = generate_float(Path(args.data_dir), args.size)
    else:
        made = generate(Path(args.data_dir), args.size)
        path, sharded = made[f"sat_{args.layout}"], made["sat_sharded"]
    import zarr

    z = zarr.open_array(str(path), mode="r")
    itemsize = z.dtype.itemsize
    nbytes = math.prod(z.shape) * itemsize
    cores = os.cpu_count() or 1
    # The unsharded copy's chunk files hold the same bytes as the shards' inner chunks.
    sample = limits.stored_inner_chunks(
        limits.files_of(sharded), math.prod(s // c for s, c in zip(SHARD, CHUNK, strict=True)), 2048
    )
    print(f"array {nbytes / 1e9:.2f} GB {z.dtype}")
    rates: dict[str, list[float]] = {}
    rss: dict[str, float] = {}
    reference: dict[str, Any] | None = None
    # The codec limit is measured in every repeat, beside the runners: the load
    # of this shared machine shifts between repeats.
    codec: list[float] = []
    for _ in range(args.repeats):
        codec.append(limits.codec_throughput(sample, math.prod(CHUNK) * itemsize, cores) / 1e9)
        print(f"  codec zstd decode {codec[-1]:.2f} GB/s ({cores} threads)", flush=True)
        for runner in args.runners.split(","):
            got = _measure(runner, path)
            rates.setdefault(runner, []).append(nbytes / got["secs"] / 1e9)
            rss[runner] = max(rss.get(runner, 0.0), got["rss"] / 1e6)
            if reference is None:
                reference = got["result"]
            elif not np.allclose(got["result"]["mean"], reference["mean"], rtol=1e-6):
                raise SystemExit(f"{runner} disagrees on the means: {got['result']['mean']}")
            print(f"  {runner}: {rates[runner][-1]:.3f} GB/s, peak RSS {got['rss'] / 1e6:.0f} MB")
    if "lsio" not in rates:
        return
    lsio_rate = statistics.median(rates["lsio"])
    codec_n = statistics.median(codec) * 1e9
    paired = [r / c for r, c in zip(rates["lsio"], codec, strict=True)]
    print(
        f"\ncodec limit {codec_n / 1e9:.2f} [{min(codec):.2f}-{max(codec):.2f}] GB/s; "
        f"lsio / codec limit of the same repeat: {', '.join(f'{p:.2f}' for p in paired)}"
    )
    print()
    print(
        "| runner | GB/s (median [min-max]) | lsio / runner | runner / codec limit | peak RSS MB |"
    )
    print("|---|---|---|---|---|")
    for runner, values in rates.items():
        med = statistics.median(values)
        print(
            f"| {runner} | {med:.3f} [{min(values):.3f}-{max(values):.3f}] | "
            f"{lsio_rate / med:.2f} | {med / (codec_n / 1e9):.2f} | {rss[runner]:.0f} |"
        )
    tb_minutes = 1e12 / (lsio_rate * 1e9) / 60
    print(
        f"\nlsio: {tb_minutes:.0f} minutes per TB on {cores} cores "
        f"({tb_minutes * cores:.0f} core-minutes per TB)"
    )
    xr_group = path.parent / f"xr_group_{path.stem}.zarr"
    if xr_group.exists():
        shutil.rmtree(xr_group)


if __name__ == "__main__":
    main()
