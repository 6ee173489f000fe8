"""Decode runs of compressed chunks and scatter each to its outputs, in one compiled call.

The batched read path spends as much time in Python per chunk (a decode call,
a NumPy view per destination, a copy call, winning the GIL back after each) as
in zstd. Here a worker hands a whole run of chunks to one Numba function that
runs without the GIL: for each chunk it calls the compressor's C decoder (see
:mod:`lsio.compute._cdecode`) into a scratch buffer, or straight into the output when the
chunk is a contiguous block of it, and copies every piece of the chunk that a
selection needs into its place with ``memcpy`` per contiguous row, while the
chunk is in cache.

The work is described by integer tables that the planner builds with NumPy
(see :class:`ScatterTables`); the kernel takes byte addresses, so the caller
must keep the outputs, the scratch buffer and the stored bytes alive during
the call.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from typing import Any

import numba
import numpy as np
import numpy.typing as npt

from lsio.compute._cdecode import CDecoder, decoded_at, decoded_within
from lsio.compute._stream import copy_row, store_fence
from lsio.io import libc_extern

__all__ = [
    "SEGMENT_COLUMNS",
    "ScatterKernel",
    "ScatterTables",
    "load_scatter_kernel",
    "copy_interleaved",
    "groupable",
    "plan_pieces_compiled",
    "scatter_chunk",
]

_I64 = npt.NDArray[np.int64]

# Columns of the chunk table.
OFFSET, SIZE, DIRECT = 0, 1, 2
# Columns of the piece table before the per-dimension ones: the destination
# address of the piece's first element and its byte offset in the chunk.
DST, SRC = 0, 1
# Columns of a segment (chunk rows read as one piece of memory): its chunk rows,
# the address of its bytes, the object offset of the first byte, the size of a
# whole-object chunk (-1: sizes come from the chunk table) and how many bytes
# there are (-1: the object is missing).
SEG_FIRST, SEG_STOP, SEG_DATA, SEG_BASE, SEG_WHOLE, SEG_LENGTH = range(6)
SEGMENT_COLUMNS = 6


@dataclass(frozen=True, slots=True)
class ScatterTables:
    """What a planned read does, as integer tables (all int64).

    Attributes:
        chunks: ``(c, 3)``: per chunk its byte offset in its object, its stored
            size (``-1``: not stored, read as the fill value) and the row of the
            piece it decodes straight into (``-1``: decode into scratch).
        piece_ptr: ``(c + 1,)``: chunk ``i``'s pieces are rows
            ``piece_ptr[i]:piece_ptr[i + 1]`` of ``pieces``.
        pieces: ``(p, 2 + 2 * ndim)``: destination address, byte offset in the
            chunk, extent per dimension, destination byte stride per dimension.
        chunk_strides: ``(ndim,)``: byte strides of a decoded (C-order) chunk.
        chunk_nbytes: Bytes of a decoded chunk.
        itemsize: Bytes per element.
        stream: Whether rows copied out of scratch write their whole cache
            lines past the caches (see :mod:`lsio.compute._stream`): for
            results too large to stay in cache. Default ``False``.
    """

    chunks: _I64
    piece_ptr: _I64
    pieces: _I64
    chunk_strides: _I64
    chunk_nbytes: int
    itemsize: int
    stream: bool = False


@numba.njit(nogil=True, cache=True)
def advance(idx: Any, n: Any, last: int) -> None:  # pragma: no cover - compiled
    """Step the counter ``idx[:last]`` to the next row, in C order over extents ``n``."""
    d = last - 1
    while d >= 0:
        idx[d] += 1
        if idx[d] < n[d]:
            break
        idx[d] = 0
        d -= 1


_memcpy = libc_extern("memcpy", 3)


@numba.njit(nogil=True, cache=True)
def _fold(
    row: Any, ndim: int, cstr: Any, itemsize: int
) -> tuple[int, int, int]:  # pragma: no cover
    """A piece's copy as rows: the dimensions stepped (``last``), bytes per copy, copies per row.

    Trailing dimensions that are contiguous in both the chunk and the
    destination (or not stepped through at all) fold into one ``memcpy``.
    """
    n = row[2 : 2 + ndim]
    ostr = row[2 + ndim : 2 + 2 * ndim]
    last = ndim - 1
    if ostr[last] == itemsize or n[last] == 1:
        unit = n[last] * itemsize
        while last > 0 and (
            n[last - 1] == 1 or (cstr[last - 1] == unit and ostr[last - 1] == unit)
        ):
            last -= 1
            unit *= n[last]
        return last, unit, 1
    return last, itemsize, n[last]


@numba.njit(nogil=True, cache=True)
def copy_interleaved(
    srcs: Any,
    count: int,
    first_piece: Any,
    pieces: Any,
    ndim: int,
    cstr: Any,
    itemsize: int,
    idx: Any,
    stream: bool,
) -> None:  # pragma: no cover - compiled
    """Copy the one piece of each of ``count`` decoded chunks, row by row across the chunks.

    ``srcs`` holds where each chunk's decoded bytes start and ``first_piece``
    its piece's row of ``pieces``; with ``count`` 1, any piece of a chunk. The
    pieces share their extents and destination strides (see
    :func:`groupable`), so row ``r`` of every chunk is copied before row
    ``r + 1`` of any: chunks side by side along the last dimension fill each
    destination row in one sweep, where chunk after chunk wrote 128-byte
    stretches 2 KB apart (1.5-2.2x the copy rate measured, ``BENCHMARKS.md``).
    With ``stream``, whole cache lines are written past the caches (see
    :func:`lsio.compute._stream.copy_row`), and fenced before returning if any was.
    """
    head = pieces[first_piece[0]]
    n = head[2 : 2 + ndim]
    ostr = head[2 + ndim : 2 + 2 * ndim]
    last, unit, per_row = _fold(head, ndim, cstr, itemsize)
    rows = 1
    for d in range(last):
        rows *= n[d]
        idx[d] = 0
    streamed = False
    for _ in range(rows):
        s_off = 0
        o_off = 0
        for d in range(last):
            s_off += idx[d] * cstr[d]
            o_off += idx[d] * ostr[d]
        for g in range(count):
            row = pieces[first_piece[g]]
            o = row[DST] + o_off
            s = srcs[g] + row[SRC] + s_off
            if per_row == 1:
                streamed |= copy_row(o, s, unit, stream)
            else:
                for i in range(per_row):
                    _memcpy(o + i * ostr[last], s + i * cstr[last], unit)
        advance(idx, n, last)
    if streamed:
        store_fence()


@numba.njit(nogil=True, cache=True)
def groupable(
    c: int, head: int, chunks: Any, piece_ptr: Any, pieces: Any
) -> bool:  # pragma: no cover
    """Whether chunk row ``c`` can join a group whose first chunk is ``head``.

    Both decode into scratch and have one piece each, of the same extents and
    destination strides.
    """
    if chunks[c, DIRECT] >= 0 or piece_ptr[c + 1] - piece_ptr[c] != 1 or chunks[c, SIZE] < 0:
        return False
    a = pieces[piece_ptr[c]]
    b = pieces[piece_ptr[head]]
    for j in range(2, a.shape[0]):  # noqa: SIM110 - a generator is not compiled code
        if a[j] != b[j]:
            return False
    return True


@numba.njit(nogil=True, cache=True)
def scatter_chunk(
    code: int,
    ctx: int,
    hdr: Any,
    c: int,
    data: int,
    size: int,
    chunks: Any,
    piece_ptr: Any,
    pieces: Any,
    scratch: int,
    fill: int,
    cstr: Any,
    nbytes: int,
    itemsize: int,
    idx: Any,
    stream: bool,
) -> bool:  # pragma: no cover - compiled
    """Decode chunk row ``c`` of the tables and copy its pieces; ``False`` if it does not decode.

    The ``size`` bytes at address ``data`` are decoded with compressor ``code``
    (``size < 0``: the chunk reads as the fill value at ``fill``); they must
    decode to exactly ``nbytes``. ``ctx`` is the thread's decoder context,
    ``hdr`` a ``uint32`` array of 4 and ``idx`` an ``int64`` array of
    ``ndim``, both the caller's scratch; the tables are those of
    :class:`ScatterTables` (``cstr``: the chunk strides).
    """
    skip = -1
    if size < 0:
        src = fill
    else:
        direct = chunks[c, DIRECT]
        dst = pieces[direct, DST] if direct >= 0 else scratch
        src = decoded_at(code, ctx, hdr, dst, nbytes, data, size)
        if src == 0:
            return False
        if direct >= 0 and src != dst:  # stored uncompressed: one copy
            _memcpy(dst, src, nbytes)
            src = dst
        skip = direct
    ndim = cstr.shape[0]
    srcs = np.full(1, src, dtype=np.int64)
    piece = np.zeros(1, dtype=np.int64)
    for p in range(piece_ptr[c], piece_ptr[c + 1]):
        if p != skip:
            piece[0] = p
            copy_interleaved(srcs, 1, piece, pieces, ndim, cstr, itemsize, idx, stream)
    return True


@numba.njit(nogil=True, cache=True)
def _run(
    code: int,
    ctx: int,
    segments: Any,
    chunks: Any,
    piece_ptr: Any,
    pieces: Any,
    scratch: int,
    slots: int,
    fill: int,
    cstr: Any,
    nbytes: int,
    itemsize: int,
    stream: bool,
) -> int:  # pragma: no cover - compiled
    idx = np.zeros(cstr.shape[0], dtype=np.int64)
    hdr = np.empty(4, dtype=np.uint32)
    srcs = np.zeros(max(slots, 1), dtype=np.int64)
    first_piece = np.zeros(max(slots, 1), dtype=np.int64)
    ndim = cstr.shape[0]
    for s in range(segments.shape[0]):
        data = segments[s, SEG_DATA]
        base = segments[s, SEG_BASE]
        whole = segments[s, SEG_WHOLE]
        length = segments[s, SEG_LENGTH]
        c: int = segments[s, SEG_FIRST]
        stop: int = segments[s, SEG_STOP]
        while c < stop:
            # Chunks that decode into scratch slots side by side and copy
            # their rows interleaved (length >= 0: the object is there).
            group = 0
            if slots > 1 and length >= 0:
                while (
                    group < slots
                    and c + group < stop
                    and groupable(c + group, c, chunks, piece_ptr, pieces)
                ):
                    group += 1
            if group > 1:
                for g in range(group):
                    cc = c + g
                    size = whole if whole >= 0 else chunks[cc, SIZE]
                    dst = scratch + g * nbytes
                    src = decoded_within(
                        code, ctx, hdr, dst, nbytes, data, base, length, chunks[cc, OFFSET], size
                    )
                    if src == 0:  # cut off, or did not decode: the chunks before it are done
                        if g:
                            copy_interleaved(
                                srcs, g, first_piece, pieces, ndim, cstr, itemsize, idx, stream
                            )
                        return cc
                    srcs[g] = src
                    first_piece[g] = piece_ptr[cc]
                copy_interleaved(
                    srcs, group, first_piece, pieces, ndim, cstr, itemsize, idx, stream
                )
                c += group
                continue
            size = chunks[c, SIZE]
            start = 0
            if length < 0 or size < 0:
                size = -1
            else:
                if whole >= 0:
                    size = whole
                start = chunks[c, OFFSET] - base
                if start < 0 or start + size > length:
                    return c  # cut off: the object is shorter than its index says
            if not scatter_chunk(
                code,
                ctx,
                hdr,
                c,
                data + start,
                size,
                chunks,
                piece_ptr,
                pieces,
                scratch,
                fill,
                cstr,
                nbytes,
                itemsize,
                idx,
                stream,
            ):
                return c
            c += 1
    return -1


@numba.njit(nogil=True, cache=True)
def plan_pieces_compiled(
    bounds: Any, base: Any, ostr: Any, chunk: Any, cstr: Any
) -> tuple[Any, Any]:  # pragma: no cover - compiled
    j_n, ndim = bounds.shape[0], bounds.shape[1]
    first = np.empty((j_n, ndim), dtype=np.int64)
    count = np.empty((j_n, ndim), dtype=np.int64)
    total = 0
    for j in range(j_n):
        m = 1
        for d in range(ndim):
            first[j, d] = bounds[j, d, 0] // chunk[d]
            count[j, d] = (bounds[j, d, 1] - 1) // chunk[d] - first[j, d] + 1
            m *= count[j, d]
        total += m
    coords = np.empty((total, ndim), dtype=np.int64)
    rows = np.empty((total, 2 + 2 * ndim), dtype=np.int64)
    step = np.zeros(ndim, dtype=np.int64)
    p = 0
    for j in range(j_n):
        m = 1
        for d in range(ndim):
            m *= count[j, d]
        step[:] = 0
        for _ in range(m):
            dst = base[j]
            src = 0
            for d in range(ndim):
                c = first[j, d] + step[d]
                lo = max(bounds[j, d, 0], c * chunk[d])
                hi = min(bounds[j, d, 1], (c + 1) * chunk[d])
                coords[p, d] = c
                dst += (lo - bounds[j, d, 0]) * ostr[j, d]
                src += (lo - c * chunk[d]) * cstr[d]
                rows[p, 2 + d] = hi - lo
                rows[p, 2 + ndim + d] = ostr[j, d]
            rows[p, DST] = dst
            rows[p, SRC] = src
            p += 1
            d = ndim - 1
            while d >= 0:
                step[d] += 1
                if step[d] < count[j, d]:
                    break
                step[d] = 0
                d -= 1
    return coords, rows


class ScatterKernel:
    """The compiled decode-and-scatter of runs of one compressor's chunks (see the module doc).

    Compiled once per installation (then loaded from Numba's cache); the
    compressor is an argument of the compiled code. Compiled callers that get
    a chunk's stored bytes their own way call :func:`scatter_chunk`.

    Attributes:
        decoder: The compressor's decoder.
    """

    def __init__(self, decoder: CDecoder) -> None:
        self.decoder = decoder

    def run(
        self, tables: ScatterTables, segments: _I64, scratch: int, fill: int, slots: int = 1
    ) -> int:
        """Decode and scatter the chunk rows of each segment of ``tables``.

        Args:
            tables: The plan.
            segments: ``(s, 6)`` int64, one row per piece of memory: its first
                and stop chunk rows, the address of its bytes (chunk offsets minus
                its base index them), its base (the object offset of its first
                byte), the size of the one chunk it holds when it is a whole chunk
                object (the table's sizes are then unknown; ``-1`` otherwise), and
                its length (the kernel never reads past it; ``-1`` when the object
                is missing, and all its chunks read as the fill value).
            scratch: Address of a buffer of at least ``slots * chunk_nbytes``.
            fill: Address of a decoded chunk of the fill value; may be 0 when
                no chunk is absent or missing.
            slots: Chunks the scratch buffer holds (default 1). With more,
                up to that many consecutive chunks of a segment that each
                have one piece of the same extents and strides are decoded
                side by side and their rows copied interleaved, which fills
                the destination in longer sweeps.

        Returns:
            ``-1``, or the row of the first chunk that did not decode to exactly
            ``chunk_nbytes`` or runs past its segment's length (chunks before it,
            in segment order, are done).
        """
        result: int = _run(
            self.decoder.code,
            self.decoder.context(),
            segments,
            tables.chunks,
            tables.piece_ptr,
            tables.pieces,
            scratch,
            slots,
            fill,
            tables.chunk_strides,
            tables.chunk_nbytes,
            tables.itemsize,
            tables.stream,
        )
        return result

    def compile(self) -> None:
        """Compile now, rather than in the first worker that needs it."""
        tables = ScatterTables(
            np.zeros((0, 3), np.int64),
            np.zeros(1, np.int64),
            np.zeros((0, 4), np.int64),
            np.ones(1, np.int64),
            1,
            1,
        )
        self.run(tables, np.zeros((0, SEGMENT_COLUMNS), np.int64), 0, 0)


@functools.cache
def load_scatter_kernel(decoder: CDecoder) -> ScatterKernel:
    """The process's kernel for ``decoder``'s compressor (compiled once)."""
    kernel = ScatterKernel(decoder)
    kernel.compile()
    return kernel
