"""lsio.stats on a Dask cluster equals the local run."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest

import lsio
import zarr


@pytest.mark.parametrize("dtype", ["f8", "i2"])
def test_cluster_equals_local(tmp_path: Path, dask_client: Any, dtype: str) -> None:
    path = tmp_path / "a.zarr"
    rng = np.random.default_rng(1)
    data = (rng.standard_normal((12, 3, 16, 16)) * 7).astype(dtype)
    if dtype == "f8":
        data[3, 0, :4, :4] = np.nan
    arr = zarr.create_array(
        str(path),
        shape=data.shape,
        chunks=(1, 3, 8, 8),
        shards=(2, 3, 16, 16),
        dtype=dtype,
        fill_value=0,
    )
    arr[...] = data
    arr[10:12] = 0.0  # not stored
    a = lsio.open_array(path)
    for kwargs in (
        {"axis": (0, 2, 3), "bins": 5},
        {"axis": (1, 2, 3), "selection": (slice(1, 11),)},
    ):
        local = lsio.stats(a, **kwargs)
        remote = lsio.stats(a, scheduler=dask_client, **kwargs)
        for name in ("count", "nan_count", "min", "max"):
            np.testing.assert_array_equal(getattr(remote, name), getattr(local, name))
        for name in ("sum", "mean", "std"):
            np.testing.assert_allclose(getattr(remote, name), getattr(local, name), rtol=1e-12)
        if "bins" in kwargs:
            np.testing.assert_array_equal(remote.histogram().counts, local.histogram().counts)
    # Each task's array stopped its worker threads when the task ended.
    assert set(dask_client.run(_lsio_threads).values()) == {0}


def _lsio_threads() -> int:
    import threading

    return sum(t.name.startswith("lsio") for t in threading.enumerate())
