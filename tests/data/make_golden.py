"""Regenerate the golden Zarr v2 stores in ``golden/`` (run once; the output is committed).

Each store holds ``expected(shape, dtype)`` below, so tests check lsio against
fixed values without zarr-python.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import numcodecs
import numpy as np

import zarr

HERE = Path(__file__).parent / "golden"

CASES = {
    # name: (dtype, order, separator, compressor, chunks)
    "f_order_dot_zstd": ("<i4", "F", ".", numcodecs.Zstd(level=1), (3, 4, 2)),
    "f_order_slash_blosc": ("<f8", "F", "/", numcodecs.Blosc(cname="lz4"), (2, 5, 3)),
    "c_order_dot_gzip": (">u2", "C", ".", numcodecs.GZip(level=1), (4, 3, 3)),
    "c_order_slash_zlib": ("<i8", "C", "/", numcodecs.Zlib(level=1), (5, 5, 1)),
    "f_order_slash_lz4_bigendian": (">f4", "F", "/", numcodecs.LZ4(), (2, 2, 2)),
    "c_order_dot_none_complex": ("<c16", "C", ".", None, (3, 3, 3)),
}
SHAPE = (5, 7, 4)


def expected(shape: tuple[int, ...], dtype: str) -> np.ndarray:
    """The values every golden store holds (the last row of axis 0 is left unwritten)."""
    values = np.arange(np.prod(shape)).reshape(shape)
    if np.dtype(dtype).kind == "c":
        values = values + 1j * values[::-1]
    elif np.dtype(dtype).kind == "f":
        values = values / 4
    values = values.astype(dtype)
    values[-1] = 0  # not written: read as the fill value (null -> 0)
    return values


def main() -> None:
    shutil.rmtree(HERE, ignore_errors=True)
    for name, (dtype, order, sep, compressor, chunks) in CASES.items():
        arr = zarr.create_array(
            str(HERE / f"{name}.zarr"),
            shape=SHAPE,
            chunks=chunks,
            dtype=dtype,
            order=order,
            compressors=compressor,
            fill_value=None,
            chunk_key_encoding={"name": "v2", "separator": sep},
            zarr_format=2,
            attributes={"_ARRAY_DIMENSIONS": ["t", "y", "x"], "case": name},
        )
        arr[:-1] = expected(SHAPE, dtype)[:-1]


if __name__ == "__main__":
    main()
