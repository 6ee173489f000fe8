"""Rows copied past the caches (non-temporal stores) against plain copies."""

from __future__ import annotations

import re
from typing import Any

import numba
import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from lsio.compute._stream import LINE, copy_row, store_fence


@numba.njit
def _copy(dst: Any, src: Any, offset: int, start: int, nbytes: int, stream: bool) -> None:
    copy_row(dst.ctypes.data + offset, src.ctypes.data + start, nbytes, stream)
    store_fence()


def _aligned(nbytes: int) -> np.ndarray:
    raw = np.zeros(nbytes + LINE, dtype=np.uint8)
    skip = (-raw.ctypes.data) % LINE
    return raw[skip : skip + nbytes]


@settings(max_examples=200, deadline=None)
@given(
    offset=st.integers(0, 3 * LINE),
    start=st.integers(0, LINE),
    nbytes=st.integers(0, 6 * LINE),
    stream=st.booleans(),
    whole_lines=st.booleans(),
)
def test_a_row_copies_exactly_its_bytes(
    offset: int, start: int, nbytes: int, stream: bool, whole_lines: bool
) -> None:
    # Streamed (line-aligned rows) or not, the row lands where asked and nothing
    # beside it changes; the source's alignment does not matter. Half the rows
    # are whole lines, so that streamed rows are as common as the others.
    if whole_lines:
        offset, nbytes = offset // LINE * LINE, max(LINE, nbytes // LINE * LINE)
    src = np.random.default_rng(offset * 1000 + start).integers(0, 256, 8 * LINE, dtype=np.uint8)
    dst = _aligned(10 * LINE)
    _copy(dst, src, offset, start, nbytes, stream)
    expected = np.zeros_like(dst)
    expected[offset : offset + nbytes] = src[start : start + nbytes]
    np.testing.assert_array_equal(dst, expected)


def test_whole_lines_are_streamed_and_fenced() -> None:
    # The compiled copy uses the machine's non-temporal stores and, on x86,
    # SFENCE (LLVM's own fence is a locked instruction there).
    dst, src = _aligned(4 * LINE), np.arange(4 * LINE, dtype=np.uint8)
    _copy(dst, src, 0, 0, 4 * LINE, True)
    np.testing.assert_array_equal(dst, src)
    asm = "".join(_copy.inspect_asm(sig) for sig in _copy.signatures)
    if re.search(r"\bmovq?\b|%rsp", asm):  # x86 assembly
        assert re.search(r"\bv?movnt\w+", asm)
        assert "sfence" in asm
