"""run_all: every task runs, or the first failure is raised with no task left running."""

from __future__ import annotations

import concurrent.futures as cf
import threading
import time

import pytest

from lsio.compute import run_all


def test_runs_every_item_on_the_pool() -> None:
    seen: list[int] = []
    lock = threading.Lock()

    def task(i: int) -> None:
        with lock:
            seen.append(i)

    with cf.ThreadPoolExecutor(3) as pool:
        run_all(pool, task, list(range(50)))
    assert sorted(seen) == list(range(50))


def test_failure_is_raised_and_nothing_keeps_running() -> None:
    running = 0
    finished_after_return = []
    lock = threading.Lock()
    returned = threading.Event()

    def task(i: int) -> None:
        nonlocal running
        with lock:
            running += 1
        try:
            if i == 3:
                raise KeyError("boom in 3")
            time.sleep(0.01)
            if returned.is_set():
                finished_after_return.append(i)
        finally:
            with lock:
                running -= 1

    with cf.ThreadPoolExecutor(2) as pool:
        with pytest.raises(KeyError, match="boom in 3"):
            run_all(pool, task, list(range(40)))
        returned.set()
        assert running == 0
        # The pool is still usable afterwards.
        run_all(pool, lambda i: None, [1, 2, 3])
    assert finished_after_return == []


def test_the_caller_works_too_and_at_most_workers_threads_run() -> None:
    threads: set[int] = set()
    running = 0
    most = 0
    lock = threading.Lock()

    def task(i: int) -> None:
        nonlocal running, most
        with lock:
            threads.add(threading.get_ident())
            running += 1
            most = max(most, running)
        time.sleep(0.002)
        with lock:
            running -= 1

    with cf.ThreadPoolExecutor(4) as pool:
        run_all(pool, task, list(range(60)), workers=2)
    assert threading.get_ident() in threads
    assert most <= 2
    assert len(threads) == 2


def test_a_task_of_the_pool_may_run_all_on_the_same_pool() -> None:
    seen: list[int] = []
    lock = threading.Lock()

    def inner(i: int) -> None:
        with lock:
            seen.append(i)

    with cf.ThreadPoolExecutor(1) as pool:
        # The only pool thread runs `outer`, which waits on the same pool: the
        # caller's own share of the work must finish it.
        pool.submit(lambda: run_all(pool, inner, list(range(10)), workers=2)).result(timeout=10)
    assert sorted(seen) == list(range(10))
