"""A keyed pseudo-random permutation of ``[0, n)``, evaluated pointwise (nothing materialised).

Sample ``k`` of epoch ``e`` is ``permute(k)``: a 4-round Feistel network over
the smallest even number of bits covering ``n``, with cycle-walking to stay
inside ``[0, n)``. The result depends only on (seed, epoch, n, k), so any
worker on any machine computes the same indices, and a dataset of billions of
possible crops needs no shuffled index array.
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

__all__ = ["permute"]

_ROUNDS = 4
_M1 = np.uint64(0xBF58476D1CE4E5B9)
_M2 = np.uint64(0x94D049BB133111EB)


def _mix(x: npt.NDArray[np.uint64]) -> npt.NDArray[np.uint64]:
    """splitmix64's finaliser: a fast, well-spread 64-bit hash."""
    with np.errstate(over="ignore"):
        x = (x ^ (x >> np.uint64(30))) * _M1
        x = (x ^ (x >> np.uint64(27))) * _M2
        return x ^ (x >> np.uint64(31))


def _feistel(x: npt.NDArray[np.uint64], half: int, keys: list[np.uint64]) -> npt.NDArray[np.uint64]:
    mask = np.uint64((1 << half) - 1)
    left = x >> np.uint64(half)
    right = x & mask
    for key in keys:
        with np.errstate(over="ignore"):
            f = _mix(right ^ key) & mask
        left, right = right, left ^ f
    return (left << np.uint64(half)) | right


def permute(k: npt.ArrayLike, n: int, seed: int, epoch: int) -> npt.NDArray[np.int64]:
    """The images of positions ``k`` (in ``[0, n)``) under the permutation of (seed, epoch).

    Raises:
        ValueError: When ``n < 1`` or a position is outside ``[0, n)``.
    """
    if n < 1:
        raise ValueError(f"cannot permute {n} items")
    x = np.asarray(k, dtype=np.int64)
    if x.size and (x.min() < 0 or x.max() >= n):
        raise ValueError(f"positions must lie in [0, {n})")
    if n == 1:
        return np.zeros_like(x)
    bits = max(2, int(n - 1).bit_length())
    bits += bits % 2
    half = bits // 2
    base = _mix(np.array([seed & (2**64 - 1)], dtype=np.uint64))[0]
    keys = [
        _mix(np.array([base ^ np.uint64((epoch * _ROUNDS + r + 1) & (2**64 - 1))], np.uint64))[0]
        for r in range(_ROUNDS)
    ]
    out = _feistel(x.astype(np.uint64), half, keys)
    # Cycle-walk: the domain is < 4n, so a few more rounds bring every value inside [0, n).
    outside = out >= np.uint64(n)
    while outside.any():
        out[outside] = _feistel(out[outside], half, keys)
        outside = out >= np.uint64(n)
    return out.astype(np.int64)
