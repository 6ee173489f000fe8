"""``CropSampler``: where each training sample's crops come from, decided by (seed, step) alone.

The first source is the primary one: a sample is a start position along each of
its cropped dimensions. Other sources are aligned to it by coordinate values:
a dimension matched ``"center"`` takes the crop whose centre (the mean of its
first and last coordinate) is nearest to the primary crop's centre (e.g. y/x on
another grid); one matched ``"before"`` starts at the last coordinate at or
before the primary crop's first one (e.g. the latest forecast initialisation
before the first satellite time). Start positions that would put any crop
outside its source (for ``"center"``: a primary centre more than half a grid
step beyond the secondary's first or last crop centre; for ``"before"``: no
value at or before it, or the nearest one further back than the secondary
coordinate's largest step, unless a tolerance says otherwise), across a gap in
the primary's coordinates, or beyond a tolerance are excluded up front, per
dimension, from the coordinates alone; the samples are the product of the
remaining starts. Aligned coordinates must be strictly monotonic.
"""

from __future__ import annotations

import math
import operator
from collections.abc import Collection, Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt

from lsio._errors import InvalidArgumentError
from lsio.ml._permutation import permute
from lsio.ml._space import SampleSpace, any_stored
from lsio.zarr import Array
from lsio.zarr._coords import find_coordinates

__all__ = ["CropSampler", "Samples", "random_crops"]

_Arr = npt.NDArray[Any]
_HOWS = ("center", "before", "lead")


@dataclass(frozen=True)
class Samples:
    """The samples of one step.

    Attributes:
        step: The training step.
        ids: Sample ids (positions in the sampler's sample space), shape ``(B,)``.
        starts: Per source, per cropped dimension: the crop's first index, shape ``(B,)``.
    """

    step: int
    ids: _Arr
    starts: dict[str, dict[str, _Arr]]

    def __len__(self) -> int:
        return int(self.ids.size)


@dataclass
class _Source:
    name: str
    array: Array
    dims: tuple[str, ...]
    crop: dict[str, int]
    coords: dict[str, _Arr]

    def selection(self, starts: Mapping[str, int]) -> tuple[slice, ...]:
        return tuple(
            slice(starts[d], starts[d] + self.crop[d]) if d in self.crop else slice(None)
            for d in self.dims
        )

    @property
    def crop_shape(self) -> tuple[int, ...]:
        return tuple(self.crop.get(d, n) for d, n in zip(self.dims, self.array.shape, strict=True))


class CropSampler:
    """Random crops of one or more labelled arrays, aligned by coordinates.

    Args:
        sources: Name -> array (with dimension names). The first is the primary.
        crop: Name -> {dimension: length}; dimensions not named are taken whole.
        align: Secondary name -> {its dimension: primary dimension (matched
            ``"center"``) or (primary dimension, ``"center"`` | ``"before"``)}.
            Secondary cropped dimensions not aligned start at 0 (e.g. forecast steps).
        seed: Seed of the shuffling (default 0).
        batch_size: Samples per step (default 32).
        rank: This process's rank among ``world_size`` (default 0 of 1): each
            rank gets its own share of every epoch, no sample twice.
        world_size: Number of ranks.
        stride: Primary dimension -> step between candidate starts (default 1).
        max_gap: Primary dimension -> largest allowed step between neighbouring
            coordinate values inside a crop (e.g. excluding crops across missing
            timesteps).
        tolerance: Secondary name -> {dimension: largest allowed distance between
            the aligned coordinate values}. ``"before"`` and ``"lead"`` default
            to the coordinate's widest step; ``"center"`` to none.
        skip_empty: Sources (``True``: all) whose crops must touch at least one
            stored chunk: samples whose crop of such a source would hold only
            the fill value (no chunk of it stored) are excluded, decided from the
            stores' listings and shard indexes before any data is read (default:
            none). Chunks stored although they hold only the fill value (written
            with zarr-python's ``write_empty_chunks=True``) count as data.

    Raises:
        InvalidArgumentError: Unknown sources or dimensions (in crops, alignments
            and rules), a crop larger than its array, non-integer sizes, aligned
            coordinates that are not strictly monotonic, no valid position at
            all (e.g. no overlapping time range).
    """

    def __init__(
        self,
        sources: Mapping[str, Array],
        crop: Mapping[str, Mapping[str, int]],
        align: Mapping[str, Mapping[str, Any]] | None = None,
        seed: int = 0,
        *,
        batch_size: int = 32,
        rank: int = 0,
        world_size: int = 1,
        stride: Mapping[str, int] | None = None,
        max_gap: Mapping[str, float] | None = None,
        tolerance: Mapping[str, Mapping[str, float]] | None = None,
        skip_empty: bool | Collection[str] = (),
    ) -> None:
        if not sources:
            raise InvalidArgumentError("sources must name at least one array")
        seed, batch_size, rank, world_size = (
            _integer(v, what)
            for v, what in (
                (seed, "seed"),
                (batch_size, "batch_size"),
                (rank, "rank"),
                (world_size, "world_size"),
            )
        )
        if batch_size < 1 or world_size < 1 or not 0 <= rank < world_size:
            raise InvalidArgumentError(
                f"need batch_size >= 1 and 0 <= rank < world_size; got {batch_size}, {rank}, {world_size}"
            )
        self.seed, self.batch_size, self.rank, self.world_size = seed, batch_size, rank, world_size
        unknown = set(crop) - set(sources)
        if unknown:
            raise InvalidArgumentError(f"crop names unknown sources {sorted(unknown)}")
        self._sources = {
            name: _source(name, arr, crop.get(name, {})) for name, arr in sources.items()
        }
        self.primary = next(iter(self._sources))
        primary = self._sources[self.primary]
        self._dims = [d for d in primary.dims if d in primary.crop]
        strides, gaps = dict(stride or {}), dict(max_gap or {})
        for what, rule in (("stride", strides), ("max_gap", gaps)):
            unknown = set(rule) - set(self._dims)
            if unknown:
                raise InvalidArgumentError(
                    f"{what} names {sorted(unknown)}, which the primary {self.primary!r} does not "
                    f"crop; its cropped dimensions are {self._dims}"
                )
        strides = {d: _integer(v, f"stride of {d!r}") for d, v in strides.items()}
        if any(v < 1 for v in strides.values()):
            raise InvalidArgumentError(f"strides must be >= 1, got {strides}")
        _check_tolerance(tolerance or {}, align or {})
        valid = {
            d: self._primary_starts(primary, d, strides.get(d, 1), gaps.get(d)) for d in self._dims
        }
        # Each alignment maps a primary start to a secondary start (or rules it out).
        by_primary: dict[str, list[tuple[str, str, tuple[str, ...], float | None]]] = {}
        for name, spec in (align or {}).items():
            if name not in self._sources or name == self.primary:
                raise InvalidArgumentError(f"align names {name!r}, which is not a secondary source")
            for sdim, how in spec.items():
                pdim, *mode = _alignment(name, sdim, how)
                tol = (tolerance or {}).get(name, {}).get(sdim)
                by_primary.setdefault(pdim, []).append((name, sdim, tuple(mode), tol))
        self._mapped: dict[str, dict[str, tuple[str, _Arr]]] = {
            name: {} for name in self._sources if name != self.primary
        }
        for pdim, targets in by_primary.items():
            starts = valid.get(pdim)
            results: list[tuple[str, str, _Arr, _Arr]] = []
            # "lead" alignments are offsets from another alignment of the same source: last.
            for name, sdim, how, tol in sorted(targets, key=lambda t: t[2][0] == "lead"):
                src, base = self._sources[name], None
                if how[0] == "lead":
                    other = next((r for r in results if r[0] == name and r[1] == how[1]), None)
                    if other is None:
                        raise InvalidArgumentError(
                            f"{name}.{sdim} is aligned as a lead from {how[1]!r}, "
                            f"which is not aligned to {pdim!r}"
                        )
                    base = src.coords[how[1]][np.clip(other[2], 0, src.coords[how[1]].size - 1)]
                mapped, ok_one = self._align(src, sdim, primary, pdim, how[0], starts, tol, base)
                results.append((name, sdim, mapped, ok_one))
            ok = np.logical_and.reduce([r[3] for r in results])
            assert starts is not None
            valid[pdim] = starts[ok]
            for name, sdim, mapped, _ in results:
                self._mapped[name][sdim] = (pdim, mapped[ok])
        for name, dims in self._mapped.items():
            for d in self._sources[name].crop:
                dims.setdefault(d, ("", np.zeros(1, dtype=np.int64)))
        self._valid = valid
        empty_rule = list(self._sources) if skip_empty is True else list(skip_empty or ())
        unknown = set(empty_rule) - set(self._sources)
        if unknown:
            raise InvalidArgumentError(f"skip_empty names unknown sources {sorted(unknown)}")
        self._space = SampleSpace(*self._classes(empty_rule))
        self.size = self._space.size
        if self.size == 0:
            empty = [d for d in self._dims if not len(valid[d])]
            raise InvalidArgumentError(
                f"no valid sample: no crop position along {empty} keeps every source in bounds "
                "(check the crops, the coordinate ranges' overlap, max_gap and tolerance)"
                if empty
                else f"no valid sample: every crop of {empty_rule} holds only the fill value"
            )

    # -- construction -------------------------------------------------------------------

    def _classes(self, names: list[str]) -> tuple[list[_Arr], _Arr | None]:
        """Classes of the valid starts along each primary dimension, and which combinations to keep.

        Two starts share a class when every crop in ``names`` covers the same
        chunks with either; a combination of classes is kept when each of those
        crops covers at least one stored chunk.
        """
        if not names:
            return [np.zeros(len(self._valid[d]), dtype=np.int64) for d in self._dims], None
        columns: dict[str, list[_Arr]] = {d: [] for d in self._dims}
        # Per source, per dimension: (primary axis, column) of its chunk range, or a fixed range.
        boxes: list[tuple[Array, list[tuple[int | None, int, int]]]] = []
        for name in names:
            src = self._sources[name]
            spec: list[tuple[int | None, int, int]] = []
            mapped = self._mapped.get(name, {})
            for d, n, c in zip(src.dims, src.array.shape, src.array.read_chunk_shape, strict=True):
                length = src.crop.get(d, n)
                if name == self.primary and d in self._valid:
                    pdim, starts = d, self._valid[d]
                elif d in mapped and mapped[d][0]:
                    pdim, starts = mapped[d]
                else:  # taken whole, or a secondary crop that always starts at 0
                    spec.append((None, 0, -(-length // c)))
                    continue
                spec.append((self._dims.index(pdim), len(columns[pdim]), 0))
                columns[pdim] += [starts // c, (starts + length - 1) // c + 1]
            boxes.append((src.array, spec))
        labels: list[_Arr] = []
        ranges: list[_Arr] = []
        for d in self._dims:
            if columns[d]:
                uniq, inverse = np.unique(np.stack(columns[d], axis=1), axis=0, return_inverse=True)
                labels.append(inverse.reshape(-1))
                ranges.append(uniq)
            else:
                labels.append(np.zeros(len(self._valid[d]), dtype=np.int64))
                ranges.append(np.zeros((1, 0), dtype=np.int64))
        keep = np.ones([r.shape[0] for r in ranges], dtype=bool)
        for array, spec in boxes:
            bounds: list[tuple[Any, Any]] = []
            for axis, first, stop in spec:
                if axis is None:
                    bounds.append((first, stop))
                    continue
                shape = [-1 if a == axis else 1 for a in range(keep.ndim)]
                r = ranges[axis]
                bounds.append((r[:, first].reshape(shape), r[:, first + 1].reshape(shape)))
            keep &= any_stored(array.stored_chunks(), bounds)
        return labels, keep

    @staticmethod
    def _primary_starts(src: _Source, d: str, stride: int, max_gap: float | None) -> _Arr:
        n, length = src.array.shape[src.dims.index(d)], src.crop[d]
        starts = np.arange(0, n - length + 1, stride, dtype=np.int64)
        if max_gap is not None and length > 1:
            coords = src.coords[d]
            gaps = np.abs(np.diff(coords)) > max_gap
            # Windows [s, s + length) must not contain a gap between s .. s + length - 1.
            bad = np.concatenate(([0], np.cumsum(gaps)))
            starts = starts[bad[starts + length - 1] - bad[starts] == 0]
        return starts

    def _align(
        self,
        sec: _Source,
        sdim: str,
        primary: _Source,
        pdim: str,
        mode: str,
        pstarts: _Arr | None,
        tol: float | None,
        base: _Arr | None = None,
    ) -> tuple[_Arr, _Arr]:
        if sdim not in sec.dims:
            raise InvalidArgumentError(f"{sec.name} has no dimension {sdim!r}; it has {sec.dims}")
        if pstarts is None:
            raise InvalidArgumentError(
                f"align maps {sec.name}.{sdim} to {pdim!r}, which the primary does not crop"
            )
        if mode not in _HOWS:
            raise InvalidArgumentError(
                f"alignment {mode!r} of {sec.name}.{sdim} must be one of {_HOWS}"
            )
        if sdim not in sec.crop:
            sec.crop[sdim] = 1
        pc, sc = primary.coords[pdim], sec.coords[sdim]
        length, slen, n = primary.crop[pdim], sec.crop[sdim], sc.size
        step = np.diff(sc)
        if not (np.all(step > 0) or np.all(step < 0)):
            raise InvalidArgumentError(
                f"coordinates of {sec.name}.{sdim} must be strictly increasing or decreasing "
                "to align by them"
            )
        descending = n > 1 and step[0] < 0
        ordered = sc[::-1] if descending else sc
        if mode == "center":
            target = (pc[pstarts] + pc[pstarts + length - 1]) / 2
            m = n - slen + 1  # secondary starts that fit
            centres = (ordered[:m] + ordered[slen - 1 :]) / 2
            pos = np.clip(np.searchsorted(centres, target), 1, max(1, m - 1))
            left = centres[pos - 1]
            right = centres[np.minimum(pos, m - 1)]
            idx = np.minimum(np.where(target - left <= right - target, pos - 1, pos), m - 1)
            dist = np.abs(centres[idx] - target)
            # A centre beyond the first or last crop's by more than half a grid step
            # would need a crop sticking out of the secondary.
            if n > 1:
                edge = (np.abs(ordered[1] - ordered[0]) / 2, np.abs(ordered[-1] - ordered[-2]) / 2)
                inside = (target >= centres[0] - edge[0]) & (target <= centres[-1] + edge[1])
            else:
                inside = np.ones(target.shape, dtype=bool)
            start = (m - 1 - idx) if descending else idx
        else:
            # "before": the last coordinate at or before the crop's first one; "lead": the
            # same, of offsets from the coordinate another dimension was aligned to. One
            # further back than the coordinate's widest step lies outside what it covers.
            target = pc[pstarts] - (base if base is not None else 0)
            pos = np.searchsorted(ordered, target, side="right") - 1
            dist = np.where(pos >= 0, target - ordered[np.maximum(pos, 0)], np.inf)
            start = (n - 1 - pos) if descending else pos
            inside = np.ones(target.shape, dtype=bool)
            if tol is None and n > 1:
                tol = float(np.max(np.abs(step)))
        ok = inside & (start >= 0) & (start + slen <= n) & np.isfinite(dist.astype(np.float64))
        if tol is not None:
            ok &= dist <= tol
        return start.astype(np.int64), ok

    # -- sampling -----------------------------------------------------------------------

    def __len__(self) -> int:
        """Valid samples (one epoch)."""
        return self.size

    @property
    def steps_per_epoch(self) -> int:
        """Steps after which every rank has seen its share of every sample once."""
        return -(-self.size // (self.batch_size * self.world_size))

    @property
    def batch_nbytes(self) -> int:
        """Bytes of one batch's crops of every source, as read (before any transform)."""
        return self.batch_size * sum(
            math.prod(src.crop_shape) * src.array.dtype.itemsize for src in self._sources.values()
        )

    def sources(self) -> dict[str, _Source]:
        """The sources, by name."""
        return dict(self._sources)

    def ids(self, step: int) -> _Arr:
        """Sample ids of ``step`` for this rank (a function of seed, step, batch size and ranks).

        Epoch ``e`` is steps ``e * steps_per_epoch`` up to the next epoch's first:
        a keyed permutation of all samples, dealt out in order, each step's
        ``batch_size * world_size`` positions shared by the ranks. Where the
        samples do not fill the epoch's last step, it is filled up with the
        epoch's first positions again (as torch's ``DistributedSampler`` pads),
        so every sample comes once in every epoch, and those few twice.
        """
        step = _integer(step, "step")
        if step < 0:
            raise InvalidArgumentError(f"step must be >= 0, got {step}")
        b, per_step = self.batch_size, self.batch_size * self.world_size
        spe = self.steps_per_epoch
        epoch, j = divmod(step, spe)
        g = j * per_step + self.rank * b + np.arange(b, dtype=np.int64)
        return permute(g % self.size, self.size, self.seed, epoch)

    def starts(self, ids: _Arr) -> dict[str, dict[str, _Arr]]:
        """Crop starts of every source for sample ``ids``."""
        chosen = dict(zip(self._dims, self._space.choose(ids), strict=True))
        out: dict[str, dict[str, _Arr]] = {
            self.primary: {d: self._valid[d][chosen[d]] for d in self._dims}
        }
        for name, dims in self._mapped.items():
            out[name] = {
                sdim: (arr[chosen[pdim]] if pdim else np.zeros(len(ids), dtype=np.int64))
                for sdim, (pdim, arr) in dims.items()
            }
        return out

    def __getitem__(self, step: int) -> Samples:
        """The samples of ``step``."""
        ids = self.ids(step)
        return Samples(step, ids, self.starts(ids))


def _source(name: str, array: Any, crop: Mapping[str, int]) -> _Source:
    if not isinstance(array, Array):
        raise InvalidArgumentError(
            f"source {name!r} must be an lsio Array (for a group, pass its member, e.g. g['sat'])"
        )
    dims = tuple(d or f"dim_{i}" for i, d in enumerate(array.dims or (None,) * array.ndim))
    for d, length in crop.items():
        if d not in dims:
            raise InvalidArgumentError(f"crop of {name!r} names {d!r}; its dimensions are {dims}")
        size = array.shape[dims.index(d)]
        if not 1 <= _integer(length, f"crop of {name}.{d}") <= size:
            raise InvalidArgumentError(
                f"crop of {length} along {name}.{d} does not fit its length {size}"
            )
    found = find_coordinates(array)
    coords = {
        d: (np.asarray(found[d][...]) if d in found else np.arange(n))
        for d, n in zip(dims, array.shape, strict=True)
    }
    return _Source(name, array, dims, {d: int(v) for d, v in crop.items()}, coords)


def _integer(value: Any, what: str) -> int:
    """``value`` as an int; floats, bools and ``None`` are refused with a clear error."""
    if not isinstance(value, bool):
        try:
            return operator.index(value)
        except TypeError:
            pass
    raise InvalidArgumentError(f"{what} must be an integer, got {value!r}")


def _alignment(name: str, sdim: str, how: Any) -> tuple[str, ...]:
    """``how`` of ``align[name][sdim]`` as (primary dimension, mode, [base dimension])."""
    spec = (how, "center") if isinstance(how, str) else how
    ok = (
        isinstance(spec, tuple | list)
        and all(isinstance(x, str) for x in spec)
        and (len(spec) == 3 if len(spec) > 1 and spec[1] == "lead" else len(spec) == 2)
    )
    if not ok:
        raise InvalidArgumentError(
            f"align of {name}.{sdim} must be a primary dimension, (dimension, 'center' | "
            f"'before') or (dimension, 'lead', another dimension of {name!r}); got {how!r}"
        )
    return tuple(spec)


def _check_tolerance(
    tolerance: Mapping[str, Mapping[str, float]], align: Mapping[str, Mapping[str, Any]]
) -> None:
    """Every tolerance names an aligned source and one of its aligned dimensions."""
    for name, dims in tolerance.items():
        if name not in align:
            raise InvalidArgumentError(
                f"tolerance names {name!r}, which align does not name; aligned: {sorted(align)}"
            )
        unknown = set(dims) - set(align[name])
        if unknown:
            raise InvalidArgumentError(
                f"tolerance of {name!r} names {sorted(unknown)}, which align does not map; "
                f"aligned dimensions: {sorted(align[name])}"
            )


def random_crops(
    shape: tuple[int, ...], crop: tuple[int, ...], n: int, seed: int
) -> list[tuple[slice, ...]]:
    """``n`` crops of ``crop`` shape at uniformly random positions inside ``shape`` (by index).

    The plain, unlabelled counterpart of :class:`CropSampler`, for benchmarks and
    demos: the same ``seed`` gives the same crops.
    """
    rng = np.random.default_rng(seed)
    out = []
    for _ in range(n):
        start = [int(rng.integers(0, s - c + 1)) for s, c in zip(shape, crop, strict=True)]
        out.append(tuple(slice(b, b + c) for b, c in zip(start, crop, strict=True)))
    return out
