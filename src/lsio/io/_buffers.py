"""Recycled, page-aligned buffers for the reads of local stores (an option).

Each merged read gets a fresh buffer by default. For reads of a MiB or more
(shard ranges read with ``preadv``, ``O_DIRECT`` or io_uring) that can mean
pages mapped anew, which the kernel zeroes and faults in while the read fills
them. With ``IOConfig(read_buffers=N)`` a local store keeps up to ``N`` bytes of
the buffers readers hand back in a :class:`BufferPool` and gives them out
again.

Off by default, by the numbers measured here (``BENCHMARKS.md``): glibc already
reuses freed memory for buffered reads (whole-array reads with ``preadv`` ran
the same either way), and on this virtual machine ``O_DIRECT`` reads into
reused buffers took ~1.6x as long as reads into fresh ones (the hypervisor
writes the data into guest memory, and fresh pages the guest kernel has just
zeroed take it faster). Where the device writes memory itself, recycling
spares the page faults and zeroing of every fresh buffer.

A buffer is reused only once every result viewing it has been released
(:meth:`lsio.io.ReadResult.release`) and the reader that filled it is done with
it: a :class:`Block` counts its holders. A result nobody releases simply keeps
its buffer, which Python frees as before, so only callers that say they are
done (the engine's decoders, which copy every chunk out) take part. Buffers
are page-aligned, as ``O_DIRECT`` reads need, and come in sizes from 64 KiB,
four classes per doubling: a new buffer is at most a quarter larger than its
read, an idle one of the next two classes (at most ~1.75x) serves it too. The
oldest idle buffer of a class goes out first: on this machine that measured
faster for ``O_DIRECT`` than the one handed back last.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Iterable, Iterator

import numpy as np

from lsio.io._directwrite import ALIGN, aligned_empty
from lsio.io._types import ReadResult

__all__ = ["MIN_POOLED", "Block", "BufferPool", "Lease", "read_buffer", "results_viewing"]

MIN_POOLED = 64 * 1024
"""Reads smaller than this get plain buffers: malloc serves them from its heap
without new pages, and recycling would save nothing."""


def _size_class(nbytes: int) -> int:
    """The bytes of the smallest class holding ``nbytes``: four classes per doubling of size."""
    n = max(nbytes, MIN_POOLED)
    step = 1 << ((n - 1).bit_length() - 3)  # a quarter of the power of two below n
    return -(-n // step) * step


def read_buffer(
    nbytes: int, pool: BufferPool | None, align: int = 1
) -> tuple[Block | None, np.ndarray]:
    """A buffer of ``nbytes`` for a read, and its block when it comes from ``pool``.

    From the pool when one is given and the read is worth it
    (:data:`MIN_POOLED` or more; the caller then holds the block once), else a
    fresh ``align``-aligned buffer and ``None``.
    """
    if pool is None or nbytes < MIN_POOLED:
        return None, aligned_empty(nbytes, align)
    block = pool.take(nbytes)
    return block, block.view(nbytes)


class BufferPool:
    """Page-aligned buffers handed back by readers, kept for the next reads.

    Thread-safe. Only idle buffers are held here: a buffer in use belongs to
    its :class:`Block` and the results viewing it.

    Args:
        max_idle_bytes: Bytes of idle buffers kept at most (default 64 MiB); a
            buffer handed back beyond that, or larger than that, is left to be
            freed. 0 keeps none (every read gets a fresh buffer).

    Attributes:
        taken: Buffers handed out so far.
        reused: How many of those were recycled ones.
    """

    def __init__(self, max_idle_bytes: int = 64 << 20) -> None:
        if max_idle_bytes < 0:
            raise ValueError(f"max_idle_bytes must be >= 0, got {max_idle_bytes}")
        self.max_idle_bytes = max_idle_bytes
        self.taken = 0
        self.reused = 0
        self._pid = os.getpid()
        self._mutex = threading.Lock()
        self._idle: dict[int, list[np.ndarray]] = {}
        self._idle_bytes = 0

    @property
    def _lock(self) -> threading.Lock:
        # A forked child (e.g. a DataLoader worker) gets a fresh lock: another
        # thread of the parent may have held this one at the fork.
        if self._pid != os.getpid():
            self._pid = os.getpid()
            self._mutex = threading.Lock()
        return self._mutex

    @property
    def idle_bytes(self) -> int:
        """Bytes of the buffers waiting to be reused."""
        return self._idle_bytes

    def take(self, nbytes: int) -> Block:
        """A block of at least ``nbytes`` (its ``array`` is page-aligned), held once by the caller.

        The caller fills it, hands out :meth:`Block.lease` to each result that
        views it, and then calls :meth:`Block.release` for its own hold.
        """
        size = _size_class(nbytes)
        array = None
        with self._lock:
            self.taken += 1
            for have in (size, _size_class(size + 1), _size_class(_size_class(size + 1) + 1)):
                free = self._idle.get(have)
                if free:  # this class, or one of the next two: at most ~1.7x the size asked
                    array = free.pop(0)  # the oldest (see the module doc)
                    self.reused += 1
                    self._idle_bytes -= have
                    break
        if array is None:
            array = aligned_empty(size, ALIGN)
        return Block(self, array)

    def _give(self, array: np.ndarray) -> None:
        # Called with the lock held (see Block._drop).
        size = array.size
        if self._idle_bytes + size <= self.max_idle_bytes:
            self._idle.setdefault(size, []).append(array)
            self._idle_bytes += size

    def clear(self) -> None:
        """Drop every idle buffer (the memory goes back to the allocator)."""
        with self._lock:
            self._idle.clear()
            self._idle_bytes = 0


class Block:
    """A pool buffer and the count of those still holding it; back to the pool at zero.

    Attributes:
        array: The buffer (``uint8``, page-aligned, its size a pool class);
            ``None`` once it has gone back to the pool.
    """

    __slots__ = ("_holders", "_pool", "array")

    def __init__(self, pool: BufferPool, array: np.ndarray) -> None:
        self._pool = pool
        self.array: np.ndarray | None = array
        self._holders = 1

    def view(self, nbytes: int) -> np.ndarray:
        """The first ``nbytes`` of the buffer (the holder's to fill)."""
        array = self.array
        if array is None or nbytes > array.size:
            raise RuntimeError(f"a {nbytes}-byte view of a buffer handed back or too small")
        return array[:nbytes]

    def lease(self) -> Lease:
        """One more holder: a result viewing the buffer (see :meth:`lsio.io.ReadResult.release`)."""
        with self._pool._lock:
            if self.array is None:
                raise RuntimeError("lease of a buffer already handed back")
            self._holders += 1
        return Lease(self)

    def release(self) -> None:
        """The caller's own hold (from :meth:`BufferPool.take`) ends."""
        self._drop()

    def _drop(self) -> None:
        pool = self._pool
        with pool._lock:
            self._holders -= 1
            if self._holders or self.array is None:
                return
            array, self.array = self.array, None
            pool._give(array)


class Lease:
    """One result's hold on a :class:`Block`; releasing it twice does nothing."""

    __slots__ = ("_block",)

    def __init__(self, block: Block) -> None:
        self._block: Block | None = block

    def release(self) -> None:
        """End this hold; the bytes it viewed may be overwritten by a later read."""
        block = self._block
        if block is None:
            return
        with block._pool._lock:
            if self._block is None:  # another thread released it meanwhile
                return
            self._block = None
        block._drop()


def results_viewing(
    block: Block | None, parts: Iterable[tuple[int, memoryview | None]]
) -> Iterator[ReadResult]:
    """A result per ``(tag, bytes)`` of ``parts``, whose bytes view ``block``'s buffer.

    Each result with bytes holds a lease of ``block`` (``None``: a plain
    buffer, no lease); the caller's own hold on ``block`` ends once the results
    are all out, or the loop stops early.
    """
    try:
        for tag, data in parts:
            lease = None if block is None or data is None else block.lease()
            yield ReadResult(tag, data, lease)
    finally:
        if block is not None:
            block.release()
