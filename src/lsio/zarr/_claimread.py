"""Chunk files of an unsharded read, taken one at a time by every worker in a compiled loop.

A crop of an unsharded array reads dozens of chunk files. Cut into a group
per worker, each group cost its worker a store call and a kernel call from
Python (under the GIL, while the other worker wanted it), and the last group to
finish left the other worker idle: one-by-one crops ran at ~0.9 of
tensorstore's rate while costing the same CPU time per crop on one thread.
Here every worker runs one compiled loop that takes the next chunk file from a
shared counter (an atomic add), reads it into the worker's buffer
(:func:`lsio.io.read_whole_file`), decodes it and copies its pieces
(:func:`lsio.compute.scatter_chunk`) until none is left: Python
runs once per worker and call, and the workers finish within a chunk of each
other. The loop hands back the files it could not open and the chunks that did
not decode; the worker reads those again through the store, which tells a
missing file (the fill value) from a failing one (its error, naming the key),
and names a corrupt chunk.
"""

from __future__ import annotations

import functools
import threading
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numba
import numpy as np
import numpy.typing as npt

from lsio.compute import (
    ScatterKernel,
    ScatterTables,
    copy_interleaved,
    decoded_at,
    fetch_add,
    groupable,
    scatter_chunk,
)
from lsio.io import (
    FileBatchReader,
    ReadAhead,
    c_string_at,
    c_strings,
    load_file_batch_reader,
    probe_files,
    read_ahead_available,
    read_whole_file,
)
from lsio.plan import BoxTables

if TYPE_CHECKING:
    from lsio.zarr._array import Array

__all__ = [
    "CLAIM_GROUPS_FROM",
    "ChunkClaims",
    "ClaimLoop",
    "claim_room",
    "load_claim_loop",
    "plan_claims",
]

_I64 = npt.NDArray[np.int64]


@dataclass(frozen=True, slots=True)
class ChunkClaims:
    """The chunk files of a plan's reads, for its workers to take one at a time.

    Attributes:
        names: The files' NUL-terminated paths back to back (see :func:`lsio.io.c_strings`).
        name_at: Where the path of read ``i`` starts in ``names``.
        rows: The chunk row of each read (a chunk file holds one chunk).
        counter: ``(1,)``: the next read to take; every worker's loop adds to it.
        loop: The compiled loop the workers run.
        on_disk: Whether the first files were found on disk rather than in the
            page cache (see :func:`lsio.io.probe_files`), ``None`` where that
            cannot be told (the read-ahead then stays off).
    """

    names: npt.NDArray[np.uint8]
    name_at: _I64
    rows: _I64
    counter: _I64
    loop: ClaimLoop
    on_disk: bool | None = None
    _ahead: threading.Lock = field(default_factory=threading.Lock)

    @property
    def few(self) -> bool:
        """Whether these are a crop's few dozen files rather than a whole-array block's many."""
        return len(self.rows) < CLAIM_GROUPS_FROM

    @property
    def crop_on_disk(self) -> bool:
        """Whether these are a crop's files found on disk (read by ``ReadConfig.disk_threads`` workers)."""
        return bool(self.on_disk) and self.few

    def read_ahead(self) -> None:
        """Start a :class:`lsio.io.ReadAhead` of these files, once (the first worker to ask).

        Nothing starts where the probe could not tell, nor, for few files (a
        crop's), when they are cached, since a thread costs more than such a
        call's reads from the cache. Many files (a whole-array block) get the
        thread while cached too: it probes one in 16 and reads ahead only
        while they are on disk, and ends when the workers have taken them.
        """
        if not read_ahead_available() or not self._ahead.acquire(blocking=False):
            return
        if self.on_disk is None or (self.few and not self.on_disk):
            return
        ReadAhead(self.names, self.name_at, self.counter).start()

    def paths(self, count: int) -> list[bytes]:
        """The paths of the first ``count`` files."""
        return [
            c_string_at(self.names, self.name_at, i) for i in range(min(count, len(self.name_at)))
        ]


def plan_claims(array: Array, box: BoxTables, kernel: ScatterKernel) -> ChunkClaims | None:
    """The claims of an unsharded array's reads; ``None`` unless its store's objects are files."""
    object_files = getattr(array.store, "object_files", None)
    if object_files is None or not len(box.reads):
        return None
    loop = load_claim_loop(kernel)
    if loop is None:
        return None
    rows = np.ascontiguousarray(box.reads[:, 0])
    paths = object_files(array.chunk_keys(box.coords[rows]))
    if paths is None:
        return None
    names, name_at = c_strings(paths)
    # Probed here, before any worker starts: a crop on disk takes more workers
    # (see lsio.ReadConfig.disk_threads), and the probe does not wait for the device.
    found = probe_files(paths[:4]) if read_ahead_available() else None
    return ChunkClaims(names, name_at, rows, np.zeros(1, dtype=np.int64), loop, found)


@numba.njit(nogil=True, cache=True)
def _take(
    code: int,
    ctx: int,
    counter: Any,
    names: Any,
    name_at: Any,
    rows: Any,
    flags: int,
    files: Any,
    room: int,
    step: int,
    chunks: Any,
    piece_ptr: Any,
    pieces: Any,
    scratch: int,
    cstr: Any,
    nbytes: int,
    itemsize: int,
    stream: bool,
) -> Any:  # pragma: no cover - compiled
    # Takes ``step`` reads at a time. Each file is read into its slot of
    # ``files`` (``room`` bytes each); chunks that can are decoded into
    # ``scratch`` side by side and their rows copied interleaved (see
    # lsio.compute.copy_interleaved), the others one at a time. Returns the
    # reads this loop could not open or decode (the others go on: a chunk that
    # fails here may decode when read again, and then every read must have
    # been done).
    hdr = np.empty(4, dtype=np.uint32)
    idx = np.zeros(cstr.shape[0], dtype=np.int64)
    srcs = np.zeros(step, dtype=np.int64)
    first_piece = np.zeros(step, dtype=np.int64)
    failed = np.empty(16, dtype=np.int64)
    n_failed = 0
    n = rows.shape[0]
    base = names.ctypes.data
    ndim = cstr.shape[0]
    while True:
        first = fetch_add(counter, 0, step)  # type: ignore[call-arg,var-annotated]
        if first >= n:
            break
        grouped = 0
        head = -1
        for i in range(first, min(first + step, n)):
            slot = files[grouped * room : (grouped + 1) * room]
            size, got = read_whole_file(base + name_at[i], flags, slot)
            c = rows[i]
            ok = size >= 0
            if (
                ok
                and got.ctypes.data == slot.ctypes.data
                and groupable(c, c if head < 0 else head, chunks, piece_ptr, pieces)
            ):
                dst = scratch + grouped * nbytes
                src = decoded_at(code, ctx, hdr, dst, nbytes, got.ctypes.data, size)
                if src != 0:
                    head = c if head < 0 else head
                    srcs[grouped] = src
                    first_piece[grouped] = piece_ptr[c]
                    grouped += 1
                    continue
                ok = False
            elif ok:  # on its own, in the next free scratch slot
                ok = scatter_chunk(
                    code, ctx, hdr, c, got.ctypes.data, size, chunks, piece_ptr, pieces,
                    scratch + grouped * nbytes, 0, cstr, nbytes, itemsize, idx, stream,
                )  # fmt: skip
            if ok:
                continue
            if n_failed == failed.shape[0]:
                grown = np.empty(2 * n_failed, dtype=np.int64)
                grown[:n_failed] = failed
                failed = grown
            failed[n_failed] = i
            n_failed += 1
        if grouped:
            copy_interleaved(srcs, grouped, first_piece, pieces, ndim, cstr, itemsize, idx, stream)
    return failed[:n_failed].copy()


class ClaimLoop:
    """The compiled loop of one compressor (see the module doc).

    Compiled once per installation (then loaded from Numba's cache).
    """

    def __init__(self, kernel: ScatterKernel, reader: FileBatchReader) -> None:
        self._kernel = kernel
        self._flags = reader.flags

    def run(
        self, tables: ScatterTables, claims: ChunkClaims, scratch: np.ndarray, step: int = 1
    ) -> _I64:
        """Take reads of ``claims`` until none is left, ``step`` at a time; returns those that failed.

        Args:
            tables: The plan's kernel tables.
            claims: The reads, shared by every worker of the call.
            scratch: This worker's ``uint8`` buffer of :func:`claim_room` bytes
                for ``step``: ``step`` chunks to decode into, then a file's room
                (:func:`file_room`) for each (a file that does not fit is read
                into a larger copy, and its chunk decoded on its own).
            step: Reads taken at a time (default 1); with more, neighbouring
                chunks are decoded side by side and their rows copied
                interleaved.

        Returns:
            The reads whose file could not be opened or read, or whose chunk did
            not decode; the caller reads them again through the store.
        """
        nbytes = tables.chunk_nbytes
        failed: _I64 = _take(
            self._kernel.decoder.code,
            self._kernel.decoder.context(),
            claims.counter,
            claims.names,
            claims.name_at,
            claims.rows,
            self._flags,
            scratch[step * nbytes :],
            file_room(nbytes),
            step,
            tables.chunks,
            tables.piece_ptr,
            tables.pieces,
            scratch.ctypes.data,
            tables.chunk_strides,
            nbytes,
            tables.itemsize,
            tables.stream,
        )
        return failed


CLAIM_GROUPS_FROM = 512
"""Chunk files of a call from which workers take them several at a time (a
whole-array block), and the read-ahead runs while they are cached too."""


def claim_room(chunk_nbytes: int, step: int) -> int:
    """Bytes of a worker's buffer for :meth:`ClaimLoop.run` taking ``step`` reads at a time."""
    return step * (chunk_nbytes + file_room(chunk_nbytes))


def file_room(chunk_nbytes: int) -> int:
    """Bytes of a worker's buffer for a chunk file: any compressor's worst case on a chunk, and a page."""
    return chunk_nbytes + chunk_nbytes // 8 + 4096


@functools.cache
def load_claim_loop(kernel: ScatterKernel) -> ClaimLoop | None:
    """The process's loop for ``kernel``, or ``None`` without the compiled file reader."""
    reader = load_file_batch_reader()
    return None if reader is None else ClaimLoop(kernel, reader)
