"""Host-to-device throughput with the training loader running (needs torch with CUDA).

Usage::

    python -m benchmarks.gpu [--steps 100] [--repeats 3] [--stride 1] [--prefetch 4]
                             [--device cuda]

On the loader benchmark's data (``benchmarks.loader``: sat + NWP crops, batches
of 32, page-cached), in one run, each repeat:

- ``h2d limit``: copying one batch's bytes from page-locked host memory to the
  GPU with ``non_blocking=True`` on one stream, back to back (the link's rate);
- ``loader``: ``lsio.ml.Loader(out="torch", pin_memory=True)`` alone, batches
  dropped on the host (what the host side can feed);
- ``loader -> gpu``: the same loader, every batch copied to the GPU with
  ``non_blocking=True`` and consumed there (cast to float32 and summed, as a
  first layer would read it), synchronised once at the end: the sustained rate
  a training loop gets.

Reports samples/s and GB/s for each, and loader -> gpu / h2d limit and
loader -> gpu / loader paired by repeat. The first batch copied to the GPU is
checked against a direct read of the same crops. Without a CUDA device it exits
with status 2 and says so; ``--device cpu`` runs the same code with pageable
memory and host "copies" (a check of the script on any machine, not a
measurement).
"""

from __future__ import annotations

import argparse
import functools
import statistics
import sys
import time
from typing import Any

import numpy as np

from benchmarks.loader import BATCH, Workload, _sampler


def _sync(device: str) -> None:
    import torch

    if device != "cpu":
        torch.cuda.synchronize()


def h2d_limit(nbytes: int, device: str, repeats: int = 20) -> float:
    """GB/s of pinned host -> device copies of ``nbytes`` with ``non_blocking=True``."""
    import torch

    src = torch.empty(nbytes, dtype=torch.uint8, pin_memory=device != "cpu")
    dst = torch.empty(nbytes, dtype=torch.uint8, device=device)
    dst.copy_(src, non_blocking=True)
    _sync(device)
    t0 = time.perf_counter()
    for _ in range(repeats):
        dst.copy_(src, non_blocking=True)
    _sync(device)
    return repeats * nbytes / (time.perf_counter() - t0) / 1e9


def _loader(stride: int, prefetch: int, steps: int, device: str) -> Any:
    from lsio.ml import Loader

    pin = device != "cpu"
    return Loader(
        _sampler(Workload(stride=stride)),
        prefetch=prefetch,
        out="torch",
        pin_memory=pin,
        steps=steps,
    )


def loader_rate(
    steps: int, stride: int, prefetch: int, device: str, to_device: bool
) -> tuple[float, float]:
    """(samples/s, GB/s) of the loader over ``steps`` batches after a 2-batch warm-up."""
    import torch

    batches = iter(_loader(stride, prefetch, steps + 2, device))
    for _ in range(2):
        next(batches)
    total = torch.zeros((), dtype=torch.float64, device=device)
    nbytes = 0
    t0 = time.perf_counter()
    for batch in batches:
        nbytes += batch["sat"].nbytes + batch["nwp"].nbytes
        if to_device:
            sat = batch["sat"].to(device, non_blocking=True)
            nwp = batch["nwp"].to(device, non_blocking=True)
            total += sat.float().sum() + nwp.sum()
    _sync(device)
    secs = time.perf_counter() - t0
    return steps * BATCH / secs, nbytes / secs / 1e9


def check_first_batch(stride: int, device: str) -> None:
    """The first batch, copied to the device and back, equals direct reads of its crops."""
    loader = _loader(stride, 1, 1, device)
    batch = next(iter(loader))
    sampler = loader.sampler
    samples = sampler[0]
    for name, src in sampler.sources().items():
        on_gpu = batch[name].to(device, non_blocking=True).cpu().numpy()
        for i in range(len(samples)):
            sel = src.selection({d: int(v[i]) for d, v in samples.starts[name].items()})
            if not np.array_equal(on_gpu[i], src.array[sel]):
                raise SystemExit(f"{name} sample {i} differs after the copy to the GPU")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--steps", type=int, default=100)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--stride", type=int, default=1)
    parser.add_argument("--prefetch", type=int, default=4)
    parser.add_argument("--device", default="cuda", help="cuda, cuda:N, or cpu (a dry run)")
    args = parser.parse_args()
    device = args.device
    try:
        import torch
    except ImportError:
        print("benchmarks.gpu needs torch (pip install '.[torch]')", file=sys.stderr)
        raise SystemExit(2) from None
    if device != "cpu" and not torch.cuda.is_available():
        print("benchmarks.gpu needs a CUDA device; torch sees none", file=sys.stderr)
        raise SystemExit(2)
    name = "cpu (dry run)" if device == "cpu" else torch.cuda.get_device_name(device)
    print(f"device: {name}, torch {torch.__version__}")
    sampler = _sampler(Workload(stride=args.stride))
    batch_bytes = sampler.batch_nbytes
    check_first_batch(args.stride, device)
    print("first batch on the device equals direct reads")
    rows: dict[str, list[tuple[float, float]]] = {
        "h2d limit": [],
        "loader": [],
        "loader -> gpu": [],
    }
    for _ in range(args.repeats):
        for p in Workload(stride=args.stride).root.rglob(
            "*"
        ):  # page-cache the data just before each repeat
            if p.is_file():
                p.read_bytes()
        limit = h2d_limit(batch_bytes, device)
        rows["h2d limit"].append((limit * 1e9 / batch_bytes * BATCH, limit))
        rate = functools.partial(loader_rate, args.steps, args.stride, args.prefetch, device)
        rows["loader"].append(rate(False))
        rows["loader -> gpu"].append(rate(True))
        print("  " + ", ".join(f"{k}: {v[-1][1]:.2f} GB/s" for k, v in rows.items()), flush=True)
    print()
    print("| | samples/s | GB/s |")
    print("|---|---|---|")
    for name, values in rows.items():
        s = [v[0] for v in values]
        g = [v[1] for v in values]
        print(
            f"| {name} | {statistics.median(s):.0f} [{min(s):.0f}-{max(s):.0f}] | "
            f"{statistics.median(g):.2f} [{min(g):.2f}-{max(g):.2f}] |"
        )
    gpu = [v[1] for v in rows["loader -> gpu"]]
    for name in ("h2d limit", "loader"):
        paired = [g / v[1] for g, v in zip(gpu, rows[name], strict=True)]
        print(f"loader -> gpu / {name}: " + ", ".join(f"{x:.2f}" for x in paired))


if __name__ == "__main__":
    main()
