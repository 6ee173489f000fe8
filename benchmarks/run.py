"""Run lsio and its peers side by side on the same data; print a Markdown table.

Usage::

    python -m benchmarks.run [--size full|quick] [--repeats 3] [--readers lsio,tensorstore]
                             [--workloads crops_one,crops_batch,whole,small_chunks] [--cold]
                             [--json results.json]

Every measurement reads page-cached files (each array is read once just before
it is measured, since this machine evicts idle page cache within ~30 s), except
the ``--cold`` rows, which drop the page cache first (needs root). The
all-cores codec limit is measured again before each repeat, and "lsio / codec
limit" is the median over repeats of lsio's value against the limit measured
just before it: this machine's speed moves by tens of percent within a run.
"""

from __future__ import annotations

import argparse
import functools
import json
import math
import os
import statistics
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from benchmarks import limits
from benchmarks.data import CHUNK, SHARD, SMALL_CHUNK, generate
from benchmarks.peers import Reader, Selection, all_readers
from lsio.ml import random_crops

CROP = (4, 11, 128, 128)


@dataclass
class Result:
    workload: str
    unit: str
    values: dict[str, list[float]] = field(default_factory=dict)
    limit: float | None = None  # the same unit at the machine's limit (all-cores codec)
    note: str = ""
    # The limit measured again just before each repeat (warm runs), so a ratio to
    # it pairs values taken under the same load from the machine's other tenants.
    limits: list[float] = field(default_factory=list)

    def paired(self) -> list[float]:
        """lsio's value in each repeat over the limit measured just before it."""
        return [v / lim for v, lim in zip(self.values["lsio"], self.limits, strict=True)]


def chunks_touched(sels: list[tuple[slice, ...]], chunk: tuple[int, ...]) -> set[tuple[int, ...]]:
    touched: set[tuple[int, ...]] = set()
    for sel in sels:
        ranges = [
            range(s.start // c, (s.stop - 1) // c + 1) for s, c in zip(sel, chunk, strict=True)
        ]
        touched.update(_product(ranges))
    return touched


def _product(ranges: list[range]) -> set[tuple[int, ...]]:
    import itertools

    return set(itertools.product(*ranges))


def read_each(reader: Reader, handle: Any, sels: Sequence[Selection]) -> None:
    """Read the selections one after the other, dropping each result before the next.

    The streaming pattern the workloads stand for: a consumer uses a crop or a
    block and lets it go, so memory stays bounded by one result. (Keeping them
    all, as a list would, made every reader fault in fresh pages for the whole
    array, 3.9 GB, which cost lsio ~35% on whole-array reads in-process.)
    """
    for sel in sels:
        reader.read(handle, sel)


def timed(fn: Callable[[], Any], repeats: int) -> list[float]:
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return times


def fmt(values: list[float]) -> str:
    med = statistics.median(values)
    if len(values) == 1:
        return f"{med:,.3g}"
    return f"{med:,.3g} [{min(values):,.3g}-{max(values):,.3g}]"


def crop_batches(
    shape: tuple[int, ...], n_batches: int, chunk_nbytes: int
) -> tuple[list[list[tuple[slice, ...]]], float]:
    """Batches of 32 random crops of ``CROP`` (seeded), and the bytes decoded per crop."""
    batches = [random_crops(shape, CROP, 32, seed=100 + b) for b in range(n_batches)]
    touched = sum(len(chunks_touched(b, CHUNK)) for b in batches)
    return batches, touched * chunk_nbytes / (32 * n_batches)


def batch_reader(batches: list[list[tuple[slice, ...]]]) -> Callable[[Reader, Any], None]:
    """Reads each batch with the reader's batch call into one reused output."""
    out = np.empty((32, *CROP), dtype=np.int16)

    def run(reader: Reader, handle: Any) -> None:
        for batch in batches:
            reader.read_batch(handle, batch, out)

    return run


def measure_warm(
    res: Result,
    readers: Sequence[Reader],
    path: Path,
    run: Callable[[Reader, Any], Any],
    scale: float,
    repeats: int,
    limit_now: Callable[[Result], float],
) -> None:
    """Time ``run`` for each reader on page-cached ``path``; ``scale`` units per run.

    Each reader runs once first (opening files, filling metadata caches). The
    repeats go round the readers, so a burst of load from the machine's other
    tenants falls on every reader alike rather than on one; the files are read
    just before each run (idle page cache is evicted within ~30 s here), and
    ``limit_now`` measures the limit again before each repeat.
    """
    handles = {}
    for reader in readers:
        handles[reader.name] = reader.open(path)
        run(reader, handles[reader.name])
    times: dict[str, list[float]] = {r.name: [] for r in readers}
    for _ in range(repeats):
        res.limits.append(limit_now(res))
        for reader in readers:
            limits.warm(path)
            times[reader.name] += timed(functools.partial(run, reader, handles[reader.name]), 1)
    for reader in readers:
        res.values[reader.name] = [scale / t for t in times[reader.name]]
        print(
            f"  {res.workload:<34} {reader.name:<20} {fmt(res.values[reader.name])} {res.unit}",
            flush=True,
        )


def print_results(results: Sequence[Result], names: Sequence[str]) -> None:
    """The Markdown table (medians, spread, lsio / best peer, lsio / limit) and the notes."""
    print()
    print("| workload | unit | " + " | ".join(names) + " | lsio / best peer | lsio / codec limit |")
    print("|---|---|" + "---|" * len(names) + "---|---|")
    for res in results:
        meds = {n: statistics.median(v) for n, v in res.values.items()}
        peers = [v for n, v in meds.items() if not n.startswith("lsio")]
        ratio = f"{meds['lsio'] / max(peers):.2f}" if "lsio" in meds and peers else "-"
        lim_ratio = "-"
        if "lsio" in meds and res.limits:
            lim_ratio = f"{statistics.median(res.paired()):.2f}"
        elif "lsio" in meds and res.limit:
            lim_ratio = f"{meds['lsio'] / res.limit:.2f}"
        cells = " | ".join(fmt(res.values[n]) for n in names)
        print(f"| {res.workload} | {res.unit} | {cells} | {ratio} | {lim_ratio} |")
    print()
    for res in results:
        if res.note:
            limit = statistics.median(res.limits) if res.limits else res.limit
            print(f"- {res.workload}: {res.note}; codec limit {limit:,.3g} {res.unit}")
    for res in results:
        if res.limits and "lsio" in res.values:
            paired = ", ".join(f"{x:.2f}" for x in res.paired())
            print(
                f"- {res.workload}: codec limit per repeat {fmt(res.limits)} {res.unit}; "
                f"lsio / limit per repeat {paired}"
            )


def check_readers_agree(
    readers: Sequence[Reader], path: Path, sels: Sequence[Selection], batch: Sequence[Selection]
) -> None:
    """Every reader returns the same values as the first for ``sels`` and, as a batch, ``batch``.

    A reader that returned other values faster would not be beating anyone:
    the comparison stops here, naming it.
    """
    want: list[np.ndarray] | None = None
    first = ""
    for reader in readers:
        handle = reader.open(path)
        got = [np.asarray(reader.read(handle, sel)) for sel in sels]
        if batch:
            out = np.empty((len(batch), *CROP), dtype=np.int16)
            reader.read_batch(handle, batch, out)
            got.append(out)
        if want is None:
            want, first = got, reader.name
        elif not all(np.array_equal(a, b) for a, b in zip(want, got, strict=True)):
            raise SystemExit(f"{reader.name} and {first} read different values from {path}")
    print(
        f"  {len(readers)} readers agree on {path.name} ({len(sels) + bool(batch)} reads)",
        flush=True,
    )


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--data-dir", default="/tmp/lsio-bench")
    parser.add_argument("--size", choices=["full", "quick"], default="full")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--readers", default="")
    parser.add_argument("--workloads", default="crops_one,crops_batch,whole,small_chunks")
    parser.add_argument("--n-crops", type=int, default=64)
    parser.add_argument("--n-batches", type=int, default=8)
    parser.add_argument("--cold", action="store_true")
    parser.add_argument("--json", default="")
    args = parser.parse_args()

    paths = generate(Path(args.data_dir), args.size)
    readers = all_readers()
    if args.readers:
        wanted = set(args.readers.split(","))
        readers = [r for r in readers if r.name in wanted]
    workloads = args.workloads.split(",")
    cores = os.cpu_count() or 1
    results: list[Result] = []

    # -- the machine's limits ----------------------------------------------------
    shard_files = limits.files_of(paths["sat_sharded"])
    sample = limits.stored_inner_chunks(
        shard_files, math.prod(s // c for s, c in zip(SHARD, CHUNK, strict=True)), 2048
    )
    chunk_nbytes = math.prod(CHUNK) * 2
    codec_1 = limits.codec_throughput(sample, chunk_nbytes, 1)
    codec_n = limits.codec_throughput(sample, chunk_nbytes, cores)
    small_files = limits.files_of(paths["small_chunks"])
    small_sample = limits.stored_inner_chunks(
        small_files, math.prod(s // c for s, c in zip(SHARD, SMALL_CHUNK, strict=True)), 20000
    )
    small_nbytes = math.prod(SMALL_CHUNK) * 2
    small_1 = limits.codec_throughput(small_sample, small_nbytes, 1) / small_nbytes
    small_n = limits.codec_throughput(small_sample, small_nbytes, cores) / small_nbytes
    limits.warm(paths["sat_sharded"])
    nbytes, secs = limits.read_files(shard_files, cores)
    raw_warm = nbytes / secs
    memcpy = limits.memcpy_bandwidth()
    print(
        f"codec zstd decode: {codec_1 / 1e9:.2f} GB/s (1 thread), {codec_n / 1e9:.2f} GB/s ({cores} threads)"
    )
    print(
        f"codec, 8 KB chunks: {small_1:,.0f} chunks/s (1 thread), {small_n:,.0f} chunks/s ({cores} threads)"
    )
    print(
        f"raw read warm: {raw_warm / 1e9:.2f} GB/s stored; memcpy {memcpy / 1e9:.2f} GB/s",
        flush=True,
    )
    lim = {
        "codec_1": codec_1,
        "codec_n": codec_n,
        "small_1": small_1,
        "small_n": small_n,
        "raw_warm": raw_warm,
        "memcpy": memcpy,
    }
    if args.cold and limits.drop_caches():
        nbytes, secs = limits.read_files(shard_files, cores)
        lim["raw_cold"] = nbytes / secs
        print(f"raw read cold: {lim['raw_cold'] / 1e9:.2f} GB/s stored", flush=True)

    def codec_now(res: Result) -> float:
        """The all-cores codec limit in ``res``'s unit, measured now."""
        assert res.limit is not None
        if res.unit == "chunks/s":
            now = limits.codec_throughput(small_sample, small_nbytes, cores) / small_nbytes
            return res.limit * now / small_n
        return res.limit * limits.codec_throughput(sample, chunk_nbytes, cores) / codec_n

    def measure(
        res: Result, path: Path, run: Callable[[Reader, Any], Any], scale: float, cold: bool = False
    ) -> None:
        if cold:
            # The repeats go round the readers, as for warm rows, so that a slow
            # spell of the shared disk falls on every reader alike.
            times: dict[str, list[float]] = {r.name: [] for r in readers}
            for _ in range(args.repeats):
                for reader in readers:
                    handle = reader.open(path)  # no cached shard indexes either
                    limits.drop_caches()
                    t0 = time.perf_counter()
                    run(reader, handle)
                    times[reader.name].append(time.perf_counter() - t0)
            for reader in readers:
                res.values[reader.name] = [scale / t for t in times[reader.name]]
                print(
                    f"  {res.workload:<34} {reader.name:<20} {fmt(res.values[reader.name])} {res.unit}",
                    flush=True,
                )
        else:
            measure_warm(res, readers, path, run, scale, args.repeats, codec_now)
        results.append(res)

    cold = args.cold and os.geteuid() == 0  # dropping the page cache needs root
    for key in ("sat_sharded", "sat_unsharded"):
        import zarr

        shape = tuple(zarr.open_array(str(paths[key]), mode="r").shape)
        crop_bytes = math.prod(CROP) * 2
        check_readers_agree(
            readers,
            paths[key],
            [*random_crops(shape, CROP, 2, seed=7), (slice(0, SHARD[0]),)],
            random_crops(shape, CROP, 4, seed=8),
        )
        if "crops_one" in workloads:
            sels = random_crops(shape, CROP, args.n_crops, seed=1)
            decoded = sum(len(chunks_touched([s], CHUNK)) for s in sels) * chunk_nbytes / len(sels)
            res = Result(f"{key}: crops one by one", "samples/s", limit=codec_n / decoded)
            res.note = f"{decoded / crop_bytes:.2f}x bytes decoded per byte delivered"
            measure(res, paths[key], functools.partial(read_each, sels=sels), len(sels))
            if cold:
                res = Result(f"{key}: crops one by one, COLD cache", "samples/s")
                measure(
                    res, paths[key], functools.partial(read_each, sels=sels), len(sels), cold=True
                )
        if "crops_batch" in workloads:
            batches, decoded = crop_batches(shape, args.n_batches, chunk_nbytes)
            res = Result(f"{key}: crops in batches of 32", "samples/s", limit=codec_n / decoded)
            res.note = f"{decoded / crop_bytes:.2f}x bytes decoded per byte delivered"
            measure(res, paths[key], batch_reader(batches), 32 * len(batches))
            if cold:
                res = Result(f"{key}: crops in batches of 32, COLD cache", "samples/s")
                measure(res, paths[key], batch_reader(batches), 32 * len(batches), cold=True)
        if "whole" in workloads:
            slabs = [(slice(t, t + SHARD[0]),) for t in range(0, shape[0], SHARD[0])]
            total = math.prod(shape) * 2
            res = Result(f"{key}: whole array by (4, 11, Y, X) blocks", "GB/s", limit=codec_n / 1e9)
            measure(res, paths[key], functools.partial(read_each, sels=slabs), total / 1e9)
            if cold:
                res = Result(
                    f"{key}: whole array by blocks, COLD cache", "GB/s", limit=codec_n / 1e9
                )
                measure(
                    res,
                    paths[key],
                    functools.partial(read_each, sels=slabs),
                    total / 1e9,
                    cold=True,
                )
    if "small_chunks" in workloads:
        import zarr

        shape = tuple(zarr.open_array(str(paths["small_chunks"]), mode="r").shape)
        slabs = [(slice(t, t + SHARD[0]),) for t in range(0, shape[0], SHARD[0])]
        check_readers_agree(readers, paths["small_chunks"], [slabs[0], slabs[-1]], [])
        n_chunks = math.prod(s // c for s, c in zip(shape, SMALL_CHUNK, strict=True))
        res = Result("small_chunks: every 8 KB chunk, by blocks", "chunks/s", limit=small_n)
        measure(res, paths["small_chunks"], functools.partial(read_each, sels=slabs), n_chunks)

    names = [r.name for r in readers]
    print_results(results, names)
    if args.json:
        Path(args.json).write_text(
            json.dumps({"limits": lim, "results": [r.__dict__ for r in results]}, indent=2)
        )


if __name__ == "__main__":
    main()
