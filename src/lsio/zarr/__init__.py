"""Level 4, formats: Zarr v2/v3 metadata, sharding, and the Array/Group objects."""

from lsio.zarr._array import Array
from lsio.zarr._batch import Batch, ReadFuture
from lsio.zarr._group import Group
from lsio.zarr._metadata import ArrayMetadata, KeyEncoding
from lsio.zarr._nodes import GroupMetadata
from lsio.zarr._open import (
    create,
    create_group,
    open,
    open_array,
    open_group,
    reopen_array,
    reopen_node,
)
from lsio.zarr._sharding import ShardingCodec
from lsio.zarr._visit import ChunkInfo, ChunkVisitor, visit_chunks

__all__ = [
    "Array",
    "Batch",
    "ChunkInfo",
    "ChunkVisitor",
    "ArrayMetadata",
    "Group",
    "GroupMetadata",
    "KeyEncoding",
    "ReadFuture",
    "ShardingCodec",
    "create",
    "create_group",
    "open",
    "open_array",
    "open_group",
    "reopen_array",
    "reopen_node",
    "visit_chunks",
]
