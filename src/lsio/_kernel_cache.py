"""Numba's on-disk cache of lsio's kernels, cleared whenever lsio's sources change.

Numba checks a cached kernel against its own source file only. Many lsio
kernels call compiled functions of other modules (the read kernel calls the
decoders of ``lsio.compute._cdecode``, the claim loop calls the read kernel's
steps), so an edit of one module alone left the kernels of the others running
the old code, silently. At import, before any kernel loads, lsio hashes its own
sources and clears the cache files (``__pycache__/*.nbi``, ``*.nbc``) below the
package when the hash differs from the one recorded with them; the kernels then
compile once again. An install or upgrade writes new sources, so the same holds
there. Caches kept elsewhere (``NUMBA_CACHE_DIR``) are not cleared.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
from pathlib import Path

__all__ = ["refresh_kernel_cache"]

_STAMP = "lsio-sources.sha256"


def refresh_kernel_cache(package: Path) -> bool:
    """Clear the cached kernels below ``package`` if its sources changed; ``True`` if it did.

    Costs a hash of the package's sources (a few milliseconds). A directory
    lsio cannot write (a read-only install) is left as it is.
    """
    digest = hashlib.sha256()
    for path in sorted(package.rglob("*.py")):
        digest.update(str(path.relative_to(package)).encode())
        digest.update(path.read_bytes())
    text = digest.hexdigest()
    stamp = package / "__pycache__" / _STAMP
    with contextlib.suppress(OSError):
        if stamp.read_text() == text:
            return False
    for cached in [*package.rglob("__pycache__/*.nbi"), *package.rglob("__pycache__/*.nbc")]:
        with contextlib.suppress(OSError):
            cached.unlink()
    with contextlib.suppress(OSError):
        stamp.parent.mkdir(exist_ok=True)
        tmp = stamp.with_name(f"{_STAMP}.{os.getpid()}.tmp")
        tmp.write_text(text)
        os.replace(tmp, stamp)
    return True
