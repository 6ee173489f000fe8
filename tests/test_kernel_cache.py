"""Numba's cache of lsio's kernels is cleared when lsio's sources change."""

from __future__ import annotations

from pathlib import Path

from lsio._kernel_cache import refresh_kernel_cache


def _cached(root: Path) -> list[str]:
    return sorted(p.name for p in root.rglob("__pycache__/*.nb[ic]"))


def test_cached_kernels_go_when_any_source_changes(tmp_path: Path) -> None:
    pkg = tmp_path / "pkg"
    (pkg / "sub" / "__pycache__").mkdir(parents=True)
    (pkg / "__pycache__").mkdir()
    (pkg / "a.py").write_text("x = 1\n")
    (pkg / "sub" / "b.py").write_text("y = 2\n")

    def cache() -> None:
        (pkg / "__pycache__" / "a.k-1.py311.nbi").write_bytes(b"index")
        (pkg / "sub" / "__pycache__" / "b.k-2.py311.1.nbc").write_bytes(b"code")
        (pkg / "__pycache__" / "a.cpython-311.pyc").write_bytes(b"bytecode")

    cache()
    assert refresh_kernel_cache(pkg)  # no record of the sources yet: cleared
    assert _cached(pkg) == []
    assert (pkg / "__pycache__" / "a.cpython-311.pyc").exists()  # bytecode is not Numba's
    cache()
    assert not refresh_kernel_cache(pkg)  # same sources: kept
    assert len(_cached(pkg)) == 2
    (pkg / "sub" / "b.py").write_text("y = 3\n")  # one module edited: every kernel goes
    assert refresh_kernel_cache(pkg)
    assert _cached(pkg) == []
    assert not refresh_kernel_cache(pkg)
