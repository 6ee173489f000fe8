"""Opening arrays and groups from a local path or URL."""

from __future__ import annotations

import os
from typing import Any

from lsio._errors import InvalidArgumentError, NodeNotFoundError
from lsio.io import ObjectStore, Store, is_object_url, local_store, path_from_url
from lsio.plan import ReadConfig
from lsio.zarr._array import Array
from lsio.zarr._context import Context
from lsio.zarr._group import Group, make_node
from lsio.zarr._new import create_array_in, create_group_in, writable_store
from lsio.zarr._nodes import load_node

__all__ = [
    "create",
    "create_group",
    "open",
    "open_array",
    "open_group",
    "reopen_array",
    "reopen_node",
]

Location = str | os.PathLike[str] | Store


def _store(location: Location, config: ReadConfig) -> Store:
    if isinstance(location, str) and is_object_url(location):
        return ObjectStore(location)  # a missing node is found by its metadata
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


_MODES = ("r", "r+", "a", "w", "w-")


def open(
    location: Location,
    *,
    mode: str = "r",
    zarr_format: int | None = None,
    config: ReadConfig | None = None,
    **create_kwargs: Any,
) -> Array | Group:
    """Open the array or group at ``location``.

    Args:
        location: A local path, a ``file://`` URL, an object-store URL
            (``s3://bucket/path``, ``gs://``, ``az://``, ``https://``; needs
            the ``s3`` extra, see :class:`lsio.ObjectStore`), or a store object.
        mode: ``"r"`` read-only (default); ``"r+"`` read and write, must exist;
            ``"a"`` read and write, created from ``create_kwargs`` if missing;
            ``"w"`` create (replacing what is there); ``"w-"`` create, fail if
            something is there. Like zarr-python.
        zarr_format: 2 or 3 to accept only that format; ``None`` (default) tries
            v3 and then v2 (and creates v3).
        config: Read settings (threads, coalescing, shard-index cache); defaults
            to :class:`ReadConfig()`.
        create_kwargs: For ``"a"``, ``"w"``, ``"w-"``: the arguments of
            :func:`create` (``shape``, ``dtype``, ``chunks``, ...).

    Raises:
        NodeNotFoundError: Nothing is there (also a ``FileNotFoundError``).
        NodeExistsError: ``"w-"`` where a node exists.
        MetadataError: The metadata is malformed; the message names the file and field.
        UnsupportedError: A codec or data type lsio cannot read.
    """
    if mode not in _MODES:
        raise InvalidArgumentError(f"mode must be one of {', '.join(_MODES)}; got {mode!r}")
    if zarr_format not in (None, 2, 3):
        raise InvalidArgumentError(f"zarr_format must be 2, 3 or None, got {zarr_format!r}")
    if create_kwargs and mode in ("r", "r+"):
        raise InvalidArgumentError(
            f"mode {mode!r} opens an existing node; {sorted(create_kwargs)} are for creating one"
        )
    cfg = config or ReadConfig()
    if mode in ("w", "w-") or (mode == "a" and create_kwargs and not _exists(location, cfg)):
        if "shape" not in create_kwargs:
            raise InvalidArgumentError(f"mode {mode!r} creates an array: pass shape, dtype, chunks")
        return create(
            location,
            config=cfg,
            overwrite=mode == "w",
            zarr_format=zarr_format or 3,
            **create_kwargs,
        )
    ctx = Context(_store(location, cfg), cfg, writable=mode != "r")
    return make_node(ctx, "", load_node(ctx.store, "", zarr_format))


def _exists(location: Location, config: ReadConfig) -> bool:
    try:
        load_node(_store(location, config), "")
    except NodeNotFoundError:
        return False
    return True


def create(
    location: Location,
    *,
    shape: Any,
    dtype: Any,
    chunks: Any,
    shards: Any = None,
    compressor: str | None = "zstd",
    codecs: Any = None,
    fill_value: Any = None,
    dims: Any = None,
    attrs: dict[str, Any] | None = None,
    zarr_format: int = 3,
    overwrite: bool = False,
    config: ReadConfig | None = None,
) -> Array:
    """Create an array at ``location`` (a directory, created if needed) and open it for writing.

    Args:
        location: A local path, ``file://`` URL or a store.
        shape: Array shape.
        dtype: bool, (u)int8-64, float16/32/64, complex64/128.
        chunks: Shape of a chunk (of an inner chunk when sharded).
        shards: Shape of a shard (multiples of ``chunks``); ``None``: unsharded. v3 only.
        compressor: ``"zstd"`` (default, level 3), ``"zstd:LEVEL"``, ``"blosc"``
            (zstd inside, level 5, shuffled by item), ``"blosc-lz4"`` (lz4 inside:
            several times faster to decode, larger), ``"gzip"``, or
            ``None``/``"none"``; a level after a colon for each but ``"none"``.
        codecs: Zarr v3 codec list of a chunk, instead of ``compressor`` (JSON form).
        fill_value: Value of unwritten elements; default 0 (False).
        dims: Dimension names.
        attrs: User attributes (JSON-serialisable).
        zarr_format: 3 (default) or 2.
        overwrite: Replace a node already at ``location``; default ``False`` (raise).
        config: Read settings of the returned array.

    Raises:
        InvalidArgumentError: An argument that does not describe a valid array.
        NodeExistsError: A node is there and ``overwrite`` is false.
    """
    cfg = config or ReadConfig()
    ctx = Context(writable_store(location, cfg), cfg, writable=True)
    return create_array_in(
        ctx,
        "",
        overwrite,
        shape=shape,
        dtype=dtype,
        chunks=chunks,
        shards=shards,
        compressor=compressor,
        codecs=codecs,
        fill_value=fill_value,
        dims=dims,
        attrs=attrs,
        zarr_format=zarr_format,
    )


def create_group(
    location: Location,
    *,
    attrs: dict[str, Any] | None = None,
    zarr_format: int = 3,
    overwrite: bool = False,
    config: ReadConfig | None = None,
) -> Group:
    """Create a group at ``location`` and open it for writing (see :meth:`Group.create_array`)."""
    cfg = config or ReadConfig()
    ctx = Context(writable_store(location, cfg), cfg, writable=True)
    create_group_in(ctx, "", overwrite, attrs, zarr_format)
    node = make_node(ctx, "", load_node(ctx.store, "", zarr_format))
    assert isinstance(node, Group)
    return node


def reopen_node(store_url: str, path: str, config: ReadConfig) -> Array | Group:
    """The node at ``path`` inside the store at ``store_url`` (e.g. in another process).

    Raises:
        NodeNotFoundError: Nothing is there.
    """
    node = open(store_url, config=config)
    for part in [p for p in path.split("/") if p]:
        if not isinstance(node, Group):
            raise NodeNotFoundError(f"no node at {path!r} in {store_url}")
        node = node[part]
    return node


def reopen_array(store_url: str, path: str, config: ReadConfig) -> Array:
    """The array at ``path`` inside the store at ``store_url`` (e.g. in another process).

    Raises:
        NodeNotFoundError: Nothing is there, or it is a group.
    """
    node = reopen_node(store_url, path, config)
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
