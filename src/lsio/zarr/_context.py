"""What the nodes opened from one store share: the store, the config, the workers."""

from __future__ import annotations

import concurrent.futures as cf
import os
import threading

from lsio.compute import OutputPool, ScratchPool
from lsio.io import Store
from lsio.plan import ReadConfig

__all__ = ["Context"]


class Context:
    """The store, read settings and (lazily started) worker pool of an opened hierarchy.

    Args:
        store: Where the data lives.
        config: Read settings.
        writable: Whether nodes may be written (mode ``r+``, ``a``, ``w``).
    """

    def __init__(self, store: Store, config: ReadConfig, writable: bool = False) -> None:
        self.store = store
        self.config = config
        # Resolved once: os.cpu_count() reads /sys on every call.
        self.workers = config.workers
        self.disk_workers = config.disk_workers
        self.writable = writable
        self.scratch = ScratchPool()
        self.outputs = OutputPool(config.output_pool)
        self._pool: cf.ThreadPoolExecutor | None = None
        self._pid = os.getpid()
        self._lock = threading.Lock()

    @property
    def pool(self) -> cf.ThreadPoolExecutor | None:
        """Worker threads, or ``None`` when configured for one thread."""
        if self.workers <= 1:
            return None
        if self._pid != os.getpid():
            # A forked child (e.g. a DataLoader worker): the parent's worker threads do not
            # exist here, so start its own pool instead of queueing work nobody runs.
            self._lock = threading.Lock()
            self._pool = None
            self.scratch = ScratchPool()
            self._pid = os.getpid()
        with self._lock:
            if self._pool is None:
                # Threads start as calls ask for them: only reads of files on
                # disk (see ReadConfig.disk_threads) ask for more than `workers`.
                threads = max(self.workers, self.disk_workers)
                self._pool = cf.ThreadPoolExecutor(threads, thread_name_prefix="lsio")
            return self._pool

    @property
    def batches(self) -> int:
        """How many batches a read is cut into."""
        return self.workers * self.config.tasks_per_thread

    def close(self) -> None:
        """Stop the worker threads and drop pooled result memory (both come back on use)."""
        with self._lock:
            if self._pool is not None:
                self._pool.shutdown(wait=True)
                self._pool = None
        self.outputs.clear()
