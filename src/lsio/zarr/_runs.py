"""Runs: inner chunks stored back to back in a shard, read and decoded with one call.

Crops and block reads of a sharded array need several inner chunks that lie
next to each other in the shard file (neighbours along the last dimensions).
Each chunk read and decoded on its own costs a ``read_batch`` result and a C
call, and after each C call a worker must win the GIL back from the other
workers. zstd decodes concatenated frames into one buffer in a single call, so
a run of adjacent chunks is read as one range and decoded with one call into a
scratch stack, then each chunk is scattered from the stack. A run is checked
by its total decoded size; on a mismatch it is decoded again chunk by chunk,
with the per-chunk checks, so a bad chunk is named in the error.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from lsio.io import ByteRange
from lsio.plan import ReadTask

if TYPE_CHECKING:
    from lsio.zarr._array import Array
    from lsio.zarr._engine import ChunkWork

__all__ = ["RUN_BYTES", "RunWork", "merge_runs"]

# Decoded bytes of one run at most: the stack should stay in the L2 cache
# until its chunks are copied out.
RUN_BYTES = 512 * 1024


@dataclass(frozen=True, slots=True)
class RunWork:
    """Adjacent inner chunks of one shard, read as one range.

    Attributes:
        array: The array read.
        chunks: The chunks, in file order.
        ranges: Each chunk's byte range in the shard.
    """

    array: Array
    chunks: list[ChunkWork]
    ranges: list[ByteRange]


def merge_runs(array: Array, tasks: list[ReadTask[ChunkWork]]) -> list[ReadTask[Any]]:
    """``tasks`` with chunks stored back to back in a shard merged into runs.

    Only where chunks back to back decode with one call (zstd frames,
    uncompressed bytes: see :attr:`Array.c_decoder`); runs hold at most :data:`RUN_BYTES` of
    decoded data. The caller passes only chunks it wants decoded to a scratch
    buffer (not straight into the output).
    """
    per_run = RUN_BYTES // max(1, array.chunk_nbytes)
    decoder = array.c_decoder
    if not array.reads_inner_chunks or decoder is None or not decoder.concatenates or per_run < 2:
        return list(tasks)
    out: list[ReadTask[Any]] = []
    located: list[tuple[ReadTask[ChunkWork], ByteRange]] = []
    for t in tasks:
        if isinstance(t.range, ByteRange):
            located.append((t, t.range))
        else:
            out.append(t)
    located.sort(key=lambda tr: (tr[0].key, tr[1].start))
    run: list[tuple[ReadTask[ChunkWork], ByteRange]] = []

    def flush() -> None:
        if len(run) == 1:
            out.append(run[0][0])
        elif run:
            first = run[0][0]
            span = ByteRange(run[0][1].start, run[-1][1].end)
            work = RunWork(array, [t.item for t, _ in run], [r for _, r in run])
            out.append(ReadTask(first.reader, first.key, span, work))
        run.clear()

    for t, r in located:
        if run and len(run) < per_run and t.key == run[-1][0].key and r.start == run[-1][1].end:
            run.append((t, r))
        else:
            flush()
            run.append((t, r))
    flush()
    return out
