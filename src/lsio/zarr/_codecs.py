"""Building codec pipelines from Zarr v2 and v3 metadata."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np

from lsio._errors import MetadataError, UnsupportedError
from lsio.compute import (
    ArrayArrayCodec,
    ArrayBytesCodec,
    BytesBytesCodec,
    BytesCodec,
    CodecPipeline,
    Crc32cCodec,
    TransposeCodec,
    check_order,
    numcodecs_codec,
)
from lsio.zarr._sharding import ShardingCodec

__all__ = ["V2_COMPRESSORS", "V3_CODECS", "parse_v2_pipeline", "parse_v3_pipeline"]

V3_CODECS = ("blosc", "bytes", "crc32c", "gzip", "sharding_indexed", "transpose", "zstd")
V2_COMPRESSORS = ("blosc", "bz2", "gzip", "lz4", "lzma", "zlib", "zstd")
_V2_FILTERS = (
    "astype",
    "bitround",
    "categorize",
    "delta",
    "fixedscaleoffset",
    "packbits",
    "quantize",
    "shuffle",
)


def _split(codec: Any, document: str) -> tuple[str, Mapping[str, Any]]:
    if isinstance(codec, str):
        return codec, {}
    if not isinstance(codec, Mapping) or not isinstance(codec.get("name"), str):
        raise MetadataError(
            f"each codec must be an object with a 'name', got {codec!r}",
            document=document,
            field="codecs",
        )
    config = codec.get("configuration", {})
    if not isinstance(config, Mapping):
        raise MetadataError(
            f"configuration of codec {codec['name']!r} must be an object",
            document=document,
            field="codecs",
        )
    return codec["name"], config


def parse_v3_pipeline(
    codecs: Any, ndim: int, dtype: np.dtype[Any], fill_value: Any, document: str
) -> CodecPipeline:
    """Pipeline for a Zarr v3 ``codecs`` list, validating the kinds and their order."""
    if not isinstance(codecs, list) or not codecs:
        raise MetadataError("must be a non-empty list", document=document, field="codecs")
    array_array: list[ArrayArrayCodec] = []
    array_bytes: ArrayBytesCodec | None = None
    bytes_bytes: list[BytesBytesCodec] = []
    for codec in codecs:
        name, config = _split(codec, document)
        try:
            if name == "transpose":
                if array_bytes is not None:
                    raise MetadataError(
                        "transpose must come before the bytes codec",
                        document=document,
                        field="codecs",
                    )
                order = config.get("order")
                if order == "C":
                    order = list(range(ndim))
                elif order == "F":
                    order = list(range(ndim))[::-1]
                if not isinstance(order, list):
                    raise MetadataError(
                        f"transpose needs an 'order' list, got {order!r}",
                        document=document,
                        field="codecs",
                    )
                array_array.append(TransposeCodec(check_order(order, ndim)))
            elif name in ("bytes", "sharding_indexed"):
                if array_bytes is not None:
                    raise MetadataError(
                        "exactly one array->bytes codec (bytes or sharding_indexed) is allowed",
                        document=document,
                        field="codecs",
                    )
                if name == "bytes":
                    endian = config.get("endian")
                    if endian not in ("little", "big", None):
                        raise MetadataError(
                            f"bytes endian {endian!r} must be 'little' or 'big'",
                            document=document,
                            field="codecs",
                        )
                    if endian is None and dtype.itemsize > 1:
                        raise MetadataError(
                            "bytes codec needs 'endian' for multi-byte types",
                            document=document,
                            field="codecs",
                        )
                    array_bytes = BytesCodec(endian)
                else:
                    array_bytes = _parse_sharding(config, ndim, dtype, fill_value, document)
            elif name in ("zstd", "blosc", "gzip", "crc32c"):
                if array_bytes is None:
                    raise MetadataError(
                        f"{name} must come after the bytes codec", document=document, field="codecs"
                    )
                bytes_bytes.append(
                    Crc32cCodec()
                    if name == "crc32c"
                    else numcodecs_codec(name, _numcodecs_config(name, config))
                )
            elif isinstance(codec, Mapping) and codec.get("must_understand") is False:
                continue
            else:
                raise UnsupportedError(
                    f"{document}: unknown codec {name!r}; supported codecs: {', '.join(V3_CODECS)}"
                )
        except (TypeError, ValueError, KeyError) as exc:
            if isinstance(exc, MetadataError | UnsupportedError):
                raise
            raise MetadataError(
                f"invalid configuration of codec {name!r}: {exc}", document=document, field="codecs"
            ) from exc
    if array_bytes is None:
        raise MetadataError(
            "an array->bytes codec (bytes or sharding_indexed) is required",
            document=document,
            field="codecs",
        )
    return CodecPipeline(tuple(array_array), array_bytes, tuple(bytes_bytes))


_BLOSC_SHUFFLE = {"noshuffle": 0, "shuffle": 1, "bitshuffle": 2}


def _numcodecs_config(name: str, config: Mapping[str, Any]) -> dict[str, Any]:
    # Decoding never depends on these settings, encoding does: they are passed on
    # under the names numcodecs uses.
    if name == "zstd":
        return {"level": int(config.get("level", 0)), "checksum": bool(config.get("checksum"))}
    if name == "gzip":
        return {"level": int(config.get("level", 5))}
    if name == "blosc":
        out: dict[str, Any] = {
            "cname": str(config.get("cname", "lz4")),
            "clevel": int(config.get("clevel", 5)),
            "shuffle": _BLOSC_SHUFFLE.get(str(config.get("shuffle", "shuffle")), 1),
            "blocksize": int(config.get("blocksize", 0)),
        }
        if config.get("typesize"):
            out["typesize"] = int(config["typesize"])
        return out
    return {}


def _parse_sharding(
    config: Mapping[str, Any], ndim: int, dtype: np.dtype[Any], fill_value: Any, document: str
) -> ShardingCodec:
    chunk_shape = config.get("chunk_shape")
    if (
        not isinstance(chunk_shape, list)
        or len(chunk_shape) != ndim
        or not all(isinstance(c, int) and c > 0 for c in chunk_shape)
    ):
        raise MetadataError(
            f"sharding chunk_shape {chunk_shape!r} must list {ndim} positive integers",
            document=document,
            field="codecs",
        )
    location = config.get("index_location", "end")
    if location not in ("start", "end"):
        raise MetadataError(
            f"index_location {location!r} must be 'start' or 'end'",
            document=document,
            field="codecs",
        )
    inner = parse_v3_pipeline(
        config.get("codecs", [{"name": "bytes", "configuration": {"endian": "little"}}]),
        ndim,
        dtype,
        fill_value,
        document,
    )
    index = parse_v3_pipeline(
        config.get(
            "index_codecs",
            [{"name": "bytes", "configuration": {"endian": "little"}}, {"name": "crc32c"}],
        ),
        ndim + 1,
        np.dtype(np.uint64),
        0,
        document,
    )
    if index.encoded_size((1,) * (ndim + 1), np.dtype(np.uint64)) is None:
        raise UnsupportedError(
            f"{document}: shard index codecs {index.names} do not have a fixed size; "
            "only bytes, transpose and crc32c are supported there"
        )
    return ShardingCodec(tuple(chunk_shape), inner, index, location, fill_value)


def parse_v2_pipeline(
    meta: Mapping[str, Any], endian: str, document: str, itemsize: int = 1
) -> CodecPipeline:
    """Pipeline for Zarr v2 ``filters``, ``compressor`` and ``order``.

    ``itemsize`` is the array's: zarr-python hands v2 compressors the chunk as
    an array, and blosc shuffles by its item size, so a blosc compressor with
    no filters before it shuffles by ``itemsize`` here too (by bytes, shuffling
    would do nothing and chunks would compress worse than zarr-python's).
    """
    order = meta.get("order", "C")
    if order not in ("C", "F"):
        raise MetadataError(f"order {order!r} must be 'C' or 'F'", document=document, field="order")
    stages: list[BytesBytesCodec] = []
    filters = meta.get("filters")
    for f in filters or []:
        if not isinstance(f, Mapping) or f.get("id") not in _V2_FILTERS:
            fid = f.get("id") if isinstance(f, Mapping) else f
            raise UnsupportedError(
                f"{document}: unknown filter {fid!r}; supported filters: {', '.join(_V2_FILTERS)}"
            )
        stages.append(numcodecs_codec(f["id"], {k: v for k, v in f.items() if k != "id"}))
    compressor = meta.get("compressor")
    if compressor is not None:
        if not isinstance(compressor, Mapping) or compressor.get("id") not in V2_COMPRESSORS:
            cid = compressor.get("id") if isinstance(compressor, Mapping) else compressor
            raise UnsupportedError(
                f"{document}: unknown compressor {cid!r}; supported compressors: {', '.join(V2_COMPRESSORS)}"
            )
        config = {k: v for k, v in compressor.items() if k != "id"}
        if compressor["id"] == "blosc" and not stages and 1 < itemsize <= 255:
            config.setdefault("typesize", itemsize)
        try:
            stages.append(numcodecs_codec(compressor["id"], config))
        except (TypeError, ValueError) as exc:
            raise MetadataError(
                f"invalid compressor {dict(compressor)!r}: {exc}",
                document=document,
                field="compressor",
            ) from exc
    return CodecPipeline((), BytesCodec(endian, order), tuple(stages))
