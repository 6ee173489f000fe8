"""The public API is exactly what ``__all__`` says."""

from __future__ import annotations

import lsio

EXPECTED = {
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
    "ObjectStore",
    "MetadataError",
    "NodeExistsError",
    "NodeNotFoundError",
    "NotReadyError",
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
}


def test_all_is_exact() -> None:
    assert set(lsio.__all__) == EXPECTED
    assert len(lsio.__all__) == len(EXPECTED)
    for name in lsio.__all__:
        assert hasattr(lsio, name)
    public = {n for n in dir(lsio) if not n.startswith("_")} - {
        "cli",
        "compute",
        "interop",
        "io",
        "ml",
        "plan",
        "rechunking",
        "statistics",
        "zarr",
    }
    assert public <= EXPECTED


def test_error_tree() -> None:
    assert issubclass(lsio.NodeNotFoundError, FileNotFoundError)
    assert issubclass(lsio.MetadataError, ValueError)
    assert issubclass(lsio.SelectionError, IndexError)
    assert issubclass(lsio.ReadError, OSError)
    for name in (
        "ChunkError",
        "MetadataError",
        "NodeNotFoundError",
        "NotReadyError",
        "ReadError",
        "SelectionError",
        "UnsupportedError",
        "InvalidArgumentError",
    ):
        assert issubclass(getattr(lsio, name), lsio.LsioError)
