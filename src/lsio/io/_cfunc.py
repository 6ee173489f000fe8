"""C functions for compiled (Numba) code to call through their addresses."""

from __future__ import annotations

import ctypes
from collections.abc import Sequence
from typing import Any

import numpy as np
import numpy.typing as npt

__all__ = ["c_function", "c_strings"]


def c_function(function: Any, args: int) -> Any:
    """``function`` (a ctypes function) typed as taking and returning ``args`` size_t values.

    Addresses and small integers alike travel as size_t, so compiled code passes
    them without pointer types (the same registers on x86-64 and aarch64; a
    variadic function such as ``open`` reads its int mode from the same
    register). A result narrower than size_t (an ``int``) must be narrowed
    again by the caller.

    Raises:
        OSError: When the function has no address.
    """
    address = ctypes.cast(function, ctypes.c_void_p).value
    if not address:
        raise OSError(f"no address for {function}")
    return ctypes.CFUNCTYPE(ctypes.c_size_t, *[ctypes.c_size_t] * args)(address)


def c_strings(strings: Sequence[bytes]) -> tuple[npt.NDArray[np.uint8], npt.NDArray[np.int64]]:
    """NUL-terminated copies of ``strings`` back to back in one buffer, and where each starts.

    Compiled code passes ``buffer.ctypes.data + starts[i]`` to C functions that
    take a path; the buffer must stay alive meanwhile.
    """
    starts = np.zeros(len(strings), dtype=np.int64)
    if len(strings) > 1:
        np.cumsum([len(s) + 1 for s in strings[:-1]], out=starts[1:])
    # Writable: Numba's dispatcher types a read-only array the slow way (~10-20 us a call).
    buffer = np.frombuffer(bytearray(b"".join(s + b"\0" for s in strings)), np.uint8)
    return buffer, starts
