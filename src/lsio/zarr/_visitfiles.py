"""The full chunks of a visit of an unsharded array, read and decoded a batch of files at a time.

Without shards every chunk is a file of its own. Visited one by one, each
cost its worker a Python round of its own (a read result, a decode call through
ctypes, a batch slot, a commit): whole-array statistics of an unsharded array
ran at ~0.7x those of the same data sharded. Here the full chunks are planned
as arrays (coordinates in C order, cut into batches whose coordinates along
the visitor's ``batch_dims`` agree), and a worker reads a batch's files with
one store call (one compiled call for local files, see
:meth:`lsio.io.LocalStore.read_batch`) and decodes them side by side into its
batch buffer with one call of the compiled kernel. Missing files are the fill
value, handed to the visitor without decoding.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np
import numpy.typing as npt

from lsio.compute import ScatterKernel
from lsio.io import (
    ReadAhead,
    ReadRequest,
    WholeObject,
    c_strings,
    probe_files,
    read_ahead_available,
)
from lsio.zarr._segments import raise_for_row, segment
from lsio.zarr._visitruns import batch_bounds, kept_ids, slot_tables

if TYPE_CHECKING:
    from lsio.zarr._array import Array

__all__ = ["FileRun", "box_windows", "decode_files", "plan_file_runs", "read_ahead_runs"]

_I64 = npt.NDArray[np.int64]


@dataclass(frozen=True, slots=True)
class FileRun:
    """Full chunks, each its own object, decoded side by side by one kernel call.

    Attributes:
        coords: ``(n, ndim)`` chunk-grid coordinates (equal along the batch dims).
        keys: The chunks' object keys.
        first: Where its first file is in the list of its plan's files.
    """

    coords: _I64
    keys: list[str]
    first: int


def box_windows(box: list[tuple[int, int]], window_chunks: int) -> Iterator[_I64]:
    """Coordinates of the chunks in ``box`` in C order, about ``window_chunks`` at a time."""
    if not box:  # a 0-d array: one chunk
        yield np.zeros((1, 0), dtype=np.int64)
        return
    inner = math.prod(hi - lo for lo, hi in box[1:])
    lo0, hi0 = box[0]
    step = max(1, window_chunks // max(inner, 1))
    rest = [np.arange(lo, hi, dtype=np.int64) for lo, hi in box[1:]]
    for a in range(lo0, hi0, step):
        axes = [np.arange(a, min(a + step, hi0), dtype=np.int64), *rest]
        yield np.stack(np.meshgrid(*axes, indexing="ij"), axis=-1).reshape(-1, len(box))


def plan_file_runs(
    array: Array, coords: _I64, batch_dims: tuple[int, ...], batch_chunks: int
) -> list[FileRun]:
    """Batches of up to ``batch_chunks`` of ``coords`` whose coordinates along ``batch_dims`` agree."""
    n = coords.shape[0]
    if n == 0:
        return []
    kept_id = kept_ids(coords, batch_dims)
    order = np.argsort(kept_id, kind="stable")  # C order within a kept position
    coords, kept_id = coords[order], kept_id[order]
    cut = np.ones(n, dtype=bool)
    cut[1:] = kept_id[1:] != kept_id[:-1]
    starts, stops = batch_bounds(cut, batch_chunks)
    keys = array.chunk_keys(coords)
    return [
        FileRun(coords[s:e], keys[s:e], s)
        for s, e in zip(starts.tolist(), stops.tolist(), strict=True)
    ]


def read_ahead_runs(array: Array, runs: list[FileRun]) -> _I64 | None:
    """Start a :class:`lsio.io.ReadAhead` of the files of ``runs`` when they are on disk.

    Returns the counter of files taken, which the workers raise to a run's
    ``first`` as they start it and the caller to the number of files at the
    end (the thread then ends); ``None`` where nothing reads ahead: cached
    files (a few spread over the runs are probed first, so that cached files
    do not cost their paths, ~1 us a file on the calling thread), files that
    are not local, or no platform support.
    """
    object_files = getattr(array.store, "object_files", None)
    if object_files is None or not runs or not read_ahead_available():
        return None
    keys = [key for run in runs for key in run.keys]
    sample = keys[:: max(1, len(keys) // 8)][:8]
    if not probe_files(object_files(sample) or []):
        return None
    paths = object_files(keys)
    if paths is None:
        return None
    names, name_at = c_strings(paths)
    taken = np.zeros(1, dtype=np.int64)
    # A run's files are read one after another by one worker: ahead of the
    # latest run started, by a few runs. The caller ends the thread, so it
    # need not give up while runs take long.
    window = max(64, 3 * max(len(run.keys) for run in runs))
    ReadAhead(names, name_at, taken, window=window, idle=3600.0).start()
    return taken


def decode_files(
    array: Array, kernel: ScatterKernel, run: FileRun, buf: np.ndarray
) -> tuple[_I64, _I64]:
    """Read the files of ``run`` and decode them into the first slots of ``buf`` (the batch buffer).

    Returns the coordinates decoded (in slot order) and those whose file is
    missing.

    Raises:
        ReadError: When a file cannot be read (the store's error).
        ChunkError: Naming the first chunk that did not decode.
    """
    whole = WholeObject()
    requests = [ReadRequest(i, key, whole) for i, key in enumerate(run.keys)]
    found = sorted(
        (r for r in array.store.read_batch(requests) if r.data is not None), key=lambda r: r.tag
    )
    present = np.array([r.tag for r in found], dtype=np.int64)
    missing = np.setdiff1d(np.arange(len(run.keys)), present)
    if found:
        none = np.zeros(len(found), dtype=np.int64)  # whole objects: sizes come with the data
        tables = slot_tables(array, none, none, buf.ctypes.data)
        segments = np.array(
            [segment(slot, slot + 1, whole, r.data) for slot, r in enumerate(found)],
            dtype=np.int64,
        )
        bad = kernel.run(tables, segments, buf.ctypes.data, 0)
        if bad >= 0:
            tag, data = found[bad].tag, found[bad].data
            assert data is not None
            raise_for_row(array, tables, bad, run.coords[tag], run.keys[tag], whole, data)
    for result in found:  # decoded into the batch: the read buffers go back to the pool
        result.release()
    return run.coords[present], run.coords[missing]
