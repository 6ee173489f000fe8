"""Bad stores and bad requests raise clear lsio errors that name what and where."""

from __future__ import annotations

import json
import struct
from pathlib import Path
from typing import Any

import crc32c
import numcodecs
import numpy as np
import pytest
import zarr.codecs as zc

import lsio
import zarr


def _v3(path: Path, **kwargs: object) -> zarr.Array:
    opts: dict[str, object] = {"shape": (8, 8), "chunks": (4, 4), "dtype": "int32", "fill_value": 0}
    opts.update(kwargs)
    arr = zarr.create_array(str(path), **opts)  # type: ignore[arg-type]
    arr[...] = np.arange(64, dtype="int32").reshape(8, 8) + 1
    return arr


def _edit_json(path: Path, edit: object) -> None:
    meta = json.loads(path.read_text())
    edit(meta)  # type: ignore[operator]
    path.write_text(json.dumps(meta))


def test_missing_path_is_file_not_found(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="does not exist") as info:
        lsio.open(tmp_path / "nope.zarr")
    assert isinstance(info.value, lsio.NodeNotFoundError)
    assert isinstance(info.value, lsio.LsioError)


def test_directory_without_metadata_is_not_found(tmp_path: Path) -> None:
    (tmp_path / "empty.zarr").mkdir()
    with pytest.raises(lsio.NodeNotFoundError, match="no Zarr array or group"):
        lsio.open(tmp_path / "empty.zarr")


def test_malformed_json_names_the_file(tmp_path: Path) -> None:
    _v3(tmp_path / "a.zarr")
    (tmp_path / "a.zarr" / "zarr.json").write_text('{"shape": [8, 8], ')
    with pytest.raises(lsio.MetadataError, match=r"a\.zarr/zarr\.json: malformed JSON"):
        lsio.open(tmp_path / "a.zarr")


@pytest.mark.parametrize("field", ["shape", "data_type", "chunk_grid", "fill_value", "codecs"])
def test_missing_v3_field_is_named(tmp_path: Path, field: str) -> None:
    _v3(tmp_path / "a.zarr")
    _edit_json(tmp_path / "a.zarr" / "zarr.json", lambda m: m.pop(field))
    with pytest.raises(
        lsio.MetadataError, match=rf"zarr\.json, field '{field}': required field is missing"
    ):
        lsio.open(tmp_path / "a.zarr")


@pytest.mark.parametrize("field", ["shape", "chunks", "dtype", "fill_value"])
def test_missing_v2_field_is_named(tmp_path: Path, field: str) -> None:
    zarr.create_array(str(tmp_path / "a.zarr"), shape=(4,), chunks=(2,), dtype="i2", zarr_format=2)
    _edit_json(tmp_path / "a.zarr" / ".zarray", lambda m: m.pop(field))
    with pytest.raises(lsio.MetadataError, match=rf"\.zarray, field '{field}'"):
        lsio.open(tmp_path / "a.zarr")


def test_wrong_field_type_is_named(tmp_path: Path) -> None:
    _v3(tmp_path / "a.zarr")
    _edit_json(tmp_path / "a.zarr" / "zarr.json", lambda m: m.update(shape="8x8"))
    with pytest.raises(
        lsio.MetadataError, match="field 'shape': must be a list of non-negative integers"
    ):
        lsio.open(tmp_path / "a.zarr")


def test_unknown_v3_codec_lists_supported(tmp_path: Path) -> None:
    _v3(tmp_path / "a.zarr", compressors=zc.ZstdCodec())
    _edit_json(tmp_path / "a.zarr" / "zarr.json", lambda m: m["codecs"][1].update(name="snappy9"))
    with pytest.raises(
        lsio.UnsupportedError, match=r"unknown codec 'snappy9'; supported codecs: blosc, bytes"
    ):
        lsio.open(tmp_path / "a.zarr")


def test_unknown_v2_compressor_lists_supported(tmp_path: Path) -> None:
    zarr.create_array(str(tmp_path / "a.zarr"), shape=(4,), chunks=(2,), dtype="i2", zarr_format=2)
    _edit_json(tmp_path / "a.zarr" / ".zarray", lambda m: m.update(compressor={"id": "snappy9"}))
    with pytest.raises(
        lsio.UnsupportedError, match=r"unknown compressor 'snappy9'; supported compressors: blosc"
    ):
        lsio.open(tmp_path / "a.zarr")


def test_unsupported_dtype_says_not_supported_yet(tmp_path: Path) -> None:
    _v3(tmp_path / "a.zarr")
    _edit_json(tmp_path / "a.zarr" / "zarr.json", lambda m: m.update(data_type="string"))
    with pytest.raises(lsio.UnsupportedError, match="data_type 'string' is not supported yet"):
        lsio.open(tmp_path / "a.zarr")


def test_checksum_mismatch_names_chunk_key(tmp_path: Path) -> None:
    _v3(tmp_path / "a.zarr", compressors=[zc.Crc32cCodec()])
    chunk = tmp_path / "a.zarr" / "c" / "1" / "0"
    raw = bytearray(chunk.read_bytes())
    raw[3] ^= 0xFF
    chunk.write_bytes(bytes(raw))
    a = lsio.open_array(tmp_path / "a.zarr")
    np.testing.assert_array_equal(a[:4], np.arange(32).reshape(4, 8) + 1)  # other chunks fine
    with pytest.raises(lsio.ChunkError, match=r"chunk 'c/1/0': crc32c checksum mismatch"):
        a[...]


def test_truncated_chunk_names_chunk_key(tmp_path: Path) -> None:
    _v3(tmp_path / "a.zarr", compressors=[zc.ZstdCodec()])
    chunk = tmp_path / "a.zarr" / "c" / "0" / "1"
    chunk.write_bytes(chunk.read_bytes()[:7])
    with pytest.raises(lsio.ChunkError, match=r"chunk 'c/0/1'"):
        lsio.open_array(tmp_path / "a.zarr")[...]


@pytest.mark.parametrize(
    "selection",
    [(Ellipsis,), (slice(None, None, 2), slice(None, None, 2)), ([0, 5], slice(None, None, -3))],
)
@pytest.mark.parametrize("keep", [8, 40, 0.5])
def test_truncated_blosc_chunk_names_chunk_key(
    tmp_path: Path, selection: tuple[object, ...], keep: float
) -> None:
    # c-blosc reads as many bytes as its header says: cut short, it must never
    # be handed the chunk (a crash, or values from past the buffer).
    path = tmp_path / "a.zarr"
    z = zarr.create_array(
        str(path),
        shape=(8, 64),
        chunks=(8, 64),
        dtype="float64",
        zarr_format=2,
        compressors=numcodecs.Blosc(cname="lz4", clevel=1, shuffle=numcodecs.Blosc.NOSHUFFLE),
    )
    z[...] = np.random.default_rng(0).random((8, 64))
    chunk = path / "0.0"
    data = chunk.read_bytes()
    chunk.write_bytes(data[: int(keep * len(data)) if keep < 1 else int(keep)])
    with pytest.raises(lsio.ChunkError, match=r"chunk '0.0'.*blosc"):
        lsio.open_array(path)[selection]


def test_uncompressed_chunk_of_wrong_size_names_key(tmp_path: Path) -> None:
    _v3(tmp_path / "a.zarr", compressors=None)
    chunk = tmp_path / "a.zarr" / "c" / "0" / "0"
    chunk.write_bytes(chunk.read_bytes()[:-4])
    with pytest.raises(lsio.ChunkError, match=r"chunk 'c/0/0': chunk has 60 bytes, expected 64"):
        lsio.open_array(tmp_path / "a.zarr")[:2, :2]


def test_truncated_shard_index_names_shard_key(tmp_path: Path) -> None:
    _v3(tmp_path / "a.zarr", chunks=(2, 2), shards=(4, 4))
    shard = tmp_path / "a.zarr" / "c" / "0" / "1"
    shard.write_bytes(shard.read_bytes()[:20])
    a = lsio.open_array(tmp_path / "a.zarr")
    with pytest.raises(
        lsio.ChunkError, match=r"chunk 'c/0/1': shard index: shard index has 20 bytes"
    ):
        a[0:4, 4:8]


def test_corrupt_shard_index_checksum(tmp_path: Path) -> None:
    _v3(tmp_path / "a.zarr", chunks=(2, 2), shards=(4, 4))
    shard = tmp_path / "a.zarr" / "c" / "1" / "1"
    raw = bytearray(shard.read_bytes())
    raw[-10] ^= 0x01
    shard.write_bytes(bytes(raw))
    with pytest.raises(
        lsio.ChunkError, match=r"chunk 'c/1/1': shard index: crc32c checksum mismatch"
    ):
        lsio.open_array(tmp_path / "a.zarr")[...]


def _rewrite_index(shard: Path, n: int, edit: Any) -> None:
    """Change the shard's index (``n`` inner chunks, at the end) and give it a valid checksum."""
    raw = shard.read_bytes()
    index = np.frombuffer(raw[-4 - 16 * n : -4], "<u8").reshape(n, 2).copy()
    edit(index)
    body = index.astype("<u8").tobytes()
    shard.write_bytes(raw[: -4 - 16 * n] + body + struct.pack("<I", crc32c.crc32c(body)))


@pytest.mark.parametrize("size", [2**63, 2**64 - 2])
def test_an_inner_chunk_size_past_int64_is_refused(tmp_path: Path, size: int) -> None:
    # Seen as int64 such a size is negative, which reads as "not stored": the
    # fill value would come back with no error.
    _v3(tmp_path / "a.zarr", chunks=(4, 4), shards=(8, 8), compressors=[zc.ZstdCodec()])
    _rewrite_index(
        tmp_path / "a.zarr" / "c" / "0" / "0", 4, lambda ix: ix.__setitem__((0, 1), size)
    )
    a = lsio.open_array(tmp_path / "a.zarr")
    for read in (
        lambda: a[...],
        lambda: a[::2],
        lambda: a.read_many([(slice(0, 4),)]),
        lambda: lsio.stats(a),
    ):
        with pytest.raises(lsio.ChunkError, match="shard index has an entry whose range overflows"):
            read()


@pytest.mark.parametrize("compressors", [None, [zc.ZstdCodec()]])
def test_chunks_decoded_as_one_run_are_each_checked(
    tmp_path: Path, compressors: list[Any] | None
) -> None:
    # Two neighbouring inner chunks of 158 and 162 bytes where 160 are due: the
    # run they are decoded in by one call has the right total, the chunks not.
    path = tmp_path / "a.zarr"
    z = zarr.create_array(
        str(path),
        shape=(8, 20),
        chunks=(8, 10),
        shards=(8, 20),
        dtype="i2",
        compressors=compressors,
    )
    z[...] = np.arange(160, dtype="i2").reshape(8, 20) + 1
    shard = path / "c" / "0" / "0"
    raw = shard.read_bytes()
    first = np.arange(79, dtype="<i2").tobytes()
    second = np.arange(81, dtype="<i2").tobytes()
    if compressors is not None:
        import numcodecs

        first, second = numcodecs.Zstd().encode(first), numcodecs.Zstd().encode(second)
    body = first + second
    shard.write_bytes(body + raw[len(raw) - 36 :])
    _rewrite_index(
        shard,
        2,
        lambda ix: ix.__setitem__(slice(None), [[0, len(first)], [len(first), len(second)]]),
    )
    a = lsio.open_array(path)
    for sel in [(slice(None), slice(None, None, 2)), (slice(None), slice(None, None, -1))]:
        with pytest.raises(lsio.ChunkError, match=r"chunk 'c/0/0'"):
            a[sel]
    with pytest.raises(lsio.ChunkError, match=r"chunk 'c/0/0'"):
        a.oindex[[0, 7], [1, 15]]


@pytest.mark.parametrize("backend", ["auto", "preadv", "mmap", "io_uring"])
def test_absurd_inner_chunk_length_in_a_valid_index(tmp_path: Path, backend: str) -> None:
    _v3(tmp_path / "a.zarr", chunks=(2, 2), shards=(4, 4), compressors=[zc.ZstdCodec()])
    shard = tmp_path / "a.zarr" / "c" / "0" / "0"
    raw = bytearray(shard.read_bytes())
    index = len(raw) - 4 * 16 - 4  # four (offset, length) pairs, then their crc32c
    raw[index + 24 : index + 32] = (2**62).to_bytes(8, "little")  # inner chunk (0, 1)
    raw[-4:] = crc32c.crc32c(bytes(raw[index:-4])).to_bytes(4, "little")
    shard.write_bytes(bytes(raw))
    a = lsio.open_array(
        tmp_path / "a.zarr", config=lsio.ReadConfig(io=lsio.IOConfig(backend=backend))
    )
    # Named, never a 4 EiB allocation.
    with pytest.raises(lsio.ChunkError, match=r"chunk 'c/0/0'.*inner chunk \(0, 1\) at bytes"):
        a[0:2, 2:4]


def test_inner_chunk_past_end_of_shard(tmp_path: Path) -> None:
    _v3(
        tmp_path / "a.zarr",
        chunks=(2, 2),
        shards={"shape": (4, 4), "index_location": "start"},
        compressors=[zc.ZstdCodec()],
    )
    shard = tmp_path / "a.zarr" / "c" / "0" / "0"
    shard.write_bytes(shard.read_bytes()[:-5])
    with pytest.raises(lsio.ChunkError, match=r"chunk 'c/0/0'.*inner chunk \(1, 1\) at bytes"):
        lsio.open_array(tmp_path / "a.zarr")[...]


def test_out_of_bounds_selection_raises_index_error(tmp_path: Path) -> None:
    _v3(tmp_path / "a.zarr")
    a = lsio.open_array(tmp_path / "a.zarr")
    with pytest.raises(IndexError, match="index 8 is out of bounds for axis 0 with size 8"):
        a[8]
    with pytest.raises(IndexError, match="index -9 is out of bounds for axis 1"):
        a.oindex[:, [0, -9]]
    with pytest.raises(IndexError, match="too many indices"):
        a[0, 0, 0]
    with pytest.raises(lsio.SelectionError, match=r"use a\.oindex"):
        a[[0, 1], [0, 1]]
    with pytest.raises(lsio.SelectionError, match="boolean index of shape"):
        a.oindex[np.ones(3, dtype=bool)]
    with pytest.raises(lsio.SelectionError, match="newaxis"):
        a[None]


def test_bad_out_buffer(tmp_path: Path) -> None:
    _v3(tmp_path / "a.zarr")
    a = lsio.open_array(tmp_path / "a.zarr")
    with pytest.raises(lsio.InvalidArgumentError, match=r"out has shape \(3,\)"):
        a.read(slice(0, 2), out=np.empty(3, dtype="int32"))
    with pytest.raises(lsio.InvalidArgumentError, match="out has dtype float64"):
        a.read(slice(0, 2), out=np.empty((2, 8)))
    ro = np.empty((2, 8), dtype="int32")
    ro.flags.writeable = False
    with pytest.raises(lsio.InvalidArgumentError, match="read-only"):
        a.read(slice(0, 2), out=ro)


def test_open_array_on_group_and_group_on_array(tmp_path: Path) -> None:
    g = zarr.create_group(str(tmp_path / "g.zarr"))
    g.create_array("x", shape=(2,), dtype="i1")
    with pytest.raises(lsio.NodeNotFoundError, match="is a group, not an array"):
        lsio.open_array(tmp_path / "g.zarr")
    with pytest.raises(lsio.NodeNotFoundError, match="is an array, not a group"):
        lsio.open_group(tmp_path / "g.zarr" / "x")
    with pytest.raises(KeyError, match="has no member 'y'"):
        lsio.open_group(tmp_path / "g.zarr")["y"]


def test_bad_url_scheme_and_mode(tmp_path: Path) -> None:
    with pytest.raises(lsio.InvalidArgumentError, match=r"unsupported URL scheme 'ftp'.*s3://"):
        lsio.open("ftp://host/x.zarr")
    with pytest.raises(lsio.InvalidArgumentError, match="mode must be one of r, r\\+, a, w, w-"):
        lsio.open(tmp_path, mode="x")
    with pytest.raises(lsio.InvalidArgumentError, match="mode 'w' creates an array: pass shape"):
        lsio.open(tmp_path, mode="w")
    with pytest.raises(lsio.InvalidArgumentError, match="are for creating one"):
        lsio.open(tmp_path, mode="r", shape=(3,))


def test_shape_beyond_int64_and_selections_that_are_not_a_sequence(tmp_path: Path) -> None:
    _v3(tmp_path / "a.zarr")
    a = lsio.open_array(tmp_path / "a.zarr")
    with pytest.raises(lsio.InvalidArgumentError, match="sequence of selections, got NoneType"):
        a.read_many(None)  # type: ignore[arg-type]
    _edit_json(tmp_path / "a.zarr" / "zarr.json", lambda m: m.update(shape=[2**70, 8]))
    with pytest.raises(lsio.MetadataError, match=r"field 'shape'.*2\*\*62 elements or more"):
        lsio.open_array(tmp_path / "a.zarr")
    with pytest.raises(lsio.InvalidArgumentError, match=r"2\*\*62 elements or more"):
        lsio.create(tmp_path / "b.zarr", shape=(2**40, 2**40), dtype="u1", chunks=(1, 1))
