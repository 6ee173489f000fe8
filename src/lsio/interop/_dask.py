"""``lsio.to_dask``: a ``dask.array`` whose blocks are read by lsio."""

from __future__ import annotations

from typing import Any

import numpy as np

from lsio._errors import InvalidArgumentError
from lsio.zarr import Array, reopen_array

__all__ = ["to_dask"]


class _Source:
    """What a Dask task needs to read a block: picklable, reopens the array once per process."""

    def __init__(self, array: Array) -> None:
        self.store_url = array.store_url
        self.path = array.path
        self.config = array.context.config
        self.shape = array.shape
        self.dtype = array.dtype
        self.ndim = array.ndim
        self._array: Array | None = array

    def __getstate__(self) -> dict[str, Any]:
        state = dict(self.__dict__)
        state["_array"] = None
        return state

    def array(self) -> Array:
        if self._array is None:
            self._array = reopen_array(self.store_url, self.path, self.config)
        return self._array

    def __getitem__(self, key: Any) -> np.ndarray:
        result: np.ndarray = self.array().read(key)
        return result


def to_dask(array: Array, chunks: Any = None, name: str | None = None) -> Any:
    """A ``dask.array.Array`` over ``array``, each block read by lsio (needs the ``dask`` extra).

    Args:
        array: An array opened with lsio; its store must be reachable by path
            or URL from the Dask workers (they reopen it).
        chunks: Dask block shape. Default: the array's shards (or chunks when
            unsharded), so blocks are chunk-aligned and each chunk is read once.
        name: Dask name of the collection; default ``lsio-<array name>-<token>``,
            the token derived from the store URL, path, shape, dtype and blocks.

    Raises:
        InvalidArgumentError: When ``chunks`` cuts through the array's chunks.
    """
    try:
        import dask.array as da
        from dask.base import tokenize
    except ImportError as exc:
        raise ImportError("to_dask needs dask: pip install 'lsio[dask]'") from exc
    if chunks is None:
        chunks = array.shards or array.chunks
    normalize = da.core.normalize_chunks
    try:
        normalized = normalize(chunks, array.shape, dtype=array.dtype)  # type: ignore[no-untyped-call]
    except (ValueError, TypeError, ZeroDivisionError) as exc:
        raise InvalidArgumentError(
            f"chunks {chunks!r} do not fit an array of shape {array.shape}: {exc}"
        ) from None
    if any(b < 1 for blocks in normalized for b in blocks) and array.size:
        raise InvalidArgumentError(f"chunks {chunks!r} hold empty blocks; use sizes >= 1")
    for d, (blocks, c) in enumerate(zip(normalized, array.chunks, strict=True)):
        if any(b % c for b in blocks[:-1]):
            raise InvalidArgumentError(
                f"chunks {chunks!r} cut through the array's chunks of {array.chunks} "
                f"along dimension {d}; use multiples of the chunk shape"
            )
    # Two collections over one array with other blocks must not share keys.
    token = tokenize(array.store_url, array.path, array.shape, str(array.dtype), normalized)
    key = name or f"lsio-{array.path.rsplit('/', 1)[-1] or 'array'}-{token}"
    return da.from_array(  # type: ignore[no-untyped-call]
        _Source(array),
        chunks=normalized,
        name=key,
        asarray=False,
        fancy=False,
        lock=False,
        meta=np.empty((0,) * array.ndim, dtype=array.dtype),
    )
