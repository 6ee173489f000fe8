"""Value types of the IO layer: byte ranges, tagged requests and their results."""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, TypeAlias

if TYPE_CHECKING:
    from lsio.io._buffers import Lease

__all__ = [
    "ByteRange",
    "ReadRequest",
    "ReadResult",
    "SuffixRange",
    "WholeObject",
    "describe_range",
    "release_each",
]


@dataclass(frozen=True, slots=True)
class ByteRange:
    """The half-open byte range ``[start, end)`` of an object; ``0 <= start <= end``."""

    start: int
    end: int

    def __post_init__(self) -> None:
        if not 0 <= self.start <= self.end:
            raise ValueError(
                f"invalid byte range [{self.start}, {self.end}): need 0 <= start <= end"
            )

    @property
    def length(self) -> int:
        """Number of bytes in the range."""
        return self.end - self.start


@dataclass(frozen=True, slots=True)
class SuffixRange:
    """The last ``length`` bytes of an object (e.g. a shard index stored at the end)."""

    length: int

    def __post_init__(self) -> None:
        if self.length < 0:
            raise ValueError(f"invalid suffix length {self.length}: must be >= 0")


@dataclass(frozen=True, slots=True)
class WholeObject:
    """All bytes of an object."""


Range: TypeAlias = ByteRange | SuffixRange | WholeObject


@dataclass(frozen=True, slots=True)
class ReadRequest:
    """One read of a batch: a byte range of the object at ``key``.

    Attributes:
        tag: Caller's identifier, echoed in the result; results may arrive in any order.
        key: Object key relative to the store root, ``/``-separated.
        range: Which bytes to read.
    """

    tag: int
    key: str
    range: Range


@dataclass(frozen=True, slots=True)
class ReadResult:
    """The outcome of one :class:`ReadRequest`.

    Attributes:
        tag: The request's tag.
        data: The bytes read, or ``None`` when the object does not exist. A range
            that extends past the end of the object returns the bytes that exist,
            so the caller can tell a truncated object from a complete one.
        lease: The hold on a recycled buffer that ``data`` views, if any (see
            :meth:`release`).
    """

    tag: int
    data: memoryview | None
    lease: Lease | None = field(default=None, compare=False, repr=False)

    def release(self) -> None:
        """Say that ``data`` is no longer needed, so its buffer may serve a later read.

        Optional: a result never released keeps its buffer until it is
        garbage-collected. After this call ``data``, and every view made of it,
        may be overwritten at any time; call it only once the bytes have been
        copied or decoded elsewhere. Calling it again does nothing.
        """
        if self.lease is not None:
            self.lease.release()


def release_each(results: Iterable[ReadResult]) -> Iterator[ReadResult]:
    """Yield each result, releasing it when the loop asks for the next one (or stops).

    For loops whose body is done with a result's bytes when it ends (decoded
    or copied elsewhere, no view kept): their buffers go back to the store's
    pool (see :meth:`ReadResult.release`).
    """
    for result in results:
        try:
            yield result
        finally:
            result.release()


def describe_range(r: Range) -> str:
    """Render a range for error messages, e.g. ``[0, 100)`` or ``last 40 bytes``."""
    if isinstance(r, ByteRange):
        return f"[{r.start}, {r.end})"
    if isinstance(r, SuffixRange):
        return f"last {r.length} bytes"
    return "whole object"
