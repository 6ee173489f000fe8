"""User attributes that write through to the store, and rewriting a node's metadata."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator, MutableMapping
from typing import TYPE_CHECKING, Any

from lsio._errors import InvalidArgumentError, MetadataError, ReadOnlyError
from lsio.io import Writer

if TYPE_CHECKING:
    from lsio.zarr._node import Node

__all__ = ["Attributes", "rewrite_metadata"]


def rewrite_metadata(node: Node[Any], key: str, change: Callable[[dict[str, Any]], None]) -> None:
    """Load the JSON object ``key`` of ``node``, apply ``change`` and store it atomically.

    Raises:
        ReadOnlyError: The node was opened read-only (or its store cannot be written).
        MetadataError: The document is missing or is not a JSON object.
    """
    ctx = node.context
    if not ctx.writable or not isinstance(ctx.store, Writer):
        raise ReadOnlyError(
            f"{node.store_url} is open read-only; open it with mode='r+' (or 'a') to change it"
        )
    full = f"{node.path}/{key}" if node.path else key
    raw = ctx.store.get(full)
    doc = json.loads(raw) if raw is not None else ({} if key == ".zattrs" else None)
    if not isinstance(doc, dict):
        raise MetadataError("missing or not a JSON object", document=full, field="")
    change(doc)
    try:
        body = json.dumps(doc, indent=2, allow_nan=False).encode()
    except (TypeError, ValueError) as exc:
        raise InvalidArgumentError(f"attributes must be JSON-serialisable: {exc}") from None
    ctx.store.put(full, body)


class Attributes(MutableMapping[str, Any]):
    """A node's user attributes; changes are written to the store at once.

    Reading works on any node; changing needs a node opened with mode ``r+``,
    ``a`` or ``w`` (else :class:`lsio.ReadOnlyError`). ``update`` writes once.
    """

    def __init__(self, node: Node[Any], on_change: Callable[[dict[str, Any]], None]) -> None:
        self._node = node
        self._on_change = on_change

    def _current(self) -> dict[str, Any]:
        return dict(self._node.metadata.attrs)

    def __getitem__(self, key: str) -> Any:
        return self._node.metadata.attrs[key]

    def __iter__(self) -> Iterator[str]:
        return iter(self._current())

    def __len__(self) -> int:
        return len(self._node.metadata.attrs)

    def __repr__(self) -> str:
        return f"Attributes({self._current()!r})"

    def __setitem__(self, key: str, value: Any) -> None:
        self.update({key: value})

    def __delitem__(self, key: str) -> None:
        new = self._current()
        del new[key]
        self._on_change(new)

    def update(self, other: Any = (), /, **kwargs: Any) -> None:
        """Set several attributes with one write."""
        new = self._current()
        new.update(dict(other), **kwargs)
        self._on_change(new)

    def asdict(self) -> dict[str, Any]:
        """A plain copy."""
        return self._current()
