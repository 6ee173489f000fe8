"""Per-thread scratch buffers, reused across chunks instead of allocated per chunk."""

from __future__ import annotations

import math
import threading
from typing import Any

import numpy as np

__all__ = ["ScratchPool"]


class ScratchPool:
    """Hands each thread a reusable buffer for decoding a chunk that is not decoded in place.

    A buffer grows to the largest request of its thread and is kept while the
    pool lives, so memory stays bounded by threads x largest chunk.
    """

    def __init__(self) -> None:
        self._local = threading.local()

    def array(self, shape: tuple[int, ...], dtype: np.dtype[Any]) -> np.ndarray:
        """A C-contiguous array of ``shape`` and ``dtype`` over this thread's buffer.

        The contents are undefined; the array is valid until the same thread asks again.
        """
        cached = getattr(self._local, "last", None)
        if cached is not None and cached.shape == shape and cached.dtype == dtype:
            return cached  # type: ignore[no-any-return]
        nbytes = math.prod(shape) * dtype.itemsize
        buf: np.ndarray | None = getattr(self._local, "buf", None)
        if buf is None or buf.nbytes < nbytes:
            # Aligned to 64 bytes so that SIMD decoders and copies start on a cache line.
            raw = np.empty(nbytes + 64, dtype=np.uint8)
            offset = (-raw.ctypes.data) % 64
            buf = raw[offset : offset + nbytes]
            self._local.buf = buf
        arr = buf[:nbytes].view(dtype).reshape(shape)
        self._local.last = arr
        return arr
