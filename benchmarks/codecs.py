"""The same reads over the compressors users' arrays come with, lsio and its peers side by side.

Usage::

    python -m benchmarks.codecs [--size full|quick] [--repeats 3]
                                [--readers lsio,tensorstore,zarr-python+zarrs]
                                [--datasets v3-blosc-lz4,v2-gzip,...] [--workloads crops_batch,whole]

The satellite-like int16 data of :mod:`benchmarks.data` (time, channel=11, y,
x; (1, 11, 64, 64) chunks), stored once per compressor: Zarr v3 sharded
((4, 11, 512, 512) shards) with zstd, blosc (lz4 with byte shuffle; zstd with bit
shuffle), gzip and no compression; Zarr v2 unsharded with zarr-python 2's default
(blosc lz4, byte shuffle) and gzip. ``full`` is 48 timesteps of 1024 x 1024
(1.1 GB decoded per dataset), ``quick`` 8 of 512 x 512.

Workloads: random crops of (4, 11, 128, 128) in batches of 32, and the whole
array by (4, 11, Y, X) blocks, on page-cached files (read just before each
run). The limit is each compressor's all-cores decode throughput on the same
stored chunks with the fastest decoder at hand (see
:func:`benchmarks.limits.codec_throughput`), measured again before each repeat.
"""

from __future__ import annotations

import argparse
import functools
import math
import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from benchmarks import limits
from benchmarks.data import CHANNELS, CHUNK, SHARD, slab
from benchmarks.peers import Reader, all_readers
from benchmarks.run import (
    Result,
    batch_reader,
    crop_batches,
    measure_warm,
    print_results,
    read_each,
)

SIZES = {"full": (48, 1024), "quick": (8, 512)}


@dataclass(frozen=True)
class Dataset:
    """One stored form of the data: its format, sharding and compressor."""

    name: str
    zarr_format: int
    sharded: bool
    compressor: str  # "zstd", "blosc-lz4", "blosc-zstd", "gzip", "none"

    def zarr_compressors(self) -> Any:
        """The compressor as zarr-python takes it for this format."""
        import numcodecs
        import zarr.codecs as zc

        if self.compressor == "none":
            return None
        if self.zarr_format == 2:
            return {
                "blosc-lz4": numcodecs.Blosc(
                    cname="lz4", clevel=5, shuffle=numcodecs.Blosc.SHUFFLE
                ),
                "gzip": numcodecs.GZip(level=5),
                "zstd": numcodecs.Zstd(level=3),
            }[self.compressor]
        return {
            "zstd": zc.ZstdCodec(level=3),
            "blosc-lz4": zc.BloscCodec(cname="lz4", clevel=5, shuffle="shuffle"),
            "blosc-zstd": zc.BloscCodec(cname="zstd", clevel=5, shuffle="bitshuffle"),
            "gzip": zc.GzipCodec(level=5),
        }[self.compressor]

    def numcodecs_codec(self) -> Any:
        """The numcodecs codec that decodes one stored chunk (``"none"`` if uncompressed)."""
        import numcodecs

        name = self.compressor.split("-")[0]
        return "none" if name == "none" else numcodecs.get_codec({"id": name})


DATASETS = [
    Dataset("v3-sharded-zstd", 3, True, "zstd"),
    Dataset("v3-sharded-blosc-lz4", 3, True, "blosc-lz4"),
    Dataset("v3-sharded-blosc-zstd", 3, True, "blosc-zstd"),
    Dataset("v3-sharded-gzip", 3, True, "gzip"),
    Dataset("v3-sharded-none", 3, True, "none"),
    Dataset("v2-blosc-lz4", 2, False, "blosc-lz4"),
    Dataset("v2-gzip", 2, False, "gzip"),
]


def generate(root: Path, size: str, ds: Dataset) -> Path:
    """Write ``ds`` below ``root`` with zarr-python unless a complete copy is there."""
    import zarr

    time_n, side = SIZES[size]
    path = root / f"codecs-{size}" / f"{ds.name}.zarr"
    done = path.parent / f"{ds.name}.COMPLETE"
    if done.exists():
        return path
    a = zarr.create_array(
        str(path),
        shape=(time_n, CHANNELS, side, side),
        chunks=CHUNK,
        shards=(*SHARD[:2], min(SHARD[2], side), min(SHARD[3], side)) if ds.sharded else None,
        dtype="int16",
        fill_value=0,
        compressors=ds.zarr_compressors(),
        zarr_format=ds.zarr_format,  # type: ignore[arg-type]
        overwrite=True,
    )
    t0 = time.perf_counter()
    for t in range(0, time_n, SHARD[0]):
        a[t : t + SHARD[0]] = slab(t, min(t + SHARD[0], time_n), side)
    print(f"  wrote {ds.name} in {time.perf_counter() - t0:.0f} s", flush=True)
    done.write_text("ok\n")
    return path


def stored_chunks(path: Path, ds: Dataset, limit: int = 1024) -> list[bytes]:
    """Up to ``limit`` stored chunks of ``ds`` (inner chunks when sharded)."""
    files = limits.files_of(path)
    if ds.sharded:
        per_shard = math.prod(s // c for s, c in zip(SHARD, CHUNK, strict=True))
        return limits.stored_inner_chunks(files, per_shard, limit)
    return [p.read_bytes() for p in files[:limit]]


def _warm_read(path: Path, threads: int) -> float:
    """Bytes/s of reading ``path``'s files whole, just after reading them once."""
    limits.warm(path)
    nbytes, secs = limits.read_files(limits.files_of(path), threads)
    return nbytes / secs


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--data-dir", default="/tmp/lsio-bench")
    parser.add_argument("--size", choices=sorted(SIZES), default="full")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--readers", default="lsio,tensorstore,zarr-python+zarrs")
    parser.add_argument("--datasets", default=",".join(d.name for d in DATASETS))
    parser.add_argument("--workloads", default="crops_batch,whole")
    parser.add_argument("--n-batches", type=int, default=8)
    args = parser.parse_args()

    wanted = set(args.readers.split(","))
    readers: list[Reader] = [r for r in all_readers() if r.name in wanted]
    chosen = {d.name: d for d in DATASETS}
    unknown = set(args.datasets.split(",")) - set(chosen)
    if unknown:
        parser.error(f"unknown datasets {sorted(unknown)}; choose from {sorted(chosen)}")
    datasets = [chosen[n] for n in args.datasets.split(",")]
    workloads = args.workloads.split(",")
    cores = os.cpu_count() or 1
    chunk_nbytes = math.prod(CHUNK) * 2
    results: list[Result] = []
    for ds in datasets:
        path = generate(Path(args.data_dir), args.size, ds)
        sample = stored_chunks(path, ds)
        codec = ds.numcodecs_codec()
        ratio = len(sample) * chunk_nbytes / sum(map(len, sample))
        throughput: Any = functools.partial(
            limits.codec_throughput, sample, chunk_nbytes, cores, codec=codec
        )
        if codec == "none":
            # Nothing to decode: the limit is copying the files out of the page
            # cache (a copy of chunks that sit in L2 would overstate it ~2x).
            throughput = functools.partial(_warm_read, path, cores)
        codec_n = throughput()
        print(
            f"{ds.name}: compression ratio {ratio:.2f}, decode limit {codec_n / 1e9:.2f} GB/s "
            f"({cores} threads)",
            flush=True,
        )

        def limit_now(res: Result, base: float = codec_n, now: Any = throughput) -> float:
            assert res.limit is not None
            return float(res.limit * now() / base)

        import zarr

        shape = tuple(zarr.open_array(str(path), mode="r").shape)
        if "crops_batch" in workloads:
            batches, decoded = crop_batches(shape, args.n_batches, chunk_nbytes)
            res = Result(f"{ds.name}: crops in batches of 32", "samples/s", limit=codec_n / decoded)
            measure_warm(
                res,
                readers,
                path,
                batch_reader(batches),
                32 * len(batches),
                args.repeats,
                limit_now,
            )
            results.append(res)
        if "whole" in workloads:
            blocks = [(slice(t, t + SHARD[0]),) for t in range(0, shape[0], SHARD[0])]
            res = Result(f"{ds.name}: whole array by blocks", "GB/s", limit=codec_n / 1e9)
            measure_warm(
                res,
                readers,
                path,
                functools.partial(read_each, sels=blocks),
                math.prod(shape) * 2 / 1e9,
                args.repeats,
                limit_now,
            )
            results.append(res)
    print_results(results, [r.name for r in readers])


if __name__ == "__main__":
    main()
