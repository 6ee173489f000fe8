"""The xarray backend (engine="lsio") against xarray's own zarr engine, on stores xarray and lsio write."""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import xarray as xr

import lsio
from lsio.interop._xarray import LsioBackendEntrypoint, LsioDataStore, open_dataset


def _dataset() -> xr.Dataset:
    t = pd.date_range("2024-01-01", periods=6, freq="h")
    rng = np.random.default_rng(0)
    sat = 200.0 + 0.1 * rng.integers(0, 4000, size=(6, 3, 20, 30))
    t2m = rng.normal(280, 5, size=(6, 20, 30)).astype("float32")
    t2m[t2m > 288] = np.nan
    ds = xr.Dataset(
        {
            "sat": (("time", "channel", "y", "x"), sat, {"units": "K", "long_name": "radiance"}),
            "t2m": (("time", "y", "x"), t2m),
            "count": (("time",), np.arange(6, dtype="uint32")),
        },
        coords={
            "time": t,
            "y": np.linspace(50, 40, 20),
            "x": np.linspace(-5, 5, 30),
            "channel": ["IR_016", "VIS006", "WV_062"],
        },
        attrs={"title": "demo", "history": "made in a test"},
    )
    ds["sat"].encoding = {
        "scale_factor": 0.1,
        "add_offset": 200.0,
        "_FillValue": -1,
        "dtype": "int16",
        "chunks": (2, 3, 10, 15),
    }
    ds["t2m"].encoding = {"chunks": (3, 10, 10)}
    return ds


@pytest.fixture(
    params=[(2, False), (2, True), (3, False), (3, True)], ids=lambda p: f"v{p[0]}-cons{p[1]}"
)
def written(request: pytest.FixtureRequest, tmp_path: Path) -> Path:
    fmt, consolidated = request.param
    path = tmp_path / "ds.zarr"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # zarr-python's note on v3 fixed-length strings
        _dataset().to_zarr(path, zarr_format=fmt, consolidated=consolidated)
    return path


def _pair(path: Path, **kwargs: object) -> tuple[xr.Dataset, xr.Dataset]:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        ref = xr.open_dataset(path, engine="zarr", **kwargs)  # type: ignore[arg-type]
        ours = xr.open_dataset(path, engine="lsio", **kwargs)  # type: ignore[arg-type]
    return ref, ours


def test_identical_to_the_zarr_engine(written: Path) -> None:
    ref, ours = _pair(written)
    xr.testing.assert_identical(ours, ref)
    # CF decoding happened: times, scaled values, masks.
    assert ours["time"].dtype.kind == "M"
    assert ours["sat"].dtype == np.float64
    assert int(ours["t2m"].isnull().sum()) > 0
    assert ours["sat"].encoding["chunks"] == (2, 3, 10, 15)


def test_raw_values_without_decoding(written: Path) -> None:
    ref, ours = _pair(written, mask_and_scale=False, decode_times=False)
    xr.testing.assert_identical(ours, ref)
    assert ours["sat"].dtype == np.int16


def test_lazy_until_values_are_asked_for(written: Path) -> None:
    _, ours = _pair(written)
    variable = ours["sat"].variable
    assert not isinstance(variable._data, np.ndarray)  # lazily indexed, nothing read
    crop = ours["sat"].isel(time=slice(1, 4), y=slice(3, 17), x=slice(20, 28))
    assert not isinstance(crop.variable._data, np.ndarray)
    np.testing.assert_array_equal(crop.values, _dataset()["sat"].values[1:4, :, 3:17, 20:28])


def test_selections(written: Path) -> None:
    ref, ours = _pair(written)
    selections: list[dict[str, object]] = [
        {"time": 2},
        {"time": slice(None, None, 2), "x": slice(29, 3, -3)},
        {"channel": [2, 0], "y": np.array([19, 0, 7])},  # outer, unsorted
        # Pointwise: xarray reads the outer box here and picks the points.
        {"y": xr.DataArray([1, 5, 9], dims="p"), "x": xr.DataArray([2, 2, 29], dims="p")},
    ]
    for sel in selections:
        xr.testing.assert_identical(ours.isel(sel).load(), ref.isel(sel).load())
    xr.testing.assert_identical(
        ours.sel(channel="VIS006", time="2024-01-01T03").load(),
        ref.sel(channel="VIS006", time="2024-01-01T03").load(),
    )


def test_dask_chunks_follow_the_store(written: Path) -> None:
    ref, ours = _pair(written, chunks={})
    assert ours["sat"].chunks == ref["sat"].chunks
    xr.testing.assert_identical(ours.compute(), ref.compute())
    mean = ours["t2m"].mean(dim="time").compute()
    xr.testing.assert_allclose(mean, ref["t2m"].mean(dim="time").compute())


def test_sharded_store_written_by_lsio_is_chunked_by_shards(tmp_path: Path) -> None:
    path = tmp_path / "sat.zarr"
    g = lsio.create_group(path, attrs={"source": "lsio"})
    values = (np.arange(8 * 3 * 32 * 32) % 5000).astype("int16").reshape(8, 3, 32, 32)
    a = g.create_array(
        "sat",
        shape=values.shape,
        dtype="int16",
        chunks=(1, 3, 8, 8),
        shards=(4, 3, 16, 16),
        dims=("time", "channel", "y", "x"),
        compressor="zstd:3",
        attrs={"units": "counts"},
    )
    a[...] = values
    ds = xr.open_dataset(path, engine="lsio")
    assert ds.attrs == {"source": "lsio"}
    assert ds["sat"].attrs == {"units": "counts"}
    assert ds["sat"].encoding["shards"] == (4, 3, 16, 16)
    np.testing.assert_array_equal(ds["sat"].values, values)
    chunked = xr.open_dataset(path, engine="lsio", chunks={})
    assert chunked["sat"].chunks == ((4, 4), (3,), (16, 16), (16, 16))
    np.testing.assert_array_equal(chunked["sat"].sum("time").values, values.sum(axis=0))


def test_group_and_drop_variables(tmp_path: Path) -> None:
    path = tmp_path / "tree.zarr"
    _dataset().to_zarr(path, group="level1/level2", zarr_format=3, consolidated=False)
    ds = open_dataset(path, group="level1/level2", drop_variables=["t2m"])
    assert set(ds.data_vars) == {"sat", "count"}
    ref = xr.open_dataset(
        path, engine="zarr", group="level1/level2", drop_variables=["t2m"], consolidated=False
    )
    xr.testing.assert_identical(ds, ref)
    # The root holds only groups: an empty dataset.
    assert len(xr.open_dataset(path, engine="lsio").variables) == 0


def test_clear_errors(tmp_path: Path) -> None:
    with pytest.raises(lsio.NodeNotFoundError):
        xr.open_dataset(tmp_path / "missing.zarr", engine="lsio")
    path = tmp_path / "plain.zarr"
    g = lsio.create_group(path)
    g.create_array("nodims", shape=(4, 4), dtype="float32", chunks=(2, 2))
    g.create_array("ok", shape=(4,), dtype="float32", chunks=(2,), dims=("x",))
    with pytest.raises(lsio.MetadataError, match=r"'nodims' names no dimensions.*drop_variables"):
        xr.open_dataset(path, engine="lsio")
    assert list(xr.open_dataset(path, engine="lsio", drop_variables=["nodims"]).data_vars) == ["ok"]
    with pytest.raises(lsio.InvalidArgumentError, match="is an array"):
        xr.open_dataset(path / "ok", engine="lsio")
    with pytest.raises(lsio.InvalidArgumentError, match="path or URL"):
        LsioBackendEntrypoint().open_dataset(b"not a path")


def test_groups_list_members_of_unsupported_types(written: Path) -> None:
    g = lsio.open_group(written)
    readable, unsupported = g.member_names()
    assert unsupported == ["channel"]
    assert {"sat", "t2m", "time", "x", "y", "count"} <= set(readable)
    with pytest.raises(lsio.UnsupportedError, match="channel"):
        g["channel"]
    with pytest.raises(lsio.UnsupportedError):
        list(g.members())
    assert "channel" in g  # a member, of a type lsio does not read
    assert sorted(g) == sorted(readable + unsupported)
    assert len(g) == len(readable) + 1


def test_engine_is_used_only_when_named(written: Path, tmp_path: Path) -> None:
    assert isinstance(xr.backends.list_engines()["lsio"], LsioBackendEntrypoint)
    assert not LsioBackendEntrypoint().guess_can_open(written)
    # Without engine=, xarray picks its zarr engine, whose own options keep working.
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        ds = xr.open_dataset(written, consolidated=False)
    xr.testing.assert_identical(ds, _pair(written)[0])


def test_open_dataset_from_the_package(written: Path) -> None:
    ref, _ = _pair(written)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        ds = lsio.interop.open_dataset(written, config=lsio.ReadConfig(threads=1))
    xr.testing.assert_identical(ds, ref)
    with pytest.raises(AttributeError, match="no attribute 'nothing'"):
        _ = lsio.interop.nothing  # type: ignore[attr-defined]


def test_datasets_pickle_for_distributed_workers(written: Path) -> None:
    import pickle

    ref, ours = _pair(written)
    crop = ours["sat"].isel(time=slice(0, 3), x=slice(4, 9))
    again = pickle.loads(pickle.dumps(crop))  # no open files or locks travel
    xr.testing.assert_identical(
        again.load(), ref["sat"].isel(time=slice(0, 3), x=slice(4, 9)).load()
    )


def test_object_store_with_string_coordinates(written: Path, s3_bucket: str) -> None:
    """From S3 (moto on 127.0.0.1): lsio's reads, and zarr-python's for the labels, on one connection."""
    url = f"{s3_bucket}/xr/ds.zarr"
    store = lsio.ObjectStore(url)
    for path in sorted(p for p in written.rglob("*") if p.is_file()):
        store.put(path.relative_to(written).as_posix(), path.read_bytes())
    ref, _ = _pair(written)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        ours = xr.open_dataset(url, engine="lsio")
    xr.testing.assert_identical(ours, ref)
    assert list(ours["channel"].values) == ["IR_016", "VIS006", "WV_062"]


def test_scalars_and_complex_fill_values(tmp_path: Path) -> None:
    ds = xr.Dataset(
        {
            "crs": ((), np.int32(4326), {"grid_mapping_name": "latitude_longitude"}),
            "scale": ((), np.float32(3.5)),
            "z": (("x",), np.array([1 + 1j, 9 + 9j, 3 - 2j])),
        }
    )
    ds["z"].encoding = {"_FillValue": 9 + 9j}
    for fmt in (2, 3):
        path = tmp_path / f"s{fmt}.zarr"
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            ds.to_zarr(path, zarr_format=fmt, consolidated=False)
        ref, ours = _pair(path)
        xr.testing.assert_identical(ours, ref)
        assert ours["crs"].dims == ()
        assert np.isnan(ours["z"].values[1])  # the fill value masked, as the zarr engine does


def test_whole_datasets_pickle_and_close(written: Path) -> None:
    import pickle
    import threading

    ref, _ = _pair(written)
    for chunks in (None, {}):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            ds = xr.open_dataset(written, engine="lsio", chunks=chunks)
        again = pickle.loads(pickle.dumps(ds))
        xr.testing.assert_identical(again.load(), ref.load())

    def new_workers() -> set[threading.Thread]:
        # lsio's pools name their threads "lsio..."; other libraries' come and go.
        return {t for t in set(threading.enumerate()) - before if t.name.startswith("lsio")}

    before = set(threading.enumerate())
    store = LsioDataStore(lsio.open_group(written, config=lsio.ReadConfig(threads=4)))
    store.group.context.pool.submit(int).result()  # type: ignore[union-attr]
    assert new_workers()  # the group's workers run
    store.close()
    assert not new_workers()  # and are gone
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        ds = xr.open_dataset(written, engine="lsio")
    ds.close()
    np.testing.assert_array_equal(ds["t2m"].values, ref["t2m"].values)  # reads again after close


def test_open_mfdataset(tmp_path: Path) -> None:
    full = _dataset()
    paths = []
    for i, part in enumerate((full.isel(time=slice(0, 3)), full.isel(time=slice(3, 6)))):
        path = tmp_path / f"part{i}.zarr"
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            part.to_zarr(path, zarr_format=3, consolidated=False)
        paths.append(path)
    import dask

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        ref = xr.open_mfdataset(paths, engine="zarr", combine="by_coords", consolidated=False)
        ours = xr.open_mfdataset(paths, engine="lsio", combine="by_coords")
        xr.testing.assert_identical(ours.compute(), ref.compute())
        # Opened in other processes and sent back: the datasets travel pickled.
        with dask.config.set(scheduler="processes"):
            ours = xr.open_mfdataset(paths, engine="lsio", combine="by_coords", parallel=True)
            xr.testing.assert_identical(ours.compute(), ref.compute())
