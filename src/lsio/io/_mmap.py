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
import mmap
import os
import threading
import weakref
from collections import OrderedDict
from collections.abc import Callable, Iterator, Sequence
from typing import Any

import numpy as np
import numpy.typing as npt

from lsio._errors import ReadError
from lsio.io._base import IOConfig, ResidentMaps, group_by_key, resolve_range, split_whole
from lsio.io._local import LocalStore
from lsio.io._pages import (
    UnreadablePagesError,
    mapping_addresses,
    populate_spans,
    release_spans,
    resident,
    start_reading,
)
from lsio.io._readahead import advice_bytes
from lsio.io._types import (
    ByteRange,
    ReadRequest,
    ReadResult,
    SuffixRange,
    describe_range,
)

__all__ = ["AutoStore", "BorrowedPages", "MmapStore", "map_file"]

_Identity = tuple[int, int, int]


def _libc_mapper() -> tuple[Any, Any] | None:
    """Libc's ``mmap`` and ``munmap`` through ctypes, or ``None`` where there is no libc."""
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        mmap_, munmap = libc.mmap, libc.munmap
    except (OSError, AttributeError):
        return None
    mmap_.restype = ctypes.c_void_p
    mmap_.argtypes = [
        ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int, ctypes.c_int, ctypes.c_int, ctypes.c_long
    ]  # fmt: skip
    munmap.restype = ctypes.c_int
    munmap.argtypes = [ctypes.c_void_p, ctypes.c_size_t]
    return mmap_, munmap


_LIBC_MAPPER = _libc_mapper()
_MAP_FAILED = ctypes.c_void_p(-1).value


def map_file(fd: int, size: int) -> np.ndarray:
    """A read-only ``uint8`` array over a shared mapping of the first ``size`` bytes of ``fd``.

    The mapping holds no file descriptor (``fd`` may be closed at once) and is
    unmapped when the array and every view of it are gone. Python's
    ``mmap.mmap`` keeps a duplicate descriptor open for as long as it lives:
    a store's cache of 1024 mappings then held 1024 descriptors, and reads
    failed with "Too many open files" under the common limit of 1024. Where
    there is no libc (Windows), ``mmap.mmap`` it is.

    Raises:
        OSError: The file cannot be mapped.
    """
    if size <= 0:  # an empty file (perhaps cut since it was looked at) maps to nothing
        return np.zeros(0, dtype=np.uint8)
    if _LIBC_MAPPER is None:
        return np.frombuffer(mmap.mmap(fd, size, access=mmap.ACCESS_READ), np.uint8)
    map_, unmap = _LIBC_MAPPER
    address = map_(None, size, mmap.PROT_READ, mmap.MAP_SHARED, fd, 0)
    if address is None or address == _MAP_FAILED:
        code = ctypes.get_errno()
        raise OSError(code, f"mmap: {os.strerror(code)}")
    memory = (ctypes.c_ubyte * size).from_address(address)
    weakref.finalize(memory, unmap, address, size)
    data = np.frombuffer(memoryview(memory), np.uint8)
    data.flags.writeable = False  # the pages are mapped read-only: a write would crash
    return data


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
        with open(path, "rb") as f:  # mapped at the size of the file opened (none: empty)
            data = map_file(f.fileno(), os.fstat(f.fileno()).st_size)
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


def _spans(data: np.ndarray, reqs: list[ReadRequest]) -> npt.NDArray[np.int64]:
    """The byte ranges that ``reqs`` ask of a mapping, as ``resident`` takes them."""
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
        bases, sizes = mapping_addresses(maps)
        if not resident(bases, sizes, spans, allowed):
            # On disk: the kernel starts reading every span now, so that the
            # workers' reads that follow find many in flight, not one each.
            start_reading(bases, sizes, spans, advice_bytes(self.root))
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
            if data is not None and resident(*mapping_addresses([data]), _spans(data, reqs)):
                yield from _views(data, reqs)
            else:
                yield from self._read_file(key, reqs)
        yield from self._read_whole(whole)
