"""Training-loader throughput: lsio.ml.Loader against the usual ways to feed a model.

Usage::

    python -m benchmarks.loader [--steps 40] [--repeats 3] [--runners lsio,tensorstore-loop,...]
                                [--stride 64] [--chunk 32] [--compressor blosc-lz4]

Data: a synthetic satellite (480, 11, 512, 512) int16 (2 GB stored) + NWP
(init_time, 8 steps, 4 variables, 144, 144) float32 pair with coordinates
(``lsio.ml.make_sat_nwp``, zstd level 1, in /tmp/lsio-bench/loader-t480),
page-cached. Every runner delivers batches of 32 samples; a sample is a sat crop
(4, 11, 128, 128) and, where the runner can align two datasets, the matching NWP
crop (1, 4, 4, 32, 32). With 480 hours the crops of a batch rarely share a
chunk, as on a dataset of years; ``--timesteps 48`` makes them share about a
quarter of the chunks they touch (read once by ``lsio``, once per crop by a
loop of independent reads). The runners:

- ``lsio``: ``Loader`` (prefetch 4) over arrays opened with the default
  configuration; ``lsio-preadv`` and ``lsio-mmap`` the same over arrays opened
  with ``IOConfig(backend="preadv")`` or ``"mmap"``; ``lsio-normalize`` the
  default loader with ``lsio.ml.Normalize`` (per channel and per variable, to
  float32, statistics from ``lsio.stats`` before the clock starts) as its
  transform: it delivers float32, twice the bytes of the satellite's int16.
- ``tensorstore-loop``: the same samples (lsio's sampler decides where),
  each batch's crops read by tensorstore with all reads in flight at once, in a
  plain loop.
- ``torch-zarr``: a map-style torch ``Dataset`` reading each sample's crops with
  zarr-python, through ``DataLoader(batch_size=32, num_workers=2)``.
- ``xbatcher``: ``xbatcher.BatchGenerator`` over ``xr.open_zarr`` (dask) of the
  satellite only (it cannot align a second dataset), 32 windows per batch.

``--stride 64`` puts every crop on the 64 x 64 chunk grid (no chunk decoded
for less than all of it), for every runner alike. ``--chunk 32`` stores the
satellite in (1, 11, 32, 32) inner chunks instead of (1, 11, 64, 64) (its own
copy): a crop then decodes ~1.5 bytes per byte it keeps instead of ~2.2, but
zstd decodes 22 KB frames ~20% slower per byte than 90 KB ones. ``--compressor``
stores both sources with another of ``lsio.create``'s compressors (its own copy),
e.g. ``blosc-lz4`` (zarr-python 2's default), which decodes several times faster
than zstd: the loader is then bound by everything but the decoding.

Reports the bytes decoded per byte delivered (each chunk once per batch, and
each crop alone), samples/s and GB/s delivered (median of repeats) and lsio /
runner, and the decode limit of the workload: the GB/s delivered if every chunk
that a batch touches were decoded once (a sample of each source's stored chunks
decoded on all cores by the fastest zstd decoder at hand, see
:func:`benchmarks.limits.codec_throughput`, measured before each repeat), with
lsio / limit paired by repeat.
"""

from __future__ import annotations

import argparse
import itertools
import math
import os
import statistics
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from benchmarks import limits

ROOT = Path("/tmp/lsio-bench")
BATCH = 32


@dataclass(frozen=True)
class Workload:
    """Where the crops start (``stride`` along y and x) and the satellite's size and chunks.

    ``chunk``: side of the satellite's inner chunks (1, 11, chunk, chunk);
    ``timesteps``: its length in time; ``compressor``: both sources' compressor
    (an ``lsio.create`` spec). Each layout lives in its own directory under
    :data:`ROOT`.
    """

    stride: int = 1
    chunk: int = 64
    timesteps: int = 480
    compressor: str = "zstd:1"

    @property
    def root(self) -> Path:
        chunk = "" if self.chunk == 64 else f"-chunk{self.chunk}"
        codec = "" if self.compressor == "zstd:1" else f"-{self.compressor.replace(':', '')}"
        return ROOT / f"loader-t{self.timesteps}{chunk}{codec}"

    def numcodecs_codec(self) -> Any:
        """The codec for :func:`benchmarks.limits.codec_throughput` (any instance of a
        compressor's class decodes what any level wrote)."""
        import numcodecs

        name = self.compressor.partition(":")[0]
        if name == "zstd":
            return None
        if name.startswith("blosc"):
            return numcodecs.Blosc()
        if name == "gzip":
            return numcodecs.GZip()
        return "none"


def _data(w: Workload, backend: str | None = None) -> Any:
    from lsio.ml import make_sat_nwp

    done = w.root / "COMPLETE"
    if not done.exists():
        make_sat_nwp(
            w.root, timesteps=w.timesteps, side=512, chunk=w.chunk, compressor=w.compressor
        )
        done.write_text("ok\n")
    import lsio

    cfg = (
        lsio.ReadConfig() if backend is None else lsio.ReadConfig(io=lsio.IOConfig(backend=backend))
    )
    return tuple(
        lsio.open_array(w.root / f"{name}.zarr" / "data", config=cfg) for name in ("sat", "nwp")
    )


def _sampler(w: Workload, backend: str | None = None) -> Any:
    from lsio.ml._synthetic import SatNwp

    strides = {"y": w.stride, "x": w.stride}
    return SatNwp(*_data(w, backend)).sampler(seed=3, batch_size=BATCH, stride=strides)


def _lsio(steps: int, w: Workload, backend: str | None = None) -> Iterator[int]:
    from lsio.ml import Loader

    for batch in Loader(_sampler(w, backend), prefetch=4, steps=steps):
        yield batch["sat"].nbytes + batch["nwp"].nbytes


def _lsio_normalize(steps: int, w: Workload) -> Iterator[int]:
    """The loader with per-channel (per-variable) normalisation to float32 on the fly."""
    import lsio
    from lsio.ml import Loader, Normalize

    sampler = _sampler(w)
    kept = {"sat": ("channel", 1), "nwp": ("variable", 2)}  # 2: (init_time, step, variable, ..)
    stats = {}
    for name, src in sampler.sources().items():
        dims = tuple(d for d in src.array.dims if d != kept[name][0])
        stats[name] = lsio.stats(src.array, dims=dims)
    norm = Normalize(stats, axis={name: ax for name, (_, ax) in kept.items()})
    for batch in Loader(sampler, prefetch=4, steps=steps, transform=norm):
        yield batch["sat"].nbytes + batch["nwp"].nbytes


def _lsio_preadv(steps: int, w: Workload) -> Iterator[int]:
    return _lsio(steps, w, "preadv")


def _lsio_mmap(steps: int, w: Workload) -> Iterator[int]:
    return _lsio(steps, w, "mmap")


def _tensorstore(steps: int, w: Workload) -> Iterator[int]:
    import tensorstore as ts

    sampler = _sampler(w)
    srcs = sampler.sources()
    stores = {
        name: ts.open(
            {
                "driver": "zarr3",
                "kvstore": {"driver": "file", "path": str(w.root / f"{name}.zarr" / "data")},
            }
        ).result()
        for name in srcs
    }
    for step in range(steps):
        samples = sampler[step]
        futures = {name: [] for name in srcs}
        for i in range(BATCH):
            for name, src in srcs.items():
                sel = src.selection({d: int(v[i]) for d, v in samples.starts[name].items()})
                futures[name].append(stores[name][sel].read())
        nbytes = 0
        for name in srcs:
            arrays = [f.result() for f in futures[name]]
            nbytes += np.stack(arrays).nbytes
        yield nbytes


def _torch_zarr(steps: int, w: Workload) -> Iterator[int]:
    import torch
    from torch.utils.data import DataLoader, Dataset

    import zarr

    sampler = _sampler(w)
    srcs = sampler.sources()
    starts = sampler.starts(np.concatenate([sampler.ids(s) for s in range(steps)]))

    class Crops(Dataset[dict[str, Any]]):
        def __init__(self) -> None:
            self.arrays: dict[str, Any] | None = None

        def __len__(self) -> int:
            return steps * BATCH

        def __getitem__(self, i: int) -> dict[str, Any]:
            if self.arrays is None:  # opened in the worker process
                self.arrays = {
                    n: zarr.open_array(str(w.root / f"{n}.zarr" / "data"), mode="r") for n in srcs
                }
            return {
                name: torch.from_numpy(
                    np.asarray(
                        self.arrays[name][
                            src.selection({d: int(v[i]) for d, v in starts[name].items()})
                        ]
                    )
                )
                for name, src in srcs.items()
            }

    for batch in DataLoader(Crops(), batch_size=BATCH, num_workers=2):
        yield batch["sat"].numel() * 2 + batch["nwp"].numel() * 4


def _xbatcher(steps: int, w: Workload) -> Iterator[int]:
    # xbatcher's windows are tiled (w.stride unused): already aligned to the chunks.
    import xarray as xr
    import xbatcher

    ds = xr.open_zarr(str(w.root / "sat.zarr"), consolidated=False)

    def windows() -> Iterator[Any]:
        # One window per item (tiled, not random: xbatcher has no random crops), round and round.
        while True:
            yield from xbatcher.BatchGenerator(
                ds["data"], input_dims={"time": 4, "y": 128, "x": 128}
            )

    items = windows()
    for _ in range(steps):
        yield sum(int(next(items).values.nbytes) for _ in range(BATCH))


def _stored_chunks(w: Workload, name: str, array: Any, limit: int = 2048) -> list[bytes]:
    """Stored bytes of up to ``limit`` (inner) chunks of the source ``name``."""
    files = limits.files_of(w.root / f"{name}.zarr" / "data")
    if array.shards is None:
        return [f.read_bytes() for f in files[:limit]]
    inner = math.prod(s // c for s, c in zip(array.shards, array.chunks, strict=True))
    return limits.stored_inner_chunks(files, inner, limit)


@dataclass(frozen=True)
class DecodeWork:
    """Bytes decoded and delivered over the timed steps of a workload.

    Attributes:
        decoded: Per source, bytes decoded if every chunk a batch touches is
            decoded once (what ``lsio`` does).
        alone: Bytes decoded (all sources) if each crop decoded its chunks on its
            own (what a loop of independent reads does).
        delivered: Bytes of the batches.
    """

    decoded: dict[str, int]
    alone: int
    delivered: int

    def report(self) -> str:
        total = sum(self.decoded.values())
        per_source = ", ".join(f"{n} {b / 1e9:.2f} GB" for n, b in self.decoded.items())
        return (
            f"decoded per byte delivered: {total / self.delivered:.2f} with each chunk once per "
            f"batch ({per_source}), {self.alone / self.delivered:.2f} with each crop alone; "
            f"delivered {self.delivered / 1e9:.2f} GB"
        )


def decode_work(steps: int, w: Workload) -> DecodeWork:
    """What the timed steps decode and deliver (the two warm-up steps left out, as in
    :func:`measure`)."""
    sampler = _sampler(w)
    srcs = sampler.sources()
    decoded = dict.fromkeys(srcs, 0)
    alone = delivered = 0
    for step in range(2, steps + 2):
        samples = sampler[step]
        delivered += sampler.batch_nbytes
        for name, src in srcs.items():
            arr = src.array
            nbytes = math.prod(arr.chunks) * arr.dtype.itemsize
            touched: set[tuple[int, ...]] = set()
            for i in range(len(samples)):
                sel = src.selection({d: int(v[i]) for d, v in samples.starts[name].items()})
                ranges = []
                for s, n, c in zip(sel, arr.shape, arr.chunks, strict=True):
                    start, stop, _ = s.indices(n)
                    ranges.append(range(start // c, (stop - 1) // c + 1))
                touched.update(itertools.product(*ranges))
                alone += math.prod(len(r) for r in ranges) * nbytes
            decoded[name] += len(touched) * nbytes
    return DecodeWork(decoded, alone, delivered)


def decode_limit(
    work: DecodeWork, chunks: dict[str, tuple[list[bytes], int]], codec: Any = None
) -> float:
    """GB/s delivered at the all-cores codec rate of each source, measured now."""
    cores = os.cpu_count() or 1
    secs = sum(
        work.decoded[name] / limits.codec_throughput(stored, nbytes, cores, codec=codec)
        for name, (stored, nbytes) in chunks.items()
    )
    return work.delivered / secs / 1e9


RUNNERS: dict[str, Callable[[int, Workload], Iterator[int]]] = {
    "lsio": _lsio,
    "lsio-normalize": _lsio_normalize,
    "lsio-preadv": _lsio_preadv,
    "lsio-mmap": _lsio_mmap,
    "tensorstore-loop": _tensorstore,
    "torch-zarr": _torch_zarr,
    "xbatcher": _xbatcher,
}


def measure(
    runner: Callable[[int, Workload], Iterator[int]], steps: int, w: Workload
) -> tuple[float, float]:
    """(samples/s, GB/s) over ``steps`` batches after a 2-batch warm-up."""
    it = runner(steps + 2, w)
    next(it)
    next(it)
    t0 = time.perf_counter()
    nbytes = n = 0
    for size in it:
        nbytes += size
        n += BATCH
    secs = time.perf_counter() - t0
    return n / secs, nbytes / secs / 1e9


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--steps", type=int, default=40)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--runners", default=",".join(RUNNERS))
    parser.add_argument(
        "--stride",
        type=int,
        default=1,
        help="step between crop starts along y and x (the chunk side: crops aligned to the chunks)",
    )
    parser.add_argument(
        "--chunk",
        type=int,
        default=64,
        help="side of the satellite's inner chunks (1, 11, chunk, chunk); must divide 256",
    )
    parser.add_argument(
        "--timesteps",
        type=int,
        default=480,
        help="hours of satellite data (the NWP covers the same period); 48: crops of a "
        "batch share ~1/4 of their chunks",
    )
    parser.add_argument(
        "--compressor",
        default="zstd:1",
        help="both sources' compressor, as lsio.create takes it (e.g. blosc-lz4, zstd:3, none)",
    )
    args = parser.parse_args()
    w = Workload(
        stride=args.stride, chunk=args.chunk, timesteps=args.timesteps, compressor=args.compressor
    )
    sources = dict(zip(("sat", "nwp"), _data(w), strict=True))
    chunks = {
        name: (_stored_chunks(w, name, arr), math.prod(arr.chunks) * arr.dtype.itemsize)
        for name, arr in sources.items()
    }
    work = decode_work(args.steps, w)
    print(work.report())
    names = args.runners.split(",")
    rates: dict[str, list[tuple[float, float]]] = {n: [] for n in names}
    limit: list[float] = []
    for _ in range(args.repeats):
        limit.append(decode_limit(work, chunks, w.numcodecs_codec()))
        print(f"  decode limit: {limit[-1]:.2f} GB/s delivered", flush=True)
        for name in names:
            for p in w.root.rglob("*"):  # page-cache the data just before each run
                if p.is_file():
                    p.read_bytes()
            rates[name].append(measure(RUNNERS[name], args.steps, w))
            print(
                f"  {name}: {rates[name][-1][0]:.0f} samples/s, {rates[name][-1][1]:.2f} GB/s",
                flush=True,
            )
    print()
    print("| runner | samples/s | GB/s delivered | lsio / runner (samples/s) |")
    print("|---|---|---|---|")
    lsio_rate = statistics.median(r[0] for r in rates["lsio"]) if "lsio" in rates else None
    for name in names:
        s = [r[0] for r in rates[name]]
        g = [r[1] for r in rates[name]]
        ratio = f"{lsio_rate / statistics.median(s):.2f}" if lsio_rate else "-"
        print(
            f"| {name} | {statistics.median(s):.0f} [{min(s):.0f}-{max(s):.0f}] | "
            f"{statistics.median(g):.2f} | {ratio} |"
        )
    print(
        f"| decode limit | | {statistics.median(limit):.2f} [{min(limit):.2f}-{max(limit):.2f}] | |"
    )
    if "lsio" in rates:
        paired = [r[1] / lim for r, lim in zip(rates["lsio"], limit, strict=True)]
        print()
        print(
            f"lsio / decode limit: {statistics.median(paired):.2f} "
            f"(per repeat {', '.join(f'{x:.2f}' for x in paired)})"
        )


if __name__ == "__main__":
    main()
