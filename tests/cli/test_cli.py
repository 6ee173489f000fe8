"""The ``lsio`` command: info (tree and JSON) and demo."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import zarr
from lsio.cli._main import main


@pytest.fixture
def store(tmp_path: Path) -> Path:
    root = tmp_path / "s.zarr"
    g = zarr.create_group(str(root), attributes={"title": "x"})
    a = g.create_array(
        "sat",
        shape=(4, 3, 16, 16),
        chunks=(1, 3, 8, 8),
        shards=(2, 3, 16, 16),
        dtype="int16",
        dimension_names=["time", "channel", "y", "x"],
    )
    a[...] = np.arange(a.size, dtype="int16").reshape(a.shape) % 7
    sub = g.create_group("nwp")
    sub.create_array("t2m", shape=(5,), chunks=(5,), dtype="f4")
    return root


def test_info_tree(store: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["info", str(store)]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[0] == f"{store} [group, v3]"
    assert out[1].startswith("├── nwp [group, v3]")
    assert out[2].startswith("│   └── t2m [array, v3] float32 (5)  chunks (5,)  codecs bytes+zstd")
    sat = out[3]
    assert sat.startswith("└── sat [array, v3] int16 (time=4, channel=3, y=16, x=16)")
    assert "chunks (1, 3, 8, 8)  shards (2, 3, 16, 16)  codecs sharding_indexed+bytes+zstd" in sat
    assert "stored " in sat
    assert "of 6.0 KiB (" in sat


def test_info_json(store: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["info", "--json", str(store)]) == 0
    desc = json.loads(capsys.readouterr().out)
    assert desc["type"] == "group"
    assert desc["attrs"] == {"title": "x"}
    sat = next(m for m in desc["members"] if m["path"] == "sat")
    assert sat["shape"] == [4, 3, 16, 16]
    assert sat["shards"] == [2, 3, 16, 16]
    assert sat["dims"] == ["time", "channel", "y", "x"]
    assert sat["nbytes"] == 4 * 3 * 16 * 16 * 2
    assert sat["stored_objects"] == 2
    stored = sum(p.stat().st_size for p in (store / "sat" / "c").rglob("*") if p.is_file())
    assert sat["stored_bytes"] == stored
    assert sat["compression_ratio"] == pytest.approx(sat["nbytes"] / stored)
    t2m = desc["members"][0]["members"][0]
    assert t2m["stored_bytes"] == 0
    assert t2m["compression_ratio"] is None


@pytest.mark.parametrize("consolidated", [False, True])
@pytest.mark.parametrize("zarr_format", [2, 3])
def test_info_lists_arrays_it_cannot_read(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], zarr_format: int, consolidated: bool
) -> None:
    """A group with an array of strings (an xarray coordinate, say) is described, not refused."""
    import warnings

    path = tmp_path / "labels.zarr"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # zarr-python's note on v3 fixed-length strings
        g = zarr.open_group(str(path), mode="w", zarr_format=zarr_format)
        g.create_array("names", shape=(3,), dtype="<U4", chunks=(3,))
        g.create_array("values", shape=(3,), dtype="float32", chunks=(3,))
        if consolidated:
            zarr.consolidate_metadata(str(path), zarr_format=zarr_format)
    assert main(["info", str(path)]) == 0
    out = capsys.readouterr().out
    assert "names [not read by lsio] " in out
    assert "is not supported yet" in out
    assert "values [array" in out
    assert main(["info", "--json", str(path)]) == 0
    members = json.loads(capsys.readouterr().out)["members"]
    assert [(m["path"], m["type"]) for m in members] == [
        ("names", "unsupported"),
        ("values", "array"),
    ]


def test_info_errors(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["info", str(tmp_path / "missing.zarr")]) == 1
    err = capsys.readouterr().err
    assert "lsio info: error: no Zarr array or group at" in err
    assert "does not exist" in err
    (tmp_path / "bad.zarr").mkdir()
    (tmp_path / "bad.zarr" / "zarr.json").write_text("{")
    assert main(["info", str(tmp_path / "bad.zarr")]) == 1
    assert "malformed JSON" in capsys.readouterr().err


def test_bad_arguments_get_one_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exited:  # argparse's usage error
        main(["demo", "--threads", "0"])
    assert exited.value.code == 2
    assert "argument --threads: must be at least 1, got 0" in capsys.readouterr().err
    taken = tmp_path / "file"
    taken.write_text("")
    assert main(["demo", "--path", str(taken), "--timesteps", "4"]) == 1
    err = capsys.readouterr().err
    assert err.startswith("lsio demo: error: ")
    assert "File exists" in err
    assert err.count("\n") == 1
    zarr.create_array(str(tmp_path / "a.zarr"), shape=(4,), chunks=(2,), dtype="i2")
    assert (
        main(["rechunk", str(tmp_path / "a.zarr"), str(tmp_path / "b"), "--max-mem", "1e400"]) == 1
    )
    assert capsys.readouterr().err == "lsio rechunk: error: cannot read a size from '1e400'\n"


def test_output_cut_short_ends_quietly(tmp_path: Path) -> None:
    g = zarr.open_group(str(tmp_path / "g.zarr"), mode="w")
    for i in range(300):
        g.create_array(f"a{i:03d}", shape=(4,), chunks=(2,), dtype="i4")
    code = (
        "import sys; from lsio.cli._main import main; "
        f"sys.exit(main(['info', '--json', {str(tmp_path / 'g.zarr')!r}]))"
    )
    with subprocess.Popen(
        [sys.executable, "-c", code], stdout=subprocess.PIPE, stderr=subprocess.PIPE
    ) as proc:
        assert proc.stdout is not None
        assert proc.stderr is not None
        proc.stdout.read(10)
        proc.stdout.close()  # as `| head -c 10` does
        err = proc.stderr.read()
    assert proc.returncode == 1
    assert err == b""


def test_demo(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert (
        main(["demo", "--path", str(tmp_path / "demo"), "--timesteps", "4", "--threads", "2"]) == 0
    )
    out = capsys.readouterr().out
    assert "lsio reads equal the data written" in out
    assert "sharded v3  whole array" in out
    assert (tmp_path / "demo" / "demo.zarr" / "sat" / "zarr.json").is_file()


def test_console_script(store: Path) -> None:
    local = Path(sys.executable).parent / "lsio"
    exe = str(local) if local.exists() else shutil.which("lsio")
    assert exe is not None, "the lsio console script is installed with the package"
    result = subprocess.run(
        [exe, "info", str(store / "sat")], capture_output=True, text=True, check=True
    )
    assert result.stdout.startswith(f"{store / 'sat'} [array, v3] int16")
