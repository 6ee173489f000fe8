"""Fast zstd decompression into a caller's buffer.

Calls the system's ``libzstd`` through ctypes when it is present (ctypes releases
the GIL for the call, and skipping numcodecs' argument handling saves several
microseconds per chunk, which matters for small chunks); otherwise falls back to
numcodecs' bundled zstd. Both check that the frame decodes to exactly the
destination's size.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import functools
import struct
import threading
from collections.abc import Callable
from typing import Any

import numcodecs.zstd
import numpy as np

__all__ = [
    "CompressContexts",
    "DecompressContexts",
    "RawDecoder",
    "ThreadContexts",
    "ZstdError",
    "compress_contexts",
    "contexts_of",
    "load_zstd_decoder",
    "load_zstd_decoders",
    "newest_zstd",
    "system_zstd",
    "zstd_content_size",
]

_UNKNOWN = 2**64 - 1  # ZSTD_CONTENTSIZE_UNKNOWN
_ERROR = 2**64 - 2  # ZSTD_CONTENTSIZE_ERROR


class ZstdError(ValueError):
    """A zstd frame is corrupt or does not decode to the expected size."""


Decoder = Callable[[memoryview, np.ndarray], None]
# raw(dst_address, dst_size, src_address, src_size) -> bytes decoded (or a zstd error code).
RawDecoder = Callable[[int, int, int, int], int]


class ThreadContexts(threading.local):
    """One C context per thread (a zstd or libdeflate one), made by ``create`` and freed with its thread."""

    def __init__(self, create: Callable[[], int | None], free: Callable[[int], Any]) -> None:
        self._free = free
        self.ctx: int = create() or 0

    def __del__(self) -> None:
        if self.ctx:
            self._free(self.ctx)
            self.ctx = 0


class DecompressContexts(ThreadContexts):
    """One decompression context per thread, freed when the thread's copy is dropped.

    ``ZSTD_decompress`` allocates and initialises a context (~100 KB) on every
    call; reusing one makes small chunks decode ~25% faster.
    """

    def __init__(self, lib: Any) -> None:
        super().__init__(lib.ZSTD_createDCtx, lib.ZSTD_freeDCtx)


def contexts_of(contexts: ThreadContexts) -> Callable[[], int]:
    """A function returning the calling thread's context of ``contexts``.

    Raises ``MemoryError`` (when called) if the context could not be allocated.
    """

    def context() -> int:
        ctx = contexts.ctx
        if not ctx:
            raise MemoryError("could not allocate a decompression context")
        return ctx

    return context


# ZSTD_cParameter values (zstd.h, stable API).
_LEVEL, _CONTENT_SIZE, _CHECKSUM = 100, 200, 201


class CompressContexts(ThreadContexts):
    """One compression context per thread, set to the settings last asked for.

    Use :func:`compress_contexts`: a context allocates its tables (about a
    megabyte at level 3) on first use, which is worth doing once per thread.
    """

    def __init__(self, lib: Any) -> None:
        super().__init__(lib.ZSTD_createCCtx, lib.ZSTD_freeCCtx)
        self._lib = lib
        self.settings: tuple[int, bool] | None = None

    def get(self, level: int, checksum: bool) -> int:
        """The calling thread's context, with zstd's level and checksum flag set."""
        if not self.ctx:
            raise MemoryError("zstd: could not allocate a compression context")
        if self.settings != (level, checksum):
            for param, value in ((_LEVEL, level), (_CHECKSUM, int(checksum)), (_CONTENT_SIZE, 1)):
                if self._lib.ZSTD_isError(self._lib.ZSTD_CCtx_setParameter(self.ctx, param, value)):
                    raise ValueError(f"zstd refuses parameter {param}={value}")
            self.settings = (level, checksum)
        return self.ctx


@functools.cache
def compress_contexts(lib: Any) -> CompressContexts:
    """The per-thread compression contexts of ``lib``, kept for the process (a cache)."""
    return CompressContexts(lib)


@functools.cache
def _system_path() -> str | None:
    # find_library runs ldconfig: once per process.
    return ctypes.util.find_library("zstd")


@functools.cache
def system_zstd() -> Any | None:
    """The system's libzstd (context functions declared), or ``None`` where absent."""
    name = _system_path()
    if name is None:
        return None
    try:
        lib = ctypes.CDLL(name)
        lib.ZSTD_createDCtx.restype = ctypes.c_void_p
        lib.ZSTD_createDCtx.argtypes = []
        lib.ZSTD_freeDCtx.restype = ctypes.c_size_t
        lib.ZSTD_freeDCtx.argtypes = [ctypes.c_void_p]
    except (OSError, AttributeError):
        return None
    return lib


# The compression functions the write kernel and the contexts call: restype, argtypes.
_SIZE, _PTR = ctypes.c_size_t, ctypes.c_void_p
_COMPRESS_API: dict[str, tuple[Any, list[Any]]] = {
    "ZSTD_versionNumber": (ctypes.c_uint, []),
    "ZSTD_createCCtx": (_PTR, []),
    "ZSTD_freeCCtx": (_SIZE, [_PTR]),
    "ZSTD_CCtx_setParameter": (_SIZE, [_PTR, ctypes.c_int, ctypes.c_int]),
    "ZSTD_isError": (ctypes.c_uint, [_SIZE]),
    "ZSTD_compress2": (_SIZE, [_PTR, _PTR, _SIZE, _PTR, _SIZE]),
}


def _declare(lib: Any) -> Any:
    """``lib`` (a ctypes library) with the compression functions' types declared."""
    for name, (restype, argtypes) in _COMPRESS_API.items():
        function = getattr(lib, name)
        function.restype = restype
        function.argtypes = argtypes
    return lib


def _exported(path: str) -> Any:
    """The library at ``path``, whose symbols it exports, with the compression functions declared."""
    return _declare(ctypes.CDLL(path))


@functools.cache
def _zstandard_library() -> Any | None:
    """The libzstd built into the ``zstandard`` package, as ctypes functions, or ``None``.

    Its C extension keeps libzstd's symbols to itself; its cffi backend (which
    needs ``cffi``) hands out their addresses through ``ffi.addressof``.
    """
    try:
        from zstandard import backend_cffi

        ffi, lib = vars(backend_cffi)["ffi"], vars(backend_cffi)["lib"]  # not re-exported names
        functions = _Functions()
        for name, (restype, argtypes) in _COMPRESS_API.items():
            address = int(ffi.cast("uintptr_t", ffi.addressof(lib, name)))
            setattr(functions, name, ctypes.CFUNCTYPE(restype, *argtypes)(address))
    except (ImportError, KeyError, AttributeError, TypeError):
        # No cffi, or a zstandard whose cffi backend is laid out otherwise.
        return None
    return functions


class _Functions:
    """A library's C functions as attributes, like a ctypes library (hashable, by identity)."""


@functools.cache
def newest_zstd() -> Any | None:
    """The newest libzstd at hand (compression functions declared), or ``None``.

    Candidates: the system's libzstd, the copies that numcodecs' zstd module
    and the ``zstd`` package carry (both export the library's symbols), and
    the one inside ``zstandard`` (a dependency, as are ``zstd`` and ``cffi``).
    Newer releases compress these image chunks faster (measured: 1.5.7 0.176
    GB/s per core at level 3, 1.5.4 and 1.5.6 0.14). At the same version the
    later candidate wins: ``zstandard``'s build of 1.5.7 compresses the
    benchmark's chunks ~5% faster than the ``zstd`` package's (0.195 against
    0.185 GB/s per core, alternating runs). Decoding stays with
    :func:`system_zstd`: neither package's build decodes as fast as the
    system's, which has zstd's assembly decoding loop.
    """
    loaders: list[Callable[[], Any]] = []
    paths = [_system_path(), getattr(numcodecs.zstd, "__file__", None)]
    try:
        import zstd

        paths.append(zstd.__file__)
    except ImportError:
        pass
    loaders += [functools.partial(_exported, path) for path in paths if path is not None]
    loaders.append(_zstandard_library)
    best: tuple[int, Any] | None = None
    for load in loaders:
        try:
            lib = load()
            version = None if lib is None else int(lib.ZSTD_versionNumber())
        except (OSError, AttributeError, TypeError):
            continue
        if version is not None and (best is None or version >= best[0]):
            best = (version, lib)
    return None if best is None else best[1]


def _ctypes_decoder(lib: Any) -> tuple[Decoder, RawDecoder]:
    decompress_ctx = lib.ZSTD_decompressDCtx
    decompress_ctx.restype = ctypes.c_size_t
    decompress_ctx.argtypes = [
        ctypes.c_void_p,
        ctypes.c_void_p,
        ctypes.c_size_t,
        ctypes.c_void_p,
        ctypes.c_size_t,
    ]
    contexts = DecompressContexts(lib)
    content_size = lib.ZSTD_getFrameContentSize
    content_size.restype = ctypes.c_ulonglong
    content_size.argtypes = [ctypes.c_void_p, ctypes.c_size_t]
    is_error = lib.ZSTD_isError
    is_error.restype = ctypes.c_uint
    is_error.argtypes = [ctypes.c_size_t]
    error_name = lib.ZSTD_getErrorName
    error_name.restype = ctypes.c_char_p
    error_name.argtypes = [ctypes.c_size_t]
    addressof = ctypes.addressof
    from_buffer = ctypes.c_char.from_buffer

    def decode(src: memoryview, dst: np.ndarray) -> None:
        n = len(src)
        if n == 0:
            raise ZstdError("zstd: empty input")
        try:
            sptr = addressof(from_buffer(src))
        except TypeError:  # a read-only buffer (e.g. bytes)
            sptr = np.frombuffer(src, dtype=np.uint8).ctypes.data
        expected = dst.nbytes
        try:
            dptr = addressof(from_buffer(dst.data))
        except (TypeError, ValueError):  # not a writable contiguous buffer
            dptr = dst.ctypes.data
        ctx = contexts.ctx
        if not ctx:
            raise MemoryError("zstd: could not allocate a decompression context")
        got = decompress_ctx(ctx, dptr, expected, sptr, n)
        if got != expected:
            # Explain the failure only now: the header check costs a call per chunk.
            size = content_size(sptr, n)
            if size == _ERROR:
                raise ZstdError("zstd: not a valid zstd frame")
            if size != _UNKNOWN and size != expected:
                raise ZstdError(f"zstd data decodes to {size} bytes, expected {expected}")
            if is_error(got):
                raise ZstdError(f"zstd: {error_name(got).decode()}")
            raise ZstdError(f"zstd data decodes to {got} bytes, expected {expected}")

    def raw(dst: int, dst_size: int, src: int, src_size: int) -> int:
        # The per-chunk call of the batched read path: plain addresses, no checks
        # beyond the size decoded, which the caller compares (and explains with
        # ``decode`` when it differs).
        ctx = contexts.ctx
        if not ctx:
            raise MemoryError("zstd: could not allocate a decompression context")
        got: int = decompress_ctx(ctx, dst, dst_size, src, src_size)
        return got

    return decode, raw


def _numcodecs_decoder() -> Decoder:
    def decode(src: memoryview, dst: np.ndarray) -> None:
        size = zstd_content_size(src)
        if size is not None and size != dst.nbytes:
            raise ZstdError(f"zstd data decodes to {size} bytes, expected {dst.nbytes}")
        try:
            if size is not None:
                numcodecs.zstd.decompress(src, dst.reshape(-1).view(np.uint8))
                return
            # Unknown size in the header: decode to a new buffer to learn it.
            raw = numcodecs.zstd.decompress(src)
        except Exception as exc:
            raise ZstdError(f"zstd: {exc}") from exc
        if len(raw) != dst.nbytes:
            raise ZstdError(f"zstd data decodes to {len(raw)} bytes, expected {dst.nbytes}")
        dst.reshape(-1).view(np.uint8)[:] = np.frombuffer(raw, dtype=np.uint8)

    return decode


_ZSTD_MAGIC = 0xFD2FB528


def zstd_content_size(data: memoryview) -> int | None:
    """Decompressed size recorded in a zstd frame header, or ``None`` if absent."""
    if len(data) < 6 or struct.unpack_from("<I", data, 0)[0] != _ZSTD_MAGIC:
        return None
    fhd = data[4]
    fcs_flag, single_segment, dict_flag = fhd >> 6, (fhd >> 5) & 1, fhd & 3
    pos = 5 + (0 if single_segment else 1) + (0, 1, 2, 4)[dict_flag]
    width = (1 if single_segment else 0, 2, 4, 8)[fcs_flag]
    if width == 0 or len(data) < pos + width:
        return None
    value = int.from_bytes(data[pos : pos + width], "little")
    return value + 256 if width == 2 else value


def load_zstd_decoder(prefer_system: bool = True) -> Decoder:
    """The fastest available ``decode(src, dst)``; ``dst`` must be C-contiguous."""
    return load_zstd_decoders(prefer_system)[0]


def load_zstd_decoders(prefer_system: bool = True) -> tuple[Decoder, RawDecoder | None]:
    """``decode(src, dst)`` and, with the system's libzstd, a decoder of raw addresses.

    The raw decoder ``raw(dst, dst_size, src, src_size)`` returns the number of
    bytes decoded (a zstd error code on failure); the caller owns both buffers
    and must keep them alive during the call.
    """
    lib = system_zstd() if prefer_system else None
    if lib is not None:
        try:
            return _ctypes_decoder(lib)
        except AttributeError:
            pass
    return _numcodecs_decoder(), None
