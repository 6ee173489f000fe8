"""The machine's limits on the same data: raw reads, the codec alone, memcpy."""

from __future__ import annotations

import concurrent.futures as cf
import os
import subprocess
import time
from pathlib import Path

import numcodecs
import numpy as np


def files_of(path: Path) -> list[Path]:
    """Every chunk or shard file of an array."""
    return sorted(p for p in path.rglob("*") if p.is_file() and p.name != "zarr.json")


def _read_file(path: Path, buf: np.ndarray) -> int:
    fd = os.open(path, os.O_RDONLY)
    try:
        total = 0
        while True:
            n = os.preadv(fd, [buf], total)
            if n == 0:
                return total
            total += n
    finally:
        os.close(fd)


def read_files(paths: list[Path], threads: int) -> tuple[int, float]:
    """Read every file whole with ``threads`` threads; returns (bytes, seconds)."""
    chunk = 64 << 20
    local = [np.empty(chunk, dtype=np.uint8) for _ in range(threads)]

    def work(i: int) -> int:
        buf = local[i]
        return sum(
            _read_file(p, buf) if p.stat().st_size <= chunk else len(p.read_bytes())
            for p in paths[i::threads]
        )

    t0 = time.perf_counter()
    with cf.ThreadPoolExecutor(threads) as pool:
        total = sum(pool.map(work, range(threads)))
    return total, time.perf_counter() - t0


def warm(path: Path) -> None:
    """Read an array's files so that they are in the page cache right now."""
    read_files(files_of(path), os.cpu_count() or 1)


def drop_caches() -> bool:
    """Empty the page cache (needs root); returns whether it worked."""
    try:
        subprocess.run(["sync"], check=True)
        Path("/proc/sys/vm/drop_caches").write_text("3\n")
    except OSError:
        return False
    return True


def stored_inner_chunks(shard_paths: list[Path], inner_per_shard: int, limit: int) -> list[bytes]:
    """The stored bytes of up to ``limit`` inner chunks, from shard indexes at the end."""
    chunks: list[bytes] = []
    index_size = inner_per_shard * 16 + 4
    for p in shard_paths:
        raw = p.read_bytes()
        index = np.frombuffer(raw[-index_size:-4], dtype="<u8").reshape(-1, 2)
        for off, n in index:
            if off != 2**64 - 1:
                chunks.append(raw[int(off) : int(off + n)])
            if len(chunks) >= limit:
                return chunks
    return chunks


def codec_throughput(
    chunks: list[bytes], chunk_nbytes: int, threads: int, repeats: int = 3
) -> float:
    """Best decoded bytes/s of zstd-decoding ``chunks`` into reused buffers."""
    codec = numcodecs.Zstd()
    outs = [np.empty(chunk_nbytes, dtype=np.uint8) for _ in range(threads)]

    def work(i: int) -> None:
        out = outs[i]
        for c in chunks[i::threads]:
            codec.decode(c, out=out)

    best = float("inf")
    with cf.ThreadPoolExecutor(threads) as pool:
        for _ in range(repeats):
            t0 = time.perf_counter()
            list(pool.map(work, range(threads)))
            best = min(best, time.perf_counter() - t0)
    return len(chunks) * chunk_nbytes / best


def memcpy_bandwidth(nbytes: int = 256 << 20, repeats: int = 5) -> float:
    """Best bytes/s of one-thread ``np.copyto`` of a large buffer."""
    src = np.ones(nbytes, dtype=np.uint8)
    dst = np.empty_like(src)
    best = float("inf")
    for _ in range(repeats):
        t0 = time.perf_counter()
        np.copyto(dst, src)
        best = min(best, time.perf_counter() - t0)
    return nbytes / best
