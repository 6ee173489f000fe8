"""Chunk decoders that compiled code calls by address: zstd, blosc, gzip, zlib, lz4 and none.

The batched read path hands runs of chunks to one Numba function (see
:mod:`lsio.compute._scatter`) that decodes each chunk with one C call and no
Python object. This module gives that function, per compressor, a compiled
``decoded_at(ctx, hdr, dst, nbytes, src, size)`` that decodes the ``size``
stored bytes at ``src`` and returns the address of the ``nbytes`` decoded bytes
(``dst``, or ``src`` itself for uncompressed chunks, which are then never
copied twice), or 0 when they do not decode to exactly ``nbytes``. ``ctx`` is the
calling thread's decompression context (0 for codecs without one) and ``hdr`` a
small ``uint32`` array for reading headers.

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
from lsio.io import c_function

__all__ = ["CDecoder", "blosc_library", "c_decoder", "c_memcpy"]


@dataclass(frozen=True, eq=False)
class CDecoder:
    """One compressor's decoder of raw addresses, for Python and for compiled code.

    Attributes:
        name: The compressor (``"none"`` for uncompressed chunks).
        concatenates: Whether chunks stored back to back decode with one call
            into chunks back to back (zstd frames, uncompressed bytes).
        decoded_at: The compiled ``decoded_at(ctx, hdr, dst, nbytes, src, size)``
            (see the module doc).
        raw: ``raw(dst, dst_size, src, src_size)`` from Python: decodes into
            ``dst`` and returns the bytes decoded, which differ from
            ``dst_size`` on any failure (the caller explains it with the
            numcodecs decoder). Releases the GIL.
        context: The calling thread's context (0 when the codec needs none);
            raises ``MemoryError`` when one cannot be allocated.
    """

    name: str
    concatenates: bool
    decoded_at: Any
    raw: RawDecoder
    context: Callable[[], int]


@functools.cache
def c_memcpy() -> Any:
    """Libc's ``memcpy`` for compiled code."""
    return c_function(ctypes.CDLL(None).memcpy, 3)


def _no_context() -> int:
    return 0


def _raw_of(decoded_at: Any, context: Callable[[], int]) -> RawDecoder:
    """The Python-callable decoder of raw addresses built on ``decoded_at``."""
    memcpy = c_memcpy()

    @numba.njit(nogil=True)
    def call(ctx: int, dst: int, nbytes: int, src: int, size: int) -> int:  # pragma: no cover
        hdr = np.empty(4, dtype=np.uint32)
        got = decoded_at(ctx, hdr, dst, nbytes, src, size)
        if got == 0:
            return -1
        if got != dst:
            memcpy(dst, got, nbytes)
        return nbytes

    def raw(dst: int, dst_size: int, src: int, src_size: int) -> int:
        got: int = call(context(), dst, dst_size, src, src_size)
        return got

    return raw


def _none() -> CDecoder:
    @numba.njit(nogil=True)
    def decoded_at(
        ctx: int, hdr: Any, dst: int, nbytes: int, src: int, size: int
    ) -> int:  # pragma: no cover
        return src if size == nbytes else 0

    return CDecoder("none", True, decoded_at, _raw_of(decoded_at, _no_context), _no_context)


def _zstd() -> CDecoder | None:
    lib = system_zstd()
    raw = load_zstd_decoders()[1]
    if lib is None or raw is None:
        return None
    decompress = c_function(lib.ZSTD_decompressDCtx, 5)

    @numba.njit(nogil=True)
    def decoded_at(
        ctx: int, hdr: Any, dst: int, nbytes: int, src: int, size: int
    ) -> int:  # pragma: no cover
        return dst if decompress(ctx, dst, nbytes, src, size) == nbytes else 0

    return CDecoder("zstd", True, decoded_at, raw, contexts_of(DecompressContexts(lib)))


@functools.cache
def blosc_library() -> ctypes.CDLL:
    """Numcodecs' c-blosc, whose context functions compiled code calls by address."""
    import numcodecs.blosc

    return ctypes.CDLL(numcodecs.blosc.__file__)


def _blosc() -> CDecoder | None:
    decompress = c_function(blosc_library().blosc_decompress_ctx, 4)
    memcpy = c_memcpy()

    @numba.njit(nogil=True)
    def decoded_at(
        ctx: int, hdr: Any, dst: int, nbytes: int, src: int, size: int
    ) -> int:  # pragma: no cover
        if size < 16:
            return 0
        # Header: version, versionlz, flags, typesize, nbytes, blocksize, cbytes.
        memcpy(hdr.ctypes.data, src, 16)
        if hdr[1] != nbytes or hdr[3] > size:
            return 0
        # One internal thread: the caller's workers are the parallelism.
        return dst if decompress(src, dst, nbytes, 1) & 0xFFFFFFFF == nbytes else 0

    return CDecoder("blosc", False, decoded_at, _raw_of(decoded_at, _no_context), _no_context)


def _lz4() -> CDecoder | None:
    import numcodecs.lz4

    lib = ctypes.CDLL(numcodecs.lz4.__file__)
    decompress = c_function(lib.LZ4_decompress_safe, 4)
    memcpy = c_memcpy()

    @numba.njit(nogil=True)
    def decoded_at(
        ctx: int, hdr: Any, dst: int, nbytes: int, src: int, size: int
    ) -> int:  # pragma: no cover
        # numcodecs' LZ4: the decoded size (little-endian uint32), then one LZ4 block.
        if size < 4:
            return 0
        memcpy(hdr.ctypes.data, src, 4)
        if hdr[0] != nbytes:
            return 0
        got = decompress(src + 4, dst, size - 4, nbytes) & 0xFFFFFFFF
        return dst if got == nbytes else 0

    return CDecoder("lz4", False, decoded_at, _raw_of(decoded_at, _no_context), _no_context)


def _deflate(name: str) -> CDecoder | None:
    lib = libdeflate()
    if lib is None:
        return None
    function = lib.libdeflate_gzip_decompress if name == "gzip" else lib.libdeflate_zlib_decompress
    decompress = c_function(function, 6)

    @numba.njit(nogil=True)
    def decoded_at(
        ctx: int, hdr: Any, dst: int, nbytes: int, src: int, size: int
    ) -> int:  # pragma: no cover
        # No actual-size pointer: libdeflate fails unless exactly nbytes come out.
        return dst if decompress(ctx, src, size, dst, nbytes, 0) & 0xFFFFFFFF == 0 else 0

    context = contexts_of(
        ThreadContexts(lib.libdeflate_alloc_decompressor, lib.libdeflate_free_decompressor)
    )
    return CDecoder(name, False, decoded_at, _raw_of(decoded_at, context), context)


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
