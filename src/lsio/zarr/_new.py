"""Creating arrays and groups: metadata written last, existing nodes never clobbered by accident."""

from __future__ import annotations

import json
import os
from typing import Any

from lsio._errors import InvalidArgumentError, NodeExistsError, NodeNotFoundError, ReadOnlyError
from lsio.io import ObjectStore, Store, Writer, is_object_url, local_store, path_from_url
from lsio.plan import ReadConfig
from lsio.zarr._array import Array
from lsio.zarr._context import Context
from lsio.zarr._create import array_documents
from lsio.zarr._nodes import load_node

__all__ = ["create_array_in", "create_group_in", "writable_store"]

_META_KEYS = ("zarr.json", ".zarray", ".zgroup", ".zattrs", ".zmetadata")


def writable_store(location: str | os.PathLike[str] | Store, config: ReadConfig) -> Store:
    """The store at ``location`` for writing.

    A local directory is not created here but by the first object written into
    it, after the arguments were checked: a call that fails leaves nothing behind.
    """
    if isinstance(location, str) and is_object_url(location):
        return ObjectStore(location)
    if isinstance(location, str | os.PathLike):
        try:
            path = path_from_url(location)
        except ValueError as exc:
            raise InvalidArgumentError(str(exc)) from exc
        if path.exists() and not path.is_dir():
            raise InvalidArgumentError(f"{os.fspath(location)!r} is a file, not a directory")
        return local_store(path, config.io)
    return location


def _prepare(ctx: Context, path: str, overwrite: bool) -> Writer:
    """``ctx``'s store, with nothing left at ``path`` (raises unless ``overwrite`` allows that)."""
    store = ctx.store
    if not isinstance(store, Writer):
        raise ReadOnlyError(f"the store {store.url} cannot be written to")
    try:
        load_node(store, path)
        exists = True
    except NodeNotFoundError:
        exists = any(store.size(f"{path}/{k}" if path else k) is not None for k in _META_KEYS)
    if exists and not overwrite:
        where = f"{store.url}/{path}" if path else store.url
        raise NodeExistsError(
            f"{where} already holds a Zarr node; pass overwrite=True to replace it"
        )
    if exists:
        store.delete_prefix(path)
    return store


def create_array_in(ctx: Context, path: str, overwrite: bool, **kwargs: Any) -> Array:
    """Create an array at ``path`` of ``ctx``'s store; see :func:`lsio.create`."""
    docs, meta = array_documents(**kwargs)  # validates everything before touching the store
    store = _prepare(ctx, path, overwrite)
    # .zattrs before .zarray: the array appears (to readers) when its main document does.
    for key in sorted(docs, key=lambda k: k in ("zarr.json", ".zarray")):
        store.put(f"{path}/{key}" if path else key, docs[key])
    return Array(ctx, path, meta)


def create_group_in(
    ctx: Context, path: str, overwrite: bool, attrs: dict[str, Any] | None, zarr_format: int
) -> None:
    """Write the metadata of a new group at ``path``."""
    if zarr_format not in (2, 3):
        raise InvalidArgumentError(f"zarr_format must be 2 or 3, got {zarr_format!r}")
    try:
        body = json.dumps(dict(attrs or {}))
    except (TypeError, ValueError) as exc:
        raise InvalidArgumentError(f"attributes must be JSON-serialisable: {exc}") from None
    store = _prepare(ctx, path, overwrite)
    prefix = f"{path}/" if path else ""
    if zarr_format == 3:
        doc = {"zarr_format": 3, "node_type": "group", "attributes": json.loads(body)}
        store.put(f"{prefix}zarr.json", json.dumps(doc, indent=2).encode())
    else:
        store.put(f"{prefix}.zattrs", body.encode())
        store.put(f"{prefix}.zgroup", b'{"zarr_format": 2}')
