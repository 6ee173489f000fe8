"""lsio: read and compute on chunked, compressed N-d arrays (Zarr v2/v3) as fast as the machine allows."""

# The cache check runs before the imports below, which define the kernels.
# ruff: noqa: E402

from pathlib import Path

from lsio._kernel_cache import refresh_kernel_cache

# Before any kernel loads from Numba's cache (see lsio._kernel_cache).
refresh_kernel_cache(Path(__file__).resolve().parent)
del Path, refresh_kernel_cache

from lsio import ml as ml
from lsio._errors import (
    ChunkError,
    InvalidArgumentError,
    LsioError,
    MetadataError,
    NodeExistsError,
    NodeNotFoundError,
    NotReadyError,
    ReadError,
    ReadOnlyError,
    SelectionError,
    UnsupportedError,
    WriteError,
)
from lsio.interop import to_dask
from lsio.io import IOConfig, LocalStore, MemoryStore, ObjectStore
from lsio.plan import ReadConfig
from lsio.rechunking import convert, rechunk
from lsio.statistics import Histogram, Stats, stats
from lsio.zarr import (
    Array,
    Batch,
    Group,
    ReadFuture,
    create,
    create_group,
    open,
    open_array,
    open_group,
)

__version__ = "0.1.0"

__all__ = [
    "Array",
    "Batch",
    "ChunkError",
    "Group",
    "Histogram",
    "IOConfig",
    "InvalidArgumentError",
    "LocalStore",
    "LsioError",
    "MemoryStore",
    "MetadataError",
    "NodeExistsError",
    "NodeNotFoundError",
    "NotReadyError",
    "ObjectStore",
    "ReadConfig",
    "ReadError",
    "ReadOnlyError",
    "ReadFuture",
    "SelectionError",
    "Stats",
    "UnsupportedError",
    "WriteError",
    "__version__",
    "convert",
    "create",
    "create_group",
    "open",
    "open_array",
    "open_group",
    "rechunk",
    "stats",
    "to_dask",
]
