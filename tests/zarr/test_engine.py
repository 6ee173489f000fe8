"""How the engine plans basic selections: in place where a chunk is a contiguous block."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

import lsio
import zarr
from lsio.plan import normalize_basic
from lsio.zarr._engine import COPY, DIRECT, Target, _plan_basic


def _plan(shape: tuple[int, ...], chunks: tuple[int, ...], out: np.ndarray) -> list[Target]:
    planned: dict[tuple[int, ...], list[Target]] = {}
    _plan_basic(normalize_basic(Ellipsis, shape), chunks, out, planned)
    return [t for ts in planned.values() for t in ts]


def test_contiguous_blocks_are_decoded_in_place() -> None:
    out = np.empty((4, 6))
    targets = _plan((4, 6), (2, 6), out)
    assert len(targets) == 2
    assert all(t.kind == DIRECT and t.dst.base is out for t in targets)


def test_strided_blocks_are_copied() -> None:
    out = np.empty((4, 6))
    targets = _plan((4, 6), (2, 3), out)  # (2, 3) blocks of a (4, 6) array are strided
    assert len(targets) == 4
    assert all(t.kind == COPY for t in targets)


def test_partial_edge_chunks_are_copied() -> None:
    out = np.empty((5, 6))
    kinds = sorted(t.kind for t in _plan((5, 6), (2, 6), out))
    assert kinds == [DIRECT, DIRECT, COPY]  # rows 4..5 of a chunk of 2 rows: only one row exists


@pytest.mark.parametrize("shards", [None, (4, 8, 8)])
@pytest.mark.parametrize("threads", [1, 3])
def test_box_reads_stacked_chunkwise_and_split(
    tmp_path: Path, shards: tuple[int, ...] | None, threads: int
) -> None:
    # (1, 2, 4) int16 chunks are small (stacked per box); (2, 8, 8) float64 ones are
    # large enough to be read chunk by chunk, with boxes split between tasks.
    for chunks, dtype in [((1, 2, 4), "int16"), ((2, 8, 8), "float64")]:
        data = np.arange(8 * 16 * 16, dtype=dtype).reshape(8, 16, 16)
        path = tmp_path / f"{dtype}-{shards}.zarr"
        z = zarr.create_array(
            str(path), shape=data.shape, chunks=chunks, shards=shards, dtype=dtype, fill_value=-1
        )
        z[...] = data
        z[0:2, 0:8, 0:8] = -1  # inner chunks / chunks not stored: the fill value
        expected = z[...]
        a = lsio.open_array(path, config=lsio.ReadConfig(threads=threads, tasks_per_thread=5))
        for sel in [(slice(None),), (slice(1, 7), slice(3, 13), slice(2, 15)), (3, slice(None), 5)]:
            np.testing.assert_array_equal(a[sel], expected[sel])
        out = np.zeros((16, 8, 16), dtype=dtype)[::2, :, ::2]  # not contiguous
        np.testing.assert_array_equal(
            a.read((slice(0, 8), 3, slice(0, 8)), out=out[:, 0]), expected[:, 3, :8]
        )
        crops = [
            (slice(t, t + 2), slice(y, y + 9), slice(x, x + 9))
            for t, y, x in [(0, 1, 2), (1, 5, 6), (6, 7, 7)]
        ]
        for got, sel in zip(a.read_many(crops), crops, strict=True):
            np.testing.assert_array_equal(got, expected[sel])


def test_block_reads_reuse_dropped_results_and_keep_held_ones(tmp_path: Path) -> None:
    data = np.arange(8 * 256 * 1024, dtype="int32").reshape(8, 256, 1024)
    z = zarr.create_array(
        str(tmp_path / "a.zarr"), shape=data.shape, chunks=(1, 64, 256), dtype="int32"
    )
    z[...] = data
    a = lsio.open_array(tmp_path / "a.zarr")  # blocks of 4 time steps: 4 MiB, pooled
    block = a[0:4]
    first = block.__array_interface__["data"][0]
    del block
    again = a[4:8]
    assert again.__array_interface__["data"][0] == first  # the dropped block's memory
    np.testing.assert_array_equal(again, data[4:8])
    held = a[0:4]  # `again` is alive: new memory, and `again` keeps its values
    np.testing.assert_array_equal(held, data[0:4])
    np.testing.assert_array_equal(again, data[4:8])
    off = lsio.open_array(tmp_path / "a.zarr", config=lsio.ReadConfig(output_pool=0))
    block = off[0:4]
    assert off.context.outputs.kept_bytes == 0  # fresh memory, kept by nobody but `block`
    np.testing.assert_array_equal(block, data[0:4])
