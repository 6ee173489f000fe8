"""What arrays and groups have in common: where they are, and their metadata."""

from __future__ import annotations

import dataclasses
from typing import Any, Generic, TypeVar

from lsio.zarr._attrs import Attributes, rewrite_metadata
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
    def attrs(self) -> Attributes:
        """User attributes, a mapping; changing it writes through (needs mode ``r+``/``a``/``w``)."""
        return Attributes(self, self._store_attrs)

    def _store_attrs(self, attrs: dict[str, Any]) -> None:
        if self._meta.zarr_format == 3:

            def change(doc: dict[str, Any]) -> None:
                doc["attributes"] = attrs

            rewrite_metadata(self, "zarr.json", change)
        else:
            stored = dict(attrs)
            named = getattr(self._meta, "dims", None)
            dims = self._meta.attrs.get("_ARRAY_DIMENSIONS") or (list(named) if named else None)
            if dims is not None:  # v2 keeps dimension names among the attributes
                stored.setdefault("_ARRAY_DIMENSIONS", dims)

            def replace_all(doc: dict[str, Any]) -> None:
                doc.clear()
                doc.update(stored)

            rewrite_metadata(self, ".zattrs", replace_all)
        self._meta = dataclasses.replace(self._meta, attrs=dict(attrs))

    @property
    def zarr_format(self) -> int:
        """2 or 3."""
        return self._meta.zarr_format
