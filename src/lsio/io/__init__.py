"""Level 1, IO: batched, tagged byte-range reads from storage backends."""

import logging
import os

from lsio.io._base import (
    NOT_READ,
    ByteReader,
    IOConfig,
    Lister,
    ResidentMapper,
    ResidentMaps,
    Store,
    TreeLister,
    WholeObjectReader,
    WholeObjects,
    Writer,
    resolve_range,
)
from lsio.io._buffers import MIN_POOLED, Block, BufferPool, Lease, read_buffer
from lsio.io._cfunc import (
    c_extern,
    c_string_at,
    c_strings,
    has_libc,
    libc_extern,
    library_function,
)
from lsio.io._coalesce import CoalescedRead, coalesce_ranges
from lsio.io._directwrite import aligned_empty
from lsio.io._getmany import FileBatchReader, load_file_batch_reader, read_whole_file
from lsio.io._local import LocalStore, path_from_url
from lsio.io._memory import MemoryStore
from lsio.io._mmap import AutoStore, BorrowedPages, MmapStore
from lsio.io._object import OBJECT_SCHEMES, ObjectStore, is_object_url
from lsio.io._pages import UnreadablePagesError, mapping_addresses, populate_spans, release_spans
from lsio.io._readahead import ReadAhead, on_disk, probe_files, read_ahead_available
from lsio.io._types import (
    ByteRange,
    Range,
    ReadRequest,
    ReadResult,
    SuffixRange,
    WholeObject,
    describe_range,
    release_each,
)
from lsio.io._uring import UringStore, uring_available

__all__ = [
    "AutoStore",
    "Block",
    "BorrowedPages",
    "BufferPool",
    "ByteRange",
    "ByteReader",
    "CoalescedRead",
    "FileBatchReader",
    "IOConfig",
    "Lease",
    "Lister",
    "LocalStore",
    "MIN_POOLED",
    "MemoryStore",
    "MmapStore",
    "NOT_READ",
    "OBJECT_SCHEMES",
    "ObjectStore",
    "ReadAhead",
    "Range",
    "ResidentMapper",
    "ResidentMaps",
    "ReadRequest",
    "ReadResult",
    "Store",
    "SuffixRange",
    "TreeLister",
    "UringStore",
    "WholeObject",
    "WholeObjectReader",
    "WholeObjects",
    "aligned_empty",
    "Writer",
    "c_extern",
    "c_string_at",
    "c_strings",
    "coalesce_ranges",
    "describe_range",
    "has_libc",
    "is_object_url",
    "libc_extern",
    "library_function",
    "load_file_batch_reader",
    "path_from_url",
    "read_ahead_available",
    "read_buffer",
    "read_whole_file",
    "local_store",
    "mapping_addresses",
    "on_disk",
    "probe_files",
    "populate_spans",
    "UnreadablePagesError",
    "release_each",
    "release_spans",
    "resolve_range",
    "uring_available",
]


def local_store(root: str | os.PathLike[str], config: IOConfig | None = None) -> LocalStore:
    """The local-file store that ``config.backend`` asks for (io_uring falls back to preadv)."""
    cfg = config or IOConfig()
    if cfg.backend == "mmap":
        return MmapStore(root, cfg)
    if cfg.backend == "auto" and not cfg.direct:
        return AutoStore(root, cfg)
    if cfg.backend == "io_uring":
        if uring_available():
            return UringStore(root, cfg)
        logging.getLogger(__name__).warning(
            "io_uring is not available on this machine; reading with preadv instead"
        )
    return LocalStore(root, cfg)
