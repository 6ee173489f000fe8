"""Runs of adjacent inner chunks read and decoded with one call: same results, same errors."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

import lsio
import lsio.zarr._runs as runs
import zarr
from lsio.zarr._engine import COPY, Target, chunk_tasks
from lsio.zarr._runs import RunWork, merge_runs

SHAPE, CHUNKS, SHARDS = (64, 1024), (32, 640), (64, 1280)  # 40 KB inner chunks, 2 x 2 per shard


def _array(tmp_path: Path) -> tuple[lsio.Array, np.ndarray]:
    rng = np.random.default_rng(0)
    values = (rng.normal(size=SHAPE) * 1000).astype("i2")
    a = lsio.create(tmp_path / "a.zarr", shape=SHAPE, dtype="i2", chunks=CHUNKS, shards=SHARDS)
    a[...] = values
    return lsio.open_array(tmp_path / "a.zarr"), values


def test_adjacent_chunks_are_merged_into_runs(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    a, _ = _array(tmp_path)
    out = np.empty(CHUNKS, dtype="i2")
    coords = [(0, 0), (0, 1), (1, 0), (1, 1)]
    tasks = chunk_tasks(a, {c: [Target(COPY, out, (slice(None),) * 2)] for c in coords})
    merged = merge_runs(a, tasks)
    assert len(merged) == 1  # the shard's four chunks lie back to back
    work = merged[0].item
    assert isinstance(work, RunWork)
    assert sorted(c.coords for c in work.chunks) == coords
    monkeypatch.setattr(runs, "RUN_BYTES", 2 * a.chunk_nbytes)  # at most 2 chunks a run
    assert [len(t.item.chunks) for t in merge_runs(a, tasks)] == [2, 2]


@pytest.mark.parametrize("run_bytes", [0, runs.RUN_BYTES])
def test_reads_equal_with_and_without_runs(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, run_bytes: int
) -> None:
    monkeypatch.setattr(runs, "RUN_BYTES", run_bytes)
    a, values = _array(tmp_path)
    rng = np.random.default_rng(1)
    sels = []
    for _ in range(20):
        y, x = int(rng.integers(0, 40)), int(rng.integers(0, 700))
        sels.append((slice(y, y + 24), slice(x, x + 300)))
    for sel, got in zip(sels, a.read_many(sels), strict=True):
        np.testing.assert_array_equal(got, values[sel])
    np.testing.assert_array_equal(a[:, ::3], values[:, ::3])
    np.testing.assert_array_equal(a[...], zarr.open_array(str(tmp_path / "a.zarr"))[...])


def test_a_corrupt_chunk_in_a_run_is_named(tmp_path: Path) -> None:
    a, _ = _array(tmp_path)
    shard = tmp_path / "a.zarr" / "c" / "0" / "0"
    index = a.shard_indexes([(0, 0)])[(0, 0)]
    assert index is not None
    offset = int(index[0, 1, 0])
    data = bytearray(shard.read_bytes())
    data[offset : offset + 4] = bytes(4)  # not a zstd frame any more
    shard.write_bytes(bytes(data))
    fresh = lsio.open_array(tmp_path / "a.zarr")
    with pytest.raises(lsio.ChunkError, match=r"inner chunk \(0, 1\) at bytes"):
        fresh[0:32, 0:1280]
