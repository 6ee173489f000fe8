"""Local files read through memory maps: no syscall and no copy per range once a file is mapped.

For data in the page cache, a slice of a mapping is the cheapest read there is;
for data on disk, every first touch of a page is a page fault served one page
(or readahead window) at a time, which is slower than one large ``preadv``.
Mappings are cached per file (bounded LRU) and checked against the file's
identity (inode, size, modification time) at every batch, so a file replaced
by a writer (lsio replaces objects by renaming) is mapped again, never read stale.
"""

from __future__ import annotations

import mmap
import os
import threading
from collections import OrderedDict
from collections.abc import Iterator, Sequence

import numpy as np

from lsio._errors import ReadError
from lsio.io._base import IOConfig, group_by_key, resolve_range
from lsio.io._local import LocalStore
from lsio.io._types import ReadRequest, ReadResult, describe_range

__all__ = ["MmapStore"]

_Identity = tuple[int, int, int]


class MmapStore(LocalStore):
    """A :class:`LocalStore` whose reads are views of cached memory maps.

    Args:
        root: Directory (or ``file://`` URL) that holds the objects.
        config: IO settings (coalescing does not apply: every range is a view).
        max_maps: Files kept mapped (LRU; default 1024). A mapping stays valid
            while results view it, even after eviction.
    """

    def __init__(
        self, root: str | os.PathLike[str], config: IOConfig | None = None, max_maps: int = 1024
    ) -> None:
        super().__init__(root, config)
        self._maps: OrderedDict[str, tuple[_Identity, np.ndarray]] = OrderedDict()
        self._max_maps = max_maps
        self._lock = threading.Lock()

    def _mapping(self, key: str) -> np.ndarray | None:
        """The file of ``key`` as a read-only uint8 array, or ``None`` when it does not exist."""
        path = self._path(key)
        try:
            st = os.stat(path)
        except (FileNotFoundError, NotADirectoryError):
            return None
        identity = (st.st_ino, st.st_size, st.st_mtime_ns)
        with self._lock:
            found = self._maps.get(key)
            if found is not None and found[0] == identity:
                self._maps.move_to_end(key)
                return found[1]
        if st.st_size == 0:
            data = np.zeros(0, dtype=np.uint8)
        else:
            with open(path, "rb") as f:
                data = np.frombuffer(mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ), np.uint8)
        with self._lock:
            self._maps[key] = (identity, data)
            self._maps.move_to_end(key)
            while len(self._maps) > self._max_maps:
                self._maps.popitem(last=False)
        return data

    def read_batch(self, requests: Sequence[ReadRequest]) -> Iterator[ReadResult]:
        """Serve every request as a view of its file's mapping."""
        for key, reqs in group_by_key(requests).items():
            try:
                data = self._mapping(key)
            except OSError as exc:
                raise ReadError(
                    str(exc), key=key, byte_range=describe_range(reqs[0].range)
                ) from exc
            for req in reqs:
                if data is None:
                    yield ReadResult(req.tag, None)
                    continue
                start, end = resolve_range(req.range, data.size)
                yield ReadResult(req.tag, data[start:end].data)
