"""Chunk decoders that compiled code calls by address: zstd, blosc, gzip, zlib, lz4 and none.

The batched read path hands runs of chunks to one Numba function (see
:mod:`lsio.compute._scatter`) that decodes each chunk with one C call and no
Python object. This module gives it the compiled
``decoded_at(code, ctx, hdr, dst, nbytes, src, size)`` that decodes the ``size``
stored bytes at ``src`` with compressor ``code`` (:attr:`CDecoder.code`) and
returns the address of the ``nbytes`` decoded bytes (``dst``, or ``src`` itself
for uncompressed chunks, which are then never copied twice), or 0 when they do
not decode to exactly ``nbytes``. ``ctx`` is the calling thread's decompression
context (0 for codecs without one) and ``hdr`` a small ``uint32`` array for
reading headers. The C functions are called by name (see
:func:`lsio.io.c_extern`), so the compiled code is cached on disk.

The C libraries are the ones numcodecs carries (c-blosc, lz4), the system's
libzstd (see :func:`lsio.compute._zstd.system_zstd`), and libdeflate for gzip
and zlib (from the ``deflate`` package, else the system's): libdeflate inflates
these chunks ~2.3x faster than zlib. Where a library is missing, there is no
decoder and the caller falls back to numcodecs.

Every decoder bounds what it reads by ``size``: zstd, libdeflate and lz4 take
it as an argument; c-blosc reads the compressed size from its header, so the
header must agree (``cbytes <= size``) before it is called.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import functools
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numba
import numpy as np

from lsio.compute._deflate import libdeflate
from lsio.compute._zstd import (
    DecompressContexts,
    RawDecoder,
    ThreadContexts,
    contexts_of,
    load_zstd_decoders,
    system_zstd,
)
from lsio.io import c_extern, libc_extern, library_function

__all__ = ["CDecoder", "blosc_library", "c_decoder", "decoded_at", "decoded_within"]


# Compressor codes of ``decoded_at``.
NONE, ZSTD, BLOSC, LZ4, GZIP, ZLIB = range(6)


@dataclass(frozen=True, eq=False)
class CDecoder:
    """One compressor's decoder of raw addresses, for Python and for compiled code.

    Attributes:
        name: The compressor (``"none"`` for uncompressed chunks).
        concatenates: Whether chunks stored back to back decode with one call
            into chunks back to back (zstd frames, uncompressed bytes).
        code: The compressor's code for the compiled :func:`decoded_at`.
        raw: ``raw(dst, dst_size, src, src_size)`` from Python: decodes into
            ``dst`` and returns the bytes decoded, which differ from
            ``dst_size`` on any failure (the caller explains it with the
            numcodecs decoder). Releases the GIL.
        context: The calling thread's context (0 when the codec needs none);
            raises ``MemoryError`` when one cannot be allocated.
    """

    name: str
    concatenates: bool
    code: int
    raw: RawDecoder
    context: Callable[[], int]


def _numcodecs_lz4() -> Any:
    import numcodecs.lz4

    return ctypes.CDLL(numcodecs.lz4.__file__)


@functools.cache
def blosc_library() -> ctypes.CDLL:
    """Numcodecs' c-blosc, whose context functions compiled code calls by name."""
    import numcodecs.blosc

    return ctypes.CDLL(numcodecs.blosc.__file__)


_memcpy = libc_extern("memcpy", 3)
_zstd_decompress = c_extern(
    "zstd_decompress_dctx", 5, library_function(system_zstd, "ZSTD_decompressDCtx")
)
_blosc_decompress = c_extern(
    "blosc_decompress_ctx", 4, library_function(blosc_library, "blosc_decompress_ctx")
)
_lz4_decompress = c_extern(
    "lz4_decompress_safe", 4, library_function(_numcodecs_lz4, "LZ4_decompress_safe")
)
_gzip_decompress = c_extern(
    "libdeflate_gzip_decompress", 6, library_function(libdeflate, "libdeflate_gzip_decompress")
)
_zlib_decompress = c_extern(
    "libdeflate_zlib_decompress", 6, library_function(libdeflate, "libdeflate_zlib_decompress")
)


@numba.njit(nogil=True, cache=True)
def decoded_at(
    code: int, ctx: int, hdr: Any, dst: int, nbytes: int, src: int, size: int
) -> int:  # pragma: no cover - compiled
    """Decode chunk bytes with compressor ``code`` (see the module doc)."""
    if code == NONE:
        return src if size == nbytes else 0
    if code == ZSTD:
        return dst if _zstd_decompress(ctx, dst, nbytes, src, size) == nbytes else 0
    if code == BLOSC:
        if size < 16:
            return 0
        # Header: version, versionlz, flags, typesize, nbytes, blocksize, cbytes.
        _memcpy(hdr.ctypes.data, src, 16)
        if hdr[1] != nbytes or hdr[3] > size:
            return 0
        # One internal thread: the caller's workers are the parallelism.
        return dst if _blosc_decompress(src, dst, nbytes, 1) & 0xFFFFFFFF == nbytes else 0
    if code == LZ4:
        # numcodecs' LZ4: the decoded size (little-endian uint32), then one LZ4 block.
        if size < 4:
            return 0
        _memcpy(hdr.ctypes.data, src, 4)
        if hdr[0] != nbytes:
            return 0
        got = _lz4_decompress(src + 4, dst, size - 4, nbytes) & 0xFFFFFFFF
        return dst if got == nbytes else 0
    # gzip and zlib. No actual-size pointer: libdeflate fails unless exactly
    # nbytes come out.
    if code == GZIP:
        failed = _gzip_decompress(ctx, src, size, dst, nbytes, 0) & 0xFFFFFFFF
    else:
        failed = _zlib_decompress(ctx, src, size, dst, nbytes, 0) & 0xFFFFFFFF
    return 0 if failed else dst


@numba.njit(nogil=True, cache=True)
def decoded_within(
    code: int,
    ctx: int,
    hdr: Any,
    dst: int,
    nbytes: int,
    data: int,
    base: int,
    length: int,
    offset: int,
    size: int,
) -> int:  # pragma: no cover - compiled
    """:func:`decoded_at` of the chunk stored at object ``offset`` in bytes read from ``base``.

    ``data`` holds the ``length`` bytes read from object offset ``base``;
    returns 0 when the chunk's ``size`` bytes are not all among them (an
    object shorter than its index says) or do not decode.
    """
    start = offset - base
    if start < 0 or start + size > length:
        return 0
    return decoded_at(code, ctx, hdr, dst, nbytes, data + start, size)


@numba.njit(nogil=True, cache=True)
def _raw_call(
    code: int, ctx: int, dst: int, nbytes: int, src: int, size: int
) -> int:  # pragma: no cover - compiled
    hdr = np.empty(4, dtype=np.uint32)
    got = decoded_at(code, ctx, hdr, dst, nbytes, src, size)
    if got == 0:
        return -1
    if got != dst:
        _memcpy(dst, got, nbytes)
    return nbytes


def _no_context() -> int:
    return 0


def _raw_of(code: int, context: Callable[[], int]) -> RawDecoder:
    """The Python-callable decoder of raw addresses for compressor ``code``."""

    def raw(dst: int, dst_size: int, src: int, src_size: int) -> int:
        got: int = _raw_call(code, context(), dst, dst_size, src, src_size)
        return got

    return raw


def _none() -> CDecoder:
    return CDecoder("none", True, NONE, _raw_of(NONE, _no_context), _no_context)


def _zstd() -> CDecoder | None:
    lib = system_zstd()
    raw = load_zstd_decoders()[1]
    if lib is None or raw is None:
        return None
    return CDecoder("zstd", True, ZSTD, raw, contexts_of(DecompressContexts(lib)))


def _blosc() -> CDecoder | None:
    if library_function(blosc_library, "blosc_decompress_ctx") is None:
        return None
    return CDecoder("blosc", False, BLOSC, _raw_of(BLOSC, _no_context), _no_context)


def _lz4() -> CDecoder | None:
    if library_function(_numcodecs_lz4, "LZ4_decompress_safe") is None:
        return None
    return CDecoder("lz4", False, LZ4, _raw_of(LZ4, _no_context), _no_context)


def _deflate(name: str) -> CDecoder | None:
    lib = libdeflate()
    if lib is None:
        return None
    code = GZIP if name == "gzip" else ZLIB
    context = contexts_of(
        ThreadContexts(lib.libdeflate_alloc_decompressor, lib.libdeflate_free_decompressor)
    )
    return CDecoder(name, False, code, _raw_of(code, context), context)


_LOADERS: dict[str, Callable[[], CDecoder | None]] = {
    "none": _none,
    "zstd": _zstd,
    "blosc": _blosc,
    "lz4": _lz4,
    "gzip": functools.partial(_deflate, "gzip"),
    "zlib": functools.partial(_deflate, "zlib"),
}


@functools.cache
def c_decoder(name: str) -> CDecoder | None:
    """The process's decoder for compressor ``name`` (``"none"``: uncompressed), or ``None``.

    ``None`` where lsio has no compiled decoder for it or its library is missing.
    Loaded once per process (the libraries and compiled code are read-only state).
    """
    loader = _LOADERS.get(name)
    if loader is None:
        return None
    try:
        return loader()
    except (OSError, AttributeError, ImportError):
        return None
