"""The compiled chunk decoders (and libdeflate's encoder) against numcodecs, and bad input refused."""

from __future__ import annotations

import numcodecs
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from lsio.compute import CDecoder, c_decoder, numcodecs_codec
from lsio.compute._deflate import deflate_compressors

# Each compressor lsio decodes in compiled code, as numcodecs writes it.
CODECS = {
    "none": None,
    "zstd": numcodecs.Zstd(level=1),
    "blosc": numcodecs.Blosc(cname="lz4", clevel=5, shuffle=numcodecs.Blosc.SHUFFLE),
    "lz4": numcodecs.LZ4(),
    "gzip": numcodecs.GZip(level=1),
    "zlib": numcodecs.Zlib(level=1),
}


def _decoder(name: str) -> CDecoder:
    decoder = c_decoder(name)
    assert decoder is not None, f"no compiled decoder for {name} on this machine"
    assert decoder.name == name
    return decoder


def _encode(name: str, raw: bytes) -> bytes:
    codec = CODECS[name]
    return raw if codec is None else bytes(codec.encode(raw))


def _raw(decoder: CDecoder, stored: bytes, nbytes: int) -> tuple[int, np.ndarray]:
    src = np.frombuffer(stored, dtype=np.uint8) if stored else np.zeros(1, np.uint8)
    # Guard bytes after the destination: a decoder must never write past nbytes.
    dst = np.full(nbytes + 64, 0xA5, dtype=np.uint8)
    got = decoder.raw(dst.ctypes.data, nbytes, src.ctypes.data, len(stored))
    assert (dst[nbytes:] == 0xA5).all()
    return got, dst[:nbytes]


_chunks = st.one_of(
    st.binary(min_size=1, max_size=5000),
    # Compressible: small integers as int16, the shape of image chunks.
    st.integers(1, 3000).map(
        lambda n: np.random.default_rng(n).integers(-9, 9, n, dtype="<i2").tobytes()
    ),
)


@pytest.mark.parametrize("name", sorted(CODECS))
@settings(max_examples=40, deadline=None)
@given(raw=_chunks)
def test_decodes_what_numcodecs_encodes(name: str, raw: bytes) -> None:
    got, out = _raw(_decoder(name), _encode(name, raw), len(raw))
    assert got == len(raw)
    assert out.tobytes() == raw


@pytest.mark.parametrize("name", sorted(CODECS))
@settings(max_examples=40, deadline=None)
@given(raw=_chunks, data=st.data())
def test_bad_input_is_refused_not_decoded(name: str, raw: bytes, data: st.DataObject) -> None:
    decoder = _decoder(name)
    stored = _encode(name, raw)
    # Expecting another size: never a partial or overlong decode.
    other = data.draw(st.integers(1, 2 * len(raw) + 8).filter(lambda n: n != len(raw)))
    assert _raw(decoder, stored, other)[0] != other
    # Cut short.
    if len(stored) > 1:
        cut = data.draw(st.integers(0, len(stored) - 1))
        assert _raw(decoder, stored[:cut], len(raw))[0] != len(raw)


@pytest.mark.parametrize("name", ["zstd", "blosc", "lz4", "gzip", "zlib"])
def test_garbage_is_refused(name: str) -> None:
    decoder = _decoder(name)
    garbage = np.random.default_rng(1).integers(0, 256, 4096, dtype=np.uint8).tobytes()
    assert _raw(decoder, garbage, 8192)[0] != 8192


def test_unknown_compressors_have_no_decoder() -> None:
    assert c_decoder("bz2") is None
    assert c_decoder("lzma") is None


def test_concatenated_chunks_decode_in_one_call_only_where_declared() -> None:
    parts = [np.arange(i * 100, i * 100 + 700, dtype="<i2").tobytes() for i in range(3)]
    for name in ("none", "zstd"):
        decoder = _decoder(name)
        assert decoder.concatenates
        stored = b"".join(_encode(name, p) for p in parts)
        got, out = _raw(decoder, stored, sum(map(len, parts)))
        assert got == sum(map(len, parts))
        assert out.tobytes() == b"".join(parts)
    assert not any(_decoder(n).concatenates for n in ("blosc", "lz4", "gzip", "zlib"))


@pytest.mark.parametrize("name", ["gzip", "zlib"])
@settings(max_examples=30, deadline=None)
@given(raw=_chunks, level=st.sampled_from([-1, 0, 1, 5, 9]), readonly=st.booleans())
def test_gzip_and_zlib_encoded_by_libdeflate_read_back_with_numcodecs(
    name: str, raw: bytes, level: int, readonly: bool
) -> None:
    codec = numcodecs_codec(name, {"level": level})
    data = memoryview(raw) if readonly else memoryview(bytearray(raw))
    stored = bytes(codec.encode(data))
    assert bytes(numcodecs.get_codec({"id": name}).decode(stored)) == raw
    got, out = _raw(_decoder(name), stored, len(raw))
    assert got == len(raw)
    assert out.tobytes() == raw


def test_deflate_levels_beyond_libdeflate_are_refused() -> None:
    compressors = deflate_compressors()
    assert compressors is not None
    with pytest.raises(ValueError, match=r"gzip level must be in 0\.\.12, got 13"):
        compressors.compress("gzip", 13, memoryview(b"abc"))
