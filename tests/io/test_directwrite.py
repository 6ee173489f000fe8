"""Large objects written around the page cache (O_DIRECT), and the way back when refused."""

from __future__ import annotations

import errno
import fcntl
import mmap
import os
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import lsio
from lsio import WriteError
from lsio.io import IOConfig, LocalStore, aligned_empty
from lsio.io import _directwrite as directwrite
from tests.mapped import cached_pages

pytestmark = pytest.mark.skipif(not directwrite.O_DIRECT, reason="O_DIRECT is Linux's")

MIB = 1 << 20


def payload(n: int, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, n, dtype=np.uint8)


@settings(max_examples=25, deadline=None)
@given(
    size=st.sampled_from([MIB, MIB + 1, MIB + 4095, MIB + 4096, 3 * MIB + 777, 9 * MIB + 5]),
    shift=st.sampled_from([0, 1, 16, 4095]),
)
def test_large_objects_read_back_whole(tmp_path_factory: Any, size: int, shift: int) -> None:
    # Aligned buffers go straight to the file; others through the staging buffer,
    # which is smaller than the largest sizes here (pieces), then the tail buffered.
    root = tmp_path_factory.mktemp("direct")
    raw = aligned_empty(size + shift)
    data = raw[shift:]
    data[:] = payload(size, size + shift)
    store = LocalStore(root)
    store.put("a/b", data.data)
    assert store.get("a/b") == data.tobytes()
    assert not list(root.glob("**/*.lsio-tmp"))


def test_large_objects_bypass_the_page_cache(tmp_path: Path) -> None:
    data = aligned_empty(4 * MIB + 100)
    data[:] = payload(data.size)
    LocalStore(tmp_path).put("big", data.data)
    # Only the tail page went through the page cache.
    assert cached_pages(tmp_path / "big") <= 1
    off = LocalStore(tmp_path, IOConfig(direct_writes=False))
    off.put("buffered", data.data)
    assert cached_pages(tmp_path / "buffered") == -(-data.size // mmap.PAGESIZE)
    small = payload(MIB - 1)
    LocalStore(tmp_path).put("small", small.data)
    assert cached_pages(tmp_path / "small") == -(-small.size // mmap.PAGESIZE)
    assert (tmp_path / "big").read_bytes() == (tmp_path / "buffered").read_bytes()


def test_put_many_sends_large_objects_around_the_cache(tmp_path: Path) -> None:
    sizes = [100, 2 * MIB + 3, 5000, MIB, 7]
    data = payload(sum(sizes), 3)
    bounds = np.concatenate(([0], np.cumsum(sizes)))
    keys = [f"d/{i}" for i in range(len(sizes))]  # "d" is new: made on the way
    store = LocalStore(tmp_path)
    store.put_many(keys, data, bounds)
    assert cached_pages(tmp_path / "d" / "1") <= 1
    assert cached_pages(tmp_path / "d" / "0") == 1
    for i, key in enumerate(keys):
        assert store.get(key) == data[bounds[i] : bounds[i + 1]].tobytes()


def test_a_refused_open_falls_back_once(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # No file system here refuses O_DIRECT (even tmpfs takes it), so the
    # refusal of one (FUSE, some network file systems) is injected.
    real_open = os.open
    refused: list[str] = []

    def refusing_open(path: str, flags: int, mode: int = 0o777) -> int:
        if flags & directwrite.O_DIRECT:
            refused.append(path)
            raise OSError(errno.EINVAL, "Invalid argument")
        return real_open(path, flags, mode)

    monkeypatch.setattr(os, "open", refusing_open)
    store = LocalStore(tmp_path)
    data = payload(2 * MIB + 1)
    store.put("x", data.data)
    store.put("y", data.data)
    assert store.get("x") == store.get("y") == data.tobytes()
    assert len(refused) == 1  # asked once, then written through the page cache


def test_a_refused_write_finishes_buffered(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # A device whose blocks are larger than 4 KiB refuses the first direct write.
    real_pwrite = os.pwrite
    calls: list[bool] = []

    def pwrite(fd: int, data: Any, offset: int) -> int:
        direct = bool(fcntl.fcntl(fd, fcntl.F_GETFL) & directwrite.O_DIRECT)
        calls.append(direct)
        if direct:
            raise OSError(errno.EINVAL, "Invalid argument")
        return real_pwrite(fd, data, offset)

    monkeypatch.setattr(os, "pwrite", pwrite)
    store = LocalStore(tmp_path)
    data = payload(MIB + 10)
    store.put("x", data.data)
    assert store.get("x") == data.tobytes()
    assert calls[0]
    assert not any(calls[1:])
    calls.clear()
    store.put("y", data.data)
    assert store.get("y") == data.tobytes()
    assert not any(calls)


def test_a_failed_direct_write_leaves_nothing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    store = LocalStore(tmp_path)
    store.put("x", b"old")

    def full(fd: int, data: Any, offset: int) -> int:
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(os, "pwrite", full)
    with pytest.raises(WriteError, match=r"writing 'x'.*No space left"):
        store.put("x", payload(2 * MIB).data)
    assert store.get("x") == b"old"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["x"]


def test_sharded_arrays_written_around_the_cache_read_back(tmp_path: Path) -> None:
    import zarr

    values = np.random.default_rng(5).integers(0, 1000, (2, 512, 600), dtype=np.int32)
    for direct in (True, False):
        path = tmp_path / f"a{direct}.zarr"
        config = lsio.ReadConfig(io=IOConfig(direct_writes=direct))
        a = lsio.create(
            path, shape=values.shape, dtype="int32", chunks=(1, 64, 64), shards=(2, 512, 512),
            compressor=None, config=config,
        )  # fmt: skip
        a[...] = values
        shard = path / "c" / "0" / "0" / "0"
        assert (cached_pages(shard) <= 1) == direct
        np.testing.assert_array_equal(zarr.open_array(str(path), mode="r")[...], values)
        np.testing.assert_array_equal(lsio.open_array(path)[...], values)


def test_an_interrupted_write_leaves_no_temporary_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    store = LocalStore(tmp_path)
    store.put("x", b"old")

    def interrupted(fd: int, data: Any, offset: int) -> int:
        raise KeyboardInterrupt

    monkeypatch.setattr(os, "pwrite", interrupted)
    with pytest.raises(KeyboardInterrupt):
        store.put("x", payload(2 * MIB).data)
    assert store.get("x") == b"old"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["x"]


def test_a_shard_written_around_the_cache_is_updated_in_part(tmp_path: Path) -> None:
    import zarr

    rng = np.random.default_rng(6)
    values = rng.integers(0, 1000, (2, 512, 512), dtype=np.int32)  # 2 MiB shards
    path = tmp_path / "p.zarr"
    a = lsio.create(
        path, shape=values.shape, dtype="int32", chunks=(1, 64, 64), shards=(2, 512, 512),
        compressor=None,
    )  # fmt: skip
    a[...] = values
    patch = rng.integers(0, 1000, (1, 100, 300), dtype=np.int32)
    a[1, 50:150, 100:400] = patch[0]  # read-modify-write of the shard on disk
    values[1, 50:150, 100:400] = patch[0]
    np.testing.assert_array_equal(zarr.open_array(str(path), mode="r")[...], values)
    np.testing.assert_array_equal(lsio.open_array(path)[...], values)
