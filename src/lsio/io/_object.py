"""Object-store backend (S3, GCS, Azure, HTTP) through ``obstore``.

Object stores answer in tens of milliseconds but serve many requests at once,
so a batch is read with all its objects in flight together: one asyncio event
loop per store, in a thread of its own, runs ``obstore``'s async calls (which
run in Rust, without the GIL), and every worker thread that calls
:meth:`ObjectStore.read_batch` waits on its own batch. Ranges of one object
closer than ``coalesce`` bytes are fetched by one request (``obstore``'s
``get_ranges``).

Writes are single ``PUT`` requests, which object stores apply atomically: a
reader sees an object whole or not at all, so no temporary names are needed.
"""

from __future__ import annotations

import asyncio
import os
import threading
from collections.abc import Awaitable, Callable, Coroutine, Iterator, Sequence
from datetime import timedelta
from typing import Any, TypeVar
from urllib.parse import urlparse

import numpy as np

from lsio._errors import InvalidArgumentError, ReadError, UnsupportedError, WriteError
from lsio.io._base import group_by_key
from lsio.io._types import (
    ByteRange,
    ReadRequest,
    ReadResult,
    SuffixRange,
    WholeObject,
    describe_range,
)

__all__ = ["OBJECT_SCHEMES", "ObjectStore", "is_object_url"]

# URL schemes obstore's from_url understands.
OBJECT_SCHEMES = ("s3", "s3a", "gs", "az", "adl", "azure", "abfs", "abfss", "http", "https")

_T = TypeVar("_T")


def is_object_url(location: str) -> bool:
    """Whether ``location`` is a URL of an object store (``s3://...``, ``gs://...``, ...)."""
    return "://" in location and urlparse(location).scheme.lower() in OBJECT_SCHEMES


class ObjectStore:
    """Objects under a URL of an object store, read and written through ``obstore``.

    Needs the ``s3`` extra (``pip install "lsio[s3]"``, which installs
    ``obstore``). Credentials, region and endpoint come from ``options`` or, as
    for the cloud's own tools, from the environment (``AWS_ACCESS_KEY_ID``,
    ``AWS_SECRET_ACCESS_KEY``, ``AWS_REGION``, ``AWS_ENDPOINT_URL``,
    ``AWS_ALLOW_HTTP``; ``GOOGLE_*``; ``AZURE_*``). Stores opened by URL (e.g.
    ``lsio.open("s3://bucket/data.zarr")``) and the processes of a Dask
    cluster, which reopen arrays by URL, read the environment.

    Args:
        url: Where the store's root is, e.g. ``s3://bucket/path/data.zarr``.
        coalesce: Ranges of one object fewer than this many bytes apart are
            fetched by one request. Defaults to 1 MiB (a request costs about
            what 1 MiB takes to transfer).
        max_requests: Objects read concurrently by one batch. Defaults to 64.
        options: Passed to ``obstore.store.from_url`` (e.g. ``region``,
            ``endpoint``, ``access_key_id``, ``secret_access_key``,
            ``skip_signature``, ``client_options={"timeout": "10s"}``).
            Defaults that differ from obstore's: ``http://`` URLs allow plain
            HTTP, and ``retry_config`` gives up after 3 retries or 30 s
            (obstore: 10 retries, 3 minutes). To open a node with other
            options, pass the store: ``lsio.open(ObjectStore(url, ...))``.

    Raises:
        lsio.InvalidArgumentError: ``url`` is not an object-store URL, or
            ``obstore`` rejects it or the options.
        lsio.UnsupportedError: ``obstore`` is not installed.
    """

    def __init__(
        self, url: str, *, coalesce: int = 1 << 20, max_requests: int = 64, **options: Any
    ) -> None:
        if not is_object_url(url):
            raise InvalidArgumentError(
                f"{url!r} is not an object-store URL ({', '.join(OBJECT_SCHEMES)})"
            )
        if coalesce < 0 or max_requests < 1:
            raise InvalidArgumentError(
                f"need coalesce >= 0 and max_requests >= 1, got {coalesce}, {max_requests}"
            )
        try:
            import obstore
            from obstore.store import from_url
        except ImportError:
            raise UnsupportedError(f"reading {url} needs obstore: pip install 'lsio[s3]'") from None
        self._url = url.rstrip("/")
        self._options = _with_defaults(url, options)
        self._coalesce = coalesce
        self._max_requests = max_requests
        try:
            self._client = from_url(self._url, **self._options)
        except Exception as exc:  # obstore's configuration errors (bad key, bad URL)
            raise InvalidArgumentError(f"cannot open {url}: {exc}") from None
        self._obstore = obstore
        self._lock = threading.Lock()
        self._loop: asyncio.AbstractEventLoop | None = None

    @property
    def _store(self) -> Any:
        """The obstore client; raises in a process forked after obstore ran (:func:`_check_fork`)."""
        _check_fork(self._url)
        return self._client

    @property
    def url(self) -> str:
        """The store's URL."""
        return self._url

    def client(self) -> Any:
        """The obstore client behind this store, to hand the same connection to another library.

        zarr-python's ``zarr.storage.ObjectStore`` takes it, for instance.
        """
        return self._store

    def __repr__(self) -> str:
        return f"ObjectStore({self._url!r})"

    def sibling(self, url: str) -> ObjectStore:
        """A store rooted at ``url`` with this store's options (e.g. the directory above)."""
        return ObjectStore(
            url, coalesce=self._coalesce, max_requests=self._max_requests, **self._options
        )

    def __getstate__(self) -> dict[str, Any]:
        # The event loop and obstore's client stay behind; a copy makes its own.
        return {
            "url": self._url,
            "options": self._options,
            "coalesce": self._coalesce,
            "max_requests": self._max_requests,
        }

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__init__(  # type: ignore[misc]
            state["url"],
            coalesce=state["coalesce"],
            max_requests=state["max_requests"],
            **state["options"],
        )

    # -- the event loop -------------------------------------------------------------

    def _run(self, coro: Coroutine[Any, Any, _T]) -> _T:
        """Run ``coro`` on the store's loop and wait for it (from any thread but the loop's).

        ``coro`` must not have called obstore yet (a coroutine of an ``async def``).
        """
        _check_fork(self._url)
        with self._lock:
            if self._loop is None or self._loop.is_closed():
                loop = asyncio.new_event_loop()
                thread = threading.Thread(
                    target=_serve, args=(loop,), name=f"lsio-objects {self._url}", daemon=True
                )
                thread.start()
                self._loop = loop
            loop = self._loop
        return asyncio.run_coroutine_threadsafe(coro, loop).result()

    def close(self) -> None:
        """Stop the store's event loop and its thread (a later call starts new ones)."""
        with self._lock:
            loop, self._loop = self._loop, None
        if loop is not None and not loop.is_closed():
            loop.call_soon_threadsafe(loop.stop)

    def __del__(self) -> None:
        # The loop's thread does not refer to the store: a dropped store ends it here.
        if getattr(self, "_loop", None) is not None:
            self.close()

    async def _bounded(self, jobs: Sequence[Awaitable[_T]]) -> list[_T]:
        gate = asyncio.Semaphore(self._max_requests)

        async def one(job: Awaitable[_T]) -> _T:
            async with gate:
                return await job

        return list(await asyncio.gather(*(one(j) for j in jobs)))

    # -- reading --------------------------------------------------------------------

    def read_batch(self, requests: Sequence[ReadRequest]) -> Iterator[ReadResult]:
        """Read every request, all objects concurrently; a missing object gives ``None``.

        Raises:
            lsio.ReadError: Any other failure, naming the key and a range of it.
        """
        groups = group_by_key(requests)
        jobs = [self._read_object(key, reqs) for key, reqs in groups.items()]
        for results in self._run(self._bounded(jobs)):
            yield from results

    async def _read_object(self, key: str, reqs: list[ReadRequest]) -> list[ReadResult]:
        try:
            return await self._fetch(key, reqs)
        except FileNotFoundError:
            return [ReadResult(r.tag, None) for r in reqs]
        except ReadError:
            raise
        except Exception as exc:
            raise ReadError(
                _failed(exc), key=key, byte_range=describe_range(reqs[0].range)
            ) from exc

    async def _fetch(self, key: str, reqs: list[ReadRequest]) -> list[ReadResult]:
        ob = self._obstore
        if all(isinstance(r.range, WholeObject) for r in reqs):
            data = memoryview(await (await ob.get_async(self._store, key)).bytes_async())
            return [ReadResult(r.tag, data) for r in reqs]
        if len(reqs) == 1 and isinstance(reqs[0].range, SuffixRange) and reqs[0].range.length:
            # A shard index: one request, no size needed. An object shorter than the
            # suffix comes back whole; an empty one makes some servers answer with an
            # error, which the general path below handles.
            try:
                got = await ob.get_async(
                    self._store, key, options={"range": {"suffix": reqs[0].range.length}}
                )
                return [ReadResult(reqs[0].tag, memoryview(await got.bytes_async()))]
            except FileNotFoundError:
                raise
            except Exception:
                pass
        if all(isinstance(r.range, ByteRange) for r in reqs):
            try:
                return await self._ranges(key, reqs, None)
            except FileNotFoundError:
                raise
            except Exception:  # a range past the end: retried below, clipped to the size
                pass
        size = int((await ob.head_async(self._store, key))["size"])
        return await self._ranges(key, reqs, size)

    async def _ranges(
        self, key: str, reqs: list[ReadRequest], size: int | None
    ) -> list[ReadResult]:
        """The requests' ranges (clipped to ``size`` when known) with one ``get_ranges``."""
        bounds = [_bounds(r, size) for r in reqs]
        wanted = [i for i, (s, e) in enumerate(bounds) if e > s]
        got: list[Any] = []
        if wanted:
            got = await self._obstore.get_ranges_async(
                self._store,
                key,
                starts=[bounds[i][0] for i in wanted],
                ends=[bounds[i][1] for i in wanted],
                coalesce=self._coalesce,
            )
        out = [ReadResult(r.tag, memoryview(b"")) for r in reqs]
        for i, data in zip(wanted, got, strict=True):
            out[i] = ReadResult(reqs[i].tag, memoryview(data))
        return out

    def get(self, key: str) -> bytes | None:
        """Whole object at ``key``, or ``None``."""
        (result,) = self.read_batch([ReadRequest(0, key, WholeObject())])
        return None if result.data is None else bytes(result.data)

    def size(self, key: str) -> int | None:
        """Size of the object at ``key``, or ``None``."""
        try:
            meta = self._run(_invoke(self._obstore.head_async, self._store, key))
        except FileNotFoundError:
            return None
        except Exception as exc:
            raise ReadError(_failed(exc), key=key, byte_range="(size)") from exc
        return int(meta["size"])

    def list_dir(self, prefix: str) -> tuple[list[str], list[str]]:
        """Objects and sub-prefixes directly under ``prefix``."""
        base = _dir(prefix)
        try:
            found = self._run(_invoke(self._obstore.list_with_delimiter_async, self._store, base))
        except FileNotFoundError:
            return [], []
        except Exception as exc:
            raise ReadError(_failed(exc), key=prefix, byte_range="(listing)") from exc
        skip = len(base or "")
        files = sorted(o["path"][skip:] for o in found["objects"])
        dirs = sorted(p[skip:].rstrip("/") for p in found["common_prefixes"])
        return files, dirs

    # -- writing --------------------------------------------------------------------

    def put(self, key: str, data: bytes | memoryview) -> None:
        """Store ``data`` under ``key`` with one request (atomic: whole or not at all)."""
        self._run(self._put(key, data))

    async def _put(self, key: str, data: bytes | memoryview) -> None:
        try:
            await self._obstore.put_async(self._store, key, data, use_multipart=False)
        except Exception as exc:
            raise WriteError(_failed(exc), key=key) from exc

    def put_many(
        self, keys: Sequence[str], data: np.ndarray, offsets: Sequence[int] | np.ndarray
    ) -> None:
        """Store ``data[offsets[i]:offsets[i + 1]]`` under ``keys[i]``, all concurrently.

        Each object appears whole or not at all; after an error (raised naming
        its key) any of the others may have been written.
        """
        view = np.ascontiguousarray(data, dtype=np.uint8).data
        bounds = [int(o) for o in offsets]
        jobs = [self._put(k, view[bounds[i] : bounds[i + 1]]) for i, k in enumerate(keys)]
        self._run(self._bounded(jobs))

    def delete(self, key: str) -> None:
        """Remove the object at ``key`` if there is one."""
        self._delete([key])

    def _delete(self, keys: list[str]) -> None:
        try:
            self._run(_invoke(self._obstore.delete_async, self._store, keys))
        except FileNotFoundError:
            pass
        except Exception as exc:
            raise WriteError(f"deleting: {_failed(exc)}", key=keys[0]) from exc

    def list_tree(self, prefix: str) -> dict[str, int]:
        """Every object below ``prefix`` (keys relative to it) with its size.

        One paginated listing: 1,000 keys per request on S3.
        """
        base = _dir(prefix)
        skip = len(base or "")
        out: dict[str, int] = {}
        try:
            for batch in self._obstore.list(self._store, base, chunk_size=1000):
                out.update((o["path"][skip:], int(o["size"])) for o in batch)
        except FileNotFoundError:
            return {}
        except Exception as exc:
            raise ReadError(_failed(exc), key=prefix, byte_range="(listing)") from exc
        return out

    def delete_prefix(self, prefix: str) -> None:
        """Remove every object under ``prefix`` (``""``: the whole store)."""
        base = prefix.strip("/")
        keys = [f"{base}/{k}" if base else k for k in self.list_tree(prefix)]
        if base:
            keys.append(base)  # an object named like the prefix itself
        for i in range(0, len(keys), 1000):  # S3 deletes at most 1000 per request
            self._delete(keys[i : i + 1000])


def _dir(prefix: str) -> str | None:
    """``prefix`` as obstore lists it: ``"a/b/"``, or ``None`` for the store's root."""
    stripped = prefix.strip("/")
    return f"{stripped}/" if stripped else None


def _failed(exc: BaseException) -> str:
    """What obstore (or the network) said, for a ReadError's or WriteError's message.

    Its first line: obstore goes on with a debug dump of the request (dozens of lines).
    """
    lines = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {lines[0] if lines else ''}"


# Retries of a failing request stop after this long: obstore's own default, 3
# minutes of 10 retries, held `lsio.open` of an endpoint that accepts connections
# but never answers for ~3 minutes.
RETRY_SECONDS = 30


def _with_defaults(url: str, options: dict[str, Any]) -> dict[str, Any]:
    """``options`` for ``from_url``, with lsio's defaults where they say nothing.

    An ``http://`` URL allows plain HTTP (obstore refuses it unless told), and
    retries give up after :data:`RETRY_SECONDS` (3 retries at most).
    """
    out = dict(options)
    if url.startswith("http://"):
        client = dict(out.get("client_options") or {})
        client.setdefault("allow_http", True)
        out["client_options"] = client
    out.setdefault(
        "retry_config", {"max_retries": 3, "retry_timeout": timedelta(seconds=RETRY_SECONDS)}
    )
    return out


def _bounds(req: ReadRequest, size: int | None) -> tuple[int, int]:
    r = req.range
    if isinstance(r, ByteRange):
        return (r.start, r.end) if size is None else (min(r.start, size), min(r.end, size))
    assert size is not None  # suffixes and whole objects are resolved with the size
    if isinstance(r, SuffixRange):
        return max(size - r.length, 0), size
    return 0, size


# The process in which lsio first ran obstore. obstore's Rust runtime is process-wide
# and its threads do not survive fork(): a forked child that calls it waits forever.
_RUNTIME_PID: list[int] = []


def _check_fork(url: str) -> None:
    """Refuse to call obstore in a child forked after obstore ran, instead of hanging."""
    pid = os.getpid()
    if not _RUNTIME_PID:
        _RUNTIME_PID.append(pid)
    elif _RUNTIME_PID[0] != pid:
        raise UnsupportedError(
            f"{url}: this process was forked after its parent read an object store, and "
            "obstore cannot run in such a child (its threads do not survive fork). Start "
            "worker processes with 'spawn' or 'forkserver' (e.g. torch DataLoader("
            "multiprocessing_context='spawn')), or open object stores only after forking."
        )


def _serve(loop: asyncio.AbstractEventLoop) -> None:
    """Run ``loop`` until it is stopped, then close it (in its own thread)."""
    try:
        loop.run_forever()
    finally:
        loop.close()


async def _invoke(fn: Callable[..., Awaitable[_T]], *args: Any) -> _T:
    # obstore's async functions bind to the loop running when they are called: call
    # them on the store's loop, not in the thread that asks.
    return await fn(*args)
