"""Which chunks of an array are stored, from listings and shard indexes alone.

No chunk is read: unsharded chunks are found by listing the array's directory
tree, inner chunks of sharded arrays by reading the indexes of the shards that
exist. A chunk that is not stored holds only the fill value; a stored chunk
may still hold only the fill value where its writer stored such chunks
(zarr-python's ``write_empty_chunks=True``); that is not detected here.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator

import numpy as np
import numpy.typing as npt

from lsio.io import Lister, Store, TreeLister
from lsio.zarr._metadata import KeyEncoding
from lsio.zarr._sharding import MISSING

__all__ = ["METADATA_FILES", "stored_inner_chunks", "stored_objects", "stored_sizes", "walk_keys"]

METADATA_FILES = frozenset({"zarr.json", ".zarray", ".zattrs", ".zgroup", ".zmetadata"})

_Bool = npt.NDArray[np.bool_]
IndexFetch = Callable[
    [Iterable[tuple[int, ...]]], dict[tuple[int, ...], npt.NDArray[np.uint64] | None]
]


def _stored_object(key: str) -> bool:
    """Whether ``key`` (relative to a node) is one of its objects, not its own metadata file."""
    return "/" in key or key not in METADATA_FILES


def walk_keys(store: Lister, path: str) -> Iterator[str]:
    """Keys (relative to ``path``) of every object below ``path`` except its metadata files."""
    if isinstance(store, TreeLister):  # one listing of the whole tree
        yield from (key for key in store.list_tree(path) if _stored_object(key))
        return
    pending = [""]
    while pending:
        rel = pending.pop()
        prefix = "/".join(p for p in (path, rel) if p)
        files, dirs = store.list_dir(prefix)
        for name in files:
            if rel or name not in METADATA_FILES:
                yield f"{rel}/{name}" if rel else name
        pending.extend(f"{rel}/{d}" if rel else d for d in dirs)


def stored_sizes(store: Store, path: str) -> list[int]:
    """Sizes of every object below ``path`` except its metadata files."""
    if isinstance(store, TreeLister):  # the sizes come with the listing
        return [n for key, n in store.list_tree(path).items() if _stored_object(key)]
    prefix = f"{path}/" if path else ""
    sizes = (store.size(f"{prefix}{k}") for k in walk_keys(store, path))
    return [n for n in sizes if n is not None]


def _parse(key: str, encoding: KeyEncoding, ndim: int) -> tuple[int, ...] | None:
    """Grid coordinates of a chunk key, or ``None`` for a name that is not a chunk key."""
    parts = key.split(encoding.separator)
    if encoding.prefix:
        if parts[0] != "c":
            return None
        parts = parts[1:]
    elif ndim == 0:
        return () if parts == ["0"] else None
    if len(parts) != ndim or not all(p.isdigit() for p in parts):
        return None
    return tuple(int(p) for p in parts)


def stored_objects(store: Lister, path: str, encoding: KeyEncoding, grid: tuple[int, ...]) -> _Bool:
    """``True`` at the grid coordinates of every stored object (chunk or shard) of an array.

    Objects outside ``grid`` (left behind by a shrinking resize) and names that
    are not chunk keys (e.g. a writer's temporary files) are ignored.
    """
    out = np.zeros(grid, dtype=bool)
    found = [
        c for c in (_parse(k, encoding, len(grid)) for k in walk_keys(store, path)) if c is not None
    ]
    if found and grid:
        coords = np.array(found, dtype=np.int64)
        inside = np.all(coords < np.array(grid), axis=1)
        out[tuple(coords[inside].T)] = True
    elif found:
        out[()] = True
    return out


def stored_inner_chunks(
    shards: _Bool,
    per_shard: tuple[int, ...],
    grid: tuple[int, ...],
    fetch: IndexFetch,
    window: int,
) -> _Bool:
    """``True`` at every stored inner chunk of a sharded array, on the read-chunk ``grid``.

    Args:
        shards: Stored shards (from :func:`stored_objects`).
        per_shard: Inner chunks per shard along each dimension.
        grid: The inner-chunk grid of the array (edge shards are cut to it).
        fetch: Reads the indexes of a list of shards in one batch.
        window: Shards whose indexes are held at once (bounds memory).
    """
    out = np.zeros(grid, dtype=bool)
    present = [tuple(int(v) for v in s) for s in np.argwhere(shards)]
    for first in range(0, len(present), max(1, window)):
        part = present[first : first + window]
        for shard, index in fetch(part).items():
            if index is None:
                continue
            lo = [s * n for s, n in zip(shard, per_shard, strict=True)]
            region = tuple(
                slice(b, min(b + n, g)) for b, n, g in zip(lo, per_shard, grid, strict=True)
            )
            cut = tuple(slice(0, r.stop - r.start) for r in region)
            out[region] = index[..., 0][cut] != MISSING
    return out
