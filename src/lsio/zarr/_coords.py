"""Finding the coordinate arrays that label an array's dimensions."""

from __future__ import annotations

import os

from lsio._errors import LsioError
from lsio.io import ObjectStore, is_object_url, local_store, path_from_url
from lsio.zarr._array import Array
from lsio.zarr._context import Context
from lsio.zarr._metadata import ArrayMetadata
from lsio.zarr._nodes import load_node

__all__ = ["find_coordinates"]


def find_coordinates(array: Array) -> dict[str, Array]:
    """Coordinate arrays of ``array``'s named dimensions, by the xarray convention.

    A dimension ``d`` is labelled when the group holding the array (or, for an
    array opened by its own path, the group of the directory above) has a 1-D
    array named ``d`` of the dimension's length. Dimensions without one are left out.
    """
    names = array.dims or ()
    if not any(names):
        return {}
    ctx = array.context
    if array.path:
        parent = array.path.rsplit("/", 1)[0] if "/" in array.path else ""
    elif is_object_url(array.store_url):
        above_url, sep, _ = array.store_url.rstrip("/").rpartition("/")
        if not sep or not is_object_url(above_url) or above_url.endswith(":/"):
            return {}
        store = ctx.store
        # The directory above, reached with the same credentials and settings.
        up = store.sibling(above_url) if isinstance(store, ObjectStore) else ObjectStore(above_url)
        ctx = Context(up, ctx.config)
        parent = ""
    else:
        try:
            here = path_from_url(array.store_url)
        except ValueError:
            return {}
        above = here.parent
        if above == here or not os.path.isdir(above):
            return {}

        ctx = Context(local_store(above, ctx.config.io), ctx.config)
        parent = ""
    found: dict[str, Array] = {}
    for d, name in enumerate(names):
        if not name or (not array.path and name == array.name):
            continue
        path = f"{parent}/{name}" if parent else name
        try:
            meta = load_node(ctx.store, path)
        except (LsioError, OSError):
            continue
        if isinstance(meta, ArrayMetadata) and meta.shape == (array.shape[d],):
            found[name] = Array(ctx, path, meta)
    return found
