"""Running the per-chunk reductions of :func:`lsio.stats` as tasks on a Dask cluster.

The region is cut along shard boundaries into pieces; each task opens the array
by its URL in the worker process, reduces its piece with the local engine and
returns the partial statistics, which are merged pairwise on the cluster.
"""

from __future__ import annotations

import itertools
import math
from typing import TYPE_CHECKING, Any

import numpy as np
import numpy.typing as npt

from lsio.compute import Moments
from lsio.plan import OrthogonalSelection, Progression, ReadConfig
from lsio.zarr import reopen_array

if TYPE_CHECKING:
    from lsio.statistics._stats import Region

__all__ = ["run_on_cluster"]

_Arr = npt.NDArray[Any]
Partial = tuple[Moments, _Arr | None]

# Pieces per worker thread: enough to balance uneven pieces, few enough that
# scheduling costs stay small next to reading.
_PIECES_PER_THREAD = 4


def _pieces(region: Region, n: int) -> list[OrthogonalSelection]:
    """The region cut into up to ``n`` pieces of whole shards along its longest shard axis."""
    array = region.array
    dims = region.selection.dims
    shard = [c * k for c, k in zip(array.read_chunk_shape, array.chunks_per_shard, strict=True)]
    spans = []
    for s, size in zip(dims, shard, strict=True):
        assert isinstance(s, Progression)
        first, last = s.start // size, (s.start + s.count - 1) // size
        spans.append(last - first + 1)
    d = int(np.argmax(spans))
    s = dims[d]
    assert isinstance(s, Progression)
    per_piece = max(1, math.ceil(spans[d] / n)) * shard[d]
    cuts = [s.start, *range((s.start // per_piece + 1) * per_piece, s.start + s.count, per_piece)]
    cuts.append(s.start + s.count)
    return [
        OrthogonalSelection((*dims[:d], Progression(a, 1, b - a), *dims[d + 1 :]))
        for a, b in itertools.pairwise(cuts)
    ]


def _partial(
    store_url: str,
    path: str,
    config: ReadConfig,
    selection: OrthogonalSelection,
    axis: tuple[int, ...],
    edges: _Arr | None,
    uniform: bool,
    kept_offset: tuple[int, ...],
    region_kept_shape: tuple[int, ...],
    with_moments: bool,
) -> Partial:
    from lsio.statistics._stats import Region, _run

    array = reopen_array(store_url, path, config)
    try:
        dims = tuple(f"dim_{i}" for i in range(array.ndim))
        piece = Region(array, selection, axis, dims)
        kept = piece.kept
        # The piece's kept positions inside the whole region's kept positions.
        ranges = [np.arange(o, o + piece.shape[d]) for o, d in zip(kept_offset, kept, strict=True)]
        where = (
            np.ravel_multi_index(np.ix_(*ranges), region_kept_shape).reshape(-1)
            if ranges
            else np.zeros(1, dtype=np.intp)
        )
        piece_edges = edges[where] if edges is not None else None
        reducer = _run(piece, piece_edges, uniform, None, with_moments)
        k = math.prod(region_kept_shape)
        moments = Moments.empty(array.dtype, k)
        moments.merge(reducer.moments, where)
        counts = None
        if reducer.counts is not None:
            counts = np.zeros((k, reducer.counts.shape[1]), dtype=np.int64)
            counts[where] = reducer.counts
        return moments, counts
    finally:
        # Its worker threads go now, not whenever the collector finds the array:
        # a worker runs many such tasks, each with an array of its own.
        array.context.close()


def _merge(a: Partial, b: Partial) -> Partial:
    a[0].merge(b[0])
    counts = a[1] + b[1] if a[1] is not None and b[1] is not None else a[1]
    return a[0], counts


def run_on_cluster(
    client: Any,
    region: Region,
    edges: _Arr | None,
    uniform: bool,
    with_moments: bool = True,
) -> tuple[Moments, _Arr | None]:
    """Reduce ``region`` with Dask tasks on ``client``'s cluster; merge the partials there.

    ``with_moments=False`` computes only the histogram (its statistics are empty).
    """
    array = region.array
    threads = sum(client.nthreads().values()) or 1
    pieces = _pieces(region, threads * _PIECES_PER_THREAD)
    kept = region.kept
    kept_shape = tuple(region.shape[d] for d in kept)
    start = [s.start for s in region.selection.dims if isinstance(s, Progression)]
    futures = []
    for sel in pieces:
        offset = tuple(
            sel.dims[d].start - start[d]  # type: ignore[union-attr]
            for d in kept
        )
        futures.append(
            client.submit(
                _partial,
                array.store_url,
                array.path,
                array.context.config,
                sel,
                region.axis,
                edges,
                uniform,
                offset,
                kept_shape,
                with_moments,
                pure=False,
            )
        )
    while len(futures) > 1:
        merged = [
            client.submit(_merge, a, b, pure=False)
            for a, b in zip(futures[::2], futures[1::2], strict=False)
        ]
        if len(futures) % 2:
            merged.append(futures[-1])
        futures = merged
    moments, counts = futures[0].result()
    return moments, counts
