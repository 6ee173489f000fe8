"""Reading many small whole files in one compiled call, without the GIL.

Each chunk of an unsharded array is a file of its own, and a crop needs dozens
of them. From Python each costs four system calls (open, fstat, pread, close)
that each win the GIL back afterwards while the other worker wants it: on
random crops of an unsharded array a quarter of the workers' time went there.
Here a Numba function makes the same calls through libc for a
whole batch, reading the files back to back into one buffer. A file it cannot
open or read is marked and skipped (the caller's Python path reads it again, to
tell a missing file from an error and raise with the message); when the buffer
is full, a larger one takes what was read and the batch goes on.
"""

from __future__ import annotations

import functools
import os
from collections.abc import Sequence
from typing import Any

import numba
import numpy as np

from lsio.io._base import NOT_READ, WholeObjects
from lsio.io._buffers import BufferPool, read_buffer
from lsio.io._cfunc import c_strings, has_libc, libc_extern

__all__ = ["FileBatchReader", "load_file_batch_reader", "read_whole_file"]


_open = libc_extern("open", 3)
_pread = libc_extern("pread", 4)
_close = libc_extern("close", 1)


@numba.njit(nogil=True, cache=True)
def _read_into(fd: Any, addr: Any, cap: Any, done: Any) -> Any:  # pragma: no cover
    # Reads on from file offset ``done`` to ``addr + done`` until the end of
    # the file or ``cap`` bytes in all; returns the bytes in all, or NOT_READ.
    while done < cap:
        got = np.int64(_pread(fd, addr + done, cap - done, done))
        if got < 0:
            return np.int64(NOT_READ)
        if got == 0:
            break
        done += got
    return np.int64(done)


@numba.njit(nogil=True, cache=True)
def _get(
    names: Any,
    name_at: Any,
    first: int,
    buf: int,
    cap: int,
    starts: Any,
    sizes: Any,
    flags: int,
) -> int:  # pragma: no cover - compiled
    # Files first: are read back to back from ``starts[first]``; returns the
    # file that did not fit in ``cap`` bytes (its start set), or -1.
    base = names.ctypes.data
    pos = starts[first]
    for i in range(first, name_at.shape[0]):
        starts[i] = pos
        fd = np.int64(np.int32(_open(base + name_at[i], flags, 0)))
        if fd < 0:
            sizes[i] = NOT_READ
            continue
        done = _read_into(fd, buf + pos, cap - pos, np.int64(0))
        _close(fd)
        if done == cap - pos:  # full: the file may go on
            return i
        sizes[i] = done
        if done > 0:
            pos += done
    return -1


@numba.njit(nogil=True, cache=True)
def read_whole_file(path: int, flags: int, buf: Any) -> tuple[Any, Any]:  # pragma: no cover
    """The whole file at C string address ``path``, for compiled callers; returns (size, bytes).

    Reads into the ``uint8`` array ``buf``, or into a larger copy when the file
    does not fit, and returns its size (:data:`NOT_READ` when it cannot be
    opened or read: missing or failing, which the caller tells apart by
    opening it again from Python) and the array holding the bytes.
    """
    fd = np.int64(np.int32(_open(path, flags, 0)))
    if fd < 0:
        return NOT_READ, buf
    done = np.int64(0)
    while True:
        done = _read_into(fd, buf.ctypes.data, buf.shape[0], done)
        if done != buf.shape[0]:  # the end of the file, or NOT_READ
            break
        grown = np.empty(2 * buf.shape[0] + 4096, dtype=np.uint8)
        grown[:done] = buf[:done]
        buf = grown
    _close(fd)
    return done, buf


class FileBatchReader:
    """Reads whole files back to back into one buffer (see the module doc).

    Compiled once per installation (then loaded from Numba's cache).

    Attributes:
        flags: The flags files are opened with.
    """

    def __init__(self) -> None:
        self._get = _get
        self.flags = os.O_RDONLY | getattr(os, "O_CLOEXEC", 0)

    def read(
        self, paths: Sequence[bytes], guess: int, pool: BufferPool | None = None
    ) -> WholeObjects:
        """Every file of ``paths``, with one compiled call unless the buffer fills up.

        Args:
            paths: The files (file-system encoded).
            guess: Expected bytes per file; the buffer grows when they are more.
            pool: Where the buffer comes from, when given (it is then the
                result's ``block``, held once by the caller).
        """
        names, name_at = c_strings(paths)
        n = len(paths)
        starts = np.zeros(n, dtype=np.int64)
        sizes = np.zeros(n, dtype=np.int64)
        cap = max(4096, guess) * n
        block, buf = read_buffer(cap, pool)
        first = 0
        try:
            while n:
                stop: int = self._get(
                    names, name_at, first, buf.ctypes.data, cap, starts, sizes, self.flags
                )
                if stop < 0:
                    break
                # Full: at least twice the room, and a guess for each file left.
                pos = int(starts[stop])
                cap = pos + max(2 * (cap - pos), max(4096, guess) * (n - stop))
                grown_block, grown = read_buffer(cap, pool)
                grown[:pos] = buf[:pos]
                if block is not None:
                    block.release()
                block, buf, first = grown_block, grown, stop
        except BaseException:
            if block is not None:
                block.release()
            raise
        return WholeObjects(buf, starts, sizes, block)


@functools.cache
def load_file_batch_reader() -> FileBatchReader | None:
    """The process's reader, or ``None`` where libc's calls cannot be had."""
    return FileBatchReader() if has_libc("open", "pread", "close") else None
