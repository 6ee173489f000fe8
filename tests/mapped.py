"""Telling views of memory maps from read buffers, and how much of a mapping is resident."""

from __future__ import annotations

import mmap
from pathlib import Path
from typing import Any

import numpy as np


def is_mapped(view: Any) -> bool:
    """Whether a result is a view of a file's memory map (rather than bytes read into a buffer).

    Told by where its memory lies: in a region of this process that maps a
    file (``/proc/self/maps``), not in anonymous memory.
    """
    data = view.data if isinstance(view, np.ndarray) else view
    if not len(memoryview(data).cast("B")):
        return False
    address = np.frombuffer(data, dtype=np.uint8).ctypes.data
    for line in Path("/proc/self/maps").read_text().splitlines():
        fields = line.split(maxsplit=5)
        lo, hi = (int(x, 16) for x in fields[0].split("-"))
        if lo <= address < hi:
            return len(fields) == 6 and fields[5].startswith("/") and fields[4] != "0"
    return False


def mapped_rss(mapping: np.ndarray) -> int:
    """Bytes of ``mapping`` resident in this process (its ``Rss`` in /proc/self/smaps)."""
    start = mapping.ctypes.data
    lines = Path("/proc/self/smaps").read_text().splitlines()
    for i, line in enumerate(lines):
        first = line.split(" ", 1)[0]
        if "-" in first and int(first.split("-")[0], 16) == start:
            rss = next(x for x in lines[i + 1 :] if x.startswith("Rss:"))
            return int(rss.split()[1]) * 1024
    raise AssertionError("mapping not found in /proc/self/smaps")


def cached_pages(path: Path) -> int:
    """How many of the file's pages are in the page cache (``mincore`` on a fresh mapping)."""
    import ctypes
    import os

    size = path.stat().st_size
    pages = -(-size // mmap.PAGESIZE)
    vec = np.zeros(pages, dtype=np.uint8)
    libc = ctypes.CDLL(None, use_errno=True)
    libc.mincore.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_void_p]
    with open(path, "rb") as f, mmap.mmap(f.fileno(), size, prot=mmap.PROT_READ) as m:
        where = np.frombuffer(m, dtype=np.uint8)
        try:
            rc = libc.mincore(where.ctypes.data, size, vec.ctypes.data)
        finally:
            del where  # the mapping cannot close while a view of it lives
    assert rc == 0, os.strerror(ctypes.get_errno())
    return int(np.count_nonzero(vec & 1))
