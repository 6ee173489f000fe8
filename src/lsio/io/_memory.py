"""In-memory backend: a dict of bytes. Useful for tests and small scratch stores."""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence

import numpy as np

from lsio.io._base import resolve_range
from lsio.io._types import ReadRequest, ReadResult

__all__ = ["MemoryStore"]


class MemoryStore:
    """Objects held in a dict from key to bytes.

    Args:
        objects: Initial contents; copied.
    """

    def __init__(self, objects: Mapping[str, bytes] | None = None) -> None:
        self._objects: dict[str, bytes] = dict(objects or {})

    @property
    def url(self) -> str:
        """A pseudo-URL naming this store."""
        return f"memory://{id(self):x}"

    def __repr__(self) -> str:
        return f"MemoryStore({len(self._objects)} objects)"

    def put(self, key: str, data: bytes | memoryview) -> None:
        """Store ``data`` under ``key``, replacing what was there."""
        self._objects[key] = bytes(data)

    def put_many(
        self, keys: Sequence[str], data: np.ndarray, offsets: Sequence[int] | np.ndarray
    ) -> None:
        """Store ``data[offsets[i]:offsets[i + 1]]`` under ``keys[i]`` for every i."""
        for i, key in enumerate(keys):
            self.put(key, data[offsets[i] : offsets[i + 1]].data)

    def delete(self, key: str) -> None:
        """Remove the object at ``key`` if there is one."""
        self._objects.pop(key, None)

    def delete_prefix(self, prefix: str) -> None:
        """Remove every object under ``prefix``."""
        base = f"{prefix.rstrip('/')}/" if prefix else ""
        for key in [k for k in self._objects if k.startswith(base) or k == prefix]:
            del self._objects[key]

    def get(self, key: str) -> bytes | None:
        """Whole object at ``key``, or ``None``."""
        return self._objects.get(key)

    def size(self, key: str) -> int | None:
        """Size of the object at ``key``, or ``None``."""
        obj = self._objects.get(key)
        return None if obj is None else len(obj)

    def list_dir(self, prefix: str) -> tuple[list[str], list[str]]:
        """Objects and sub-prefixes directly under ``prefix``."""
        base = f"{prefix.rstrip('/')}/" if prefix else ""
        files: set[str] = set()
        dirs: set[str] = set()
        for key in self._objects:
            if not key.startswith(base):
                continue
            head, sep, _ = key[len(base) :].partition("/")
            (dirs if sep else files).add(head)
        return sorted(files), sorted(dirs)

    def read_batch(self, requests: Sequence[ReadRequest]) -> Iterator[ReadResult]:
        """Serve every request from memory."""
        for req in requests:
            obj = self._objects.get(req.key)
            if obj is None:
                yield ReadResult(req.tag, None)
                continue
            start, end = resolve_range(req.range, len(obj))
            yield ReadResult(req.tag, memoryview(obj)[start:end])
