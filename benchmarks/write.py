"""Write throughput: lsio against zarr-python (default and zarrs) and tensorstore.

Usage::

    python -m benchmarks.write [--timesteps 16] [--repeats 3] [--writers lsio,tensorstore]
                               [--compressor zstd|gzip|blosc|none] [--after-delete]

Every writer stores the same satellite-like int16 blocks of (4, 11, 1024, 1024)
(generated in memory before timing) into a new array with inner chunks
(1, 11, 64, 64) compressed with zstd level 3 (or ``--compressor``: gzip level 5,
blosc zstd level 5 with byte shuffle, or none), sharded (4, 11, 512, 512) and
unsharded, under /tmp. Reports GB/s of input and the ratio to the best peer and
to the codec's own all-cores encode throughput on the same chunks. The rechunk
table follows with zstd only.

Every timed write goes to a new directory, and the outputs (the untimed
warm-up writes' too) are removed only after the last write: on this ext4 file
system (no journal) the inode allocator passes over every inode freed in the
last 60 s (360 s while its inode-table block is not yet written back) and
looks each one up, so files created after many were deleted cost up to ~2.8x
(116 against 41 us per file, measured), a cost of the deletion, not of the
writer. A run that starts within 65 s of the previous run's removal waits
out the rest. ``--after-delete`` removes each output right after
it is timed, as earlier runs of this benchmark did, so that every writer of an
unsharded array pays it.
"""

from __future__ import annotations

import argparse
import concurrent.futures as cf
import os
import shutil
import statistics
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from benchmarks.data import CHUNK, SHARD, generate, slab
from benchmarks.limits import warm

SIDE = 1024
ROOT = Path("/tmp/lsio-bench/write")


Region = tuple[slice, ...]
Write = Callable[[Region, np.ndarray], None]


# Each compressor as lsio, zarr-python and tensorstore spell it (the same settings).
COMPRESSORS = ["zstd", "gzip", "blosc", "none"]
_LSIO = {"zstd": "zstd:3", "gzip": "gzip:5", "blosc": "blosc:5", "none": None}
_TS: dict[str, list[dict[str, Any]]] = {
    "zstd": [{"name": "zstd", "configuration": {"level": 3}}],
    "gzip": [{"name": "gzip", "configuration": {"level": 5}}],
    "blosc": [
        {
            "name": "blosc",
            "configuration": {
                "cname": "zstd",
                "clevel": 5,
                "shuffle": "shuffle",
                "typesize": 2,
                "blocksize": 0,
            },
        }
    ],
    "none": [],
}


def _zarr_compressors(compressor: str) -> Any:
    import zarr.codecs as zc

    return {
        "zstd": zc.ZstdCodec(level=3),
        "gzip": zc.GzipCodec(level=5),
        "blosc": zc.BloscCodec(cname="zstd", clevel=5, shuffle="shuffle", typesize=2),
        "none": None,
    }[compressor]


def _lsio(
    path: Path, shape: tuple[int, ...], chunks: Any, shards: Any, compressor: str = "zstd"
) -> Write:
    import lsio

    a = lsio.create(
        path, shape=shape, dtype="int16", chunks=chunks, shards=shards, compressor=_LSIO[compressor]
    )

    def write(region: Region, block: np.ndarray) -> None:
        a[region] = block

    return write


def _zarr(pipeline: str) -> Callable[..., Write]:
    def make(
        path: Path, shape: tuple[int, ...], chunks: Any, shards: Any, compressor: str = "zstd"
    ) -> Write:
        import zarr

        config = (
            {"codec_pipeline.path": "zarrs.ZarrsCodecPipeline"}
            if pipeline == "zarrs"
            else {"codec_pipeline.path": "zarr.core.codec_pipeline.BatchedCodecPipeline"}
        )
        with zarr.config.set(config):
            a = zarr.create_array(
                str(path),
                shape=shape,
                dtype="int16",
                chunks=chunks,
                shards=shards,
                compressors=_zarr_compressors(compressor),
                fill_value=0,
            )

        def write(region: Region, block: np.ndarray) -> None:
            with zarr.config.set(config):
                a[region] = block

        return write

    return make


def _tensorstore(
    path: Path, shape: tuple[int, ...], chunks: Any, shards: Any, compressor: str = "zstd"
) -> Write:
    import tensorstore as ts

    inner = [{"name": "bytes", "configuration": {"endian": "little"}}, *_TS[compressor]]
    if shards is not None:
        codecs = [
            {
                "name": "sharding_indexed",
                "configuration": {
                    "chunk_shape": list(chunks),
                    "codecs": inner,
                    "index_codecs": [
                        {"name": "bytes", "configuration": {"endian": "little"}},
                        {"name": "crc32c"},
                    ],
                    "index_location": "end",
                },
            }
        ]
        grid = shards
    else:
        codecs, grid = inner, chunks
    spec = {
        "driver": "zarr3",
        "kvstore": {"driver": "file", "path": str(path)},
        "metadata": {
            "shape": list(shape),
            "data_type": "int16",
            "fill_value": 0,
            "codecs": codecs,
            "chunk_grid": {"name": "regular", "configuration": {"chunk_shape": list(grid)}},
        },
        "create": True,
        "delete_existing": True,
    }
    store = ts.open(spec).result()

    def write(region: Region, block: np.ndarray) -> None:
        store[region].write(block).result()

    return write


WRITERS: dict[str, Callable[..., Write]] = {
    "lsio": _lsio,
    "zarr-python": _zarr("default"),
    "zarr-python+zarrs": _zarr("zarrs"),
    "tensorstore": _tensorstore,
}


TS_CHUNKS = (24, 1, 32, 32)
TS_SHARDS = (24, 11, 256, 256)


def _rechunk(name: str, src: Path, dst: Path) -> None:
    """``src`` into the time-series layout: lsio.rechunk, or a peer's reads and writes by slabs."""
    import zarr

    if name == "lsio":
        import lsio

        lsio.rechunk(str(src), str(dst), chunks=TS_CHUNKS, shards=TS_SHARDS, compressor="zstd:3")
        return
    shape = tuple(zarr.open_array(str(src), mode="r").shape)
    if name == "tensorstore":
        import tensorstore as ts

        spec = {"driver": "zarr3", "kvstore": {"driver": "file", "path": str(src)}}
        source = ts.open(spec).result()

        def read(region: Region) -> np.ndarray:
            return np.asarray(source[region].read().result())

    else:
        source = zarr.open_array(str(src), mode="r")

        def read(region: Region) -> np.ndarray:
            return np.asarray(source[region])

    write = WRITERS[name](dst, shape, TS_CHUNKS, TS_SHARDS)
    for y in range(0, shape[2], TS_SHARDS[2]):  # slabs of whole destination shards
        region = (slice(None), slice(None), slice(y, y + TS_SHARDS[2]))
        write(region, read(region))


def _encoders(compressor: str) -> list[Callable[[], Callable[[np.ndarray], Any]]]:
    """Makers of per-thread chunk encoders for ``compressor``, each a way at hand to do it."""
    import numcodecs
    import zstandard

    from lsio.compute._deflate import deflate_compressors

    if compressor == "zstd":
        return [lambda: zstandard.ZstdCompressor(level=3, write_content_size=True).compress]
    if compressor == "blosc":
        return [lambda: numcodecs.Blosc(cname="zstd", clevel=5, shuffle=1, typesize=2).encode]
    makers: list[Callable[[], Callable[[np.ndarray], Any]]] = [
        lambda: numcodecs.GZip(level=5).encode
    ]
    fast = deflate_compressors()
    if fast is not None:
        makers.append(lambda: lambda c: fast.compress("gzip", 5, memoryview(c).cast("B")))
    return makers


def encode_limit(blocks: list[np.ndarray], threads: int, compressor: str = "zstd") -> float | None:
    """GB/s of encoding the (1, 11, 64, 64) chunks of a block on ``threads``.

    Uses the fastest encoder at hand, picked by measuring each with one thread,
    with one encoder per thread, as the writers would at best: zstd level 3
    with ``zstandard`` (zstd 1.5.7), gzip level 5 with libdeflate or zlib, blosc
    (zstd level 5, byte shuffle) with numcodecs' c-blosc. ``None`` for ``"none"``.
    """
    if compressor == "none":
        return None
    chunks = [
        np.ascontiguousarray(b[t, :, y : y + 64, x : x + 64])
        for b in blocks[:1]
        for t in range(b.shape[0])
        for y in range(0, SIDE, 64)
        for x in range(0, SIDE, 64)
    ]

    def rate(make: Callable[[], Callable[[np.ndarray], Any]], n: int, repeats: int) -> float:
        import threading

        local = threading.local()

        def encode(chunk: np.ndarray) -> Any:
            if not hasattr(local, "encode"):
                local.encode = make()
            return local.encode(chunk)

        best = float("inf")
        with cf.ThreadPoolExecutor(n) as pool:
            for _ in range(repeats):
                t0 = time.perf_counter()
                list(pool.map(encode, chunks))
                best = min(best, time.perf_counter() - t0)
        return sum(c.nbytes for c in chunks) / best / 1e9

    fastest = max(_encoders(compressor), key=lambda m: rate(m, 1, 1))
    return rate(fastest, threads, 3)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--timesteps", type=int, default=16)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--writers", default=",".join(WRITERS))
    parser.add_argument("--rechunk-only", action="store_true")
    parser.add_argument("--compressor", choices=COMPRESSORS, default="zstd")
    parser.add_argument(
        "--after-delete",
        action="store_true",
        help="remove each output right after it is timed (the next write follows a deletion)",
    )
    args = parser.parse_args()
    names = args.writers.split(",")
    if args.rechunk_only:
        _rechunk_table(names, args.repeats)
        return
    shape = (args.timesteps, 11, SIDE, SIDE)
    blocks = [slab(t, t + SHARD[0], SIDE) for t in range(0, args.timesteps, SHARD[0])]
    nbytes = sum(b.nbytes for b in blocks)
    cores = os.cpu_count() or 1
    print(f"input {nbytes / 1e9:.2f} GB")
    _settle()
    # The limit is measured in every repeat, beside the writers, and its median
    # taken: the load of this shared machine shifts between repeats.
    limits: list[float] = []
    rows = []
    # Outputs, warm-ups included, are removed only after the last write: ext4
    # without a journal makes each new file step over the inodes freed in the
    # last 60 s (see BENCHMARKS.md), which a removal right before a write would
    # put into that write's time.
    written: list[Path] = []
    for layout, shards in (("sharded", SHARD), ("unsharded", None)):
        for name in names:
            written.append(_warm_up(name, layout, blocks[0], shards, args.compressor))
        rates: dict[str, list[float]] = {}
        for repeat in range(args.repeats):
            now = encode_limit(blocks, cores, args.compressor)
            if now is not None:
                limits.append(now)
                print(
                    f"  {args.compressor} encode limit {now:.3f} GB/s ({cores} threads)", flush=True
                )
            for name in _turned(names, repeat):
                path = ROOT / f"{name}-{layout}-{repeat}.zarr"
                shutil.rmtree(path, ignore_errors=True)
                # Earlier writes reach the disk, and the file system's work for
                # earlier removals (discards: this disk is mounted with `discard`)
                # is done, before the clock starts.
                os.sync()
                write = WRITERS[name](path, shape, CHUNK, shards, args.compressor)
                t0 = time.perf_counter()
                for i, block in enumerate(blocks):
                    write((slice(i * SHARD[0], (i + 1) * SHARD[0]),), block)
                os.sync()  # every writer's data reaches the page cache's writeback alike
                rate = nbytes / (time.perf_counter() - t0) / 1e9
                rates.setdefault(name, []).append(rate)
                print(f"  {layout} {name}: {rate:.3f} GB/s", flush=True)
                written.append(path)
                if args.after_delete:
                    shutil.rmtree(path, ignore_errors=True)
        rows.append((layout, rates))
    _remove(written)
    limit = statistics.median(limits) if limits else None
    print()
    if limits:
        print(f"encode limit {limit:.3f} [{min(limits):.3f}-{max(limits):.3f}] GB/s")
    print("| layout | " + " | ".join(names) + " | lsio / best peer | lsio / encode limit |")
    print("|---|" + "---|" * len(names) + "---|---|")
    for layout, rates in rows:
        med = {n: statistics.median(v) for n, v in rates.items()}
        cells = " | ".join(f"{med[n]:.3f} [{min(rates[n]):.3f}-{max(rates[n]):.3f}]" for n in names)
        peers = [v for n, v in med.items() if n != "lsio"]
        best = f"{med['lsio'] / max(peers):.2f}" if "lsio" in med and peers else "-"
        lim = f"{med['lsio'] / limit:.2f}" if "lsio" in med and limit else "-"
        print(f"| {layout} | {cells} | {best} | {lim} |")

    if args.compressor == "zstd":
        _rechunk_table(names, args.repeats)


# When this benchmark last removed its outputs (a time.time() in the file).
_REMOVED_AT = ROOT / ".removed-at"
# ext4 without a journal passes over inodes freed in the last 60 s (RECENTCY_MIN
# in fs/ext4/ialloc.c; the benchmark syncs, so their blocks are written back).
_SETTLE_SECONDS = 65.0


def _remove(paths: list[Path]) -> None:
    """Remove the outputs, and note when, for the next run's :func:`_settle`."""
    for path in paths:
        shutil.rmtree(path, ignore_errors=True)
    os.sync()
    ROOT.mkdir(parents=True, exist_ok=True)
    _REMOVED_AT.write_text(repr(time.time()))


def _settle() -> None:
    """Wait until the last removal is 65 s old, so that no write pays for it."""
    try:
        left = float(_REMOVED_AT.read_text()) + _SETTLE_SECONDS - time.time()
    except (OSError, ValueError):
        return
    if left > 0:
        print(f"  waiting {left:.0f} s: the previous run's removal is recent", flush=True)
        time.sleep(left)


def _turned(names: list[str], repeat: int) -> list[str]:
    """``names`` turned by ``repeat`` places.

    No writer then always runs first (right after the encode limit's
    measurement) or always last.
    """
    k = repeat % len(names)
    return names[k:] + names[:k]


def _warm_up(
    name: str, layout: str, block: np.ndarray, shards: Any, compressor: str = "zstd"
) -> Path:
    """One untimed write of a shard's worth, so that one-time costs stay out of the rates.

    Thread pools start, libraries load, and lsio compiles its encoding kernel
    (about a second, once per process). Returns the output, for the caller to
    remove after the timed writes.
    """
    part = block[:, :, :512, :512]
    path = ROOT / f"{name}-{layout}-warm-up.zarr"
    shutil.rmtree(path, ignore_errors=True)
    WRITERS[name](path, part.shape, CHUNK, shards, compressor)((slice(None),), part)
    return path


def _rechunk_table(names: list[str], repeats: int) -> None:
    src = generate(Path("/tmp/lsio-bench"), "quick")["sat_sharded"]
    nbytes = 24 * 11 * 512 * 512 * 2
    rates: dict[str, list[float]] = {}
    # One untimed rechunk each, which also warms the writers: lsio compiles, once
    # per process, its read kernel and the page-cache helpers that whole-shard
    # reads use (~0.65 s, measured: the first timed rechunk ran at half speed
    # without it).
    for name in names:
        dst = ROOT / f"{name}-warm-rechunk.zarr"
        shutil.rmtree(dst, ignore_errors=True)
        _rechunk(name, src, dst)
        shutil.rmtree(dst, ignore_errors=True)
    for repeat in range(repeats):
        for name in _turned(names, repeat):
            dst = ROOT / f"{name}-rechunked.zarr"
            shutil.rmtree(dst, ignore_errors=True)
            os.sync()  # earlier removals finished before the clock starts, as above
            warm(src)
            t0 = time.perf_counter()
            _rechunk(name, src, dst)
            os.sync()
            rates.setdefault(name, []).append(nbytes / (time.perf_counter() - t0) / 1e9)
            print(f"  rechunk {name}: {rates[name][-1]:.3f} GB/s", flush=True)
            shutil.rmtree(dst, ignore_errors=True)
    med = {n: statistics.median(v) for n, v in rates.items()}
    print()
    print(
        "| rechunk to (24, 1, 32, 32) in (24, 11, 256, 256) | "
        + " | ".join(names)
        + " | lsio / best peer |"
    )
    print("|---|" + "---|" * len(names) + "---|")
    cells = " | ".join(f"{med[n]:.3f} [{min(rates[n]):.3f}-{max(rates[n]):.3f}]" for n in names)
    peers = [v for n, v in med.items() if n != "lsio"]
    best = f"{med['lsio'] / max(peers):.2f}" if "lsio" in med and peers else "-"
    print(f"| GB/s | {cells} | {best} |")


if __name__ == "__main__":
    main()
