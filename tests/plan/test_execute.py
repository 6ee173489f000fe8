"""execute_reads: every task's bytes handed to its handler once, read or viewed in place."""

from __future__ import annotations

import threading
from pathlib import Path

import numpy as np
import pytest

from lsio.io import AutoStore, ByteRange, IOConfig, LocalStore, MemoryStore, WholeObject
from lsio.plan import ReadTask, execute_reads
from lsio.plan._execute import _resident
from tests.mapped import is_mapped, mapped_rss

MIB = 1 << 20


def _objects(tmp_path: Path) -> dict[str, bytes]:
    rng = np.random.default_rng(0)
    objects = {f"s/{i}": rng.integers(0, 256, 3 * MIB, dtype=np.uint8).tobytes() for i in range(3)}
    for key, data in objects.items():
        (tmp_path / "s").mkdir(exist_ok=True)
        (tmp_path / key).write_bytes(data)
        (tmp_path / key).read_bytes()  # in the page cache
    return objects


def _run(
    store: object, objects: dict[str, bytes], ranges: list[tuple[str, int, int]], threads: int
) -> dict[int, bytes | None]:
    tasks = [ReadTask(store, k, ByteRange(a, b), i) for i, (k, a, b) in enumerate(ranges)]  # type: ignore[arg-type]
    got: dict[int, bytes | None] = {}
    lock = threading.Lock()

    def handle(task: ReadTask[int], data: memoryview | None) -> None:
        with lock:
            assert task.item not in got  # once each
            got[task.item] = None if data is None else bytes(data)

    execute_reads(tasks, handle, None, batches=4, workers=threads)
    return got


@pytest.mark.parametrize("threads", [1, 3])
@pytest.mark.parametrize("span", [40 << 10, 2 * MIB])  # crop-sized, whole-block-sized
def test_every_range_is_handed_over_once_by_every_store(
    tmp_path: Path, threads: int, span: int
) -> None:
    objects = _objects(tmp_path)
    ranges = [(k, a, min(a + span, 3 * MIB)) for k in objects for a in range(0, 3 * MIB, span)]
    ranges.append(("s/0", 3 * MIB - 10, 3 * MIB + 50))  # past the end: a short buffer
    memory = MemoryStore()
    for key, data in objects.items():
        memory.put(key, data)
    for store in [AutoStore(tmp_path), LocalStore(tmp_path), memory]:
        got = _run(store, objects, ranges, threads)
        assert got == {i: objects[k][a:b] for i, (k, a, b) in enumerate(ranges)}


def test_cached_ranges_are_viewed_in_place_and_large_ones_handed_back(tmp_path: Path) -> None:
    objects = _objects(tmp_path)
    store = AutoStore(tmp_path, IOConfig())
    tasks = [ReadTask(store, "s/1", ByteRange(a, a + MIB), a) for a in range(0, 3 * MIB, MIB)]
    found = _resident(tasks, {id(store): store})
    assert found is not None
    resident, _ = found
    assert resident.release
    mapping = resident.maps[0]
    assert mapping is not None
    seen: list[tuple[bool, int]] = []

    def handle(task: ReadTask[int], data: memoryview | None) -> None:
        assert data is not None
        assert bytes(data) == objects["s/1"][task.item : task.item + MIB]
        seen.append((is_mapped(data), mapped_rss(mapping)))

    execute_reads(tasks, handle, None, batches=1, workers=1)
    assert [m for m, _ in seen] == [True] * 3  # no read, no copy
    assert all(rss >= MIB for _, rss in seen)  # populated while handled...
    assert mapped_rss(mapping) == 0  # ...and out of this process's memory after


def test_whole_objects_missing_ones_and_mixed_stores_are_read(tmp_path: Path) -> None:
    objects = _objects(tmp_path)
    auto, local = AutoStore(tmp_path), LocalStore(tmp_path)
    whole = [ReadTask(auto, "s/0", WholeObject(), 0)]
    missing = [ReadTask(auto, k, ByteRange(0, MIB), 0) for k in ["s/0", "s/gone"]]
    mixed = [ReadTask(s, "s/0", ByteRange(0, MIB), 0) for s in [auto, local]]
    for tasks in [whole, missing, mixed]:
        assert _resident(tasks, {id(t.reader): t.reader for t in tasks}) is None  # type: ignore[misc]
    got: list[bytes | None] = []
    execute_reads(missing, lambda t, d: got.append(None if d is None else bytes(d)), None, 2)
    assert sorted(got, key=lambda d: d is None) == [objects["s/0"][:MIB], None]


def test_a_failing_handler_of_a_mapped_range_is_raised(tmp_path: Path) -> None:
    _objects(tmp_path)
    store = AutoStore(tmp_path)
    tasks = [ReadTask(store, "s/2", ByteRange(a, a + MIB), a) for a in range(0, 3 * MIB, MIB)]

    def handle(task: ReadTask[int], data: memoryview | None) -> None:
        if task.item == MIB:
            raise ValueError("bad chunk")

    with pytest.raises(ValueError, match="bad chunk"):
        execute_reads(tasks, handle, None, batches=3, workers=2)
