"""Running a batch of tasks on a thread pool with clear failure semantics."""

from __future__ import annotations

import concurrent.futures as cf
from collections.abc import Callable, Sequence
from typing import TypeVar

__all__ = ["run_all"]

T = TypeVar("T")


def run_all(pool: cf.Executor | None, fn: Callable[[T], None], items: Sequence[T]) -> None:
    """Call ``fn(item)`` for every item, on ``pool`` when given, and wait for all.

    If a call raises, tasks not yet started are cancelled, those running are
    waited for (so no worker is left writing into the caller's buffers), and the
    first exception is raised. Never returns while a task is still running.

    Args:
        pool: Executor to run on; ``None`` (or a single item) runs in this thread.
        fn: The task; results are communicated by side effects.
        items: Task arguments.
    """
    if pool is None or len(items) <= 1:
        for item in items:
            fn(item)
        return
    futures = [pool.submit(fn, item) for item in items]
    _, pending = cf.wait(futures, return_when=cf.FIRST_EXCEPTION)
    failed = next((f for f in futures if f.done() and f.exception() is not None), None)
    if failed is None:
        return
    for f in pending:
        f.cancel()
    cf.wait(pending)
    exc = failed.exception()
    assert exc is not None
    raise exc
