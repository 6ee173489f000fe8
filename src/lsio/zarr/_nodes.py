"""Loading array and group metadata from a store (v3, v2, consolidated)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from lsio._errors import MetadataError, NodeNotFoundError, UnsupportedError
from lsio.zarr._metadata import ArrayMetadata, load_json, parse_v2_array, parse_v3_array

__all__ = ["GroupMetadata", "NodeMetadata", "Unreadable", "load_node", "parse_node"]


@dataclass(frozen=True, slots=True)
class GroupMetadata:
    """A group's metadata.

    Attributes:
        zarr_format: 2 or 3.
        attrs: User attributes.
        consolidated: Metadata of all descendants by path relative to the group
            (``None`` when the group has no consolidated metadata); an entry
            lsio cannot read is an :class:`Unreadable`.
        document: Where the metadata came from.
    """

    zarr_format: int
    attrs: dict[str, Any]
    consolidated: dict[str, NodeMetadata | Unreadable] | None
    document: str


NodeMetadata = ArrayMetadata | GroupMetadata


@dataclass(frozen=True, slots=True)
class Unreadable:
    """A consolidated entry of a data type lsio does not read (e.g. strings).

    Its error is raised when the member is asked for, not when the group is
    opened: one such array (a coordinate of labels, say) does not keep the
    others from being read.
    """

    error: UnsupportedError


def _entry(
    meta: Any, attrs: dict[str, Any] | None, document: str, zarr_format: int, v2_array: bool = False
) -> NodeMetadata | Unreadable:
    try:
        return parse_node(meta, attrs, document, zarr_format, v2_array=v2_array)
    except UnsupportedError as exc:
        return Unreadable(exc)


class _Getter:
    """Reads metadata documents through the store, naming them in messages."""

    def __init__(self, store: Any, url: str) -> None:
        self.store = store
        self.url = url

    def doc(self, key: str) -> str:
        return f"{self.url.rstrip('/')}/{key}"

    def json(self, key: str) -> dict[str, Any] | None:
        raw = self.store.get(key)
        return None if raw is None else load_json(raw, self.doc(key))


def _join(path: str, name: str) -> str:
    return f"{path}/{name}" if path else name


def parse_node(
    meta: Mapping[str, Any],
    attrs: dict[str, Any] | None,
    document: str,
    zarr_format: int,
    v2_array: bool = False,
) -> NodeMetadata:
    """Parse one node's metadata document (``zarr.json``, ``.zarray`` or ``.zgroup``).

    For v2 the file name says what the node is: ``v2_array`` is ``True`` for ``.zarray``.
    """
    if zarr_format == 3:
        if meta.get("zarr_format") != 3:
            raise MetadataError(
                f"expected 3, got {meta.get('zarr_format')!r}",
                document=document,
                field="zarr_format",
            )
        kind = meta.get("node_type")
        if kind == "array":
            return parse_v3_array(meta, document)
        if kind == "group":
            node_attrs = meta.get("attributes", {})
            if not isinstance(node_attrs, dict):
                raise MetadataError("must be an object", document=document, field="attributes")
            return GroupMetadata(3, node_attrs, _v3_consolidated(meta, document), document)
        raise MetadataError(
            f"must be 'array' or 'group', got {kind!r}", document=document, field="node_type"
        )
    if v2_array:
        return parse_v2_array(meta, attrs or {}, document)
    if meta.get("zarr_format") != 2:
        raise MetadataError(
            f"expected 2, got {meta.get('zarr_format')!r}", document=document, field="zarr_format"
        )
    return GroupMetadata(2, attrs or {}, None, document)


def _v3_consolidated(
    meta: Mapping[str, Any], document: str
) -> dict[str, NodeMetadata | Unreadable] | None:
    cm = meta.get("consolidated_metadata")
    if cm is None:
        return None
    if not isinstance(cm, Mapping) or not isinstance(cm.get("metadata"), Mapping):
        raise MetadataError(
            "must be an object with a 'metadata' object",
            document=document,
            field="consolidated_metadata",
        )
    return {
        path: _entry(child, None, f"{document} (consolidated entry {path!r})", 3)
        for path, child in cm["metadata"].items()
    }


def _v2_consolidated(getter: _Getter, path: str) -> dict[str, NodeMetadata | Unreadable] | None:
    key = _join(path, ".zmetadata")
    doc = getter.json(key)
    if doc is None:
        return None
    entries = doc.get("metadata")
    if not isinstance(entries, Mapping):
        raise MetadataError("required field is missing", document=getter.doc(key), field="metadata")
    nodes: dict[str, NodeMetadata | Unreadable] = {}
    for entry, meta in entries.items():
        node_path, _, leaf = entry.rpartition("/")
        if leaf not in (".zarray", ".zgroup") or not node_path:
            continue
        attrs = entries.get(_join(node_path, ".zattrs"), {})
        entry_doc = f"{getter.doc(key)} (entry {entry!r})"
        nodes[node_path] = _entry(meta, attrs, entry_doc, 2, v2_array=leaf == ".zarray")
    return nodes


def load_node(store: Any, path: str, zarr_format: int | None = None) -> NodeMetadata:
    """Load the metadata of the node at ``path`` (``''`` for the store root).

    Tries Zarr v3 (``zarr.json``) first, then v2 (``.zarray``/``.zgroup``), unless
    ``zarr_format`` says which.

    Raises:
        NodeNotFoundError: Neither exists.
        MetadataError: A document is malformed or incomplete.
    """
    getter = _Getter(store, store.url)
    if zarr_format in (None, 3):
        key = _join(path, "zarr.json")
        meta = getter.json(key)
        if meta is not None:
            return parse_node(meta, None, getter.doc(key), 3)
    if zarr_format in (None, 2):
        attrs_key = _join(path, ".zattrs")
        for leaf in (".zarray", ".zgroup"):
            key = _join(path, leaf)
            meta = getter.json(key)
            if meta is None:
                continue
            attrs = getter.json(attrs_key) or {}
            node = parse_node(meta, attrs, getter.doc(key), 2, v2_array=leaf == ".zarray")
            if isinstance(node, GroupMetadata):
                node = GroupMetadata(2, node.attrs, _v2_consolidated(getter, path), node.document)
            return node
    where = getter.doc(path) if path else getter.url
    version = "" if zarr_format is None else f" (Zarr v{zarr_format})"
    raise NodeNotFoundError(f"no Zarr array or group{version} at {where}")
