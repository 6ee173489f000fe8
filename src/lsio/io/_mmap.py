"""Local files read through memory maps: no syscall and no copy per range once a file is mapped.

For data in the page cache, a slice of a mapping is the cheapest read there is;
for data on disk, every first touch of a page is a page fault served one page
(or readahead window) at a time, which is slower than one large ``preadv``.
Mappings are cached per file (bounded LRU) and checked against the file's
identity (inode, size, modification time) at every batch, so a file replaced
by a writer (lsio replaces objects by renaming) is mapped again, never read stale.
"""

from __future__ import annotations

import ctypes
import errno
import functools
import mmap
import os
import threading
from collections import OrderedDict
from collections.abc import Callable, Iterator, Sequence
from typing import Any

import numba
import numpy as np
import numpy.typing as npt

from lsio._errors import ReadError
from lsio.io._base import IOConfig, ResidentMaps, group_by_key, resolve_range, split_whole
from lsio.io._local import LocalStore
from lsio.io._readahead import WILLNEED_PIECE, advice_bytes, merged_spans, split_spans
from lsio.io._types import (
    ByteRange,
    ReadRequest,
    ReadResult,
    SuffixRange,
    describe_range,
)

__all__ = [
    "AutoStore",
    "BorrowedPages",
    "MmapStore",
    "mapping_addresses",
    "populate_spans",
    "release_spans",
]

_Identity = tuple[int, int, int]


class MmapStore(LocalStore):
    """A :class:`LocalStore` whose reads are views of cached memory maps.

    Args:
        root: Directory (or ``file://`` URL) that holds the objects.
        config: IO settings (coalescing does not apply: every range is a view).
        max_maps: Files kept mapped (LRU; default 1024). A mapping stays valid
            while results view it, even after eviction.
    """

    _whole_by_pread = False

    def __init__(
        self, root: str | os.PathLike[str], config: IOConfig | None = None, max_maps: int = 1024
    ) -> None:
        super().__init__(root, config)
        self._maps: OrderedDict[str, tuple[_Identity, np.ndarray]] = OrderedDict()
        self._max_maps = max_maps
        self._lock = threading.Lock()

    def _mapping(self, key: str) -> np.ndarray | None:
        """The file of ``key`` as a read-only uint8 array, or ``None`` when it does not exist."""
        path = self._path(key)
        try:
            st = os.stat(path)
        except (FileNotFoundError, NotADirectoryError):
            return None
        identity = (st.st_ino, st.st_size, st.st_mtime_ns)
        with self._lock:
            found = self._maps.get(key)
            if found is not None and found[0] == identity:
                self._maps.move_to_end(key)
                return found[1]
        if st.st_size == 0:
            data = np.zeros(0, dtype=np.uint8)
        else:
            with open(path, "rb") as f:
                data = np.frombuffer(mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ), np.uint8)
        with self._lock:
            self._maps[key] = (identity, data)
            self._maps.move_to_end(key)
            while len(self._maps) > self._max_maps:
                self._maps.popitem(last=False)
        return data

    def resident_mappings(
        self, keys: Sequence[str], spans: npt.NDArray[np.int64]
    ) -> ResidentMaps | None:
        """The files' mappings (see :class:`lsio.io.ResidentMapper`): every read is a view here."""
        maps = self._mappings(keys, spans)
        return None if maps is None else ResidentMaps(maps)

    def _mappings(
        self, keys: Sequence[str], spans: npt.NDArray[np.int64]
    ) -> list[np.ndarray | None] | None:
        """The mappings of the keys that ``spans`` read, or ``None`` when one cannot be had."""
        read = np.zeros(len(keys), dtype=bool)
        read[spans[:, 0]] = True
        maps: list[np.ndarray | None] = []
        for key, wanted in zip(keys, read.tolist(), strict=True):
            try:
                data = self._mapping(key) if wanted else None
            except OSError:  # e.g. not a regular file: read_batch reports it with the range
                return None
            if wanted and data is None:
                return None
            maps.append(data)
        return maps

    def read_batch(self, requests: Sequence[ReadRequest]) -> Iterator[ReadResult]:
        """Serve every request as a view of its file's mapping."""
        for key, reqs in group_by_key(requests).items():
            try:
                data = self._mapping(key)
            except OSError as exc:
                raise ReadError(
                    str(exc), key=key, byte_range=describe_range(reqs[0].range)
                ) from exc
            yield from _views(data, reqs)


def _views(data: np.ndarray | None, reqs: list[ReadRequest]) -> Iterator[ReadResult]:
    """Each request as a view of a file's mapping (``None`` data: the file does not exist)."""
    for req in reqs:
        if data is None:
            yield ReadResult(req.tag, None)
            continue
        start, end = resolve_range(req.range, data.size)
        yield ReadResult(req.tag, data[start:end].data)


_MAP_MIN_AVERAGE = 16 * 1024
_RELEASE_MIN_AVERAGE = 1024 * 1024
# Large spans are mapped while at most one page in this many is missing.
_MISSING_SHARE = 8


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


def _resident(
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


class BorrowedPages:
    """A context manager: the pages of ``spans`` populated on entry and released on exit.

    For a compiled reader's spans of a :class:`~lsio.io.ResidentMaps` whose
    ``release`` is set (pass it as ``release``); with ``release`` false, entry
    and exit do nothing and the pages stay mapped. Arguments as
    :func:`populate_spans` takes them; ``names`` gives the key and the byte
    range of a span's row, for the :class:`~lsio.ReadError` raised on entry
    when its pages cannot be read in.
    """

    __slots__ = ("_bases", "_names", "_release", "_sizes", "_spans")

    def __init__(
        self,
        bases: npt.NDArray[np.int64],
        sizes: npt.NDArray[np.int64],
        spans: npt.NDArray[np.int64],
        release: bool,
        names: Callable[[int], tuple[str, str]],
    ) -> None:
        self._bases, self._sizes, self._spans, self._release = bases, sizes, spans, release
        self._names = names

    def __enter__(self) -> None:
        if not self._release:
            return
        try:
            populate_spans(self._bases, self._sizes, self._spans)
        except UnreadablePagesError as exc:
            key, byte_range = self._names(exc.span)
            raise ReadError(str(exc), key=key, byte_range=byte_range) from exc

    def __exit__(self, *exc: object) -> None:
        if self._release:
            release_spans(self._bases, self._sizes, self._spans)


def mapping_addresses(
    maps: Sequence[np.ndarray | None],
) -> tuple[npt.NDArray[np.int64], npt.NDArray[np.int64]]:
    """The address and size of each mapping (0 and 0 for ``None``), for compiled code."""
    bases = np.array([0 if m is None else m.ctypes.data for m in maps], dtype=np.int64)
    sizes = np.array([0 if m is None else m.size for m in maps], dtype=np.int64)
    return bases, sizes


def _spans(data: np.ndarray, reqs: list[ReadRequest]) -> npt.NDArray[np.int64]:
    """The byte ranges that ``reqs`` ask of a mapping, as ``_resident`` takes them."""
    spans = np.zeros((len(reqs), 3), dtype=np.int64)
    spans[:, 1:] = [resolve_range(r.range, data.size) for r in reqs]
    return spans


class AutoStore(MmapStore):
    """Memory maps for parts of files in the page cache, ``preadv`` for whole files and the rest.

    Random crops of sharded arrays read a few inner chunks of each big shard
    file: views of a cached mapping spare a read and a copy per range, but
    only while the pages are in the page cache (``mincore`` says so; a page
    fault per page is far slower than one ``preadv`` from disk). Whole files
    (unsharded chunks) and large spans (whole-array reads) are cheaper with one
    ``preadv`` than with a new mapping or page faults.

    Args:
        root: Directory (or ``file://`` URL) that holds the objects.
        config: IO settings (coalescing applies to the ``preadv`` reads).
        map_below: Requests of one file in one :meth:`read_batch` that add up
            to fewer bytes than this (default 4 MiB), averaging at least 16
            KiB, are served from the mapping; for compiled readers
            (:meth:`resident_mappings`) larger spans are mapped too, and
            handed back once read.
    """

    _whole_by_pread = True

    def __init__(
        self,
        root: str | os.PathLike[str],
        config: IOConfig | None = None,
        map_below: int = 4 * 1024 * 1024,
    ) -> None:
        super().__init__(root, config)
        self._map_below = map_below

    def _worth_mapping(self, total: int, count: int) -> bool:
        # Small ranges are cheap to copy, and a view costs more per range than a
        # slice of one coalesced read (measured: 8 KB chunks 30% slower mapped).
        return _MAP_MIN_AVERAGE * count <= total < self._map_below

    def resident_mappings(
        self, keys: Sequence[str], spans: npt.NDArray[np.int64]
    ) -> ResidentMaps | None:
        """The files' mappings when their pages are in the page cache (see :class:`lsio.io.ResidentMapper`).

        Unlike :meth:`read_batch`, large spans are mapped too: a compiled reader
        decodes them straight from the page cache, sparing the copy into a
        read buffer (uncompressed whole-array blocks 5.1 -> 6.6 GB/s here).
        Spans averaging 1 MiB or more (whole-array blocks) are to be handed
        back once read (``release``), so that this process's resident memory
        does not grow with every file read; smaller ones (crops) keep their
        pages mapped, since dropping and faulting them again costs more per
        byte than the copy it saves. Ranges averaging under 16 KiB are
        refused (a copy is cheaper).
        """
        if not len(spans):
            return None
        count = np.bincount(spans[:, 0], minlength=len(keys))
        total = np.bincount(spans[:, 0], spans[:, 2] - spans[:, 1], minlength=len(keys))
        read = count > 0
        if (total[read] < _MAP_MIN_AVERAGE * count[read]).any():
            return None
        maps = self._mappings(keys, spans)
        release = int(total.sum()) >= _RELEASE_MIN_AVERAGE * len(spans)
        # Large spans are populated before they are read (one call per span),
        # which reads the few pages the page cache has lost in one go: this
        # machine's kernel drops ~0.5% of a 2 GB array's pages within seconds of
        # its reading, and a single missing page used to send a whole window of
        # hundreds of MB through preadv (a copy, and fresh buffers zeroed).
        allowed = int(total.sum()) // (mmap.PAGESIZE * _MISSING_SHARE) if release else 0
        if maps is None:
            return None
        if not _resident(*mapping_addresses(maps), spans, allowed):
            # On disk: the kernel starts reading every span now, so that the
            # workers' reads that follow find many in flight, not one each.
            start_reading(*mapping_addresses(maps), spans, advice_bytes(self.root))
            return None
        return ResidentMaps(maps, release=release)

    def read_batch(self, requests: Sequence[ReadRequest]) -> Iterator[ReadResult]:
        """Serve each file's requests from its mapping or with ``preadv``, by their sizes.

        Whole objects (chunk files) are read, several in one compiled call.
        """
        whole, rest = split_whole(requests)
        for key, reqs in rest.items():
            total = 0
            for req in reqs:
                rng = req.range
                if not isinstance(rng, ByteRange | SuffixRange):
                    total = self._map_below  # a whole object: read it
                    break
                total += rng.end - rng.start if isinstance(rng, ByteRange) else rng.length
            data = None
            if self._worth_mapping(total, len(reqs)):
                try:
                    data = self._mapping(key)
                except OSError:  # e.g. not a regular file: preadv reports it with the range
                    data = None
            if data is not None and _resident(*mapping_addresses([data]), _spans(data, reqs)):
                yield from _views(data, reqs)
            else:
                yield from self._read_file(key, reqs)
        yield from self._read_whole(whole)
