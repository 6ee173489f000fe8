"""C functions for compiled (Numba) code to call through their addresses."""

from __future__ import annotations

import ctypes
from typing import Any

__all__ = ["c_function"]


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
