"""``O_DIRECT`` for local files: its alignment, aligned buffers, and large objects written with it.

Reads with ``IOConfig(direct=True)`` use :data:`ALIGN` and :func:`aligned_empty`
too. Large objects (whole shards) are written around the page cache. A
buffered write copies the object into the page cache, whose pages the
kernel must first find (on this kind of virtual machine, often fresh memory
from the host, several times dearer than the copy) and later write back. For a
shard written once and not read again soon, that is all waste: measured with
shards of ~9 MB, buffered writes spent 0.1-0.6 s of system time per 0.37 GB of
input against ~0.02 s with ``O_DIRECT``, and the sharded write ran ~1.2x faster
(``BENCHMARKS.md``). Small objects (a chunk file each) stay buffered: a direct
write waits for the device, which measured dearer than the copy per file. The
staging buffer (8 MiB) is kept per thread that needed one, for its life.

``O_DIRECT`` needs the buffer's address, the length and the file offset aligned
to the device's block; :data:`ALIGN` (4 KiB) covers the common ones. An
object's aligned head is written directly, from its own buffer when that is
aligned (see :func:`aligned_empty`) or through a recycled per-thread staging
buffer, and its tail (under 4 KiB) through the page cache on the same file.
"""

from __future__ import annotations

import errno
import os
import threading

import numpy as np

__all__ = ["ALIGN", "DIRECT_WRITE_BYTES", "O_DIRECT", "aligned_empty", "write_direct"]

O_DIRECT: int = getattr(os, "O_DIRECT", 0)
ALIGN = 4096
# Objects this large (whole shards) are written around the page cache.
DIRECT_WRITE_BYTES = 1 << 20
# Unaligned objects pass through a staging buffer this large, a piece at a time.
_STAGING_BYTES = 8 << 20


def aligned_empty(nbytes: int, align: int = ALIGN) -> np.ndarray:
    """A new ``uint8`` array of ``nbytes`` whose first byte's address is ``align``-aligned."""
    raw = np.empty(nbytes + align, dtype=np.uint8)
    shift = (-raw.ctypes.data) % align
    return raw[shift : shift + nbytes]


class _Staging(threading.local):
    buffer: np.ndarray | None = None


_staging = _Staging()


def _staging_buffer() -> np.ndarray:
    # Per thread, so that concurrent writers never share one; kept for the
    # thread's life, so its pages are not fresh memory at every write.
    if _staging.buffer is None:
        _staging.buffer = aligned_empty(_STAGING_BYTES)
    return _staging.buffer


def write_direct(fd: int, data: memoryview) -> bool:
    """Write ``data`` at offset 0 of ``fd``, a new file opened with ``O_DIRECT``.

    Args:
        fd: The file, opened for writing with ``O_DIRECT``.
        data: The object's bytes (format ``B``).

    Returns:
        ``True`` when the aligned head went around the page cache; ``False``
        when the file system refused (``EINVAL``) and everything went through
        the page cache instead (the file is complete either way).

    Raises:
        OSError: Any other failure of a write (the caller removes the file).
    """
    n = len(data)
    head = n - n % ALIGN
    src = np.frombuffer(data, dtype=np.uint8)
    done = 0
    direct = True
    try:
        if src.ctypes.data % ALIGN == 0:
            done = _pwrite_direct(fd, data[:head], 0)
        else:
            stage = _staging_buffer()
            while done < head:
                size = min(stage.shape[0], head - done)
                stage[:size] = src[done : done + size]
                wrote = _pwrite_direct(fd, stage[:size].data, done)
                done += wrote
                if wrote < size:
                    break
    except OSError as exc:
        if exc.errno != errno.EINVAL or done:
            raise
        direct = False  # no O_DIRECT on this file system (or not at this alignment)
    import fcntl  # POSIX only; O_DIRECT (and so this call) is Linux's

    # The tail, and whatever a short direct write left, go through the page cache.
    fcntl.fcntl(fd, fcntl.F_SETFL, fcntl.fcntl(fd, fcntl.F_GETFL) & ~O_DIRECT)
    while done < n:
        wrote = os.pwrite(fd, data[done:], done)
        if wrote == 0:
            raise OSError(errno.EIO, f"the file took no bytes at offset {done} of {n}")
        done += wrote
    return direct


def _pwrite_direct(fd: int, piece: memoryview, offset: int) -> int:
    """Write ``piece`` at ``offset`` directly; returns the bytes written.

    Stops early after a short write that ends off the alignment (the next
    direct write would be refused): the caller writes the rest buffered.
    """
    done = 0
    while done < len(piece):
        wrote = os.pwrite(fd, piece[done:], offset + done)
        done += wrote
        if wrote == 0 or wrote % ALIGN:
            break
    return done
