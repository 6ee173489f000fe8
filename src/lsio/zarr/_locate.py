"""Where an array's chunks are stored: object keys and byte ranges, from the shard indexes.

Free functions over :class:`lsio.zarr.Array`'s public view (its keys, shard
shape and cached shard indexes), for the engine and the visitors.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

import numpy as np
import numpy.typing as npt

from lsio.io import ByteRange, Range, WholeObject
from lsio.plan import grid_shape
from lsio.zarr._sharding import MISSING

if TYPE_CHECKING:
    from lsio.zarr._array import Array

__all__ = ["locate_chunks", "locate_table", "shard_index_table"]

_I64 = npt.NDArray[np.int64]


def locate_chunks(
    array: Array, coords: Sequence[tuple[int, ...]]
) -> list[tuple[str, Range] | None]:
    """Object key and byte range of each chunk of ``array`` (read-grid coordinates).

    ``None`` marks a chunk known to be absent (not in its shard's index, or its
    whole shard missing); an unsharded chunk's file may still turn out missing
    when read.
    """
    if not array.reads_inner_chunks:
        whole = WholeObject()
        return [(array.chunk_key(c), whole) for c in coords]
    if not coords:
        return []
    keys, key_of, offsets, sizes = locate_table(
        array, np.array(coords, dtype=np.int64).reshape(len(coords), -1)
    )
    return [
        None if size < 0 else (keys[k], ByteRange(offset, offset + size))
        for k, offset, size in zip(key_of.tolist(), offsets.tolist(), sizes.tolist(), strict=True)
    ]


def locate_table(array: Array, coords: _I64) -> tuple[list[str], _I64, _I64, _I64]:
    """:func:`locate_chunks` as arrays, for ``(n, ndim)`` read-grid coordinates.

    Returns:
        The object keys, and per chunk the index of its key, its offset and its
        stored size (``-1``: known absent). Unsharded chunks are whole objects
        (one key each, offset and size 0: known once read).
    """
    n = len(coords)
    shards = array.shards
    if shards is None or n == 0:
        zeros = np.zeros(n, dtype=np.int64)
        return array.chunk_keys(coords), np.arange(n, dtype=np.int64), zeros, zeros.copy()
    # Vectorised: shard of each chunk, its index entry, all at once.
    per_shard = np.asarray(array.chunks_per_shard, dtype=np.int64)
    if array.ndim:
        ids = np.ravel_multi_index(tuple((coords // per_shard).T), grid_shape(array.shape, shards))
        uniq, key_of = np.unique(ids, return_inverse=True)
    else:  # a 0-d array: one shard
        uniq, key_of = np.zeros(1, dtype=np.int64), np.zeros(n, dtype=np.int64)
    keys, stacked = shard_index_table(array, uniq)
    entries = stacked[(key_of.reshape(-1), *(coords % per_shard).T)]
    stored = entries[:, 0] != MISSING
    offsets = np.where(stored, entries[:, 0], 0).astype(np.int64)
    sizes = np.where(stored, entries[:, 1], -1).astype(np.int64)
    return keys, key_of.reshape(-1).astype(np.int64), offsets, sizes


def shard_index_table(array: Array, ids: _I64) -> tuple[list[str], npt.NDArray[np.uint64]]:
    """Keys and indexes of the shards of ``array`` with linear ids ``ids`` (C order over the shard grid).

    Returns:
        The shards' keys, and their indexes stacked into one
        ``(len(ids), *chunks_per_shard, 2)`` array (``MISSING`` throughout
        for a shard that is not stored).
    """
    shards = array.shards
    assert shards is not None
    if array.ndim:
        grid = grid_shape(array.shape, shards)
        coords = [tuple(c) for c in np.array(np.unravel_index(ids, grid)).T.tolist()]
    else:
        coords = [()] * len(ids)
    indexes = array.shard_indexes(coords)
    stacked = np.full((len(coords), *array.chunks_per_shard, 2), MISSING, dtype=np.uint64)
    for i, c in enumerate(coords):
        found = indexes[c]
        if found is not None:
            stacked[i] = found
    return [array.chunk_key(c) for c in coords], stacked
