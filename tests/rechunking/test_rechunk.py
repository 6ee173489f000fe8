"""rechunk / convert: equal copies, bounded memory, resume after a kill, clear errors."""

from __future__ import annotations

import contextlib
import json
import signal
import subprocess
import sys
import tempfile
import textwrap
import time
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import lsio
import zarr
from lsio.rechunking import parse_size
from lsio.rechunking._rechunk import JOURNAL
from tests.strategies import chunkings
from tests.zarr.zarr_stores import store_specs, write_store


@st.composite
def targets(draw: st.DrawFn, shape: tuple[int, ...]) -> dict[str, Any]:
    chunks = draw(chunkings(shape))
    fmt = draw(st.sampled_from([2, 3]))
    shards = None
    if fmt == 3 and draw(st.booleans()):
        shards = tuple(c * draw(st.integers(1, 3)) for c in chunks)
    return {
        "chunks": chunks,
        "shards": shards,
        "zarr_format": fmt,
        "compressor": draw(st.sampled_from(["zstd", "gzip", None])),
    }


@settings(deadline=None, max_examples=40)
@given(data=st.data())
def test_rechunked_copies_are_equal(data: st.DataObject) -> None:
    spec = data.draw(store_specs())
    target = data.draw(targets(spec.shape))
    budget = data.draw(st.sampled_from(["1GB", 4096]))
    with tempfile.TemporaryDirectory() as tmp:
        src_path = Path(tmp) / "src.zarr"
        write_store(spec, src_path)
        src = lsio.open_array(src_path)
        itemsize = src.dtype.itemsize
        unit = target["shards"] or target["chunks"]
        if int(np.prod(unit)) * itemsize * 3 > parse_size(budget):
            budget = "1GB"
        out = lsio.rechunk(src, str(Path(tmp) / "dst.zarr"), max_mem=budget, **target)
        expected = zarr.open_array(str(src_path), mode="r")[...]
        got = zarr.open_array(str(Path(tmp) / "dst.zarr"), mode="r")
        np.testing.assert_array_equal(got[...], expected)
        np.testing.assert_array_equal(out[...], expected)
        assert out.chunks == target["chunks"]
        assert out.dims == src.dims
        assert out.zarr_format == target["zarr_format"]
        np.testing.assert_array_equal(np.asarray(out.fill_value), np.asarray(src.fill_value))
        assert not (Path(tmp) / "dst.zarr" / JOURNAL).exists()


def test_convert_v2_to_sharded_v3_keeps_metadata(tmp_path: Path) -> None:
    src = zarr.create_array(
        str(tmp_path / "v2.zarr"),
        shape=(6, 8),
        chunks=(2, 4),
        dtype="f4",
        zarr_format=2,
        fill_value=np.nan,
        attributes={"units": "K", "_ARRAY_DIMENSIONS": ["y", "x"]},
    )
    src[...] = np.arange(48, dtype="f4").reshape(6, 8)
    out = lsio.convert(str(tmp_path / "v2.zarr"), str(tmp_path / "v3.zarr"), shards=(6, 8))
    z = zarr.open_array(str(tmp_path / "v3.zarr"), mode="r")
    assert z.metadata.zarr_format == 3
    assert z.metadata.dimension_names == ("y", "x")
    assert dict(z.attrs) == {"units": "K"}
    assert np.isnan(z.fill_value)
    assert out.shards == (6, 8)
    np.testing.assert_array_equal(z[...], src[...])


_SIZE_CHILD = textwrap.dedent(
    """
    import sys, lsio
    def status(field):
        # VmHWM, not ru_maxrss: a vforked child inherits its parent's (pytest's) peak there.
        for line in open("/proc/self/status"):
            if line.startswith(field):
                return int(line.split()[1]) * 1024
    src = lsio.open_array(sys.argv[1])
    # A small copy first compiles the kernels (~130 MB of LLVM, once per process),
    # then the peak is reset ("5" > clear_refs): what is left to measure is the data.
    small = lsio.create(sys.argv[2] + ".warm", shape=(16, 64, 32), dtype="f8", chunks=(1, 32, 32),
                        compressor=None)
    small[...] = 1.0
    lsio.rechunk(small, sys.argv[2] + ".warm.out", chunks=(16, 8, 8), compressor=None,
                 max_mem=sys.argv[3])
    open("/proc/self/clear_refs", "w").write("5")
    before = status("VmRSS:")
    lsio.rechunk(src, sys.argv[2], chunks=(256, 8, 8), compressor=None, max_mem=sys.argv[3])
    print(status("VmHWM:") - before)
    """
)


def test_memory_is_bounded_by_max_mem(tmp_path: Path) -> None:
    # 256 MB of float64, chunked (1, 256, 256): the copy wants (256, 8, 8) chunks.
    a = lsio.create(
        tmp_path / "src.zarr",
        shape=(256, 512, 256),
        dtype="f8",
        chunks=(1, 256, 256),
        compressor=None,
    )
    for t in range(0, 256, 32):
        a[t : t + 32] = np.random.default_rng(t).standard_normal((32, 512, 256))
    budget = 32 * 2**20
    out = subprocess.run(
        [
            sys.executable,
            "-c",
            _SIZE_CHILD,
            str(tmp_path / "src.zarr"),
            str(tmp_path / "dst.zarr"),
            str(budget),
        ],
        check=True,
        capture_output=True,
        text=True,
    )
    growth = int(out.stdout.strip().splitlines()[-1])
    assert growth < 3 * budget, f"peak RSS grew by {growth / 2**20:.0f} MiB for a 256 MiB array"
    np.testing.assert_array_equal(lsio.open_array(tmp_path / "dst.zarr")[100], a[100])


_KILLED_CHILD = textwrap.dedent(
    """
    import sys, lsio
    lsio.rechunk(sys.argv[1], sys.argv[2], chunks=(64, 4, 64), compressor="gzip:9", max_mem="300KB")
    """
)


def test_resume_after_a_kill(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    a = lsio.create(tmp_path / "src.zarr", shape=(64, 64, 64), dtype="i4", chunks=(8, 64, 64))
    a[...] = np.arange(64**3, dtype="i4").reshape(64, 64, 64)
    dst = tmp_path / "dst.zarr"
    proc = subprocess.Popen(
        [sys.executable, "-c", _KILLED_CHILD, str(tmp_path / "src.zarr"), str(dst)]
    )
    done: list[int] = []
    deadline = time.monotonic() + 60
    while len(done) < 2 and time.monotonic() < deadline and proc.poll() is None:
        time.sleep(0.01)
        with contextlib.suppress(OSError, ValueError):
            done = json.loads((dst / JOURNAL).read_text())["done"]
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert len(done) >= 2, "the copy finished or never started before the kill"
    assert not (dst / "zarr.json").exists()  # no array visible until the copy is complete
    written: list[Any] = []
    original = lsio.Array.write

    def counting(self: lsio.Array, selection: Any, values: Any) -> None:
        written.append(selection)
        original(self, selection, values)

    monkeypatch.setattr(lsio.Array, "write", counting)
    out = lsio.rechunk(
        str(tmp_path / "src.zarr"),
        str(dst),
        chunks=(64, 4, 64),
        compressor="gzip:9",
        max_mem="300KB",
    )
    np.testing.assert_array_equal(out[...], a[...])
    slabs = 16  # (64, 4, 64) int32 chunks of 64 KiB: one per slab at a 100 KB slab budget
    assert len(written) <= slabs - len(done) + 1  # finished slabs were not written again


def test_resume_with_another_max_mem_starts_again(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    src = tmp_path / "src.zarr"
    a = lsio.create(src, shape=(64, 64), dtype="i4", chunks=(8, 8))
    a[...] = np.arange(1, 64 * 64 + 1, dtype="i4").reshape(64, 64)
    dst = tmp_path / "dst.zarr"
    original = lsio.Array.write
    calls: list[Any] = []

    def dying(self: lsio.Array, selection: Any, values: Any) -> None:
        calls.append(selection)
        if len(calls) == 3:
            raise KeyboardInterrupt  # as a kill would stop it, after two slabs
        original(self, selection, values)

    monkeypatch.setattr(lsio.Array, "write", dying)
    with pytest.raises(KeyboardInterrupt):
        lsio.rechunk(str(src), str(dst), chunks=(8, 8), max_mem=8 * 8 * 4 * 6)
    assert len(json.loads((dst / JOURNAL).read_text())["done"]) == 2
    monkeypatch.setattr(lsio.Array, "write", original)
    # Other slabs: the two done are not the first two of these.
    out = lsio.rechunk(str(src), str(dst), chunks=(8, 8))
    np.testing.assert_array_equal(out[...], a[...])
    np.testing.assert_array_equal(zarr.open_array(str(dst), mode="r")[...], a[...])


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"max_mem": "50B"}, "max_mem of 50 bytes is too small"),
        ({"max_mem": "lots"}, "cannot read a size from 'lots'"),
        ({"max_mem": "1e400"}, "cannot read a size from '1e400'"),
        ({"chunks": (3,)}, "has 1 dimensions, the array has 2"),
        ({"shards": (5, 5)}, "must be multiples of chunks"),
    ],
)
def test_bad_arguments(tmp_path: Path, kwargs: dict[str, Any], message: str) -> None:
    a = lsio.create(tmp_path / "src.zarr", shape=(8, 8), dtype="i2", chunks=(2, 2))
    args = {"chunks": (4, 4), **kwargs}
    with pytest.raises(lsio.InvalidArgumentError, match=message):
        lsio.rechunk(a, str(tmp_path / "dst.zarr"), **args)
    assert not (tmp_path / "dst.zarr").exists()


def test_refuses_overlaps_and_existing_destinations(tmp_path: Path) -> None:
    a = lsio.create(tmp_path / "src.zarr", shape=(8,), dtype="i2", chunks=(2,))
    with pytest.raises(lsio.InvalidArgumentError, match="overlaps the source"):
        lsio.rechunk(a, str(tmp_path / "src.zarr"))
    with pytest.raises(lsio.InvalidArgumentError, match="overlaps the source"):
        lsio.rechunk(a, str(tmp_path / "src.zarr" / "inner"))
    lsio.create(tmp_path / "dst.zarr", shape=(1,), dtype="i1", chunks=(1,))
    with pytest.raises(lsio.NodeExistsError, match="overwrite=True"):
        lsio.rechunk(a, str(tmp_path / "dst.zarr"))
    assert lsio.rechunk(a, str(tmp_path / "dst.zarr"), overwrite=True).shape == (8,)
