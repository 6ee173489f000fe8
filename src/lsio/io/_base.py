"""Capability protocols of the IO layer and helpers shared by backends."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Protocol, runtime_checkable

import numpy as np
import numpy.typing as npt

from lsio.io._buffers import Block
from lsio.io._types import ByteRange, Range, ReadRequest, ReadResult, SuffixRange, WholeObject

__all__ = [
    "ByteReader",
    "IOConfig",
    "Lister",
    "NOT_READ",
    "ResidentMapper",
    "ResidentMaps",
    "Store",
    "TreeLister",
    "WholeObjectReader",
    "WholeObjects",
    "group_by_key",
    "resolve_range",
    "split_whole",
]


_BACKENDS = ("preadv", "io_uring", "mmap", "auto")


@dataclass(frozen=True, slots=True)
class IOConfig:
    """How a backend turns requested ranges into physical reads.

    Attributes:
        max_gap: Unrequested bytes between two ranges that are read anyway to save a
            request. Defaults to 64 KiB, about what a local read costs in setup time.
        max_read: Soft upper bound on one merged read. Defaults to 16 MiB.
        backend: Local-file backend: ``"auto"`` (default: views of cached memory
            maps for parts of files whose pages are in the page cache, e.g.
            random crops and whole-array blocks of sharded arrays, the pages
            of large spans handed back once decoded; ``preadv`` for whole
            files, data on disk and small ranges), ``"preadv"`` (a ``preadv``
            per merged read, from each worker thread), ``"io_uring"`` (all
            reads of a batch through one ring per thread; falls back to
            ``"preadv"``, with a logged warning, where the kernel or platform
            refuses it) or
            ``"mmap"`` (cached memory maps for every read: views instead of
            reads, fastest on page-cached data, slowest from disk). With
            ``"auto"`` and ``"mmap"``, a file cut short *in place* by another
            program while it is being read ends the process (``SIGBUS``, as for
            any reader of memory maps); writers that replace files by renaming
            (lsio, zarr-python) are safe, and ``"preadv"`` is for the others.
        direct: Open files with ``O_DIRECT`` (bypass the page cache; reads are
            widened to 4 KiB-aligned ranges into aligned buffers). Defaults to
            ``False``. Where the file system refuses ``O_DIRECT``, files are read
            through the page cache. Only ``preadv`` reads honour it (``"auto"``
            then reads everything with ``preadv``).
        direct_writes: Write local objects of 1 MiB or more (whole shards)
            around the page cache with ``O_DIRECT`` (Linux). Defaults to
            ``True``: such an object is rarely read again at once, and on the
            machines measured the page cache's copy and write-back cost more
            than the encoding left for them (``BENCHMARKS.md``). Smaller
            objects, and file systems that refuse ``O_DIRECT``, go through the
            page cache. Turn it off when a write is read back right away and
            the page cache would have held it.
        read_buffers: Bytes of idle read buffers a local store keeps for
            reuse (default 0: none, every read gets a fresh buffer). With more,
            reads of 64 KiB or more (not views of the page cache) fill
            page-aligned buffers that the engine hands back once it has decoded
            them (see :class:`lsio.io.BufferPool`, which says why it is off by
            default). 64 MiB serves two workers' largest reads.
    """

    max_gap: int = 64 * 1024
    max_read: int = 16 * 1024 * 1024
    backend: str = "auto"
    direct: bool = False
    direct_writes: bool = True
    read_buffers: int = 0

    def __post_init__(self) -> None:
        if self.read_buffers < 0:
            raise ValueError(f"need read_buffers >= 0, got {self.read_buffers}")
        if self.max_gap < 0 or self.max_read < 1:
            raise ValueError(
                f"need max_gap >= 0 and max_read >= 1, got {self.max_gap}, {self.max_read}"
            )
        if self.backend not in _BACKENDS:
            raise ValueError(
                f"unknown IO backend {self.backend!r}; choose one of {', '.join(_BACKENDS)}"
            )


@runtime_checkable
class ByteReader(Protocol):
    """Reads batches of tagged byte ranges.

    ``read_batch`` blocks the calling thread until its results are yielded; callers
    get parallelism by calling it from several threads with disjoint batches. It
    makes no assumption of low latency: a batch is the unit of planning, so a
    backend may merge, reorder and run its requests concurrently.
    """

    def read_batch(self, requests: Sequence[ReadRequest]) -> Iterator[ReadResult]:
        """Read every request; yield one result per request, in any order.

        A missing object gives ``data=None``; any other failure raises
        :class:`lsio.ReadError` naming the key and the range.
        """
        ...


@dataclass(frozen=True, slots=True)
class ResidentMaps:
    """Objects a compiled reader may read in place (see :class:`ResidentMapper`).

    Attributes:
        maps: Per key, the whole object as a read-only uint8 array (memory the
            store keeps; it may be shorter than a span asks when the object
            is), or ``None`` for a key no span reads.
        release: Whether the reader should hand each span back with
            :func:`lsio.io.release_spans` once it has read it. Set for large
            spans (whole-array blocks): their pages stay in the page cache but
            leave this process's page tables, so its resident memory is bounded
            by the reads in flight rather than growing to every file read.
    """

    maps: list[np.ndarray | None]
    release: bool = False


# The size :class:`WholeObjects` records for an object that was not read.
NOT_READ = -1


@dataclass(frozen=True, slots=True)
class WholeObjects:
    """Whole objects read back to back into one buffer (see :class:`WholeObjectReader`).

    Attributes:
        buffer: The bytes (uint8).
        starts: Where each object's bytes start in ``buffer``.
        sizes: Each object's size, or :data:`NOT_READ` (-1) for a missing one.
        block: The pool block holding ``buffer``, if it came from a
            :class:`lsio.io.BufferPool` (held once for whoever got these
            objects; ``None`` for a plain buffer).
    """

    buffer: npt.NDArray[np.uint8]
    starts: npt.NDArray[np.int64]
    sizes: npt.NDArray[np.int64]
    block: Block | None = None

    def view(self, i: int) -> memoryview:
        """The bytes of object ``i`` (which was read)."""
        start = int(self.starts[i])
        return self.buffer[start : start + int(self.sizes[i])].data


@runtime_checkable
class WholeObjectReader(Protocol):
    """Reads many whole objects into one buffer with one call, for compiled readers."""

    def read_whole_objects(self, keys: Sequence[str]) -> WholeObjects | None:
        """The objects of ``keys``, or ``None`` when this store reads them otherwise.

        Spares the caller a Python object per object: an unsharded array's crop
        reads dozens of chunk files.

        Raises:
            lsio.ReadError: An object exists but cannot be read (naming its key).
        """
        ...

    def object_files(self, keys: Sequence[str]) -> list[bytes] | None:
        """The file-system path of each of ``keys``, whose object is that whole file.

        For compiled readers that open and read the files themselves (with
        :func:`lsio.io.read_whole_file`) and come back to
        :meth:`ByteReader.read_batch` for a file they cannot read, to tell a
        missing object from a failing one. ``None`` where :meth:`read_whole_objects`
        is.
        """
        ...


@runtime_checkable
class ResidentMapper(Protocol):
    """Hands out objects already in memory, so a compiled reader can take their bytes in place."""

    def resident_mappings(
        self, keys: Sequence[str], spans: npt.NDArray[np.int64]
    ) -> ResidentMaps | None:
        """The bytes of ``keys`` in memory, when worth reading in place.

        Args:
            keys: The objects.
            spans: ``(n, 3)``: per byte range the caller will read, the index of
                its object in ``keys``, its start and its end.

        Returns:
            The objects; or ``None`` when the spans are better read with
            :meth:`ByteReader.read_batch`: an object is missing or not in
            memory, or the ranges are too small for a view to pay.
        """
        ...


@runtime_checkable
class Lister(Protocol):
    """Lists the children of a prefix, like ``ls`` of a directory."""

    def list_dir(self, prefix: str) -> tuple[list[str], list[str]]:
        """Return ``(objects, prefixes)`` directly under ``prefix`` (names, sorted)."""
        ...


@runtime_checkable
class TreeLister(Protocol):
    """Lists everything below a prefix at once, with sizes.

    Object stores answer one paginated listing instead of a listing per level
    and a request per object.
    """

    def list_tree(self, prefix: str) -> dict[str, int]:
        """Every object below ``prefix``: key relative to ``prefix`` -> size in bytes."""
        ...


@runtime_checkable
class Store(ByteReader, Lister, Protocol):
    """A readable, listable store; ``url`` says where it is, for messages."""

    @property
    def url(self) -> str:
        """Where the store is, e.g. ``file:///data/x.zarr``."""
        ...

    def get(self, key: str) -> bytes | None:
        """Whole object at ``key``, or ``None`` when it does not exist."""
        ...

    def size(self, key: str) -> int | None:
        """Size in bytes of the object at ``key``, or ``None`` when it does not exist."""
        ...


@runtime_checkable
class Writer(Protocol):
    """Stores and deletes whole objects; a reader sees an object whole or not at all."""

    def put(self, key: str, data: bytes | memoryview) -> None:
        """Store ``data`` under ``key``, replacing what was there, atomically."""
        ...

    def put_many(
        self, keys: Sequence[str], data: np.ndarray, offsets: Sequence[int] | np.ndarray
    ) -> None:
        """Store ``data[offsets[i]:offsets[i + 1]]`` under ``keys[i]`` for every i, as :meth:`put`.

        ``data`` is a C-contiguous uint8 buffer. Each object is replaced
        atomically; on an error the objects before the failing one are written.
        """
        ...

    def delete(self, key: str) -> None:
        """Remove the object at ``key``; nothing happens when there is none."""
        ...

    def delete_prefix(self, prefix: str) -> None:
        """Remove every object under ``prefix`` (``""``: the whole store)."""
        ...


def resolve_range(r: Range, size: int) -> tuple[int, int]:
    """Absolute ``[start, end)`` of ``r`` in an object of ``size`` bytes, clipped to it."""
    if isinstance(r, ByteRange):
        return min(r.start, size), min(r.end, size)
    if isinstance(r, SuffixRange):
        return max(size - r.length, 0), size
    return 0, size


def group_by_key(requests: Sequence[ReadRequest]) -> dict[str, list[ReadRequest]]:
    """Requests grouped per object key, keeping their order within a key."""
    groups: dict[str, list[ReadRequest]] = {}
    for req in requests:
        groups.setdefault(req.key, []).append(req)
    return groups


def split_whole(
    requests: Sequence[ReadRequest],
) -> tuple[list[ReadRequest], dict[str, list[ReadRequest]]]:
    """The requests that read a whole object alone (chunk files), and the others per key."""
    whole: list[ReadRequest] = []
    rest: dict[str, list[ReadRequest]] = {}
    for key, reqs in group_by_key(requests).items():
        if len(reqs) == 1 and isinstance(reqs[0].range, WholeObject):
            whole.append(reqs[0])
        else:
            rest[key] = reqs
    return whole, rest
