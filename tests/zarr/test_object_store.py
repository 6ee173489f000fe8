"""Zarr arrays in an S3 bucket (moto's server on 127.0.0.1), against zarr-python on local copies."""

from __future__ import annotations

import functools
import http.server
import socket
import threading
import time
from pathlib import Path
from typing import Any

import numpy as np
import pytest

import lsio
import zarr
from lsio.cli._main import main
from lsio.io import ObjectStore


def _upload(local: Path, url: str) -> None:
    store = ObjectStore(url)
    for path in sorted(p for p in local.rglob("*") if p.is_file()):
        store.put(path.relative_to(local).as_posix(), path.read_bytes())


def _download(url: str, local: Path) -> None:
    store = ObjectStore(url)

    def walk(prefix: str) -> None:
        files, dirs = store.list_dir(prefix)
        for name in files:
            key = f"{prefix}/{name}" if prefix else name
            data = store.get(key)
            assert data is not None
            (local / key).parent.mkdir(parents=True, exist_ok=True)
            (local / key).write_bytes(data)
        for name in dirs:
            walk(f"{prefix}/{name}" if prefix else name)

    walk("")


@pytest.mark.parametrize("layout", ["v3-sharded", "v3", "v2"])
def test_reads_equal_zarr_pythons(tmp_path: Path, s3_bucket: str, layout: str) -> None:
    x = np.random.default_rng(0).integers(-500, 500, (6, 3, 40, 36)).astype(np.int16)
    local = tmp_path / "a.zarr"
    z = zarr.create_array(
        str(local),
        shape=x.shape,
        dtype=x.dtype,
        chunks=(1, 3, 8, 12),
        shards=(2, 3, 16, 24) if layout == "v3-sharded" else None,
        zarr_format=2 if layout == "v2" else 3,
        fill_value=7,
    )
    z[:, :, :32, :] = x[:, :, :32, :]  # the rest stays missing: the fill value
    expect = z[...]
    url = f"{s3_bucket}/data/a.zarr"
    _upload(local, url)
    a = lsio.open_array(url)
    assert a.store_url == url
    np.testing.assert_array_equal(a[...], expect)
    sels = [
        (slice(t, t + 2), slice(None), slice(y, y + 9), slice(5, 30))
        for t, y in [(0, 0), (3, 20), (4, 30)]
    ]
    for got, sel in zip(a.read_many(sels), sels, strict=True):
        np.testing.assert_array_equal(got, expect[sel])
    s = lsio.stats(a, axis=(0, 2, 3))
    np.testing.assert_array_equal(s.min, expect.min(axis=(0, 2, 3)))
    np.testing.assert_array_equal(s.sum, expect.astype(np.int64).sum(axis=(0, 2, 3)))


def test_writes_read_back_by_zarr_python(tmp_path: Path, s3_bucket: str) -> None:
    url = f"{s3_bucket}/out/b.zarr"
    x = np.random.default_rng(1).normal(0, 10, (8, 30, 20)).astype(np.float32)
    a = lsio.create(
        url,
        shape=x.shape,
        dtype=x.dtype,
        chunks=(2, 10, 10),
        shards=(4, 30, 20),
        dims=("t", "y", "x"),
        attrs={"units": "K"},
    )
    a[...] = x
    a[1:3, 5:25, 4] = 0.5  # partial shards: read, modified, written back
    x[1:3, 5:25, 4] = 0.5
    np.testing.assert_array_equal(lsio.open_array(url)[...], x)
    local = tmp_path / "b.zarr"
    _download(url, local)
    z = zarr.open_array(str(local), mode="r")
    np.testing.assert_array_equal(z[...], x)
    assert dict(z.attrs) == {"units": "K"}
    with pytest.raises(lsio.NodeExistsError, match="already holds a Zarr node"):
        lsio.create(url, shape=(2,), dtype="i1", chunks=(1,))
    lsio.create(url, shape=(2,), dtype="i1", chunks=(1,), overwrite=True)
    assert lsio.open_array(url).shape == (2,)
    assert ObjectStore(url).list_dir("") == (["zarr.json"], [])  # the old shards are gone


def test_groups_listing_and_missing_nodes(s3_bucket: str) -> None:
    g = lsio.create_group(f"{s3_bucket}/g.zarr", attrs={"title": "t"})
    g.create_array("sat", shape=(4, 6), dtype="i2", chunks=(2, 3))[...] = 3
    opened = lsio.open_group(f"{s3_bucket}/g.zarr")
    assert opened.attrs["title"] == "t"
    assert list(opened) == ["sat"]
    np.testing.assert_array_equal(opened["sat"][...], np.full((4, 6), 3, np.int16))
    with pytest.raises(lsio.NodeNotFoundError):
        lsio.open(f"{s3_bucket}/nothing.zarr")


def test_rechunk_from_a_bucket_to_a_bucket(s3_bucket: str) -> None:
    x = np.arange(4 * 12 * 10, dtype=np.int32).reshape(4, 12, 10)
    src = lsio.create(f"{s3_bucket}/src.zarr", shape=x.shape, dtype=x.dtype, chunks=(1, 12, 10))
    src[...] = x
    out = lsio.rechunk(src, f"{s3_bucket}/dst.zarr", chunks=(4, 3, 5))
    assert out.chunks == (4, 3, 5)
    np.testing.assert_array_equal(lsio.open_array(f"{s3_bucket}/dst.zarr")[...], x)
    with pytest.raises(lsio.InvalidArgumentError, match="overlaps the source"):
        lsio.rechunk(src, f"{s3_bucket}/src.zarr/inner", chunks=(4, 3, 5))


def test_command_line_on_a_bucket(s3_bucket: str, capsys: pytest.CaptureFixture[str]) -> None:
    import json

    from lsio.cli._main import main

    url = f"{s3_bucket}/c.zarr"
    a = lsio.create(url, shape=(4, 2, 6), dtype="u1", chunks=(2, 2, 3), dims=("t", "c", "x"))
    a[...] = np.arange(48, dtype=np.uint8).reshape(4, 2, 6)
    assert main(["info", "--json", url]) == 0
    info = json.loads(capsys.readouterr().out)
    assert info["shape"] == [4, 2, 6]
    store = ObjectStore(url)
    chunks = {k: n for k, n in store.list_tree("").items() if k != "zarr.json"}
    assert len(chunks) == 4  # a (2, 1, 2) grid of chunks, every one stored
    assert info["stored_objects"] == len(chunks)
    assert info["stored_bytes"] == sum(chunks.values())
    assert main(["stats", url, "--dims", "t,x", "--json"]) == 0
    stats = json.loads(capsys.readouterr().out)
    assert stats["max"] == [41, 47]


def test_a_dask_cluster_reads_the_bucket(s3_bucket: str, dask_client: Any) -> None:
    """Worker processes reopen the array by its URL, with their environment's credentials."""
    import os

    env = {k: v for k, v in os.environ.items() if k.startswith("AWS_")}
    dask_client.run(os.environ.update, env)  # as a deployment sets the workers' variables
    x = np.random.default_rng(2).integers(0, 1000, (6, 2, 16, 16)).astype(np.int16)
    a = lsio.create(f"{s3_bucket}/d.zarr", shape=x.shape, dtype=x.dtype, chunks=(2, 2, 8, 8))
    a[...] = x
    remote = lsio.stats(a, axis=(0, 2, 3), scheduler=dask_client)
    np.testing.assert_array_equal(remote.sum, x.astype(np.int64).sum(axis=(0, 2, 3)))
    total = dask_client.compute(lsio.to_dask(a).sum(axis=(0, 2, 3))).result()
    np.testing.assert_array_equal(total, x.sum(axis=(0, 2, 3)))


def test_coordinates_of_an_array_opened_by_its_own_url(s3_bucket: str) -> None:
    from lsio.zarr._coords import find_coordinates

    g = lsio.create_group(f"{s3_bucket}/e.zarr")
    g.create_array("data", shape=(3, 4), dtype="f4", chunks=(3, 4), dims=("t", "x"))
    g.create_array("t", shape=(3,), dtype="i8", chunks=(3,), dims=("t",))[...] = [10, 20, 30]
    coords = find_coordinates(lsio.open_array(f"{s3_bucket}/e.zarr/data"))
    assert list(coords) == ["t"]
    np.testing.assert_array_equal(coords["t"][...], [10, 20, 30])
    # Opened through a store with explicit settings: the group above is reached with them.
    store = ObjectStore(f"{s3_bucket}/e.zarr/data", max_requests=3)
    coords = find_coordinates(lsio.open_array(store))
    np.testing.assert_array_equal(coords["t"][...], [10, 20, 30])
    parent = coords["t"].context.store
    assert isinstance(parent, ObjectStore)
    assert parent.url == f"{s3_bucket}/e.zarr"
    assert parent.__getstate__()["max_requests"] == 3


def test_plain_http_urls_read_and_describe(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    z = zarr.create_array(str(tmp_path / "a.zarr"), shape=(10, 20), chunks=(5, 5), dtype="f4")
    z[...] = np.arange(200, dtype="f4").reshape(10, 20)
    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(tmp_path))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        url = f"http://127.0.0.1:{server.server_address[1]}/a.zarr"
        np.testing.assert_array_equal(lsio.open_array(url)[...], z[...])
        # A plain HTTP server cannot list: the description says the size is not known.
        assert main(["info", url]) == 0
        assert "stored size unknown (the store cannot list)" in capsys.readouterr().out
    finally:
        server.shutdown()
        server.server_close()


def test_an_endpoint_that_never_answers_fails_soon_in_one_line(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    silent = socket.socket()
    silent.bind(("127.0.0.1", 0))
    silent.listen(64)  # connections are accepted by the kernel, never answered
    monkeypatch.setenv("AWS_ENDPOINT_URL", f"http://127.0.0.1:{silent.getsockname()[1]}")
    for key, value in {
        "AWS_ACCESS_KEY_ID": "a",
        "AWS_SECRET_ACCESS_KEY": "b",
        "AWS_REGION": "us-east-1",
        "AWS_ALLOW_HTTP": "true",
    }.items():
        monkeypatch.setenv(key, value)
    store = ObjectStore("s3://bucket/x.zarr", client_options={"timeout": "1s", "allow_http": True})
    started = time.monotonic()
    with pytest.raises(lsio.ReadError, match=r"zarr\.json") as info:
        lsio.open_array(store)
    # obstore alone retries 10 times over up to 3 minutes; lsio stops after 3.
    assert time.monotonic() - started < 15
    assert "\n" not in str(info.value)
    silent.close()
