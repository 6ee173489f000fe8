"""``lsio.rechunk`` and ``lsio.convert``: copy an array into a new layout, out of core, resumably.

The destination is written slab by slab: a slab is a block of whole
destination objects (shards, or chunks when unsharded), as large as the memory
budget allows. Each slab is read from the source with the engine (each source
chunk it touches read once) and written with the writer (objects encoded in
parallel, each replaced atomically). After each slab a journal in the
destination records it as done, so an interrupted run resumes where it
stopped. The destination's metadata is written last: until then no reader sees
an array there.
"""

from __future__ import annotations

import contextlib
import json
import math
import re
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from lsio._errors import InvalidArgumentError, NodeExistsError
from lsio._progress import Progress
from lsio.io import Writer, is_object_url, path_from_url
from lsio.plan import ReadConfig
from lsio.zarr import Array, open_array
from lsio.zarr._context import Context
from lsio.zarr._create import array_documents
from lsio.zarr._new import writable_store

__all__ = ["convert", "parse_size", "rechunk"]

JOURNAL = ".lsio-rechunk.json"
_UNITS = {
    "": 1,
    "b": 1,
    "kb": 10**3,
    "mb": 10**6,
    "gb": 10**9,
    "tb": 10**12,
    "kib": 2**10,
    "mib": 2**20,
    "gib": 2**30,
    "tib": 2**40,
}


def parse_size(value: int | str) -> int:
    """Bytes from an int or a string such as ``"1GB"``, ``"512 MiB"``, ``"2e9"``."""
    if isinstance(value, int) and not isinstance(value, bool):
        size = value
    else:
        m = re.fullmatch(r"\s*([0-9.eE+]+)\s*([A-Za-z]*)\s*", str(value))
        if m is None or m.group(2).lower() not in _UNITS:
            raise InvalidArgumentError(
                f"cannot read a size from {value!r}; use e.g. '1GB' or '512MiB'"
            )
        try:
            size = int(float(m.group(1)) * _UNITS[m.group(2).lower()])
        except (ValueError, OverflowError):  # not a number, or not a finite one
            raise InvalidArgumentError(f"cannot read a size from {value!r}") from None
    if size <= 0:
        raise InvalidArgumentError(f"a memory budget must be positive, got {value!r}")
    return size


def _slab_shape(
    shape: tuple[int, ...], unit: tuple[int, ...], itemsize: int, budget: int
) -> tuple[int, ...]:
    """Largest block of whole units within ``budget`` bytes, grown from the last dimension."""
    slab = list(unit)
    for d in reversed(range(len(shape))):
        others = math.prod(slab[:d] + slab[d + 1 :]) * itemsize
        units_here = max(1, budget // max(1, others * unit[d]))
        slab[d] = min(unit[d] * units_here, max(unit[d], -(-shape[d] // unit[d]) * unit[d]))
        if slab[d] < shape[d]:
            break
    return tuple(slab)


def _slabs(shape: tuple[int, ...], slab: tuple[int, ...]) -> list[tuple[slice, ...]]:
    grid = [range(0, s, b) if s else range(0) for s, b in zip(shape, slab, strict=True)]
    out = []
    for starts in np.ndindex(*(len(g) for g in grid)):
        out.append(
            tuple(
                slice(g[i], min(g[i] + b, s))
                for g, i, b, s in zip(grid, starts, slab, shape, strict=True)
            )
        )
    return out


def rechunk(
    source: Array | str,
    dest: str,
    *,
    chunks: Sequence[int] | None = None,
    shards: Sequence[int] | None = None,
    compressor: str | None = "zstd",
    codecs: Any = None,
    zarr_format: int | None = None,
    max_mem: int | str = "1GB",
    progress: bool = False,
    overwrite: bool = False,
    config: ReadConfig | None = None,
) -> Array:
    """Copy ``source`` to a new array at ``dest`` with another chunking, sharding or codec.

    Args:
        source: An lsio array, or the path of one.
        dest: Where to write (a directory; created).
        chunks: Chunk shape of the copy (default: the source's read chunks).
        shards: Shard shape of the copy (multiples of ``chunks``); default unsharded.
        compressor: As in :func:`lsio.create` (default zstd level 3); or ``codecs``.
        codecs: Zarr v3 codec list of a chunk.
        zarr_format: 2 or 3 (default: the source's); 3 converts a v2 source.
        max_mem: Memory budget (bytes, or e.g. ``"1GB"``): slabs of whole
            destination objects are sized to a third of it (the slab, its
            encoded copies and the read buffers share the rest). Default 1 GB.
        progress: Show a progress bar on stderr.
        overwrite: Replace an array already at ``dest`` (a half-done copy with the
            same parameters is resumed instead, whatever this says).
        config: Read settings for the source and the copy.

    Returns:
        The copy, open for reading and writing.

    Raises:
        InvalidArgumentError: Bad parameters, or ``max_mem`` smaller than one destination object.
        NodeExistsError: ``dest`` holds a node and ``overwrite`` is false.
    """
    cfg = config or ReadConfig()
    src = source if isinstance(source, Array) else open_array(source, config=cfg)
    budget = parse_size(max_mem)
    fmt = zarr_format or src.zarr_format
    docs, meta = array_documents(
        shape=src.shape,
        dtype=src.dtype,
        chunks=tuple(chunks) if chunks is not None else src.chunks,
        shards=tuple(shards) if shards is not None else None,
        compressor=compressor,
        codecs=codecs,
        fill_value=src.fill_value,
        dims=src.dims,
        attrs={k: v for k, v in src.attrs.items() if k != "_ARRAY_DIMENSIONS"},
        zarr_format=fmt,
    )
    unit = meta.chunk_shape
    itemsize = src.dtype.itemsize
    if math.prod(unit) * itemsize * 3 > budget:
        raise InvalidArgumentError(
            f"max_mem of {budget:,} bytes is too small: one destination "
            f"{'shard' if shards is not None else 'chunk'} {unit} takes "
            f"{math.prod(unit) * itemsize:,} bytes, and a slab needs about 3x that"
        )
    _check_apart(src, dest)
    store = writable_store(dest, cfg)
    if not isinstance(store, Writer):
        raise InvalidArgumentError(f"cannot write to {dest}")
    slab = _slab_shape(src.shape, unit, itemsize, budget // 3)
    plan = {key: json.loads(doc) for key, doc in docs.items()}
    plan["source"] = f"{src.store_url}/{src.path}"
    # The journal counts slabs: another max_mem cuts other slabs, so it starts again.
    plan["slab"] = list(slab)
    done = _resume(store, plan, overwrite)
    slabs = _slabs(src.shape, slab)
    ctx = Context(store, cfg, writable=True)
    out = Array(ctx, "", meta)
    with (
        Progress(src.nbytes, desc="rechunk", items="slabs")
        if progress
        else contextlib.nullcontext() as bar
    ):
        for i, region in enumerate(slabs):
            if i not in done:
                out.write(region, src.read(region))
                done.add(i)
                store.put(JOURNAL, json.dumps({"plan": plan, "done": sorted(done)}).encode())
            if bar is not None:
                bar.add(math.prod(s.stop - s.start for s in region) * itemsize, 1)
    for key in sorted(docs, key=lambda k: k in ("zarr.json", ".zarray")):
        store.put(key, docs[key])  # the copy appears when its metadata does
    store.delete(JOURNAL)
    return open_array(dest, mode="r+", config=cfg)


def _check_apart(src: Array, dest: str) -> None:
    """Refuse a destination that is the source's store or inside it (or holds it)."""
    if is_object_url(src.store_url) and is_object_url(dest):
        a, b = src.store_url.rstrip("/") + "/", dest.rstrip("/") + "/"
        if a.startswith(b) or b.startswith(a):
            raise InvalidArgumentError(
                f"the destination {dest} overlaps the source {src.store_url}; "
                "write the copy elsewhere"
            )
        return
    try:
        here = Path(path_from_url(src.store_url)).resolve()
        there = Path(path_from_url(dest)).resolve()
    except ValueError:
        return
    if here == there or here in there.parents or there in here.parents:
        raise InvalidArgumentError(
            f"the destination {dest} overlaps the source {src.store_url}; write the copy elsewhere"
        )


def _resume(store: Any, plan: dict[str, Any], overwrite: bool) -> set[int]:
    """Slabs already written by an earlier run with the same plan; clears ``dest`` as needed."""
    raw = store.get(JOURNAL)
    if raw is not None:
        try:
            journal = json.loads(raw)
        except ValueError:
            journal = None
        if isinstance(journal, dict) and journal.get("plan") == plan:
            return {int(i) for i in journal.get("done", [])}
        store.delete_prefix("")  # a copy with other parameters: start again
        return set()
    files, dirs = store.list_dir("")
    exists = bool(files or dirs)  # a node, or anything else: never written over unasked
    if exists and not overwrite:
        raise NodeExistsError(f"{store.url} is not empty; pass overwrite=True to replace it")
    if exists:
        store.delete_prefix("")
    return set()


def convert(
    source: Array | str,
    dest: str,
    *,
    zarr_format: int = 3,
    shards: Sequence[int] | None = None,
    compressor: str | None = "zstd",
    max_mem: int | str = "1GB",
    progress: bool = False,
    overwrite: bool = False,
    config: ReadConfig | None = None,
) -> Array:
    """Copy ``source`` to another Zarr format (e.g. v2 -> v3, optionally sharded), same chunks.

    Metadata carried over: shape, dtype, chunks, fill value, dimension names and
    attributes. See :func:`rechunk` for the arguments.
    """
    return rechunk(
        source,
        dest,
        shards=shards,
        compressor=compressor,
        zarr_format=zarr_format,
        max_mem=max_mem,
        progress=progress,
        overwrite=overwrite,
        config=config,
    )
