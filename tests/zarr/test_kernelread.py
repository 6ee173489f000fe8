"""The compiled decode-and-scatter path (plain chunks, unit-step crops) against zarr-python."""

from __future__ import annotations

import dataclasses
import itertools
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from crc32c import crc32c
from hypothesis import given, settings
from hypothesis import strategies as st

import lsio
import zarr
from lsio.compute import load_scatter_kernel
from lsio.plan import normalize_basic
from lsio.zarr._engine import ReadJob
from lsio.zarr._kernelread import plan_kernel_reads
from tests.zarr.zarr_stores import StoreSpec, store_specs, write_store

# The compressors the compiled kernel decodes, per format (see lsio.compute.c_decoder).
_KERNEL_COMPRESSORS = {
    3: ["none", "zstd", "blosc", "gzip"],
    2: ["none", "zstd", "blosc", "gzip", "zlib", "lz4"],
}


def _plain(spec: StoreSpec, compressor: str) -> StoreSpec:
    """The spec with the codecs the kernel takes: native bytes, ``compressor``, nothing else."""
    codecs = dict(spec.codecs, compressor=compressor)
    if spec.zarr_format == 3:
        codecs.update(endian="little", transpose=False)
    else:
        codecs.update(endian="<", order="C")
    return dataclasses.replace(spec, codecs=codecs)


@st.composite
def _crop(draw: st.DrawFn, shape: tuple[int, ...]) -> tuple[int | slice, ...]:
    sel: list[int | slice] = []
    for n in shape:
        start = draw(st.integers(0, n - 1))
        if draw(st.integers(0, 4)) == 0:
            sel.append(start)
        else:
            sel.append(slice(start, draw(st.integers(start + 1, n))))
    return tuple(sel)


@settings(max_examples=90, deadline=None)
@given(spec=store_specs(), data=st.data())
def test_crops_match_zarr(spec: StoreSpec, data: st.DataObject) -> None:
    compressor = data.draw(st.sampled_from(_KERNEL_COMPRESSORS[spec.zarr_format]))
    spec = _plain(spec, compressor)
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "a.zarr"
        write_store(spec, path)
        a, z = lsio.open_array(path), zarr.open_array(str(path), mode="r")
        assert a.c_decoder is not None  # the kernel's case
        assert a.c_decoder.name == compressor
        full = z[...]
        if any(n == 0 for n in spec.shape):
            return
        sels = [data.draw(_crop(spec.shape)) for _ in range(data.draw(st.integers(1, 4)))]
        for sel, got in zip(sels, a.read_many(sels), strict=True):
            np.testing.assert_array_equal(got, full[sel])
        # Several crops of one shape into one output, sharing chunks: each chunk
        # decoded once and copied to every crop.
        same = [sels[0]] * 2 + [data.draw(_crop(spec.shape)) for _ in range(2)]
        shape = full[sels[0]].shape
        same = [s for s in same if full[s].shape == shape]
        out = np.empty((len(same), *shape), dtype=a.dtype)
        a.read_many(same, out=out)
        for k, s in enumerate(same):
            np.testing.assert_array_equal(out[k], full[s])


def test_strided_and_reversed_outputs(tmp_path: Path) -> None:
    values = np.arange(6 * 10 * 12, dtype="<u2").reshape(6, 10, 12)
    a = lsio.create(tmp_path / "a.zarr", shape=values.shape, dtype="u2", chunks=(2, 3, 5))
    a[...] = values
    a = lsio.open_array(tmp_path / "a.zarr")
    sel = (slice(1, 5), slice(2, 9), slice(3, 12))
    shape = (4, 7, 9)
    outs = [
        np.zeros((4, 7, 18), dtype="u2")[:, :, ::2],  # every other element of the last axis
        np.zeros(shape, dtype="u2")[::-1],  # reversed first axis
        np.zeros(shape, dtype="u2")[..., ::-1],  # reversed last axis
        np.zeros(shape, dtype="u2", order="F"),  # Fortran order
        np.zeros((3, 4, 7, 9), dtype="u2")[1],  # a block inside a bigger buffer
    ]
    for out in outs:
        a.read(sel, out=out)
        np.testing.assert_array_equal(out, values[sel])
    # An integer index drops a dimension; the rest lands in a strided output.
    out2 = np.zeros((7, 18), dtype="u2")[:, ::2]
    a.read((2, slice(2, 9), slice(3, 12)), out=out2)
    np.testing.assert_array_equal(out2, values[2, 2:9, 3:12])


def test_missing_objects_and_chunks_read_as_fill(tmp_path: Path) -> None:
    values = np.arange(8 * 8, dtype="i4").reshape(8, 8)
    a = lsio.create(
        tmp_path / "a.zarr", shape=(8, 8), dtype="i4", chunks=(2, 2), shards=(4, 4), fill_value=-7
    )
    a[...] = values
    a[0:2, 0:2] = -7  # an inner chunk of fill values is not stored
    (tmp_path / "a.zarr" / "c" / "1" / "1").unlink()  # a whole shard gone
    expected = values.copy()
    expected[0:2, 0:2] = -7
    expected[4:, 4:] = -7
    b = lsio.open_array(tmp_path / "a.zarr")
    np.testing.assert_array_equal(b[...], expected)
    np.testing.assert_array_equal(b[1:7, 3:8], expected[1:7, 3:8])


def test_plan_reads_each_chunk_once_and_leaves_steps_to_the_engine(tmp_path: Path) -> None:
    a = lsio.create(tmp_path / "a.zarr", shape=(16, 16), dtype="i2", chunks=(4, 4), shards=(8, 8))
    a[...] = np.arange(256, dtype="i2").reshape(16, 16)
    a = lsio.open_array(tmp_path / "a.zarr")
    assert a.c_decoder is not None
    kernel = load_scatter_kernel(a.c_decoder)

    def job(sel: tuple[slice, ...]) -> ReadJob:
        norm = normalize_basic(sel, a.shape)
        return ReadJob(a, norm, np.empty(norm.shape, dtype=a.dtype))

    jobs = [job((slice(0, 8), slice(2, 10))), job((slice(4, 12), slice(2, 10)))]
    jobs.append(job((slice(0, 16, 2), slice(None))))
    groups, plan, rest = plan_kernel_reads(a, jobs, kernel, 4)
    assert plan is not None
    assert rest == [jobs[2]]  # a step: the general engine's
    # Rows 0-11 x cols 2-9: 3 x 3 chunks, the middle row needed by both crops, listed once.
    assert len(plan.tables.chunks) == 9
    assert len(plan.tables.pieces) == 12
    reads = plan.box.reads
    assert groups[0].first == 0
    assert groups[-1].stop == len(reads)
    assert all(g.stop == h.first for g, h in itertools.pairwise(groups))
    covered = sorted(r for first, stop in reads[:, :2].tolist() for r in range(first, stop))
    assert covered == list(range(9))


def _chunky_shards(path: Path, index_location: str = "end") -> np.ndarray:
    """Shards of 16 KiB inner chunks that do not compress: the reads a mapping serves."""
    values = np.random.default_rng(0).integers(0, 2**31, (4, 256, 256), dtype="<i4")
    z = zarr.create_array(
        str(path),
        shape=values.shape,
        chunks=(1, 64, 64),
        shards={"shape": (2, 256, 256), "index_location": index_location},
        dtype="<i4",
        compressors=[zarr.codecs.ZstdCodec()],
        fill_value=0,
    )
    z[...] = values
    for shard in path.glob("c/*/*/*"):
        shard.read_bytes()  # in the page cache
    return values


def _plan(a: lsio.Array, sel: tuple[slice, ...]) -> Any:
    assert a.c_decoder is not None
    kernel = load_scatter_kernel(a.c_decoder)
    norm = normalize_basic(sel, a.shape)
    job = ReadJob(a, norm, np.empty(norm.shape, dtype=a.dtype))
    return plan_kernel_reads(a, [job], kernel, 2)[1]


def test_cached_shards_are_decoded_in_place(tmp_path: Path) -> None:
    path = tmp_path / "a.zarr"
    values = _chunky_shards(path)
    sels = [
        (slice(1, 4), slice(30, 200), slice(60, 190)),
        (slice(0, 2), slice(0, 64), slice(0, 128)),
        (slice(3, 4), slice(250, 256), slice(0, 256)),
    ]
    a = lsio.open_array(path)
    plan = _plan(a, sels[0])
    assert plan.mapped is not None  # read through the mappings, no read_batch
    for sel, got in zip(sels, a.read_many(sels), strict=True):
        np.testing.assert_array_equal(got, values[sel])
    # Without mappings (preadv) the same plan reads through read_batch, equally.
    b = lsio.open_array(path, config=lsio.ReadConfig(io=lsio.IOConfig(backend="preadv")))
    assert _plan(b, sels[0]).mapped is None
    for sel, got in zip(sels, b.read_many(sels), strict=True):
        np.testing.assert_array_equal(got, values[sel])


def test_whole_shards_are_decoded_in_place_and_handed_back(tmp_path: Path) -> None:
    path = tmp_path / "a.zarr"
    values = np.random.default_rng(1).integers(0, 2**31, (8, 512, 512), dtype="<i4")
    z = zarr.create_array(
        str(path), shape=values.shape, chunks=(1, 64, 64), shards=(2, 512, 512), dtype="<i4"
    )
    z[...] = values
    for shard in path.glob("c/*/*/*"):
        shard.read_bytes()  # in the page cache
    a = lsio.open_array(path)
    whole = _plan(a, (slice(None),) * 3)
    assert whole.mapped is not None
    assert whole.mapped.release  # 2 MiB shards read whole: handed back once decoded
    crop = _plan(a, (slice(1, 3), slice(0, 100), slice(0, 100)))
    assert crop.mapped is not None
    assert not crop.mapped.release  # crops keep their pages mapped
    np.testing.assert_array_equal(a[:], values)
    np.testing.assert_array_equal(a[1:7, 100:400], values[1:7, 100:400])


def test_a_corrupt_chunk_in_a_mapped_shard_is_named(tmp_path: Path) -> None:
    path = tmp_path / "a.zarr"
    _chunky_shards(path)
    shard = path / "c" / "0" / "0" / "0"
    raw = bytearray(shard.read_bytes())
    # The index (32 offsets and sizes, then a checksum) ends the shard: spoil the
    # frame header of inner chunk (0, 1, 1), in the middle of the shard.
    index = np.frombuffer(bytes(raw[-(32 * 16 + 4) : -4]), "<u8").reshape(32, 2)
    raw[int(index[5, 0])] ^= 0xFF
    shard.write_bytes(bytes(raw))
    shard.read_bytes()
    a = lsio.open_array(path)
    assert _plan(a, (slice(0, 2), slice(None), slice(None))).mapped is not None
    with pytest.raises(lsio.ChunkError, match=r"chunk 'c/0/0/0'.*inner chunk \(0, 1, 1\) at bytes"):
        a[0:2]


def test_a_shard_cut_short_names_the_first_chunk_cut_off_when_mapped(tmp_path: Path) -> None:
    path = tmp_path / "a.zarr"
    values = _chunky_shards(path, index_location="start")
    shard = path / "c" / "1" / "0" / "0"
    shard.write_bytes(shard.read_bytes()[:-5])
    shard.read_bytes()
    a = lsio.open_array(path)
    assert _plan(a, (slice(2, 4), slice(None), slice(None))).mapped is not None
    np.testing.assert_array_equal(a[2:4, :64, :64], values[2:4, :64, :64])  # before the cut
    with pytest.raises(lsio.ChunkError, match=r"chunk 'c/1/0/0'.*inner chunk \(3, 3, 3\) at bytes"):
        a[2:4]


_V3_CODECS: dict[str, list[Any]] = {
    "none": [],
    "blosc": [zarr.codecs.BloscCodec(cname="lz4", shuffle="shuffle")],
    "gzip": [zarr.codecs.GzipCodec(level=1)],
}


@pytest.mark.parametrize("compressor", sorted(_V3_CODECS))
@pytest.mark.parametrize("mapped", [True, False])
def test_a_corrupt_chunk_of_each_compressor_is_named(
    tmp_path: Path, compressor: str, mapped: bool
) -> None:
    path = tmp_path / "a.zarr"
    values = np.random.default_rng(0).integers(0, 2**31, (2, 256, 256), dtype="<i4")
    z = zarr.create_array(
        str(path),
        shape=values.shape,
        chunks=(1, 64, 64),
        shards=(2, 256, 256),
        dtype="<i4",
        compressors=_V3_CODECS[compressor],
        fill_value=0,
    )
    z[...] = values
    shard = path / "c" / "0" / "0" / "0"
    raw = bytearray(shard.read_bytes())
    index = np.frombuffer(bytes(raw[-(32 * 16 + 4) : -4]), "<u8").reshape(32, 2)
    if compressor == "none":
        # Nothing to spoil inside an uncompressed chunk: make its index entry one byte short.
        entry = len(raw) - (32 * 16 + 4) + 5 * 16 + 8
        raw[entry : entry + 8] = int(index[5, 1] - 1).to_bytes(8, "little")
        raw[-4:] = crc32c(bytes(raw[-(32 * 16 + 4) : -4])).to_bytes(4, "little")
    else:
        raw[int(index[5, 0]) + 2 : int(index[5, 0]) + 40] = bytes(38)
    shard.write_bytes(bytes(raw))
    if mapped:
        shard.read_bytes()  # in the page cache: served from a mapping
    a = lsio.open_array(path)
    assert a.c_decoder is not None
    assert a.c_decoder.name == compressor
    np.testing.assert_array_equal(a[1], values[1])  # other chunks read well
    np.testing.assert_array_equal(a[0, :64], values[0, :64])
    with pytest.raises(lsio.ChunkError, match=r"chunk 'c/0/0/0'.*inner chunk \(0, 1, 1\)"):
        a[0:1]
    with pytest.raises(lsio.ChunkError, match=r"chunk 'c/0/0/0'.*inner chunk \(0, 1, 1\)"):
        a.read_many([(slice(0, 1), slice(60, 100), slice(70, 90))] * 3)


@pytest.mark.parametrize("threads", [1, 2])
@pytest.mark.parametrize("groups_from", [1, 10**9])
def test_chunk_files_read_into_one_buffer_missing_corrupt_and_unreadable(
    tmp_path: Path, threads: int, groups_from: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Unsharded: every chunk a file, taken one at a time by each worker's
    # compiled loop, or eight at a time (neighbours decoded side by side).
    import lsio.zarr._claimread as claimread

    monkeypatch.setattr(claimread, "CLAIM_GROUPS_FROM", groups_from)
    path = tmp_path / "a.zarr"
    values = np.random.default_rng(1).integers(-500, 500, (3, 40, 48), dtype="i2")
    z = zarr.create_array(
        str(path), shape=values.shape, chunks=(1, 8, 8), dtype="i2", fill_value=-9
    )
    z[...] = values
    (path / "c" / "1" / "2" / "3").unlink()  # missing: reads as the fill value
    expected = values.copy()
    expected[1, 16:24, 24:32] = -9
    a = lsio.open_array(path, config=lsio.ReadConfig(threads=threads))
    assert _plan(a, (slice(None),) * 3).claims is not None
    np.testing.assert_array_equal(a[...], expected)
    np.testing.assert_array_equal(a[0:3, 5:37, 3:45], expected[:, 5:37, 3:45])
    crops = [(slice(0, 2), slice(r, r + 17), slice(c, c + 21)) for r in (0, 9, 20) for c in (1, 27)]
    for crop, got in zip(crops, a.read_many(crops), strict=True):
        np.testing.assert_array_equal(got, expected[crop])
    corrupt = path / "c" / "2" / "4" / "5"
    corrupt.write_bytes(corrupt.read_bytes()[:10] + bytes(30))
    with pytest.raises(lsio.ChunkError, match=r"c/2/4/5"):
        a[2, 30:40, 38:48]
    np.testing.assert_array_equal(a[0:2], expected[0:2])  # the rest still reads
    corrupt.unlink()
    corrupt.mkdir()  # a directory where a chunk file should be
    with pytest.raises(lsio.ReadError, match=r"c/2/4/5"):
        a[2]


def test_chunk_files_claimed_only_where_the_store_has_files(tmp_path: Path) -> None:
    path = tmp_path / "a.zarr"
    values = np.arange(4 * 30 * 30, dtype="i2").reshape(4, 30, 30)
    zarr.create_array(str(path), shape=values.shape, chunks=(1, 8, 8), dtype="i2")[...] = values
    sel = (slice(0, 3), slice(5, 27), slice(2, 29))
    configs = [
        (lsio.IOConfig(backend="preadv"), True),
        (lsio.IOConfig(backend="auto"), True),
        (lsio.IOConfig(backend="mmap"), False),  # reads its files its own way
        (lsio.IOConfig(backend="preadv", direct=True), False),
    ]
    for io, claimed in configs:
        a = lsio.open_array(path, config=lsio.ReadConfig(io=io))
        assert (_plan(a, sel).claims is not None) is claimed, io
        np.testing.assert_array_equal(a[sel], values[sel])


@pytest.mark.parametrize("groups_from", [1, 10**9])
def test_chunk_files_larger_than_a_workers_buffer(
    tmp_path: Path, groups_from: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Stored uncompressed with random bytes the chunk files are as large as the
    # chunks; a file padded past its worker's buffer is read into a larger one
    # and then fails to decode, named.
    import lsio.zarr._claimread as claimread

    monkeypatch.setattr(claimread, "CLAIM_GROUPS_FROM", groups_from)
    path = tmp_path / "a.zarr"
    values = np.random.default_rng(2).integers(-(2**15), 2**15, (2, 64, 64), dtype="i2")
    zarr.create_array(
        str(path), shape=values.shape, chunks=(1, 32, 32), dtype="i2", compressors=None
    )[...] = values
    a = lsio.open_array(path, config=lsio.ReadConfig(threads=2))
    np.testing.assert_array_equal(a[:, 5:60, 7:50], values[:, 5:60, 7:50])
    padded = path / "c" / "1" / "1" / "0"
    padded.write_bytes(padded.read_bytes() + bytes(20_000))
    with pytest.raises(lsio.ChunkError, match=r"c/1/1/0"):
        a[:, 5:60, 7:50]


@pytest.mark.parametrize("compressor", ["zstd", *sorted(_V3_CODECS)])
def test_neighbouring_chunks_decoded_side_by_side_read_as_one_by_one(
    tmp_path: Path, compressor: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    # With room for several chunks, the kernel decodes neighbours into scratch
    # side by side and copies their rows interleaved; the values are the same
    # as chunk by chunk (one slot), for every layout of pieces.
    import lsio.zarr._kernelread as kernelread

    path = tmp_path / "a.zarr"
    values = np.random.default_rng(3).integers(0, 1000, (4, 96, 200), dtype="<i4")
    codecs = [zarr.codecs.ZstdCodec()] if compressor == "zstd" else _V3_CODECS[compressor]
    z = zarr.create_array(
        str(path),
        shape=values.shape,
        chunks=(1, 16, 32),
        shards=(2, 48, 96),
        dtype="<i4",
        compressors=codecs,
        fill_value=0,
    )
    z[...] = values
    z[3, 48:, 96:] = 0  # a missing shard: the fill value between decoded neighbours
    values[3, 48:, 96:] = 0
    sels = [
        (slice(None),) * 3,
        (slice(0, 2), slice(5, 90), slice(0, 200)),
        (slice(1, 4), slice(16, 80), slice(32, 192)),
        (slice(None), slice(0, 96, 1), slice(199, None, -1)),
        (2, slice(None), slice(7, 150)),
    ]
    a = lsio.open_array(path)
    for slots in (1, 8):
        monkeypatch.setattr(kernelread, "SCRATCH_CHUNKS", slots)
        for sel in sels:
            np.testing.assert_array_equal(a[sel], values[sel])
        got = a.read_many([s for s in sels if not isinstance(s[0], int)][:3])
        np.testing.assert_array_equal(got[0], values[sels[0]])


@pytest.mark.parametrize(
    "io", [{"backend": "preadv"}, {"backend": "io_uring"}, {"backend": "preadv", "direct": True}]
)
def test_shard_reads_hand_their_buffers_back(tmp_path: Path, io: dict[str, Any]) -> None:
    """Shard ranges read into pool buffers are reused by later reads, with the bytes right."""
    rng = np.random.default_rng(7)
    data = rng.integers(-(2**31), 2**31 - 1, (16, 128, 128), dtype=np.int32)  # incompressible
    z = zarr.create_array(
        tmp_path / "a.zarr", shape=data.shape, chunks=(2, 32, 32), shards=(8, 64, 64), dtype="int32"
    )
    z[...] = data
    config = lsio.ReadConfig(io=lsio.IOConfig(read_buffers=64 << 20, **io))
    a = lsio.open_array(tmp_path / "a.zarr", config=config)
    for step in range(4):
        sel = (slice(step, 16), slice(None), slice(3 * step, 128))
        assert np.array_equal(a[sel], data[sel])
        crops = [(slice(t, t + 2), slice(5, 90), slice(7, 70)) for t in range(step, 14, 3)]
        for got, crop in zip(a.read_many(crops), crops, strict=True):
            assert np.array_equal(got, data[crop])
    assert a.store.buffers.taken > 0
    assert a.store.buffers.reused > 0


@pytest.mark.parametrize(("found", "threads"), [(True, 4), (False, 1), (None, 1)])
def test_a_crop_of_files_on_disk_takes_more_workers(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, found: bool | None, threads: int
) -> None:
    """Chunk files found on disk are read by ``disk_threads`` workers.

    Cached, a crop this small (~50 KB decoded) stays on the calling thread.
    """
    import lsio.zarr._claimread as claimread
    import lsio.zarr._engine as engine

    data = np.arange(4 * 64 * 64, dtype=np.int32).reshape(4, 64, 64)
    z = zarr.create_array(tmp_path / "a.zarr", shape=data.shape, chunks=(1, 8, 8), dtype="int32")
    z[...] = data
    monkeypatch.setattr(claimread, "probe_files", lambda paths: found)
    seen: set[int] = set()
    names: set[str] = set()
    run_group = engine.run_kernel_group

    def counting(group: Any, scratch: Any) -> None:
        seen.add(threading.get_ident())
        names.add(threading.current_thread().name.rsplit("_", 1)[0])
        time.sleep(0.05)  # every worker gets a group before the first is done
        run_group(group, scratch)

    monkeypatch.setattr(engine, "run_kernel_group", counting)
    config = lsio.ReadConfig(threads=2, disk_threads=4)
    a = lsio.open_array(tmp_path / "a.zarr", config=config)
    crop = (slice(0, 4), slice(3, 60), slice(5, 50))
    assert np.array_equal(a[crop], data[crop])
    assert len(seen) == threads
    # The extra workers come from a pool of their own: other calls keep to `threads`.
    assert names == ({"MainThread", "lsio-disk"} if found else {"MainThread"})
    assert a[crop].sum() == data[crop].sum()


@pytest.mark.parametrize("sharded", [True, False])
def test_rows_streamed_past_the_caches_read_as_copied(
    tmp_path: Path, sharded: bool, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Chunk rows of 128 bytes land on cache-line boundaries of a line-aligned
    # output: with streaming on, those rows are written with non-temporal
    # stores; every value matches a read without it, one chunk or eight
    # side by side in scratch, by the kernel or by the claim loop (taking
    # files eight at a time, as for a whole-array block).
    import lsio.zarr._claimread as claimread
    import lsio.zarr._kernelread as kernelread

    monkeypatch.setattr(claimread, "CLAIM_GROUPS_FROM", 1)
    path = tmp_path / "a.zarr"
    values = np.random.default_rng(5).integers(0, 1000, (4, 96, 256), dtype="<i4")
    z = zarr.create_array(
        str(path),
        shape=values.shape,
        chunks=(1, 16, 32),
        shards=(2, 48, 128) if sharded else None,
        dtype="<i4",
        compressors=[zarr.codecs.ZstdCodec()],
        fill_value=0,
    )
    z[...] = values
    z[3, :16, :32] = 0  # a missing chunk: the fill value, copied too
    values[3, :16, :32] = 0
    sels = [(slice(None),) * 3, (slice(1, 3), slice(16, 96), slice(32, 224))]
    for stream_from in (0, None):
        a = lsio.open_array(path, config=lsio.ReadConfig(stream_from=stream_from))
        job = ReadJob(a, normalize_basic(sels[0], a.shape), np.empty(values.shape, "<i4"))
        kernel = load_scatter_kernel(a.c_decoder)
        plan = plan_kernel_reads(a, [job], kernel, 2, stream_from=stream_from)[1]
        assert plan is not None
        assert plan.box.tables.stream == (stream_from is not None)
        for slots in (1, 8):
            monkeypatch.setattr(kernelread, "SCRATCH_CHUNKS", slots)
            for sel in sels:
                shape = values[sel].shape
                raw = np.empty(int(np.prod(shape)) * 4 + 64, dtype=np.uint8)
                skip = (-raw.ctypes.data) % 64
                out = raw[skip : skip + int(np.prod(shape)) * 4].view("<i4").reshape(shape)
                assert out.ctypes.data % 64 == 0  # every 128-byte chunk row is whole lines
                a.read(sel, out=out)
                np.testing.assert_array_equal(out, values[sel])


def test_stream_from_is_checked() -> None:
    with pytest.raises(ValueError, match="stream_from"):
        lsio.ReadConfig(stream_from=-1)


def test_disk_threads_resolve_from_threads() -> None:
    assert lsio.ReadConfig(threads=1).disk_workers == 1
    assert lsio.ReadConfig(threads=2).disk_workers == 4
    assert lsio.ReadConfig(threads=8).disk_workers == 8
    assert lsio.ReadConfig(threads=2, disk_threads=3).disk_workers == 3
    with pytest.raises(ValueError, match="disk_threads"):
        lsio.ReadConfig(disk_threads=0)
