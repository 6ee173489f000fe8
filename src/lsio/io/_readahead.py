"""Reading ahead of workers that take files one after another, when the files are on disk.

Workers that read chunk files one at a time (see :mod:`lsio.zarr._claimread`)
keep one read in flight each: from the page cache that costs nothing, but from
disk every file waits a device round trip while the cores idle, and a cold
whole-array read of an unsharded array ran at 0.83x tensorstore's rate
(``BENCHMARKS.md``). A :class:`ReadAhead` thread walks the same list of files a
window ahead of the workers' shared counter and asks the kernel to start
reading each one (``posix_fadvise(POSIX_FADV_WILLNEED)``, which returns before
the data arrives), so that many reads are in flight and the workers find
their files cached or on their way.

Files already cached need none of it, and opening each one would cost the
decoding cores ~3 us a file: the thread looks at one file in
:data:`PROBE_EVERY` (a one-byte ``preadv2`` with ``RWF_NOWAIT``, which fails
instead of waiting for the device) and reads ahead only while the files it
looks at are not cached. Callers start it only where :func:`probe_files` can
tell (a file system with such reads). It runs compiled, without the GIL, and
stops when the workers have taken every file, or when they have taken none for
``idle`` seconds (a call that failed part-way).
"""

from __future__ import annotations

import ctypes
import errno
import functools
import os
import platform
import sys
import threading
from collections.abc import Callable, Sequence
from typing import Any

import numba
import numpy as np
import numpy.typing as npt

from lsio.io._cfunc import c_string_at, has_libc, libc_extern

__all__ = [
    "IDLE_SECONDS",
    "PROBE_EVERY",
    "ReadAhead",
    "WILLNEED_PIECE",
    "advice_bytes",
    "merged_spans",
    "on_disk",
    "probe_files",
    "read_ahead_available",
    "split_spans",
]

_I64 = npt.NDArray[np.int64]

# Files looked at per file probed while the files are cached.
PROBE_EVERY = 16
# How long the thread waits for the workers to take a file before it gives up.
IDLE_SECONDS = 2.0
# A nap while the thread is a window ahead: long beside a window's decoding, short
# beside a read from disk, and rare enough (1,000 a second) to cost the cores nothing.
_NAP_NS = 1_000_000
_WILLNEED = 3  # POSIX_FADV_WILLNEED on Linux
_RWF_NOWAIT = 0x8
_SEEK_END = 2
# The kernel reads no more than the larger of a device's readahead size (128 KiB
# by default) and its largest request per advice: larger spans are advised in
# pieces (see advice_bytes), at least this large.
WILLNEED_PIECE = 128 * 1024
# Larger pieces measured no faster from disk here (8 MiB: 1.12-1.16 GB/s, 256 KiB
# to 1 MiB: 1.03-1.21), and each call holds the thread longer.
_MAX_PIECE = 1 << 20

_open = libc_extern("open", 3)
_close = libc_extern("close", 1)
_fadvise = libc_extern("posix_fadvise", 4)
_preadv2 = libc_extern("preadv2", 5)
_nanosleep = libc_extern("nanosleep", 2)
_lseek = libc_extern("lseek", 3)


@numba.njit(nogil=True, cache=True)
def _cached(fd: Any, iov: Any) -> bool:  # pragma: no cover - compiled
    # A read that may not wait: -1 (EAGAIN) when the first page is not cached.
    return bool(np.int64(_preadv2(fd, iov.ctypes.data, 1, 0, _RWF_NOWAIT)) >= 0)


@numba.njit(nogil=True, cache=True)
def _ahead(
    names: Any,
    name_at: Any,
    taken: Any,
    window: int,
    flags: int,
    idle_naps: int,
    piece: int,
    state: Any,
) -> None:  # pragma: no cover - compiled
    # ``taken[0]``: the next file a worker will take (the workers' counter).
    # ``state``: [files read ahead, files probed], for tests and tuning.
    byte = np.zeros(1, dtype=np.uint8)
    iov = np.empty(2, dtype=np.int64)
    iov[0] = byte.ctypes.data
    iov[1] = 1
    nap = np.empty(2, dtype=np.int64)
    nap[0] = 0
    nap[1] = _NAP_NS
    n = name_at.shape[0]
    base = names.ctypes.data
    i = 0
    cold = False
    next_probe = 0
    last = -1
    naps = 0
    while True:
        head = taken[0]
        if head >= n:
            return
        if head != last:
            last = head
            naps = 0
        i = max(i, head)
        if i >= min(head + window, n):
            naps += 1
            if naps > idle_naps:
                return
            _nanosleep(nap.ctypes.data, 0)
            continue
        probe = i >= next_probe
        if not (cold or probe):
            i = next_probe  # cached so far: on to the next probe
            continue
        fd = np.int64(np.int32(_open(base + name_at[i], flags, 0)))
        if fd >= 0:  # a file that will not open is passed over (the workers name it)
            if probe:
                state[1] += 1
                cold = not _cached(fd, iov)
                next_probe = i + PROBE_EVERY
            if cold:
                _fadvise(fd, 0, piece, _WILLNEED)
                size = np.int64(_lseek(fd, 0, _SEEK_END))
                for at in range(piece, size, piece):
                    _fadvise(fd, at, piece, _WILLNEED)
                state[0] += 1
            _close(fd)
        i += 1


def on_disk(path: bytes) -> bool | None:
    """Whether the first page of the file at ``path`` is not in the page cache.

    One read that may not wait for the device (``RWF_NOWAIT``). ``None`` when
    it cannot tell: a missing or unreadable file, or a platform or file system
    without such reads (the read-ahead then stays off: its own probes would
    take every file for one on disk).
    """
    nowait = getattr(os, "RWF_NOWAIT", None)
    if nowait is None:
        return None
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | getattr(os, "O_CLOEXEC", 0))
    except OSError:
        return None
    try:
        os.preadv(fd, [bytearray(1)], 0, nowait)
        return False
    except BlockingIOError:
        return True
    except OSError:
        return None
    finally:
        os.close(fd)


class _OpenHow(ctypes.Structure):
    _fields_ = [("flags", ctypes.c_uint64), ("mode", ctypes.c_uint64), ("resolve", ctypes.c_uint64)]


_SYS_OPENAT2 = 437  # the same number on every Linux architecture
_RESOLVE_CACHED = 0x20
_AT_FDCWD = -100


@functools.cache
def _openat2() -> Callable[[bytes], tuple[int, int]] | None:
    """``openat2(AT_FDCWD, path, O_PATH, RESOLVE_CACHED)``, returning (descriptor, errno).

    ``None`` off Linux on x86-64 and aarch64 (the syscall's number is known there).
    """
    if sys.platform != "linux" or platform.machine() not in ("x86_64", "aarch64"):
        return None
    libc = ctypes.CDLL(None, use_errno=True)
    syscall = libc.syscall
    syscall.restype = ctypes.c_long
    how = _OpenHow(os.O_PATH | getattr(os, "O_CLOEXEC", 0), 0, _RESOLVE_CACHED)

    def call(path: bytes) -> tuple[int, int]:
        fd = syscall(
            ctypes.c_long(_SYS_OPENAT2),
            ctypes.c_int(_AT_FDCWD),
            ctypes.c_char_p(path),
            ctypes.byref(how),
            ctypes.c_size_t(ctypes.sizeof(how)),
        )
        return int(fd), ctypes.get_errno()

    return call


def _lookup_waits(path: bytes) -> bool:
    """Whether looking ``path`` up would wait for the device (its entries are not cached).

    ``False`` where it cannot tell (a kernel without ``openat2`` or
    ``RESOLVE_CACHED``, a missing file).
    """
    call = _openat2()
    if call is None:
        return False
    fd, err = call(path)
    if fd >= 0:
        os.close(fd)
        return False
    return err == errno.EAGAIN


def probe_files(paths: Sequence[bytes]) -> bool | None:
    """The first answer :func:`on_disk` gives for ``paths`` (``None``: none of them tells).

    A path whose lookup would wait for the device (its directory entries are
    not cached: ``openat2`` with ``RESOLVE_CACHED``, Linux 5.12+) is not opened
    here: that would wait too (~1.3 ms for a crop's first file in a cold
    directory) before any read-ahead could start. It says "on disk" only where
    no other path gives an answer, since a name never looked up (a chunk file
    never written, too) cannot be told from a file on disk without waiting.
    """
    waited = False
    for path in paths:
        if _lookup_waits(path):
            waited = True
            continue
        answer = on_disk(path)
        if answer is not None:
            return answer
    return True if waited and getattr(os, "RWF_NOWAIT", None) is not None else None


def advice_bytes(path: bytes | str | os.PathLike[str]) -> int:
    """Bytes the kernel reads ahead per advice for files on the device of ``path``.

    The larger of the device's ``read_ahead_kb`` and ``max_sectors_kb`` (what
    the kernel caps one ``WILLNEED`` at), between :data:`WILLNEED_PIECE` and
    1 MiB; :data:`WILLNEED_PIECE` where it cannot tell (no such file, not a
    block device: tmpfs, network file systems).
    """
    try:
        device = os.stat(path).st_dev
    except OSError:
        return WILLNEED_PIECE
    return _device_advice(device)


@functools.cache
def _device_advice(device: int) -> int:
    base = f"/sys/dev/block/{os.major(device)}:{os.minor(device)}"
    found = []
    for queue in (f"{base}/queue", f"{base}/../queue"):  # a disk, or a partition of one
        for name in ("read_ahead_kb", "max_sectors_kb"):
            try:
                with open(f"{queue}/{name}") as f:
                    found.append(int(f.read()) * 1024)
            except (OSError, ValueError):
                pass
        if found:
            break
    return min(max([WILLNEED_PIECE, *found]), _MAX_PIECE)


@functools.cache
def read_ahead_available() -> bool:
    """Whether this platform has what :class:`ReadAhead` calls (Linux's libc)."""
    return has_libc("open", "close", "posix_fadvise", "preadv2", "nanosleep", "lseek")


class ReadAhead:
    """A thread that starts the kernel's reads of the files workers will take next.

    Args:
        names: The files' NUL-terminated paths back to back (see
            :func:`lsio.io.c_strings`).
        name_at: Where the path of file ``i`` starts in ``names``.
        taken: ``(1,)`` int64: the workers' shared counter of files taken,
            which they advance atomically; only read here.
        window: Files read ahead of the counter at most (default 64: at most
            64 files' reads in flight, ~2 MB of the benchmark's chunk files,
            which hold 90 KB each decoded and ~35 KB stored).
        idle: Seconds without a file taken after which the thread gives up
            (default :data:`IDLE_SECONDS`).

    Attributes:
        state: ``[files read ahead, files probed]``, filled in as it runs.
    """

    def __init__(
        self,
        names: npt.NDArray[np.uint8],
        name_at: _I64,
        taken: _I64,
        window: int = 64,
        idle: float = IDLE_SECONDS,
    ) -> None:
        self.state = np.zeros(2, dtype=np.int64)
        self._args = (
            names,
            name_at,
            taken,
            window,
            os.O_RDONLY | os.O_NONBLOCK | getattr(os, "O_CLOEXEC", 0),
            max(int(idle * 1e9 / _NAP_NS), 1),
            advice_bytes(c_string_at(names, name_at, 0)) if len(name_at) else WILLNEED_PIECE,
            self.state,
        )
        self._thread = threading.Thread(target=self._run, name="lsio-read-ahead", daemon=True)

    def _run(self) -> None:
        _ahead(*self._args)

    def start(self) -> None:
        """Start reading ahead; the thread ends by itself (see the module doc)."""
        self._thread.start()

    def join(self, timeout: float | None = None) -> bool:
        """Wait for the thread to end (at most ``timeout`` seconds); whether it has."""
        self._thread.join(timeout)
        return not self._thread.is_alive()


def merged_spans(spans: _I64, gap: int) -> _I64:
    """``spans`` (rows of object, start, stop) merged per object across gaps of ``gap`` bytes or less.

    Overlapping and nearby spans become one, in order of object and start; a
    span inside a longer one may start a new row (harmless for advice).
    """
    if not len(spans):
        return spans
    s = spans[np.lexsort((spans[:, 1], spans[:, 0]))]
    new = np.ones(len(s), dtype=bool)
    new[1:] = (s[1:, 0] != s[:-1, 0]) | (s[1:, 1] > s[:-1, 2] + gap)
    first = np.flatnonzero(new)
    out = s[first].copy()
    out[:, 2] = np.maximum.reduceat(s[:, 2], first)
    return out


def split_spans(spans: _I64, piece: int) -> _I64:
    """``spans`` (rows of object, start, stop) cut into pieces of at most ``piece`` bytes."""
    if not len(spans):
        return spans
    counts = np.maximum(-(-(spans[:, 2] - spans[:, 1]) // piece), 1)
    rows = np.repeat(spans, counts, axis=0)
    within = np.arange(len(rows)) - np.repeat(np.cumsum(counts) - counts, counts)
    rows[:, 1] += within * piece
    rows[:, 2] = np.minimum(rows[:, 1] + piece, rows[:, 2])
    return rows
