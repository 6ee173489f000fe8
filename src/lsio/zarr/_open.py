"""Opening arrays and groups from a local path or URL."""

from __future__ import annotations

import os
from typing import Any

from lsio._errors import InvalidArgumentError, NodeNotFoundError
from lsio.io import Store, local_store, path_from_url
from lsio.plan import ReadConfig
from lsio.zarr._array import Array
from lsio.zarr._context import Context
from lsio.zarr._group import Group, make_node
from lsio.zarr._nodes import load_node

__all__ = ["open", "open_array", "open_group", "reopen_array"]

Location = str | os.PathLike[str] | Store


def _store(location: Location, config: ReadConfig) -> Store:
    if isinstance(location, str | os.PathLike):
        try:
            path = path_from_url(location)
        except ValueError as exc:
            raise InvalidArgumentError(str(exc)) from exc
        if not path.exists():
            raise NodeNotFoundError(
                f"no Zarr array or group at {os.fspath(location)!r}: path does not exist"
            )
        return local_store(path, config.io)
    return location


def open(
    location: Location,
    *,
    mode: str = "r",
    zarr_format: int | None = None,
    config: ReadConfig | None = None,
) -> Array | Group:
    """Open the array or group at ``location``.

    Args:
        location: A local path, a ``file://`` URL, or a store object.
        mode: Only ``"r"`` (read-only) for now.
        zarr_format: 2 or 3 to accept only that format; ``None`` (default) tries
            v3 and then v2.
        config: Read settings (threads, coalescing, shard-index cache); defaults
            to :class:`ReadConfig()`.

    Raises:
        NodeNotFoundError: Nothing is there (also a ``FileNotFoundError``).
        MetadataError: The metadata is malformed; the message names the file and field.
        UnsupportedError: A codec or data type lsio cannot read.
    """
    if mode != "r":
        raise InvalidArgumentError(
            f"mode {mode!r} is not supported yet; lsio opens stores read-only ('r')"
        )
    if zarr_format not in (None, 2, 3):
        raise InvalidArgumentError(f"zarr_format must be 2, 3 or None, got {zarr_format!r}")
    cfg = config or ReadConfig()
    ctx = Context(_store(location, cfg), cfg)
    return make_node(ctx, "", load_node(ctx.store, "", zarr_format))


def reopen_array(store_url: str, path: str, config: ReadConfig) -> Array:
    """The array at ``path`` inside the store at ``store_url`` (e.g. in another process).

    Raises:
        NodeNotFoundError: Nothing is there, or it is a group.
    """
    node = open(store_url, config=config)
    for part in [p for p in path.split("/") if p]:
        if not isinstance(node, Group):
            raise NodeNotFoundError(f"no array at {path!r} in {store_url}")
        node = node[part]
    if not isinstance(node, Array):
        raise NodeNotFoundError(f"{path!r} in {store_url} is a group, not an array")
    return node


def open_array(location: Location, **kwargs: Any) -> Array:
    """Open the array at ``location``; like :func:`open`, but the node must be an array."""
    node = open(location, **kwargs)
    if not isinstance(node, Array):
        raise NodeNotFoundError(f"{_describe(location)} is a group, not an array")
    return node


def open_group(location: Location, **kwargs: Any) -> Group:
    """Open the group at ``location``; like :func:`open`, but the node must be a group."""
    node = open(location, **kwargs)
    if not isinstance(node, Group):
        raise NodeNotFoundError(f"{_describe(location)} is an array, not a group")
    return node


def _describe(location: Location) -> str:
    return repr(os.fspath(location)) if isinstance(location, str | os.PathLike) else location.url
