"""lsio: read chunked, compressed N-dimensional arrays (Zarr v2/v3) as fast as the machine allows."""

from lsio._errors import (
    ChunkError,
    InvalidArgumentError,
    LsioError,
    MetadataError,
    NodeNotFoundError,
    NotReadyError,
    ReadError,
    SelectionError,
    UnsupportedError,
)
from lsio.io import IOConfig, LocalStore, MemoryStore
from lsio.plan import ReadConfig
from lsio.zarr import Array, Batch, Group, ReadFuture, open, open_array, open_group

__version__ = "0.1.0"

__all__ = [
    "Array",
    "Batch",
    "ChunkError",
    "Group",
    "IOConfig",
    "InvalidArgumentError",
    "LocalStore",
    "LsioError",
    "MemoryStore",
    "MetadataError",
    "NodeNotFoundError",
    "NotReadyError",
    "ReadConfig",
    "ReadError",
    "ReadFuture",
    "SelectionError",
    "UnsupportedError",
    "__version__",
    "open",
    "open_array",
    "open_group",
]
