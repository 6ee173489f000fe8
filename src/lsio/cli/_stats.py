"""``lsio stats``: per-index statistics of an array as a table or JSON."""

from __future__ import annotations

import json
from typing import Any, TextIO

import numpy as np

from lsio._errors import InvalidArgumentError
from lsio.statistics import Stats, stats
from lsio.zarr import Array

__all__ = ["parse_region", "print_stats", "run_stats"]

_COLUMNS = ("count", "nan_count", "min", "max", "mean", "std")


def parse_region(text: str | None, array: Array) -> tuple[slice, ...] | None:
    """``"time=0:100,y=10:20"`` (dims by name; ``:`` bounds optional) as slices."""
    if not text:
        return None
    names = list(array.dims or ())
    sel = [slice(None)] * array.ndim
    for item in text.split(","):
        name, eq, bounds = item.partition("=")
        name = name.strip()
        if not eq or name not in names:
            raise InvalidArgumentError(
                f"--region item {item!r}: expected NAME=START:STOP with NAME one of {names}"
            )
        lo, colon, hi = bounds.partition(":")
        try:
            start = int(lo) if lo.strip() else None
            stop = int(hi) if hi.strip() else None
        except ValueError:
            raise InvalidArgumentError(f"--region item {item!r}: bounds must be integers") from None
        sel[names.index(name)] = slice(start, stop) if colon else slice(start, (start or 0) + 1)
    return tuple(sel)


def _cell(v: Any) -> str:
    if isinstance(v, float | np.floating):
        return f"{v:.6g}"
    return str(v)


def print_stats(s: Stats, out: TextIO) -> None:
    """A table: one row per kept index (labelled by its coordinate when there is one)."""
    shape = s.count.shape
    label = " ".join(s.dims) if s.dims else "all"
    rows = []
    for idx in np.ndindex(*shape):
        names = []
        for d, i in zip(s.dims, idx, strict=True):
            coord = s.coords.get(d)
            names.append(_cell(coord[i]) if coord is not None else str(i))
        rows.append([" ".join(names) or "all", *(_cell(getattr(s, c)[idx]) for c in _COLUMNS)])
    header = [label, *_COLUMNS]
    widths = [max(len(h), *(len(r[i]) for r in rows)) for i, h in enumerate(header)]
    print("  ".join(h.rjust(w) for h, w in zip(header, widths, strict=True)), file=out)
    for r in rows:
        print("  ".join(c.rjust(w) for c, w in zip(r, widths, strict=True)), file=out)


def run_stats(
    array: Array, dims: str | None, bins: int | None, region: str | None, as_json: bool, out: TextIO
) -> Stats:
    """Compute and print; the progress bar goes to stderr."""
    reduce = [d.strip() for d in dims.split(",")] if dims else None
    s = stats(array, dims=reduce, selection=parse_region(region, array), bins=bins, progress=True)
    if as_json:
        print(json.dumps(s.to_dict()), file=out)
        return s
    print_stats(s, out)
    if bins is not None:
        h = s.histogram()
        print(f"\nhistogram ({bins} bins per row, from each row's min to max):", file=out)
        for idx in np.ndindex(*s.count.shape):
            print(f"  {idx or 'all'}: {' '.join(str(c) for c in h.counts[idx])}", file=out)
    return s
