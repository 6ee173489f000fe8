"""lsio.to_dask: dask arrays whose blocks lsio reads, computed on a real cluster."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest

import lsio
import zarr


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, np.ndarray]:
    path = tmp_path_factory.mktemp("dask") / "a.zarr"
    data = np.arange(8 * 6 * 10, dtype=np.int32).reshape(8, 6, 10)
    arr = zarr.create_array(
        str(path), shape=data.shape, chunks=(2, 3, 5), shards=(4, 6, 5), dtype="i4"
    )
    arr[...] = data
    return path, data


def test_blocks_follow_shards_and_compute_on_a_cluster(store: Any, dask_client: Any) -> None:
    path, data = store
    d = lsio.to_dask(lsio.open_array(path))
    assert d.chunks == ((4, 4), (6,), (5, 5))
    np.testing.assert_array_equal(d.compute(), data)
    np.testing.assert_array_equal(
        dask_client.compute(d.sum(axis=(0, 2))).result(), data.sum(axis=(0, 2))
    )


def test_chunks_must_not_cut_the_arrays_chunks(store: Any) -> None:
    path, _ = store
    with pytest.raises(lsio.InvalidArgumentError, match="cut through"):
        lsio.to_dask(lsio.open_array(path), chunks=(3, 6, 10))
    with pytest.raises(lsio.InvalidArgumentError, match="do not fit an array of shape"):
        lsio.to_dask(lsio.open_array(path), chunks=0)
    with pytest.raises(lsio.InvalidArgumentError, match="do not fit an array of shape"):
        lsio.to_dask(lsio.open_array(path), chunks=(2, 3))


def test_two_block_layouts_of_one_array_combine(store: Any) -> None:
    path, data = store
    a = lsio.open_array(path)
    d1, d2 = lsio.to_dask(a, chunks=(2, 3, 5)), lsio.to_dask(a, chunks=(8, 6, 10))
    assert d1.name != d2.name
    assert d1.name == lsio.to_dask(lsio.open_array(path), chunks=(2, 3, 5)).name
    np.testing.assert_array_equal((d1 + d2).compute(), 2 * data)
