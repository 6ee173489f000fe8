"""``lsio.stats``: summary statistics of an array (or a region), one pass over its chunks."""

from __future__ import annotations

import contextlib
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import numpy.typing as npt

from lsio._errors import InvalidArgumentError, UnsupportedError
from lsio._progress import Progress
from lsio.compute import Moments, moments_kind
from lsio.plan import IntIndex, OrthogonalSelection, Progression, normalize_basic
from lsio.statistics._reducer import Plan, Reducer
from lsio.zarr import Array, visit_chunks
from lsio.zarr._coords import find_coordinates

__all__ = ["Histogram", "Stats", "stats"]

_Arr = npt.NDArray[Any]
_FIELDS = ("count", "nan_count", "sum", "mean", "std", "var", "min", "max")


@dataclass(frozen=True)
class Histogram:
    """Counts per kept position.

    Attributes:
        counts: int64, shape ``(*kept_shape, bins)``.
        edges: float64, shape ``(*kept_shape, bins + 1)``: each position's bin edges.
    """

    counts: _Arr
    edges: _Arr


@dataclass(frozen=True)
class Region:
    """A validated request: which array, which part, which axes are reduced."""

    array: Array
    selection: OrthogonalSelection
    axis: tuple[int, ...]
    dims: tuple[str, ...]

    @property
    def shape(self) -> tuple[int, ...]:
        return self.selection.shape

    @property
    def kept(self) -> tuple[int, ...]:
        return tuple(d for d in range(len(self.shape)) if d not in self.axis)


@dataclass
class Stats:
    """Statistics over the reduced axes, one value per kept position.

    ``count`` counts values that are not NaN; ``mean``, ``std`` (population,
    ``ddof=0``), ``var``, ``min``, ``max`` and ``sum`` skip NaN (like NumPy's
    ``nan*`` functions); a position with only NaN gets NaN, except ``sum``,
    which is 0 there (as ``np.nansum`` gives). Integer sums are exact (int64,
    or Python ints in an object array beyond int64).

    Attributes:
        dims: Names of the kept dimensions.
        count, nan_count, sum, mean, std, var, min, max: Arrays over the kept dimensions.
        coords: Labels of kept dimensions that the store has coordinate arrays for.
    """

    dims: tuple[str, ...]
    count: _Arr
    nan_count: _Arr
    sum: _Arr
    mean: _Arr
    std: _Arr
    var: _Arr
    min: _Arr
    max: _Arr
    coords: dict[str, _Arr] = field(default_factory=dict)
    _histogram: Histogram | None = None
    _bins: Any = None
    _compute_histogram: Callable[[Any, Any], Histogram] | None = field(default=None, repr=False)

    def histogram(self, bins: int | Sequence[float] | None = None, range: Any = None) -> Histogram:
        """The histogram per kept position.

        Args:
            bins: Number of evenly spaced bins (between each position's min and max
                unless ``range`` is given), or the bin edges. ``None`` returns the
                histogram computed by :func:`stats` (``bins=`` there).
            range: ``(low, high)`` of evenly spaced bins.

        Computing a new histogram reads the data again.
        """
        if bins is None or (self._histogram is not None and _same_bins(bins, self._bins, range)):
            if self._histogram is None:
                raise InvalidArgumentError("no histogram was computed: pass bins=")
            return self._histogram
        if self._compute_histogram is None:
            raise InvalidArgumentError("these statistics cannot compute a new histogram")
        return self._compute_histogram(bins, range)

    def to_dict(self) -> dict[str, Any]:
        """Plain lists (JSON-ready): dims, coords and every statistic."""
        out: dict[str, Any] = {"dims": list(self.dims)}
        out["coords"] = {k: v.tolist() for k, v in self.coords.items()}
        for name in _FIELDS:
            out[name] = np.asarray(getattr(self, name)).tolist()
        if self._histogram is not None:
            out["histogram"] = {
                "counts": self._histogram.counts.tolist(),
                "edges": self._histogram.edges.tolist(),
            }
        return out

    def to_xarray(self) -> Any:
        """An ``xarray.Dataset`` with one variable per statistic (needs the ``xarray`` extra)."""
        try:
            import xarray as xr
        except ImportError as exc:
            raise ImportError("to_xarray needs xarray: pip install 'lsio[xarray]'") from exc
        data = {name: (self.dims, np.asarray(getattr(self, name))) for name in _FIELDS}
        if self._histogram is not None:
            data["histogram"] = ((*self.dims, "bin"), self._histogram.counts)
            data["histogram_edges"] = ((*self.dims, "edge"), self._histogram.edges)
        return xr.Dataset(data, coords={k: (k, v) for k, v in self.coords.items()})


def _evenly_binnable(lo: float, hi: float, count: int) -> bool:
    """Whether ``count`` even bins over ``[lo, hi]`` can be found by arithmetic in float64.

    It needs the span, its reciprocal per bin and a bin's width to be finite
    and non-zero; otherwise a value's bin comes out wrong or out of range.
    """
    width = float(hi) - float(lo)  # Python floats: overflow gives inf, with no warning
    return (
        width > 0 and math.isfinite(width) and math.isfinite(count / width) and width / count != 0
    )


def _check_width(lo: float, hi: float, count: int, what: str) -> None:
    """Refuse ``count`` even bins over ``[lo, hi]`` that float64 cannot tell apart or span."""
    if not _evenly_binnable(lo, hi, count):
        raise InvalidArgumentError(
            f"{what} cannot be cut into {count} even bins in float64 "
            f"(a width of {float(hi) - float(lo)}); pass bin edges instead"
        )


def _same_bins(a: Any, b: Any, range_: Any) -> bool:
    """Whether ``bins=a`` without a range asks for the histogram computed for key ``b``."""
    if range_ is not None or isinstance(b, tuple):  # a range given now, or then: compute anew
        return False
    return bool(np.array_equal(np.asarray(a), np.asarray(b)))


def _resolve(array: Array, axis: Any, dims: Any, selection: Any) -> Region:
    if not isinstance(array, Array):
        raise InvalidArgumentError(f"stats needs an lsio Array, got {type(array).__name__}")
    try:
        moments_kind(array.dtype)
    except TypeError as exc:
        raise UnsupportedError(str(exc)) from exc
    names = tuple(n if n else f"dim_{i}" for i, n in enumerate(array.dims or (None,) * array.ndim))
    if axis is not None and dims is not None:
        raise InvalidArgumentError("give axis= or dims=, not both")
    if dims is not None:
        wanted = (dims,) if isinstance(dims, str) else tuple(dims)
        axes = []
        for name in wanted:
            if name not in names:
                raise InvalidArgumentError(
                    f"unknown dimension {name!r}; the array's dimensions are {names}"
                )
            axes.append(names.index(name))
    elif axis is None:
        axes = list(range(array.ndim))
    else:
        try:
            raw = (axis,) if isinstance(axis, int | np.integer) else tuple(axis)
        except TypeError:
            raw = (axis,)
        axes = []
        for a in raw:
            if isinstance(a, bool) or not isinstance(a, int | np.integer):
                raise InvalidArgumentError(f"axis must be ints, got {a!r}")
            if not -array.ndim <= a < array.ndim:
                raise InvalidArgumentError(
                    f"axis {a!r} is out of range for an array of {array.ndim} dimensions"
                )
            axes.append(int(a) % array.ndim)
    if len(set(axes)) != len(axes):
        raise InvalidArgumentError(f"repeated axis in {tuple(axes)}")
    sel = normalize_basic(selection if selection is not None else Ellipsis, array.shape)
    region_dims: list[Progression] = []
    for d, s in enumerate(sel.dims):
        if isinstance(s, IntIndex):  # an int keeps its dimension, one long
            region_dims.append(Progression(s.index, 1, 1))
        elif isinstance(s, Progression) and (s.step == 1 or s.count <= 1):
            region_dims.append(Progression(s.start, 1, s.count))
        else:
            raise InvalidArgumentError(
                f"the selection of dimension {d} is not a slice with step 1; "
                "stats take ints and slices with step 1"
            )
    region = OrthogonalSelection(tuple(region_dims))
    if math.prod(region.shape) == 0:
        raise InvalidArgumentError(f"the selection is empty (shape {region.shape})")
    return Region(array, region, tuple(sorted(axes)), names)


def _run(
    region: Region,
    edges: _Arr | None,
    uniform: bool,
    progress: Progress | None,
    moments: bool = True,
) -> Reducer:
    array = region.array
    plan = Plan(
        region.shape,
        region.axis,
        array.read_chunk_shape,
        array.dtype,
        array.fill_value,
        edges,
        uniform,
        moments,
    )
    hook = progress.add if progress is not None else None
    total = Reducer(plan)
    reducers = visit_chunks(
        array,
        region.selection,
        lambda: Reducer(plan, hook),
        batch_chunks=total.capacity,
        batch_dims=plan.kept,
    )
    for r in reducers:
        r.finish()
        total.moments.merge(r.moments)
        if total.counts is not None and r.counts is not None:
            total.counts += r.counts
    return total


def _widen(lo: float, hi: float) -> tuple[float, float]:
    """A one-value range widened like NumPy's (by 0.5), and by one ulp where 0.5 is lost."""
    if lo != hi:
        return lo, hi
    lo, hi = lo - 0.5, hi + 0.5
    if lo == hi:
        lo, hi = float(np.nextafter(lo, -np.inf)), float(np.nextafter(hi, np.inf))
    return lo, hi


def _bin_count(bins: Any) -> int | None:
    """``bins`` as a number of bins (checked >= 1), or ``None`` when it gives edges."""
    if not isinstance(bins, int | np.integer) or isinstance(bins, bool):
        return None
    if bins < 1:
        raise InvalidArgumentError(f"bins must be >= 1, got {bins}")
    return int(bins)


def _edges(moments: Moments | None, k: int, bins: Any, range_: Any) -> tuple[_Arr, bool, Any]:
    """Bin edges per kept position (``(k, bins + 1)``), whether uniform, and the bins key."""
    count = _bin_count(bins)
    if count is not None:
        if range_ is not None:
            lo, hi = (float(v) for v in range_)
            if not (math.isfinite(lo) and math.isfinite(hi)) or hi < lo:
                raise InvalidArgumentError(
                    f"range must be finite (low, high) with low <= high, got {range_}"
                )
            lo, hi = _widen(lo, hi)
            _check_width(lo, hi, count, f"range {range_}")
            # Keyed by the range too: bins=count alone means each position's min to max.
            return np.tile(np.linspace(lo, hi, count + 1), (k, 1)), True, ("range", count, lo, hi)
        assert moments is not None
        lo_k = np.asarray(moments.minimum, dtype=np.float64)
        hi_k = np.asarray(moments.maximum, dtype=np.float64)
        rows = []
        for i, (lo, hi) in enumerate(zip(lo_k, hi_k, strict=True)):
            if math.isnan(lo) or math.isnan(hi) or lo > hi:
                lo, hi = 0.0, 1.0  # no values at this position: nothing will be counted
            elif not (math.isfinite(lo) and math.isfinite(hi)):
                raise InvalidArgumentError(
                    f"the data at kept position {i} spans [{lo}, {hi}], which is not finite, so "
                    "histogram bins cannot be derived from it; pass range=(low, high) or bin edges"
                )
            lo, hi = _widen(lo, hi)
            _check_width(lo, hi, count, f"the data at kept position {i}, [{lo}, {hi}],")
            rows.append(np.linspace(lo, hi, count + 1))
        return np.array(rows), True, count
    edges = np.asarray(bins, dtype=np.float64)
    if edges.ndim != 1 or edges.size < 2 or not np.all(np.diff(edges) > 0):
        raise InvalidArgumentError(
            "bins must be an int >= 1 or an increasing sequence of at least 2 edges"
        )
    if range_ is not None:
        raise InvalidArgumentError("range= goes with an int number of bins, not with edges")
    diffs = np.diff(edges)
    # Even edges are binned by arithmetic where float64 allows it; others (and those) by search.
    uniform = bool(np.allclose(diffs, diffs[0], rtol=1e-12, atol=0)) and _evenly_binnable(
        edges[0], edges[-1], edges.size - 1
    )
    return np.tile(edges, (k, 1)), uniform, edges


def stats(
    array: Array,
    axis: int | Sequence[int] | None = None,
    *,
    dims: str | Sequence[str] | None = None,
    selection: Any = None,
    bins: int | Sequence[float] | None = None,
    range: tuple[float, float] | None = None,
    progress: bool = False,
    scheduler: Any = None,
) -> Stats:
    """Summary statistics of ``array`` over some axes, in one streaming pass.

    Each chunk is reduced right after it is decoded, in the worker that decoded
    it; chunks are never assembled, so memory stays bounded by the workers'
    buffers whatever the array's size. Chunks that are not stored count as their
    fill value without being read.

    Args:
        array: An array opened with lsio.
        axis: Axes to reduce over; the others are kept (e.g. ``(0, 2, 3)`` keeps
            axis 1, giving per-channel statistics). Default: all axes (scalars).
        dims: The same by dimension names (``("time", "y", "x")``); not with ``axis``.
        selection: A region: ints and slices with step 1 (default: everything).
            An int keeps its dimension with length 1.
        bins: Also compute a histogram per kept position: a number of evenly
            spaced bins (between each position's min and max, found by a first
            pass, unless ``range`` is given) or the bin edges.
        range: ``(low, high)`` of the bins.
        progress: Show a progress bar (bytes, chunks, rate, ETA) on stderr.
        scheduler: A ``dask.distributed.Client``: run the per-chunk reductions as
            Dask tasks on its cluster and merge the partials there (needs the
            ``dask`` extra; the array must be on storage the workers can open).

    Returns:
        A :class:`Stats` with arrays over the kept dimensions.

    Raises:
        InvalidArgumentError: An unknown dimension, an axis out of range or not
            an int, a repeated axis, bins < 1, ``range`` without ``bins``, a
            scheduler that is not a Dask client, a selection with steps or an
            empty selection, or a histogram whose bins would come from data
            holding infinities (give ``range``).
        UnsupportedError: A dtype without an order (complex, strings).
    """
    if range is not None and bins is None:
        raise InvalidArgumentError("range= sets the histogram's bins: it needs bins= too")
    if scheduler is not None and not callable(getattr(scheduler, "submit", None)):
        raise InvalidArgumentError(
            f"scheduler must be a dask.distributed.Client, got {type(scheduler).__name__} "
            "(connect first: Client('tcp://host:8786'))"
        )
    region = _resolve(array, axis, dims, selection)
    kept_shape = tuple(region.shape[d] for d in region.kept)
    k = math.prod(kept_shape)
    nbytes = math.prod(region.shape) * array.dtype.itemsize
    # A number of bins without a range takes each position's min..max from a first pass.
    two_pass = _bin_count(bins) is not None and range is None

    def compute(
        edges: _Arr | None, uniform: bool, label: str, moments: bool = True
    ) -> tuple[Moments, _Arr | None]:
        if scheduler is not None:
            from lsio.statistics._dask import run_on_cluster

            return run_on_cluster(scheduler, region, edges, uniform, moments)
        if not progress:
            r = _run(region, edges, uniform, None, moments)
            return r.moments, r.counts
        with Progress(nbytes, desc=label) as bar:
            r = _run(region, edges, uniform, bar, moments)
        return r.moments, r.counts

    edges = bins_key = None
    uniform = True
    if bins is not None and not two_pass:
        edges, uniform, bins_key = _edges(None, k, bins, range)
    moments, counts = compute(edges, uniform, "stats")
    hist = None
    if two_pass:
        edges, uniform, bins_key = _edges(moments, k, bins, range)
        _, counts = compute(edges, uniform, "histogram", moments=False)
    if edges is not None and counts is not None:
        hist = Histogram(counts.reshape(*kept_shape, -1), edges.reshape(*kept_shape, -1))
    return _result(region, moments, kept_shape, hist, bins_key)


def _result(
    region: Region, moments: Moments, kept_shape: tuple[int, ...], hist: Histogram | None, bins: Any
) -> Stats:
    array = region.array
    values = moments.finish()
    out: dict[str, _Arr] = {}
    for name in _FIELDS:
        v = values[name]
        if name in ("min", "max"):
            v = v.astype(array.dtype)
        elif name == "sum" and v.dtype == object:
            with contextlib.suppress(OverflowError):
                v = v.astype(np.int64) if all(-(2**63) <= int(x) < 2**63 for x in v) else v
        out[name] = v.reshape(kept_shape)
    kept_dims = tuple(region.dims[d] for d in region.kept)
    coords: dict[str, _Arr] = {}
    for name, coord in find_coordinates(array).items():
        d = region.dims.index(name)
        if d in region.kept:
            s = region.selection.dims[d]
            assert isinstance(s, Progression)
            coords[name] = coord[s.start : s.start + s.count]

    def again(new_bins: Any, new_range: Any) -> Histogram:
        return stats(
            array, region.axis, selection=_as_slices(region), bins=new_bins, range=new_range
        ).histogram()

    return Stats(
        kept_dims,
        out["count"],
        out["nan_count"],
        out["sum"],
        out["mean"],
        out["std"],
        out["var"],
        out["min"],
        out["max"],
        coords,
        hist,
        bins,
        again,
    )


def _as_slices(region: Region) -> tuple[slice, ...]:
    return tuple(
        slice(s.start, s.start + s.count)
        for s in region.selection.dims
        if isinstance(s, Progression)
    )
