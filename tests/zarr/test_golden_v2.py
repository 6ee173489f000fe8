"""Golden Zarr v2 stores (committed files): F and C order, both separators, null fill."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

import lsio
from tests.data.make_golden import CASES, SHAPE, expected

GOLDEN = Path(__file__).parent.parent / "data" / "golden"


@pytest.mark.parametrize("name", sorted(CASES))
def test_golden_store_reads_expected_values(name: str) -> None:
    dtype, _order, _sep, _, chunks = CASES[name]
    a = lsio.open_array(GOLDEN / f"{name}.zarr")
    assert a.zarr_format == 2
    assert a.shape == SHAPE
    assert a.chunks == chunks
    assert a.dtype == np.dtype(dtype).newbyteorder("=")
    assert a.dtype.isnative
    assert a.dims == ("t", "y", "x")
    assert a.attrs["case"] == name
    assert a.fill_value == 0
    want = expected(SHAPE, dtype)
    np.testing.assert_array_equal(a[...], want)
    np.testing.assert_array_equal(a[1:4, ::-2, 3], want[1:4, ::-2, 3])
    np.testing.assert_array_equal(a.oindex[[4, 0], :, [1, 3]], want[[4, 0]][:, :, [1, 3]])
    assert a[2, 3, 1] == want[2, 3, 1]
