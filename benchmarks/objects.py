"""Reads from an S3 bucket: lsio against zarr-python (obstore) and tensorstore (its s3 driver).

Usage::

    python -m benchmarks.objects [--timesteps 16] [--batches 4] [--repeats 3]
                                 [--readers lsio,zarr-python,tensorstore]

A real S3 server, moto's, runs in this process on 127.0.0.1; the satellite-like
int16 array of :mod:`benchmarks.data` ((T, 11, 512, 512), zstd level 3) is
written to it by lsio, sharded ((4, 11, 512, 512) shards of (1, 11, 64, 64)
inner chunks) and unsharded (the same chunks, an object each). Workloads:
batches of 32 random (4, 11, 128, 128) crops (each reader's batch call, as in
:mod:`benchmarks.run`) and the whole array by (4, 11, 512, 512) blocks.

The figure that carries over to a real object store is the number of GET and
HEAD requests each reader sends per pass (counted at the server: every request costs a
round trip of tens of milliseconds and is billed), with the bytes it asks for.
Times are also reported, but here they mostly measure moto, a Python server
sharing this machine's two cores with the reader; read them as a ranking, not
as what S3 would give.
"""

from __future__ import annotations

import argparse
import logging
import os
import re
import statistics
import threading
import time
from collections.abc import Callable
from typing import Any

import numpy as np

from benchmarks.data import CHANNELS, CHUNK, SHARD, slab
from benchmarks.peers import Reader, Selection, TensorStore, ZarrPython

BUCKET = "lsio-bench"
SIDE = 512
CROP = (4, CHANNELS, 128, 128)
TIMEOUT = 300  # seconds a batch may take before the reader is reported as failed


class _Requests(logging.Handler):
    """Counts the GET and HEAD requests moto's server logs (werkzeug's access log)."""

    # The request line, after the colour codes werkzeug puts around other statuses than 200.
    _READ = re.compile(r'"(?:\x1b\[[0-9;]*m)*(?:GET|HEAD) ')

    def __init__(self) -> None:
        super().__init__(logging.INFO)
        self.gets = 0
        self._lock = threading.Lock()

    def emit(self, record: logging.LogRecord) -> None:
        if self._READ.search(record.getMessage()):
            with self._lock:
                self.gets += 1


def _server() -> tuple[Any, str, _Requests]:
    from moto.server import ThreadedMotoServer

    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    endpoint = f"http://{host}:{port}"
    os.environ.update(
        AWS_ENDPOINT_URL=endpoint,
        AWS_ACCESS_KEY_ID="bench",
        AWS_SECRET_ACCESS_KEY="bench-secret",
        AWS_REGION="us-east-1",
        AWS_ALLOW_HTTP="true",
    )
    import boto3

    boto3.client("s3", endpoint_url=endpoint).create_bucket(Bucket=BUCKET)
    counter = _Requests()
    log = logging.getLogger("werkzeug")
    log.setLevel(logging.INFO)
    log.propagate = False
    log.handlers[:] = [counter]
    return server, endpoint, counter


def _write(timesteps: int) -> dict[str, str]:
    import lsio

    urls = {}
    for layout, shards in (("sharded", SHARD), ("unsharded", None)):
        url = f"s3://{BUCKET}/{layout}.zarr"
        a = lsio.create(
            url,
            shape=(timesteps, CHANNELS, SIDE, SIDE),
            dtype="int16",
            chunks=CHUNK,
            shards=shards,
            compressor="zstd:3",
            dims=("time", "channel", "y", "x"),
        )
        for t in range(0, timesteps, 4):
            a[t : t + 4] = slab(t, t + 4, SIDE)
        urls[layout] = url
    return urls


class LsioS3(Reader):
    name = "lsio"

    def open(self, path: Any) -> Any:
        import lsio

        return lsio.open_array(path)

    def read(self, handle: Any, sel: Selection) -> np.ndarray:
        return handle[sel]  # type: ignore[no-any-return]

    def read_batch(self, handle: Any, sels: Any, out: np.ndarray) -> None:
        handle.read_many(sels, out=out)


class ZarrPythonS3(ZarrPython):
    """zarr-python 3 over ``zarr.storage.ObjectStore`` (obstore, the same client as lsio)."""

    # A bound: one run of this benchmark saw zarr-python wait forever on moto.
    timeout = TIMEOUT

    def open(self, path: Any) -> Any:
        from obstore.store import from_url
        from zarr.storage import ObjectStore

        import zarr

        with zarr.config.set(self._config):
            return zarr.open_array(ObjectStore(from_url(path), read_only=True), mode="r")


class TensorStoreS3(TensorStore):
    def open(self, path: Any) -> Any:
        import tensorstore as ts

        key = path.removeprefix(f"s3://{BUCKET}/")
        spec = {
            "driver": "zarr3",
            "kvstore": {
                "driver": "s3",
                "bucket": BUCKET,
                "path": f"{key}/",
                "endpoint": os.environ["AWS_ENDPOINT_URL"],
                "aws_region": "us-east-1",
            },
            "context": {"cache_pool": {"total_bytes_limit": 0}},
        }
        return ts.open(spec, read=True).result()


READERS: dict[str, Callable[[], Reader]] = {
    "lsio": LsioS3,
    "zarr-python": ZarrPythonS3,
    "zarr-python+zarrs": lambda: ZarrPythonS3("zarrs"),
    "tensorstore": TensorStoreS3,
}


def _workloads(timesteps: int, batches: int) -> dict[str, tuple[Callable[[Reader, Any], Any], int]]:
    """Name -> (run, bytes delivered)."""
    from lsio.ml._sampler import random_crops

    shape = (timesteps, CHANNELS, SIDE, SIDE)
    crops = [random_crops(shape, CROP, 32, seed=300 + b) for b in range(batches)]
    out = np.empty((32, *CROP), np.int16)

    def crop_run(reader: Reader, handle: Any) -> None:
        for batch in crops:
            reader.read_batch(handle, batch, out)

    def whole_run(reader: Reader, handle: Any) -> None:
        for t in range(0, timesteps, 4):
            reader.read(handle, (slice(t, t + 4), slice(None), slice(None), slice(None)))

    return {
        "crops in batches of 32": (crop_run, batches * out.nbytes),
        "whole array by blocks": (whole_run, int(np.prod(shape)) * 2),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--timesteps", type=int, default=16)
    parser.add_argument("--batches", type=int, default=4)
    parser.add_argument("--repeats", type=int, default=3)
    # zarr-python+zarrs is left out by default: with zarr's obstore-backed store it waited
    # forever on its first batch of crops in two runs (zarrs rebuilds the store in Rust).
    parser.add_argument("--readers", default="lsio,zarr-python,tensorstore")
    args = parser.parse_args()
    server, endpoint, counter = _server()
    try:
        urls = _write(args.timesteps)
        names = args.readers.split(",")
        readers = [READERS[n]() for n in names]
        print(f"moto S3 server at {endpoint}; {args.timesteps} timesteps written by lsio")
        print()
        print("| data | workload | reader | GET/HEAD requests | GB/s [min-max] | time / lsio |")
        print("|---|---|---|---|---|---|")
        for layout, url in urls.items():
            for work, (run, nbytes) in _workloads(args.timesteps, args.batches).items():
                rates: dict[str, list[float]] = {}
                gets: dict[str, int] = {}
                for reader in readers:
                    try:
                        handle = reader.open(url)
                        run(reader, handle)  # warm-up: metadata, shard indexes where cached
                        before = counter.gets
                        rates[reader.name] = []
                        for _ in range(args.repeats):
                            t0 = time.perf_counter()
                            run(reader, handle)
                            rates[reader.name].append(nbytes / (time.perf_counter() - t0) / 1e9)
                        gets[reader.name] = (counter.gets - before) // args.repeats
                    except Exception as exc:  # reported in the table, the others go on
                        rates.pop(reader.name, None)
                        print(f"| {layout} | {work} | {reader.name} | failed: {exc!r} | | |")
                base = statistics.median(rates[names[0]]) if names[0] in rates else float("nan")
                for reader in readers:
                    if reader.name not in rates:
                        continue
                    r = rates[reader.name]
                    print(
                        f"| {layout} | {work} | {reader.name} | {gets[reader.name]:,} | "
                        f"{statistics.median(r):.3f} [{min(r):.3f}-{max(r):.3f}] | "
                        f"{base / statistics.median(r):.2f} |",
                        flush=True,
                    )
    finally:
        server.stop()


if __name__ == "__main__":
    main()
