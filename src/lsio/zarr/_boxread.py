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
import numpy.typing as npt
from numpy.lib.stride_tricks import as_strided

from lsio._errors import ChunkError
from lsio.compute import DecodeError, ScratchPool, run_all
from lsio.io import ByteRange, Range, ReadRequest, WholeObject
from lsio.plan import Box, IntIndex, OrthogonalSelection, Progression, box_chunk_coords, plan_boxes
from lsio.zarr._sharding import MISSING

if TYPE_CHECKING:
    from lsio.zarr._array import Array
    from lsio.zarr._engine import ReadJob

__all__ = ["BoxWork", "chunk_error", "plan_box_reads", "run_boxes"]

# Scratch a worker decodes one box into: large enough that per-box costs vanish
# next to decoding, small enough to stay in cache until it is copied out.
BOX_BYTES = 1 << 20
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
    shape = array.read_chunk_shape
    most = max(1, BOX_BYTES // max(1, math.prod(shape) * array.dtype.itemsize))
    planned: list[tuple[ReadJob, Box]] = []
    rest: list[ReadJob] = []
    for job in jobs:
        sel = job.selection
        boxes = None
        if isinstance(sel, OrthogonalSelection) and sel.dims:
            boxes = plan_boxes(sel, shape, array.chunks_per_shard, most)
        if boxes is None:
            rest.append(job)
        else:
            planned.extend((job, b) for b in boxes)
    parts: list[Part] = []
    if not planned:
        return [], rest, parts
    if len(jobs) > 1:
        shared = _shared_boxes([box_chunk_coords(b) for _, b in planned])
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


def _shared_boxes(coords: list[npt.NDArray[np.int64]]) -> set[int]:
    """Boxes holding a chunk that another box (of another job) holds too."""
    every = np.concatenate(coords)
    grid = tuple(int(v) + 1 for v in every.max(axis=0))
    linear = np.ravel_multi_index(tuple(every.T), grid)
    _, inv, counts = np.unique(linear, return_inverse=True, return_counts=True)
    shared = counts[inv.reshape(-1)] > 1
    if not shared.any():
        return set()
    owner = np.repeat(np.arange(len(coords)), [len(c) for c in coords])
    return set(np.unique(owner[shared]).tolist())


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
    works: list[BoxWork], pool: cf.Executor | None, batches: int, scratch: ScratchPool
) -> None:
    """Read every box on the workers, cut into up to ``batches`` tasks of similar size."""
    if not works:
        return
    total = sum(w.box.size for w in works)
    n = max(1, min(batches, len(works)))
    groups: list[list[BoxWork]] = [[]]
    done = 0
    for w in works:
        if groups[-1] and done >= total * len(groups) / n:
            groups.append([])
        groups[-1].append(w)
        done += w.box.size

    def run(group: list[BoxWork]) -> None:
        for w in group:
            read_box(w, scratch)

    run_all(pool, run, groups)


def _dst_view(out: np.ndarray, box: Box) -> np.ndarray:
    """The output as ``(*counts, *part)``: chunk ``j`` of the box, element ``k`` of its part."""
    # The Ellipsis keeps a 0-d result a view (plain ``out[()]`` gives a scalar copy).
    index: tuple[Any, ...] = (*(slice(o, None) for o in box.out_start if o is not None), Ellipsis)
    start = out[index]
    strides = iter(start.strides)
    outer: list[int] = []
    inner: list[int] = []
    for o, lo, hi in zip(box.out_start, box.lo, box.hi, strict=True):
        s = 0 if o is None else next(strides)
        outer.append((hi - lo) * s)
        inner.append(s)
    parts = tuple(hi - lo for lo, hi in zip(box.lo, box.hi, strict=True))
    view: np.ndarray = as_strided(start, (*box.counts, *parts), (*outer, *inner))
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


def _address(data: memoryview) -> int:
    try:
        return ctypes.addressof(ctypes.c_char.from_buffer(data))
    except TypeError:  # read-only (bytes, a memory map): NumPy finds the address
        address: int = np.frombuffer(data, dtype=np.uint8).ctypes.data
        return address


def read_box(work: BoxWork, scratch: ScratchPool) -> None:
    """Read, decode and place every chunk of a box (in the calling worker)."""
    array, box = work.array, work.box
    shape = array.read_chunk_shape
    n = box.size
    nbytes = math.prod(shape) * array.dtype.itemsize
    dst = _dst_view(work.out, box)
    direct = _direct_addresses(work.out, box, shape, dst)
    stack: np.ndarray | None = None
    if direct is None:
        stack = scratch.array((n, *shape), array.dtype)
        base = stack.ctypes.data
        addresses: Sequence[int] = range(base, base + n * nbytes, nbytes)
    else:
        addresses = direct
    missing: list[int] = []
    if work.key:
        requests = [
            ReadRequest(i, work.key, ByteRange(o, o + s))
            for i, (o, s) in enumerate(zip(work.offsets, work.sizes, strict=True))
            if o != _MISSING
        ]
        missing = [i for i, o in enumerate(work.offsets) if o == _MISSING]
    else:
        whole = WholeObject()
        requests = [
            ReadRequest(i, array.chunk_key(tuple(c)), whole)
            for i, c in enumerate(box_chunk_coords(box).tolist())
        ]
    raw = array.raw_chunk_decoder
    decode = array.chunk_decoder
    for result in array.context.store.read_batch(requests):
        i, data = result.tag, result.data
        if data is None:
            missing.append(i)
            continue
        if (
            raw is not None
            and len(data)
            and raw(addresses[i], nbytes, _address(data), len(data)) == nbytes
        ):
            continue
        slot = stack[i] if stack is not None else dst[np.unravel_index(i, box.counts)]
        try:
            # The slow decoder either decodes (no raw decoder) or explains the failure.
            decode(data, slot)
        except DecodeError as exc:
            coords = tuple(int(v) for v in np.unravel_index(i, box.counts))
            where = tuple(f + c for f, c in zip(box.first, coords, strict=True))
            key, rng = _request_of(requests, i)
            raise chunk_error(exc, key, rng, where) from exc
    for i in missing:
        if stack is not None:
            stack[i] = array.fill_value
        else:
            dst[np.unravel_index(i, box.counts)] = array.fill_value
    if stack is not None:
        chunks = stack.reshape((*box.counts, *shape))
        part: tuple[Any, ...] = (
            Ellipsis,
            *(slice(lo, hi) for lo, hi in zip(box.lo, box.hi, strict=True)),
        )
        np.copyto(dst, chunks[part])


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
