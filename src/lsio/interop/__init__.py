"""Level 5: bridges to other libraries (Dask)."""

from lsio.interop._dask import to_dask

__all__ = ["to_dask"]
