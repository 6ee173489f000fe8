"""``lsio info``: describe a store's tree of groups and arrays."""

from __future__ import annotations

import json
import math
from typing import Any

import numpy as np

from lsio._errors import ReadError
from lsio.zarr import Array, Group

__all__ = ["describe", "format_bytes", "render_tree"]


def format_bytes(n: float) -> str:
    """Human-readable size with binary prefixes, e.g. ``12.3 MiB``."""
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if abs(n) < 1024 or unit == "TiB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    raise AssertionError("unreachable")


def _json_scalar(value: Any) -> Any:
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, complex):
        return [_json_scalar(value.real), _json_scalar(value.imag)]
    if isinstance(value, float) and not math.isfinite(value):
        return str(value)
    return value


def describe(node: Array | Group, path: str = "") -> dict[str, Any]:
    """A JSON-able description of ``node`` and (for groups) all descendants."""
    if isinstance(node, Array):
        stored: int | None
        objects: int | None
        try:
            stored, objects = node.stored_size()
        except ReadError:  # a store that cannot list (plain HTTP): the size is not known
            stored = objects = None
        return {
            "path": path,
            "type": "array",
            "zarr_format": node.zarr_format,
            "shape": list(node.shape),
            "dtype": str(node.dtype),
            "dims": None if node.dims is None else list(node.dims),
            "chunks": list(node.chunks),
            "shards": None if node.shards is None else list(node.shards),
            "codecs": node.codecs,
            "fill_value": _json_scalar(node.fill_value),
            "nbytes": node.nbytes,
            "stored_bytes": stored,
            "stored_objects": objects,
            "compression_ratio": (node.nbytes / stored) if stored else None,
            "attrs": dict(node.attrs),
        }
    readable, unsupported = node.readable_members()
    described = {
        name: describe(child, f"{path}/{name}" if path else name) for name, child in readable
    }
    # Listed, not described: lsio cannot read them.
    described |= {
        name: {"path": f"{path}/{name}" if path else name, "type": "unsupported", "reason": str(e)}
        for name, e in unsupported.items()
    }
    members = [described[name] for name in sorted(described)]
    return {
        "path": path,
        "type": "group",
        "zarr_format": node.zarr_format,
        "attrs": dict(node.attrs),
        "members": members,
    }


def _array_line(d: dict[str, Any]) -> str:
    dims = d["dims"]
    if dims is not None:
        shape = ", ".join(f"{n}={s}" for n, s in zip(dims, d["shape"], strict=True))
    else:
        shape = ", ".join(map(str, d["shape"]))
    parts = [f"{d['dtype']} ({shape})", f"chunks {tuple(d['chunks'])}"]
    if d["shards"] is not None:
        parts.append(f"shards {tuple(d['shards'])}")
    parts.append(f"codecs {'+'.join(d['codecs'])}")
    ratio = d["compression_ratio"]
    if d["stored_bytes"] is None:
        parts.append(f"{format_bytes(d['nbytes'])}, stored size unknown (the store cannot list)")
    else:
        stored = format_bytes(d["stored_bytes"])
        parts.append(
            f"stored {stored} of {format_bytes(d['nbytes'])}"
            + (f" ({ratio:.2f}x)" if ratio else "")
        )
    return "  ".join(parts)


def render_tree(desc: dict[str, Any], root_label: str) -> str:
    """The description as an indented tree, one node per line."""
    lines: list[str] = []

    def label(d: dict[str, Any]) -> str:
        if d["type"] == "unsupported":
            # The message without the document it names, up to the list of what is supported.
            why = d["reason"].split(": ", 1)[-1].split("; supported", 1)[0]
            return f"[not read by lsio] {why}"
        kind = "array" if d["type"] == "array" else "group"
        head = f"[{kind}, v{d['zarr_format']}]"
        return f"{head} {_array_line(d)}" if d["type"] == "array" else head

    lines.append(f"{root_label} {label(desc)}")

    def walk(d: dict[str, Any], indent: str) -> None:
        members = d.get("members", [])
        for i, m in enumerate(members):
            last = i == len(members) - 1
            name = m["path"].rsplit("/", 1)[-1]
            lines.append(f"{indent}{'└── ' if last else '├── '}{name} {label(m)}")
            walk(m, indent + ("    " if last else "│   "))

    walk(desc, "")
    return "\n".join(lines)


def info_json(node: Array | Group) -> str:
    """The description as indented JSON."""
    return json.dumps(describe(node), indent=2)
