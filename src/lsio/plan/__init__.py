"""Level 3, plan: selections -> chunk projections -> reads, and their execution."""

from lsio.plan._boxes import Box, box_chunk_coords, plan_boxes
from lsio.plan._execute import ReadConfig, ReadTask, execute_reads
from lsio.plan._projection import (
    ChunkProjection,
    copy_from_chunk,
    fill_projection,
    grid_shape,
    project,
    project_dims,
)
from lsio.plan._selection import (
    DimSelection,
    IntIndex,
    OrthogonalSelection,
    Progression,
    VectorSelection,
    int_shape,
    normalize_basic,
    normalize_orthogonal,
    normalize_vectorized,
)
from lsio.plan._tables import BoxTables, c_strides, plan_box_tables, touched_shards

__all__ = [
    "int_shape",
    "Box",
    "BoxTables",
    "ChunkProjection",
    "DimSelection",
    "IntIndex",
    "OrthogonalSelection",
    "Progression",
    "ReadConfig",
    "ReadTask",
    "VectorSelection",
    "box_chunk_coords",
    "c_strides",
    "copy_from_chunk",
    "execute_reads",
    "fill_projection",
    "grid_shape",
    "normalize_basic",
    "normalize_orthogonal",
    "normalize_vectorized",
    "plan_box_tables",
    "plan_boxes",
    "project",
    "project_dims",
    "touched_shards",
]
