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
        self._disk_pool: cf.ThreadPoolExecutor | None = None
        self._pid = os.getpid()
        self._lock = threading.Lock()

    @property
    def pool(self) -> cf.ThreadPoolExecutor | None:
        """Worker threads, or ``None`` when configured for one thread."""
        if self.workers <= 1:
            return None
        self._forked()
        with self._lock:
            if self._pool is None:
                self._pool = cf.ThreadPoolExecutor(self.workers, thread_name_prefix="lsio")
            return self._pool

    @property
    def disk_pool(self) -> cf.ThreadPoolExecutor | None:
        """Threads for a crop's chunk files on disk (see :class:`lsio.ReadConfig`).

        Its own threads where ``disk_threads`` exceeds ``threads``, so that
        other calls keep to ``threads`` however many run at once; else the
        worker pool.
        """
        if self.disk_workers <= self.workers:
            return self.pool
        self._forked()
        with self._lock:
            if self._disk_pool is None:
                self._disk_pool = cf.ThreadPoolExecutor(
                    self.disk_workers, thread_name_prefix="lsio-disk"
                )
            return self._disk_pool

    def _forked(self) -> None:
        """In a forked child (e.g. a DataLoader worker), forget the parent's threads.

        They do not exist here: the child starts its own instead of queueing
        work nobody runs.
        """
        if self._pid != os.getpid():
            self._lock = threading.Lock()
            self._pool = self._disk_pool = None
            self.scratch = ScratchPool()
            self._pid = os.getpid()

    @property
    def batches(self) -> int:
        """How many batches a read is cut into."""
        return self.workers * self.config.tasks_per_thread

    def close(self) -> None:
        """Stop the worker threads and drop pooled result memory (both come back on use)."""
        with self._lock:
            for pool in (self._pool, self._disk_pool):
                if pool is not None:
                    pool.shutdown(wait=True)
            self._pool = self._disk_pool = None
        self.outputs.clear()
