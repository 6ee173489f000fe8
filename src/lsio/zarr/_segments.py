"""The compiled kernel's segments of read bytes, and the error of a chunk it could not decode.

A segment tells :meth:`lsio.compute.ScatterKernel.run` where the bytes of some
chunk rows of a plan lie in memory (see :func:`segment`). The readers of the
kernel path (:mod:`lsio.zarr._kernelread`, and the visitors of
:mod:`lsio.zarr._visitruns` and :mod:`lsio.zarr._visitfiles`) build them
from what they read, and name the chunk the kernel reports as failed with
:func:`raise_for_row`.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, NoReturn

import numpy as np
import numpy.typing as npt

from lsio.compute import DecodeError, ScatterKernel, ScatterTables
from lsio.io import ByteRange, Range
from lsio.zarr._boxread import buffer_address, chunk_error

if TYPE_CHECKING:
    from lsio.zarr._array import Array

__all__ = ["Segment", "decode_rows", "raise_for_row", "segment"]

_I64 = npt.NDArray[np.int64]

Segment = tuple[int, int, int, int, int, int]


def segment(first: int, stop: int, rng: Range, data: memoryview | None) -> Segment:
    """The kernel's segment for chunk rows ``first:stop``, read as ``data`` from ``rng``.

    ``data`` is ``None`` when the object is missing (its chunks read as the fill
    value); a range that is not a :class:`ByteRange` is a whole-chunk object.
    """
    if data is None:
        return (first, stop, 0, 0, -1, -1)
    if isinstance(rng, ByteRange):
        return (first, stop, buffer_address(data), rng.start, -1, len(data))
    return (first, stop, buffer_address(data), 0, len(data), len(data))


def decode_rows(
    kernel: ScatterKernel,
    tables: ScatterTables,
    first: int,
    stop: int,
    rng: Range,
    data: memoryview,
    scratch: int,
) -> int:
    """Run the kernel on chunk rows ``first:stop``, read as ``data`` from ``rng``.

    Returns ``-1``, or the first row that did not decode or is cut off: a short
    read (an object shorter than its index says) decodes what is there, and the
    kernel never reads past the bytes it is given.
    """
    segments = np.array([segment(first, stop, rng, data)], dtype=np.int64)
    return kernel.run(tables, segments, scratch, 0)


def raise_for_row(
    array: Array,
    tables: ScatterTables,
    row: int,
    coords: _I64,
    key: str,
    rng: Range,
    data: memoryview,
) -> NoReturn:
    """Raise the error of chunk ``row`` (at grid ``coords``), which the kernel named.

    ``data`` was read from ``rng`` of the object ``key``.
    """
    whole = not isinstance(rng, ByteRange)
    base = 0 if whole else rng.start  # type: ignore[union-attr]
    offset, size = (int(v) for v in tables.chunks[row, :2])
    part = data if whole else data[offset - base : offset - base + size]
    where_range = rng if whole else ByteRange(offset, offset + size)
    where = tuple(int(c) for c in coords)
    try:
        array.chunk_decoder(part, np.empty(array.read_chunk_shape, array.dtype))
    except DecodeError as exc:
        raise chunk_error(exc, key, where_range, where) from exc
    raise chunk_error(DecodeError("chunk did not decode to its size"), key, where_range, where)
