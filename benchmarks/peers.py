"""The readers compared: lsio and its peers, behind one small interface."""

from __future__ import annotations

import asyncio
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

Selection = tuple[slice, ...]


class Reader:
    """Opens an array and reads selections: one at a time, or a batch into ``out``."""

    name = "?"

    def open(self, path: Path) -> Any:
        raise NotImplementedError

    def read(self, handle: Any, sel: Selection) -> np.ndarray:
        raise NotImplementedError

    def read_batch(self, handle: Any, sels: Sequence[Selection], out: np.ndarray) -> None:
        for i, sel in enumerate(sels):
            out[i] = self.read(handle, sel)


class Lsio(Reader):
    def __init__(
        self, threads: int | None = None, backend: str = "auto", direct: bool = False
    ) -> None:
        import lsio

        self.name = "lsio" if backend == "auto" else f"lsio[{backend}]"
        if direct:
            self.name += "[direct]"
        self._config = lsio.ReadConfig(
            threads=threads, io=lsio.IOConfig(backend=backend, direct=direct)
        )

    def open(self, path: Path) -> Any:
        import lsio

        return lsio.open_array(path, config=self._config)

    def read(self, handle: Any, sel: Selection) -> np.ndarray:
        return handle[sel]  # type: ignore[no-any-return]

    def read_batch(self, handle: Any, sels: Sequence[Selection], out: np.ndarray) -> None:
        handle.read_many(sels, out=out)


class ZarrPython(Reader):
    """zarr-python 3; ``pipeline='zarrs'`` uses the zarrs (Rust) codec pipeline."""

    timeout: float | None = None
    """Seconds a batch call may take before it raises (``None``: no bound)."""

    def __init__(self, pipeline: str = "default") -> None:
        self.name = "zarr-python" if pipeline == "default" else "zarr-python+zarrs"
        self._config = (
            {"codec_pipeline.path": "zarrs.ZarrsCodecPipeline"}
            if pipeline == "zarrs"
            else {"codec_pipeline.path": "zarr.core.codec_pipeline.BatchedCodecPipeline"}
        )

    def open(self, path: Path) -> Any:
        import zarr

        with zarr.config.set(self._config):
            return zarr.open_array(str(path), mode="r")

    def read(self, handle: Any, sel: Selection) -> np.ndarray:
        import zarr

        with zarr.config.set(self._config):
            return handle[sel]  # type: ignore[no-any-return]

    def read_batch(self, handle: Any, sels: Sequence[Selection], out: np.ndarray) -> None:
        # zarr-python has no batch API; its async API reads selections concurrently.
        import zarr

        async def gather() -> list[Any]:
            return await asyncio.gather(*(handle.async_array.getitem(sel) for sel in sels))

        with zarr.config.set(self._config):
            results = zarr.core.sync.sync(gather(), timeout=self.timeout)
        for i, r in enumerate(results):
            out[i] = r


class TensorStore(Reader):
    name = "tensorstore"

    def open(self, path: Path) -> Any:
        import tensorstore as ts

        cores = os.cpu_count() or 1
        spec = {
            # Zarr v2 arrays (a .zarray beside the chunks) need tensorstore's v2 driver.
            "driver": "zarr" if (path / ".zarray").exists() else "zarr3",
            "kvstore": {"driver": "file", "path": str(path)},
            "context": {
                "cache_pool": {"total_bytes_limit": 0},
                "data_copy_concurrency": {"limit": cores},
            },
        }
        return ts.open(spec, read=True).result()

    def read(self, handle: Any, sel: Selection) -> np.ndarray:
        return handle[sel].read().result()  # type: ignore[no-any-return]

    def read_batch(self, handle: Any, sels: Sequence[Selection], out: np.ndarray) -> None:
        import tensorstore as ts

        with ts.Batch() as batch:
            futures = [handle[sel].read(batch=batch) for sel in sels]
        for i, f in enumerate(futures):
            out[i] = f.result()


def all_readers() -> list[Reader]:
    """lsio first (with each IO backend), then every peer that is installed."""
    import lsio.io

    readers: list[Reader] = [
        Lsio(),
        Lsio(backend="preadv"),
        Lsio(backend="mmap"),
        Lsio(backend="preadv", direct=True),
    ]
    if lsio.io.uring_available():
        readers.append(Lsio(backend="io_uring"))
    try:
        import zarr  # noqa: F401

        readers.append(ZarrPython("default"))
        import zarrs  # noqa: F401

        readers.append(ZarrPython("zarrs"))
    except ImportError:
        pass
    try:
        import tensorstore  # noqa: F401

        readers.append(TensorStore())
    except ImportError:
        pass
    return readers
