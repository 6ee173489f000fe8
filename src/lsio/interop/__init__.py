"""Level 5: bridges to other libraries (Dask, xarray).

``open_dataset`` (the xarray backend, ``engine="lsio"``) is imported on first
use: xarray is an optional dependency.
"""

from typing import Any

from lsio.interop._dask import to_dask

# open_dataset stays out of __all__: ``import *`` would import xarray.
__all__ = ["to_dask"]


def __getattr__(name: str) -> Any:
    if name == "open_dataset":
        from lsio.interop._xarray import open_dataset

        return open_dataset
    raise AttributeError(f"module 'lsio.interop' has no attribute {name!r}")
