"""Pure planning of reads: merge nearby byte ranges of one object, split huge ones."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

__all__ = ["CoalescedRead", "coalesce_ranges"]


@dataclass(frozen=True, slots=True)
class CoalescedRead:
    """One physical read ``[start, end)`` serving the requested ranges ``members``.

    Attributes:
        start: First byte of the read.
        end: One past the last byte of the read.
        members: Indexes into the caller's range list that this read covers entirely.
    """

    start: int
    end: int
    members: tuple[int, ...]


def coalesce_ranges(
    starts: npt.ArrayLike, ends: npt.ArrayLike, *, max_gap: int, max_size: int
) -> list[CoalescedRead]:
    """Group half-open ranges ``[starts[i], ends[i])`` into few physical reads.

    Ranges closer than ``max_gap`` bytes (or overlapping) are served by one read,
    unless that read would grow beyond ``max_size`` bytes; a single range larger
    than ``max_size`` still gets a read of its own (it is never split, so every
    member is served by exactly one read).

    Args:
        starts: First byte of each range.
        ends: One past the last byte of each range; ``ends >= starts``.
        max_gap: Largest number of unrequested bytes read to save a request; >= 0.
        max_size: Soft upper bound on the size of a merged read; >= 1.

    Returns:
        Reads sorted by ``start``; every input range is a member of exactly one.
    """
    s = np.asarray(starts, dtype=np.int64).reshape(-1)
    e = np.asarray(ends, dtype=np.int64).reshape(-1)
    if s.shape != e.shape:
        raise ValueError("starts and ends must have the same length")
    if max_gap < 0 or max_size < 1:
        raise ValueError(f"need max_gap >= 0 and max_size >= 1, got {max_gap}, {max_size}")
    if s.size == 0:
        return []
    if np.any(e < s) or np.any(s < 0):
        raise ValueError("every range needs 0 <= start <= end")
    order = np.argsort(s, kind="stable")
    s_sorted = s[order]
    e_sorted = e[order]
    reach = np.maximum.accumulate(e_sorted)
    # A range starts a new group when it begins beyond what has been read so far plus the gap.
    breaks = np.flatnonzero(s_sorted[1:] - reach[:-1] > max_gap) + 1
    bounds = np.concatenate(([0], breaks, [s.size]))
    reads: list[CoalescedRead] = []
    for g0, g1 in zip(bounds[:-1].tolist(), bounds[1:].tolist(), strict=True):
        if int(reach[g1 - 1]) - int(s_sorted[g0]) <= max_size:
            reads.append(
                CoalescedRead(int(s_sorted[g0]), int(reach[g1 - 1]), tuple(order[g0:g1].tolist()))
            )
            continue
        # Rare: a dense run longer than max_size; split it greedily.
        cur_start, cur_end, members = int(s_sorted[g0]), int(e_sorted[g0]), [int(order[g0])]
        for i in range(g0 + 1, g1):
            si, ei = int(s_sorted[i]), int(e_sorted[i])
            if max(cur_end, ei) - cur_start > max_size:
                reads.append(CoalescedRead(cur_start, cur_end, tuple(members)))
                cur_start, cur_end, members = si, ei, [int(order[i])]
            else:
                cur_end = max(cur_end, ei)
                members.append(int(order[i]))
        reads.append(CoalescedRead(cur_start, cur_end, tuple(members)))
    return reads
