"""Planning boxes of an array into the integer tables of the compiled read path, in one call.

A read of unit-step boxes (crops, blocks) becomes: the pieces each box takes
from each chunk, the union of the chunks (each listed once however many boxes
need it, with where it is stored), reads of chunks stored close together in
one object, and groups of reads of about equal decoded size for the workers.
All of it is computed by one compiled function, because a random crop's plan
built from two dozen NumPy calls cost the calling thread ~0.4 ms while the
workers waited (a crop decodes in ~2.5 ms on two cores).

The chunk table is ordered for reading: chunks known to be absent first, then
by object and offset (the order of a shard file).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numba
import numpy as np
import numpy.typing as npt

from lsio.compute import ScatterTables, plan_pieces_compiled

__all__ = ["BoxTables", "c_strides", "plan_box_tables", "touched_shards"]

_I64 = npt.NDArray[np.int64]

# Columns of the read table.
READ_FIRST, READ_STOP, READ_KEY, READ_START, READ_END = range(5)


@dataclass(frozen=True, slots=True)
class BoxTables:
    """The plan of a read of boxes (see the module doc).

    Attributes:
        tables: Chunks and pieces for the kernel (see :class:`lsio.compute.ScatterTables`).
        coords: ``(c, ndim)``: read-grid coordinates of each chunk row.
        key_of: ``(c,)``: per chunk row, the index of its object among the
            touched shards (sharded), or its own row (one object per chunk).
        absent: Chunk rows ``0:absent`` are known to be absent (not stored).
        reads: ``(r, 5)``: per read its chunk rows ``first:stop``, the index of its
            object (as ``key_of``) and its byte range ``start:end`` (0:0 for a
            whole object).
        groups: ``(g + 1,)``: group ``i`` is reads ``groups[i]:groups[i + 1]``
            (non-empty; ``[0]`` when nothing is read).
    """

    tables: ScatterTables
    coords: _I64
    key_of: _I64
    absent: int
    reads: _I64
    groups: _I64


def c_strides(shape: tuple[int, ...], itemsize: int) -> _I64:
    """Byte strides of a C-ordered array of ``shape``."""
    return np.array([math.prod(shape[d + 1 :]) * itemsize for d in range(len(shape))], np.int64)


@numba.njit(nogil=True, cache=True)
def _ravel(c: Any, shape: Any) -> int:  # pragma: no cover - compiled
    out = 0
    for d in range(shape.shape[0]):
        out = out * shape[d] + c[d]
    return out


@numba.njit(nogil=True, cache=True)
def _touched(bounds: Any, span: Any, shard_grid: Any) -> Any:  # pragma: no cover - compiled
    j_n, ndim = bounds.shape[0], bounds.shape[1]
    total = 0
    for j in range(j_n):
        m = 1
        for d in range(ndim):
            m *= (bounds[j, d, 1] - 1) // span[d] - bounds[j, d, 0] // span[d] + 1
        total += m
    ids = np.empty(total, dtype=np.int64)
    c = np.empty(ndim, dtype=np.int64)
    lo = np.empty(ndim, dtype=np.int64)
    hi = np.empty(ndim, dtype=np.int64)
    p = 0
    for j in range(j_n):
        for d in range(ndim):
            lo[d] = bounds[j, d, 0] // span[d]
            hi[d] = (bounds[j, d, 1] - 1) // span[d]
            c[d] = lo[d]
        while True:
            ids[p] = _ravel(c, shard_grid)
            p += 1
            d = ndim - 1
            while d >= 0:
                c[d] += 1
                if c[d] <= hi[d]:
                    break
                c[d] = lo[d]
                d -= 1
            if d < 0:
                break
    return np.unique(ids)


def touched_shards(bounds: _I64, shard_span: _I64, shard_grid: _I64) -> _I64:
    """Linear ids (C order over ``shard_grid``, sorted) of the shards that boxes touch.

    Args:
        bounds: ``(j, ndim, 2)``: start and stop of each (non-empty) box per dimension.
        shard_span: ``(ndim,)``: elements per shard along each dimension.
        shard_grid: ``(ndim,)``: shards along each dimension.
    """
    ids: _I64 = _touched(bounds, shard_span, shard_grid)
    return ids


@numba.njit(nogil=True, cache=True)
def _plan(
    bounds: Any,
    base: Any,
    ostr: Any,
    chunk: Any,
    cstr: Any,
    grid: Any,
    per_shard: Any,
    shard_ids: Any,
    index: Any,
    whole_objects: bool,
    item: int,
    gap: int,
    per_read: int,
    batches: int,
    group_chunks: int,
    min_group_chunks: int,
) -> Any:  # pragma: no cover - compiled
    ndim = chunk.shape[0]
    coords_p, pieces_p = plan_pieces_compiled(bounds, base, ostr, chunk, cstr)
    p_n = pieces_p.shape[0]
    # The union of the chunks: unique linear ids, and each piece's chunk.
    ids = np.empty(p_n, dtype=np.int64)
    for p in range(p_n):
        ids[p] = _ravel(coords_p[p], grid)
    by_id = np.argsort(ids, kind="mergesort")
    chunk_of = np.empty(p_n, dtype=np.int64)
    first_piece = np.empty(p_n, dtype=np.int64)
    n = 0
    for k in range(p_n):
        p = by_id[k]
        if k == 0 or ids[p] != ids[by_id[k - 1]]:
            first_piece[n] = p
            n += 1
        chunk_of[p] = n - 1
    # Where each chunk is stored.
    offsets = np.zeros(n, dtype=np.int64)
    sizes = np.zeros(n, dtype=np.int64)
    key_of = np.empty(n, dtype=np.int64)
    n_shards = shard_ids.shape[0]
    shard_grid = np.empty(ndim, dtype=np.int64)
    for d in range(ndim):
        shard_grid[d] = -(-grid[d] // per_shard[d])
    sc = np.empty(ndim, dtype=np.int64)
    ic = np.empty(ndim, dtype=np.int64)
    for u in range(n):
        c = coords_p[first_piece[u]]
        if whole_objects:
            key_of[u] = u
            continue
        for d in range(ndim):
            sc[d] = c[d] // per_shard[d]
            ic[d] = c[d] - sc[d] * per_shard[d]
        s = np.searchsorted(shard_ids, _ravel(sc, shard_grid))
        key_of[u] = s
        inner = _ravel(ic, per_shard)
        if s >= n_shards or index[s, inner, 0] < 0:  # MISSING (all ones) viewed as int64
            sizes[u] = -1
        else:
            offsets[u] = index[s, inner, 0]
            sizes[u] = index[s, inner, 1]
    # Order: absent first, then by object, then by offset (a stable counting sort
    # by object over a stable sort by offset).
    by_offset = np.argsort(offsets, kind="mergesort")
    start = np.zeros(n + 2, dtype=np.int64)
    bucket = np.empty(n, dtype=np.int64)
    for u in range(n):
        bucket[u] = 0 if sizes[u] < 0 else key_of[u] + 1
        start[bucket[u] + 1] += 1
    for b in range(1, n + 2):
        start[b] += start[b - 1]
    order = np.empty(n, dtype=np.int64)
    for k in range(n):
        u = by_offset[k]
        order[start[bucket[u]]] = u
        start[bucket[u]] += 1
    rank = np.empty(n, dtype=np.int64)
    absent = 0
    for r in range(n):
        rank[order[r]] = r
        if sizes[order[r]] < 0:
            absent += 1
    # Pieces grouped by chunk row (in box order within a chunk).
    piece_ptr = np.zeros(n + 1, dtype=np.int64)
    for p in range(p_n):
        piece_ptr[rank[chunk_of[p]] + 1] += 1
    for r in range(n):
        piece_ptr[r + 1] += piece_ptr[r]
    fill = piece_ptr[:-1].copy()
    pieces = np.empty_like(pieces_p)
    for p in range(p_n):
        r = rank[chunk_of[p]]
        pieces[fill[r]] = pieces_p[p]
        fill[r] += 1
    table = np.empty((n, 3), dtype=np.int64)
    coords = np.empty((n, ndim), dtype=np.int64)
    key_sorted = np.empty(n, dtype=np.int64)
    for r in range(n):
        u = order[r]
        table[r, 0] = offsets[u]
        table[r, 1] = sizes[u]
        table[r, 2] = -1
        coords[r] = coords_p[first_piece[u]]
        key_sorted[r] = key_of[u]
        # A piece that is the whole chunk in a C-contiguous block of its output
        # is decoded into straight (the first such piece of the chunk).
        for p in range(piece_ptr[r], piece_ptr[r + 1]):
            ok = pieces[p, 0] % item == 0
            for d in range(ndim):
                if pieces[p, 2 + d] != chunk[d] or (
                    chunk[d] != 1 and pieces[p, 2 + ndim + d] != cstr[d]
                ):
                    ok = False
            if ok:
                table[r, 2] = p
                break
    # Reads: a new one where the object changes, where a gap of more than `gap`
    # bytes opens, or every `per_read` chunks; whole objects one each.
    reads = np.empty((max(1, n - absent), 5), dtype=np.int64)
    r_n = 0
    end = 0
    for r in range(absent, n):
        off = table[r, 0]
        if (
            r == absent
            or whole_objects
            or key_sorted[r] != key_sorted[r - 1]
            or off - end > gap
            or r - reads[r_n - 1, 0] >= per_read
        ):
            reads[r_n, 0] = r
            reads[r_n, 2] = key_sorted[r]
            reads[r_n, 3] = off
            end = off
            r_n += 1
        reads[r_n - 1, 1] = r + 1
        end = max(end, off + table[r, 1])
        reads[r_n - 1, 4] = end
    reads = reads[:r_n]
    # Groups of reads cut at equal shares of the chunks: `batches` shares, fewer
    # so that a share is at least `min_group_chunks` chunks, or more so that it
    # is at most `group_chunks` (a read that spans several shares makes fewer,
    # larger groups).
    present = n - absent
    shares = max(min(batches, -(-present // min_group_chunks)), -(-present // group_chunks), 1)
    groups = np.empty(r_n + 1, dtype=np.int64)
    groups[0] = 0
    g = 0
    for i in range(r_n):
        if i == r_n - 1 or (reads[i, 1] - absent) * shares >= (g + 1) * present:
            g += 1
            groups[g] = i + 1
    return table, piece_ptr, pieces, coords, key_sorted, absent, reads, groups[: g + 1]


def plan_box_tables(
    bounds: _I64,
    base: _I64,
    ostr: _I64,
    chunk: tuple[int, ...],
    grid: tuple[int, ...],
    itemsize: int,
    *,
    per_shard: tuple[int, ...] | None,
    shard_ids: _I64,
    index: _I64,
    gap: int,
    read_bytes: int,
    batches: int,
    group_bytes: int,
    min_group_bytes: int = 0,
    stream_from: int | None = None,
) -> BoxTables:
    """Plan a read of boxes of one array (see the module doc).

    Args:
        bounds: ``(j, ndim, 2)``: start and stop of each non-empty box per dimension.
        base: ``(j,)``: address of each box's first output element.
        ostr: ``(j, ndim)``: byte strides of each box's output (0 along a
            dimension an integer index drops).
        chunk: The read chunk shape (inner chunks of a sharded array).
        grid: Read chunks along each dimension.
        itemsize: Bytes per element.
        per_shard: Read chunks per shard along each dimension; ``None`` when
            every chunk is an object of its own (read whole).
        shard_ids: Sorted linear ids of the shards the boxes touch (see
            :func:`touched_shards`); empty when unsharded.
        index: ``(len(shard_ids), inner chunks per shard, 2)`` int64 offsets and
            sizes of each shard's inner chunks, ``-1`` where not stored.
        gap: Chunks of one object closer than this are read by one request.
        read_bytes: Decoded bytes of one read at most (at least one chunk).
        batches: Shares of the chunks to cut the reads into groups at.
        group_bytes: Decoded bytes of a share at most (a group is at least one read).
        min_group_bytes: Decoded bytes of a share at least, when the chunks are
            too few for ``batches`` shares of this size (default 0: no minimum;
            always at least one share).
        stream_from: Output bytes of all the boxes together from which the
            kernel copies rows past the caches (:attr:`ScatterTables.stream`);
            ``None`` (default): never.
    """
    ndim = len(chunk)
    chunk_a = np.asarray(chunk, dtype=np.int64)
    cstr = c_strides(chunk, itemsize)
    nbytes = math.prod(chunk) * itemsize
    sharded = per_shard is not None
    table, piece_ptr, pieces, coords, key_of, absent, reads, groups = _plan(
        bounds,
        base,
        ostr,
        chunk_a,
        cstr,
        np.asarray(grid, dtype=np.int64),
        np.asarray(per_shard if sharded else (1,) * ndim, dtype=np.int64),
        shard_ids,
        index,
        not sharded,
        itemsize,
        gap,
        max(1, read_bytes // max(1, nbytes)),
        batches,
        max(1, group_bytes // max(1, nbytes)),
        max(1, min_group_bytes // max(1, nbytes)),
    )
    out_bytes = int(np.prod(bounds[:, :, 1] - bounds[:, :, 0], axis=1).sum()) * itemsize
    stream = stream_from is not None and out_bytes >= stream_from
    tables = ScatterTables(table, piece_ptr, pieces, cstr, nbytes, itemsize, stream)
    return BoxTables(tables, coords, key_of, int(absent), reads, groups)
