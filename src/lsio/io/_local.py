"""Local-file backend: each object key is a file below a root directory."""

from __future__ import annotations

import contextlib
import ctypes
import errno
import functools
import os
import shutil
import stat
import threading
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from urllib.parse import unquote, urlparse

import numpy as np

from lsio._errors import ReadError, WriteError
from lsio.io._base import NOT_READ, IOConfig, WholeObjects, resolve_range, split_whole
from lsio.io._buffers import Block, BufferPool, read_buffer, results_viewing
from lsio.io._coalesce import coalesce_ranges
from lsio.io._directwrite import ALIGN, DIRECT_WRITE_BYTES, O_DIRECT, write_direct
from lsio.io._getmany import load_file_batch_reader
from lsio.io._putmany import load_file_batch_writer
from lsio.io._types import ByteRange, ReadRequest, ReadResult, WholeObject, describe_range

__all__ = ["LocalStore", "path_from_url"]

_OPEN_FLAGS = os.O_RDONLY | getattr(os, "O_CLOEXEC", 0)
_WRITE_FLAGS = os.O_WRONLY | os.O_CREAT | os.O_TRUNC | getattr(os, "O_CLOEXEC", 0)


def path_from_url(location: str | os.PathLike[str]) -> Path:
    """Local path of a plain path or a ``file://`` URL.

    Raises:
        ValueError: For a URL scheme that is not a local file.
    """
    text = os.fspath(location)
    if "://" not in text:
        return Path(text)
    parsed = urlparse(text)
    if parsed.scheme != "file":
        raise ValueError(
            f"unsupported URL scheme {parsed.scheme!r} in {text!r}: use a local path, a file:// "
            "URL or an object-store URL (s3://, gs://, az://, https://; the s3 extra)"
        )
    if parsed.netloc not in ("", "localhost"):
        raise ValueError(f"file URL {text!r} names host {parsed.netloc!r}; only local files work")
    return Path(unquote(parsed.path))


class LocalStore:
    """Objects stored as files below ``root``; keys are ``/``-separated relative paths.

    Reads of one batch are grouped per file: each file is opened once, its ranges
    are coalesced (see :class:`IOConfig`) and read with ``preadv`` straight into
    one buffer per merged read, which results then view without copying.

    Args:
        root: Directory (or ``file://`` URL) that holds the objects.
        config: Coalescing settings; defaults to :class:`IOConfig()`.
    """

    def __init__(self, root: str | os.PathLike[str], config: IOConfig | None = None) -> None:
        self._root = path_from_url(root).absolute()
        self._root_str = str(self._root)
        self._config = config or IOConfig()
        # Expected size of a whole object (a chunk file), sizing batch buffers.
        self._whole_guess = 1 << 16
        # Cleared when the file system refuses O_DIRECT, so that it is asked once.
        self._direct_writes = bool(self._config.direct_writes and O_DIRECT)
        self.buffers = BufferPool(self._config.read_buffers)
        """Read buffers that released results hand back (see :meth:`lsio.io.ReadResult.release`)."""
        # None when off: reads then take plain buffers, as without a pool.
        self._pool = self.buffers if self._config.read_buffers else None

    @property
    def root(self) -> Path:
        """The directory holding the objects."""
        return self._root

    @property
    def url(self) -> str:
        """``file://`` URL of the root."""
        return self._root.as_uri()

    def __repr__(self) -> str:
        return f"LocalStore({str(self._root)!r})"

    def _path(self, key: str) -> str:
        if not key:
            return self._root_str
        return (
            f"{self._root_str}/{key}"
            if os.sep == "/"
            else os.path.join(self._root_str, *key.split("/"))
        )

    def get(self, key: str) -> bytes | None:
        """Whole object at ``key``, or ``None`` when it does not exist (or is a directory)."""
        try:
            with open(self._path(key), "rb") as f:
                return f.read()
        except (FileNotFoundError, NotADirectoryError, IsADirectoryError):
            return None
        except OSError as exc:
            raise ReadError(str(exc), key=key, byte_range="whole object") from exc

    def size(self, key: str) -> int | None:
        """Size of the file at ``key``, or ``None`` when there is no such file."""
        try:
            st = os.stat(self._path(key))
        except (FileNotFoundError, NotADirectoryError):
            return None
        return None if stat.S_ISDIR(st.st_mode) else st.st_size

    def put(self, key: str, data: bytes | memoryview) -> None:
        """Write ``data`` to a temporary file beside the target, then rename it over the target.

        Readers (and a writer killed half-way) see the old object or the new
        one, never a torn one: the rename is atomic on POSIX file systems.
        Directories are created as needed. Not synced to the device (a power
        loss may lose recent writes, never tear them on journaling file
        systems). An object of 1 MiB or more (a shard) is written around the
        page cache (``O_DIRECT``, see :class:`IOConfig`), or, with that off or
        refused, starts on its way to the device at once (Linux): either way a
        later ``sync`` finds it written, and a long write does not pile up
        dirty memory.
        """
        path = self._path(key)
        tmp = f"{path}.{os.getpid()}.{threading.get_ident()}.lsio-tmp"
        view = memoryview(data).cast("B")
        direct = self._direct_writes and len(view) >= DIRECT_WRITE_BYTES
        try:
            fd, direct = self._create(tmp, direct)
            try:
                if direct:
                    if not write_direct(fd, view):
                        self._direct_writes = False
                else:
                    _write_all(fd, view)
                    if len(view) >= _WRITEBACK_BYTES and (start := _writeback()) is not None:
                        start(fd)  # a hint: a refusal (a file system without it) changes nothing
            finally:
                os.close(fd)
            os.replace(tmp, path)
        except BaseException as exc:  # an interrupt too: no temporary file left behind
            with contextlib.suppress(OSError):
                os.unlink(tmp)
            if isinstance(exc, OSError):
                raise WriteError(str(exc), key=key) from exc
            raise

    def _create(self, tmp: str, direct: bool) -> tuple[int, bool]:
        """Create ``tmp`` for writing; whether it is open with ``O_DIRECT``."""
        if direct:
            try:
                return _create_file(tmp, _WRITE_FLAGS | O_DIRECT), True
            except OSError as exc:
                if exc.errno != errno.EINVAL:
                    raise
            self._direct_writes = False  # this file system has no O_DIRECT: ask once
        return _create_file(tmp, _WRITE_FLAGS), False

    def put_many(
        self, keys: Sequence[str], data: np.ndarray, offsets: Sequence[int] | np.ndarray
    ) -> None:
        """Store ``data[offsets[i]:offsets[i + 1]]`` under ``keys[i]``, each as :meth:`put` does.

        The files are written by one compiled call without the GIL (see
        :mod:`lsio.io._putmany`); an object that call cannot write (a new
        directory, or an error) goes through :meth:`put`, which makes the
        directory or raises the error for that key. Objects of 1 MiB or more
        go through :meth:`put` when direct writes are on (see :class:`IOConfig`).

        Args:
            keys: Object keys.
            data: A C-contiguous uint8 buffer with the objects back to back.
            offsets: ``len(keys) + 1`` byte offsets into ``data``.
        """
        bounds = np.asarray(offsets, dtype=np.int64)
        starts, sizes = bounds[:-1], np.diff(bounds)
        if self._direct_writes and (large := sizes >= DIRECT_WRITE_BYTES).any():
            for i in np.flatnonzero(large).tolist():  # around the page cache, one by one
                self.put(keys[i], data[starts[i] : starts[i] + sizes[i]].data)
            small = np.flatnonzero(~large)
            keys, starts, sizes = [keys[i] for i in small.tolist()], starts[small], sizes[small]
        writer = load_file_batch_writer()
        paths = [self._path(k) for k in keys]
        first = 0
        while first < len(keys):
            if writer is not None:
                stopped = writer.write(paths[first:], data, starts[first:], sizes[first:])
                if stopped < 0:
                    return
                first += stopped
            self.put(keys[first], data[starts[first] : starts[first] + sizes[first]].data)
            first += 1

    def delete(self, key: str) -> None:
        """Remove the file at ``key`` if there is one."""
        try:
            os.unlink(self._path(key))
        except FileNotFoundError:
            pass
        except OSError as exc:
            raise WriteError(f"cannot delete: {exc}", key=key) from exc

    def delete_prefix(self, prefix: str) -> None:
        """Remove everything under ``prefix`` (the whole store for ``""``, keeping its root)."""
        path = self._path(prefix)
        try:
            if os.path.isdir(path):
                for entry in os.scandir(path):
                    if entry.is_dir(follow_symlinks=False):
                        shutil.rmtree(entry.path)
                    else:
                        os.unlink(entry.path)
            elif os.path.exists(path):
                os.unlink(path)
        except OSError as exc:
            raise WriteError(f"cannot delete: {exc}", key=prefix) from exc

    def list_dir(self, prefix: str) -> tuple[list[str], list[str]]:
        """Files and directories directly under ``prefix``, each list sorted."""
        files: list[str] = []
        dirs: list[str] = []
        try:
            with os.scandir(self._path(prefix)) as it:
                for entry in it:
                    (dirs if entry.is_dir() else files).append(entry.name)
        except (FileNotFoundError, NotADirectoryError):
            pass
        return sorted(files), sorted(dirs)

    def read_batch(self, requests: Sequence[ReadRequest]) -> Iterator[ReadResult]:
        """Read all requests, one open file and few ``preadv`` calls per object.

        Whole objects (chunk files) of a batch are read together by one compiled
        call (see :mod:`lsio.io._getmany`).
        """
        whole, rest = split_whole(requests)
        for key, reqs in rest.items():
            yield from self._read_file(key, reqs)
        yield from self._read_whole(whole)

    # Whether whole objects are read by the compiled batch reader (backends
    # that read them their own way say no).
    _whole_by_pread = True

    def read_whole_objects(self, keys: Sequence[str]) -> WholeObjects | None:
        """The files of ``keys`` back to back in one buffer (see :class:`lsio.io.WholeObjectReader`).

        ``None`` with direct IO, where the compiled reader cannot be had, and
        for backends that read whole files their own way (``mmap``, ``io_uring``).

        Raises:
            ReadError: A file exists but cannot be read.
        """
        return self._whole_objects(keys)

    def object_files(self, keys: Sequence[str]) -> list[bytes] | None:
        """The file of each of ``keys``, to read whole (see :class:`lsio.io.WholeObjectReader`).

        ``None`` in the same cases as :meth:`read_whole_objects`.
        """
        return self._files(keys)

    def _files(self, keys: Sequence[str]) -> list[bytes] | None:
        """The files of ``keys`` where the compiled reader reads them whole, else ``None``."""
        if load_file_batch_reader() is None or self._config.direct or not self._whole_by_pread:
            return None
        return [os.fsencode(self._path(k)) for k in keys]

    def _whole_objects(self, keys: Sequence[str], pooled: bool = False) -> WholeObjects | None:
        # Not object_files: a subclass may count that as a request of its own.
        # ``pooled``: the buffer comes from this store's pool (the caller then
        # holds the result's block once).
        paths = self._files(keys)
        reader = load_file_batch_reader()
        if paths is None or reader is None:
            return None
        objects = reader.read(paths, self._whole_guess, self._pool if pooled else None)
        read = objects.sizes[objects.sizes > 0]
        if len(read):
            self._whole_guess = max(4096, int(read.mean()) * 5 // 4)
        failed = np.flatnonzero(objects.sizes == NOT_READ).tolist()
        return self._settle(keys, objects, failed) if failed else objects

    def _settle(
        self, keys: Sequence[str], objects: WholeObjects, failed: list[int]
    ) -> WholeObjects:
        """Read again the files the compiled reader could not, to tell missing from failing.

        A missing file stays ``NOT_READ``; any other failure raises with its
        message; a file readable now (created meanwhile) joins the buffer (a
        new one, not from the pool: ``objects``' block is released).
        """
        extra: list[ReadResult] = []
        try:
            for i in failed:
                for result in self._read_file(keys[i], [ReadRequest(i, keys[i], WholeObject())]):
                    if result.data is not None:
                        extra.append(result)
            if not extra:
                return objects
            starts, sizes = objects.starts.copy(), objects.sizes.copy()
            # Files lie back to back in order, so the last one's end is where the bytes end.
            end = int(starts[-1] + max(int(sizes[-1]), 0))
            parts = [objects.buffer[:end]]
            for result in extra:
                assert result.data is not None
                starts[result.tag], sizes[result.tag] = end, len(result.data)
                end += len(result.data)
                parts.append(np.frombuffer(result.data, dtype=np.uint8))
            settled = WholeObjects(np.concatenate(parts), starts, sizes)
        except BaseException:
            if objects.block is not None:
                objects.block.release()
            raise
        finally:
            for result in extra:
                result.release()
        if objects.block is not None:
            objects.block.release()
        return settled

    def _read_whole(self, reqs: list[ReadRequest]) -> Iterator[ReadResult]:
        """Whole objects of distinct keys, in one compiled call where possible."""
        objects = self._whole_objects([r.key for r in reqs], pooled=True) if len(reqs) > 1 else None
        if objects is None:
            for req in reqs:
                yield from self._read_file(req.key, [req])
            return
        yield from results_viewing(
            objects.block,
            (
                (req.tag, objects.view(i) if objects.sizes[i] >= 0 else None)
                for i, req in enumerate(reqs)
            ),
        )

    def _open(self, key: str) -> tuple[int, int]:
        """Open the file of ``key``; returns the descriptor and the alignment its reads need."""
        path = self._path(key)
        if self._config.direct and O_DIRECT:
            try:
                return os.open(path, _OPEN_FLAGS | O_DIRECT), ALIGN
            except OSError as exc:
                if exc.errno != errno.EINVAL:  # EINVAL: this file system has no O_DIRECT
                    raise
        return os.open(path, _OPEN_FLAGS), 1

    def _read_file(self, key: str, reqs: list[ReadRequest]) -> Iterator[ReadResult]:
        try:
            fd, align = self._open(key)
        except (FileNotFoundError, NotADirectoryError):
            for req in reqs:
                yield ReadResult(req.tag, None)
            return
        except OSError as exc:
            raise ReadError(str(exc), key=key, byte_range=describe_range(reqs[0].range)) from exc
        try:
            if len(reqs) == 1:
                # The common case of unsharded chunks: no planning needed.
                req = reqs[0]
                rng = req.range
                if isinstance(rng, ByteRange):
                    start, end = rng.start, rng.end
                else:
                    start, end = resolve_range(rng, os.fstat(fd).st_size)
                reads: list[FileRead] = [(start, end, [(req.tag, start, end)])]
            else:
                reads = plan_file_reads(os.fstat(fd).st_size, reqs, self._config)
            for start, end, members in reads:
                data, block = _pread_exact(fd, start, end, key, align, self._pool)
                view = memoryview(data.data)
                yield from results_viewing(
                    block, ((tag, view[s - start : e - start]) for tag, s, e in members)
                )
        finally:
            os.close(fd)


FileRead = tuple[int, int, list[tuple[int, int, int]]]


def plan_file_reads(size: int, reqs: list[ReadRequest], config: IOConfig) -> list[FileRead]:
    """Physical reads ``(start, end, [(tag, start, end), ...])`` serving ``reqs`` of one file.

    Ranges are resolved against the file's ``size`` and coalesced per ``config``.
    """
    spans = [resolve_range(r.range, size) for r in reqs]
    reads = coalesce_ranges(
        [s for s, _ in spans],
        [e for _, e in spans],
        max_gap=config.max_gap,
        max_size=config.max_read,
    )
    return [
        (r.start, r.end, [(reqs[m].tag, spans[m][0], spans[m][1]) for m in r.members])
        for r in reads
    ]


# Reads above this size check the file's size before allocating their buffer.
_LARGE_READ = 1 << 26


def _pread_exact(
    fd: int, start: int, end: int, key: str, align: int = 1, pool: BufferPool | None = None
) -> tuple[np.ndarray, Block | None]:
    """Read ``[start, end)``; a short file gives a short array. Returns it and its pool block.

    The buffer comes from ``pool`` when the read is large enough to be worth
    it (see :func:`lsio.io.read_buffer`), the caller then holding its block
    once; otherwise it is a fresh one and the block ``None``. With
    ``align > 1`` (``O_DIRECT``) the read is widened to ``align``-multiples of
    offset and length, into an ``align``-aligned buffer, and the requested
    part is returned as a view.
    """
    lo = start - start % align
    hi = -(-end // align) * align
    if hi - lo > _LARGE_READ:
        # A damaged shard index can ask for exabytes: allocate no more than the file holds.
        hi = max(lo, min(hi, -(-os.fstat(fd).st_size // align) * align))
    block, buf = read_buffer(hi - lo, pool, align)
    done = 0
    try:
        while done < buf.size:
            try:
                n = os.preadv(fd, [buf[done:].data], lo + done)
            except OSError as exc:
                if exc.errno == errno.EINTR:
                    continue
                raise ReadError(str(exc), key=key, byte_range=f"[{start}, {end})") from exc
            done += n
            if n == 0 or (align > 1 and n % align):
                break  # end of file
    except BaseException:
        if block is not None:
            block.release()
        raise
    return buf[start - lo : max(start - lo, min(end - lo, done))], block


# Objects this large start their writeback when written; smaller ones (a chunk
# file each) are left to the kernel: starting it per file measured no faster.
_WRITEBACK_BYTES = 1 << 20


def _create_file(path: str, flags: int) -> int:
    """Open a new file for writing, making its directory when that is missing."""
    try:
        return os.open(path, flags, 0o666)
    except FileNotFoundError:
        os.makedirs(os.path.dirname(path), exist_ok=True)
        return os.open(path, flags, 0o666)


def _write_all(fd: int, view: memoryview) -> None:
    while view:
        view = view[os.write(fd, view) :]


@functools.cache
def _writeback() -> Callable[[int], object] | None:
    """Starts a whole file's writeback without waiting (``sync_file_range``); ``None`` off Linux."""
    try:
        function = ctypes.CDLL(None).sync_file_range
    except (OSError, AttributeError):
        return None
    function.argtypes = [ctypes.c_int, ctypes.c_int64, ctypes.c_int64, ctypes.c_uint]
    function.restype = ctypes.c_int
    write = 2  # SYNC_FILE_RANGE_WRITE: start writing dirty pages, do not wait for them

    def start(fd: int) -> object:
        return function(fd, 0, 0, write)

    return start
