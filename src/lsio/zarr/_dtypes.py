"""Zarr data types and fill values, v2 and v3, to NumPy."""

from __future__ import annotations

import base64
import math
from typing import Any

import numpy as np

from lsio._errors import MetadataError, UnsupportedError

__all__ = ["SUPPORTED_DTYPES", "parse_fill_value", "parse_v2_dtype", "parse_v3_dtype"]

SUPPORTED_DTYPES = (
    "bool",
    "int8",
    "int16",
    "int32",
    "int64",
    "uint8",
    "uint16",
    "uint32",
    "uint64",
    "float16",
    "float32",
    "float64",
    "complex64",
    "complex128",
)
_SUPPORTED_KINDS = "biufc"


def parse_v3_dtype(value: Any, document: str) -> np.dtype[Any]:
    """NumPy dtype of a Zarr v3 ``data_type``."""
    if not isinstance(value, str) or value not in SUPPORTED_DTYPES:
        raise UnsupportedError(
            f"{document}: data_type {value!r} is not supported yet; "
            f"supported: {', '.join(SUPPORTED_DTYPES)}"
        )
    return np.dtype(value)


def parse_v2_dtype(value: Any, document: str) -> tuple[np.dtype[Any], str]:
    """Native dtype and stored byte order (``"little"``/``"big"``) of a Zarr v2 ``dtype``."""
    if not isinstance(value, str):
        raise UnsupportedError(f"{document}: structured dtype {value!r} is not supported yet")
    try:
        dt = np.dtype(value)
    except TypeError as exc:
        raise MetadataError(f"invalid dtype {value!r}", document=document, field="dtype") from exc
    if dt.kind not in _SUPPORTED_KINDS or dt.fields is not None:
        raise UnsupportedError(
            f"{document}: dtype {value!r} is not supported yet; "
            "supported: bool, (u)int8-64, float16/32/64, complex64/128"
        )
    endian = "big" if dt.byteorder == ">" else "little"
    return dt.newbyteorder("="), endian


_SPECIAL = {"NaN": math.nan, "Infinity": math.inf, "-Infinity": -math.inf}


def _from_bits(value: str, dtype: np.dtype[Any]) -> Any:
    """The element whose bit pattern is the hex string ``value`` (e.g. a NaN payload)."""
    return np.array(int(value, 16), dtype=f"u{dtype.itemsize}").view(dtype)[()]


def _float_from_json(value: Any, dtype: np.dtype[Any], document: str) -> float:
    if isinstance(value, bool):
        raise MetadataError(
            f"{value!r} is not valid for {dtype}", document=document, field="fill_value"
        )
    if isinstance(value, int | float):
        return float(value)
    if isinstance(value, str):
        if value in _SPECIAL:
            return _SPECIAL[value]
        if value.startswith("0x"):
            return float(_from_bits(value, dtype))
    raise MetadataError(
        f"{value!r} is not valid for {dtype}", document=document, field="fill_value"
    )


def parse_fill_value(value: Any, dtype: np.dtype[Any], document: str, zarr_format: int) -> Any:
    """Fill value as a NumPy scalar of ``dtype``.

    Handles every JSON form the specs allow: numbers, booleans, ``"NaN"``,
    ``"Infinity"``, ``"-Infinity"``, hex bit patterns (``"0x7fc00000"``), complex
    numbers as ``[re, im]``, and (v2) ``null`` meaning zero and base64 bytes.
    """
    if value is None:
        if zarr_format == 3:
            raise MetadataError(
                "must not be null in Zarr v3", document=document, field="fill_value"
            )
        return dtype.type(0)
    try:
        if dtype.kind == "b":
            if not isinstance(value, bool | int):
                raise TypeError
            return np.bool_(value)
        if dtype.kind in "iu":
            if isinstance(value, str) and value.startswith("0x"):
                return _from_bits(value, dtype)
            if isinstance(value, bool) or not isinstance(value, int | float) or value != int(value):
                raise TypeError
            info = np.iinfo(dtype)
            if not info.min <= int(value) <= info.max:
                raise TypeError
            return dtype.type(int(value))
        if dtype.kind == "f":
            if isinstance(value, str) and value.startswith("0x"):
                return _from_bits(value, dtype)
            if isinstance(value, str) and zarr_format == 2 and value not in _SPECIAL:
                return np.frombuffer(base64.b64decode(value), dtype=dtype)[0]
            return dtype.type(_float_from_json(value, dtype, document))
        if dtype.kind == "c":
            part = np.dtype(f"f{dtype.itemsize // 2}")
            if isinstance(value, list) and len(value) == 2:
                return dtype.type(
                    complex(
                        _float_from_json(value[0], part, document),
                        _float_from_json(value[1], part, document),
                    )
                )
            if zarr_format == 2 and isinstance(value, str):
                return np.frombuffer(base64.b64decode(value), dtype=dtype)[0]
            if isinstance(value, int | float) and not isinstance(value, bool):
                return dtype.type(value)
            raise TypeError
    except MetadataError:
        raise
    except (TypeError, ValueError, OverflowError, KeyError) as exc:
        raise MetadataError(
            f"{value!r} is not a valid fill value for data type {dtype}",
            document=document,
            field="fill_value",
        ) from exc
    raise UnsupportedError(f"{document}: data type {dtype} is not supported yet")
