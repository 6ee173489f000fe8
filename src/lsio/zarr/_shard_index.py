"""Shard indexes of one array: fetched in batches, kept in a bounded LRU cache."""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Callable, Iterable

import numpy as np
import numpy.typing as npt

from lsio._errors import ChunkError
from lsio.compute import DecodeError
from lsio.io import ByteRange, SuffixRange
from lsio.plan import ReadTask, execute_reads
from lsio.zarr._context import Context
from lsio.zarr._sharding import ShardingCodec, parse_shard_index

__all__ = ["Index", "ShardIndexes"]

Index = npt.NDArray[np.uint64] | None
Coords = tuple[int, ...]


class ShardIndexes:
    """The indexes of an array's shards, each fetched once while it stays cached.

    Args:
        ctx: The array's context (store, worker pool, cache size).
        codec: The array's sharding codec.
        shard_shape: Shape of a shard.
        key: Store key of the shard at given grid coordinates.
    """

    def __init__(
        self,
        ctx: Context,
        codec: ShardingCodec,
        shard_shape: tuple[int, ...],
        key: Callable[[Coords], str],
    ) -> None:
        self._ctx, self._codec, self._key = ctx, codec, key
        self._per_shard = codec.chunks_per_shard(shard_shape)
        size = codec.index_nbytes(shard_shape)
        self._range = SuffixRange(size) if codec.index_location == "end" else ByteRange(0, size)
        self._cache: OrderedDict[Coords, Index] = OrderedDict()
        self._lock = threading.Lock()

    def get(self, shards: Iterable[Coords]) -> dict[Coords, Index]:
        """Indexes of ``shards`` (``None`` for a shard that is not stored), missing ones in one batch.

        An index is an array ``(*chunks_per_shard, 2)`` of each inner chunk's
        offset and size in the shard (``MISSING`` for both when not stored).

        Raises:
            ChunkError: A stored index that cannot be parsed (naming the shard's key).
        """
        found: dict[Coords, Index] = {}
        wanted: list[Coords] = []
        with self._lock:
            for s in shards:
                if s in self._cache:
                    self._cache.move_to_end(s)
                    found[s] = self._cache[s]
                else:
                    wanted.append(s)
        if not wanted:
            return found
        lock = threading.Lock()

        def handle(task: ReadTask[Coords], data: memoryview | None) -> None:
            index: Index = None
            if data is not None:
                try:
                    index = parse_shard_index(data, self._codec, self._per_shard)
                except DecodeError as exc:
                    raise ChunkError(f"shard index: {exc}", key=task.key) from exc
            with lock:
                found[task.item] = index

        ctx = self._ctx
        tasks = [ReadTask(ctx.store, self._key(s), self._range, s) for s in wanted]
        execute_reads(tasks, handle, ctx.pool, ctx.batches, ctx.workers)
        with self._lock:
            for s in wanted:
                self._cache[s] = found[s]
                self._cache.move_to_end(s)
            while len(self._cache) > ctx.config.shard_index_cache:
                self._cache.popitem(last=False)
        return found

    def forget(self, shards: Iterable[Coords] | None = None) -> None:
        """Drop the cached indexes of ``shards`` (all when ``None``), e.g. after rewriting them."""
        with self._lock:
            if shards is None:
                self._cache.clear()
            for s in shards or ():
                self._cache.pop(s, None)
