"""Ready-made batch transforms: per-channel normalisation, spatial downsampling."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np

from lsio._errors import InvalidArgumentError
from lsio.compute import OutputPool, affine_into
from lsio.ml._loader import as_numpy
from lsio.statistics import Stats

__all__ = ["Downsample", "Normalize"]


class Normalize:
    """``(x - mean) / std`` per kept index of a :class:`lsio.Stats` (e.g. per channel), as float32.

    One compiled pass per source (:func:`lsio.compute.affine_into`; NumPy's
    two passes for layouts it cannot take), into a new array whose memory is
    reused once the caller has dropped it. NumPy batches and torch tensors
    (CPU) are both accepted; the output type follows the input.

    Args:
        stats: Source name -> statistics over every dimension but the one to
            normalise along (e.g. ``lsio.stats(sat, dims=("time", "y", "x"))``).
        axis: Source name -> axis of a *sample* the statistics run along
            (e.g. 1 for channel in (time, channel, y, x)).
        dtype: Output dtype (default float32).
        reuse: Outputs whose memory is kept for reuse, counted in batches
            (default 8: enough for a loader's prefetch queue of 4, the batch
            being made and those the caller holds); 0 allocates every output.
    """

    def __init__(
        self,
        stats: Mapping[str, Stats],
        axis: Mapping[str, int],
        dtype: Any = np.float32,
        reuse: int = 8,
    ) -> None:
        missing = set(stats) ^ set(axis)
        if missing:
            raise InvalidArgumentError(
                f"stats and axis must name the same sources; differ in {missing}"
            )
        if reuse < 0:
            raise InvalidArgumentError(f"reuse must be >= 0, got {reuse}")
        self._dtype = np.dtype(dtype)
        if self._dtype.kind != "f":
            raise InvalidArgumentError(f"dtype must be a float dtype, got {self._dtype}")
        self._reuse = reuse
        self._outputs: OutputPool | None = None  # sized at the first batch
        self._params: dict[str, tuple[int, np.ndarray, np.ndarray]] = {}
        for name, s in stats.items():
            if s.mean.ndim != 1:
                raise InvalidArgumentError(
                    f"statistics of {name!r} must keep exactly one dimension, they keep {s.dims}"
                )
            std = np.where(s.std > 0, s.std, 1.0)
            self._params[name] = (axis[name], s.mean.astype(self._dtype), std.astype(self._dtype))

    def __call__(self, batch: dict[str, Any]) -> dict[str, Any]:
        if self._outputs is None:
            nbytes = sum(as_numpy(batch[name]).size for name in self._params) * self._dtype.itemsize
            self._outputs = OutputPool(self._reuse * nbytes)
        for name, (ax, mean, std) in self._params.items():
            x = batch[name]
            torch_out = not isinstance(x, np.ndarray)
            arr = as_numpy(x)
            if not 0 <= ax < arr.ndim - 1 or arr.shape[ax + 1] != mean.size:
                raise InvalidArgumentError(
                    f"Normalize: {name!r} samples of shape {arr.shape[1:]} have no axis {ax} "
                    f"of length {mean.size} (the statistics' kept positions)"
                )
            out = self._outputs.empty(arr.shape, self._dtype)
            affine_into(arr, out, mean, std, ax + 1)  # + 1: the batch axis comes first
            if torch_out:
                import torch

                batch[name] = torch.from_numpy(out)
            else:
                batch[name] = out
        return batch


class Downsample:
    """Block-mean downsampling of the last two axes by an integer ``factor`` (e.g. 2: 128 -> 64).

    Args:
        sources: Names of the sources to downsample.
        factor: Block size along each of the last two axes (default 2); the
            crop's sides must be multiples of it.
    """

    def __init__(self, sources: tuple[str, ...], factor: int = 2) -> None:
        if factor < 1:
            raise InvalidArgumentError(f"factor must be >= 1, got {factor}")
        self._sources, self._factor = sources, factor

    def __call__(self, batch: dict[str, Any]) -> dict[str, Any]:
        f = self._factor
        for name in self._sources:
            x = batch[name]
            torch_out = not isinstance(x, np.ndarray)
            arr = as_numpy(x)
            *lead, h, w = arr.shape
            if h % f or w % f:
                raise InvalidArgumentError(f"{name} crops of {h}x{w} are not multiples of {f}")
            out = arr.reshape(*lead, h // f, f, w // f, f).mean(axis=(-3, -1), dtype=np.float32)
            if torch_out:
                import torch

                batch[name] = torch.from_numpy(out)
            else:
                batch[name] = out
        return batch
