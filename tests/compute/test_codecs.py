"""Codecs decode what numcodecs encodes, into place where they can, and reject bad data."""

from __future__ import annotations

import crc32c
import numcodecs
import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from lsio.compute import (
    BytesCodec,
    CodecPipeline,
    Crc32cCodec,
    DecodeError,
    TransposeCodec,
    numcodecs_codec,
    zstd_content_size,
)
from tests.strategies import DTYPES

COMPRESSORS = {
    "zstd": numcodecs.Zstd(level=1),
    "blosc": numcodecs.Blosc(cname="lz4"),
    "gzip": numcodecs.GZip(level=1),
    "zlib": numcodecs.Zlib(level=1),
    "lz4": numcodecs.LZ4(),
}


def _encode(arr: np.ndarray, endian: str, names: list[str], checksum: bool) -> bytes:
    raw = arr.astype(arr.dtype.newbyteorder("<" if endian == "little" else ">")).tobytes()
    for name in names:
        raw = bytes(COMPRESSORS[name].encode(raw))
    if checksum:
        raw += crc32c.crc32c(raw).to_bytes(4, "little")
    return raw


@given(
    dtype=st.sampled_from(DTYPES),
    shape=st.lists(st.integers(1, 6), min_size=0, max_size=3).map(tuple),
    endian=st.sampled_from(["little", "big"]),
    names=st.lists(st.sampled_from(sorted(COMPRESSORS)), max_size=2),
    checksum=st.booleans(),
    transpose=st.booleans(),
    seed=st.integers(0, 2**32 - 1),
)
def test_pipeline_roundtrip(
    dtype: str,
    shape: tuple[int, ...],
    endian: str,
    names: list[str],
    checksum: bool,
    transpose: bool,
    seed: int,
) -> None:
    rng = np.random.default_rng(seed)
    arr = rng.integers(0, 100, size=shape).astype(dtype)
    order = tuple(range(len(shape)))[::-1]
    stored = arr.transpose(order) if transpose else arr
    data = memoryview(_encode(np.ascontiguousarray(stored), endian, names, checksum))
    pipeline = CodecPipeline(
        (TransposeCodec(order),) if transpose else (),
        BytesCodec(endian),
        tuple(numcodecs_codec(n, {}) for n in names) + ((Crc32cCodec(),) if checksum else ()),
    )
    np.testing.assert_array_equal(pipeline.decode(data, shape, np.dtype(dtype)), arr)
    out = np.empty(shape, dtype=dtype)
    pipeline.decode_into(data, out)
    np.testing.assert_array_equal(out, arr)


def test_zstd_content_size_matches() -> None:
    for n in (0, 1, 255, 256, 70_000, 5_000_000):
        frame = memoryview(numcodecs.Zstd(level=1).encode(np.zeros(n, dtype=np.uint8)))
        assert zstd_content_size(frame) == n
    assert zstd_content_size(memoryview(b"not zstd")) is None


@pytest.mark.parametrize("name", ["zstd", "blosc"])
def test_decode_into_rejects_wrong_size(name: str) -> None:
    data = memoryview(COMPRESSORS[name].encode(np.arange(10, dtype="i4").tobytes()))
    pipeline = CodecPipeline((), BytesCodec("little"), (numcodecs_codec(name, {}),))
    with pytest.raises(DecodeError, match="decodes to 40 bytes, expected 44"):
        pipeline.decode_into(data, np.empty(11, dtype="i4"))


def test_wrong_size_and_corrupt_data() -> None:
    pipeline = CodecPipeline((), BytesCodec("little"), ())
    with pytest.raises(DecodeError, match="chunk has 8 bytes, expected 12"):
        pipeline.decode(memoryview(b"\0" * 8), (3,), np.dtype("i4"))
    with pytest.raises(DecodeError, match="chunk has 8 bytes, expected 12"):
        pipeline.decode_into(memoryview(b"\0" * 8), np.empty(3, dtype="i4"))
    gz = CodecPipeline((), BytesCodec("little"), (numcodecs_codec("gzip", {}),))
    with pytest.raises(DecodeError, match="gzip decode failed"):
        gz.decode(memoryview(b"garbage!"), (2,), np.dtype("i4"))
    crc = Crc32cCodec()
    with pytest.raises(DecodeError, match="too short"):
        crc.decode(memoryview(b"ab"))
    with pytest.raises(DecodeError, match="checksum mismatch"):
        crc.decode(memoryview(b"abcd\0\0\0\0"))


def test_decode_into_writes_straight_into_a_view() -> None:
    arr = np.arange(24, dtype="u2").reshape(2, 3, 4)
    data = memoryview(COMPRESSORS["zstd"].encode(arr.tobytes()))
    big = np.zeros((4, 3, 4), dtype="u2")
    pipeline = CodecPipeline((), BytesCodec("little"), (numcodecs_codec("zstd", {}),))
    pipeline.decode_into(data, big[1:3])
    np.testing.assert_array_equal(big[1:3], arr)
    assert not big[0].any()
    assert not big[3].any()
