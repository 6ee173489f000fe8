"""Metadata documents of new arrays (Zarr v3 ``zarr.json``, v2 ``.zarray``/``.zattrs``).

Documents are built from the user's arguments, validated by parsing them with
the same code that reads stores, and only then written.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from lsio._errors import InvalidArgumentError, LsioError
from lsio.plan import int_shape
from lsio.zarr._dtypes import SUPPORTED_DTYPES
from lsio.zarr._metadata import ArrayMetadata, parse_v2_array, parse_v3_array
from lsio.zarr._write import int_out_of_range

__all__ = ["array_documents", "fill_value_json"]

_COMPRESSORS = ("zstd", "blosc", "blosc-lz4", "gzip", "none")


def fill_value_json(value: Any, dtype: np.dtype[Any]) -> Any:
    """``value`` as JSON for ``dtype`` (NaN and infinities as the strings the specs use)."""

    def real(v: float) -> Any:
        if math.isnan(v):
            return "NaN"
        if math.isinf(v):
            return "Infinity" if v > 0 else "-Infinity"
        return float(v)

    if dtype.kind == "b":
        return bool(value)
    if dtype.kind in "iu":
        return int(value)
    if dtype.kind == "f":
        return real(float(value))
    c = complex(value)
    return [real(c.real), real(c.imag)]


def _fill(value: Any, dtype: np.dtype[Any]) -> Any:
    if value is None:
        return dtype.type(0)
    try:
        arr = np.asarray(value)
        if arr.ndim != 0:
            raise TypeError
        with np.errstate(invalid="ignore", over="ignore"):  # checked below, not warned
            cast = arr.astype(dtype)
            if dtype.kind in "iub" and cast.astype(arr.dtype) != arr:
                raise TypeError
        if dtype.kind in "iub" and arr.dtype.kind in "iub" and int_out_of_range(arr, dtype):
            raise TypeError
    except (TypeError, ValueError, OverflowError):
        raise InvalidArgumentError(
            f"fill_value {value!r} is not a value of dtype {dtype}"
        ) from None
    return cast[()]


def _compressor(spec: str | None) -> tuple[str, int | None]:
    """A compressor spec as (name, level), e.g. ``"zstd:5"`` -> ``("zstd", 5)``.

    Specs: ``"zstd"``, ``"blosc"``, ``"blosc-lz4"``, ``"gzip"``, each with an
    optional ``:LEVEL``, and ``"none"``/``None``.
    """
    if spec is None:
        return "none", None
    if not isinstance(spec, str):
        raise InvalidArgumentError(
            f"compressor must be a str such as 'zstd:3' or None, got {type(spec).__name__}"
        )
    name, _, level = spec.partition(":")
    if name not in _COMPRESSORS:
        raise InvalidArgumentError(
            f"unknown compressor {spec!r}; use one of {', '.join(_COMPRESSORS)} (e.g. 'zstd:3')"
        )
    if not level:
        return name, None
    try:
        value = int(level)
    except ValueError:
        raise InvalidArgumentError(f"compressor level in {spec!r} must be an int") from None
    lo, hi = _LEVELS[name]
    if not lo <= value <= hi:
        raise InvalidArgumentError(f"{name} level must be in {lo}..{hi}, got {value} in {spec!r}")
    return name, value


# Levels each codec accepts (zstd's negative "fast" levels included, as zarr-python does).
_LEVELS = {
    "zstd": (-131072, 22),
    "gzip": (0, 9),
    "blosc": (0, 9),
    "blosc-lz4": (0, 9),
    "none": (0, 0),
}


def _blosc_cname(name: str) -> str:
    # "blosc" alone means blosc with zstd inside (denser); "blosc-lz4" is zarr-python 2's default,
    # several times faster to decode.
    return "lz4" if name == "blosc-lz4" else "zstd"


def _v3_compressors(name: str, level: int | None, dtype: np.dtype[Any]) -> list[dict[str, Any]]:
    if name == "zstd":
        return [
            {
                "name": "zstd",
                "configuration": {"level": 3 if level is None else level, "checksum": False},
            }
        ]
    if name == "gzip":
        return [{"name": "gzip", "configuration": {"level": 5 if level is None else level}}]
    if name.startswith("blosc"):
        config = {
            "cname": _blosc_cname(name),
            "clevel": 5 if level is None else level,
            "shuffle": "shuffle" if dtype.itemsize > 1 else "bitshuffle",
            "typesize": dtype.itemsize,
            "blocksize": 0,
        }
        return [{"name": "blosc", "configuration": config}]
    return []


def _v2_compressor(name: str, level: int | None) -> dict[str, Any] | None:
    if name == "zstd":
        return {"id": "zstd", "level": 3 if level is None else level}
    if name == "gzip":
        return {"id": "gzip", "level": 5 if level is None else level}
    if name.startswith("blosc"):
        return {
            "id": "blosc",
            "cname": _blosc_cname(name),
            "clevel": 5 if level is None else level,
            "shuffle": 1,
            "blocksize": 0,
        }
    return None


def array_documents(
    *,
    shape: Any,
    dtype: Any,
    chunks: Any,
    shards: Any = None,
    compressor: str | None = "zstd",
    codecs: Sequence[Mapping[str, Any]] | None = None,
    fill_value: Any = None,
    dims: Sequence[str | None] | None = None,
    attrs: Mapping[str, Any] | None = None,
    zarr_format: int = 3,
) -> tuple[dict[str, bytes], ArrayMetadata]:
    """The metadata objects of a new array (key -> JSON bytes) and their parsed form.

    Raises:
        InvalidArgumentError: For any argument that does not describe a valid array,
            naming the argument.
    """
    if zarr_format not in (2, 3):
        raise InvalidArgumentError(f"zarr_format must be 2 or 3, got {zarr_format!r}")
    try:
        dt = np.dtype(dtype)
    except TypeError:
        raise InvalidArgumentError(f"dtype {dtype!r} is not a NumPy dtype") from None
    if dt.name not in SUPPORTED_DTYPES:
        raise InvalidArgumentError(
            f"dtype {dt} is not supported; use one of {', '.join(SUPPORTED_DTYPES)}"
        )
    dt = dt.newbyteorder("=")
    shp = int_shape(shape, "shape", None, positive=False)
    chunk_shape = int_shape(chunks, "chunks", len(shp), positive=True)
    fill = _fill(fill_value, dt)
    attributes = dict(attrs or {})
    if dims is not None and len(dims) != len(shp):
        raise InvalidArgumentError(f"dims {tuple(dims)} must name all {len(shp)} dimensions")
    if dims is not None and not all(d is None or isinstance(d, str) for d in dims):
        raise InvalidArgumentError(f"dims {tuple(dims)} must be names (str) or None")
    if codecs is not None and compressor not in (None, "zstd"):
        raise InvalidArgumentError("give compressor= or codecs=, not both")
    name, level = _compressor(compressor)
    if zarr_format == 2:
        if shards is not None:
            raise InvalidArgumentError("shards need zarr_format=3")
        if codecs is not None:
            raise InvalidArgumentError("codecs= is for zarr_format=3; use compressor= for v2")
        zarray = {
            "zarr_format": 2,
            "shape": list(shp),
            "chunks": list(chunk_shape),
            "dtype": dt.newbyteorder("<").str if dt.itemsize > 1 else dt.str,
            "compressor": _v2_compressor(name, level),
            "fill_value": fill_value_json(fill, dt),
            "order": "C",
            "filters": None,
            "dimension_separator": ".",
        }
        if dims is not None:
            if not all(isinstance(d, str) for d in dims):
                raise InvalidArgumentError(
                    f"dims {tuple(dims)}: v2 stores names in _ARRAY_DIMENSIONS, which needs a "
                    "string for every dimension (xarray's convention)"
                )
            attributes["_ARRAY_DIMENSIONS"] = list(dims)
        docs = {".zarray": _dump(zarray), ".zattrs": _dump(attributes)}
        return docs, _parse(parse_v2_array, zarray, attributes, ".zarray")
    inner = (
        list(codecs)
        if codecs is not None
        else [
            {"name": "bytes", "configuration": {"endian": "little"}},
            *_v3_compressors(name, level, dt),
        ]
    )
    grid = chunk_shape
    if shards is not None:
        grid = int_shape(shards, "shards", len(shp), positive=True)
        bad = [d for d, (s, c) in enumerate(zip(grid, chunk_shape, strict=True)) if s % c]
        if bad:
            raise InvalidArgumentError(
                f"shards {grid} must be multiples of chunks {chunk_shape} (dimension {bad[0]})"
            )
        inner = [
            {
                "name": "sharding_indexed",
                "configuration": {
                    "chunk_shape": list(chunk_shape),
                    "codecs": inner,
                    "index_codecs": [
                        {"name": "bytes", "configuration": {"endian": "little"}},
                        {"name": "crc32c"},
                    ],
                    "index_location": "end",
                },
            }
        ]
    doc: dict[str, Any] = {
        "zarr_format": 3,
        "node_type": "array",
        "shape": list(shp),
        "data_type": dt.name,
        "chunk_grid": {"name": "regular", "configuration": {"chunk_shape": list(grid)}},
        "chunk_key_encoding": {"name": "default", "configuration": {"separator": "/"}},
        "fill_value": fill_value_json(fill, dt),
        "codecs": inner,
        "attributes": attributes,
    }
    if dims is not None:
        doc["dimension_names"] = list(dims)
    return {"zarr.json": _dump(doc)}, _parse(parse_v3_array, doc, None, "zarr.json")


def _dump(doc: Mapping[str, Any]) -> bytes:
    try:
        return json.dumps(doc, indent=2, allow_nan=False).encode()
    except (TypeError, ValueError) as exc:
        raise InvalidArgumentError(f"attributes must be JSON-serialisable: {exc}") from None


def _parse(
    parser: Any, doc: dict[str, Any], attrs: dict[str, Any] | None, name: str
) -> ArrayMetadata:
    try:
        meta: ArrayMetadata = parser(doc, attrs, name) if attrs is not None else parser(doc, name)
    except LsioError as exc:
        raise InvalidArgumentError(f"the array described is not valid: {exc}") from exc
    return meta
