"""Pages of file mappings, by spans: in the page cache or not, populated, asked for, handed back.

A span is a row ``(mapping, start, stop)`` of byte offsets into one of several
read-only file mappings, whose addresses and sizes :func:`mapping_addresses`
gives. The loops run compiled, without the GIL, one libc call per span.
"""

from __future__ import annotations

import ctypes
import errno
import functools
import mmap
import os
from collections.abc import Sequence
from typing import Any

import numba
import numpy as np
import numpy.typing as npt

from lsio.io._readahead import WILLNEED_PIECE, merged_spans, split_spans

__all__ = [
    "UnreadablePagesError",
    "mapping_addresses",
    "populate_spans",
    "release_spans",
    "resident",
    "start_reading",
]


# libc's calls named, not taken by address: the loops below are then cached on
# disk like the other kernels. With a ctypes address compiled in, they compiled
# anew in every process (0.4-0.65 s at the first mapped read, measured).
_U = numba.types.uintp
_mincore: Any = numba.types.ExternalFunction("mincore", numba.types.int32(_U, _U, _U))
_madvise: Any = numba.types.ExternalFunction(
    "madvise", numba.types.int32(_U, _U, numba.types.int32)
)


@numba.njit(nogil=True, cache=True)
def _resident_loop(bases: Any, sizes: Any, spans: Any, allowed: int) -> bool:  # pragma: no cover
    page = mmap.PAGESIZE
    vec = np.empty(64, dtype=np.uint8)
    missing = 0
    for i in range(spans.shape[0]):
        k = spans[i, 0]
        first = max(spans[i, 1], 0) // page * page
        end = min(spans[i, 2], sizes[k])
        if end <= first:
            continue
        pages = (end - first + page - 1) // page
        if vec.shape[0] < pages:
            vec = np.empty(pages, dtype=np.uint8)
        where = np.uint64(bases[k] + first)
        if _mincore(where, np.uint64(end - first), vec.ctypes.data) != 0:
            return False
        for j in range(pages):
            if not vec[j] & 1:
                missing += 1
                if missing > allowed:
                    return False
    return True


@numba.njit(nogil=True, cache=True)
def _advise_loop(bases: Any, sizes: Any, spans: Any, advice: int) -> int:  # pragma: no cover
    # The first span whose call failed, or -1.
    page = mmap.PAGESIZE
    for i in range(spans.shape[0]):
        k = spans[i, 0]
        first = max(spans[i, 1], 0) // page * page
        end = min(spans[i, 2], sizes[k])
        if end > first and _madvise(
            np.uint64(bases[k] + first), np.uint64(end - first), np.int32(advice)
        ):
            return i
    return -1


def _linked(loop: Any, *args: Any) -> Any:
    """``loop`` once it has compiled (or loaded from the cache) for ``args``; ``None`` if it cannot.

    A libc without the call fails to link, in Numba's own error types.
    """
    try:
        loop(*args)
    except Exception:
        return None
    return loop


_NO_SPANS = (np.zeros(1, np.int64), np.zeros(1, np.int64), np.zeros((0, 3), np.int64))


@functools.cache
def _resident_function() -> Any:
    """The compiled page-cache check, or ``None`` without ``mincore`` (then nothing is mapped).

    Compiled once per installation, then loaded from Numba's cache. A ctypes
    loop over the spans needs no compiling but cost ~60 µs more per call of a
    crop (measured: 72 vs 9 µs on a dozen spans), on the calling thread's
    serial planning of every read.
    """
    return _linked(_resident_loop, *_NO_SPANS, 0)


def resident(
    bases: npt.NDArray[np.int64],
    sizes: npt.NDArray[np.int64],
    spans: npt.NDArray[np.int64],
    allowed: int = 0,
) -> bool:
    """Whether the pages that ``spans`` touch of some mappings are in the page cache.

    ``spans`` is ``(n, 3)``: the mapping (an index into ``bases``, the
    mappings' addresses, and ``sizes``), start and end. At most ``allowed``
    pages (default 0) may be missing. Only the pages asked for are looked up
    (for pages never touched through a mapping the kernel searches the page
    cache one page at a time), by one compiled call without the GIL: a crop
    asks a dozen ranges of a 14 MB shard.
    """
    resident = _resident_function()
    if resident is None:
        return False
    return bool(resident(bases, sizes, spans, allowed))


@functools.cache
def _advise_function() -> Any:
    """The compiled ``madvise`` loop over spans, or ``None`` where there is none."""
    return _linked(_advise_loop, *_NO_SPANS, 0)


# Linux 5.14+; older kernels refuse it (EINVAL) and pages fault in one by one.
_MADV_POPULATE_READ = 22


class UnreadablePagesError(OSError):
    """Pages of a mapped span could not be read in (an I/O error, or a file cut short in place).

    Attributes:
        span: The row of the spans that could not be read.
    """

    def __init__(self, code: int, span: int) -> None:
        super().__init__(code, f"cannot read a mapped file's pages: {os.strerror(code)}")
        self.span = span


def populate_spans(
    bases: npt.NDArray[np.int64], sizes: npt.NDArray[np.int64], spans: npt.NDArray[np.int64]
) -> None:
    """Map the pages of ``spans`` into this process's page tables, one call per span.

    Pages not in the page cache are read in here, where a failure can be
    reported, rather than when compiled code touches them (a failed read then
    is a ``SIGBUS`` that ends the process).

    Raises:
        UnreadablePagesError: When a span's pages cannot be read in (its row named).
    """
    advise = _advise_function()
    first = 0
    while advise is not None and first < len(spans):
        bad = int(advise(bases, sizes, spans[first:], _MADV_POPULATE_READ))
        if bad < 0:
            return
        at = first + bad
        code = _advise_errno(bases, sizes, spans[at], _MADV_POPULATE_READ)
        if code in (errno.EINVAL, errno.ENOSYS):
            return  # a kernel without MADV_POPULATE_READ: pages fault in as they are read
        if code:
            raise UnreadablePagesError(code, at)
        first = at + 1  # it went through the second time


def _advise_errno(
    bases: npt.NDArray[np.int64],
    sizes: npt.NDArray[np.int64],
    span: npt.NDArray[np.int64],
    advice: int,
) -> int:
    """``madvise`` of one span again, from Python, for its ``errno`` (0: it went through)."""
    k, start, stop = (int(v) for v in span)
    first = max(start, 0) // mmap.PAGESIZE * mmap.PAGESIZE
    end = min(stop, int(sizes[k]))
    if end <= first:
        return 0
    libc = ctypes.CDLL(None, use_errno=True)
    libc.madvise.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int]
    if libc.madvise(int(bases[k]) + first, end - first, advice) == 0:
        return 0
    return ctypes.get_errno()


def start_reading(
    bases: npt.NDArray[np.int64],
    sizes: npt.NDArray[np.int64],
    spans: npt.NDArray[np.int64],
    piece: int = WILLNEED_PIECE,
) -> None:
    """Ask the kernel to start reading the pages of ``spans`` of some file mappings.

    ``MADV_WILLNEED`` on runs of spans less than 64 KiB apart (the default
    coalescing gap of reads), cut into pieces of ``piece`` bytes (see
    :func:`lsio.io._readahead.advice_bytes`; the kernel reads no more than a
    device's readahead size, or its largest request, per call): it returns
    before the data arrives. A cold read of whole-array blocks of a sharded array,
    which read each group of spans only when a worker got to it, ran at 0.54 of
    the codec limit (``BENCHMARKS.md``). Arguments as for
    :func:`release_spans`; a no-op where ``madvise`` is missing.
    """
    advise = _advise_function()
    willneed = getattr(mmap, "MADV_WILLNEED", None)
    if advise is not None and willneed is not None and len(spans):
        pieces = split_spans(merged_spans(spans, 64 << 10), piece)
        advise(bases, sizes, pieces, willneed)


def release_spans(
    bases: npt.NDArray[np.int64], sizes: npt.NDArray[np.int64], spans: npt.NDArray[np.int64]
) -> None:
    """Drop the pages of ``spans`` of some read-only file mappings from this process's page tables.

    The pages stay in the page cache and the mappings stay valid: a later
    read of them faults them back in (a minor fault per 64 KiB or so), which
    is why only large reads are handed back. Pages a span shares with a
    neighbour are dropped too, harmlessly for the same reason. ``bases``,
    ``sizes`` and ``spans`` are as :func:`mapping_addresses` and the spans of
    :meth:`AutoStore.resident_mappings` give them. One compiled call, without
    the GIL; a no-op where ``madvise`` is missing.
    """
    advise = _advise_function()
    dontneed = getattr(mmap, "MADV_DONTNEED", None)
    if advise is not None and dontneed is not None and len(spans):
        advise(bases, sizes, spans, dontneed)


def mapping_addresses(
    maps: Sequence[np.ndarray | None],
) -> tuple[npt.NDArray[np.int64], npt.NDArray[np.int64]]:
    """The address and size of each mapping (0 and 0 for ``None``), for compiled code."""
    bases = np.array([0 if m is None else m.ctypes.data for m in maps], dtype=np.int64)
    sizes = np.array([0 if m is None else m.size for m in maps], dtype=np.int64)
    return bases, sizes
