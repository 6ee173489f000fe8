"""The :class:`Group`: a node holding arrays and other groups."""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator, Mapping
from typing import Any

from lsio._errors import InvalidArgumentError, NodeNotFoundError, ReadOnlyError, UnsupportedError
from lsio.zarr._array import Array
from lsio.zarr._context import Context
from lsio.zarr._metadata import ArrayMetadata
from lsio.zarr._new import create_array_in, create_group_in
from lsio.zarr._node import Node
from lsio.zarr._nodes import GroupMetadata, NodeMetadata, Unreadable, load_node

__all__ = ["Group", "make_node"]


def make_node(ctx: Context, path: str, meta: NodeMetadata) -> Array | Group:
    """Wrap metadata in the matching node class."""
    if isinstance(meta, ArrayMetadata):
        return Array(ctx, path, meta)
    return Group(ctx, path, meta)


class Group(Node[GroupMetadata]):
    """A Zarr group: a mapping from member names to arrays and groups.

    Members are listed from consolidated metadata when the group has it (no
    listing of the store), otherwise by listing the store.
    """

    def __init__(self, ctx: Context, path: str, meta: GroupMetadata) -> None:
        super().__init__(ctx, path, meta)

    def __repr__(self) -> str:
        return f"<lsio.Group {self._path or '/'!r}>"

    def create_array(self, name: str, *, overwrite: bool = False, **kwargs: Any) -> Array:
        """Create an array member ``name``; the arguments are those of :func:`lsio.create`.

        Raises:
            ReadOnlyError: The group was opened read-only.
            NodeExistsError: ``name`` exists and ``overwrite`` is false.
        """
        self._check_writable()
        kwargs.setdefault("zarr_format", self._meta.zarr_format)
        return create_array_in(self._ctx, self._child_path(name.strip("/")), overwrite, **kwargs)

    def create_group(
        self, name: str, *, attrs: dict[str, Any] | None = None, overwrite: bool = False
    ) -> Group:
        """Create a group member ``name``."""
        self._check_writable()
        path = self._child_path(name.strip("/"))
        create_group_in(self._ctx, path, overwrite, attrs, self._meta.zarr_format)
        node = make_node(self._ctx, path, load_node(self._ctx.store, path, self._meta.zarr_format))
        assert isinstance(node, Group)
        return node

    def _check_writable(self) -> None:
        if not self._ctx.writable:
            raise ReadOnlyError(
                f"{self.store_url} is open read-only; open it with mode='r+' (or 'a') to write"
            )

    def _child_path(self, name: str) -> str:
        # A member lies inside the group: "..", "." or an empty part would name
        # another place (outside the store, even), as zarr-python refuses too.
        if any(part in ("", ".", "..") for part in name.split("/")):
            raise InvalidArgumentError(
                f"member name {name!r} of group {self._path or '/'!r} must be parts separated "
                "by '/', none of them empty, '.' or '..'"
            )
        return f"{self._path}/{name}" if self._path else name

    def _children(
        self, unsupported: dict[str, UnsupportedError] | None = None
    ) -> dict[str, NodeMetadata]:
        # Members whose metadata lsio cannot read (a data type it does not
        # support) go to ``unsupported`` with their error when given; otherwise
        # that error is raised.
        cons = self._meta.consolidated
        if cons is not None:
            direct: dict[str, NodeMetadata] = {}
            for p in cons:
                if "/" in p:
                    continue
                entry = cons[p]
                if not isinstance(entry, Unreadable):
                    direct[p] = _consolidated_member(cons, p)
                elif unsupported is None:
                    raise entry.error
                else:
                    unsupported[p] = entry.error
            return direct
        found: dict[str, NodeMetadata] = {}
        _, dirs = self._ctx.store.list_dir(self._path)
        for name in dirs:
            try:
                found[name] = load_node(
                    self._ctx.store, self._child_path(name), self._meta.zarr_format
                )
            except NodeNotFoundError:
                continue
            except UnsupportedError as exc:
                if unsupported is None:
                    raise
                unsupported[name] = exc
        return found

    def readable_members(
        self,
    ) -> tuple[list[tuple[str, Array | Group]], dict[str, UnsupportedError]]:
        """``(name, node)`` for every direct member lsio reads, and the errors of those it cannot.

        A member lsio cannot read (e.g. an array of strings) makes
        :meth:`members` raise :class:`lsio.UnsupportedError`; here its error is
        handed back by name instead, so that a caller can read it some other
        way, describe it or leave it out. Both sorted by name; each member's
        metadata is read once.
        """
        unsupported: dict[str, UnsupportedError] = {}
        children = self._children(unsupported)
        readable = [
            (name, make_node(self._ctx, self._child_path(name), children[name]))
            for name in sorted(children)
        ]
        return readable, dict(sorted(unsupported.items()))

    def member_names(self) -> tuple[list[str], list[str]]:
        """Names of the direct members lsio reads, and of those it cannot, each sorted.

        See :meth:`readable_members`.
        """
        unsupported: dict[str, UnsupportedError] = {}
        readable = sorted(self._children(unsupported))
        return readable, sorted(unsupported)

    def __iter__(self) -> Iterator[str]:
        # Every member's name, those lsio cannot read included (see member_names).
        readable, unsupported = self.member_names()
        return iter(sorted(readable + unsupported))

    def __len__(self) -> int:
        readable, unsupported = self.member_names()
        return len(readable) + len(unsupported)

    def __contains__(self, name: object) -> bool:
        if not isinstance(name, str):
            return False
        try:
            self[name]
        except (KeyError, InvalidArgumentError):  # no such member, or no name of one
            return False
        except UnsupportedError:  # a member, of a type lsio does not read
            return True
        return True

    def __getitem__(self, name: str) -> Array | Group:
        """The member at ``name``; nested paths like ``"a/b"`` work.

        Raises:
            KeyError: (a :class:`lsio.NodeNotFoundError`) when there is no such member.
            InvalidArgumentError: A name with an empty, ``.`` or ``..`` part.
        """
        name = name.strip("/")
        cons = self._meta.consolidated
        if cons is not None:
            if name not in cons:
                raise _MemberNotFoundError(
                    f"group {self._path or '/'!r} of {self.store_url} has no member {name!r}"
                )
            entry = cons[name]
            if isinstance(entry, Unreadable):
                raise entry.error
            return make_node(self._ctx, self._child_path(name), _consolidated_member(cons, name))
        try:
            meta = load_node(self._ctx.store, self._child_path(name), self._meta.zarr_format)
        except NodeNotFoundError as exc:
            raise _MemberNotFoundError(
                f"group {self._path or '/'!r} of {self.store_url} has no member {name!r}"
            ) from exc
        return make_node(self._ctx, self._child_path(name), meta)

    def members(self) -> Iterator[tuple[str, Array | Group]]:
        """``(name, node)`` for every direct member, sorted by name."""
        children = self._children()
        for name in sorted(children):
            yield name, make_node(self._ctx, self._child_path(name), children[name])

    def arrays(self) -> Iterator[tuple[str, Array]]:
        """``(name, array)`` for every direct member that is an array."""
        for name, node in self.members():
            if isinstance(node, Array):
                yield name, node

    def groups(self) -> Iterator[tuple[str, Group]]:
        """``(name, group)`` for every direct member that is a group."""
        for name, node in self.members():
            if isinstance(node, Group):
                yield name, node


class _MemberNotFoundError(NodeNotFoundError, KeyError):
    """A group has no member of that name (both ``FileNotFoundError`` and ``KeyError``)."""

    def __str__(self) -> str:
        return str(self.args[0])


def _consolidated_member(cons: Mapping[str, NodeMetadata | Unreadable], name: str) -> NodeMetadata:
    """The metadata of member ``name`` from its ancestor's consolidated metadata.

    A member group gets the ancestor's entries below it as its own consolidated
    metadata: zarr-python writes every descendant at the root with its full path
    and leaves the nested groups' own consolidated entries empty.
    """
    meta = cons[name]
    assert not isinstance(meta, Unreadable)  # callers raise its error
    if isinstance(meta, GroupMetadata):
        prefix = f"{name}/"
        below = {p[len(prefix) :]: m for p, m in cons.items() if p.startswith(prefix)}
        meta = dataclasses.replace(meta, consolidated={**(meta.consolidated or {}), **below})
    return meta
