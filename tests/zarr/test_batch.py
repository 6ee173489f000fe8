"""read_many, Batch and the async API: same results as one-by-one reads, chunks read once."""

from __future__ import annotations

import asyncio
import collections
import itertools
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

import lsio
import zarr
from lsio.io import ByteRange, SuffixRange
from lsio.zarr._locate import locate_chunks
from tests.zarr.test_requests import RecordingStore

DATA = (np.arange(6 * 3 * 20 * 24, dtype="int32").reshape(6, 3, 20, 24) * 7) % 1000


def _write(path: Path, sharded: bool) -> None:
    z = zarr.create_array(
        str(path),
        shape=DATA.shape,
        chunks=(1, 3, 4, 6),
        shards=(2, 3, 8, 12) if sharded else None,
        dtype="int32",
        fill_value=-1,
    )
    z[...] = DATA
    z[4:, :, 16:] = -1  # some chunks are not stored


crops = st.lists(
    st.tuples(st.integers(0, 4), st.integers(0, 14), st.integers(0, 16)).map(
        lambda t: (slice(t[0], t[0] + 2), slice(None), slice(t[1], t[1] + 6), slice(t[2], t[2] + 8))
    ),
    min_size=1,
    max_size=12,
)


@pytest.fixture(scope="module")
def stores(tmp_path_factory: pytest.TempPathFactory) -> dict[bool, Path]:
    root = tmp_path_factory.mktemp("batch")
    paths = {}
    for sharded in (False, True):
        paths[sharded] = root / f"s{int(sharded)}.zarr"
        _write(paths[sharded], sharded)
    return paths


def _expected() -> np.ndarray:
    data = DATA.copy()
    data[4:, :, 16:] = -1
    return data


@pytest.mark.parametrize("sharded", [False, True])
@given(selections=crops)
def test_read_many_equals_one_by_one_and_zarr(
    stores: dict[bool, Path], sharded: bool, selections: list[tuple[slice, ...]]
) -> None:
    a = lsio.open_array(stores[sharded])
    z = zarr.open_array(str(stores[sharded]), mode="r")
    many = a.read_many(selections)
    assert isinstance(many, list)
    for sel, got in zip(selections, many, strict=True):
        np.testing.assert_array_equal(got, a[sel])
        np.testing.assert_array_equal(got, z[sel])
    out = np.empty((len(selections), 2, 3, 6, 8), dtype="int32")
    assert a.read_many(selections, out=out) is out
    np.testing.assert_array_equal(out, np.stack(many))


@pytest.mark.parametrize("sharded", [False, True])
def test_each_chunk_requested_once_per_batch(stores: dict[bool, Path], sharded: bool) -> None:
    store = RecordingStore(stores[sharded])
    a = lsio.open_array(store)
    # Heavily overlapping crops: many share chunks.
    selections = [
        (slice(0, 2), slice(None), slice(r, r + 6), slice(c, c + 8))
        for r in (0, 1, 2)
        for c in (0, 3)
    ]
    a.read_many(selections)
    reads = [
        r for r in store.requests if r.key.startswith("c/") and not isinstance(r.range, SuffixRange)
    ]
    counts = collections.Counter((r.key, r.range) for r in reads)
    assert set(counts.values()) == {1}
    # rows 0..7 -> 2 chunks of 4; cols 0..10 -> 2 chunks of 6; 2 timesteps: 8 chunks.
    needed = [(t, 0, r, c) for t in (0, 1) for r in (0, 1) for c in (0, 1)]
    if not sharded:
        assert {r.key for r in reads} == {a.chunk_key(c) for c in needed}
        return
    # Inner chunks stored back to back may be read as one range: each chunk's bytes
    # lie in exactly one requested range, and no two requested ranges overlap.
    assert all(isinstance(r.range, ByteRange) for r in reads)
    spans = [(r.key, r.range) for r in reads]
    for where in locate_chunks(a, needed):
        assert where is not None
        key, rng = where
        assert isinstance(rng, ByteRange)
        holding = [s for k, s in spans if k == key and s.start <= rng.start and rng.end <= s.end]
        assert len(holding) == 1
    for key in {k for k, _ in spans}:
        ranges = sorted((s.start, s.end) for k, s in spans if k == key)
        assert all(e <= s2 for (_, e), (s2, _) in itertools.pairwise(ranges))


@pytest.mark.parametrize("sharded", [False, True])
def test_same_whole_chunk_read_by_several_selections(
    stores: dict[bool, Path], sharded: bool
) -> None:
    a = lsio.open_array(stores[sharded])
    expected = _expected()
    aligned = (slice(1, 2), slice(None), slice(4, 8), slice(6, 12))  # exactly one chunk
    wider = (slice(1, 2), slice(None), slice(2, 10), slice(6, 12))
    results = a.read_many([aligned, wider, aligned, aligned])
    assert isinstance(results, list)
    for sel, got in zip([aligned, wider, aligned, aligned], results, strict=True):
        np.testing.assert_array_equal(got, expected[sel])


def test_batch_across_two_stores(stores: dict[bool, Path]) -> None:
    rec = {s: RecordingStore(p) for s, p in stores.items()}
    a = lsio.open_array(rec[False])
    b = lsio.open_array(rec[True], config=lsio.ReadConfig(threads=1))
    expected = _expected()
    with lsio.Batch() as batch:
        fa = a.read((slice(0, 3), 1, slice(2, 9)), batch=batch)
        fb = b.read((slice(3, 6), slice(None), slice(10, 20), slice(5, 23)), batch=batch)
        fa2 = a.read((slice(1, 2), 1, slice(4, 8)), batch=batch)
        assert len(batch) == 3
        with pytest.raises(lsio.NotReadyError, match="after its 'with' block ends"):
            fa.result()
        assert not fa.done()
    assert fa.done()
    np.testing.assert_array_equal(fa.result(), expected[0:3, 1, 2:9])
    np.testing.assert_array_equal(fb.result(), expected[3:6, :, 10:20, 5:23])
    np.testing.assert_array_equal(fa2.result(), expected[1:2, 1, 4:8])
    keys = collections.Counter(r.key for r in rec[False].requests if r.key.startswith("c/"))
    assert set(keys.values()) == {1}  # fa2's chunks are fa's: read once


def test_batch_submitted_inside_its_block(stores: dict[bool, Path]) -> None:
    a = lsio.open_array(stores[True])
    with lsio.Batch() as batch:
        f = a.read((0,), batch=batch)
        batch.submit()
        np.testing.assert_array_equal(f.result(), a[0])
    np.testing.assert_array_equal(f.result(), a[0])
    with pytest.raises(lsio.InvalidArgumentError, match="already done"):
        batch.submit()


def test_batch_abandoned_when_block_raises(stores: dict[bool, Path]) -> None:
    store = RecordingStore(stores[False])
    a = lsio.open_array(store)
    batch = lsio.Batch()
    futures = []

    def user_code() -> None:
        with batch:
            futures.append(a.read((0, 0), batch=batch))
            raise KeyError("user code failed")

    with pytest.raises(KeyError, match="user code failed"):
        user_code()
    fut = futures[0]
    with pytest.raises(lsio.NotReadyError, match="abandoned"):
        fut.result()
    assert not [r for r in store.requests if r.key.startswith("c/")]
    with pytest.raises(lsio.InvalidArgumentError, match="abandoned"):
        a.read((0, 0), batch=batch)


def test_result_asked_while_its_batch_runs(
    stores: dict[bool, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    import lsio.zarr._batch as batch_module

    a = lsio.open_array(stores[True])
    futures: list[lsio.ReadFuture] = []
    messages: list[str] = []
    run = batch_module.submit_jobs

    def submit(jobs: list[Any]) -> None:  # as another thread would see it, mid-read
        with pytest.raises(lsio.NotReadyError) as info:
            futures[0].result()
        messages.append(str(info.value))
        run(jobs)

    monkeypatch.setattr(batch_module, "submit_jobs", submit)
    with lsio.Batch() as batch:
        futures.append(a.read((0,), batch=batch))
    assert messages == [
        "the batch is still running: results are available once its 'with' block "
        "(or batch.submit()) has returned"
    ]
    np.testing.assert_array_equal(futures[0].result(), a[0])


def test_failed_read_in_batch_names_key_and_workers_survive(tmp_path: Path) -> None:
    path = tmp_path / "bad.zarr"
    _write(path, sharded=False)
    chunk = path / "c" / "2" / "0" / "1" / "1"
    chunk.write_bytes(b"not zstd at all")
    a = lsio.open_array(path, config=lsio.ReadConfig(threads=2))
    batch = lsio.Batch()
    good = a.read((0,), batch=batch)
    bad = a.read((2,), batch=batch)
    with pytest.raises(lsio.ChunkError, match=r"chunk 'c/2/0/1/1'"):
        batch.__exit__(None, None, None)  # what leaving a 'with' block does
    with pytest.raises(lsio.ChunkError, match=r"c/2/0/1/1"):
        bad.result()
    with pytest.raises(lsio.ChunkError):
        good.result()
    # The workers are free: later reads of good chunks work.
    np.testing.assert_array_equal(a[0], _expected()[0])
    with pytest.raises(lsio.ChunkError, match=r"chunk 'c/2/0/1/1'"):
        a.read_many([(1,), (2,)])


def test_read_many_bad_out(stores: dict[bool, Path]) -> None:
    a = lsio.open_array(stores[False])
    with pytest.raises(lsio.InvalidArgumentError, match="selections of one shape"):
        a.read_many([(0,), (slice(0, 2),)], out=np.empty((2, 3, 20, 24), dtype="int32"))
    with pytest.raises(lsio.InvalidArgumentError, match="out has shape"):
        a.read_many([(0,), (1,)], out=np.empty((3, 3, 20, 24), dtype="int32"))


def test_async_reads(stores: dict[bool, Path]) -> None:
    a = lsio.open_array(stores[True])
    expected = _expected()

    async def main() -> tuple[np.ndarray, list[np.ndarray] | np.ndarray, np.ndarray]:
        one, many = await asyncio.gather(
            a.read_async((slice(1, 4), 0)), a.read_many_async([(0,), (5, 2)])
        )
        out = np.empty((3, 20, 24), dtype="int32")
        await a.read_async(2, out=out)
        return one, many, out

    one, many, out = asyncio.run(main())
    np.testing.assert_array_equal(one, expected[1:4, 0])
    np.testing.assert_array_equal(many[0], expected[0])
    np.testing.assert_array_equal(many[1], expected[5, 2])
    np.testing.assert_array_equal(out, expected[2])


@pytest.mark.parametrize(
    "io", [lsio.IOConfig(), lsio.IOConfig(backend="io_uring"), lsio.IOConfig(direct=True)]
)
def test_io_backends_give_the_same_results(stores: dict[bool, Path], io: lsio.IOConfig) -> None:
    config = lsio.ReadConfig(io=io)
    expected = _expected()
    for sharded in (False, True):
        a = lsio.open_array(stores[sharded], config=config)
        np.testing.assert_array_equal(a[...], expected)
        sels = [(slice(0, 2), slice(None), slice(3, 9), slice(5, 13)), (5, 1)]
        for sel, got in zip(sels, a.read_many(sels), strict=True):
            np.testing.assert_array_equal(got, expected[sel])
