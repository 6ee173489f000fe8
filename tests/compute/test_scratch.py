"""Result memory reused once the caller has dropped every view of it, never before."""

from __future__ import annotations

import sys
import threading
import time

import numpy as np
import pytest

from lsio.compute import OutputPool

MiB = 1 << 20
I16 = np.dtype("int16")


def _addr(a: np.ndarray) -> int:
    return int(a.__array_interface__["data"][0])


def _pooled(pool: OutputPool, a: np.ndarray) -> bool:
    """Whether ``a`` lies in one of the pool's buffers."""
    return any(np.shares_memory(a, raw) for raw, _ in pool._buffers)


def test_a_dropped_result_is_reused() -> None:
    pool = OutputPool(64 * MiB)
    a = pool.empty((4, MiB), I16)
    first = _addr(a)
    assert first % 4096 == 0
    assert a.flags.c_contiguous
    assert a.shape == (4, MiB)
    del a
    b = pool.empty((4, MiB), I16)
    assert _addr(b) == first
    assert pool.kept_bytes == 8 * MiB


@pytest.mark.parametrize(
    "keep",
    [
        lambda a: a[1:],  # a slice
        lambda a: a.reshape(-1).view(np.uint8),  # a reshaped, reinterpreted view
        memoryview,  # a buffer export
        lambda a: np.frombuffer(memoryview(a), dtype=np.int16),  # an array over the export
    ],
)
def test_memory_any_view_refers_to_is_not_handed_out(keep: object) -> None:
    pool = OutputPool(64 * MiB)
    a = pool.empty((4, MiB), I16)
    a.view(np.uint8)[...] = 7  # every byte
    held = keep(a)  # type: ignore[operator]
    del a
    b = pool.empty((4, MiB), I16)
    b[...] = -1
    assert np.all(np.asarray(held).view(np.uint8) == np.uint8(7))
    del held
    c = pool.empty((4, MiB), I16)  # now the first buffer is free again
    assert _addr(c) != _addr(b)


def test_small_results_and_a_zero_limit_are_plain_allocations() -> None:
    pool = OutputPool(64 * MiB)
    small = pool.empty((100,), I16)
    assert small.flags.owndata
    assert pool.kept_bytes == 0
    off = OutputPool(0)
    big = off.empty((4, MiB), I16)
    assert not _pooled(off, big)
    assert off.kept_bytes == 0
    # Not kept, but still on a page boundary, so that whole cache lines of it
    # can be written past the caches (lsio.compute._stream).
    assert _addr(big) % 4096 == 0
    big[...] = 7
    assert big.shape == (4, MiB)
    assert big.flags.c_contiguous
    assert (big == 7).all()


def test_the_limit_bounds_kept_memory() -> None:
    pool = OutputPool(20 * MiB)
    held = [pool.empty((4, MiB), I16) for _ in range(4)]  # 8 MiB each: two fit the limit
    assert sum(_pooled(pool, h) for h in held) == 2
    assert all(_addr(h) % 4096 == 0 for h in held)  # pooled or not
    assert pool.kept_bytes == 16 * MiB
    del held
    # Free buffers of another size make room for a new one instead of growing past the limit.
    big = pool.empty((9, MiB), I16)
    assert _pooled(pool, big)
    assert pool.kept_bytes <= 20 * MiB
    pool.clear()
    assert pool.kept_bytes == 0
    assert big.shape == (9, MiB)


def test_threads_never_share_a_buffer() -> None:
    pool = OutputPool(256 * MiB)
    clashes = []
    stop = time.monotonic() + 3.0

    def work(k: int) -> None:
        while time.monotonic() < stop:
            a = pool.empty((2 * MiB,), I16)
            a[:2048] = k
            a[-2048:] = k
            if np.any(a[:2048] != k) or np.any(a[-2048:] != k):
                clashes.append(k)
            del a  # each thread holds one result at a time

    interval = sys.getswitchinterval()
    sys.setswitchinterval(1e-6)  # switch threads as often as possible: races show up
    try:
        threads = [threading.Thread(target=work, args=(k,)) for k in range(4)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
    finally:
        sys.setswitchinterval(interval)
    assert not clashes  # a buffer was handed to two threads at once
    assert pool.kept_bytes <= 4 * 4 * MiB  # one buffer per thread at most


def test_a_negative_limit_is_refused() -> None:
    with pytest.raises(ValueError, match="limit must be >= 0"):
        OutputPool(-1)
