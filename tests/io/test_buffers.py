"""Recycled read buffers: the pool itself, and the local stores that fill them."""

from __future__ import annotations

import os
import threading
import time
from pathlib import Path

import numpy as np
import pytest

from lsio.io import (
    MIN_POOLED,
    BufferPool,
    ByteRange,
    IOConfig,
    LocalStore,
    ReadRequest,
    ReadResult,
    UringStore,
    WholeObject,
    release_each,
    uring_available,
)
from lsio.io._directwrite import ALIGN


def test_a_released_block_is_handed_out_again() -> None:
    pool = BufferPool()
    block = pool.take(100_000)
    first = block.view(100_000)
    assert first.ctypes.data % ALIGN == 0
    address = first.ctypes.data
    block.release()
    assert pool.idle_bytes >= 100_000
    again = pool.take(100_000)
    assert again.view(100_000).ctypes.data == address
    assert (pool.taken, pool.reused) == (2, 1)
    assert pool.idle_bytes == 0


@pytest.mark.parametrize("nbytes", [1, MIN_POOLED, MIN_POOLED + 1, 3 << 20, (16 << 20) + 7])
def test_a_block_is_at_most_a_quarter_larger_than_asked(nbytes: int) -> None:
    block = BufferPool().take(nbytes)
    assert block.array is not None
    assert max(nbytes, MIN_POOLED) <= block.array.size <= max(nbytes, MIN_POOLED) * 5 // 4


def test_a_block_stays_out_while_a_lease_holds_it() -> None:
    pool = BufferPool()
    block = pool.take(MIN_POOLED)
    first, second = block.lease(), block.lease()
    block.release()
    first.release()
    first.release()  # twice: no effect
    assert pool.idle_bytes == 0
    assert pool.take(MIN_POOLED).view(16).ctypes.data != block.view(16).ctypes.data
    second.release()
    assert block.array is None
    assert pool.idle_bytes == MIN_POOLED
    with pytest.raises(RuntimeError, match="handed back"):
        block.lease()


def test_idle_buffers_are_bounded() -> None:
    pool = BufferPool(max_idle_bytes=3 * MIN_POOLED)
    blocks = [pool.take(MIN_POOLED) for _ in range(5)]
    for b in blocks:
        b.release()
    assert pool.idle_bytes == 3 * MIN_POOLED
    none = BufferPool(max_idle_bytes=0)
    none.take(MIN_POOLED).release()
    assert none.idle_bytes == 0
    pool.clear()
    assert pool.idle_bytes == 0
    with pytest.raises(ValueError, match="max_idle_bytes"):
        BufferPool(-1)
    with pytest.raises(ValueError, match="read_buffers"):
        IOConfig(read_buffers=-1)


def test_leases_released_from_many_threads_hand_the_block_back_once() -> None:
    pool = BufferPool()
    for _ in range(20):
        block = pool.take(MIN_POOLED)
        leases = [block.lease() for _ in range(16)]
        block.release()
        threads = [threading.Thread(target=lease.release) for lease in leases]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert pool.idle_bytes == MIN_POOLED  # once, not 16 times
        assert pool.take(MIN_POOLED).array is not None
        assert pool.idle_bytes == 0


POOLED = 64 << 20


def _stores(tmp_path: Path) -> list[LocalStore]:
    stores = [
        LocalStore(tmp_path, IOConfig(read_buffers=POOLED)),
        LocalStore(tmp_path, IOConfig(direct=True, read_buffers=POOLED)),
        LocalStore(tmp_path, IOConfig(max_gap=0, read_buffers=POOLED)),
    ]
    if uring_available():
        stores.append(UringStore(tmp_path, IOConfig(read_buffers=POOLED)))
    return stores


def _write(tmp_path: Path, name: str, nbytes: int, seed: int) -> bytes:
    data = np.random.default_rng(seed).integers(0, 256, nbytes, dtype=np.uint8).tobytes()
    path = tmp_path / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    return data


def test_local_stores_reuse_released_buffers_and_keep_held_ones(tmp_path: Path) -> None:
    a = _write(tmp_path, "a", 1 << 20, 1)
    b = _write(tmp_path, "dir/b", 700_000, 2)
    for store in _stores(tmp_path):
        ranges = [("a", 5, 300_000), ("a", 400_001, 1 << 20), ("dir/b", 4096, 700_000)]
        requests = [ReadRequest(i, k, ByteRange(s, e)) for i, (k, s, e) in enumerate(ranges)]
        held = list(store.read_batch(requests))
        assert all(r.lease is not None for r in held)
        kept = {r.tag: bytes(r.data or b"") for r in held}
        # Released results hand their buffers on; later reads fill them with other bytes.
        for _ in range(3):
            for result in release_each(store.read_batch(requests[::-1])):
                k, s, e = ranges[result.tag]
                assert result.data == (a if k == "a" else b)[s:e], store
        assert store.buffers.reused >= 2, store
        # Results never released keep their bytes, whatever was read meanwhile.
        assert all(bytes(r.data or b"") == kept[r.tag] for r in held), store
        for r in held:
            r.release()


def test_whole_files_share_one_recycled_buffer(tmp_path: Path) -> None:
    files = {f"c/{i}": _write(tmp_path, f"c/{i}", 30_000 + i, i) for i in range(8)}
    store = LocalStore(tmp_path, IOConfig(read_buffers=POOLED))
    requests = [ReadRequest(i, k, WholeObject()) for i, k in enumerate(files)]
    requests.append(ReadRequest(len(requests), "c/missing", WholeObject()))
    for _ in range(4):  # the first read sizes the buffer by a guess, the later ones by the files
        got: list[ReadResult] = []
        for result in release_each(store.read_batch(requests)):
            key = requests[result.tag].key
            assert result.data == files.get(key), key
            got.append(result)
        assert len(got) == len(requests)
    assert store.buffers.taken >= 4
    assert store.buffers.reused >= 2


def test_small_reads_take_no_pool_buffer(tmp_path: Path) -> None:
    _write(tmp_path, "a", 10_000, 3)
    store = LocalStore(tmp_path, IOConfig(read_buffers=POOLED))
    (result,) = store.read_batch([ReadRequest(0, "a", ByteRange(0, 10_000))])
    assert result.lease is None
    result.release()  # nothing to hand back: no effect
    assert store.buffers.taken == 0


def test_by_default_nothing_is_kept(tmp_path: Path) -> None:
    data = _write(tmp_path, "a", 1 << 20, 4)
    store = LocalStore(tmp_path)
    for _ in range(2):
        for result in release_each(store.read_batch([ReadRequest(0, "a", ByteRange(0, 1 << 20))])):
            assert result.data == data
    assert store.buffers.taken == 0  # off: plain buffers, as without a pool
    assert store.buffers.idle_bytes == 0


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs fork")
def test_a_forked_child_takes_buffers_while_the_parent_holds_the_lock() -> None:
    pool = BufferPool(max_idle_bytes=MIN_POOLED)
    pool.take(MIN_POOLED).release()
    with pool._lock:  # another thread of the parent holds it at the fork
        pid = os.fork()
        if pid == 0:  # the child: a fresh lock, no deadlock
            block = pool.take(MIN_POOLED)
            block.release()
            os._exit(0 if pool.idle_bytes == MIN_POOLED else 1)
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        done, status = os.waitpid(pid, os.WNOHANG)
        if done:
            assert os.waitstatus_to_exitcode(status) == 0
            return
        time.sleep(0.01)
    os.kill(pid, 9)
    os.waitpid(pid, 0)
    pytest.fail("the forked child hung on the pool's lock")
