"""Each chunk is requested once per read; shard indexes once per array (cached)."""

from __future__ import annotations

import itertools
import threading
from collections.abc import Iterator, Sequence
from pathlib import Path

import numpy as np
import pytest

import lsio
import zarr
from lsio.io import (
    ByteRange,
    LocalStore,
    ReadRequest,
    ReadResult,
    SuffixRange,
    WholeObject,
    WholeObjects,
)


class RecordingStore(LocalStore):
    """A local store that records every request it serves."""

    def __init__(self, root: Path) -> None:
        super().__init__(root)
        self.requests: list[ReadRequest] = []
        self._lock = threading.Lock()

    def read_batch(self, requests: Sequence[ReadRequest]) -> Iterator[ReadResult]:
        with self._lock:
            self.requests.extend(requests)
        return super().read_batch(requests)

    def read_whole_objects(self, keys: Sequence[str]) -> WholeObjects | None:
        with self._lock:
            self.requests.extend(ReadRequest(i, k, WholeObject()) for i, k in enumerate(keys))
        return super().read_whole_objects(keys)

    def object_files(self, keys: Sequence[str]) -> list[bytes] | None:
        # Compiled code reads these files whole: each is one request.
        with self._lock:
            self.requests.extend(ReadRequest(i, k, WholeObject()) for i, k in enumerate(keys))
        return super().object_files(keys)


@pytest.fixture
def data() -> np.ndarray:
    return np.arange(16 * 24, dtype="int32").reshape(16, 24)


@pytest.mark.parametrize("threads", [1, 4])
def test_unsharded_chunks_read_once(tmp_path: Path, data: np.ndarray, threads: int) -> None:
    z = zarr.create_array(str(tmp_path / "a.zarr"), shape=data.shape, chunks=(4, 6), dtype="int32")
    z[...] = data
    store = RecordingStore(tmp_path / "a.zarr")
    a = lsio.open_array(store, config=lsio.ReadConfig(threads=threads))
    np.testing.assert_array_equal(a.oindex[[1, 2, 3, 1, 15], 2:20], data[[1, 2, 3, 1, 15]][:, 2:20])
    keys = [r.key for r in store.requests if r.key.startswith("c/")]
    assert sorted(keys) == sorted({f"c/{i}/{j}" for i in (0, 3) for j in range(4)})
    assert all(isinstance(r.range, WholeObject) for r in store.requests if r.key.startswith("c/"))


def test_sharded_inner_chunks_read_once_and_index_cached(tmp_path: Path, data: np.ndarray) -> None:
    z = zarr.create_array(
        str(tmp_path / "a.zarr"), shape=data.shape, chunks=(2, 3), shards=(8, 12), dtype="int32"
    )
    z[...] = data
    store = RecordingStore(tmp_path / "a.zarr")
    a = lsio.open_array(store)
    np.testing.assert_array_equal(a[1:7, 5:20], data[1:7, 5:20])
    chunk_reads = [r for r in store.requests if r.key.startswith("c/")]
    index_reads = [r for r in chunk_reads if isinstance(r.range, SuffixRange)]
    inner_reads = [r for r in chunk_reads if isinstance(r.range, ByteRange)]
    assert sorted(r.key for r in index_reads) == ["c/0/0", "c/0/1"]
    # rows 1..6 -> inner rows 0..3 (4), cols 5..19 -> inner cols 1..6 (6): 24 inner chunks.
    # Chunks stored close together may share a request (small gaps are read
    # through), but every needed chunk lies in exactly one request and no byte
    # is requested twice.
    indexes = a.shard_indexes([(0, 0), (0, 1)])
    for i in range(4):
        for j in range(1, 7):
            offset, size = (int(v) for v in indexes[(0, j // 4)][i, j % 4])
            holders = [
                r
                for r in inner_reads
                if r.key == f"c/0/{j // 4}"
                and r.range.start <= offset
                and offset + size <= r.range.end
            ]
            assert len(holders) == 1, (i, j)
    for key in ("c/0/0", "c/0/1"):
        spans = sorted((r.range.start, r.range.end) for r in inner_reads if r.key == key)
        assert all(a_end <= b_start for (_, a_end), (b_start, _) in itertools.pairwise(spans))
    store.requests.clear()
    np.testing.assert_array_equal(a[0:2, 0:3], data[0:2, 0:3])
    assert not any(isinstance(r.range, SuffixRange) for r in store.requests)  # index from cache
    assert len(store.requests) == 1


def test_shard_index_cache_is_bounded(tmp_path: Path, data: np.ndarray) -> None:
    z = zarr.create_array(
        str(tmp_path / "a.zarr"), shape=data.shape, chunks=(2, 3), shards=(4, 6), dtype="int32"
    )
    z[...] = data
    store = RecordingStore(tmp_path / "a.zarr")
    a = lsio.open_array(store, config=lsio.ReadConfig(shard_index_cache=2))
    for _ in range(2):
        np.testing.assert_array_equal(a[...], data)
    index_reads = [r for r in store.requests if isinstance(r.range, SuffixRange)]
    # 16 shards; the second pass finds only the last 2 in the cache and fetches 14 again.
    assert len(index_reads) == 16 + 14


def test_missing_shard_and_chunks_are_not_decoded(tmp_path: Path) -> None:
    z = zarr.create_array(
        str(tmp_path / "a.zarr"),
        shape=(8, 8),
        chunks=(2, 2),
        shards=(4, 4),
        dtype="f4",
        fill_value=-1,
    )
    z[0:2, 0:2] = 5
    store = RecordingStore(tmp_path / "a.zarr")
    a = lsio.open_array(store)
    expected = np.full((8, 8), -1, dtype="f4")
    expected[0:2, 0:2] = 5
    np.testing.assert_array_equal(a[...], expected)
    inner_reads = [
        r for r in store.requests if isinstance(r.range, ByteRange) and r.key.startswith("c/")
    ]
    assert [r.key for r in inner_reads] == ["c/0/0"]
