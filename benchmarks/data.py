"""Generate the benchmark datasets (once; later runs reuse them).

- ``sat_sharded.zarr``: int16 (time, channel=11, y, x) like satellite imagery,
  Zarr v3, zstd inner chunks (1, 11, 64, 64) of ~90 KB in shards (4, 11, 512, 512).
- ``sat_unsharded.zarr``: the same data, one object per (1, 11, 64, 64) chunk.
- ``small_chunks.zarr``: ~8 KB inner chunks (1, 1, 64, 64) in shards (4, 11, 512, 512).
- ``sat_sharded_float32.zarr`` (only when asked, by :func:`generate_float`): the
  satellite data as float32 (counts x 0.1, like calibrated radiances), with a
  missing (NaN) corner in every image, laid out like ``sat_sharded.zarr``.

Sizes: ``full`` is ~3.9 GB per satellite array (time=168, 1024 x 1024), ``quick``
a 16th of that for trying the harness.
"""

from __future__ import annotations

import argparse
import contextlib
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np


@dataclass(frozen=True)
class Sizes:
    time: int
    side: int
    small_time: int


SIZES = {"full": Sizes(168, 1024, 16), "quick": Sizes(24, 512, 4)}
CHANNELS = 11
SHARD = (4, CHANNELS, 512, 512)
CHUNK = (1, CHANNELS, 64, 64)
SMALL_CHUNK = (1, 1, 64, 64)


def slab(t0: int, t1: int, side: int) -> np.ndarray:
    """Timesteps [t0, t1): smooth moving fields plus sensor noise, as int16 counts."""
    rng = np.random.default_rng(t0)
    yy = np.linspace(0, 6 * np.pi, side, dtype=np.float32)[:, None]
    xx = np.linspace(0, 6 * np.pi, side, dtype=np.float32)[None, :]
    out = np.empty((t1 - t0, CHANNELS, side, side), dtype=np.int16)
    for i, t in enumerate(range(t0, t1)):
        base = np.sin(yy + 0.05 * t) * np.cos(xx - 0.03 * t)
        for c in range(CHANNELS):
            noise = rng.integers(-6, 7, size=(side, side), dtype=np.int16)
            out[i, c] = (base * (700 + 20 * c) + 1500 + 40 * c).astype(np.int16) + noise
    return out


def _create(
    path: Path,
    shape: tuple[int, ...],
    chunks: tuple[int, ...],
    shards: tuple[int, ...] | None,
    dtype: str = "int16",
):  # type: ignore[no-untyped-def]
    import zarr.codecs

    import zarr

    return zarr.create_array(
        str(path),
        shape=shape,
        chunks=chunks,
        shards=shards,
        dtype=dtype,
        fill_value=0,
        compressors=zarr.codecs.ZstdCodec(level=3),
        dimension_names=["time", "channel", "y", "x"],
        overwrite=True,
    )


def _root(root: Path, size: str) -> tuple[Sizes, Path]:
    """The sizes called ``size`` and their folder below ``root`` (created)."""
    folder = root / size
    folder.mkdir(parents=True, exist_ok=True)
    return SIZES[size], folder


def _fast_writes() -> None:
    """zarrs (if installed) only speeds up writing; zarr-python's own pipeline works too."""
    import zarr

    with contextlib.suppress(Exception):
        zarr.config.set({"codec_pipeline.path": "zarrs.ZarrsCodecPipeline"})


def generate(root: Path, size: str) -> dict[str, Path]:
    """Write the datasets below ``root`` unless a complete copy is there already."""
    sizes, root = _root(root, size)
    paths = {
        "sat_sharded": root / "sat_sharded.zarr",
        "sat_unsharded": root / "sat_unsharded.zarr",
        "small_chunks": root / "small_chunks.zarr",
    }
    done = root / "COMPLETE"
    if done.exists():
        return paths
    _fast_writes()
    shape = (sizes.time, CHANNELS, sizes.side, sizes.side)
    sharded = _create(paths["sat_sharded"], shape, CHUNK, SHARD)
    unsharded = _create(paths["sat_unsharded"], shape, CHUNK, None)
    t0 = time.perf_counter()
    for t in range(0, sizes.time, SHARD[0]):
        block = slab(t, min(t + SHARD[0], sizes.time), sizes.side)
        sharded[t : t + block.shape[0]] = block
        unsharded[t : t + block.shape[0]] = block
        print(
            f"  sat timesteps {t + block.shape[0]}/{sizes.time} ({time.perf_counter() - t0:.0f} s)",
            flush=True,
        )
    small_shape = (sizes.small_time, CHANNELS, sizes.side, sizes.side)
    small = _create(paths["small_chunks"], small_shape, SMALL_CHUNK, SHARD)
    for t in range(0, sizes.small_time, SHARD[0]):
        small[t : t + SHARD[0]] = slab(t, t + SHARD[0], sizes.side)
    done.write_text("ok\n")
    return paths


def generate_float(root: Path, size: str) -> Path:
    """Write ``sat_sharded_float32.zarr`` below ``root`` unless a complete copy is there."""
    sizes, root = _root(root, size)
    path = root / "sat_sharded_float32.zarr"
    done = root / "COMPLETE_float32"
    if done.exists():
        return path
    _fast_writes()
    shape = (sizes.time, CHANNELS, sizes.side, sizes.side)
    array = _create(path, shape, CHUNK, SHARD, "float32")
    corner = sizes.side // 8
    for t in range(0, sizes.time, SHARD[0]):
        block = slab(t, min(t + SHARD[0], sizes.time), sizes.side).astype(np.float32) * 0.1
        block[:, :, :corner, :corner] = np.nan
        array[t : t + block.shape[0]] = block
    done.write_text("ok\n")
    return path


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--data-dir", default="/tmp/lsio-bench")
    parser.add_argument("--size", choices=sorted(SIZES), default="full")
    args = parser.parse_args()
    for name, path in generate(Path(args.data_dir), args.size).items():
        print(name, path)


if __name__ == "__main__":
    main()
