"""Metadata forms: fill values, key encodings, nested sharding, index codecs, groups."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import zarr.codecs as zc

import lsio
import zarr


def _empty_v3(path: Path, dtype: str, fill_json: Any) -> lsio.Array:
    zarr.create_array(str(path), shape=(3, 2), chunks=(2, 2), dtype=dtype, fill_value=0)
    meta = json.loads((path / "zarr.json").read_text())
    meta["fill_value"] = fill_json
    (path / "zarr.json").write_text(json.dumps(meta))
    return lsio.open_array(path)


@pytest.mark.parametrize(
    ("dtype", "fill_json", "check"),
    [
        ("float32", "NaN", lambda v: np.isnan(v).all()),
        ("float64", "Infinity", lambda v: (v == np.inf).all()),
        ("float16", "-Infinity", lambda v: (v == -np.inf).all()),
        ("float32", "0x7fc00001", lambda v: (v.view("uint32") == 0x7FC00001).all()),
        ("float64", "0x4000000000000000", lambda v: (v == 2.0).all()),
        ("float32", 1.5, lambda v: (v == 1.5).all()),
        ("int16", -7, lambda v: (v == -7).all()),
        ("uint64", 2**64 - 1, lambda v: (v == np.uint64(2**64 - 1)).all()),
        ("bool", True, lambda v: v.all()),
        ("complex64", [1.0, "NaN"], lambda v: (v.real == 1).all() and np.isnan(v.imag).all()),
        (
            "complex128",
            ["Infinity", "0x0000000000000000"],
            lambda v: (v == complex(np.inf, 0)).all(),
        ),
    ],
)
def test_v3_fill_value_forms(tmp_path: Path, dtype: str, fill_json: Any, check: Any) -> None:
    a = _empty_v3(tmp_path / "a.zarr", dtype, fill_json)
    values = a[...]
    assert values.dtype == np.dtype(dtype)
    assert check(values)
    assert check(np.asarray(a.fill_value))


def test_dimension_names_must_be_strings_or_null(tmp_path: Path) -> None:
    path = tmp_path / "a.zarr"
    zarr.create_array(str(path), shape=(3, 2), chunks=(2, 2), dtype="i2", fill_value=0)
    meta = json.loads((path / "zarr.json").read_text())
    meta["dimension_names"] = ["y", None]
    (path / "zarr.json").write_text(json.dumps(meta))
    assert lsio.open_array(path).dims == ("y", None)
    meta["dimension_names"] = [1, 2]  # zarr-python refuses these too
    (path / "zarr.json").write_text(json.dumps(meta))
    with pytest.raises(lsio.MetadataError, match="field 'dimension_names'"):
        lsio.open_array(path)


def test_invalid_fill_value_names_field(tmp_path: Path) -> None:
    with pytest.raises(lsio.MetadataError, match="field 'fill_value'"):
        _empty_v3(tmp_path / "a.zarr", "int8", 300)
    with pytest.raises(lsio.MetadataError, match="field 'fill_value'"):
        _empty_v3(tmp_path / "b.zarr", "float32", "nan-ish")


@pytest.mark.parametrize(
    ("encoding", "key"),
    [
        ({"name": "default", "separator": "/"}, "c/1/0"),
        ({"name": "default", "separator": "."}, "c.1.0"),
        ({"name": "v2", "separator": "."}, "1.0"),
        ({"name": "v2", "separator": "/"}, "1/0"),
    ],
)
def test_chunk_key_encodings(tmp_path: Path, encoding: dict[str, str], key: str) -> None:
    z = zarr.create_array(
        str(tmp_path / "a.zarr"),
        shape=(4, 2),
        chunks=(2, 2),
        dtype="u1",
        chunk_key_encoding=encoding,
    )
    z[...] = np.arange(8).reshape(4, 2)
    assert (tmp_path / "a.zarr" / key).is_file()
    np.testing.assert_array_equal(
        lsio.open_array(tmp_path / "a.zarr")[...], np.arange(8).reshape(4, 2)
    )


@pytest.mark.parametrize("outer_compressor", [False, True])
def test_nested_sharding(tmp_path: Path, outer_compressor: bool) -> None:
    data = np.arange(16 * 12, dtype="int32").reshape(16, 12)
    data[8:, 6:] = -1
    z = zarr.create_array(
        str(tmp_path / "a.zarr"),
        shape=data.shape,
        chunks=(8, 6),
        dtype="int32",
        fill_value=-1,
        compressors=[zc.ZstdCodec()] if outer_compressor else [],
        serializer=zc.ShardingCodec(
            chunk_shape=(4, 6),
            codecs=[zc.ShardingCodec(chunk_shape=(2, 3), codecs=[zc.BytesCodec(), zc.ZstdCodec()])],
        ),
    )
    z[...] = data
    a = lsio.open_array(tmp_path / "a.zarr")
    assert a.chunks == (4, 6)
    assert a.shards == (8, 6)
    # A compressor around the shards means whole shards are read; otherwise inner chunks.
    assert (a.metadata.sharding is None) == outer_compressor
    outer = ["sharding_indexed", "zstd"] if outer_compressor else ["sharding_indexed"]
    assert a.codecs == [*outer, "sharding_indexed", "bytes", "zstd"]
    np.testing.assert_array_equal(a[...], data)
    np.testing.assert_array_equal(a[3:13:2, ::-5], data[3:13:2, ::-5])
    np.testing.assert_array_equal(a.vindex[[0, 15, 9], [11, 0, 7]], data[[0, 15, 9], [11, 0, 7]])


@pytest.mark.parametrize("location", ["start", "end"])
def test_index_codecs_without_checksum_and_big_endian(tmp_path: Path, location: str) -> None:
    data = np.arange(64, dtype="float64").reshape(8, 8)
    z = zarr.create_array(
        str(tmp_path / "a.zarr"),
        shape=data.shape,
        chunks=(4, 8),
        dtype="float64",
        serializer=zc.ShardingCodec(
            chunk_shape=(2, 4),
            codecs=[zc.BytesCodec(endian="big"), zc.GzipCodec()],
            index_codecs=[zc.BytesCodec(endian="big")],
            index_location=location,
        ),
    )
    z[...] = data
    a = lsio.open_array(tmp_path / "a.zarr")
    np.testing.assert_array_equal(a[...], data)
    np.testing.assert_array_equal(a[1:7, 3:6], data[1:7, 3:6])


def _make_tree(root: Path, zarr_format: int) -> None:
    g = zarr.create_group(str(root), zarr_format=zarr_format, attributes={"title": "t"})
    x = g.create_array(
        "x",
        shape=(4,),
        chunks=(2,),
        dtype="i2",
        dimension_names=["t"] if zarr_format == 3 else None,
    )
    x[...] = np.arange(4)
    sub = g.create_group("sub", attributes={"level": 1})
    y = sub.create_array("y", shape=(2, 2), chunks=(1, 2), dtype="f4", fill_value=0.5)
    y[0] = 3


@pytest.mark.parametrize("zarr_format", [2, 3])
@pytest.mark.parametrize("consolidated", [False, True])
def test_group_hierarchy(tmp_path: Path, zarr_format: int, consolidated: bool) -> None:
    root = tmp_path / "g.zarr"
    _make_tree(root, zarr_format)
    if consolidated:
        zarr.consolidate_metadata(str(root), zarr_format=zarr_format)
        if zarr_format == 2:
            assert (root / ".zmetadata").is_file()
    g = lsio.open_group(root)
    assert isinstance(lsio.open(root), lsio.Group)
    assert g.zarr_format == zarr_format
    assert (g.metadata.consolidated is not None) == consolidated
    assert g.attrs == {"title": "t"}
    assert list(g) == ["sub", "x"]
    assert len(g) == 2
    assert "x" in g
    assert "nope" not in g
    assert [n for n, _ in g.arrays()] == ["x"]
    assert [n for n, _ in g.groups()] == ["sub"]
    x = g["x"]
    assert isinstance(x, lsio.Array)
    np.testing.assert_array_equal(x[...], np.arange(4))
    sub = g["sub"]
    assert isinstance(sub, lsio.Group)
    assert sub.attrs == {"level": 1}
    assert list(sub) == ["y"]  # also from the root's consolidated entries
    assert [n for n, _ in g["sub"].arrays()] == ["y"]
    np.testing.assert_array_equal(sub["y"][...], [[3, 3], [0.5, 0.5]])
    y = g["sub/y"]
    assert isinstance(y, lsio.Array)
    assert y.path == "sub/y"
    np.testing.assert_array_equal(y[...], [[3, 3], [0.5, 0.5]])
    np.testing.assert_array_equal(lsio.open_array(root / "sub" / "y")[...], y[...])


def test_v2_array_dimensions_and_file_url(tmp_path: Path) -> None:
    z = zarr.create_array(
        str(tmp_path / "a.zarr"),
        shape=(3,),
        chunks=(2,),
        dtype="<u4",
        zarr_format=2,
        attributes={"_ARRAY_DIMENSIONS": ["time"]},
    )
    z[...] = [1, 2, 3]
    a = lsio.open((tmp_path / "a.zarr").as_uri())
    assert isinstance(a, lsio.Array)
    assert a.dims == ("time",)
    assert a.nbytes == 12
    assert a.size == 3
    assert a.ndim == 1
    assert len(a) == 3
    np.testing.assert_array_equal(np.asarray(a), [1, 2, 3])


def test_array_description(tmp_path: Path) -> None:
    zarr.create_array(
        str(tmp_path / "a.zarr"),
        shape=(10, 20),
        chunks=(5, 5),
        shards=(10, 10),
        dtype="int16",
        fill_value=-1,
        dimension_names=["y", "x"],
        attributes={"units": "K"},
    )
    a = lsio.open_array(tmp_path / "a.zarr")
    assert (a.shape, a.chunks, a.shards, a.dims) == ((10, 20), (5, 5), (10, 10), ("y", "x"))
    assert a.dtype == np.dtype("int16")
    assert a.fill_value == -1
    assert a.zarr_format == 3
    assert a.attrs == {"units": "K"}
    assert a.nbytes == 400
    assert a.codecs == ["sharding_indexed", "bytes", "zstd"]
    np.testing.assert_array_equal(a[...], np.full((10, 20), -1, dtype="int16"))
    assert "lsio.Array" in repr(a)


def test_out_buffers_of_any_layout(tmp_path: Path) -> None:
    data = np.arange(8 * 9, dtype="u2").reshape(8, 9)
    z = zarr.create_array(str(tmp_path / "a.zarr"), shape=data.shape, chunks=(3, 4), dtype="u2")
    z[...] = data
    a = lsio.open_array(tmp_path / "a.zarr")
    rows, cols = np.array([[0, 7], [3, 5]]), np.array([[8, 0], [4, 4]])
    out = np.zeros((2, 2, 2), dtype="u2")[:, :, 0]  # strided
    assert a.vindex.read((rows, cols), out=out) is out
    np.testing.assert_array_equal(out, data[rows, cols])
    fortran = np.zeros((3, 9), dtype="u2", order="F")
    a.oindex.read(([1, 2, 6], slice(None)), out=fortran)
    np.testing.assert_array_equal(fortran, data[[1, 2, 6]])
    big = np.zeros((10, 10), dtype="u2")
    a.read((slice(0, 8), slice(0, 9)), out=big[1:9, 1:10])
    np.testing.assert_array_equal(big[1:9, 1:10], data)
    assert not big[0].any()


def test_v2_string_dtype_is_not_supported_yet(tmp_path: Path) -> None:
    (tmp_path / "s.zarr").mkdir()
    meta = {
        "zarr_format": 2,
        "shape": [2],
        "chunks": [2],
        "dtype": "|S5",
        "compressor": None,
        "fill_value": None,
        "order": "C",
        "filters": None,
    }
    (tmp_path / "s.zarr" / ".zarray").write_text(json.dumps(meta))
    with pytest.raises(lsio.UnsupportedError, match=r"dtype '\|S5' is not supported yet"):
        lsio.open(tmp_path / "s.zarr")


def test_array_in_a_memory_store(tmp_path: Path) -> None:
    """Read-only buffers (bytes) from a store go through the same decoders."""
    data = np.arange(12 * 10, dtype="float32").reshape(12, 10)
    z = zarr.create_array(
        str(tmp_path / "a.zarr"), shape=data.shape, chunks=(4, 5), shards=(8, 10), dtype="f4"
    )
    z[...] = data
    root = tmp_path / "a.zarr"
    objects = {str(p.relative_to(root)): p.read_bytes() for p in root.rglob("*") if p.is_file()}
    a = lsio.open_array(lsio.MemoryStore(objects))
    np.testing.assert_array_equal(a[...], data)
    np.testing.assert_array_equal(a[3:11, 2:9], data[3:11, 2:9])
