"""A progress bar (bytes, chunks, rate, ETA) fed from the worker threads."""

from __future__ import annotations

import sys
import threading
from types import TracebackType
from typing import Any

from tqdm import tqdm

__all__ = ["Progress"]


class Progress:
    """Counts decoded bytes and chunks; shows them on stderr while a job runs.

    Args:
        total_bytes: Bytes the job will go through (for the ETA).
        desc: Label in front of the bar.
        file: Where the bar goes (default ``sys.stderr``).
        items: What the second count counts (default ``"chunks"``).
    """

    def __init__(
        self, total_bytes: int, desc: str = "stats", file: Any = None, items: str = "chunks"
    ) -> None:
        self._lock = threading.Lock()
        self._items = items
        self.chunks = 0
        self._bar = tqdm(
            total=total_bytes,
            desc=desc,
            unit="B",
            unit_scale=True,
            unit_divisor=1024,
            file=file if file is not None else sys.stderr,
            mininterval=0.25,
            dynamic_ncols=True,
        )

    def add(self, nbytes: int, chunks: int) -> None:
        """Count work done; safe to call from any thread."""
        with self._lock:
            self.chunks += chunks
            self._bar.set_postfix_str(f"{self.chunks:,} {self._items}", refresh=False)
            self._bar.update(nbytes)

    def __enter__(self) -> Progress:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self._bar.close()
