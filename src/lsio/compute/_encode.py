"""Lay out, test for the fill value and compress a grid of chunks, in one compiled call.

Encoding a shard chunk by chunk from Python costs, per inner chunk, a strided
copy into C order, a NumPy comparison with the fill value and a compressor
call, each winning the GIL back afterwards; with two workers they queue on the
GIL for a tenth of the time. Here a worker hands a whole block (a shard, or one
chunk) to a Numba function that runs without the GIL: per chunk it copies the
rows into a scratch buffer with ``memcpy``, compares the elements with the fill
value (stopping at the first that differs) and calls the compressor
(``ZSTD_compress2``, libdeflate's gzip or zlib compression, or c-blosc's
``blosc_compress_ctx``, through its C address; or a copy, for chunks stored
uncompressed) straight into the output buffer, chunks back to back.

Used for chunks stored as native-order bytes, uncompressed or compressed with
zstd, gzip, zlib or blosc and nothing else; other chains keep the Python path. Floats
whose fill value is NaN keep it too: "equal to the fill value" then means any
NaN, which is not a byte pattern.
"""

from __future__ import annotations

import ctypes
import functools
import math
import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numba
import numpy as np
import numpy.typing as npt

from lsio.compute._cdecode import blosc_library
from lsio.compute._deflate import deflate_compressors, libdeflate
from lsio.compute._scatter import advance
from lsio.compute._zstd import compress_contexts, newest_zstd
from lsio.io import aligned_empty, c_extern, libc_extern, library_function

__all__ = ["GridCompression", "GridEncoder", "load_grid_encoder"]

_I64 = npt.NDArray[np.int64]
_U8 = npt.NDArray[np.uint8]

_BLOSC_CNAMES = ("blosclz", "lz4", "lz4hc", "snappy", "zlib", "zstd")
# c-blosc's BLOSC_MAX_OVERHEAD: the header a chunk stored as it is carries.
BLOSC_OVERHEAD = 16


@dataclass(frozen=True, slots=True)
class GridCompression:
    """How the grid encoder compresses each chunk.

    Attributes:
        name: ``"zstd"`` (default), ``"gzip"``, ``"zlib"``, ``"blosc"`` or
            ``"none"`` (stored as they are).
        level: The compressor's level (zstd's; libdeflate's 0..12 for gzip and
            zlib; blosc's clevel 0..9). Defaults to 3.
        checksum: zstd's content checksum flag. Defaults to ``False``.
        cname: blosc's inner compressor (one of blosclz, lz4, lz4hc, snappy,
            zlib, zstd). Defaults to ``"lz4"``.
        shuffle: blosc's filter: 0 none, 1 bytes (default), 2 bits.
        typesize: blosc's item size for the shuffle. Defaults to 1.
        blocksize: blosc's block size in bytes; 0 (default) lets c-blosc choose.
    """

    name: str = "zstd"
    level: int = 3
    checksum: bool = False
    cname: str = "lz4"
    shuffle: int = 1
    typesize: int = 1
    blocksize: int = 0


# Compressor codes of the compiled encoder.
COPY, ZSTD, GZIP, ZLIB, BLOSC = range(5)

_memcpy = libc_extern("memcpy", 3)
_zstd_compress = c_extern("zstd_compress2", 5, library_function(newest_zstd, "ZSTD_compress2"))
_gzip_compress = c_extern(
    "libdeflate_gzip_compress", 5, library_function(libdeflate, "libdeflate_gzip_compress")
)
_zlib_compress = c_extern(
    "libdeflate_zlib_compress", 5, library_function(libdeflate, "libdeflate_zlib_compress")
)
_blosc_compress = c_extern(
    "blosc_compress_ctx", 10, library_function(blosc_library, "blosc_compress_ctx")
)


@numba.njit(nogil=True, cache=True)
def _encode_one(
    code: int, params: Any, cctx: int, dst: int, cap: int, src: int, nbytes: int
) -> Any:  # pragma: no cover - compiled
    # The compressed size; 0 or negative when it failed or found no room.
    if code == COPY:
        if cap < nbytes:
            return -1
        _memcpy(dst, src, nbytes)
        return nbytes
    if code == ZSTD:
        return np.int64(_zstd_compress(cctx, dst, cap, src, nbytes))  # an error reads as negative
    if code == GZIP:
        return np.int64(_gzip_compress(cctx, src, nbytes, dst, cap))  # 0: no room
    if code == ZLIB:
        return np.int64(_zlib_compress(cctx, src, nbytes, dst, cap))
    # blosc: params are clevel, shuffle, typesize, the address of the inner
    # compressor's name and the block size. One internal thread: the caller's
    # workers are the parallelism. An int result: 0 is no room, negative an error.
    # Its room is the bound, not all that is left: given more, c-blosc keeps
    # blocks that grew when compressed (412 bytes for 384 measured) where the
    # bound makes it store the chunk as it is (nbytes + 16), and the chunks after
    # it overran the output sized by the bound.
    room = min(cap, nbytes + BLOSC_OVERHEAD)
    got = _blosc_compress(
        params[0], params[1], params[2], nbytes, src, dst, room, params[3], params[4], 1
    )
    return np.int64(np.int32(got & 0xFFFFFFFF))


@numba.njit(nogil=True, cache=True)
def _gather(
    dst: int, src: int, n: Any, sstr: Any, itemsize: int, idx: Any
) -> None:  # pragma: no cover - compiled
    # Rows along the last dimension are contiguous in the source (the caller
    # sees to it); trailing dimensions contiguous in the source fold into one copy.
    ndim = n.shape[0]
    last = ndim - 1
    unit = n[last] * itemsize
    while last > 0 and sstr[last - 1] == unit:
        last -= 1
        unit *= n[last]
    rows = 1
    for d in range(last):
        rows *= n[d]
        idx[d] = 0
    o = dst
    for _ in range(rows):
        s = src
        for d in range(last):
            s += idx[d] * sstr[d]
        _memcpy(o, s, unit)
        o += unit
        advance(idx, n, last)


@numba.njit(nogil=True, cache=True)
def _is_fill(buf: Any, pattern: Any, mask: Any) -> bool:  # pragma: no cover - compiled
    k = pattern.shape[0]
    for e in range(0, buf.shape[0], k):
        for j in range(k):
            if (buf[e + j] & mask[j]) != pattern[j]:
                return False
    return True


@numba.njit(nogil=True, cache=True)
def _run(
    code: int,
    params: Any,
    cctx: int,
    base: int,
    origins: Any,
    n: Any,
    sstr: Any,
    itemsize: int,
    scratch: Any,
    pattern: Any,
    mask: Any,
    out: Any,
    start: int,
    sizes: Any,
) -> int:  # pragma: no cover - compiled
    idx = np.zeros(n.shape[0], dtype=np.int64)
    nbytes = scratch.shape[0]
    sp = scratch.ctypes.data
    op = out.ctypes.data
    cap = out.shape[0]
    pos = np.int64(start)
    for i in range(origins.shape[0]):
        _gather(sp, base + origins[i], n, sstr, itemsize, idx)
        if _is_fill(scratch, pattern, mask):
            sizes[i] = -1
            continue
        got = _encode_one(code, params, cctx, op + pos, cap - pos, sp, nbytes)
        if got <= 0 or got > cap - pos:  # a zstd error code reads as negative
            return -1 - i
        sizes[i] = got
        pos += got
    return int(pos)


class _Buffers(threading.local):
    """One encoder's scratch chunk and output buffer per thread, reused across calls."""

    def __init__(self) -> None:
        self.scratch: _U8 = np.empty(0, np.uint8)
        self.out: _U8 = np.empty(0, np.uint8)


def compress_bound(nbytes: int) -> int:
    """``ZSTD_COMPRESSBOUND``: the largest frame zstd makes of ``nbytes`` bytes."""
    margin = ((128 << 10) - nbytes) >> 11 if nbytes < (128 << 10) else 0
    return nbytes + (nbytes >> 8) + margin


class GridEncoder:
    """Encodes every chunk of a block, skipping chunks that hold only the fill value.

    Use :func:`load_grid_encoder`.

    Args:
        code: The compressor's code for the compiled encoder (``COPY``,
            ``ZSTD``, ``GZIP``, ``ZLIB`` or ``BLOSC``).
        params: The compressor's settings the compiled encoder takes (blosc's;
            empty for the others).
        context: Returns the calling thread's compression context (0: none needed).
        bound: The largest encoding of a chunk of the given size.
        dtype: The elements' dtype (stored as native bytes).
        fill_value: The array's fill value; not NaN for floats.
    """

    def __init__(
        self,
        code: int,
        params: _I64,
        context: Callable[[], int],
        bound: Callable[[int], int],
        dtype: np.dtype[Any],
        fill_value: Any,
    ) -> None:
        self._code = code
        self._params = params
        self._context = context
        self._bound = bound
        self._buffers = _Buffers()
        self.dtype = dtype
        self._pattern, self._mask = _fill_bytes(dtype, fill_value)

    def encode(
        self, block: np.ndarray, chunk_shape: tuple[int, ...], start: int = 0, extra: int = 0
    ) -> tuple[_U8, _I64, int]:
        """Compress the chunks of ``block`` (C order of the grid) back to back.

        Args:
            block: An array of ``dtype`` whose shape is a multiple of ``chunk_shape``.
            chunk_shape: The chunks' shape.
            start: Bytes left free at the start of the output (for a shard index).
            extra: Bytes of the output to keep free after the chunks.

        Returns:
            The output (this thread's buffer: valid until the thread's next call),
            each chunk's compressed size in grid C order (``-1``: only the fill
            value, not stored) and the end of the last chunk in the output.
        """
        if block.dtype != self.dtype:
            raise ValueError(f"block of {block.dtype}, encoder of {self.dtype}")
        itemsize = block.dtype.itemsize
        if block.ndim == 0:
            block = block.reshape(1)
            chunk_shape = (1,)
        if block.strides[-1] != itemsize or any(s < 0 for s in block.strides):
            block = np.ascontiguousarray(block)  # rows must be contiguous and ascending
        grid = tuple(s // c for s, c in zip(block.shape, chunk_shape, strict=True))
        strides = np.asarray(block.strides, dtype=np.int64)
        steps = np.asarray(chunk_shape, dtype=np.int64) * strides
        origins = np.zeros(1, dtype=np.int64)
        for g, step in zip(grid, steps, strict=True):
            origins = (origins[:, None] + np.arange(g, dtype=np.int64) * step).reshape(-1)
        nbytes = math.prod(chunk_shape) * itemsize
        cctx = self._context()
        local = self._buffers
        if local.scratch.shape[0] != nbytes:
            local.scratch = np.empty(nbytes, np.uint8)
        need = start + origins.shape[0] * self._bound(nbytes) + extra
        if local.out.shape[0] < need:
            # Page-aligned, so that a whole shard assembled here is written
            # to its file straight from this buffer (lsio.io._directwrite).
            local.out = aligned_empty(need)
        sizes = np.empty(origins.shape[0], dtype=np.int64)
        end: int = _run(
            self._code,
            self._params,
            cctx,
            block.ctypes.data,
            origins,
            np.asarray(chunk_shape, dtype=np.int64),
            strides,
            itemsize,
            local.scratch,
            self._pattern,
            self._mask,
            local.out,
            start,
            sizes,
        )
        if end < 0:
            raise ValueError(f"the compressor failed on chunk {-1 - end} of the block")
        return local.out, sizes, end


def _fill_bytes(dtype: np.dtype[Any], fill_value: Any) -> tuple[_U8, _U8]:
    """The fill value's bytes and the mask of the bits that decide equality with it."""
    fill = np.asarray(fill_value, dtype=dtype)
    pattern = np.frombuffer(fill.tobytes(), dtype=np.uint8).copy()
    mask = np.full(dtype.itemsize, 0xFF, dtype=np.uint8)
    if dtype.kind == "f" and float(fill) == 0.0:
        # -0.0 equals 0.0: ignore the sign bit (the top bit of the last byte, little-endian).
        sign = 0 if dtype.byteorder == ">" else dtype.itemsize - 1
        mask[sign] = 0x7F
        pattern[sign] &= 0x7F
    return pattern, mask


@functools.cache
def _c_string(text: str) -> Any:
    """A NUL-terminated C copy of ``text``, alive (cached) for the process's life."""
    return ctypes.create_string_buffer(text.encode())


def load_grid_encoder(
    compression: GridCompression, dtype: np.dtype[Any], fill_value: Any
) -> GridEncoder | None:
    """A :class:`GridEncoder` compressing with ``compression``, or ``None``.

    ``None`` without the library to call, for other compressors or settings
    out of range, for dtypes other than booleans, integers and floats, and for
    a NaN fill value.
    """
    if dtype.kind not in "biuf" or not dtype.isnative:
        return None
    if dtype.kind == "f" and np.isnan(np.asarray(fill_value, dtype=dtype)):
        return None
    c = compression
    none = np.zeros(0, dtype=np.int64)
    try:
        if c.name == "none":
            return GridEncoder(COPY, none, int, lambda n: n, dtype, fill_value)
        if c.name == "zstd":
            lib = newest_zstd()
            if lib is None:
                return None
            contexts = compress_contexts(lib)
            return GridEncoder(
                ZSTD,
                none,
                functools.partial(contexts.get, c.level, c.checksum),
                compress_bound,
                dtype,
                fill_value,
            )
        if c.name == "blosc":
            if (
                c.cname not in _BLOSC_CNAMES
                or not 0 <= c.level <= 9
                or c.shuffle not in (0, 1, 2)
                or not 1 <= c.typesize <= 255
                or c.blocksize < 0
                or library_function(blosc_library, "blosc_compress_ctx") is None
            ):
                return None
            cname = ctypes.addressof(_c_string(c.cname))
            params = np.array([c.level, c.shuffle, c.typesize, cname, c.blocksize], np.int64)
            return GridEncoder(BLOSC, params, int, lambda n: n + BLOSC_OVERHEAD, dtype, fill_value)
        deflate = deflate_compressors()
        if c.name not in ("gzip", "zlib") or deflate is None or not 0 <= c.level <= 12:
            return None
        return GridEncoder(
            GZIP if c.name == "gzip" else ZLIB,
            none,
            functools.partial(deflate.compressor, c.level),
            functools.partial(deflate.bound, c.name, c.level),
            dtype,
            fill_value,
        )
    except (OSError, AttributeError, ImportError):
        return None
