"""io_uring through raw syscalls (ctypes + mmap), without a compiled extension.

One ring per thread; a batch's reads are written as SQEs in bulk through a NumPy
structured view of the mmap'd submission queue and submitted with one
``io_uring_enter`` per ring-full, so thousands of reads cost a few syscalls.

Only x86-64 Linux is enabled: its total store order makes the plain stores that
Python does to the shared rings safe without explicit memory barriers.
"""

from __future__ import annotations

import ctypes
import errno
import mmap
import os
import platform
import threading
import weakref
from collections.abc import Iterator, Sequence

import numpy as np

from lsio._errors import ReadError
from lsio.io._base import IOConfig, group_by_key
from lsio.io._buffers import Block, read_buffer
from lsio.io._local import _OPEN_FLAGS, LocalStore, plan_file_reads
from lsio.io._types import ReadRequest, ReadResult

__all__ = ["UringStore", "uring_available"]

_SYS_SETUP, _SYS_ENTER = 425, 426
_OFF_SQ_RING, _OFF_CQ_RING, _OFF_SQES = 0, 0x8000000, 0x10000000
_FEAT_SINGLE_MMAP = 1
_ENTER_GETEVENTS = 1
_OP_READ = 22
# Bytes one read asks for at most: an SQE's length is 32 bits, and Linux reads
# at most ~2 GiB per call anyway (the rest of a larger read is asked for again).
_MAX_READ = 1 << 30

_SQE = np.dtype(
    {
        "names": ["opcode", "flags", "ioprio", "fd", "off", "addr", "len", "rw_flags", "user_data"],
        "formats": ["u1", "u1", "<u2", "<i4", "<u8", "<u8", "<u4", "<u4", "<u8"],
        "offsets": [0, 1, 2, 4, 8, 16, 24, 28, 32],
        "itemsize": 64,
    }
)
_CQE = np.dtype(
    {"names": ["user_data", "res", "flags"], "formats": ["<u8", "<i4", "<u4"], "itemsize": 16}
)

_libc = ctypes.CDLL(None, use_errno=True)
_syscall = _libc.syscall
_syscall.restype = ctypes.c_long


class _Params(ctypes.Structure):
    _fields_ = [
        ("sq_entries", ctypes.c_uint32),
        ("cq_entries", ctypes.c_uint32),
        ("flags", ctypes.c_uint32),
        ("sq_thread_cpu", ctypes.c_uint32),
        ("sq_thread_idle", ctypes.c_uint32),
        ("features", ctypes.c_uint32),
        ("wq_fd", ctypes.c_uint32),
        ("resv", ctypes.c_uint32 * 3),
        ("sq_off", ctypes.c_uint32 * 8),
        ("sq_user_addr", ctypes.c_uint64),
        ("cq_off", ctypes.c_uint32 * 8),
        ("cq_user_addr", ctypes.c_uint64),
    ]


class _Ring:
    """One io_uring instance: submission and completion queues mapped into NumPy views."""

    def __init__(self, entries: int) -> None:
        params = _Params()
        fd = _syscall(_SYS_SETUP, ctypes.c_uint32(entries), ctypes.byref(params))
        if fd < 0:
            err = ctypes.get_errno()
            raise OSError(err, f"io_uring_setup: {os.strerror(err)}")
        self.fd = int(fd)
        sq, cq = list(params.sq_off), list(params.cq_off)
        sq_size = sq[6] + params.sq_entries * 4
        cq_size = cq[5] + params.cq_entries * _CQE.itemsize
        single = bool(params.features & _FEAT_SINGLE_MMAP)
        if single:
            sq_size = cq_size = max(sq_size, cq_size)
        flags = mmap.MAP_SHARED | getattr(mmap, "MAP_POPULATE", 0)
        prot = mmap.PROT_READ | mmap.PROT_WRITE
        self._sq_map = mmap.mmap(self.fd, sq_size, flags, prot, offset=_OFF_SQ_RING)
        self._cq_map = (
            self._sq_map
            if single
            else mmap.mmap(self.fd, cq_size, flags, prot, offset=_OFF_CQ_RING)
        )
        self._sqe_map = mmap.mmap(self.fd, params.sq_entries * 64, flags, prot, offset=_OFF_SQES)
        u32 = np.dtype("<u4")
        sqm = np.frombuffer(self._sq_map, dtype=np.uint8)
        cqm = np.frombuffer(self._cq_map, dtype=np.uint8)
        self.sq_head = sqm[sq[0] : sq[0] + 4].view(u32)
        self.sq_tail = sqm[sq[1] : sq[1] + 4].view(u32)
        self.sq_mask = int(sqm[sq[2] : sq[2] + 4].view(u32)[0])
        self.sq_entries = params.sq_entries
        self.sq_array = sqm[sq[6] : sq[6] + 4 * params.sq_entries].view(u32)
        self.cq_head = cqm[cq[0] : cq[0] + 4].view(u32)
        self.cq_tail = cqm[cq[1] : cq[1] + 4].view(u32)
        self.cq_mask = int(cqm[cq[2] : cq[2] + 4].view(u32)[0])
        self.cqes = cqm[cq[5] : cq[5] + params.cq_entries * _CQE.itemsize].view(_CQE)
        self.sqes = np.frombuffer(self._sqe_map, dtype=_SQE)
        # The SQ array maps slot i to SQE i once and for all.
        self.sq_array[:] = np.arange(params.sq_entries, dtype=np.uint32)

    def enter(self, to_submit: int, min_complete: int) -> int:
        while True:
            n = _syscall(
                _SYS_ENTER,
                ctypes.c_uint(self.fd),
                ctypes.c_uint(to_submit),
                ctypes.c_uint(min_complete),
                ctypes.c_uint(_ENTER_GETEVENTS if min_complete else 0),
                None,
                ctypes.c_size_t(0),
            )
            if n >= 0:
                return int(n)
            err = ctypes.get_errno()
            if err not in (errno.EINTR, errno.EAGAIN):
                raise OSError(err, f"io_uring_enter: {os.strerror(err)}")

    def read_all(
        self, fds: np.ndarray, offsets: np.ndarray, addrs: np.ndarray, lengths: np.ndarray
    ) -> np.ndarray:
        """Run reads ``i``: ``lengths[i]`` bytes of ``fds[i]`` at ``offsets[i]`` into ``addrs[i]``.

        Returns the result of each read (bytes read, or ``-errno``). Short reads
        are not retried here.
        """
        n = len(fds)
        results = np.empty(n, dtype=np.int64)
        done = submitted = 0
        while done < n:
            tail = int(self.sq_tail[0])
            free = self.sq_entries - (tail - int(self.sq_head[0]))
            k = min(free, n - submitted, self.sq_entries - (submitted - done))
            if k > 0:
                slots = (tail + np.arange(k, dtype=np.uint32)) & self.sq_mask
                sqes = self.sqes
                sl = slice(submitted, submitted + k)
                sqes["opcode"][slots] = _OP_READ
                sqes["flags"][slots] = 0
                sqes["ioprio"][slots] = 0
                sqes["fd"][slots] = fds[sl]
                sqes["off"][slots] = offsets[sl]
                sqes["addr"][slots] = addrs[sl]
                sqes["len"][slots] = lengths[sl]
                sqes["rw_flags"][slots] = 0
                sqes["user_data"][slots] = np.arange(submitted, submitted + k, dtype=np.uint64)
                self.sq_tail[0] = (tail + k) & 0xFFFFFFFF  # publish after the entries are written
                submitted += k
            self.enter(k if k > 0 else 0, 1)
            head, ctail = int(self.cq_head[0]), int(self.cq_tail[0])
            if ctail != head:
                idx = (np.arange(head, ctail, dtype=np.uint64) & self.cq_mask).astype(np.intp)
                cqes = self.cqes[idx]
                results[cqes["user_data"].astype(np.intp)] = cqes["res"]
                done += len(idx)
                self.cq_head[0] = ctail & 0xFFFFFFFF
        return results

    def close(self) -> None:
        # NumPy views export the mmaps' buffers; drop them before unmapping.
        for name in ("sq_head", "sq_tail", "sq_array", "cq_head", "cq_tail", "cqes", "sqes"):
            setattr(self, name, None)
        maps = {id(m): m for m in (self._sq_map, self._cq_map, self._sqe_map)}
        for m in maps.values():
            m.close()
        os.close(self.fd)


def _close_rings(rings: list[_Ring]) -> None:
    for ring in rings:
        ring.close()
    rings.clear()


def uring_available() -> bool:
    """Whether this machine lets lsio use io_uring (x86-64 Linux, not refused by the kernel)."""
    if platform.system() != "Linux" or platform.machine() not in ("x86_64", "AMD64"):
        return False
    try:
        ring = _Ring(8)
    except OSError:
        return False
    ring.close()
    return True


class UringStore(LocalStore):
    """A :class:`LocalStore` that reads through io_uring, one ring per thread.

    Args:
        root: Directory (or ``file://`` URL) that holds the objects.
        config: Coalescing settings.
        entries: Submission queue size of each ring. Defaults to 256.

    Raises:
        OSError: io_uring is not available (see :func:`uring_available`).
    """

    _whole_by_pread = False

    def __init__(
        self, root: str | os.PathLike[str], config: IOConfig | None = None, entries: int = 256
    ) -> None:
        super().__init__(root, config)
        if not uring_available():
            raise OSError(errno.ENOSYS, "io_uring is not available on this machine")
        self._entries = entries
        self._local = threading.local()
        # Every thread's ring, closed with the store (each holds a file descriptor).
        self._rings: list[_Ring] = []
        self._rings_lock = threading.Lock()
        weakref.finalize(self, _close_rings, self._rings)

    def __repr__(self) -> str:
        return f"UringStore({str(self.root)!r})"

    def _ring(self) -> _Ring:
        ring: _Ring | None = getattr(self._local, "ring", None)
        if ring is None:
            ring = self._local.ring = _Ring(self._entries)
            with self._rings_lock:
                self._rings.append(ring)
        return ring

    def read_batch(self, requests: Sequence[ReadRequest]) -> Iterator[ReadResult]:
        """Open each file once, coalesce its ranges, read everything through the ring."""
        fds: list[int] = []
        plan: list[
            tuple[str, int, int, int, list[tuple[int, int, int]]]
        ] = []  # key, fd, start, end, members
        blocks: list[Block | None] = []
        buffers: list[np.ndarray] = []
        try:
            for key, reqs in group_by_key(requests).items():
                try:
                    fd = os.open(self._path(key), _OPEN_FLAGS)
                except (FileNotFoundError, NotADirectoryError):
                    for req in reqs:
                        yield ReadResult(req.tag, None)
                    continue
                except OSError as exc:
                    raise ReadError(str(exc), key=key, byte_range="open") from exc
                fds.append(fd)
                for start, end, members in plan_file_reads(
                    os.fstat(fd).st_size, reqs, self._config
                ):
                    plan.append((key, fd, start, end, members))
            for _, _, start, end, _ in plan:
                block, buf = read_buffer(end - start, self._pool)
                blocks.append(block)
                buffers.append(buf)
            if plan:
                self._read_into(plan, buffers)
            for (_, _, start, _, members), buf, block in zip(plan, buffers, blocks, strict=True):
                view = memoryview(buf.data)
                for tag, s, e in members:
                    lease = None if block is None else block.lease()
                    yield ReadResult(tag, view[s - start : e - start], lease)
        finally:
            for fd in fds:
                os.close(fd)
            for held in blocks:  # this reader's own holds; results keep theirs
                if held is not None:
                    held.release()

    def _read_into(
        self,
        plan: list[tuple[str, int, int, int, list[tuple[int, int, int]]]],
        buffers: list[np.ndarray],
    ) -> None:
        fds = np.array([p[1] for p in plan], dtype=np.int32)
        offsets = np.array([p[2] for p in plan], dtype=np.uint64)
        lengths = np.array([p[3] - p[2] for p in plan], dtype=np.uint64)
        addrs = np.array([b.ctypes.data for b in buffers], dtype=np.uint64)
        done = np.zeros(len(plan), dtype=np.uint64)
        pending = np.flatnonzero(lengths > 0)
        ring = self._ring()
        while pending.size:
            res = ring.read_all(
                fds[pending],
                offsets[pending] + done[pending],
                addrs[pending] + done[pending],
                np.minimum(lengths[pending] - done[pending], _MAX_READ),
            )
            failed = np.flatnonzero(res < 0)
            if failed.size:
                i = int(pending[failed[0]])
                key, _, start, end, _ = plan[i]
                err = int(-res[failed[0]])
                raise ReadError(os.strerror(err), key=key, byte_range=f"[{start}, {end})")
            done[pending] += res.astype(np.uint64)
            eof = res == 0
            # A read that hit the end of the file stops there: the buffer is cut to what exists.
            for j in np.flatnonzero(eof):
                i = int(pending[j])
                buffers[i] = buffers[i][: int(done[i])]
            still = (~eof) & (done[pending] < lengths[pending])
            pending = pending[still]
