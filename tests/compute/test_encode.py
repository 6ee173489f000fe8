"""The compiled grid encoder against zstandard, gzip, zlib and NumPy, for every dtype and layout."""

from __future__ import annotations

import gzip
import zlib
from typing import Any

import numcodecs
import numpy as np
import pytest
import zstandard
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from lsio.compute import GridCompression, load_grid_encoder
from lsio.compute._encode import compress_bound

_DTYPES = ["bool", "int8", "uint8", "int16", "uint32", "int64", "float32", "float64"]


def _layout(draw: st.DrawFn, x: np.ndarray) -> np.ndarray:
    """``x`` itself, or the same values in another memory layout."""
    kind = draw(st.sampled_from(["c", "f", "reversed", "strided", "broadcast"]))
    if kind == "f":
        return np.asfortranarray(x)
    if kind == "reversed":
        return np.ascontiguousarray(x[(slice(None, None, -1),) * x.ndim])[
            (slice(None, None, -1),) * x.ndim
        ]
    if kind == "strided":
        wide = np.zeros(tuple(2 * s for s in x.shape), dtype=x.dtype)
        view = wide[(slice(None, None, 2),) * x.ndim]
        view[...] = x
        return view
    if kind == "broadcast" and x.size:
        return np.broadcast_to(x.reshape(-1)[0], x.shape)
    return x


@st.composite
def _cases(draw: st.DrawFn) -> tuple[np.ndarray, tuple[int, ...], Any]:
    dtype = np.dtype(draw(st.sampled_from(_DTYPES)))
    ndim = draw(st.integers(1, 4))
    chunk = tuple(draw(st.lists(st.integers(1, 5), min_size=ndim, max_size=ndim)))
    grid = tuple(draw(st.lists(st.integers(1, 3), min_size=ndim, max_size=ndim)))
    shape = tuple(c * g for c, g in zip(chunk, grid, strict=True))
    if dtype.kind == "f":
        fill = draw(st.sampled_from([0.0, -0.0, 1.5, -7.0]))
        elements = st.sampled_from([fill, -fill, 0.0, -0.0, 2.0, float("nan")])
    elif dtype.kind == "b":
        fill = draw(st.booleans())
        elements = st.booleans()
    else:
        info = np.iinfo(dtype)
        fill = draw(st.sampled_from([0, 1, int(info.max), int(info.min)]))
        elements = st.sampled_from([fill, 0, 1, int(info.max)])
    x = draw(hnp.arrays(dtype, shape, elements=elements))
    return _layout(draw, x), chunk, fill


@settings(deadline=None, max_examples=150)
@given(
    case=_cases(),
    checksum=st.booleans(),
    start=st.sampled_from([0, 16]),
    compressor=st.sampled_from(["zstd", "zstd", "gzip", "zlib", "none", "blosc"]),
    shuffle=st.sampled_from([0, 1, 2]),
)
def test_every_chunk_decodes_to_its_values_and_fill_chunks_are_skipped(
    case: tuple[np.ndarray, tuple[int, ...], Any],
    checksum: bool,
    start: int,
    compressor: str,
    shuffle: int,
) -> None:
    block, chunk, fill = case
    compression = GridCompression(
        compressor, 3, checksum, shuffle=shuffle, typesize=block.dtype.itemsize
    )
    encoder = load_grid_encoder(compression, block.dtype, fill)
    assert encoder is not None
    out, sizes, end = encoder.encode(block, chunk, start=start)
    grid = tuple(s // c for s, c in zip(block.shape, chunk, strict=True))
    assert sizes.shape == (int(np.prod(grid)),)
    pos = start
    for i, coords in enumerate(np.ndindex(*grid)):
        region = tuple(slice(g * c, (g + 1) * c) for g, c in zip(coords, chunk, strict=True))
        expected = np.ascontiguousarray(block[region])
        # "Only the fill value" compares values (NaN never equals a non-NaN fill; -0.0 == 0.0).
        if np.array_equal(expected, np.full_like(expected, fill)):
            assert sizes[i] == -1
            continue
        assert sizes[i] > 0
        frame = bytes(out[pos : pos + sizes[i]])
        if compressor == "zstd":
            params = zstandard.get_frame_parameters(frame)
            assert params.content_size == expected.nbytes
            assert params.has_checksum == checksum
            decoded = zstandard.ZstdDecompressor().decompress(frame)
        elif compressor == "blosc":
            decoded = numcodecs.Blosc().decode(frame)
            # Byte for byte what numcodecs makes of the chunk with the same settings.
            same = numcodecs.Blosc("lz4", 3, shuffle, typesize=block.dtype.itemsize)
            assert frame == same.encode(expected.tobytes())
        else:
            decoded = {"gzip": gzip.decompress, "zlib": zlib.decompress, "none": bytes}[compressor](
                frame
            )
        assert decoded == expected.tobytes()
        pos += int(sizes[i])
    assert end == pos


def test_output_is_reused_and_sized_for_the_worst_case() -> None:
    encoder = load_grid_encoder(GridCompression(level=1), np.dtype("uint8"), 0)
    assert encoder is not None
    noise = np.random.default_rng(0).integers(1, 255, size=(4, 1000), dtype=np.uint8)
    out, sizes, end = encoder.encode(noise, (1, 1000), extra=100)
    # Incompressible rows grow a little; the buffer holds the bound plus the extra.
    assert out.shape[0] >= 4 * compress_bound(1000) + 100
    assert (sizes > 1000).all()
    assert end == sizes.sum()
    again, _, _ = encoder.encode(noise, (1, 1000))
    assert again is out


def test_where_it_does_not_apply() -> None:
    zstd = GridCompression()
    assert load_grid_encoder(zstd, np.dtype("float32"), float("nan")) is None
    assert load_grid_encoder(zstd, np.dtype("complex64"), 0) is None
    assert load_grid_encoder(zstd, np.dtype(">i4"), 0) is None
    assert load_grid_encoder(GridCompression("bz2"), np.dtype("int16"), 0) is None
    assert load_grid_encoder(GridCompression("gzip", 13), np.dtype("int16"), 0) is None
    for bad in [{"cname": "lzma"}, {"level": 10}, {"shuffle": -1}, {"typesize": 0}]:
        blosc = GridCompression("blosc", **{"level": 5, **bad})  # type: ignore[arg-type]
        assert load_grid_encoder(blosc, np.dtype("int16"), 0) is None
    encoder = load_grid_encoder(zstd, np.dtype("int16"), 0)
    assert encoder is not None
    with pytest.raises(ValueError, match="block of int32"):
        encoder.encode(np.zeros(4, np.int32), (2,))


@pytest.mark.parametrize("cname", ["lz4", "zstd", "blosclz"])
def test_blosc_chunks_that_do_not_compress_are_stored_as_they_are(cname: str) -> None:
    # Given more room than the bound, c-blosc keeps blocks that grew (412 bytes
    # for 384 measured), and the chunks after them overran the output.
    encoder = load_grid_encoder(
        GridCompression("blosc", 5, cname=cname, shuffle=1, typesize=2), np.dtype("int16"), 7
    )
    assert encoder is not None
    noise = np.random.default_rng(2).integers(-500, 500, size=(12, 192), dtype=np.int16)
    out, sizes, end = encoder.encode(noise, (1, 192))
    same = numcodecs.Blosc(cname, 5, 1, typesize=2)
    pos = 0
    for row, size in zip(noise, sizes.tolist(), strict=True):
        frame = bytes(out[pos : pos + size])
        assert frame == same.encode(row.tobytes())  # what numcodecs makes of it
        assert size <= row.nbytes + 16
        assert numcodecs.Blosc().decode(frame) == row.tobytes()
        pos += size
    assert end == pos


def test_zstd_libraries_compress_alike() -> None:
    """Every libzstd the encoder may pick, zstandard's own among them, writes frames zstandard reads."""
    from lsio.compute import _zstd

    lib = _zstd.newest_zstd()
    assert lib is not None
    bundled = _zstd._zstandard_library()
    assert bundled is not None, "zstandard's cffi backend (cffi is a dependency) is missing"
    # The newest version wins; at a tie the one inside zstandard (listed last).
    assert int(lib.ZSTD_versionNumber()) >= int(bundled.ZSTD_versionNumber())
    if int(lib.ZSTD_versionNumber()) == int(bundled.ZSTD_versionNumber()):
        assert lib is bundled
    chunk = (np.arange(11 * 64 * 64, dtype=np.int16) % 251).reshape(11, 64, 64)
    for candidate in (lib, bundled):
        ctx = candidate.ZSTD_createCCtx()
        try:
            for param, value in ((100, 3), (200, 1)):  # level 3, content size in the header
                assert not candidate.ZSTD_isError(
                    candidate.ZSTD_CCtx_setParameter(ctx, param, value)
                )
            out = np.empty(chunk.nbytes + 1024, np.uint8)
            n = candidate.ZSTD_compress2(
                ctx, out.ctypes.data, out.nbytes, chunk.ctypes.data, chunk.nbytes
            )
            assert not candidate.ZSTD_isError(n)
        finally:
            candidate.ZSTD_freeCCtx(ctx)
        assert zstandard.ZstdDecompressor().decompress(out[:n].tobytes()) == chunk.tobytes()
