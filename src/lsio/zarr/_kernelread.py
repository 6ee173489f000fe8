"""Reading unit-step basic selections through the compiled decode-and-scatter kernel.

For arrays whose chunks are plain native bytes, stored as they are or
compressed by a codec with a compiled decoder (zstd, blosc, gzip, zlib, lz4:
see :attr:`Array.c_decoder`), every crop or
block of a call is planned by one compiled function into integer tables (see
:func:`lsio.plan.plan_box_tables`), with no Python object per chunk: the
pieces each selection takes from each chunk, the union of the chunks (each
read and decoded once however many selections need it), where each is stored,
reads of chunks stored close together in one object, and groups of reads of
about equal size. A worker reads a group with one ``read_batch`` and hands the
bytes to :class:`lsio.compute.ScatterKernel`, which decodes and scatters every
chunk without the GIL. Where the store can hand out every shard read in place
(:class:`lsio.io.ResidentMapper`: cached memory maps of shards in the page
cache), the planner points the kernel's segments into the mappings once per
call, and a worker's group is one kernel call with no read at all. Where
every chunk is a file of its own that compiled code may read (an unsharded
array on a local file system), the workers share the call's chunk files
instead, taking them one at a time (see :mod:`lsio.zarr._claimread`).
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np
import numpy.typing as npt

from lsio.compute import (
    ScatterKernel,
    ScatterTables,
    ScratchPool,
)
from lsio.io import (
    BorrowedPages,
    ByteRange,
    ReadRequest,
    ReadResult,
    WholeObject,
    describe_range,
    mapping_addresses,
)
from lsio.plan import (
    BoxTables,
    IntIndex,
    OrthogonalSelection,
    Progression,
    grid_shape,
    plan_box_tables,
    touched_shards,
)
from lsio.zarr._claimread import ChunkClaims, claim_room, plan_claims
from lsio.zarr._locate import shard_index_table
from lsio.zarr._segments import Segment, raise_for_row, segment

if TYPE_CHECKING:
    from lsio.zarr._array import Array
    from lsio.zarr._engine import ReadJob

__all__ = [
    "KernelGroup",
    "KernelPlan",
    "MappedReads",
    "fill_absent",
    "plan_kernel_reads",
    "run_kernel_group",
]

_I64 = npt.NDArray[np.int64]

# Chunks of one object closer than this are read by one request, gap included
# (from the page cache a gap costs a copy; through a memory map, nothing).
GAP_BYTES = 64 * 1024
# Decoded bytes of one read at most: enough to amortise its Python, few
# enough that a batch still spreads over the workers.
READ_BYTES = 4 << 20
# Decoded bytes of one worker's group of reads at most (reads are held until
# decoded, so this bounds a worker's memory beyond its scratch).
GROUP_BYTES = 16 << 20
# A worker calls the kernel once this many decoded bytes are pending.
FLUSH_BYTES = 1 << 20
# A worker's scratch holds up to this many chunks (and bytes, well inside a
# core's L2 cache): the kernel decodes neighbouring chunks side by side and
# copies their rows interleaved (see lsio.compute.ScatterKernel.run).
SCRATCH_CHUNKS = 8
SCRATCH_BYTES = 1 << 20
# Decoded bytes of a group of chunk files at least, when a call has too few
# chunks for every share its workers would take (a crop): each group costs its
# worker a read call and the GIL a few times, and with two threads one-by-one
# crops of an unsharded array ran ~13% faster in four groups than in eight.
# Chunk files taken one at a time (claims) wake a worker per this many bytes,
# so a read of a chunk or two stays on the calling thread. (Groups of a sharded
# array read in place are one call without the GIL each; there more, smaller
# groups balance the workers better.)
MIN_GROUP_BYTES = 1 << 20


@dataclass(frozen=True, slots=True)
class MappedReads:
    """The reads of a plan as the kernel takes them from the store's memory.

    Attributes:
        segments: The kernel's segment of each read, pointing into the maps.
        maps: The objects of the plan's keys (kept alive here).
        bases: Their addresses (0 for a key not read).
        sizes: Their sizes.
        release: Whether each group hands its spans back once decoded
            (see :class:`lsio.io.BorrowedPages`).
    """

    segments: _I64
    maps: list[np.ndarray | None]
    bases: _I64
    sizes: _I64
    release: bool


@dataclass(frozen=True, slots=True)
class KernelPlan:
    """The tables of one array's part of a call, and what keeps their addresses valid.

    Attributes:
        array: The array read.
        kernel: The compiled kernel.
        box: The plan (see :class:`lsio.plan.BoxTables`).
        keys: Keys of the touched shards (as ``box.key_of`` indexes them); empty
            when every chunk is an object of its own.
        fills: Holds a decoded chunk of the fill value once one is needed (made
            lazily: most reads meet no missing chunk, and a chunk can be large).
        outs: The outputs the pieces point into (kept alive here).
        mapped: When every object read is in memory (see
            :class:`lsio.io.ResidentMapper`), where the kernel reads them;
            otherwise ``None``, and the reads go through ``read_batch``.
        claims: When every chunk is a file the workers read in compiled code
            (see :mod:`lsio.zarr._claimread`), the files; the plan's groups
            are then one per worker, each taking files until none is left.
    """

    array: Array
    kernel: ScatterKernel
    box: BoxTables
    keys: list[str]
    fills: list[np.ndarray]
    outs: list[np.ndarray]
    mapped: MappedReads | None = None
    claims: ChunkClaims | None = None

    @property
    def tables(self) -> ScatterTables:
        """The kernel's tables."""
        return self.box.tables


@dataclass(frozen=True, slots=True)
class KernelGroup:
    """Reads ``first:stop`` of a plan, done by one worker with one kernel call per MiB or so."""

    plan: KernelPlan
    first: int
    stop: int


def _dim_bounds(sel: OrthogonalSelection) -> list[tuple[int, int, int]] | None:
    """``(start, stop, kept)`` per dimension, or ``None`` unless ints and unit-step slices."""
    out = []
    for d in sel.dims:
        if isinstance(d, IntIndex):
            out.append((d.index, d.index + 1, 0))
        elif isinstance(d, Progression) and (d.step == 1 or d.count == 1) and d.count > 0:
            out.append((d.start, d.start + d.count, 1))
        else:
            return None
    return out


def plan_kernel_reads(
    array: Array,
    jobs: Sequence[ReadJob],
    kernel: ScatterKernel,
    batches: int,
    disk_workers: int = 1,
    stream_from: int | None = None,
) -> tuple[list[KernelGroup], KernelPlan | None, list[ReadJob]]:
    """Plan the jobs of ``array`` the kernel can do.

    Args:
        array: The array.
        jobs: Its jobs in this call.
        kernel: The compiled kernel.
        batches: Shares of the chunks to group the reads by (see
            :func:`lsio.plan.plan_box_tables`).
        disk_workers: Workers for a crop's chunk files found on disk (see
            :class:`lsio.ReadConfig`); there are at least as many groups.
        stream_from: Output bytes of these jobs from which rows are copied past
            the caches (see :class:`lsio.ReadConfig`); ``None`` (default): never.

    Returns:
        The groups of reads, the plan (``None`` when there is nothing to do;
        its chunks known to be absent are filled by :func:`fill_absent`), and the
        jobs left for the general engine (selections with steps or arrays).
    """
    rest: list[ReadJob] = []
    bounds: list[list[tuple[int, int, int]]] = []
    outs: list[np.ndarray] = []
    for job in jobs:
        sel = job.selection
        dims = _dim_bounds(sel) if isinstance(sel, OrthogonalSelection) and sel.dims else None
        if dims is None or not job.out.flags.writeable or job.out.dtype != array.dtype:
            rest.append(job)
        elif job.out.size:
            bounds.append(dims)
            outs.append(job.out)
    if not outs:
        return [], None, rest
    ndim = array.ndim
    b3 = np.array(bounds, dtype=np.int64)
    box_bounds = np.ascontiguousarray(b3[:, :, :2])
    kept = b3[:, :, 2].astype(bool)
    ostr = np.zeros((len(outs), ndim), dtype=np.int64)
    for j, out in enumerate(outs):
        ostr[j, kept[j]] = out.strides
    base = np.array([out.ctypes.data for out in outs], dtype=np.int64)
    chunk = array.read_chunk_shape
    keys: list[str] = []
    shards = array.shards
    if shards is None:
        shard_ids = np.zeros(0, dtype=np.int64)
        index = np.zeros((0, 1, 2), dtype=np.int64)
        per_shard = None
    else:
        per_shard = array.chunks_per_shard
        shard_grid = grid_shape(array.shape, shards)
        shard_ids = touched_shards(
            box_bounds, np.asarray(shards, np.int64), np.asarray(shard_grid, np.int64)
        )
        keys, stacked = shard_index_table(array, shard_ids)
        # MISSING (all ones) reads as -1, which the planner takes for "not stored".
        index = stacked.reshape(len(keys), math.prod(per_shard), 2).view(np.int64)
    box = plan_box_tables(
        box_bounds,
        base,
        ostr,
        chunk,
        grid_shape(array.shape, chunk),
        array.dtype.itemsize,
        per_shard=per_shard,
        shard_ids=shard_ids,
        index=index,
        gap=GAP_BYTES,
        read_bytes=READ_BYTES,
        batches=batches,
        group_bytes=GROUP_BYTES,
        min_group_bytes=0 if shards is not None else MIN_GROUP_BYTES,
        stream_from=stream_from,
    )
    if shards is None:
        claims = plan_claims(array, box, kernel)
        if claims is not None:
            plan = KernelPlan(array, kernel, box, keys, [], outs, claims=claims)
            decoded = len(box.reads) * box.tables.chunk_nbytes
            shares = min(batches, len(box.reads), -(-decoded // MIN_GROUP_BYTES))
            if claims.crop_on_disk:
                # Each worker waits for the device while the others decode.
                shares = max(shares, min(disk_workers, len(box.reads)))
            return [KernelGroup(plan, 0, len(box.reads))] * max(shares, 1), plan, rest
    mapped = _mapped_segments(array.store, keys, box.reads) if keys else None
    plan = KernelPlan(array, kernel, box, keys, [], outs, mapped)
    groups = box.groups.tolist()
    return [KernelGroup(plan, a, b) for a, b in itertools.pairwise(groups)], plan, rest


def _mapped_segments(store: object, keys: list[str], reads: _I64) -> MappedReads | None:
    """The reads in the store's memory, if it holds every object read there.

    Reading in place spares a worker a ``read_batch`` (Python, a ``stat`` and
    a ``mincore`` per group of reads) and a copy; the store looks once per
    call.
    """
    # Not isinstance(store, ResidentMapper): a protocol check costs ~15 us a call.
    resident_mappings = getattr(store, "resident_mappings", None)
    if resident_mappings is None or not len(reads):
        return None
    resident = resident_mappings(keys, reads[:, 2:5])
    if resident is None:
        return None
    bases, sizes = mapping_addresses(resident.maps)
    which, start = reads[:, 2], reads[:, 3]
    size = sizes[which]
    segments = np.empty((len(reads), 6), dtype=np.int64)
    segments[:, :2] = reads[:, :2]
    # An object shorter than its index says gives a short segment: the kernel
    # decodes what is there and names the first chunk cut off.
    segments[:, 2] = bases[which] + np.minimum(start, size)
    segments[:, 3] = start
    segments[:, 4] = -1
    segments[:, 5] = np.maximum(np.minimum(reads[:, 4], size) - start, 0)
    return MappedReads(segments, resident.maps, bases, sizes, resident.release)


def _fill_address(plan: KernelPlan) -> int:
    """Address of a chunk of fill values (made on first need; a race makes two, harmlessly)."""
    if not plan.fills:
        array = plan.array
        plan.fills.append(np.full(array.read_chunk_shape, array.fill_value, dtype=array.dtype))
    address: int = plan.fills[0].ctypes.data
    return address


def fill_absent(plan: KernelPlan) -> None:
    """Write the fill value into the pieces of the chunks known to be absent."""
    if plan.box.absent:
        segments = np.array([segment(0, plan.box.absent, WholeObject(), None)], dtype=np.int64)
        plan.kernel.run(plan.tables, segments, 0, _fill_address(plan))


def run_kernel_group(group: KernelGroup, scratch: ScratchPool) -> None:
    """Read a group's reads, decode and scatter their chunks (a chunk that fails is named).

    When the plan's chunk files are claimed (see :mod:`lsio.zarr._claimread`),
    the worker takes files until none is left, whatever the group. When the
    plan points into the store's mappings, the group is one kernel call with
    nothing to read. Otherwise the kernel is called once per
    :data:`FLUSH_BYTES` of decoded chunks or so, with every read since the last
    call, so a crop costs a few Python calls rather than a few per read, while
    the reads of large groups (whole-array blocks) are still decoded soon after
    they arrive.
    """
    plan = group.plan
    if plan.claims is not None:
        _take_claims(plan, plan.claims, scratch)
        return
    nbytes = plan.tables.chunk_nbytes
    buf = scratch.array((_scratch_chunks(nbytes) * nbytes,), np.dtype(np.uint8))
    if plan.mapped is not None:
        _decode_mapped(group, buf)
        return
    _read_and_decode(plan, plan.box.reads[group.first : group.stop], buf)


def _take_claims(plan: KernelPlan, claims: ChunkClaims, scratch: ScratchPool) -> None:
    """Take chunk files until none is left; read again through the store those that failed."""
    nbytes = plan.tables.chunk_nbytes
    # Reads taken a few at a time where there are many (whole-array blocks):
    # neighbouring chunks then decode side by side. One at a time for a crop's
    # few dozen files, which must spread evenly over the workers.
    claims.read_ahead()  # files on disk: many reads in flight, not one per worker
    step = 1 if claims.few else _scratch_chunks(nbytes)
    buf = scratch.array((claim_room(nbytes, step),), np.dtype(np.uint8))
    failed = claims.loop.run(plan.tables, claims, buf, step)
    if len(failed):
        _read_and_decode(plan, plan.box.reads[failed], buf[:nbytes])


def _read_and_decode(plan: KernelPlan, read_rows: _I64, buf: np.ndarray) -> None:
    """Read ``read_rows`` (rows of the plan's reads) with ``read_batch``, decode and scatter their chunks."""
    box, array = plan.box, plan.array
    nbytes = plan.tables.chunk_nbytes
    reads = read_rows.tolist()
    if array.reads_inner_chunks:
        keys = plan.keys
        requests = [ReadRequest(i, keys[r[2]], ByteRange(r[3], r[4])) for i, r in enumerate(reads)]
    else:
        whole = WholeObject()
        firsts = [r[0] for r in reads]
        requests = [
            ReadRequest(i, key, whole) for i, key in enumerate(array.chunk_keys(box.coords[firsts]))
        ]
    rows: list[Segment] = []
    held: list[tuple[ReadRequest, ReadResult]] = []
    pending = 0
    for result in array.store.read_batch(requests):
        request = requests[result.tag]
        first, stop = reads[result.tag][:2]
        rows.append(segment(first, stop, request.range, result.data))
        held.append((request, result))
        pending += (stop - first) * nbytes
        if pending >= FLUSH_BYTES:
            _decode(plan, rows, held, buf)
            rows, held, pending = [], [], 0
    if rows:
        _decode(plan, rows, held, buf)


def _decode_mapped(group: KernelGroup, buf: np.ndarray) -> None:
    """Decode and scatter a group's reads from the mappings, with one kernel call."""
    plan = group.plan
    mapped = plan.mapped
    assert mapped is not None
    part = mapped.segments[group.first : group.stop]
    spans = plan.box.reads[group.first : group.stop, 2:5]

    def names(row: int) -> tuple[str, str]:
        key_index, start, end = (int(v) for v in spans[row])
        return plan.keys[key_index], describe_range(ByteRange(start, end))

    with BorrowedPages(mapped.bases, mapped.sizes, spans, mapped.release, names):
        bad = plan.kernel.run(plan.tables, part, buf.ctypes.data, 0, _slots(plan, buf))
    if bad < 0:
        return
    i = group.first + int(np.flatnonzero((part[:, 0] <= bad) & (bad < part[:, 1]))[0])
    _, _, key_index, start, end = (int(v) for v in plan.box.reads[i])
    mapping = mapped.maps[key_index]
    assert mapping is not None
    data = mapping[start:end].data
    coords = plan.box.coords[bad]
    raise_for_row(
        plan.array, plan.tables, bad, coords, plan.keys[key_index], ByteRange(start, end), data
    )


def _decode(
    plan: KernelPlan,
    rows: list[Segment],
    held: list[tuple[ReadRequest, ReadResult]],
    buf: np.ndarray,
) -> None:
    """Run the kernel on segments ``rows``, whose bytes ``held`` keeps alive, then release them.

    Every chunk is decoded into its outputs (or scratch) by then, so the read
    buffers go back to the store's pool (see :meth:`lsio.io.ReadResult.release`).
    """
    fill = _fill_address(plan) if any(result.data is None for _, result in held) else 0
    segments = np.array(rows, dtype=np.int64)
    bad = plan.kernel.run(plan.tables, segments, buf.ctypes.data, fill, _slots(plan, buf))
    if bad < 0:
        for _, result in held:
            result.release()
        return
    i = next(i for i, row in enumerate(rows) if row[0] <= bad < row[1])
    request, result = held[i]
    data = result.data
    assert data is not None
    coords = plan.box.coords[bad]
    raise_for_row(plan.array, plan.tables, bad, coords, request.key, request.range, data)


def _scratch_chunks(nbytes: int) -> int:
    """Chunks of ``nbytes`` a worker's scratch holds (:data:`SCRATCH_CHUNKS`, :data:`SCRATCH_BYTES`)."""
    return max(1, min(SCRATCH_CHUNKS, SCRATCH_BYTES // max(nbytes, 1)))


def _slots(plan: KernelPlan, buf: np.ndarray) -> int:
    """Chunks the scratch buffer ``buf`` holds."""
    return max(1, buf.nbytes // max(plan.tables.chunk_nbytes, 1))
