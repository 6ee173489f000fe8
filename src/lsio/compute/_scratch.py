"""Reused buffers: per-thread scratch for chunks, and recycled memory for large results."""

from __future__ import annotations

import math
import os
import sys
import threading
from typing import Any

import numpy as np

from lsio.io import aligned_empty

__all__ = ["OutputPool", "ScratchPool"]


class ScratchPool:
    """Hands each thread a reusable buffer for decoding a chunk that is not decoded in place.

    A buffer grows to the largest request of its thread and is kept while the
    pool lives, so memory stays bounded by threads x largest chunk.
    """

    def __init__(self) -> None:
        self._local = threading.local()

    def array(self, shape: tuple[int, ...], dtype: np.dtype[Any]) -> np.ndarray:
        """A C-contiguous array of ``shape`` and ``dtype`` over this thread's buffer.

        The contents are undefined; the array is valid until the same thread asks again.
        """
        cached = getattr(self._local, "last", None)
        if cached is not None and cached.shape == shape and cached.dtype == dtype:
            return cached  # type: ignore[no-any-return]
        nbytes = math.prod(shape) * dtype.itemsize
        buf: np.ndarray | None = getattr(self._local, "buf", None)
        if buf is None or buf.nbytes < nbytes:
            # Aligned to 64 bytes so that SIMD decoders and copies start on a cache line.
            raw = np.empty(nbytes + 64, dtype=np.uint8)
            offset = (-raw.ctypes.data) % 64
            buf = raw[offset : offset + nbytes]
            self._local.buf = buf
        arr = buf[:nbytes].view(dtype).reshape(shape)
        self._local.last = arr
        return arr


class OutputPool:
    """Hands out result arrays, reusing the memory of large results the caller has dropped.

    A fresh large array costs a page fault and the kernel zeroing a page for
    every 4 KiB written into it (~12 ms for a 92 MB block here, ~15% of
    decoding it), and glibc returns allocations above 32 MiB to the kernel
    when freed, so a loop that reads block after block pays that on every
    block. The pool keeps the buffers behind its large results and hands one
    out again once no array refers to it any more.

    Whether a buffer is free is decided by its reference count: every NumPy
    view of a pooled result (slices, reshapes, ``torch.from_numpy``, DLPack
    exports, memoryviews) holds a reference to the buffer, so a buffer with no
    reference besides the pool's cannot be reached by the caller. Raw addresses
    (``arr.ctypes.data``) kept past the array's life are not references; as
    with any NumPy array, they dangle.

    Args:
        limit: Bytes of buffers the pool keeps, in use or free; results that
            would go beyond it come from ``np.empty`` and are not kept. 0 turns
            reuse off. After the caller drops its results the pool keeps at most
            this much memory until the next large read or :meth:`clear`.
        min_bytes: Results smaller than this always come from ``np.empty``:
            the allocator already recycles them without faults. Defaults to 4 MiB.
    """

    def __init__(self, limit: int, min_bytes: int = 4 << 20) -> None:
        if limit < 0:
            raise ValueError(f"limit must be >= 0, got {limit}")
        self.limit = limit
        self.min_bytes = min_bytes
        self._buffers: list[tuple[np.ndarray, int]] = []
        self._lock = threading.Lock()
        self._pid = os.getpid()
        # What getrefcount reports for a buffer only the pool holds, measured the way
        # _take asks (interpreters differ in whether the call's argument counts).
        probe = [(np.empty(1, np.uint8), 0)]
        self._free_refs = sys.getrefcount(probe[0][0])

    def empty(self, shape: tuple[int, ...], dtype: np.dtype[Any]) -> np.ndarray:
        """A C-contiguous array like ``np.empty(shape, dtype)``; its contents are undefined."""
        nbytes = math.prod(shape) * dtype.itemsize
        if nbytes < self.min_bytes:
            return np.empty(shape, dtype=dtype)
        if nbytes > self.limit:
            return _aligned(nbytes, shape, dtype)
        if self._pid != os.getpid():
            # A forked child: another thread may have held the lock at the fork.
            self._lock = threading.Lock()
            self._pid = os.getpid()
        with self._lock:
            buf = self._take(nbytes)
            if buf is None:
                return _aligned(nbytes, shape, dtype)
            raw, offset = buf
            # The view is made under the lock: until it exists, nothing but the pool
            # refers to the buffer, and another thread would see it free.
            return raw[offset : offset + nbytes].view(dtype).reshape(shape)

    def clear(self) -> None:
        """Forget every buffer: results still in use stay valid, free memory goes back."""
        with self._lock:
            self._buffers = []

    @property
    def kept_bytes(self) -> int:
        """Bytes of the buffers the pool holds, in use or free."""
        with self._lock:
            return sum(_usable(b) for b, _ in self._buffers)

    def _take(self, nbytes: int) -> tuple[np.ndarray, int] | None:
        bufs = self._buffers
        # Every view of a buffer refers to the array owning the memory (NumPy collapses
        # view chains), so the owner of a free buffer has no reference but the pool's.
        free = [i for i in range(len(bufs)) if sys.getrefcount(bufs[i][0]) == self._free_refs]
        fits = [i for i in free if nbytes <= _usable(bufs[i][0]) <= 2 * nbytes]
        if fits:
            return bufs[min(fits, key=lambda i: _usable(bufs[i][0]))]
        kept = sum(_usable(b) for b, _ in bufs)
        dropped = set()
        for i in sorted(free, key=lambda i: -_usable(bufs[i][0])):  # largest first
            if kept + nbytes <= self.limit:
                break
            kept -= _usable(bufs[i][0])
            dropped.add(i)
        if kept + nbytes > self.limit:
            return None
        raw = np.empty(nbytes + _ALIGN, dtype=np.uint8)
        buf = (raw, (-raw.ctypes.data) % _ALIGN)
        self._buffers = [b for i, b in enumerate(bufs) if i not in dropped] + [buf]
        return buf


# Large results start on a page boundary, pooled or not: a row of whole cache
# lines is then copied into them past the caches (see lsio.compute._stream).
# glibc's own large allocations start 16 bytes past a page, in mid-line.
_ALIGN = 4096


def _aligned(nbytes: int, shape: tuple[int, ...], dtype: np.dtype[Any]) -> np.ndarray:
    """A fresh array like ``np.empty(shape, dtype)`` starting on a page boundary (not pooled)."""
    return aligned_empty(nbytes, _ALIGN).view(dtype).reshape(shape)


def _usable(raw: np.ndarray) -> int:
    return raw.nbytes - _ALIGN
