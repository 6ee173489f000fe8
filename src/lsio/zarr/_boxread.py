"""Reading unit-step basic selections box by box, with no per-chunk Python objects.

The general engine (:mod:`lsio.zarr._engine`) plans a target per chunk; for
small chunks that Python work costs several times the decoding. Here a basic
selection is cut into boxes (:func:`lsio.plan.plan_boxes`): a worker reads a
box's chunks in one ``read_batch`` call, decodes each with one C call (raw
addresses where the codecs allow it) into a scratch stack, or straight into the
output where each chunk is a contiguous block of it, and copies the stack into
the output with one NumPy call.
"""

from __future__ import annotations

import concurrent.futures as cf
import ctypes
import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np
from numpy.lib.stride_tricks import as_strided

from lsio._errors import ChunkError
from lsio.compute import DecodeError, ScratchPool, run_all
from lsio.io import ByteRange, Range, ReadRequest, WholeObject, release_each
from lsio.plan import Box, IntIndex, OrthogonalSelection, Progression, box_chunk_coords, plan_boxes
from lsio.zarr._sharding import MISSING

if TYPE_CHECKING:
    from lsio.zarr._array import Array
    from lsio.zarr._engine import ReadJob

__all__ = ["BoxWork", "buffer_address", "chunk_error", "plan_box_reads", "run_boxes"]

# Scratch a worker decodes one box into: large enough that per-box costs vanish
# next to decoding, small enough to stay in cache until it is copied out.
BOX_BYTES = 1 << 20
# Boxes of at least STACK_MIN chunks of at most STACK_CHUNK_BYTES are read and
# decoded as one stack (one read_batch and one copy per box), for small chunks,
# whose per-chunk Python costs would exceed their decoding. Other boxes are
# read together per task and each chunk is copied out as soon as it is decoded,
# while it is in cache (measured: stacks of 90 KB chunks were ~10% slower).
STACK_MIN = 8
STACK_CHUNK_BYTES = 32 * 1024
_MISSING = int(MISSING)


@dataclass(frozen=True, slots=True)
class BoxWork:
    """A box of one selection, with where its chunks are stored.

    Attributes:
        array: The array read.
        box: Which chunks, and which part of each.
        out: The selection's output.
        key: The shard holding the box (sharded arrays; else each chunk is an object).
        offsets: Each chunk's offset in the shard (``MISSING`` when not stored).
        sizes: Each chunk's stored size in the shard.
    """

    array: Array
    box: Box
    out: np.ndarray
    key: str = ""
    offsets: Sequence[int] = ()
    sizes: Sequence[int] = ()


Part = tuple[OrthogonalSelection, np.ndarray]


def plan_box_reads(
    array: Array, jobs: Sequence[ReadJob]
) -> tuple[list[BoxWork], list[ReadJob], list[Part]]:
    """Split ``jobs`` of one array into box reads and work for the general engine.

    Returns:
        The box reads; the jobs that are not unit-step basic selections; and
        ``(selection, out)`` parts of boxes holding a chunk that several jobs
        need, for the general engine, which reads each chunk once per call.
    """
    if array.chunk_nbytes > STACK_CHUNK_BYTES:
        # Measured: for large chunks (90 KB) the general engine's per-chunk tasks,
        # sorted by offset, read crops ~20% faster than boxes; decoding dominates
        # there, and its per-chunk Python costs matter little.
        return [], list(jobs), []
    shape = array.read_chunk_shape
    most = max(1, BOX_BYTES // max(1, math.prod(shape) * array.dtype.itemsize))
    # Each unsharded chunk is an object of its own, read by its own request, so
    # only shards bound boxes.
    per_shard = array.chunks_per_shard if array.reads_inner_chunks else (2**62,) * len(shape)
    planned: list[tuple[ReadJob, Box]] = []
    rest: list[ReadJob] = []
    for job in jobs:
        sel = job.selection
        boxes = None
        if isinstance(sel, OrthogonalSelection) and sel.dims:
            boxes = plan_boxes(sel, shape, per_shard, most)
        if boxes is None:
            rest.append(job)
        else:
            planned.extend((job, b) for b in boxes)
    parts: list[Part] = []
    if not planned:
        return [], rest, parts
    if len(jobs) > 1:
        shared = _shared_boxes(planned)
        if shared:
            for k in sorted(shared):
                job, box = planned[k]
                parts.append((_box_selection(box, shape), _box_out(job.out, box, shape)))
            planned = [p for k, p in enumerate(planned) if k not in shared]
    if not array.reads_inner_chunks:
        return [BoxWork(array, b, job.out) for job, b in planned], rest, parts
    # Boxes never cross shards: each takes a block of its shard's index.
    per_shard = array.chunks_per_shard
    shards = [tuple(f // s for f, s in zip(b.first, per_shard, strict=True)) for _, b in planned]
    indexes = array.shard_indexes(set(shards))
    works = []
    for (job, b), shard in zip(planned, shards, strict=True):
        index = indexes[shard]
        if index is None:
            offsets = sizes = [_MISSING] * b.size
        else:
            block = index[
                tuple(
                    slice(f - c * s, f - c * s + n)
                    for f, c, s, n in zip(b.first, shard, per_shard, b.counts, strict=True)
                )
            ].reshape(-1, 2)
            offsets, sizes = block[:, 0].tolist(), block[:, 1].tolist()
        works.append(BoxWork(array, b, job.out, array.chunk_key(shard), offsets, sizes))
    return works, rest, parts


def _shared_boxes(planned: list[tuple[ReadJob, Box]]) -> set[int]:
    """Boxes holding a chunk that another job needs too.

    A unit-step selection needs every chunk of its bounding box of chunks, so a
    box shares a chunk with another job exactly when it meets that job's
    bounding box: one vectorised test of every box against every job.
    """
    job_ids: dict[int, int] = {}
    owner = np.array([job_ids.setdefault(id(job), len(job_ids)) for job, _ in planned])
    first = np.array([b.first for _, b in planned], dtype=np.int64)
    last = first + np.array([b.counts for _, b in planned], dtype=np.int64) - 1
    n_jobs = len(job_ids)
    lo = np.full((n_jobs, first.shape[1]), np.iinfo(np.int64).max)
    hi = np.full((n_jobs, first.shape[1]), -1)
    np.minimum.at(lo, owner, first)
    np.maximum.at(hi, owner, last)
    meets = np.all((first[:, None, :] <= hi[None]) & (lo[None] <= last[:, None, :]), axis=2)
    meets[np.arange(len(planned)), owner] = False
    return set(np.flatnonzero(meets.any(axis=1)).tolist())


def _extents(box: Box, shape: tuple[int, ...]) -> list[int]:
    """Elements along each dimension that the whole box covers."""
    return [
        (n - 1) * c + hi - lo
        for n, c, lo, hi in zip(box.counts, shape, box.lo, box.hi, strict=True)
    ]


def _box_selection(box: Box, shape: tuple[int, ...]) -> OrthogonalSelection:
    dims: list[IntIndex | Progression] = []
    for f, c, lo, o, e in zip(
        box.first, shape, box.lo, box.out_start, _extents(box, shape), strict=True
    ):
        dims.append(IntIndex(f * c + lo) if o is None else Progression(f * c + lo, 1, e))
    return OrthogonalSelection(tuple(dims))


def _box_out(out: np.ndarray, box: Box, shape: tuple[int, ...]) -> np.ndarray:
    index: tuple[Any, ...] = (
        *(
            slice(o, o + e)
            for o, e in zip(box.out_start, _extents(box, shape), strict=True)
            if o is not None
        ),
        Ellipsis,
    )
    view: np.ndarray = out[index]
    return view


def run_boxes(
    works: list[BoxWork],
    pool: cf.Executor | None,
    batches: int,
    scratch: ScratchPool,
    workers: int | None = None,
) -> None:
    """Read every box on the workers, cut into up to ``batches`` tasks of similar size.

    ``workers`` threads at most share the tasks, the caller included (see
    :func:`lsio.compute.run_all`).
    """
    if not works:
        return
    total = sum(w.box.size for w in works)
    n = max(1, min(batches, total))
    # Tasks of equal numbers of chunks; small boxes may be split between tasks
    # (a few large chunks each: whole boxes would leave workers idle at the end).
    groups: list[list[_Span]] = [[]]
    done = 0
    for w in works:
        size = w.box.size
        lo = 0
        while lo < size:
            if groups[-1] and done >= total * len(groups) / n:
                groups.append([])
            room = max(1, math.ceil(total * len(groups) / n) - done)
            hi = size if _stacked(w) else min(size, lo + room)
            groups[-1].append((w, lo, hi))
            done += hi - lo
            lo = hi

    def run(group: list[_Span]) -> None:
        small: list[_Span] = []
        for span in group:
            if _stacked(span[0]):
                read_box(span[0], scratch)
            else:
                small.append(span)
        if small:
            read_chunkwise(small, scratch)

    run_all(pool, run, groups, workers)


def _stacked(work: BoxWork) -> bool:
    return work.box.size >= STACK_MIN and work.array.chunk_nbytes <= STACK_CHUNK_BYTES


def _dst_view(out: np.ndarray, box: Box) -> np.ndarray:
    """The output as ``(*counts, *part)``: chunk ``j`` of the box, element ``k`` of its part."""
    offset = 0
    outer: list[int] = []
    inner: list[int] = []
    strides = iter(out.strides)
    for o, lo, hi in zip(box.out_start, box.lo, box.hi, strict=True):
        s = 0 if o is None else next(strides)
        offset += 0 if o is None else o * s
        outer.append((hi - lo) * s)
        inner.append(s)
    shape = (*box.counts, *(hi - lo for lo, hi in zip(box.lo, box.hi, strict=True)))
    if out.flags.c_contiguous:
        # A view over the output's memory: several times cheaper than as_strided.
        return np.ndarray(shape, out.dtype, out.data, offset, (*outer, *inner))
    index: tuple[Any, ...] = (*(slice(o, None) for o in box.out_start if o is not None), Ellipsis)
    view: np.ndarray = as_strided(out[index], shape, (*outer, *inner))
    return view


def _direct_addresses(
    out: np.ndarray, box: Box, shape: tuple[int, ...], dst: np.ndarray
) -> list[int] | None:
    """Address of each chunk's block in ``out`` when every chunk is a contiguous block of it."""
    if not box.full(shape) or not out.flags.c_contiguous:
        return None
    seen_long = False
    for o, c, n_out in zip(box.out_start, shape, _kept_sizes(out, box), strict=True):
        if o is None:
            if c != 1:
                return None
            continue
        if seen_long and c != n_out:
            return None
        seen_long = seen_long or c > 1
    ndim = len(shape)
    steps = np.asarray(dst.strides[:ndim], dtype=np.int64)
    grid = np.indices(box.counts, dtype=np.int64).reshape(ndim, -1)
    addresses: list[int] = (dst.ctypes.data + steps @ grid).tolist()
    return addresses


def _kept_sizes(out: np.ndarray, box: Box) -> list[int]:
    sizes = iter(out.shape)
    return [0 if o is None else next(sizes) for o in box.out_start]


def buffer_address(data: memoryview) -> int:
    """Address of the first byte of ``data`` (which must stay alive while it is used)."""
    if data.readonly or not data.nbytes:  # bytes, a memory map: NumPy finds the address
        address: int = np.frombuffer(data, dtype=np.uint8).ctypes.data
        return address
    return ctypes.addressof(ctypes.c_char.from_buffer(data))


def _requests(work: BoxWork, tag0: int) -> tuple[list[ReadRequest], list[int]]:
    """Requests for a box's stored chunks (tags from ``tag0``), and the chunks not stored."""
    if work.key:
        key = work.key
        requests = [
            ReadRequest(tag0 + i, key, ByteRange(o, o + s))
            for i, (o, s) in enumerate(zip(work.offsets, work.sizes, strict=True))
            if o != _MISSING
        ]
        return requests, [i for i, o in enumerate(work.offsets) if o == _MISSING]
    array, whole = work.array, WholeObject()
    coords = box_chunk_coords(work.box).tolist()
    return [
        ReadRequest(tag0 + i, array.chunk_key(tuple(c)), whole) for i, c in enumerate(coords)
    ], []


def _decode_slow(
    work: BoxWork, i: int, tag: int, data: memoryview, slot: np.ndarray, requests: list[ReadRequest]
) -> None:
    """Decode chunk ``i`` of a box into ``slot`` with the array's general decoder.

    Used where there is no raw decoder, and to explain a failed raw decode.
    """
    try:
        work.array.chunk_decoder(data, slot)
    except DecodeError as exc:
        j = np.unravel_index(i, work.box.counts)
        where = tuple(f + int(c) for f, c in zip(work.box.first, j, strict=True))
        key, rng = _request_of(requests, tag)
        raise chunk_error(exc, key, rng, where) from exc


def read_box(work: BoxWork, scratch: ScratchPool) -> None:
    """Read a box with one ``read_batch``, decode it into a stack, copy that out once."""
    array, box = work.array, work.box
    shape = array.read_chunk_shape
    n = box.size
    nbytes = array.chunk_nbytes
    dst = _dst_view(work.out, box)
    direct = _direct_addresses(work.out, box, shape, dst)
    stack: np.ndarray | None = None
    if direct is None:
        stack = scratch.array((n, *shape), array.dtype)
        base = stack.ctypes.data
        addresses: Sequence[int] = range(base, base + n * nbytes, nbytes)
    else:
        addresses = direct
    requests, missing = _requests(work, 0)
    raw = array.raw_chunk_decoder
    for result in release_each(array.context.store.read_batch(requests)):
        i, data = result.tag, result.data
        if data is None:
            missing.append(i)
            continue
        # The hot loop: one C call per chunk, no Python objects made.
        if (
            raw is not None
            and len(data)
            and raw(addresses[i], nbytes, buffer_address(data), len(data)) == nbytes
        ):
            continue
        slot = stack[i] if stack is not None else dst[np.unravel_index(i, box.counts)]
        _decode_slow(work, i, i, data, slot, requests)
    for i in missing:
        if stack is not None:
            stack[i] = array.fill_value
        else:
            dst[np.unravel_index(i, box.counts)] = array.fill_value
    if stack is not None:
        chunks = stack.reshape((*box.counts, *shape))
        np.copyto(dst, chunks[_part(box)])


def _part(box: Box) -> tuple[Any, ...]:
    return (Ellipsis, *(slice(lo, hi) for lo, hi in zip(box.lo, box.hi, strict=True)))


# A box's chunks [lo, hi) (in C order), the part of it that one task reads.
_Span = tuple[BoxWork, int, int]


def read_chunkwise(spans: list[_Span], scratch: ScratchPool) -> None:
    """Read small boxes together, one ``read_batch`` per store, placing each chunk once decoded.

    For boxes of a few large chunks (e.g. crops) the per-box costs of
    :func:`read_box` would dominate; here a chunk is decoded into scratch (or
    in place) and its part copied out right away, while it is in cache.
    """
    where: list[tuple[int, int]] = []
    works: list[BoxWork] = []
    views: list[tuple[np.ndarray, list[int] | None, list[tuple[int, ...]]]] = []
    per_store: dict[int, tuple[Any, list[ReadRequest]]] = {}
    for k, (w, lo, hi) in enumerate(spans):
        works.append(w)
        dst = _dst_view(w.out, w.box)
        direct = _direct_addresses(w.out, w.box, w.array.read_chunk_shape, dst)
        views.append((dst, direct, list(np.ndindex(*w.box.counts))))
        tag0 = len(where)
        requests, missing = _requests(w, tag0)
        if lo > 0 or hi < w.box.size:
            requests = [r for r in requests if lo <= r.tag - tag0 < hi]
            missing = [i for i in missing if lo <= i < hi]
        where.extend((k, i) for i in range(w.box.size))
        for i in missing:
            dst[views[k][2][i]] = w.array.fill_value
        store = w.array.context.store
        per_store.setdefault(id(store), (store, []))[1].extend(requests)
    for store, requests in per_store.values():
        for result in release_each(store.read_batch(requests)):
            k, i = where[result.tag]
            w, data = works[k], result.data
            dst, direct, index = views[k]
            if data is None:
                dst[index[i]] = w.array.fill_value
                continue
            array = w.array
            raw, nbytes = array.raw_chunk_decoder, array.chunk_nbytes
            if direct is not None:
                if (
                    raw is None
                    or not len(data)
                    or raw(direct[i], nbytes, buffer_address(data), len(data)) != nbytes
                ):
                    _decode_slow(w, i, result.tag, data, dst[index[i]], requests)
                continue
            chunk = scratch.array(array.read_chunk_shape, array.dtype)
            if (
                raw is None
                or not len(data)
                or raw(chunk.ctypes.data, nbytes, buffer_address(data), len(data)) != nbytes
            ):
                _decode_slow(w, i, result.tag, data, chunk, requests)
            np.copyto(dst[index[i]], chunk[_part(w.box)])


def _request_of(requests: list[ReadRequest], tag: int) -> tuple[str, Range]:
    req = next(r for r in requests if r.tag == tag)
    return req.key, req.range


def chunk_error(exc: Exception, key: str, rng: Range, coords: tuple[int, ...]) -> ChunkError:
    """The error for a chunk that failed to decode, naming its key and byte range."""
    where = (
        f"inner chunk {coords} at bytes [{rng.start}, {rng.end})"
        if isinstance(rng, ByteRange)
        else f"chunk {coords}"
    )
    return ChunkError(f"{exc} ({where})", key=key)
