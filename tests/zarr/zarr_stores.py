"""Stores written by zarr-python (the reference) for differential tests."""

from __future__ import annotations

import math
import os
import random
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import zarr.codecs as zc
from hypothesis import strategies as st

import zarr
from tests.strategies import DTYPES, chunkings, fill_values, shapes, values


@dataclass
class StoreSpec:
    zarr_format: int
    shape: tuple[int, ...]
    chunks: tuple[int, ...]
    shards: tuple[int, ...] | None
    dtype: str
    fill_value: Any
    codecs: dict[str, Any]
    data: np.ndarray
    holes: list[tuple[slice, ...]]
    delete_seed: int | None


_V3_COMPRESSORS = ["none", "zstd", "blosc", "gzip", "crc32c", "zstd+crc32c"]
_V2_COMPRESSORS = ["none", "zstd", "blosc", "gzip", "zlib", "lz4"]


@st.composite
def store_specs(
    draw: st.DrawFn, zarr_format: int | None = None, sharded: bool | None = None
) -> StoreSpec:
    fmt = zarr_format or draw(st.sampled_from([2, 3]))
    shape = draw(shapes())
    chunks = draw(chunkings(shape))
    dtype = np.dtype(draw(st.sampled_from(DTYPES)))
    fill = draw(fill_values(dtype))
    shard = fmt == 3 and (sharded if sharded is not None else draw(st.booleans()))
    shards = tuple(c * draw(st.integers(1, 3)) for c in chunks) if shard else None
    codecs: dict[str, Any] = {}
    if fmt == 3:
        codecs["compressor"] = draw(st.sampled_from(_V3_COMPRESSORS))
        codecs["endian"] = draw(st.sampled_from(["little", "big"]))
        codecs["transpose"] = draw(st.booleans()) and len(shape) > 1
        codecs["perm"] = draw(st.permutations(range(len(shape))))
        codecs["key"] = draw(
            st.sampled_from([("default", "/"), ("default", "."), ("v2", "."), ("v2", "/")])
        )
        codecs["index_location"] = draw(st.sampled_from(["end", "start"]))
    else:
        codecs["compressor"] = draw(st.sampled_from(_V2_COMPRESSORS))
        codecs["order"] = draw(st.sampled_from(["C", "F"]))
        codecs["endian"] = draw(st.sampled_from(["<", ">"]))
        codecs["sep"] = draw(st.sampled_from([".", "/"]))
    data = values(draw, shape, dtype)
    holes = []
    for _ in range(draw(st.integers(0, 2))):
        holes.append(tuple(slice(draw(st.integers(0, s)), None) for s in shape))
    delete = draw(st.none() | st.integers(0, 2**31))
    return StoreSpec(fmt, shape, chunks, shards, dtype.str, fill, codecs, data, holes, delete)


def _compressors(name: str) -> list[Any]:
    return {
        "none": [],
        "zstd": [zc.ZstdCodec(level=1)],
        "blosc": [zc.BloscCodec(cname="lz4", shuffle="shuffle")],
        "gzip": [zc.GzipCodec(level=1)],
        "crc32c": [zc.Crc32cCodec()],
        "zstd+crc32c": [zc.ZstdCodec(level=1), zc.Crc32cCodec()],
    }[name]


def _v2_compressor(name: str) -> Any:
    import numcodecs

    return {
        "none": None,
        "zstd": numcodecs.Zstd(level=1),
        "blosc": numcodecs.Blosc(cname="zstd", shuffle=numcodecs.Blosc.BITSHUFFLE),
        "gzip": numcodecs.GZip(level=1),
        "zlib": numcodecs.Zlib(level=1),
        "lz4": numcodecs.LZ4(),
    }[name]


def write_store(spec: StoreSpec, path: Path) -> None:
    """Write ``spec`` with zarr-python; holes are set to the fill value; files maybe deleted."""
    c = spec.codecs
    if spec.zarr_format == 3:
        filters = [zc.TransposeCodec(order=c["perm"])] if c["transpose"] else []
        arr = zarr.create_array(
            str(path),
            shape=spec.shape,
            chunks=spec.chunks,
            shards=(
                {"shape": spec.shards, "index_location": c["index_location"]}
                if spec.shards
                else None
            ),
            dtype=spec.dtype,
            fill_value=spec.fill_value,
            filters=filters,
            serializer=zc.BytesCodec(endian=c["endian"]),
            compressors=_compressors(c["compressor"]),
            chunk_key_encoding={"name": c["key"][0], "separator": c["key"][1]},
            dimension_names=[f"d{i}" for i in range(len(spec.shape))] or None,
            attributes={"title": "differential"},
            zarr_format=3,
        )
    else:
        arr = zarr.create_array(
            str(path),
            shape=spec.shape,
            chunks=spec.chunks,
            dtype=np.dtype(spec.dtype).newbyteorder(c["endian"]),
            fill_value=spec.fill_value,
            compressors=_v2_compressor(c["compressor"]),
            order=c["order"],
            chunk_key_encoding={"name": "v2", "separator": c["sep"]},
            zarr_format=2,
        )
    data = spec.data.copy()
    for hole in spec.holes:
        data[hole] = spec.fill_value
    if math.prod(spec.shape):
        arr[...] = data
    elif not spec.shape:
        arr[()] = data[()]
    if spec.delete_seed is not None:
        files = sorted(
            p
            for p in path.rglob("*")
            if p.is_file() and p.name not in ("zarr.json", ".zarray", ".zattrs")
        )
        rng = random.Random(spec.delete_seed)
        for f in rng.sample(files, k=len(files) // 3):
            os.remove(f)
