"""``Loader``: batches of aligned crops, read with one ``lsio.Batch`` per step and prefetched.

A background thread reads the next ``prefetch`` steps while the current one is
used (a bounded queue, so memory stays at ``prefetch + 3`` batches, whose
memory is reused once the caller drops a batch; with transforms a second thread
transforms each step while the next is read, two batches more). Each step's
crops of every source are planned together, so chunks shared by several crops
are read and decoded once, and decoded straight into the batch's buffers, which
can be page-locked torch tensors ready for ``.to("cuda", non_blocking=True)``.
"""

from __future__ import annotations

import queue
import threading
import warnings
from collections.abc import Callable, Iterator
from typing import Any

import numpy as np

from lsio._errors import InvalidArgumentError
from lsio.compute import OutputPool
from lsio.ml._sampler import CropSampler, Samples
from lsio.zarr import Batch

__all__ = ["Loader", "apply_per_sample", "as_numpy", "read_step"]

Transform = Callable[[dict[str, Any]], dict[str, Any]]
_OUTS = ("numpy", "torch")


def _empty(
    shape: tuple[int, ...], dtype: np.dtype[Any], pin: bool, buffers: OutputPool | None
) -> tuple[np.ndarray, Any]:
    """A buffer, as (NumPy view, tensor or ``None``); page-locked when ``pin``."""
    if not pin:
        # torch's own caching allocator recycles page-locked memory; ours recycles the rest.
        arr = buffers.empty(shape, dtype) if buffers is not None else np.empty(shape, dtype)
        return arr, None
    import torch

    tensor = torch.empty(
        shape, dtype=torch.from_numpy(np.empty(0, dtype=dtype)).dtype, pin_memory=True
    )
    return tensor.numpy(), tensor


def _batch_buffer(
    shape: tuple[int, ...],
    dtype: np.dtype[Any],
    out: str,
    pin: bool,
    buffers: OutputPool | None = None,
) -> tuple[np.ndarray, Any]:
    """A new batch buffer, as (NumPy view to fill, what the batch delivers for ``out``)."""
    view, tensor = _empty(shape, dtype, pin, buffers)
    return view, tensor if tensor is not None else (view if out == "numpy" else _torch(view))


def read_step(
    sampler: CropSampler,
    samples: Samples,
    out: str = "numpy",
    pin: bool = False,
    buffers: OutputPool | None = None,
) -> dict[str, Any]:
    """Read one step's crops of every source into new buffers; see :class:`Loader` for the layout.

    The buffers come from ``buffers`` when given (memory of batches the caller
    has dropped), else from ``np.empty``.
    """
    sources = sampler.sources()
    batch: dict[str, Any] = {"step": samples.step, "ids": samples.ids}
    views: dict[str, np.ndarray] = {}
    coords: dict[str, dict[str, np.ndarray]] = {}
    for name, src in sources.items():
        views[name], batch[name] = _batch_buffer(
            (len(samples), *src.crop_shape), src.array.dtype, out, pin, buffers
        )
        starts = samples.starts[name]
        coords[name] = {
            d: src.coords[d][starts[d][:, None] + np.arange(length)]
            for d, length in src.crop.items()
        }
    with Batch() as b:  # every crop of every source planned and read together
        for i in range(len(samples)):
            for name, src in sources.items():
                first = {d: int(v[i]) for d, v in samples.starts[name].items()}
                src.array.read(src.selection(first), out=views[name][i], batch=b)
    batch["coords"] = coords
    return batch


def apply_per_sample(
    batch: dict[str, Any],
    fn: Transform,
    names: tuple[str, ...],
    out: str,
    pin: bool,
    buffers: OutputPool | None = None,
) -> dict[str, Any]:
    """Run ``fn`` on each sample of ``batch``; its outputs are gathered into batch buffers.

    ``fn`` gets one sample: per source a view of its crop, ``"coords"`` (per
    source, per cropped dimension, the crop's coordinate values) and ``"id"``;
    it returns a dict of arrays. Sources it returns with their shape and dtype
    unchanged are written back into the batch's own buffers (nothing to copy
    when ``fn`` works in place); other arrays, and new keys, go into one new
    buffer per key, allocated at the first sample and filled sample by sample.

    Raises:
        InvalidArgumentError: ``fn`` returns something other than a dict, keys
            other than the first sample's, or arrays whose shape or dtype change
            from sample to sample.
    """
    numpys = {name: as_numpy(batch[name]) for name in names}
    outs: dict[str, np.ndarray] = {}
    keys: set[str] = set()
    for i, sample_id in enumerate(batch["ids"].tolist()):
        sample: dict[str, Any] = {name: numpys[name][i] for name in names}
        sample["coords"] = {
            name: {d: v[i] for d, v in dims.items()} for name, dims in batch["coords"].items()
        }
        sample["id"] = sample_id
        result = fn(sample)
        if not isinstance(result, dict):
            raise InvalidArgumentError(
                f"sample_transform must return a dict, got {type(result).__name__}"
            )
        returned = set(result) - {"coords", "id"}
        if i == 0:
            keys = returned
        elif returned != keys:
            raise InvalidArgumentError(
                f"sample_transform returned keys {sorted(returned)} for sample {i}; "
                f"the first sample's were {sorted(keys)}"
            )
        for key, value in result.items():
            if key in ("coords", "id"):
                continue
            arr = value.numpy() if hasattr(value, "numpy") else np.asarray(value)
            if i == 0:
                same = key in numpys and numpys[key][0].shape == arr.shape
                if same and numpys[key].dtype == arr.dtype:
                    outs[key] = numpys[key]
                else:
                    outs[key], batch[key] = _batch_buffer(
                        (len(batch["ids"]), *arr.shape), arr.dtype, out, pin, buffers
                    )
            target = outs.get(key)
            if target is None or target.shape[1:] != arr.shape or target.dtype != arr.dtype:
                raise InvalidArgumentError(
                    f"sample_transform returned {key!r} of shape {arr.shape} and dtype {arr.dtype} "
                    f"for sample {i}; the first sample's was "
                    + (f"{target.shape[1:]} {target.dtype}" if target is not None else "absent")
                )
            dst = target[i, ...]  # a view, also of one element
            if not _same_view(dst, arr):  # a different view may overlap: NumPy copies safely
                dst[...] = arr
    return batch


def _same_view(a: np.ndarray, b: np.ndarray) -> bool:
    """Whether ``a`` and ``b`` are the same elements in the same order (nothing to copy)."""
    return bool(
        a.__array_interface__["data"][0] == b.__array_interface__["data"][0]
        and a.shape == b.shape
        and a.strides == b.strides
    )


def as_numpy(x: Any) -> np.ndarray:
    """``x`` itself if a NumPy array, else the NumPy view of a (CPU) torch tensor."""
    return x if isinstance(x, np.ndarray) else np.asarray(x.numpy())


def _torch(view: np.ndarray) -> Any:
    import torch

    return torch.from_numpy(view)  # shares the memory (DLPack-style, no copy)


class Loader:
    """Iterate over training batches of a :class:`CropSampler`.

    Each batch is a dict: one array per source of shape ``(batch, *crop shape)``
    (the crop dimensions in the source's order, uncropped ones whole),
    ``"coords"`` (per source, per cropped dimension, the coordinate values of
    every sample's crop, shape ``(batch, crop length)``), ``"step"`` and
    ``"ids"`` (the sample ids).

    A loader is a cursor over steps ``start_step`` up to ``start_step + steps``:
    iterating goes on from where the last iteration stopped (so a finished
    loader yields nothing more). For several epochs pass ``steps=epochs *
    sampler.steps_per_epoch``, or make a loader per epoch with ``start_step=
    epoch * sampler.steps_per_epoch``.

    Args:
        sampler: Where the crops come from (its batch size, seed and ranks).
        prefetch: Steps read ahead in a background thread (default 4; 0 reads
            in the calling thread).
        transform: Called with each batch dict, returns the batch to deliver;
            e.g. normalisation or dtype casts. With ``prefetch`` > 0 it runs in
            a background thread of its own, while the next step is read (so a
            transform that releases the GIL, as NumPy and lsio's do, overlaps
            with reading).
        sample_transform: Called with each sample before ``transform`` (in the
            same thread); see :func:`apply_per_sample` for what it gets and
            returns. Transforms in place avoid every copy.
        out: ``"numpy"`` (default) or ``"torch"`` (tensors sharing the buffers).
        pin_memory: With ``out="torch"``: read straight into page-locked memory.
            Ignored with a warning where CUDA is not available.
        start_step: First step (default 0; see :meth:`load_state_dict`).
        steps: Number of steps to deliver (default: one epoch).
    """

    def __init__(
        self,
        sampler: CropSampler,
        *,
        prefetch: int = 4,
        transform: Transform | None = None,
        sample_transform: Transform | None = None,
        out: str = "numpy",
        pin_memory: bool = False,
        start_step: int = 0,
        steps: int | None = None,
    ) -> None:
        if out not in _OUTS:
            raise InvalidArgumentError(f"out must be one of {_OUTS}, got {out!r}")
        if prefetch < 0:
            raise InvalidArgumentError(f"prefetch must be >= 0, got {prefetch}")
        if pin_memory:
            if out != "torch":
                raise InvalidArgumentError("pin_memory needs out='torch'")
            import torch

            if not torch.cuda.is_available():
                warnings.warn("pin_memory=True but CUDA is not available: ignored", stacklevel=2)
                pin_memory = False
        self.sampler = sampler
        self.prefetch = prefetch
        self.transform = transform
        self.sample_transform = sample_transform
        self.out = out
        self.pin_memory = pin_memory
        self.step = start_step
        self.steps = steps if steps is not None else sampler.steps_per_epoch
        self._end = start_step + self.steps
        # Fresh batch buffers would be page-faulted and zeroed by the kernel on every step;
        # room for the queued batches, the one being read, the one delivered and the one
        # the caller still holds while it asks for the next (with transforms, also the one
        # waiting for its transform and the one being transformed).
        extra = 5 if self._transforms else 3
        self._buffers = OutputPool((prefetch + extra) * sampler.batch_nbytes)

    def state_dict(self) -> dict[str, Any]:
        """Where the loader stands: restoring it resumes with the next undelivered step."""
        s = self.sampler
        return {
            "step": self.step,
            "end": self._end,
            "seed": s.seed,
            "batch_size": s.batch_size,
            "rank": s.rank,
            "world_size": s.world_size,
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Resume from :meth:`state_dict`'s result (same sampler settings required)."""
        s = self.sampler
        mine = (s.seed, s.batch_size, s.rank, s.world_size)
        theirs = (
            state.get("seed"),
            state.get("batch_size"),
            state.get("rank"),
            state.get("world_size"),
        )
        if mine != theirs:
            raise InvalidArgumentError(
                f"state of a sampler with (seed, batch_size, rank, world_size) {theirs}; this one has {mine}"
            )
        self.step = int(state["step"])
        self._end = int(state.get("end", self.step + self.steps))

    def _read(self, step: int) -> dict[str, Any]:
        return read_step(self.sampler, self.sampler[step], self.out, self.pin_memory, self._buffers)

    def _transformed(self, batch: dict[str, Any]) -> dict[str, Any]:
        if self.sample_transform is not None:
            names = tuple(self.sampler.sources())
            batch = apply_per_sample(
                batch, self.sample_transform, names, self.out, self.pin_memory, self._buffers
            )
        if self.transform is None:
            return batch
        result = self.transform(batch)
        if not isinstance(result, dict):
            raise InvalidArgumentError(
                f"transform must return the batch as a dict, got {type(result).__name__}"
            )
        return result

    @property
    def _transforms(self) -> bool:
        return self.transform is not None or self.sample_transform is not None

    def __len__(self) -> int:
        return max(0, self._end - self.step)

    def __iter__(self) -> Iterator[dict[str, Any]]:
        first, end = self.step, self._end
        if self.prefetch == 0:
            for step in range(first, end):
                batch = self._transformed(self._read(step))
                self.step = step + 1
                yield batch
            return
        stop = threading.Event()
        ready: queue.Queue[tuple[int, Any]] = queue.Queue(maxsize=self.prefetch)
        steps = range(first, end)
        if self._transforms:
            # Two stages, so that a step's transform runs while the next step is read (on
            # the cores the read leaves idle between its chunks, and while it waits).
            raw: queue.Queue[tuple[int, Any]] = queue.Queue(maxsize=1)
            stages = [
                (((s, self._read(s)) for s in steps), raw),
                (((s, self._transformed(b)) for s, b in _drain(raw, len(steps), stop)), ready),
            ]
        else:
            stages = [(((s, self._read(s)) for s in steps), ready)]
        workers = [
            threading.Thread(target=_pump, args=(items, q, stop), name=f"lsio-prefetch-{i}")
            for i, (items, q) in enumerate(stages)
        ]
        for w in workers:
            w.daemon = True
            w.start()
        try:
            for _ in steps:
                step, batch = ready.get()
                if step < 0:
                    raise batch
                self.step = step + 1
                yield batch
        finally:
            stop.set()
            for w in workers:
                w.join()


def _put(q: queue.Queue[tuple[int, Any]], item: tuple[int, Any], stop: threading.Event) -> bool:
    """Put ``item`` unless ``stop`` is set first; whether it was put."""
    while not stop.is_set():
        try:
            q.put(item, timeout=0.1)
            return True
        except queue.Full:
            continue
    return False


def _pump(
    items: Iterator[tuple[int, Any]], q: queue.Queue[tuple[int, Any]], stop: threading.Event
) -> None:
    """Move ``(step, batch)`` items into ``q`` until they end, ``stop`` is set or one fails.

    A failure is put as ``(-1, exception)``, to be raised by whoever reads ``q``.
    """
    while not stop.is_set():
        try:
            item = next(items)
        except StopIteration:
            return
        except BaseException as exc:  # delivered to the consumer, raised there
            _put(q, (-1, exc), stop)
            return
        if not _put(q, item, stop):
            return


def _drain(
    q: queue.Queue[tuple[int, Any]], count: int, stop: threading.Event
) -> Iterator[tuple[int, Any]]:
    """``count`` items of ``q`` (an earlier stage's failure raised here), until ``stop``."""
    for _ in range(count):
        while True:
            if stop.is_set():
                return
            try:
                step, batch = q.get(timeout=0.1)
                break
            except queue.Empty:
                continue
        if step < 0:
            raise batch
        yield step, batch
