"""C functions for compiled (Numba) code, called by name so that the code is cached on disk.

A Numba function that calls a C function through a ctypes address compiles
that address in as a constant, so it cannot be cached: it compiled anew in
every process, about a second per kernel before the first read or write. Here a
C function is declared to Numba as an external symbol (``lsio_<name>``) whose
address this process gives LLVM's symbol table (``llvmlite.binding.add_symbol``)
before any kernel links: the kernels compile once per installation and later
processes load them from Numba's cache and link them to this process's
libraries.
"""

from __future__ import annotations

import ctypes
import functools
from collections.abc import Callable, Sequence
from typing import Any

import llvmlite.binding as llvm
import numba
import numpy as np
import numpy.typing as npt

__all__ = ["c_extern", "c_string_at", "c_strings", "has_libc", "libc_extern", "library_function"]

_SIZE = numba.types.uintp


def _fail() -> int:
    # Stands in for a function whose library this process lacks, so that the
    # kernels naming it still link; callers check for the library before they
    # call, and a call anyway fails like every C call here: (size_t)-1.
    return int(ctypes.c_size_t(-1).value)


_MISSING = ctypes.CFUNCTYPE(ctypes.c_size_t)(_fail)


def c_extern(name: str, args: int, function: Any | None) -> Any:
    """The C function ``function`` (ctypes), for cached compiled code, as ``lsio_<name>``.

    Typed as taking and returning ``args`` size_t values: addresses and small
    integers alike travel as size_t, so compiled code passes them without
    pointer types (the same registers on x86-64 and aarch64; a variadic
    function such as ``open`` reads its int mode from the same register). A
    result narrower than size_t (an ``int``) must be narrowed again by the
    caller. ``None`` (a missing library) binds a stand-in that returns
    ``(size_t)-1``. Binding a name again rebinds it for kernels linked later.
    """
    address = None if function is None else ctypes.cast(function, ctypes.c_void_p).value
    if not address:
        address = ctypes.cast(_MISSING, ctypes.c_void_p).value
    symbol = f"lsio_{name}"
    llvm.add_symbol(symbol, address)
    return numba.types.ExternalFunction(symbol, _SIZE(*[_SIZE] * args))


@functools.cache
def libc_extern(name: str, args: int) -> Any:
    """Libc's function ``name`` as :func:`c_extern` declares it (the stand-in where libc lacks it)."""
    return c_extern(f"libc_{name}", args, getattr(ctypes.CDLL(None), name, None))


def library_function(load: Callable[[], Any], name: str) -> Any | None:
    """Function ``name`` of the library that ``load()`` returns (ctypes), or ``None``.

    ``None`` when ``load`` returns ``None`` or fails (a missing library), or
    when the library lacks the function.
    """
    try:
        lib = load()
        return None if lib is None else getattr(lib, name)
    except (OSError, AttributeError, ImportError):
        return None


def has_libc(*names: str) -> bool:
    """Whether libc has every function of ``names``."""
    libc = ctypes.CDLL(None)
    return all(getattr(libc, name, None) is not None for name in names)


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


def c_string_at(names: npt.NDArray[np.uint8], starts: npt.NDArray[np.int64], i: int) -> bytes:
    """String ``i`` of a :func:`c_strings` buffer, without its NUL."""
    end = int(starts[i + 1]) - 1 if i + 1 < len(starts) else len(names) - 1
    return names[int(starts[i]) : end].tobytes()
