"""A ``torch.utils.data.IterableDataset`` of loader batches, correct with DataLoader workers."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from lsio.ml._loader import Transform, apply_per_sample, read_step
from lsio.ml._sampler import CropSampler

__all__ = ["torch_dataset"]


def torch_dataset(
    sampler: CropSampler,
    *,
    start_step: int = 0,
    steps: int | None = None,
    transform: Transform | None = None,
    sample_transform: Transform | None = None,
) -> Any:
    """Steps ``start_step ..`` of ``sampler`` as an ``IterableDataset`` of ready batches.

    Use it with ``DataLoader(ds, batch_size=None, num_workers=N)``: worker ``w``
    reads steps ``w, w + N, ...``, and the DataLoader hands them out in step
    order, so the batches are the same for any number of workers. Distributed
    ranks come from the sampler's ``rank`` and ``world_size``. Tensors share the
    buffers lsio read into (no copy). ``transform`` and ``sample_transform``
    are as in :class:`Loader`, run in the worker.
    """
    import torch
    from torch.utils.data import IterableDataset, get_worker_info

    end = start_step + (steps if steps is not None else sampler.steps_per_epoch)

    class CropDataset(IterableDataset[dict[str, Any]]):
        def __len__(self) -> int:
            return end - start_step

        def __iter__(self) -> Iterator[dict[str, Any]]:
            info = get_worker_info()
            worker, workers = (info.id, info.num_workers) if info is not None else (0, 1)
            for step in range(start_step + worker, end, workers):
                batch = read_step(sampler, sampler[step], out="torch")
                if sample_transform is not None:
                    names = tuple(sampler.sources())
                    batch = apply_per_sample(batch, sample_transform, names, "torch", False)
                batch["ids"] = torch.from_numpy(batch["ids"])
                yield transform(batch) if transform is not None else batch

    return CropDataset()
