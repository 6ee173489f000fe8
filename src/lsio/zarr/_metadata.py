"""Zarr v2 and v3 metadata documents, parsed and validated."""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from lsio._errors import MetadataError, UnsupportedError
from lsio.compute import CodecPipeline
from lsio.zarr._codecs import parse_v2_pipeline, parse_v3_pipeline
from lsio.zarr._dtypes import parse_fill_value, parse_v2_dtype, parse_v3_dtype
from lsio.zarr._sharding import ShardingCodec

__all__ = ["ArrayMetadata", "KeyEncoding", "load_json", "parse_v2_array", "parse_v3_array"]


@dataclass(frozen=True, slots=True)
class KeyEncoding:
    """How chunk coordinates become storage keys.

    Attributes:
        prefix: ``True`` for v3 ``default`` keys (``c/0/1``), ``False`` for
            ``v2``-style keys (``0.1``).
        separator: ``"/"`` or ``"."``.
    """

    prefix: bool
    separator: str

    def key(self, coords: tuple[int, ...]) -> str:
        """Storage key of the chunk at ``coords``, relative to the array."""
        if self.prefix:
            return self.separator.join(["c", *map(str, coords)])
        return self.separator.join(map(str, coords)) if coords else "0"


@dataclass(frozen=True, slots=True)
class ArrayMetadata:
    """Everything needed to read an array, independent of the Zarr version.

    Attributes:
        zarr_format: 2 or 3.
        shape: Array shape.
        dtype: Native-endian element type.
        chunk_shape: Shape of each stored object (a shard, when sharded).
        fill_value: Value of elements in chunks that are not stored.
        pipeline: Codecs of a stored object.
        key_encoding: Chunk key scheme.
        dims: Dimension names (v3 ``dimension_names``, v2 ``_ARRAY_DIMENSIONS``).
        attrs: User attributes.
        codecs_json: Codecs as written in the metadata, for display.
        document: Where the metadata came from, for messages.
        fill_null: Whether a v2 array's fill value is ``null``: chunks not
            stored then read as zeros, but the store declares no fill value
            (which xarray reads as "no missing values").
    """

    zarr_format: int
    shape: tuple[int, ...]
    dtype: np.dtype[Any]
    chunk_shape: tuple[int, ...]
    fill_value: Any
    pipeline: CodecPipeline
    key_encoding: KeyEncoding
    dims: tuple[str | None, ...] | None
    attrs: dict[str, Any] = field(default_factory=dict)
    codecs_json: list[Any] = field(default_factory=list)
    document: str = ""
    fill_null: bool = False

    @property
    def sharding(self) -> ShardingCodec | None:
        """The sharding codec when inner chunks can be read one by one.

        That is the case when sharding is the only codec of the array; when other
        codecs wrap it, shards can only be read and decoded whole.
        """
        ab = self.pipeline.array_bytes
        if (
            isinstance(ab, ShardingCodec)
            and not self.pipeline.array_array
            and not self.pipeline.bytes_bytes
        ):
            return ab
        return None


def load_json(raw: bytes, document: str) -> dict[str, Any]:
    """Parse a metadata document that must hold a JSON object."""
    try:
        value = json.loads(raw)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise MetadataError(f"malformed JSON: {exc}", document=document) from exc
    if not isinstance(value, dict):
        raise MetadataError(
            f"expected a JSON object, got {type(value).__name__}", document=document
        )
    return value


def _require(meta: Mapping[str, Any], name: str, document: str) -> Any:
    if name not in meta:
        raise MetadataError("required field is missing", document=document, field=name)
    return meta[name]


def _shape(value: Any, name: str, document: str, positive: bool) -> tuple[int, ...]:
    if not isinstance(value, list | tuple) or not all(
        isinstance(v, int) and not isinstance(v, bool) and (v > 0 if positive else v >= 0)
        for v in value
    ):
        kind = "positive" if positive else "non-negative"
        raise MetadataError(
            f"must be a list of {kind} integers, got {value!r}", document=document, field=name
        )
    if math.prod(max(v, 1) for v in value) >= 2**62:
        # Element counts and byte offsets are int64 throughout.
        raise MetadataError(
            f"{value!r} describes 2**62 elements or more, beyond what can be addressed",
            document=document,
            field=name,
        )
    return tuple(value)


def parse_v3_array(meta: Mapping[str, Any], document: str) -> ArrayMetadata:
    """Validate a v3 ``zarr.json`` of ``node_type`` array."""
    shape = _shape(_require(meta, "shape", document), "shape", document, positive=False)
    dtype = parse_v3_dtype(_require(meta, "data_type", document), document)
    grid = _require(meta, "chunk_grid", document)
    if not isinstance(grid, Mapping) or grid.get("name") != "regular":
        raise UnsupportedError(
            f"{document}: chunk_grid {grid!r} is not supported; supported: regular"
        )
    chunk_shape = _shape(
        (grid.get("configuration") or {}).get("chunk_shape"),
        "chunk_grid.configuration.chunk_shape",
        document,
        True,
    )
    if len(chunk_shape) != len(shape):
        raise MetadataError(
            f"chunk_shape {list(chunk_shape)} has {len(chunk_shape)} dimensions, shape has {len(shape)}",
            document=document,
            field="chunk_grid",
        )
    enc = meta.get("chunk_key_encoding", {"name": "default"})
    if not isinstance(enc, Mapping) or enc.get("name") not in ("default", "v2"):
        raise UnsupportedError(
            f"{document}: chunk_key_encoding {enc!r} is not supported; supported: default, v2"
        )
    sep = (enc.get("configuration") or {}).get(
        "separator", "/" if enc["name"] == "default" else "."
    )
    if sep not in ("/", "."):
        raise MetadataError(
            f"separator {sep!r} must be '/' or '.'", document=document, field="chunk_key_encoding"
        )
    fill = parse_fill_value(_require(meta, "fill_value", document), dtype, document, 3)
    codecs = _require(meta, "codecs", document)
    pipeline = parse_v3_pipeline(codecs, len(shape), dtype, fill, document)
    for t in meta.get("storage_transformers") or []:
        raise UnsupportedError(f"{document}: storage transformer {t!r} is not supported")
    dims = meta.get("dimension_names")
    if dims is not None and (
        not isinstance(dims, list)
        or len(dims) != len(shape)
        or not all(d is None or isinstance(d, str) for d in dims)
    ):
        raise MetadataError(
            f"must list {len(shape)} names (strings or null), got {dims!r}",
            document=document,
            field="dimension_names",
        )
    attrs = meta.get("attributes", {})
    if not isinstance(attrs, dict):
        raise MetadataError("must be an object", document=document, field="attributes")
    _check_shard_shape(pipeline, chunk_shape, document)
    return ArrayMetadata(
        3,
        shape,
        dtype,
        chunk_shape,
        fill,
        pipeline,
        KeyEncoding(enc["name"] == "default", sep),
        tuple(dims) if dims is not None else None,
        attrs,
        list(codecs),
        document,
    )


def _check_shard_shape(pipeline: CodecPipeline, outer: tuple[int, ...], document: str) -> None:
    codec = pipeline.array_bytes
    while isinstance(codec, ShardingCodec):
        if any(o % i for o, i in zip(outer, codec.chunk_shape, strict=True)):
            raise MetadataError(
                f"shard shape {list(outer)} is not a multiple of inner chunk shape {list(codec.chunk_shape)}",
                document=document,
                field="codecs",
            )
        outer, codec = codec.chunk_shape, codec.inner.array_bytes


def parse_v2_array(meta: Mapping[str, Any], attrs: dict[str, Any], document: str) -> ArrayMetadata:
    """Validate a v2 ``.zarray`` (with the array's ``.zattrs`` already loaded)."""
    if meta.get("zarr_format") != 2:
        raise MetadataError(
            f"expected 2, got {meta.get('zarr_format')!r}", document=document, field="zarr_format"
        )
    shape = _shape(_require(meta, "shape", document), "shape", document, positive=False)
    chunks = _shape(_require(meta, "chunks", document), "chunks", document, positive=True)
    if len(chunks) != len(shape):
        raise MetadataError(
            f"chunks {list(chunks)} has {len(chunks)} dimensions, shape has {len(shape)}",
            document=document,
            field="chunks",
        )
    dtype, endian = parse_v2_dtype(_require(meta, "dtype", document), document)
    fill = parse_fill_value(_require(meta, "fill_value", document), dtype, document, 2)
    sep = meta.get("dimension_separator") or "."
    if sep not in ("/", "."):
        raise MetadataError(
            f"{sep!r} must be '/' or '.'", document=document, field="dimension_separator"
        )
    pipeline = parse_v2_pipeline(meta, endian, document, dtype.itemsize)
    dims = attrs.get("_ARRAY_DIMENSIONS")
    if not (isinstance(dims, list) and len(dims) == len(shape)):
        dims = None
    codecs_json = [
        *(meta.get("filters") or []),
        *([meta["compressor"]] if meta.get("compressor") else []),
    ]
    return ArrayMetadata(
        2,
        shape,
        dtype,
        chunks,
        fill,
        pipeline,
        KeyEncoding(False, sep),
        tuple(dims) if dims is not None else None,
        attrs,
        codecs_json,
        document,
        fill_null=meta["fill_value"] is None,
    )


def nbytes(meta: ArrayMetadata) -> int:
    """Size of the whole array in memory."""
    return math.prod(meta.shape) * meta.dtype.itemsize
