"""Peak memory of reading a whole array block by block with lsio.

Usage: ``python -m benchmarks.peak_memory PATH`` (e.g. a dataset made by ``benchmarks.data``).
"""

from __future__ import annotations

import sys

import lsio
from benchmarks.limits import peak_rss


def main() -> None:
    a = lsio.open_array(sys.argv[1])
    block = None
    for t in range(0, a.shape[0], 4):
        block = a[t : t + 4]
    assert block is not None
    peak_mb = peak_rss() / 2**20
    print(
        f"block {block.nbytes / 1e6:.1f} MB, array {a.nbytes / 1e9:.2f} GB, peak RSS {peak_mb:.0f} MB"
    )


if __name__ == "__main__":
    main()
