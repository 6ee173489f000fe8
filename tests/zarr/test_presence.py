"""``Array.stored_chunks``: which chunks are stored, found without reading any, against zarr-python."""

from __future__ import annotations

import itertools
import tempfile
from pathlib import Path

import numpy as np
from hypothesis import given

import lsio
import zarr
from tests.zarr.zarr_stores import StoreSpec, store_specs, write_store


def _holds_data(block: np.ndarray, fill: object) -> bool:
    """zarr-python stores a chunk only when it differs from the fill value (NaN equal to NaN)."""
    same = block == fill
    if block.dtype.kind in "fc":
        same |= np.isnan(block) & np.isnan(np.asarray(fill))
    return not bool(np.all(same))


@given(spec=store_specs())
def test_stored_chunks_match_what_zarr_python_wrote(spec: StoreSpec) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "a.zarr"
        write_store(spec, path)
        a = lsio.open_array(path)
        z = zarr.open_array(str(path), mode="r")
        full = np.asarray(z[...])
        got = a.stored_chunks()
        chunk = a.read_chunk_shape
        grid = tuple(-(-n // c) for n, c in zip(a.shape, chunk, strict=True))
        assert got.shape == grid
        assert got.dtype == bool
        for c in itertools.product(*map(range, grid)):
            region = tuple(slice(i * n, (i + 1) * n) for i, n in zip(c, chunk, strict=True))
            # A stored chunk reads back as data; an absent one as the fill value.
            if not got[c]:
                assert not _holds_data(full[region], z.fill_value), c
            elif spec.delete_seed is None:
                assert _holds_data(full[region], z.fill_value), c


def test_stored_chunks_ignore_temporary_files_and_chunks_beyond_the_shape(tmp_path: Path) -> None:
    a = lsio.create(tmp_path / "a.zarr", shape=(8, 8), dtype="u1", chunks=(4, 4), fill_value=0)
    a[0:4, 4:8] = 7
    a[4:8, 0:4] = 9
    (tmp_path / "a.zarr" / "c" / ".tmp-xyz").write_bytes(b"junk")
    np.testing.assert_array_equal(a.stored_chunks(), [[False, True], [True, False]])
    a.resize((4, 8))
    np.testing.assert_array_equal(a.stored_chunks(), [[False, True]])


def test_stored_inner_chunks_of_sharded_arrays(tmp_path: Path) -> None:
    a = lsio.create(
        tmp_path / "s.zarr",
        shape=(10, 6),
        dtype="f4",
        chunks=(2, 3),
        shards=(4, 6),
        fill_value=np.nan,
    )
    a[1, 4] = 1.0
    a[9, 0] = 2.0
    expected = np.zeros((5, 2), dtype=bool)
    expected[0, 1] = expected[4, 0] = True
    np.testing.assert_array_equal(a.stored_chunks(), expected)
