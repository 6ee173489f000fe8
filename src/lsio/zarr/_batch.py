"""``lsio.Batch``: reads of several arrays planned and executed together."""

from __future__ import annotations

from types import TracebackType
from typing import TYPE_CHECKING

import numpy as np

from lsio._errors import InvalidArgumentError, NotReadyError
from lsio.zarr._engine import ReadJob, run_jobs

if TYPE_CHECKING:
    from lsio.zarr._array import Array

__all__ = ["Batch", "ReadFuture"]


class ReadFuture:
    """The result of a read added to a :class:`Batch`; available once the batch ran."""

    def __init__(self, batch: Batch, out: np.ndarray) -> None:
        self._batch = batch
        self._out = out

    def done(self) -> bool:
        """Whether the batch has run (successfully or not)."""
        return self._batch.state in ("done", "failed")

    def result(self) -> np.ndarray:
        """The array read.

        Raises:
            NotReadyError: The batch has not been submitted yet, is still
                running (asked from another thread), or its ``with`` block
                raised, so it never will be. Never blocks.
            LsioError: The batch failed; the error of the first failed read.
        """
        state = self._batch.state
        if state == "failed":
            assert self._batch.error is not None
            raise self._batch.error
        if state != "done":
            raise NotReadyError(
                {
                    "open": "the batch has not been submitted: results are available "
                    "after its 'with' block ends (or after batch.submit())",
                    "running": "the batch is still running: results are available once "
                    "its 'with' block (or batch.submit()) has returned",
                }.get(state, "the batch was abandoned because its 'with' block raised")
            )
        return self._out


class Batch:
    """Collects reads of one or many arrays, then plans and runs them together.

    Chunks that several reads share are read and decoded once. Use it as a
    context manager; the reads run when the block ends::

        with lsio.Batch() as batch:
            fa = a.read(sel_a, batch=batch)
            fb = b.read(sel_b, batch=batch)
        fa.result(), fb.result()

    If any read fails, leaving the block raises the first error, and every
    future's ``result()`` raises it too (outputs may be partly written). If the
    block itself raises, nothing is read.
    """

    def __init__(self) -> None:
        self._jobs: list[ReadJob] = []
        self.state = "open"
        self.error: BaseException | None = None

    def __enter__(self) -> Batch:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if exc_type is None:
            if self.state == "open":  # not already submitted inside the block
                self.submit()
        elif self.state == "open":
            self.state = "abandoned"
            self._jobs.clear()

    def __len__(self) -> int:
        return len(self._jobs)

    def add(self, job: ReadJob) -> ReadFuture:
        """Queue a read; used by :meth:`lsio.Array.read` with ``batch=``."""
        if self.state != "open":
            raise InvalidArgumentError(f"cannot add reads to a batch that is {self.state}")
        self._jobs.append(job)
        return ReadFuture(self, job.out)

    def submit(self) -> None:
        """Run every queued read now (called by the ``with`` block's end)."""
        if self.state != "open":
            raise InvalidArgumentError(f"the batch is already {self.state}")
        self.state = "running"
        try:
            if self._jobs:
                submit_jobs(self._jobs)
        except BaseException as exc:
            self.state = "failed"
            self.error = exc
            raise
        finally:
            self._jobs.clear()
        self.state = "done"


def submit_jobs(jobs: list[ReadJob]) -> None:
    """Run jobs that may come from arrays of different stores, on the first one's workers."""
    first: Array = jobs[0].array
    run_jobs(jobs, first.context)
