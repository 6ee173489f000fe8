"""The machine's limits on the same data: raw reads, the codec alone, memcpy."""

from __future__ import annotations

import concurrent.futures as cf
import ctypes
import ctypes.util
import gc
import os
import subprocess
import time
import weakref
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numcodecs
import numpy as np


def files_of(path: Path) -> list[Path]:
    """Every chunk or shard file of an array."""
    metadata = {"zarr.json", ".zarray", ".zattrs", ".zgroup", ".zmetadata"}
    return sorted(p for p in path.rglob("*") if p.is_file() and p.name not in metadata)


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


def peak_rss() -> int:
    """This process's peak resident memory in bytes (``VmHWM``, Linux).

    Not ``getrusage``'s ``ru_maxrss``: a child started by ``subprocess`` (vfork,
    then exec) inherits the parent's peak there, so a small child would report
    its parent's memory.
    """
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) * 1024
    raise RuntimeError("no VmHWM in /proc/self/status")


def warm(path: Path) -> None:
    """Read an array's files so that they are in the page cache right now."""
    read_files(files_of(path), os.cpu_count() or 1)


def drop_caches() -> bool:
    """Empty the page cache (needs root); returns whether it worked.

    Objects no longer used are collected first: a reader's handle held in a
    reference cycle keeps its memory maps, and the page cache keeps pages
    that a process has mapped (measured: 2.5 MB of a sharded array's pages
    outlived ``drop_caches`` after 64 crops, until the handle was collected).
    """
    gc.collect()
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


Decode = Callable[[bytes, np.ndarray], None]


def _libzstd_decoder() -> Callable[[], Decode] | None:
    """A maker of per-thread decoders calling the system's libzstd, or ``None``.

    Each decoder keeps one decompression context and decodes with
    ``ZSTD_decompressDCtx`` through ctypes (the GIL released during the call),
    the least a Python caller can spend per chunk.
    """
    name = ctypes.util.find_library("zstd")
    if name is None:
        return None
    try:
        lib = ctypes.CDLL(name)
        lib.ZSTD_createDCtx.restype = ctypes.c_void_p
        lib.ZSTD_freeDCtx.argtypes = [ctypes.c_void_p]
        fn = lib.ZSTD_decompressDCtx
    except (OSError, AttributeError):
        return None
    fn.restype = ctypes.c_size_t
    fn.argtypes = [ctypes.c_void_p] + [ctypes.c_void_p, ctypes.c_size_t] * 2

    def make() -> Decode:
        ctx = lib.ZSTD_createDCtx()

        def decode(src: bytes, out: np.ndarray) -> None:
            if fn(ctx, out.ctypes.data, out.nbytes, src, len(src)) != out.nbytes:
                raise ValueError("libzstd: the chunk did not decode to its size")

        weakref.finalize(decode, lib.ZSTD_freeDCtx, ctx)  # the context lives as long as ``decode``
        return decode

    return make


def _numcodecs_decoder(codec: Any = None) -> Callable[[], Decode]:
    codec = codec if codec is not None else numcodecs.Zstd()

    def make() -> Decode:
        def decode(src: bytes, out: np.ndarray) -> None:
            codec.decode(src, out=out)

        return decode

    return make


def _lsio_decoder(name: str) -> Callable[[], Decode] | None:
    """A maker of decoders calling lsio's compiled decoder of ``name`` (the C library, by address)."""
    from lsio.compute import c_decoder

    decoder = c_decoder(name)
    if decoder is None:
        return None
    raw = decoder.raw

    def make() -> Decode:
        def decode(src: bytes, out: np.ndarray) -> None:
            view = np.frombuffer(src, dtype=np.uint8)
            if raw(out.ctypes.data, out.nbytes, view.ctypes.data, len(src)) != out.nbytes:
                raise ValueError(f"{name}: the chunk did not decode to its size")

        return decode

    return make


def _copy_decoder() -> Decode:
    def decode(src: bytes, out: np.ndarray) -> None:
        np.copyto(out, np.frombuffer(src, dtype=np.uint8))

    return decode


def _decode_all(
    chunks: list[bytes], chunk_nbytes: int, threads: int, make: Callable[[], Decode], repeats: int
) -> float:
    decoders = [make() for _ in range(threads)]
    outs = [np.empty(chunk_nbytes, dtype=np.uint8) for _ in range(threads)]

    def work(i: int) -> None:
        decode, out = decoders[i], outs[i]
        for c in chunks[i::threads]:
            decode(c, out)

    best = float("inf")
    with cf.ThreadPoolExecutor(threads) as pool:
        for _ in range(repeats):
            t0 = time.perf_counter()
            list(pool.map(work, range(threads)))
            best = min(best, time.perf_counter() - t0)
    return len(chunks) * chunk_nbytes / best


def codec_throughput(
    chunks: list[bytes], chunk_nbytes: int, threads: int, repeats: int = 3, codec: Any = None
) -> float:
    """Best decoded bytes/s of decoding ``chunks`` into reused buffers.

    ``codec`` is the numcodecs codec that wrote them (default zstd), or
    ``"none"`` for uncompressed chunks (then a copy). Uses the fastest decoder at
    hand, picked by measuring each on ``chunks`` with one thread: numcodecs, or
    the C library called directly (zstd: the system's libzstd, the build with
    zstd's assembly decoding loop, 5-15% faster here than numcodecs' bundled
    copy; blosc, gzip, zlib, lz4: the libraries lsio's compiled decoders call,
    libdeflate for gzip and zlib).
    """
    if isinstance(codec, str) and codec == "none":
        return _decode_all(chunks, chunk_nbytes, threads, _copy_decoder, repeats)
    makers: list[Callable[[], Decode]] = [_numcodecs_decoder(codec)]
    direct = (
        _libzstd_decoder()
        if codec is None or codec.codec_id == "zstd"
        else _lsio_decoder(codec.codec_id)
    )
    if direct is not None:
        makers.append(direct)
    make = max(makers, key=lambda m: _decode_all(chunks, chunk_nbytes, 1, m, 2))
    return _decode_all(chunks, chunk_nbytes, threads, make, repeats)


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
