"""What arrays and groups have in common: where they are, and their metadata."""

from __future__ import annotations

from typing import Any, Generic, TypeVar

from lsio.zarr._context import Context
from lsio.zarr._metadata import ArrayMetadata
from lsio.zarr._nodes import GroupMetadata

__all__ = ["Node"]

M = TypeVar("M", ArrayMetadata, GroupMetadata)


class Node(Generic[M]):
    """A node of a Zarr hierarchy opened from a store."""

    def __init__(self, ctx: Context, path: str, meta: M) -> None:
        self._ctx = ctx
        self._path = path
        self._meta: M = meta

    @property
    def context(self) -> Context:
        """The store, settings and workers this node was opened with."""
        return self._ctx

    @property
    def metadata(self) -> M:
        """The parsed metadata."""
        return self._meta

    @property
    def path(self) -> str:
        """Path of the node inside its store ('' for the root)."""
        return self._path

    @property
    def name(self) -> str:
        """Last component of :attr:`path`."""
        return self._path.rsplit("/", 1)[-1]

    @property
    def store_url(self) -> str:
        """Where the store is."""
        return self._ctx.store.url

    @property
    def attrs(self) -> dict[str, Any]:
        """User attributes (a copy)."""
        return dict(self._meta.attrs)

    @property
    def zarr_format(self) -> int:
        """2 or 3."""
        return self._meta.zarr_format
