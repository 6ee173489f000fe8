"""The compiled fetch-and-add: threads sharing one counter take distinct numbers."""

from __future__ import annotations

import threading
from typing import Any

import numba
import numpy as np

from lsio.compute import fetch_add


@numba.njit(nogil=True)
def _take(counter: Any, n: int, owner: Any, me: int) -> int:  # pragma: no cover - compiled
    taken = 0
    while True:
        i = fetch_add(counter, 0, 1)
        if i >= n:
            return taken
        owner[i] = me
        taken += 1


def test_threads_take_each_number_once() -> None:
    n = 200_000
    counter = np.zeros(1, dtype=np.int64)
    owner = np.full(n, -1, dtype=np.int64)
    taken: list[int] = []
    threads = [
        threading.Thread(target=lambda me=me: taken.append(_take(counter, n, owner, me)))
        for me in range(4)
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sum(taken) == n  # no number taken twice
    assert (owner >= 0).all()  # none skipped
    assert counter[0] == n + 4  # each thread's last add found the counter spent


def test_returns_the_old_value_and_adds_any_integer() -> None:
    @numba.njit
    def twice(counter: Any) -> tuple[int, int]:  # pragma: no cover - compiled
        return fetch_add(counter, 1, 5), fetch_add(counter, 1, np.int32(-2))

    counter = np.array([7, 10], dtype=np.int64)
    assert twice(counter) == (10, 15)
    assert counter.tolist() == [7, 13]
