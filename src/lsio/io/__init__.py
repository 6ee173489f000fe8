"""Level 1, IO: batched, tagged byte-range reads from storage backends."""

from lsio.io._base import ByteReader, IOConfig, Lister, Store, resolve_range
from lsio.io._coalesce import CoalescedRead, coalesce_ranges
from lsio.io._local import LocalStore, path_from_url
from lsio.io._memory import MemoryStore
from lsio.io._types import (
    ByteRange,
    ReadRequest,
    ReadResult,
    SuffixRange,
    WholeObject,
    describe_range,
)

__all__ = [
    "ByteRange",
    "ByteReader",
    "CoalescedRead",
    "IOConfig",
    "Lister",
    "LocalStore",
    "MemoryStore",
    "ReadRequest",
    "ReadResult",
    "Store",
    "SuffixRange",
    "WholeObject",
    "coalesce_ranges",
    "describe_range",
    "path_from_url",
    "resolve_range",
]
