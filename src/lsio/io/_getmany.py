"""Reading many small whole files in one compiled call, without the GIL.

Each chunk of an unsharded array is a file of its own, and a crop needs dozens
of them. From Python each costs four system calls (open, fstat, pread, close)
that each win the GIL back afterwards while the other worker wants it: on
random crops of an unsharded array a quarter of the workers' time went there.
Here a Numba function makes the same calls through libc's C addresses for a
whole batch, reading the files back to back into one buffer. A file it cannot
open or read is left to the caller's Python path, which tells a missing file
from an error and raises with the message; a buffer too small for the rest is
grown and the batch goes on.
"""

from __future__ import annotations

import ctypes
import functools
import os
from collections.abc import Iterator, Sequence
from typing import Any

import numba
import numpy as np

from lsio.io._cfunc import c_function, c_strings

__all__ = ["FileBatchReader", "load_file_batch_reader"]

# Why a batch stopped at a file (the low two bits of the result).
_OPEN_FAILED, _NO_ROOM, _READ_FAILED = 1, 2, 3


def _build(open_: Any, pread: Any, close: Any) -> Any:
    @numba.njit(nogil=True)
    def get(
        names: Any, name_at: Any, first: int, buf: int, cap: int, sizes: Any, flags: int
    ) -> int:  # pragma: no cover - compiled
        base = names.ctypes.data
        pos = np.int64(0)
        for i in range(first, name_at.shape[0]):
            fd = np.int64(np.int32(open_(base + name_at[i], flags, 0)))
            if fd < 0:
                return i * 4 + _OPEN_FAILED
            done = np.int64(0)
            status = 0
            while True:
                room = cap - pos - done
                if room <= 0:
                    status = _NO_ROOM
                    break
                got = np.int64(pread(fd, buf + pos + done, room, done))
                if got < 0:
                    status = _READ_FAILED
                    break
                if got == 0:
                    break
                done += got
            close(fd)
            if status:
                return i * 4 + status
            sizes[i] = done
            pos += done
        return -1

    return get


class FileBatchReader:
    """Reads whole files back to back into shared buffers (see the module doc).

    Compiled on first use (about half a second per process).
    """

    def __init__(self, libc: Any) -> None:
        self._get = _build(
            c_function(libc.open, 3), c_function(libc.pread, 4), c_function(libc.close, 1)
        )
        self._flags = os.O_RDONLY | getattr(os, "O_CLOEXEC", 0)

    def read(self, paths: Sequence[str], guess: int) -> Iterator[tuple[int, memoryview | None]]:
        """Each file's bytes, as ``(index, data)`` in order of ``paths``.

        Args:
            paths: The files.
            guess: Expected bytes per file; the buffer grows when they are more.

        Yields:
            ``(i, data)``; ``data`` is ``None`` for a file that could not be opened
            or read (missing, a directory, an error): the caller reads it again to
            learn which. Views stay valid while held (each buffer lives on with them).
        """
        names, name_at = c_strings([os.fsencode(p) for p in paths])
        sizes = np.zeros(len(paths), dtype=np.int64)
        first = 0
        cap = max(4096, guess) * len(paths)
        while first < len(paths):
            buf = np.empty(cap, dtype=np.uint8)
            code: int = self._get(names, name_at, first, buf.ctypes.data, cap, sizes, self._flags)
            stop = len(paths) if code < 0 else code // 4
            pos = 0
            for i in range(first, stop):
                yield i, buf[pos : pos + sizes[i]].data
                pos += int(sizes[i])
            if code < 0:
                return
            if code % 4 == _NO_ROOM:
                # The rest, at least twice the room this file had.
                cap = max(2 * (cap - pos), max(4096, guess) * (len(paths) - stop))
                first = stop
                continue
            yield stop, None
            first = stop + 1
            cap = max(4096, guess) * (len(paths) - first)


@functools.cache
def load_file_batch_reader() -> FileBatchReader | None:
    """The process's reader (compiled once), or ``None`` where libc's calls cannot be had."""
    try:
        return FileBatchReader(ctypes.CDLL(None))
    except (OSError, AttributeError):
        return None
