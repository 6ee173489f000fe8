"""Running a batch of tasks on a thread pool with clear failure semantics."""

from __future__ import annotations

import concurrent.futures as cf
import threading
from collections.abc import Callable, Sequence
from typing import TypeVar

__all__ = ["run_all"]

T = TypeVar("T")


def run_all(
    pool: cf.Executor | None,
    fn: Callable[[T], None],
    items: Sequence[T],
    workers: int | None = None,
) -> None:
    """Call ``fn(item)`` for every item, on the calling thread and ``pool``, and wait for all.

    The caller works too: it and up to ``workers - 1`` pool threads each take
    the next item until none is left. A small read (one crop: a few
    milliseconds on two cores) so starts at once on the calling thread instead
    of waiting for a pool thread to wake, and the items spread by how long
    each takes, not by count.

    If a call raises, no further item starts, those running are waited for (so
    no worker is left writing into the caller's buffers), and the first
    exception is raised. Never returns while a task is still running. Safe to
    call from a task of the same pool: the caller alone can finish the items.

    Args:
        pool: Executor to run on; ``None`` (or a single item) runs in this thread.
        fn: The task; results are communicated by side effects.
        items: Task arguments.
        workers: Threads working on the items at most, the caller included.
            Defaults to one per item.
    """
    helpers = min(len(items), workers if workers is not None else len(items)) - 1
    if pool is None or helpers < 1:
        for item in items:
            fn(item)
        return
    lock = threading.Lock()
    next_item = 0
    errors: list[BaseException] = []

    def work() -> None:
        nonlocal next_item
        while True:
            with lock:
                if errors or next_item >= len(items):
                    return
                item = items[next_item]
                next_item += 1
            try:
                fn(item)
            except BaseException as exc:
                with lock:
                    errors.append(exc)
                return

    futures = [pool.submit(work) for _ in range(helpers)]
    work()
    # A helper that has not started has nothing left to do: cancel it rather
    # than wait for a pool thread (which may be this very thread) to take it.
    cf.wait([f for f in futures if not f.cancel()])
    if errors:
        raise errors[0]
