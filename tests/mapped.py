"""Telling views of memory maps from read buffers, and how much of a mapping is resident."""

from __future__ import annotations

import mmap
from pathlib import Path
from typing import Any

import numpy as np


def is_mapped(view: Any) -> bool:
    """Whether a result is a view of a memory map (rather than bytes read into a buffer)."""
    obj = view
    while obj is not None:
        if isinstance(obj, mmap.mmap):
            return True
        obj = obj.obj if isinstance(obj, memoryview) else getattr(obj, "base", None)
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
