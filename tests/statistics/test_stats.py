"""lsio.stats against exact and NumPy oracles on stores written by zarr-python."""

from __future__ import annotations

import math
import tempfile
from fractions import Fraction
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import lsio
import zarr
from tests.zarr.zarr_stores import store_specs, write_store


def _region(draw: st.DrawFn, shape: tuple[int, ...]) -> tuple[Any, ...]:
    out: list[Any] = []
    for n in shape:
        if n == 0:
            out.append(slice(None))
            continue
        kind = draw(st.sampled_from(["all", "slice", "int"]))
        if kind == "int":
            out.append(draw(st.integers(-n, n - 1)))
        elif kind == "slice":
            a = draw(st.integers(0, n - 1))
            out.append(slice(a, draw(st.integers(a + 1, n))))
        else:
            out.append(slice(None))
    return tuple(out)


def _as_region(sel: tuple[Any, ...]) -> tuple[Any, ...]:
    """The oracle's view of a stats selection: an int keeps its dimension."""
    return tuple(slice(s, s + 1 if s != -1 else None) if isinstance(s, int) else s for s in sel)


def _oracle(x: np.ndarray, axis: tuple[int, ...]) -> dict[str, Any]:
    kept = [d for d in range(x.ndim) if d not in axis]
    rows = np.moveaxis(x, kept, range(len(kept))).reshape(math.prod(x.shape[d] for d in kept), -1)
    out: dict[str, list[Any]] = {
        k: [] for k in ("count", "nan_count", "sum", "mean", "var", "min", "max")
    }
    for r in rows:
        if x.dtype.kind == "f":
            nan = np.isnan(r)
            v = r[~nan].astype(np.float64)
            out["nan_count"].append(int(nan.sum()))
            out["count"].append(v.size)
            out["sum"].append(v.sum())
            out["mean"].append(v.mean() if v.size else np.nan)
            with np.errstate(invalid="ignore"):
                out["var"].append(v.var() if v.size else np.nan)
            out["min"].append(v.min() if v.size else np.nan)
            out["max"].append(v.max() if v.size else np.nan)
        else:
            ints = [int(v) for v in r]
            n, s = len(ints), sum(ints)
            out["nan_count"].append(0)
            out["count"].append(n)
            out["sum"].append(s)
            out["mean"].append(float(Fraction(s, n)))
            out["var"].append(float(Fraction(sum(v * v for v in ints) * n - s * s, n * n)))
            out["min"].append(min(ints))
            out["max"].append(max(ints))
    shape = tuple(x.shape[d] for d in kept)
    return {
        k: np.array(v, dtype=object if k == "sum" else None).reshape(shape) for k, v in out.items()
    }


@st.composite
def cases(draw: st.DrawFn) -> tuple[Any, tuple[int, ...], tuple[Any, ...]]:
    spec = draw(store_specs())
    ndim = len(spec.shape)
    axis = (
        tuple(sorted(draw(st.sets(st.integers(0, max(0, ndim - 1)), max_size=ndim))))
        if ndim
        else ()
    )
    return spec, axis, _region(draw, spec.shape)


def _check_histogram(s: lsio.Stats, x: np.ndarray, axis: tuple[int, ...], bins: int) -> None:
    """Each kept position's histogram equals np.histogram between its min and max."""
    h = s.histogram()
    kept = [d for d in range(x.ndim) if d not in axis]
    rows = np.moveaxis(x, kept, range(len(kept))).reshape(math.prod(x.shape[d] for d in kept), -1)
    counts = h.counts.reshape(len(rows), bins)
    edges = h.edges.reshape(len(rows), bins + 1)
    for r, v in enumerate(rows):
        # Edges are float64 for every dtype (NumPy would use the data's float type).
        v = v[~np.isnan(v)].astype(np.float64) if v.dtype.kind == "f" else v
        v = v.astype(np.uint8) if v.dtype == bool else v
        if v.size == 0:
            assert counts[r].sum() == 0
            continue
        lo, hi = float(v.min()), float(v.max())
        try:
            want_counts, want_edges = np.histogram(v, bins=bins, range=(lo, hi))
        except ValueError:  # NumPy cannot widen a one-value range of huge magnitude
            assert counts[r].sum() == v.size
            continue
        np.testing.assert_array_equal(edges[r], want_edges)
        np.testing.assert_array_equal(counts[r], want_counts)


@settings(deadline=None)
@given(case=cases(), threads=st.sampled_from([1, 3]), bins=st.sampled_from([None, 1, 4]))
def test_stats_equal_oracle(case: Any, threads: int, bins: int | None) -> None:
    spec, axis, sel = case
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "a.zarr"
        write_store(spec, path)
        a = lsio.open_array(path, config=lsio.ReadConfig(threads=threads))
        region = _as_region(sel)
        if np.dtype(spec.dtype).kind == "c":
            with pytest.raises(lsio.UnsupportedError):
                lsio.stats(a, axis=axis, selection=sel)
            return
        x = np.asarray(zarr.open_array(str(path), mode="r")[region])
        if x.size == 0:
            with pytest.raises(lsio.InvalidArgumentError, match="empty"):
                lsio.stats(a, axis=axis, selection=sel)
            return
        finite = x.dtype.kind != "f" or bool(np.isfinite(x[~np.isnan(x)]).all())
        s = lsio.stats(a, axis=axis, selection=sel, bins=bins if finite else None)
        want = _oracle(x, axis)
    if bins is not None and finite:
        _check_histogram(s, x, axis, bins)
    np.testing.assert_array_equal(s.count, want["count"])
    np.testing.assert_array_equal(s.nan_count, want["nan_count"])
    if x.dtype.kind == "f":
        np.testing.assert_array_equal(s.min, want["min"].astype(x.dtype))
        np.testing.assert_array_equal(s.max, want["max"].astype(x.dtype))
        with np.errstate(invalid="ignore"):
            for name in ("sum", "mean", "var"):
                got, exp = np.asarray(getattr(s, name), float), want[name].astype(float)
                np.testing.assert_allclose(got, exp, rtol=1e-9, atol=1e-9, equal_nan=True)
    else:
        assert [int(v) for v in s.min.reshape(-1)] == list(want["min"].reshape(-1))
        assert [int(v) for v in s.max.reshape(-1)] == list(want["max"].reshape(-1))
        assert [int(v) for v in s.sum.reshape(-1)] == list(want["sum"].reshape(-1))
        np.testing.assert_array_equal(s.mean, want["mean"])
        np.testing.assert_allclose(s.var, want["var"], rtol=1e-12)
        np.testing.assert_allclose(s.std, np.sqrt(want["var"].astype(float)), rtol=1e-12)


@pytest.fixture(scope="module")
def sat(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A small sharded (time, channel, y, x) float32 array with NaNs, a missing shard and coords."""
    root = tmp_path_factory.mktemp("sat") / "s.zarr"
    g = zarr.open_group(str(root), mode="w")
    rng = np.random.default_rng(0)
    data = (rng.standard_normal((6, 3, 20, 24)) * 10 + 5).astype(np.float32)
    data[0, 1, :5, :5] = np.nan
    arr = g.create_array(
        "sat",
        shape=data.shape,
        chunks=(1, 3, 5, 8),
        shards=(2, 3, 10, 8),
        dtype="f4",
        fill_value=-1.0,
        dimension_names=["time", "channel", "y", "x"],
    )
    arr[...] = data
    arr[4:6, :, 10:20, :] = -1.0  # fill value: those chunks are not stored
    for name, n in (("time", 6), ("channel", 3)):
        c = g.create_array(name, shape=(n,), chunks=(n,), dtype="i8", dimension_names=[name])
        c[...] = np.arange(n) * 10
    return root


def test_dims_by_name_coords_and_histogram(sat: Path) -> None:
    a = lsio.open_array(sat / "sat")
    x = zarr.open_array(str(sat / "sat"), mode="r")[...]
    s = lsio.stats(a, dims=("time", "y", "x"), bins=8)
    assert s.dims == ("channel",)
    np.testing.assert_array_equal(s.coords["channel"], [0, 10, 20])
    # Per channel in float64 (np.nanstd over an axis tuple of float32 is less exact).
    per_channel = [v[~np.isnan(v)].astype(np.float64) for v in np.moveaxis(x, 1, 0).reshape(3, -1)]
    np.testing.assert_allclose(s.mean, [v.mean() for v in per_channel], rtol=1e-12)
    np.testing.assert_allclose(s.std, [v.std() for v in per_channel], rtol=1e-12)
    np.testing.assert_array_equal(s.nan_count, np.isnan(x).sum(axis=(0, 2, 3)))
    h = s.histogram()
    for c in range(3):
        v = x[:, c].reshape(-1)
        v = v[~np.isnan(v)]
        counts, edges = np.histogram(v, bins=8, range=(float(v.min()), float(v.max())))
        np.testing.assert_allclose(h.edges[c], edges)
        np.testing.assert_array_equal(h.counts[c], counts)
    fixed = s.histogram(bins=[-50.0, 0.0, 50.0])
    assert fixed.counts.shape == (3, 2)
    v = x[:, 0].reshape(-1)
    np.testing.assert_array_equal(fixed.counts[0], np.histogram(v[~np.isnan(v)], [-50, 0, 50])[0])
    d = s.to_dict()
    assert d["dims"] == ["channel"]
    assert len(d["histogram"]["counts"]) == 3
    ds = s.to_xarray()
    assert float(ds["mean"].sel(channel=10)) == pytest.approx(float(s.mean[1]))


def test_a_histogram_over_a_range_is_not_taken_for_one_over_min_to_max(tmp_path: Path) -> None:
    a = lsio.create(tmp_path / "a.zarr", shape=(100,), dtype="i2", chunks=(10,))
    a[...] = np.arange(100)
    s = lsio.stats(a, bins=4, range=(0, 10))
    np.testing.assert_array_equal(s.histogram().counts, np.histogram(np.arange(100), 4, (0, 10))[0])
    counts, edges = np.histogram(np.arange(100), bins=4)  # between min and max
    np.testing.assert_array_equal(s.histogram(bins=4).counts, counts)
    np.testing.assert_allclose(s.histogram(bins=4).edges, edges)
    again = s.histogram(bins=4, range=(0, 10))
    np.testing.assert_array_equal(again.counts, np.histogram(np.arange(100), 4, (0, 10))[0])


@pytest.mark.parametrize(
    ("values", "kwargs"),
    [
        ([-1.7e308, 1.7e308, 0.0, 1.0], {"bins": 8}),  # a width past float64
        ([5e-324, -5e-324, 0.0, 1e-320], {"bins": 8}),  # bins too narrow to tell apart
        ([0.0, 1.0], {"bins": 4, "range": (-1.7e308, 1.7e308)}),
    ],
)
def test_even_bins_float64_cannot_make_are_refused(
    tmp_path: Path, values: list[float], kwargs: dict[str, Any]
) -> None:
    a = lsio.create(tmp_path / "a.zarr", shape=(len(values) * 25,), dtype="f8", chunks=(50,))
    a[...] = values * 25
    with pytest.raises(lsio.InvalidArgumentError, match="even bins in float64"):
        lsio.stats(a, **kwargs)
    given = lsio.stats(a, bins=[-1e308, 0.5, 1e308])  # edges given instead: counted
    assert given.histogram().counts.sum() > 0


def test_an_all_nan_position_sums_to_zero(tmp_path: Path) -> None:
    a = lsio.create(tmp_path / "a.zarr", shape=(2, 3), dtype="f4", chunks=(1, 3))
    a[...] = [[1, 2, 3], [np.nan] * 3]
    s = lsio.stats(a, axis=1)
    np.testing.assert_array_equal(s.count, [3, 0])
    np.testing.assert_array_equal(s.sum, [6, 0])  # as np.nansum gives
    assert np.isnan(s.mean[1])
    assert np.isnan(s.min[1])


def test_region_and_progress(sat: Path, capsys: pytest.CaptureFixture[str]) -> None:
    a = lsio.open_array(sat / "sat")
    x = zarr.open_array(str(sat / "sat"), mode="r")[...]
    s = lsio.stats(a, axis=(1, 2, 3), selection=(slice(2, 5),), progress=True)
    assert s.dims == ("time",)
    np.testing.assert_array_equal(s.coords["time"], [20, 30, 40])
    np.testing.assert_array_equal(s.max, np.nanmax(x[2:5], axis=(1, 2, 3)))
    assert "stats" in capsys.readouterr().err


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"dims": ("time", "depth")}, "unknown dimension 'depth'"),
        ({"axis": 4}, "axis 4 is out of range"),
        ({"axis": (0, 0)}, "repeated axis"),
        ({"axis": 0, "dims": "time"}, "not both"),
        ({"bins": 0}, "bins must be >= 1"),
        ({"bins": [3.0, 1.0]}, "increasing"),
        ({"selection": (slice(0, 4, 2),)}, "step 1"),
        ({"selection": (slice(3, 3),)}, "empty"),
        ({"axis": 1.0}, "axis must be ints, got 1.0"),
        ({"axis": (0, "x")}, "axis must be ints, got 'x'"),
        ({"range": (0, 1)}, "needs bins= too"),
        ({"scheduler": "tcp://127.0.0.1:1"}, "must be a dask.distributed.Client, got str"),
    ],
)
def test_bad_arguments(sat: Path, kwargs: dict[str, Any], message: str) -> None:
    a = lsio.open_array(sat / "sat")
    with pytest.raises(lsio.InvalidArgumentError, match=message):
        lsio.stats(a, **kwargs)


@pytest.mark.parametrize("damage", ["corrupt", "truncate"])
def test_damaged_shard_is_named(tmp_path: Path, damage: str) -> None:
    # Full zstd chunks go through the compiled batch path: a bad chunk there must
    # still be named with its key and byte range, and nothing is returned.
    a = lsio.create(
        tmp_path / "a.zarr",
        shape=(4, 3, 32, 32),
        dtype="int16",
        chunks=(1, 3, 8, 8),
        shards=(2, 3, 16, 16),
        compressor="zstd:3",
    )
    a[...] = np.arange(4 * 3 * 32 * 32).reshape(4, 3, 32, 32) % 1000 + 1
    shard = tmp_path / "a.zarr" / "c" / "1" / "0" / "1" / "0"
    raw = bytearray(shard.read_bytes())
    if damage == "corrupt":
        raw[20:60] = b"\xff" * 40  # inside the first inner chunk's frame
    else:
        index = raw[-(8 * 16 + 4) :]  # keep the index (8 entries, crc32c), drop the chunks
        raw = raw[:100] + index
    shard.write_bytes(bytes(raw))
    with pytest.raises(lsio.ChunkError, match=r"c/1/0/1/0.*bytes \["):
        lsio.stats(lsio.open_array(tmp_path / "a.zarr"), axis=(0, 2, 3))


@pytest.mark.parametrize(
    ("axis", "compressor"),
    [((0, 2, 3), "zstd:1"), ((1, 2, 3), "zstd:1"), ((0, 1), "zstd:1"), ((), "zstd:1")]
    + [((0, 2, 3), c) for c in ("blosc", "gzip:1", None)],
)
def test_kernel_runs_with_edges_and_holes(
    tmp_path: Path, axis: tuple[int, ...], compressor: str | None, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Full chunks of a sharded array (each compressor with a compiled decoder) are
    # planned as arrays and decoded in runs; edge chunks, deleted inner chunks and
    # a missing shard go other ways.
    import lsio.zarr._visit as visit

    runs = []
    real = visit.plan_runs

    def spy(*args: Any, **kwargs: Any) -> Any:
        tasks, absent = real(*args, **kwargs)
        runs.append((len(tasks), len(absent)))
        return tasks, absent

    monkeypatch.setattr(visit, "plan_runs", spy)
    rng = np.random.default_rng(1)
    data = rng.integers(-500, 500, size=(5, 3, 37, 41), dtype=np.int16)
    data[0:2, :, 0:16, 0:16] = 7  # the fill value: inner chunks not stored
    data[2:4, :, 16:32, 16:32] = 7  # a whole shard of fill: not stored
    a = lsio.create(
        tmp_path / "a.zarr",
        shape=data.shape,
        dtype="int16",
        chunks=(1, 3, 8, 8),
        shards=(2, 3, 16, 16),
        compressor=compressor,
        fill_value=7,
    )
    a[...] = data
    assert a.c_decoder is not None
    region = (slice(1, 5), slice(None), slice(3, 37), slice(0, 40))
    s = lsio.stats(a, axis=axis, selection=region)
    x = data[region].astype(np.int64)
    np.testing.assert_array_equal(s.sum, x.sum(axis=axis))
    np.testing.assert_array_equal(s.min, x.min(axis=axis))
    np.testing.assert_array_equal(s.max, x.max(axis=axis))
    np.testing.assert_allclose(s.var, x.var(axis=axis), rtol=1e-12)
    assert sum(t for t, _ in runs) > 0, "the full chunks went through the kernel's runs"
    assert sum(n for _, n in runs) > 0, "absent full chunks were counted"


def test_histogram_bins_from_infinite_data_are_refused(tmp_path: Path) -> None:
    data = np.linspace(10, 110, 100).astype("f4")
    data[50] = np.inf
    z = zarr.create_array(str(tmp_path / "a.zarr"), shape=data.shape, dtype="f4", chunks=(10,))
    z[...] = data
    a = lsio.open_array(tmp_path / "a.zarr")
    with pytest.raises(lsio.InvalidArgumentError, match=r"spans \[10.0, inf\].*pass range="):
        lsio.stats(a, bins=4)
    h = lsio.stats(
        a, bins=4, range=(10, 110)
    ).histogram()  # with a range: inf is outside, as in NumPy
    np.testing.assert_array_equal(h.counts, np.histogram(data, bins=4, range=(10, 110))[0])


@pytest.mark.parametrize(
    ("batch_bytes", "limit"), [(1, 64), (1, 1000), (4 << 20, 64), (4 << 20, 2**31)]
)
def test_running_integer_sums_fold_before_they_overflow(
    tmp_path: Path, batch_bytes: int, limit: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Small-integer blocks are summed in int64 between merges into exact Python
    # integers; the merge comes before a position has more values than int64
    # squares allow (2**31; small limits here fold after every chunk or every
    # few, and a block over the limit takes the exact path on its own).
    import lsio.compute._running as running
    import lsio.statistics._reducer as reducer

    monkeypatch.setattr(reducer, "_BATCH_BYTES", batch_bytes)
    monkeypatch.setattr(running, "INT_LIMIT", limit)
    rng = np.random.default_rng(5)
    data = rng.integers(-(2**15), 2**15, size=(6, 3, 40, 24), dtype=np.int16)
    data[:, 1] = 2**15 - 1  # the largest squares there are
    a = lsio.create(
        tmp_path / "a.zarr",
        shape=data.shape,
        dtype="int16",
        chunks=(1, 3, 8, 8),
        shards=(2, 3, 16, 24),
    )
    a[...] = data
    s = lsio.stats(a, axis=(0, 2, 3))
    x = data.astype(np.int64)
    np.testing.assert_array_equal(s.sum, x.sum(axis=(0, 2, 3)))
    np.testing.assert_array_equal(s.count, np.full(3, x.size // 3))
    np.testing.assert_array_equal(s.min, x.min(axis=(0, 2, 3)))
    np.testing.assert_array_equal(s.max, x.max(axis=(0, 2, 3)))
    exact = [
        float(Fraction(int((c * c).sum()) * c.size - int(c.sum()) ** 2, c.size * c.size))
        for c in np.moveaxis(x, 1, 0).reshape(3, -1)
    ]
    np.testing.assert_allclose(s.var, exact, rtol=1e-15)


@pytest.mark.parametrize(
    ("axis", "compressor", "zarr_format"),
    [((0, 2, 3), "zstd:1", 3), ((1, 2, 3), "zstd:1", 2), ((0, 1), "blosc", 3), ((), "gzip:1", 2)]
    + [((0, 2, 3), c, 3) for c in ("blosc-lz4", None)],
)
def test_chunk_files_decode_in_batches_with_edges_and_holes(
    tmp_path: Path,
    axis: tuple[int, ...],
    compressor: str | None,
    zarr_format: int,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # Full chunks of an unsharded array go to the compiled kernel a batch of
    # files at a time; edge chunks go one by one, missing files count as the fill.
    import lsio.zarr._visit as visit

    batches = []
    real = visit.plan_file_runs

    def spy(*args: Any, **kwargs: Any) -> Any:
        runs = real(*args, **kwargs)
        batches.append(len(runs))
        return runs

    monkeypatch.setattr(visit, "plan_file_runs", spy)
    rng = np.random.default_rng(2)
    data = rng.integers(-500, 500, size=(5, 3, 37, 41), dtype=np.int16)
    data[0:2, :, 0:8, 0:8] = 7  # fill-value chunks: no files
    a = lsio.create(
        tmp_path / "a.zarr",
        shape=data.shape,
        dtype="int16",
        chunks=(1, 3, 8, 8),
        compressor=compressor,
        fill_value=7,
        zarr_format=zarr_format,
    )
    a[...] = data
    assert a.c_decoder is not None
    region = (slice(0, 5), slice(None), slice(0, 37), slice(3, 41))
    s = lsio.stats(a, axis=axis, selection=region, bins=4)
    x = data[region].astype(np.int64)
    np.testing.assert_array_equal(s.sum, x.sum(axis=axis))
    np.testing.assert_array_equal(s.count, np.full(s.count.shape, x.size // s.count.size))
    np.testing.assert_array_equal(s.min, x.min(axis=axis))
    np.testing.assert_array_equal(s.max, x.max(axis=axis))
    np.testing.assert_allclose(s.var, x.var(axis=axis), rtol=1e-12)
    assert s.histogram().counts.sum() == x.size
    assert sum(batches) > 0, "the full chunks went through the batches of files"


@pytest.mark.parametrize("damage", ["corrupt", "truncate"])
def test_damaged_chunk_file_is_named(tmp_path: Path, damage: str) -> None:
    a = lsio.create(tmp_path / "a.zarr", shape=(4, 3, 32, 32), dtype="int16", chunks=(1, 3, 8, 8))
    a[...] = np.arange(4 * 3 * 32 * 32).reshape(4, 3, 32, 32) % 1000 + 1
    chunk = tmp_path / "a.zarr" / "c" / "2" / "0" / "1" / "3"
    raw = bytearray(chunk.read_bytes())
    raw = raw[:20] + b"\xff" * 40 + raw[60:] if damage == "corrupt" else raw[: len(raw) // 2]
    chunk.write_bytes(bytes(raw))
    with pytest.raises(lsio.ChunkError, match=r"c/2/0/1/3"):
        lsio.stats(lsio.open_array(tmp_path / "a.zarr"), axis=(0, 2, 3))
