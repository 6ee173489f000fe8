"""One suite every byte-range backend passes."""

from __future__ import annotations

import contextlib
import gc
import os
import threading
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from lsio import ReadError, WriteError
from lsio.io import (
    NOT_READ,
    AutoStore,
    BorrowedPages,
    ByteRange,
    IOConfig,
    LocalStore,
    MemoryStore,
    MmapStore,
    ObjectStore,
    ReadRequest,
    ResidentMapper,
    Store,
    SuffixRange,
    UnreadablePagesError,
    UringStore,
    WholeObject,
    c_strings,
    load_file_batch_reader,
    local_store,
    mapping_addresses,
    populate_spans,
    read_whole_file,
    release_spans,
    uring_available,
)
from tests.mapped import is_mapped, mapped_rss

OBJECTS = {
    "a": bytes(range(256)) * 4,
    "dir/b": b"hello world",
    "dir/sub/c": b"",
}


class BackendSuite:
    """Subclasses provide ``make_store`` holding ``OBJECTS``."""

    def make_store(self, tmp_path: Path) -> Store:
        raise NotImplementedError

    @pytest.fixture
    def store(self, tmp_path: Path) -> Store:
        return self.make_store(tmp_path)

    def test_is_a_store(self, store: Store) -> None:
        assert isinstance(store, Store)

    def test_ranges_suffixes_and_whole_objects(self, store: Store) -> None:
        reqs = [
            ReadRequest(0, "a", ByteRange(10, 20)),
            ReadRequest(1, "a", SuffixRange(5)),
            ReadRequest(2, "dir/b", WholeObject()),
            ReadRequest(3, "a", ByteRange(1000, 1100)),  # runs past the end: short
            ReadRequest(4, "missing", ByteRange(0, 4)),
            ReadRequest(5, "dir/sub/c", WholeObject()),
            ReadRequest(6, "a", ByteRange(3, 3)),
            ReadRequest(7, "dir/b", SuffixRange(100)),
        ]
        got = {r.tag: (None if r.data is None else bytes(r.data)) for r in store.read_batch(reqs)}
        a = OBJECTS["a"]
        assert got == {
            0: a[10:20],
            1: a[-5:],
            2: b"hello world",
            3: a[1000:],
            4: None,
            5: b"",
            6: b"",
            7: b"hello world",
        }

    def test_many_whole_objects_in_one_batch(self, store: Store) -> None:
        # Sizes from empty to well past a first guess of the buffer, some objects missing.
        rng = np.random.default_rng(3)
        objects = {
            f"w/{i}": rng.integers(0, 256, int(rng.choice([0, 100, 70_000, 300_000])), np.uint8)
            for i in range(40)
        }
        for key, data in objects.items():
            if key not in ("w/5", "w/17"):
                store.put(key, data.tobytes())  # type: ignore[attr-defined]
        reqs = [ReadRequest(i, key, WholeObject()) for i, key in enumerate(objects)]
        got = {r.tag: r.data for r in store.read_batch(reqs)}
        assert sorted(got) == list(range(40))
        for i, (key, data) in enumerate(objects.items()):
            if key in ("w/5", "w/17"):
                assert got[i] is None
            else:
                assert bytes(got[i]) == data.tobytes()  # type: ignore[arg-type]

    def test_many_overlapping_ranges_of_one_object(self, store: Store) -> None:
        reqs = [ReadRequest(i, "a", ByteRange(i * 7, i * 7 + 50)) for i in range(100)]
        for r in store.read_batch(reqs):
            assert r.data is not None
            assert bytes(r.data) == OBJECTS["a"][r.tag * 7 : r.tag * 7 + 50]

    def test_get_size_and_listing(self, store: Store) -> None:
        assert store.get("dir/b") == b"hello world"
        assert store.get("nope") is None
        assert store.size("a") == 1024
        assert store.size("nope") is None
        assert store.list_dir("") == (["a"], ["dir"])
        assert store.list_dir("dir") == (["b"], ["sub"])
        assert store.list_dir("nope") == ([], [])


class FileBackendSuite(BackendSuite):
    """Failures only a file system produces."""

    def test_failed_read_names_key_and_range(self, store: Store) -> None:
        # Opening a directory works, reading it fails (EISDIR).
        with pytest.raises(ReadError, match=r"reading 'dir' \[0, 4\)") as info:
            list(
                store.read_batch(
                    [ReadRequest(0, "a", ByteRange(0, 4)), ReadRequest(1, "dir", ByteRange(0, 4))]
                )
            )
        assert isinstance(info.value, OSError)


class TestMemoryStore(BackendSuite):
    def make_store(self, tmp_path: Path) -> Store:
        return MemoryStore(OBJECTS)


class TestObjectStore(BackendSuite):
    """obstore against a real S3 server (moto's, on 127.0.0.1)."""

    @pytest.fixture
    def store(self, s3_bucket: str) -> Store:
        store = ObjectStore(f"{s3_bucket}/root")
        for key, data in OBJECTS.items():
            store.put(key, data)
        return store

    def test_failed_read_names_key_and_range(self) -> None:
        # Nothing listens on port 9: every request fails to connect (no retries).
        store = ObjectStore(
            "s3://nowhere/x",
            endpoint="http://127.0.0.1:9",
            region="us-east-1",
            access_key_id="k",
            secret_access_key="s",
            client_options={"allow_http": True},
            retry_config={"max_retries": 0},
        )
        with pytest.raises(ReadError, match=r"reading 'a' \[0, 4\)") as info:
            list(store.read_batch([ReadRequest(0, "a", ByteRange(0, 4))]))
        assert isinstance(info.value, OSError)
        with pytest.raises(WriteError, match="writing 'a'"):
            store.put("a", b"x")

    def test_put_many_and_delete_prefix(self, store: Store) -> None:
        assert isinstance(store, ObjectStore)
        blobs = [b"y" * 70_000, b"z", b""]
        data = np.frombuffer(b"".join(blobs), np.uint8)
        store.put_many(["new/y", "new/deep/z", "new/e"], data, np.cumsum([0, *map(len, blobs)]))
        assert [store.get(k) for k in ("new/y", "new/deep/z", "new/e")] == blobs
        assert store.list_dir("new") == (["e", "y"], ["deep"])
        assert store.list_tree("new") == {"y": 70_000, "deep/z": 1, "e": 0}
        assert store.list_tree("") == {
            **{k: len(v) for k, v in OBJECTS.items()},
            **{f"new/{k}": n for k, n in store.list_tree("new").items()},
        }
        store.delete_prefix("new")
        assert store.list_dir("new") == ([], [])
        assert store.list_tree("new") == {}
        assert store.get("a") == OBJECTS["a"]  # outside the prefix: kept
        store.delete("a")
        store.delete("a")  # nothing there: no error
        assert store.get("a") is None

    def test_copies_are_independent_stores(self, store: Store) -> None:
        import pickle

        copy = pickle.loads(pickle.dumps(store))
        assert copy.url == store.url
        assert copy.get("dir/b") == b"hello world"

    def test_a_dropped_store_stops_its_thread(self, s3_bucket: str) -> None:
        import gc
        import threading
        import time

        def threads() -> set[threading.Thread]:
            return {t for t in threading.enumerate() if t.name.startswith("lsio-objects")}

        # By identity: other tests' stores may stop their threads meanwhile.
        before = threads()
        store = ObjectStore(f"{s3_bucket}/other")
        store.put("k", b"v")
        (mine,) = threads() - before  # the store started one thread
        del store
        gc.collect()
        deadline = time.monotonic() + 5
        while mine.is_alive() and time.monotonic() < deadline:
            time.sleep(0.01)
        assert not mine.is_alive()

    def test_urls_and_settings_are_checked(self) -> None:
        from lsio import InvalidArgumentError

        with pytest.raises(InvalidArgumentError, match="not an object-store URL"):
            ObjectStore("/tmp/x")
        with pytest.raises(InvalidArgumentError, match="max_requests >= 1"):
            ObjectStore("s3://bucket/x", max_requests=0)
        with pytest.raises(InvalidArgumentError, match="cannot open s3://bucket/x"):
            ObjectStore("s3://bucket/x", no_such_option=1)


class TestLocalStore(FileBackendSuite):
    def make_store(self, tmp_path: Path) -> Store:
        for key, data in OBJECTS.items():
            path = tmp_path.joinpath(*key.split("/"))
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_bytes(data)
        return LocalStore(tmp_path)


class TestLocalStoreDirect(TestLocalStore):
    """O_DIRECT (or the page cache where the file system refuses it): same results."""

    def make_store(self, tmp_path: Path) -> Store:
        store = super().make_store(tmp_path)
        assert isinstance(store, LocalStore)
        return LocalStore(store.root, IOConfig(direct=True, max_gap=100))


class TestLocalStoreNoCoalescing(TestLocalStore):
    def make_store(self, tmp_path: Path) -> Store:
        store = super().make_store(tmp_path)
        assert isinstance(store, LocalStore)
        return LocalStore(store.root, IOConfig(max_gap=0, max_read=1))


@pytest.mark.parametrize("kind", ["local", "memory"])
def test_put_many_writes_each_object_whole(tmp_path: Path, kind: str) -> None:
    store: LocalStore | MemoryStore = LocalStore(tmp_path) if kind == "local" else MemoryStore()
    store.put("old/x", b"previous")
    keys = ["old/x", "new/deep/y", "new/deep/z", "top", "empty"]
    blobs = [b"replaced", b"y" * 70_000, b"z", b"t" * 3, b""]
    data = np.frombuffer(b"".join(blobs), np.uint8)
    offsets = np.cumsum([0, *map(len, blobs)])
    store.put_many(keys, data, offsets)
    assert [store.get(k) for k in keys] == blobs
    if kind == "local":
        assert not [p for p in tmp_path.rglob("*") if "lsio-tmp" in p.name]


def test_put_many_names_the_object_it_cannot_write(tmp_path: Path) -> None:
    store = LocalStore(tmp_path)
    store.put("blocker", b"a file where a directory should be")
    data = np.frombuffer(b"aabbcc", np.uint8)
    with pytest.raises(WriteError, match="blocker/b") as info:
        store.put_many(["first", "blocker/b", "third"], data, [0, 2, 4, 6])
    assert isinstance(info.value, OSError)
    assert store.get("first") == b"aa"  # objects before the failing one are written
    assert store.get("third") is None
    assert not [p for p in tmp_path.rglob("*") if "lsio-tmp" in p.name]


def test_large_put_starts_writeback_and_reads_back(tmp_path: Path) -> None:
    import lsio.io._local as local

    blob = np.random.default_rng(0).integers(0, 256, 3 << 20, dtype=np.uint8).tobytes()
    assert len(blob) >= local._WRITEBACK_BYTES
    if os.uname().sysname == "Linux":
        assert local._writeback() is not None  # the path under test is taken
    store = LocalStore(tmp_path)
    store.put("shard/0", blob)
    store.put("shard/0", memoryview(blob)[1:])  # replaced whole, from a view
    assert store.get("shard/0") == blob[1:]
    assert not [p for p in tmp_path.rglob("*") if "lsio-tmp" in p.name]


def test_local_store_url_forms(tmp_path: Path) -> None:
    assert LocalStore(tmp_path.as_uri()).root == tmp_path
    assert LocalStore(tmp_path).url == tmp_path.as_uri()
    with pytest.raises(ValueError, match="unsupported URL scheme 's3'"):
        LocalStore("s3://bucket/key")


@pytest.mark.skipif(not uring_available(), reason="io_uring is refused on this machine")
class TestUringStore(TestLocalStore):
    def make_store(self, tmp_path: Path) -> Store:
        store = super().make_store(tmp_path)
        assert isinstance(store, LocalStore)
        return UringStore(store.root, IOConfig(max_gap=16, max_read=64))

    def test_many_files_and_ranges_in_one_batch(self, tmp_path: Path) -> None:
        rng = np.random.default_rng(0)
        blobs = {
            f"f{i}": rng.integers(0, 256, size=int(rng.integers(0, 5000)), dtype=np.uint8).tobytes()
            for i in range(40)
        }
        for key, data in blobs.items():
            (tmp_path / key).write_bytes(data)
        store = UringStore(
            tmp_path, IOConfig(max_gap=0, max_read=300), entries=8
        )  # forces many ring turns
        reqs = []
        for i, (key, data) in enumerate(blobs.items()):
            for j in range(10):
                s = int(rng.integers(0, len(data) + 1))
                e = int(rng.integers(s, len(data) + 200))
                reqs.append((ReadRequest(i * 10 + j, key, ByteRange(s, e)), data[s:e]))
        got = {
            r.tag: bytes(r.data)
            for r in store.read_batch([q for q, _ in reqs])
            if r.data is not None
        }
        assert got == {q.tag: want for q, want in reqs}

    def test_reads_longer_than_one_request_may_ask(
        self, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        import lsio.io._uring as uring

        # As a read of 4 GiB or more is cut (an SQE's length has 32 bits), here at 4 KiB.
        monkeypatch.setattr(uring, "_MAX_READ", 4096)
        data = np.random.default_rng(1).integers(0, 256, 100_000, dtype=np.uint8).tobytes()
        (tmp_path / "big").write_bytes(data)
        store = UringStore(tmp_path, IOConfig(max_read=1 << 20))
        got = {
            r.tag: bytes(r.data)
            for r in store.read_batch(
                [ReadRequest(0, "big", ByteRange(10, 99_990)), ReadRequest(1, "big", WholeObject())]
            )
            if r.data is not None
        }
        assert got == {0: data[10:99_990], 1: data}

    def test_rings_close_with_their_store(self, tmp_path: Path) -> None:
        def rings() -> int:
            names = []
            for fd in os.listdir("/proc/self/fd"):
                with contextlib.suppress(OSError):
                    names.append(os.readlink(f"/proc/self/fd/{fd}"))
            return sum("io_uring" in name for name in names)

        (tmp_path / "a").write_bytes(b"abc")
        before = rings()
        for _ in range(5):
            store = UringStore(tmp_path)
            threads = [
                threading.Thread(
                    target=lambda s=store: list(s.read_batch([ReadRequest(0, "a", WholeObject())]))
                )
                for _ in range(3)
            ]
            for t in threads:
                t.start()
            for t in threads:
                t.join()
            assert rings() >= before + 3  # one ring per thread that read
            del store, threads
            gc.collect()
            assert rings() == before


def test_mappings_hold_no_descriptors_and_go_with_their_store(tmp_path: Path) -> None:
    for i in range(200):
        (tmp_path / f"f{i}").write_bytes(bytes([i]) * 40_000)
    fds_before = len(os.listdir("/proc/self/fd"))
    store = MmapStore(tmp_path)
    got = [
        bytes(r.data)
        for r in store.read_batch(
            [ReadRequest(i, f"f{i}", ByteRange(100, 110)) for i in range(200)]
        )
        if r.data is not None
    ]
    assert got == [bytes([i]) * 10 for i in range(200)]
    assert len(os.listdir("/proc/self/fd")) <= fds_before + 2  # none per mapping
    mapped = Path("/proc/self/maps").read_text()
    assert str(tmp_path / "f0") in mapped
    assert str(tmp_path / "f199") in mapped
    del store, got
    gc.collect()
    assert str(tmp_path / "f0") not in Path("/proc/self/maps").read_text()  # unmapped


def test_backend_choice(tmp_path: Path) -> None:
    assert type(local_store(tmp_path)) is AutoStore
    assert type(local_store(tmp_path, IOConfig(backend="preadv"))) is LocalStore
    assert type(local_store(tmp_path, IOConfig(direct=True))) is LocalStore
    chosen = local_store(tmp_path, IOConfig(backend="io_uring"))
    assert isinstance(chosen, UringStore if uring_available() else LocalStore)
    with pytest.raises(ValueError, match="unknown IO backend 'aio'"):
        IOConfig(backend="aio")


class TestMmapStore(TestLocalStore):
    def make_store(self, tmp_path: Path) -> Store:
        store = super().make_store(tmp_path)
        assert isinstance(store, LocalStore)
        return MmapStore(store.root, IOConfig(backend="mmap"), max_maps=2)

    def test_a_replaced_file_is_mapped_again(self, tmp_path: Path) -> None:
        store = MmapStore(tmp_path, IOConfig(backend="mmap"))
        store.put("a", b"old bytes")
        old = next(iter(store.read_batch([ReadRequest(0, "a", WholeObject())]))).data
        store.put("a", b"new")
        new = next(iter(store.read_batch([ReadRequest(0, "a", WholeObject())]))).data
        assert old is not None
        assert new is not None
        assert bytes(old) == b"old bytes"  # a view handed out earlier stays valid
        assert bytes(new) == b"new"
        assert isinstance(local_store(tmp_path, IOConfig(backend="mmap")), MmapStore)


class TestAutoStore(TestLocalStore):
    def make_store(self, tmp_path: Path) -> Store:
        store = super().make_store(tmp_path)
        assert isinstance(store, LocalStore)
        return AutoStore(store.root, IOConfig())

    def test_small_cached_ranges_are_mapped_the_rest_read(self, tmp_path: Path) -> None:
        kib = 1024
        store = AutoStore(tmp_path, IOConfig(), map_below=100 * kib)
        data = bytes(range(256)) * 800
        store.put("shard", data)
        (tmp_path / "shard").read_bytes()  # in the page cache now

        def read(*reqs: ReadRequest) -> dict[int, Any]:
            return {r.tag: r.data for r in store.read_batch(list(reqs))}

        # A few chunk-sized parts of a big file: views of its mapping.
        small = read(
            ReadRequest(0, "shard", ByteRange(10, 40 * kib)),
            ReadRequest(1, "shard", SuffixRange(20 * kib)),
        )
        assert all(is_mapped(v) for v in small.values())
        assert bytes(small[0]) == data[10 : 40 * kib]
        assert bytes(small[1]) == data[-20 * kib :]
        # Large spans, whole files, and many tiny ranges: read.
        large = read(
            ReadRequest(0, "shard", ByteRange(0, 60 * kib)),
            ReadRequest(1, "shard", ByteRange(70 * kib, 120 * kib)),
        )
        whole = read(ReadRequest(0, "shard", WholeObject()))
        tiny = read(*(ReadRequest(i, "shard", ByteRange(i * 100, i * 100 + 50)) for i in range(20)))
        assert not any(is_mapped(v) for v in [*large.values(), *whole.values(), *tiny.values()])
        assert bytes(large[1]) == data[70 * kib : 120 * kib]
        assert bytes(whole[0]) == data
        assert bytes(tiny[7]) == data[700:750]
        store.put("shard", bytes(64 * kib))  # replaced: mapped again, never stale
        assert bytes(read(ReadRequest(0, "shard", ByteRange(0, 32 * kib)))[0]) == bytes(32 * kib)


def _evict(path: Path) -> None:
    """Drop a file's pages from the page cache (written back first, so the kernel may)."""
    with open(path, "rb+") as f:
        os.fsync(f.fileno())
        os.posix_fadvise(f.fileno(), 0, 0, os.POSIX_FADV_DONTNEED)


class TestResidentMappings:
    """``resident_mappings``: the objects a compiled reader may read in place."""

    KIB = 1024

    def _store(self, tmp_path: Path) -> tuple[AutoStore, dict[str, bytes]]:
        store = AutoStore(tmp_path, IOConfig(), map_below=200 * self.KIB)
        objects = {"s/0": bytes(range(256)) * 400, "s/1": bytes(reversed(range(256))) * 300}
        for key, data in objects.items():
            store.put(key, data)
            (tmp_path / key).read_bytes()  # in the page cache now
        return store, objects

    def test_cached_chunk_sized_spans_are_mapped(self, tmp_path: Path) -> None:
        store, objects = self._store(tmp_path)
        keys = ["s/0", "s/gone", "s/1"]  # no span reads the missing one
        spans = np.array(
            [[0, 0, 20 * self.KIB], [2, 5, 40 * self.KIB], [0, 50 * self.KIB, 90 * self.KIB]]
        )
        resident = store.resident_mappings(keys, spans)
        assert resident is not None
        assert not resident.release  # crop-sized spans keep their pages mapped
        first, none, last = resident.maps
        assert none is None
        assert first is not None
        assert last is not None
        assert bytes(first) == objects["s/0"]
        assert bytes(last) == objects["s/1"]
        assert is_mapped(first)
        assert is_mapped(last)
        # A span past the end of its object is still mapped; the reader sees it short.
        past = np.array([[0, 90 * self.KIB, 120 * self.KIB]])
        got = store.resident_mappings(["s/0"], past)
        assert got is not None
        assert got.maps[0] is not None
        assert got.maps[0].size == len(objects["s/0"])

    def test_other_spans_are_left_to_read_batch(self, tmp_path: Path) -> None:
        store, _ = self._store(tmp_path)
        kib = self.KIB
        tiny = np.array([[0, i * 100, i * 100 + 50] for i in range(20)])
        missing = np.array([[0, 0, 20 * kib], [1, 0, 20 * kib]])
        assert store.resident_mappings(["s/0"], tiny) is None  # small: a copy is cheaper
        assert store.resident_mappings(["s/0", "s/gone"], missing) is None
        assert store.resident_mappings(["s/0"], np.zeros((0, 3), dtype=np.int64)) is None
        (tmp_path / "s" / "dir").mkdir()
        assert store.resident_mappings(["s/dir"], np.array([[0, 0, 20 * kib]])) is None

    def test_pages_not_in_the_page_cache_are_read(self, tmp_path: Path) -> None:
        store, objects = self._store(tmp_path)
        spans = np.array([[0, 0, 20 * self.KIB], [0, 60 * self.KIB, 80 * self.KIB]])
        assert store.resident_mappings(["s/0"], spans) is not None
        _evict(tmp_path / "s" / "0")
        assert store.resident_mappings(["s/0"], spans) is None
        # Reading them brings them back.
        (tmp_path / "s" / "0").read_bytes()
        resident = store.resident_mappings(["s/0"], spans)
        assert resident is not None
        assert resident.maps[0] is not None
        assert bytes(resident.maps[0]) == objects["s/0"]

    def test_large_spans_are_mapped_and_handed_back(self, tmp_path: Path) -> None:
        store = AutoStore(tmp_path, IOConfig())
        data = np.random.default_rng(0).integers(0, 256, 8 << 20, dtype=np.uint8).tobytes()
        store.put("big", data)
        (tmp_path / "big").read_bytes()
        spans = np.array([[0, 0, 4 << 20], [0, 4 << 20, 8 << 20]])
        resident = store.resident_mappings(["big"], spans)
        assert resident is not None
        assert resident.release  # whole-array blocks: handed back once read
        mapping = resident.maps[0]
        assert mapping is not None
        bases, sizes = mapping_addresses(resident.maps)
        populate_spans(bases, sizes, spans)
        assert mapped_rss(mapping) >= 8 << 20
        release_spans(bases, sizes, spans)
        assert mapped_rss(mapping) == 0  # out of this process's memory...
        assert bytes(mapping) == data  # ...but still readable, from the page cache

    def test_large_spans_with_a_few_pages_lost_are_still_mapped(self, tmp_path: Path) -> None:
        store = AutoStore(tmp_path, IOConfig())
        data = np.random.default_rng(1).integers(0, 256, 8 << 20, dtype=np.uint8).tobytes()
        store.put("big", data)
        path = tmp_path / "big"
        spans = np.array([[0, 0, 4 << 20], [0, 4 << 20, 8 << 20]])
        _evict(path)
        path.read_bytes()
        with open(path, "rb") as f:  # 64 KiB of 8 MiB leave the page cache
            os.posix_fadvise(f.fileno(), 1 << 20, 64 << 10, os.POSIX_FADV_DONTNEED)
        resident = store.resident_mappings(["big"], spans)
        assert resident is not None
        assert resident.release
        bases, sizes = mapping_addresses(resident.maps)
        populate_spans(bases, sizes, spans)  # reads the lost pages back
        assert resident.maps[0] is not None
        assert bytes(resident.maps[0]) == data
        release_spans(bases, sizes, spans)
        # Mostly out of the page cache: one large read is cheaper than faulting it in.
        _evict(path)
        with open(path, "rb") as f:
            f.read(1 << 20)
        assert store.resident_mappings(["big"], spans) is None
        # Crop-sized spans still need every page.
        small = np.array(
            [[0, (6 << 20) + i * (32 << 10), (6 << 20) + (i + 1) * (32 << 10)] for i in range(4)]
        )
        assert store.resident_mappings(["big"], small) is None

    def test_a_replaced_object_is_mapped_again(self, tmp_path: Path) -> None:
        store, _ = self._store(tmp_path)
        spans = np.array([[0, 0, 20 * self.KIB]])
        old = store.resident_mappings(["s/0"], spans)
        store.put("s/0", bytes(64 * self.KIB))
        new = store.resident_mappings(["s/0"], spans)
        assert old is not None
        assert new is not None
        assert new.maps[0] is not None
        assert bytes(new.maps[0]) == bytes(64 * self.KIB)

    def test_the_mmap_backend_maps_every_object(self, tmp_path: Path) -> None:
        store = MmapStore(tmp_path, IOConfig(backend="mmap"))
        store.put("a", b"0123456789")
        resident = store.resident_mappings(["a"], np.array([[0, 2, 4]]))  # tiny, still a view
        assert resident is not None
        assert not resident.release
        assert resident.maps[0] is not None
        assert bytes(resident.maps[0]) == b"0123456789"
        assert store.resident_mappings(["gone"], np.array([[0, 0, 4]])) is None
        # Stores without mappings do not offer them (readers then use read_batch).
        assert not hasattr(LocalStore(tmp_path), "resident_mappings")
        assert not isinstance(MemoryStore(), ResidentMapper)
        assert isinstance(store, ResidentMapper)


@pytest.mark.parametrize("backend", ["preadv", "auto"])
def test_a_batch_of_whole_objects_names_the_one_it_cannot_read(
    tmp_path: Path, backend: str
) -> None:
    store = local_store(tmp_path, IOConfig(backend=backend))
    for i in range(5):
        store.put(f"k/{i}", bytes([i]) * 1000)
    (tmp_path / "k" / "2").unlink()
    (tmp_path / "k" / "2").mkdir()  # a directory where a chunk file should be
    reqs = [ReadRequest(i, f"k/{i}", WholeObject()) for i in range(5)]
    with pytest.raises(ReadError, match="k/2"):
        list(store.read_batch(reqs))


@pytest.mark.parametrize("backend", ["preadv", "auto"])
def test_whole_objects_into_one_buffer(tmp_path: Path, backend: str) -> None:
    # Sizes from empty to well past the first guess (the buffer grows mid-batch), some missing.
    store = local_store(tmp_path, IOConfig(backend=backend))
    rng = np.random.default_rng(5)
    keys = [f"w/{i}" for i in range(30)]
    data = {
        k: rng.integers(0, 256, int(rng.choice([0, 10, 90_000, 400_000])), np.uint8) for k in keys
    }
    for k in keys:
        if k not in ("w/0", "w/7", "w/29"):
            store.put(k, data[k].tobytes())
    objects = store.read_whole_objects(keys)
    assert objects is not None
    for i, k in enumerate(keys):
        if k in ("w/0", "w/7", "w/29"):
            assert objects.sizes[i] == NOT_READ
        else:
            assert bytes(objects.view(i)) == data[k].tobytes()
    empty = store.read_whole_objects([])
    assert empty is not None
    assert len(empty.sizes) == 0


def test_whole_objects_name_a_file_that_cannot_be_read(tmp_path: Path) -> None:
    store = local_store(tmp_path, IOConfig(backend="auto"))
    for i in range(4):
        store.put(f"k/{i}", bytes([i]) * 100)
    (tmp_path / "k" / "1").unlink()
    (tmp_path / "k" / "1").mkdir()
    with pytest.raises(ReadError, match="k/1"):
        store.read_whole_objects([f"k/{i}" for i in range(4)])


def test_whole_objects_only_where_read_by_pread(tmp_path: Path) -> None:
    assert local_store(tmp_path, IOConfig(backend="preadv")).read_whole_objects(["a"]) is not None
    assert (
        local_store(tmp_path, IOConfig(backend="preadv", direct=True)).read_whole_objects(["a"])
        is None
    )
    assert MmapStore(tmp_path).read_whole_objects(["a"]) is None
    if uring_available():
        assert UringStore(tmp_path).read_whole_objects(["a"]) is None
    assert not hasattr(MemoryStore(), "read_whole_objects")


def test_whole_objects_join_a_file_created_after_the_compiled_read(tmp_path: Path) -> None:
    store = local_store(tmp_path, IOConfig(backend="preadv"))
    store.put("x/0", b"first")
    keys = ["x/0", "x/1", "x/2"]
    objects = store.read_whole_objects(keys)
    assert objects is not None
    assert objects.sizes.tolist() == [5, NOT_READ, NOT_READ]
    store.put("x/1", b"written meanwhile")  # a concurrent writer's new chunk
    settled = store._settle(keys, objects, [1, 2])
    assert bytes(settled.view(0)) == b"first"
    assert bytes(settled.view(1)) == b"written meanwhile"
    assert settled.sizes[2] == NOT_READ


def test_compiled_read_of_one_whole_file_grows_its_buffer(tmp_path: Path) -> None:
    reader = load_file_batch_reader()
    assert reader is not None
    sizes = {"empty": 0, "small": 10, "exact": 4096, "large": 50_000}
    rng = np.random.default_rng(3)
    data = {k: rng.integers(0, 256, n, np.uint8).tobytes() for k, n in sizes.items()}
    for k, v in data.items():
        (tmp_path / k).write_bytes(v)
    (tmp_path / "dir").mkdir()
    names, name_at = c_strings([os.fsencode(tmp_path / k) for k in [*data, "missing", "dir"]])
    read = read_whole_file  # compiled, and callable from Python too
    for i, (k, v) in enumerate(data.items()):
        buf = np.empty(4096, np.uint8)
        size, got = read(names.ctypes.data + name_at[i], reader.flags, buf)
        assert bytes(got[:size]) == v, k
        assert (got is buf) == (len(v) < 4096), k  # a full buffer grows, to learn the file ended
    for i in (len(data), len(data) + 1):
        assert (
            read(names.ctypes.data + name_at[i], reader.flags, np.empty(64, np.uint8))[0]
            == NOT_READ
        )


def test_object_files_where_files_are_read_whole(tmp_path: Path) -> None:
    store = local_store(tmp_path, IOConfig(backend="auto"))
    assert store.object_files(["a/b", "c"]) == [
        os.fsencode(tmp_path / "a" / "b"),
        os.fsencode(tmp_path / "c"),
    ]
    assert (
        local_store(tmp_path, IOConfig(backend="preadv", direct=True)).object_files(["a"]) is None
    )
    assert MmapStore(tmp_path).object_files(["a"]) is None
    if uring_available():
        assert UringStore(tmp_path).object_files(["a"]) is None


def test_object_store_refuses_a_forked_child(s3_bucket: str) -> None:
    """obstore's threads do not survive fork: a child forked after the parent read an
    object store (a fork-started DataLoader worker) gets a clear error, never a hang;
    a spawned child works."""
    import multiprocessing

    from lsio import UnsupportedError

    store = ObjectStore(f"{s3_bucket}/fork")
    store.put("k", b"from the parent")
    assert store.get("k") == b"from the parent"
    with (
        multiprocessing.get_context("fork").Pool(1) as pool,
        pytest.raises(UnsupportedError, match="forked after its parent read an object"),
    ):
        pool.apply(store.get, ("k",))
    with multiprocessing.get_context("spawn").Pool(1) as pool:
        assert pool.apply(store.get, ("k",)) == b"from the parent"


def test_pages_that_cannot_be_read_in_raise_instead_of_faulting(tmp_path: Path) -> None:
    # A file cut short in place after it was mapped: touching the lost pages
    # from compiled code would end the process (SIGBUS); populating them first
    # reports it, and a borrowing reader names the key and range.
    store = AutoStore(tmp_path, IOConfig())
    store.put("big", bytes(8 << 20))
    (tmp_path / "big").read_bytes()
    spans = np.array([[0, 0, 4 << 20], [0, 4 << 20, 8 << 20]])
    resident = store.resident_mappings(["big"], spans)
    assert resident is not None
    assert resident.release
    bases, sizes = mapping_addresses(resident.maps)
    os.truncate(tmp_path / "big", 1 << 20)
    with pytest.raises(UnreadablePagesError) as caught:
        populate_spans(bases, sizes, spans)
    assert caught.value.span == 0
    pages = BorrowedPages(
        bases, sizes, spans[1:], True, lambda row: ("big", "bytes [4194304, 8388608)")
    )
    with pytest.raises(ReadError, match=r"'big' bytes \[4194304, 8388608\).*mapped file"), pages:
        pass
