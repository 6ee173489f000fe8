"""C functions called by name from compiled code, and the kernels that call them cached on disk."""

from __future__ import annotations

import ctypes
import json
import subprocess
import sys
from pathlib import Path

import numba
import numpy as np

from lsio.io import c_extern, c_string_at, c_strings, has_libc, libc_extern, library_function


def test_a_named_function_is_called_from_compiled_code() -> None:
    labs = libc_extern("labs", 1)

    @numba.njit
    def call(x: int) -> int:  # pragma: no cover - compiled
        return np.int64(labs(x))  # type: ignore[no-any-return]

    assert call(-42) == 42


def test_a_missing_function_links_to_a_stand_in_that_fails() -> None:
    assert library_function(lambda: None, "anything") is None
    assert library_function(lambda: ctypes.CDLL(None), "no_such_function_here") is None
    assert not has_libc("open", "no_such_function_here")
    missing = c_extern("test_missing", 2, None)

    @numba.njit
    def call() -> int:  # pragma: no cover - compiled
        return np.int64(missing(1, 2))  # type: ignore[no-any-return]

    assert call() == -1  # (size_t)-1, as every C call here fails


_SCRIPT = """
import json, sys
import numpy as np
import lsio
from lsio.compute import _encode, _scatter
from lsio.io import _putmany
from lsio.zarr import _claimread

root = sys.argv[1]
data = np.arange(4 * 64 * 64, dtype="int16").reshape(4, 64, 64)
a = lsio.create(root + "/plain.zarr", shape=data.shape, dtype="int16", chunks=(1, 16, 16), overwrite=True)
a[...] = data
s = lsio.create(root + "/sharded.zarr", shape=data.shape, dtype="int16", chunks=(1, 16, 16),
                shards=(2, 32, 32), overwrite=True)
s[...] = data
assert (a[:, 5:40, 7:50] == data[:, 5:40, 7:50]).all()
assert (s[:, 5:40, 7:50] == data[:, 5:40, 7:50]).all()
kernels = {"scatter": _scatter._run, "claims": _claimread._take, "put": _putmany._put,
           "encode": _encode._run}
print(json.dumps({k: [len(f.stats.cache_hits), len(f.stats.cache_misses)] for k, f in kernels.items()}))
"""


def test_kernels_load_from_the_cache_in_a_new_process(tmp_path: Path) -> None:
    # They call C functions by name, not by address: the first process
    # compiles them (unless an earlier one did), later ones only load them.
    def run() -> dict[str, list[int]]:
        out = subprocess.run(
            [sys.executable, "-c", _SCRIPT, str(tmp_path)],
            check=True,
            capture_output=True,
            text=True,
            timeout=600,
        )
        return json.loads(out.stdout.strip().splitlines()[-1])  # type: ignore[no-any-return]

    run()
    stats = run()
    for kernel, (hits, misses) in stats.items():
        assert (hits, misses) == (1, 0), kernel


def test_strings_come_back_out_of_their_buffer() -> None:
    strings = [b"/a/b", b"", b"c/\xff d", b"last"]
    names, starts = c_strings(strings)
    assert [c_string_at(names, starts, i) for i in range(len(strings))] == strings
