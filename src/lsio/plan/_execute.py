"""Executing chunk reads: IO and decode back to back in each worker."""

from __future__ import annotations

import concurrent.futures as cf
import functools
import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Generic, TypeVar

import numpy as np

from lsio.compute import run_all
from lsio.io import (
    BorrowedPages,
    ByteRange,
    ByteReader,
    IOConfig,
    Range,
    ReadRequest,
    ResidentMaps,
    describe_range,
    mapping_addresses,
)

__all__ = ["ReadConfig", "ReadTask", "execute_reads"]

T = TypeVar("T")


DISK_THREADS = 4
"""Threads reading a crop's chunk files from disk by default: one-by-one cold
crops of a file-per-chunk array took 4.3-4.4 ms with 4 threads, 4.5 with 8 and
4.8-4.9 with 2 on this 2-core machine (``BENCHMARKS.md``)."""


@dataclass(frozen=True, slots=True)
class ReadConfig:
    """Knobs of the read path; a value passed to ``lsio.open``, never global.

    Attributes:
        threads: Threads that read and decode a call, the calling thread among
            them (it works rather than waits). ``None`` (default) means one per
            CPU core; 1 runs everything in the calling thread.
        io: Coalescing settings of the IO backend (gap, largest merged read).
        shard_index_cache: Shard indexes kept per array (LRU). Defaults to 4096,
            i.e. at most a few MiB for typical shards. An array's own writes
            keep its cache true; a shard rewritten through another handle or
            process is read by the index cached before, until
            :meth:`lsio.Array.forget_shards` (or opening the array again), as
            with any reader that caches what it read. Writes always read the
            index of a shard they update afresh.
        tasks_per_thread: Batches a read is split into per worker thread, to balance
            uneven work. Defaults to 4.
        output_pool: Bytes of memory behind results of 4 MiB and more that reads
            reuse once the caller has dropped those results, instead of asking the
            kernel for fresh (page-faulting, zeroed) memory every time; see
            :class:`lsio.compute.OutputPool`. Defaults to 256 MiB; 0 turns it off.
        disk_threads: Threads that read a call of few chunk files (a crop of
            an array stored a file per chunk) when the files are on disk, not
            in the page cache: each waits for the device while others decode.
            ``None`` (default) means 4, or ``threads`` where that is more (1
            where ``threads`` is 1). Such a call runs on ``max(threads,
            disk_threads)`` threads, those beyond ``threads`` from a pool of
            their own, so other calls keep to ``threads`` however many run at
            once. Calls of cached files, and calls of many files (whole-array
            blocks, which read ahead), use ``threads``.
        stream_from: Bytes of the results of one array in a call from which
            the rows decoded into scratch are copied into them past the CPU
            caches (non-temporal stores of whole cache lines; see
            :mod:`lsio.compute._stream`): the copy no longer reads the results'
            memory before writing it, nor evicts what the decoder keeps in
            cache. Defaults to 16 MiB, half a typical 32 MiB L3 cache: results
            larger than that would leave the cache anyway before their reader
            gets to them. ``None`` never streams. Only rows that start and end
            on a cache-line boundary are streamed: whole-array blocks of results
            lsio allocates (they start on a page), rarely a crop's rows, and
            rows of an ``out`` array only where it starts on a 64-byte boundary
            (``np.empty`` of a large array starts 16 bytes past one).
    """

    threads: int | None = None
    io: IOConfig = field(default_factory=IOConfig)
    shard_index_cache: int = 4096
    tasks_per_thread: int = 4
    output_pool: int = 256 << 20
    disk_threads: int | None = None
    stream_from: int | None = 16 << 20

    def __post_init__(self) -> None:
        if self.stream_from is not None and self.stream_from < 0:
            raise ValueError(f"stream_from must be >= 0 or None, got {self.stream_from}")
        if self.disk_threads is not None and self.disk_threads < 1:
            raise ValueError(f"disk_threads must be >= 1 or None, got {self.disk_threads}")
        if self.threads is not None and self.threads < 1:
            raise ValueError(f"threads must be >= 1 or None, got {self.threads}")
        if self.shard_index_cache < 0:
            raise ValueError(f"shard_index_cache must be >= 0, got {self.shard_index_cache}")
        if self.tasks_per_thread < 1:
            raise ValueError(f"tasks_per_thread must be >= 1, got {self.tasks_per_thread}")
        if self.output_pool < 0:
            raise ValueError(f"output_pool must be >= 0, got {self.output_pool}")

    @property
    def workers(self) -> int:
        """Resolved number of worker threads."""
        return self.threads if self.threads is not None else (os.cpu_count() or 1)

    @property
    def disk_workers(self) -> int:
        """Resolved number of threads for few chunk files on disk (see ``disk_threads``)."""
        if self.disk_threads is not None:
            return self.disk_threads
        workers = self.workers
        return 1 if workers == 1 else max(workers, DISK_THREADS)


@dataclass(frozen=True, slots=True)
class ReadTask(Generic[T]):
    """One byte range to read, with what the caller needs to handle it.

    Attributes:
        reader: The store holding the object.
        key: Object key in the store.
        range: Bytes of the object.
        item: Passed back to the handler with the data.
    """

    reader: ByteReader
    key: str
    range: Range
    item: T


def execute_reads(
    tasks: Sequence[ReadTask[T]],
    handle: Callable[[ReadTask[T], memoryview | None], None],
    pool: cf.Executor | None,
    batches: int,
    workers: int | None = None,
    release: bool = False,
) -> None:
    """Read every task's range and call ``handle(task, data)`` right after, in a worker.

    Tasks are sorted by store, key and offset and cut into up to ``batches``
    contiguous batches, so each worker reads neighbouring ranges of few files in
    one ``read_batch`` call per store (letting the backend coalesce them), then
    decodes each while it is hot in cache. ``data`` is ``None`` when the object
    does not exist. Tasks of several stores run together on the same workers.

    The calling thread and up to ``workers - 1`` pool threads (default: as
    many as there are batches) share the batches. If a read or a handler
    fails, no further batches start, running ones finish, and the first error
    is raised (see :func:`lsio.compute.run_all`).

    With ``release`` (default ``False``), ``handle`` promises that it is done
    with ``data`` when it returns (it decoded or copied the bytes elsewhere and
    kept no view): each read buffer then goes back to its store's pool (see
    :meth:`lsio.io.ReadResult.release`) instead of being freed.
    """
    if not tasks:
        return
    readers = {id(t.reader): t.reader for t in tasks}
    order = sorted(
        range(len(tasks)),
        key=lambda i: (id(tasks[i].reader), tasks[i].key, getattr(tasks[i].range, "start", 0)),
    )
    n = max(1, min(batches, len(order)))
    step = -(-len(order) // n)
    groups = [order[i : i + step] for i in range(0, len(order), step)]

    resident = _resident(tasks, readers)
    if resident is not None:
        _execute_mapped(tasks, handle, groups, *resident, pool, workers)
        return

    def run(group: list[int]) -> None:
        per_reader: dict[int, list[ReadRequest]] = {}
        for i in group:
            t = tasks[i]
            per_reader.setdefault(id(t.reader), []).append(ReadRequest(i, t.key, t.range))
        for rid, requests in per_reader.items():
            for result in readers[rid].read_batch(requests):
                handle(tasks[result.tag], result.data)
                if release:
                    result.release()

    run_all(pool, run, groups, workers)


def _resident(
    tasks: Sequence[ReadTask[T]], readers: dict[int, ByteReader]
) -> tuple[ResidentMaps, np.ndarray] | None:
    """The store's memory holding every range of ``tasks``, and each task's span in it.

    Only for byte ranges of one store that offers its memory (see
    :class:`lsio.io.ResidentMapper`); ``None`` otherwise, or when the store
    says the ranges are better read.
    """
    if len(readers) != 1:
        return None
    # Not isinstance(store, ResidentMapper): a protocol check costs ~15 us a call.
    resident_mappings = getattr(next(iter(readers.values())), "resident_mappings", None)
    if resident_mappings is None or not all(isinstance(t.range, ByteRange) for t in tasks):
        return None
    index: dict[str, int] = {}
    spans = np.array(
        [(index.setdefault(t.key, len(index)), t.range.start, t.range.end) for t in tasks],  # type: ignore[union-attr]
        dtype=np.int64,
    )
    found = resident_mappings(list(index), spans)
    return None if found is None else (found, spans)


def _execute_mapped(
    tasks: Sequence[ReadTask[T]],
    handle: Callable[[ReadTask[T], memoryview | None], None],
    groups: list[list[int]],
    resident: ResidentMaps,
    spans: np.ndarray,
    pool: cf.Executor | None,
    workers: int | None,
) -> None:
    """:func:`execute_reads` with every range a view of the store's memory: no read, no copy.

    Spans the store asks back (``resident.release``) are populated before
    their handler runs (one call rather than a page fault per 64 KiB) and
    released right after, so resident memory stays bounded by the handlers
    running.
    """
    maps = resident.maps
    bases, sizes = mapping_addresses(maps)

    def run(group: list[int]) -> None:
        for i in group:
            k, start, end = spans[i].tolist()
            mapping = maps[k]
            assert mapping is not None
            task = tasks[i]
            names = functools.partial(_names, task.key, start, end)
            with BorrowedPages(bases, sizes, spans[i : i + 1], resident.release, names):
                handle(task, mapping[start:end].data)

    run_all(pool, run, groups, workers)


def _names(key: str, start: int, end: int, row: int) -> tuple[str, str]:
    """The key and byte range of a mapped read, for an error."""
    return key, describe_range(ByteRange(start, end))
