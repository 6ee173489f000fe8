"""Reading ahead of workers: only files on disk, only a window ahead, and the thread ends."""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import lsio
import zarr
from lsio.io import ReadAhead, c_strings, probe_files, read_ahead_available
from lsio.io._readahead import (
    PROBE_EVERY,
    WILLNEED_PIECE,
    _openat2,
    advice_bytes,
    merged_spans,
    on_disk,
    split_spans,
)
from tests.mapped import cached_pages

pytestmark = pytest.mark.skipif(not read_ahead_available(), reason="Linux's libc calls")


def evict(paths: list[Path]) -> None:
    """Drop the files' pages from the page cache (clean pages: no root needed)."""
    for path in paths:
        fd = os.open(path, os.O_RDONLY)
        try:
            os.fsync(fd)
            os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
        finally:
            os.close(fd)


def make_files(root: Path, n: int, size: int = 20_000) -> list[Path]:
    paths = [root / f"f{i}" for i in range(n)]
    for i, path in enumerate(paths):
        path.write_bytes(np.random.default_rng(i).integers(0, 256, size, np.uint8).tobytes())
    return paths


def cold_zarr(path: Path, values: np.ndarray, **kwargs: Any) -> list[Path]:
    """``values`` written by zarr-python in (1, 64, 64) chunks, its files evicted; returns them."""
    z = zarr.create_array(
        str(path), shape=values.shape, chunks=(1, 64, 64), dtype=values.dtype, **kwargs
    )
    z[...] = values
    files = [p for p in path.rglob("*") if p.is_file() and p.name != "zarr.json"]
    evict(files)
    return files


def wait_for(check: Callable[[], bool], seconds: float = 10.0) -> bool:
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        if check():
            return True
        time.sleep(0.01)
    return check()


def start(paths: list[Path], taken: np.ndarray, window: int, idle: float = 10.0) -> ReadAhead:
    names, name_at = c_strings([os.fsencode(p) for p in paths])
    ahead = ReadAhead(names, name_at, taken, window=window, idle=idle)
    ahead.start()
    return ahead


def test_files_on_disk_are_read_a_window_ahead(tmp_path: Path) -> None:
    paths = make_files(tmp_path, 40)
    evict(paths)
    if any(cached_pages(p) for p in paths):
        pytest.skip("this file system keeps the pages cached")
    taken = np.zeros(1, dtype=np.int64)
    ahead = start(paths, taken, window=8)
    assert wait_for(lambda: ahead.state[0] == 8)
    time.sleep(0.05)
    assert ahead.state[0] == 8  # no further than the window
    assert wait_for(lambda: all(cached_pages(p) == 5 for p in paths[:8]))
    assert not any(cached_pages(p) for p in paths[8:])
    taken[0] = 20  # the workers took files 0-19 themselves
    assert wait_for(lambda: ahead.state[0] == 16)
    assert wait_for(lambda: all(cached_pages(p) == 5 for p in paths[20:28]))
    assert not any(cached_pages(p) for p in paths[8:20] + paths[28:])
    taken[0] = len(paths)
    assert ahead.join(5)


def test_cached_files_are_only_probed(tmp_path: Path) -> None:
    paths = make_files(tmp_path, 64)
    for p in paths:
        p.read_bytes()
    taken = np.zeros(1, dtype=np.int64)
    ahead = start(paths, taken, window=64)
    assert wait_for(lambda: ahead.state[1] == 64 // PROBE_EVERY)
    time.sleep(0.05)
    assert ahead.state[0] == 0
    assert ahead.state[1] == 64 // PROBE_EVERY
    taken[0] = 64
    assert ahead.join(5)


def test_the_thread_gives_up_when_no_file_is_taken(tmp_path: Path) -> None:
    paths = make_files(tmp_path, 4)
    ahead = start(paths, np.zeros(1, dtype=np.int64), window=2, idle=0.05)
    assert ahead.join(5)


def test_missing_files_are_passed_over(tmp_path: Path) -> None:
    paths = make_files(tmp_path, 3)
    evict(paths)
    listed = [tmp_path / "missing", *paths]
    taken = np.zeros(1, dtype=np.int64)
    ahead = start(listed, taken, window=4)
    assert wait_for(lambda: ahead.state[0] == 3)
    taken[0] = 4
    assert ahead.join(5)


def test_a_cold_whole_array_read_of_chunk_files_is_right(tmp_path: Path) -> None:
    # Enough chunk files for the workers to claim them in groups, with read-ahead.
    values = np.random.default_rng(1).integers(0, 5000, (4, 64, 64 * 160), dtype=np.int16)
    path = tmp_path / "a.zarr"
    cold_zarr(path, values)
    np.testing.assert_array_equal(lsio.open_array(path)[...], values)


spans_strategy = st.lists(
    st.tuples(st.integers(0, 3), st.integers(0, 10_000), st.integers(0, 5_000)),
    min_size=0,
    max_size=30,
).map(lambda rows: np.array([(k, a, a + n) for k, a, n in rows], dtype=np.int64).reshape(-1, 3))


def covered(spans: np.ndarray) -> set[tuple[int, int]]:
    return {(int(k), b) for k, a, e in spans for b in range(int(a), int(e))}


@settings(max_examples=200, deadline=None)
@given(spans=spans_strategy, gap=st.integers(0, 3000))
def test_merged_spans_cover_the_same_bytes_and_no_more_than_gaps(
    spans: np.ndarray, gap: int
) -> None:
    merged = merged_spans(spans, gap)
    assert covered(spans) <= covered(merged)
    # What merging adds lies in gaps of at most ``gap`` bytes between spans of one object.
    for k, a, e in merged:
        mine = spans[(spans[:, 0] == k) & (spans[:, 1] >= a) & (spans[:, 1] <= e)]
        assert a in set(mine[:, 1].tolist())
        assert e in set(mine[:, 2].tolist())
        reach = a  # holes between the spans merged into this row: none longer than gap
        for start, stop in sorted(zip(mine[:, 1].tolist(), mine[:, 2].tolist(), strict=True)):
            assert start - reach <= gap
            reach = max(reach, stop)
    order = np.lexsort((merged[:, 1], merged[:, 0]))
    np.testing.assert_array_equal(order, np.arange(len(merged)))


@settings(max_examples=200, deadline=None)
@given(spans=spans_strategy, piece=st.integers(1, 4000))
def test_split_spans_cut_into_pieces_that_tile_each_span(spans: np.ndarray, piece: int) -> None:
    pieces = split_spans(spans, piece)
    assert ((pieces[:, 2] - pieces[:, 1]) <= piece).all()
    assert covered(pieces) == covered(spans) if len(spans) else len(pieces) == 0
    nonempty = spans[spans[:, 2] > spans[:, 1]]
    assert int((pieces[:, 2] - pieces[:, 1]).sum()) == int((nonempty[:, 2] - nonempty[:, 1]).sum())


def test_probes_tell_a_file_on_disk_from_a_cached_one(tmp_path: Path) -> None:
    big, small = make_files(tmp_path, 2)
    big.write_bytes(np.random.default_rng(9).integers(0, 256, 600_000, np.uint8).tobytes())
    for path in (big, small):
        path.read_bytes()
        assert on_disk(os.fsencode(path)) is False
    evict([big, small])
    if cached_pages(small):
        pytest.skip("this file system keeps the pages cached")
    assert on_disk(os.fsencode(small)) is True
    missing = os.fsencode(tmp_path / "missing")
    assert on_disk(missing) is None  # cannot tell: the reader reports it
    # A name never looked up waits for the device: the next file answers.
    never = os.fsencode(tmp_path / "never-looked-up")
    cached = tmp_path / "cached"
    cached.write_bytes(b"x" * 5000)
    assert probe_files([never, os.fsencode(cached)]) is False
    evict([small])  # the probe itself started reading the file
    assert probe_files([missing, os.fsencode(small)]) is True
    assert probe_files([missing]) is None
    # A file larger than one advice is read ahead whole, in pieces.
    taken = np.zeros(1, dtype=np.int64)
    ahead = start([big], taken, window=4)
    pages = -(-600_000 // 4096)
    assert wait_for(lambda: cached_pages(big) == pages)
    taken[0] = 1
    assert ahead.join(5)


def test_a_cold_whole_array_read_of_shards_is_right(tmp_path: Path) -> None:
    # Spans not in the page cache are asked for at once (MADV_WILLNEED), then read.
    values = np.random.default_rng(2).integers(0, 5000, (8, 256, 512), dtype=np.int16)
    path = tmp_path / "s.zarr"
    shards = cold_zarr(path, values, shards=(4, 256, 256))
    a = lsio.open_array(path)
    np.testing.assert_array_equal(a[...], values)
    evict(shards)
    np.testing.assert_array_equal(a[2:6], values[2:6])
    evict(shards)
    assert lsio.stats(a, axis=(0, 2)).mean.shape == (256,)


def test_cold_statistics_of_chunk_files_are_right(tmp_path: Path) -> None:
    values = np.random.default_rng(3).integers(0, 5000, (6, 128, 64 * 40), dtype=np.int16)
    path = tmp_path / "u.zarr"
    cold_zarr(path, values)
    s = lsio.stats(lsio.open_array(path), axis=(0, 2))
    np.testing.assert_allclose(s.mean, values.mean(axis=(0, 2)))
    np.testing.assert_allclose(s.std, values.std(axis=(0, 2)))


def test_a_cold_crop_of_chunk_files_is_right(tmp_path: Path) -> None:
    # Few files: the first is probed, and the read-ahead starts since it is on disk.
    values = np.random.default_rng(4).integers(0, 5000, (4, 256, 256), dtype=np.int16)
    path = tmp_path / "c.zarr"
    files = cold_zarr(path, values)
    a = lsio.open_array(path)
    for crop in [(slice(0, 4), slice(10, 138), slice(30, 158)), (slice(1, 3), slice(200, 256))]:
        evict(files)
        np.testing.assert_array_equal(a[crop], values[crop])
        np.testing.assert_array_equal(a[crop], values[crop])  # and cached


def test_advice_comes_in_pieces_the_device_reads_whole(tmp_path: Path) -> None:
    assert advice_bytes(tmp_path / "missing") == WILLNEED_PIECE
    assert WILLNEED_PIECE <= advice_bytes(tmp_path) <= 1 << 20
    if Path("/dev/shm").is_dir():  # not a block device: the kernel's default
        assert advice_bytes("/dev/shm") == WILLNEED_PIECE


def test_a_file_whose_lookup_would_wait_is_taken_for_one_on_disk(tmp_path: Path) -> None:
    # Without its directory entries cached, opening a file waits for the device:
    # the probe says "on disk" at once instead (openat2 with RESOLVE_CACHED).
    (path,) = make_files(tmp_path, 1)
    deep = tmp_path / "a" / "b"
    deep.mkdir(parents=True)
    inner = deep / "c"
    inner.write_bytes(path.read_bytes())
    os.sync()
    try:
        with open("/proc/sys/vm/drop_caches", "w") as f:
            f.write("2\n")  # dentries and inodes
    except OSError:
        pytest.skip("needs root to drop the kernel's directory caches")
    if os.uname().sysname != "Linux" or _openat2() is None:
        pytest.skip("no openat2 here")
    assert probe_files([os.fsencode(inner)]) is True  # without opening it
    inner.read_bytes()
    assert probe_files([os.fsencode(inner)]) is False
