"""Writing: stores lsio writes read back identically in zarr-python and lsio; errors; crash safety."""

from __future__ import annotations

import gzip
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import textwrap
import time
from pathlib import Path
from typing import Any

import numcodecs
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import lsio
import zarr
from tests.strategies import basic_selections, chunkings, fill_values, shapes, values

_WRITABLE = [
    "bool",
    "int8",
    "uint16",
    "int32",
    "int64",
    "uint64",
    "float32",
    "float64",
    "complex64",
]


@st.composite
def write_cases(draw: st.DrawFn) -> dict[str, Any]:
    fmt = draw(st.sampled_from([2, 3]))
    shape = draw(shapes(max_ndim=3, max_side=9))
    chunks = draw(chunkings(shape))
    dtype = np.dtype(draw(st.sampled_from(_WRITABLE)))
    shards = None
    if fmt == 3 and draw(st.booleans()):
        shards = tuple(c * draw(st.integers(1, 3)) for c in chunks)
    writes = []
    for _ in range(draw(st.integers(1, 3))):
        sel = draw(basic_selections(shape))
        expected_shape = np.empty(shape)[sel].shape
        if draw(st.booleans()):
            v: Any = values(draw, expected_shape, dtype, nan=False)
        else:  # a scalar, broadcast
            v = values(draw, (), dtype, nan=False)[()]
        writes.append((sel, v))
    return {
        "zarr_format": fmt,
        "shape": shape,
        "chunks": chunks,
        "shards": shards,
        "dtype": dtype,
        "fill": draw(fill_values(dtype)) if dtype.kind != "c" else 0,
        "compressor": draw(st.sampled_from(["zstd", "blosc", "blosc-lz4", "gzip", None])),
        "writes": writes,
        "threads": draw(st.sampled_from([1, 3])),
    }


@settings(deadline=None)
@given(case=write_cases())
def test_writes_read_back_identically(case: dict[str, Any]) -> None:
    dtype = case["dtype"]
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "a.zarr"
        a = lsio.create(
            path,
            shape=case["shape"],
            dtype=dtype,
            chunks=case["chunks"],
            shards=case["shards"],
            fill_value=case["fill"],
            compressor=case["compressor"],
            zarr_format=case["zarr_format"],
            config=lsio.ReadConfig(threads=case["threads"]),
        )
        model = np.full(case["shape"], case["fill"], dtype=dtype)
        for sel, v in case["writes"]:
            a[sel] = v
            model[sel] = v
        z = zarr.open_array(str(path), mode="r")
        np.testing.assert_array_equal(z[...], model)
        np.testing.assert_array_equal(lsio.open_array(path)[...], model)
        assert z.dtype == dtype
        if case["shards"] is None and model.size:
            # Chunks holding only the fill value are not stored.
            grid = tuple(-(-n // c) for n, c in zip(case["shape"], case["chunks"], strict=True))
            for coords in np.ndindex(*grid):
                region = tuple(
                    slice(i * c, (i + 1) * c) for i, c in zip(coords, case["chunks"], strict=True)
                )
                block = model[region]
                stored = a.context.store.size(a.chunk_key(coords)) is not None
                fill = np.full_like(block, case["fill"])
                assert stored != np.array_equal(block, fill, equal_nan=dtype.kind in "fc")


def test_modes_groups_and_attributes(tmp_path: Path) -> None:
    g = lsio.create_group(tmp_path / "g.zarr", attrs={"title": "demo"})
    sat = g.create_array("sat", shape=(4, 6), dtype="i2", chunks=(2, 3), dims=("t", "x"))
    sat[...] = np.arange(24).reshape(4, 6)
    sub = g.create_group("nwp")
    sub.create_array("t2m", shape=(3,), dtype="f4", chunks=(3,), fill_value=np.nan)
    z = zarr.open_group(str(tmp_path / "g.zarr"), mode="r")
    assert z.attrs["title"] == "demo"
    np.testing.assert_array_equal(z["sat"][...], np.arange(24).reshape(4, 6))
    assert np.isnan(z["nwp/t2m"][...]).all()
    again = lsio.open_array(tmp_path / "g.zarr" / "sat", mode="r+")
    again[0] = -1
    assert zarr.open_array(str(tmp_path / "g.zarr" / "sat"), mode="r")[0].tolist() == [-1] * 6
    w = lsio.open(tmp_path / "w.zarr", mode="w", shape=(5,), dtype="u1", chunks=(2,))
    assert isinstance(w, lsio.Array)
    with pytest.raises(lsio.NodeExistsError):
        lsio.open(tmp_path / "w.zarr", mode="w-", shape=(5,), dtype="u1", chunks=(2,))
    appended = lsio.open(tmp_path / "w.zarr", mode="a", shape=(9,), dtype="u1", chunks=(2,))
    assert appended.shape == (5,)  # "a" opens what exists


def _snapshot(path: Path) -> dict[str, bytes]:
    return {
        str(p.relative_to(path)): p.read_bytes() for p in sorted(path.rglob("*")) if p.is_file()
    }


def test_member_names_stay_inside_their_group(tmp_path: Path) -> None:
    other = lsio.create(tmp_path / "other.zarr", shape=(2,), dtype="i4", chunks=(2,))
    other[...] = [42, 43]
    g = lsio.create_group(tmp_path / "g.zarr")
    g.create_group("sub")
    for name in ["../other.zarr", "sub/../../other.zarr", "./sub", "sub//x", "."]:
        with pytest.raises(lsio.InvalidArgumentError, match=r"none of them empty, '\.' or '\.\.'"):
            g[name]
        assert name not in g
        with pytest.raises(lsio.InvalidArgumentError, match="none of them empty"):
            g.create_array(name, shape=(2,), dtype="i4", chunks=(2,))
        with pytest.raises(lsio.InvalidArgumentError, match="none of them empty"):
            g.create_group(name)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["g.zarr", "other.zarr"]
    assert isinstance(g["/sub/"], lsio.Group)  # outer slashes are not parts


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"chunks": (2,)}, "chunks \\(2,\\) has 1 dimensions, the array has 2"),
        ({"chunks": (0, 2)}, "must be positive"),
        ({"shards": (3, 4)}, "must be multiples of chunks"),
        ({"dtype": "U3"}, "not supported"),
        ({"fill_value": 300, "dtype": "u1"}, "fill_value 300 is not a value of dtype uint8"),
        ({"fill_value": np.int8(-1), "dtype": "u1"}, r"fill_value np.int8\(-1\) is not a value"),
        ({"compressor": "snappy"}, "unknown compressor 'snappy'"),
        ({"zarr_format": 2, "dims": ("y", None)}, "needs a string for every dimension"),
        ({"compressor": "zstd:99"}, r"zstd level must be in -131072..22, got 99"),
        ({"compressor": "gzip:10"}, r"gzip level must be in 0..9"),
        ({"compressor": "blosc:42"}, r"blosc level must be in 0..9"),
        ({"compressor": "blosc-lz4:10"}, r"blosc-lz4 level must be in 0..9"),
        ({"dims": ("x",)}, "must name all 2 dimensions"),
        ({"dims": (1, 2)}, r"dims \(1, 2\) must be names \(str\) or None"),
        ({"compressor": 3}, "compressor must be a str such as 'zstd:3' or None, got int"),
        ({"shape": (8.5, 8)}, "shape must be a sequence of ints, got"),
        ({"attrs": {"x": object()}}, "JSON-serialisable"),
        ({"zarr_format": 2, "shards": (4, 4)}, "shards need zarr_format=3"),
    ],
)
def test_bad_create_arguments_leave_nothing(
    tmp_path: Path, kwargs: dict[str, Any], message: str
) -> None:
    args: dict[str, Any] = {"shape": (8, 8), "dtype": "i2", "chunks": (2, 2), **kwargs}
    with pytest.raises(lsio.InvalidArgumentError, match=message):
        lsio.create(tmp_path / "a.zarr", **args)
    assert not (tmp_path / "a.zarr").exists()  # not even an empty directory


def test_bad_writes_leave_the_store_as_it_was(tmp_path: Path) -> None:
    path = tmp_path / "a.zarr"
    a = lsio.create(path, shape=(6, 6), dtype="u1", chunks=(3, 3))
    a[...] = 5
    before = _snapshot(path)
    with pytest.raises(lsio.InvalidArgumentError, match="do not fit the selection's shape"):
        a[0:2, 0:2] = np.zeros((3, 3))
    with pytest.raises(lsio.InvalidArgumentError, match="cannot be stored exactly as uint8"):
        a[...] = 300
    with pytest.raises(lsio.InvalidArgumentError, match="cannot be stored exactly as uint8"):
        a[0] = 1.5
    with pytest.raises(lsio.InvalidArgumentError, match="cannot be written"):
        a[0] = "x"
    with pytest.raises(lsio.SelectionError):
        a[7] = 1
    with pytest.raises(lsio.ReadOnlyError):
        lsio.open_array(path)[0] = 1
    with pytest.raises(lsio.NodeExistsError, match="overwrite=True"):
        lsio.create(path, shape=(2,), dtype="u1", chunks=(1,))
    assert _snapshot(path) == before
    with pytest.raises(lsio.WriteError, match="Not a directory"):
        lsio.create(path / "zarr.json" / "x.zarr", shape=(2,), dtype="u1", chunks=(1,))
    assert _snapshot(path) == before
    replaced = lsio.create(path, shape=(2,), dtype="u1", chunks=(1,), overwrite=True)
    assert replaced.shape == (2,)
    assert zarr.open_array(str(path), mode="r").shape == (2,)


def test_resize_takes_an_int_for_one_dimension(tmp_path: Path) -> None:
    a = lsio.create(tmp_path / "a.zarr", shape=(10,), dtype="i2", chunks=(4,), fill_value=-1)
    a[...] = np.arange(10)
    a.resize(8)
    a.resize(np.int64(9))
    want = np.append(np.arange(8), -1)
    np.testing.assert_array_equal(zarr.open_array(str(tmp_path / "a.zarr"), mode="r")[...], want)


def test_partial_writes_read_each_shard_as_stored_now(tmp_path: Path) -> None:
    path = tmp_path / "a.zarr"
    a = lsio.create(path, shape=(4, 4), dtype="i4", chunks=(2, 2), shards=(4, 4), compressor=None)
    a[...] = np.arange(16).reshape(4, 4)
    first = lsio.open_array(path, mode="r+")
    np.testing.assert_array_equal(first[0], [0, 1, 2, 3])  # its shard index is cached now
    lsio.open_array(path, mode="r+")[0:2, 0:2] = 0  # another handle: an inner chunk goes
    first[3, 3] = 99  # updates the shard as it is now, not as first saw it
    want = np.arange(16).reshape(4, 4)
    want[0:2, 0:2] = 0
    want[3, 3] = 99
    np.testing.assert_array_equal(zarr.open_array(str(path), mode="r")[...], want)


def test_a_failed_write_forgets_the_shards_it_rewrote(tmp_path: Path) -> None:
    path = tmp_path / "a.zarr"
    a = lsio.create(path, shape=(8, 8), dtype="i4", chunks=(2, 2), shards=(4, 4), compressor=None)
    a[...] = np.arange(64).reshape(8, 8)
    a = lsio.open_array(path, mode="r+")
    a[0:4, 0:4]  # caches the first shard's index
    row = path / "c" / "1"
    shutil.rmtree(row)
    row.write_bytes(b"")  # a file where shards (1, 0) and (1, 1) go: their writes fail
    new = np.zeros((8, 8), dtype="i4")
    new[0, 0] = 5  # the first shard keeps one inner chunk of four: its layout changes
    with pytest.raises(lsio.WriteError, match="c/1/"):
        a[...] = new
    want = np.zeros((4, 4), dtype="i4")
    want[0, 0] = 5
    np.testing.assert_array_equal(a[0:4, 0:4], want)  # read by its new index
    row.unlink()
    a[3, 3] = 99  # and updated by it
    want[3, 3] = 99
    np.testing.assert_array_equal(zarr.open_array(str(path), mode="r")[0:4, 0:4], want)


@pytest.mark.parametrize(
    ("dtype", "values", "bad"),
    [
        ("u1", np.array([-1, -2, 0, 1], dtype="i1"), "-2"),  # same width, other signedness
        ("u8", -1, "-1"),
        ("i8", 2**63, "9223372036854775808"),
        ("i2", np.array([40000, 1], dtype="u2"), "40000"),
        ("b1", np.array([0, 2]), "2"),
    ],
)
def test_integers_out_of_range_are_refused_not_wrapped(
    tmp_path: Path, dtype: str, values: Any, bad: str
) -> None:
    a = lsio.create(tmp_path / "a.zarr", shape=(4,), dtype=dtype, chunks=(4,))
    with pytest.raises(lsio.InvalidArgumentError, match=f"value {bad} cannot be stored exactly"):
        a[...] = values
    assert set(_snapshot(tmp_path / "a.zarr")) == {"zarr.json"}  # no chunk written
    a[...] = np.array([0, 1, 1, 0], dtype="i8")  # in range: written, whatever the source type
    np.testing.assert_array_equal(zarr.open_array(str(tmp_path / "a.zarr"))[...], [0, 1, 1, 0])


_WRITER = textwrap.dedent(
    """
    import sys, numpy as np, lsio
    a = lsio.open_array(sys.argv[1], mode="r+")
    print("ready", flush=True)
    v = 2
    while True:
        a[...] = v  # every shard replaced, over and over
        v = 5 - v   # 2, 3, 2, 3, ...
    """
)


@pytest.mark.parametrize("shards", [(2, 32, 32), None])
def test_a_killed_writer_leaves_whole_objects(
    tmp_path: Path, shards: tuple[int, ...] | None
) -> None:
    path = tmp_path / "a.zarr"
    a = lsio.create(path, shape=(8, 64, 64), dtype="i4", chunks=(1, 16, 16), shards=shards)
    unit = shards or (1, 16, 16)
    a[...] = 1
    proc = subprocess.Popen(
        [sys.executable, "-c", _WRITER, str(path)], stdout=subprocess.PIPE, text=True
    )
    assert proc.stdout is not None
    assert proc.stdout.readline().strip() == "ready"
    time.sleep(1.0)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    proc.stdout.close()
    data = zarr.open_array(str(path), mode="r")[...]  # every shard decodes (none torn)
    for t in range(0, 8, unit[0]):
        for y in range(0, 64, unit[1]):
            for x in range(0, 64, unit[2]):
                obj = data[t : t + unit[0], y : y + unit[1], x : x + unit[2]]
                assert len(np.unique(obj)) == 1, "an object mixes old and new values"
                assert obj.flat[0] in (1, 2, 3)
    np.testing.assert_array_equal(lsio.open_array(path)[...], data)


@pytest.mark.parametrize("fmt", [2, 3])
def test_attrs_write_through_and_resize(tmp_path: Path, fmt: int) -> None:
    path = tmp_path / "a.zarr"
    shards = (4, 4) if fmt == 3 else None
    a = lsio.create(
        path,
        shape=(6, 7),
        dtype="i4",
        chunks=(2, 2),
        shards=shards,
        fill_value=-1,
        dims=("y", "x"),
        attrs={"a": 1},
        zarr_format=fmt,
    )
    a[...] = np.arange(42).reshape(6, 7)
    a.attrs["b"] = [1, 2]
    a.attrs.update({"c": "x"}, d=None)
    del a.attrs["a"]
    z = zarr.open_array(str(path), mode="r")
    assert {k: v for k, v in z.attrs.items() if k != "_ARRAY_DIMENSIONS"} == {
        "b": [1, 2],
        "c": "x",
        "d": None,
    }
    assert lsio.open_array(path).dims == ("y", "x")
    a.resize((4, 5))
    a.resize((6, 9))  # growing shows the fill value where data was cut, not old data
    want = np.full((6, 9), -1, dtype="i4")
    want[:4, :5] = np.arange(42).reshape(6, 7)[:4, :5]
    np.testing.assert_array_equal(zarr.open_array(str(path), mode="r")[...], want)
    np.testing.assert_array_equal(lsio.open_array(path)[...], want)
    with pytest.raises(lsio.ReadOnlyError):
        lsio.open_array(path).attrs["e"] = 1
    with pytest.raises(lsio.ReadOnlyError):
        lsio.open_array(path).resize((1, 1))
    with pytest.raises(lsio.InvalidArgumentError, match=r"new shape \(3,\) has 1 dimensions"):
        a.resize((3,))
    for bad in [(9.99, 9), (True, 9), ("6", 9)]:  # never cut to an int, nor cut data
        with pytest.raises(lsio.InvalidArgumentError, match="new shape must be a sequence of ints"):
            a.resize(bad)
    assert a.shape == (6, 9)
    with pytest.raises(lsio.InvalidArgumentError, match="JSON-serialisable"):
        a.attrs["f"] = object()


@settings(deadline=None, max_examples=30)
@given(case=write_cases())
def test_write_many_equals_writes_in_order(case: dict[str, Any]) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "a.zarr"
        a = lsio.create(
            path,
            shape=case["shape"],
            dtype=case["dtype"],
            chunks=case["chunks"],
            shards=case["shards"],
            fill_value=case["fill"],
            zarr_format=case["zarr_format"],
        )
        a[...] = case["fill"]
        model = np.full(case["shape"], case["fill"], dtype=case["dtype"])
        for sel, v in case["writes"]:
            model[sel] = v
        a.write_many([s for s, _ in case["writes"]], [v for _, v in case["writes"]])
        np.testing.assert_array_equal(zarr.open_array(str(path), mode="r")[...], model)


def test_write_many_writes_each_object_once(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    a = lsio.create(tmp_path / "a.zarr", shape=(8, 8), dtype="i2", chunks=(4, 4), shards=(8, 8))
    puts: list[str] = []
    store = a.context.store
    original = type(store).put
    monkeypatch.setattr(
        type(store), "put", lambda self, k, d: (puts.append(k), original(self, k, d))
    )
    crops = [(slice(r, r + 2), slice(c, c + 2)) for r in range(0, 8, 2) for c in range(0, 8, 2)]
    a.write_many(crops, np.arange(16 * 4, dtype="i2").reshape(16, 2, 2))
    assert puts == ["c/0/0"]  # sixteen crops of one shard: one write
    with pytest.raises(lsio.InvalidArgumentError, match="2 selections but 1 values"):
        a.write_many(crops[:2], [1])


def test_runs_of_whole_chunks_go_through_one_batched_put(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "a.zarr"
    # 70 = 17 whole chunks of 4 and an edge of 2 along x: runs are cut at 16.
    a = lsio.create(path, shape=(3, 16, 70), dtype="i2", chunks=(1, 8, 4), fill_value=5)
    a[0:1] = 9  # chunks that later hold only the fill value must go away
    store = a.context.store
    batched: list[str] = []
    original = type(store).put_many
    monkeypatch.setattr(
        type(store),
        "put_many",
        lambda self, keys, data, offsets: (
            batched.extend(keys),
            original(self, keys, data, offsets),
        ),
    )
    rng = np.random.default_rng(1)
    first = rng.integers(-100, 100, size=(3, 16, 70)).astype("i2")
    first[0, :8, 8:24] = 5  # four whole fill-value chunks inside a run
    second = rng.integers(-100, 100, size=(1, 8, 32)).astype("i2")
    a.write_many([(slice(None),), (slice(2, 3), slice(8, 16), slice(4, 36))], [first, second])
    want = first.copy()
    want[2:3, 8:16, 4:36] = second
    np.testing.assert_array_equal(zarr.open_array(str(path), mode="r")[...], want)
    np.testing.assert_array_equal(lsio.open_array(path)[...], want)
    assert "c/0/0/2" not in batched  # only the fill value: deleted
    assert not (path / "c/0/0/2").exists()
    assert "c/2/1/3" in batched
    assert "c/0/0/1" in batched
    assert not any(k.endswith("/17") for k in batched)  # edge chunks go one by one
    assert not [p for p in path.rglob("*") if "lsio-tmp" in p.name]


@pytest.mark.parametrize("dtype", ["<i2", "<f4", "<u8", "|u1"])
@pytest.mark.parametrize("compressor", ["blosc", "blosc-lz4:5", "gzip:5", "zstd:3"])
def test_v2_chunks_are_byte_for_byte_zarr_pythons(
    tmp_path: Path, dtype: str, compressor: str
) -> None:
    # zarr-python hands a v2 compressor the chunk as an array, so blosc shuffles
    # by the item size; lsio must do the same (by bytes, shuffling does nothing).
    x = (np.random.default_rng(0).normal(0, 9, (64, 64)) % 100).astype(dtype)
    a = lsio.create(
        tmp_path / "l.zarr",
        shape=x.shape,
        dtype=dtype,
        chunks=(64, 64),
        compressor=compressor,
        zarr_format=2,
    )
    a[...] = x
    meta = a.metadata.codecs_json[-1]
    z = zarr.create_array(
        str(tmp_path / "z.zarr"),
        shape=x.shape,
        dtype=dtype,
        chunks=(64, 64),
        compressors=numcodecs.get_codec(dict(meta)),
        zarr_format=2,
    )
    z[...] = x
    ours, theirs = (
        (tmp_path / "l.zarr" / "0.0").read_bytes(),
        (tmp_path / "z.zarr" / "0.0").read_bytes(),
    )
    if compressor.startswith("gzip"):  # another deflate implementation: same data, other bytes
        assert gzip.decompress(ours) == gzip.decompress(theirs)
    else:
        assert ours == theirs
    np.testing.assert_array_equal(zarr.open_array(str(tmp_path / "l.zarr"))[...], x)
