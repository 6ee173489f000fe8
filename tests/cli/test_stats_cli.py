"""The ``lsio stats`` command: table, JSON, histogram, region and errors."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

import zarr
from lsio.cli._main import main


@pytest.fixture
def sat(tmp_path: Path) -> tuple[Path, np.ndarray]:
    root = tmp_path / "s.zarr"
    g = zarr.create_group(str(root))
    a = g.create_array(
        "sat",
        shape=(6, 3, 16, 16),
        chunks=(1, 3, 8, 8),
        shards=(2, 3, 16, 16),
        dtype="int16",
        dimension_names=["time", "channel", "y", "x"],
    )
    data = (np.arange(a.size, dtype=np.int64).reshape(a.shape) % 1000).astype(np.int16)
    a[...] = data
    # Channel labels: the band centres in nm.
    band = g.create_array(
        "channel", shape=(3,), chunks=(3,), dtype="i4", dimension_names=["channel"]
    )
    band[...] = [490, 560, 665]
    return root / "sat", data


def test_table_labels_rows_with_coordinates(
    sat: tuple[Path, np.ndarray], capsys: pytest.CaptureFixture[str]
) -> None:
    path, data = sat
    assert main(["stats", str(path), "--dims", "time,y,x"]) == 0
    captured = capsys.readouterr()
    lines = captured.out.splitlines()
    assert lines[0].split() == ["channel", "count", "nan_count", "min", "max", "mean", "std"]
    for line, name, c in zip(lines[1:], ["490", "560", "665"], range(3), strict=True):
        cells = line.split()
        assert cells[0] == name
        assert int(cells[1]) == data[:, c].size
        assert int(cells[3]) == data[:, c].min()
        assert int(cells[4]) == data[:, c].max()
        assert float(cells[5]) == pytest.approx(data[:, c].mean(), rel=1e-5)
    assert "chunks" in captured.err  # the progress bar


def test_json_region_and_histogram(
    sat: tuple[Path, np.ndarray], capsys: pytest.CaptureFixture[str]
) -> None:
    path, data = sat
    args = ["stats", str(path), "--dims", "channel,y,x", "--region", "time=1:4", "--hist", "5"]
    assert main([*args, "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["dims"] == ["time"]
    assert out["max"] == data[1:4].max(axis=(1, 2, 3)).tolist()
    counts = np.array(out["histogram"]["counts"])
    assert counts.shape == (3, 5)
    assert (
        counts[0].tolist()
        == np.histogram(data[1], bins=5, range=(data[1].min(), data[1].max()))[0].tolist()
    )


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--dims", "time,depth"], "unknown dimension 'depth'"),
        (["--region", "depth=0:3"], "--region item 'depth=0:3'"),
        (["--region", "time=a:b"], "bounds must be integers"),
        (["--hist", "0"], "bins must be >= 1"),
    ],
)
def test_errors(
    sat: tuple[Path, np.ndarray], capsys: pytest.CaptureFixture[str], args: list[str], message: str
) -> None:
    path, _ = sat
    assert main(["stats", str(path), *args]) == 1
    assert message in capsys.readouterr().err


def test_group_is_refused(sat: tuple[Path, np.ndarray], capsys: pytest.CaptureFixture[str]) -> None:
    path, _ = sat
    assert main(["stats", str(path.parent)]) == 1
    assert "needs an array" in capsys.readouterr().err


def test_rechunk_and_convert_commands(
    sat: tuple[Path, np.ndarray], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path, data = sat
    dst = tmp_path / "ts.zarr"
    args = ["rechunk", str(path), str(dst), "--chunks", "6,1,8,8", "--shards", "6,3,16,16"]
    assert main([*args, "--codec", "zstd:5", "--max-mem", "10MB"]) == 0
    assert "shards (6, 3, 16, 16)" in capsys.readouterr().out
    np.testing.assert_array_equal(zarr.open_array(str(dst), mode="r")[...], data)
    assert main(["convert", str(dst), str(tmp_path / "v2.zarr"), "--zarr-format", "2"]) == 0
    np.testing.assert_array_equal(zarr.open_array(str(tmp_path / "v2.zarr"), mode="r")[...], data)
    assert main([*args]) == 1
    assert "is not empty; pass --overwrite to replace it" in capsys.readouterr().err
    assert main([*args, "--overwrite"]) == 0  # the flag the message names works
    assert main(["rechunk", str(path), str(tmp_path / "x.zarr"), "--chunks", "a,b"]) == 1
    assert "--chunks must be comma-separated integers" in capsys.readouterr().err
