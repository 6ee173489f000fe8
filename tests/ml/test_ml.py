"""The training loader: determinism, resume, rank sharding, alignment, rules, transforms, errors."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import lsio
from lsio.ml import CropSampler, Loader, make_sat_nwp, torch_dataset
from lsio.ml._permutation import permute
from lsio.ml._synthetic import ALIGN  # the pair's usual alignment, checked below

CROP = {"sat": {"time": 3, "y": 24, "x": 24}, "nwp": {"step": 2, "y": 8, "x": 8}}


@pytest.fixture(scope="module")
def pair(tmp_path_factory: pytest.TempPathFactory) -> Any:
    return make_sat_nwp(tmp_path_factory.mktemp("ml"), timesteps=14, side=64, channels=3, gap_at=6)


def sampler(pair: Any, **kwargs: Any) -> CropSampler:
    args: dict[str, Any] = {"seed": 7, "batch_size": 5, "max_gap": {"time": 3600}, **kwargs}
    return CropSampler({"sat": pair.sat, "nwp": pair.nwp}, crop=CROP, align=ALIGN, **args)


@settings(deadline=None)
@given(n=st.integers(1, 3000), seed=st.integers(0, 2**40), epoch=st.integers(0, 50))
def test_permutation_is_a_bijection(n: int, seed: int, epoch: int) -> None:
    out = permute(np.arange(n), n, seed, epoch)
    assert sorted(out.tolist()) == list(range(n))
    np.testing.assert_array_equal(out, permute(np.arange(n), n, seed, epoch))


def test_same_seed_and_step_give_the_same_samples(pair: Any) -> None:
    a, b = sampler(pair), sampler(pair)
    for step in (0, 3, 1000):
        np.testing.assert_array_equal(a[step].ids, b[step].ids)
    assert not np.array_equal(a[0].ids, sampler(pair, seed=8)[0].ids)
    first = [batch["sat"].copy() for batch in Loader(a, steps=3, prefetch=0)]
    again = [batch["sat"] for batch in Loader(b, steps=3, prefetch=3)]
    for x, y in zip(first, again, strict=True):
        np.testing.assert_array_equal(x, y)


def test_crops_equal_direct_reads_and_coordinates_align(pair: Any) -> None:
    s = sampler(pair)
    batch = next(iter(Loader(s, steps=1)))
    sat_time = lsio.open_array(Path(pair.sat.store_url[7:]) / "time")[...]
    for i in range(5):
        starts = {k: {d: int(v[i]) for d, v in x.items()} for k, x in s[0].starts.items()}
        t, y, x = starts["sat"]["time"], starts["sat"]["y"], starts["sat"]["x"]
        np.testing.assert_array_equal(
            batch["sat"][i], pair.sat[t : t + 3, :, y : y + 24, x : x + 24]
        )
        times = batch["coords"]["sat"]["time"][i]
        np.testing.assert_array_equal(times, sat_time[t : t + 3])
        assert np.all(np.diff(times) == 3600)  # no crop across the missing hour
        # The forecast valid times are the satellite times; its grid is centred on the crop.
        valid = batch["coords"]["nwp"]["init_time"][i][0] + batch["coords"]["nwp"]["step"][i]
        np.testing.assert_array_equal(valid, times[:2])
        sat_centre = batch["coords"]["sat"]["x"][i].mean()
        nwp_x = batch["coords"]["nwp"]["x"][i]
        assert abs(nwp_x[4] - sat_centre) <= 4000
        n = starts["nwp"]
        np.testing.assert_array_equal(
            batch["nwp"][i],
            pair.nwp[
                n["init_time"] : n["init_time"] + 1,
                n["step"] : n["step"] + 2,
                :,
                n["y"] : n["y"] + 8,
                n["x"] : n["x"] + 8,
            ],
        )


def test_resume_from_state(pair: Any) -> None:
    s = sampler(pair)
    loader = Loader(s, steps=6, prefetch=2)
    seen = []
    for k, batch in enumerate(loader):
        seen.append(batch["ids"])
        if k == 2:
            state = loader.state_dict()
            break
    resumed = Loader(sampler(pair), steps=6)
    resumed.load_state_dict(state)
    rest = [b["ids"] for b in resumed]
    full = [b["ids"] for b in Loader(sampler(pair), steps=6, prefetch=0)]
    assert len(rest) == 3
    for x, y in zip(seen + rest, full, strict=True):
        np.testing.assert_array_equal(x, y)
    with pytest.raises(lsio.InvalidArgumentError, match="seed, batch_size"):
        Loader(sampler(pair, seed=1)).load_state_dict(state)


def test_ranks_share_an_epoch_without_repeats(pair: Any) -> None:
    world = 3
    ranks = [sampler(pair, rank=r, world_size=world, batch_size=4) for r in range(world)]
    n = len(ranks[0])
    ids = np.concatenate([r.ids(step) for step in range(ranks[0].steps_per_epoch) for r in ranks])[
        :n
    ]
    assert sorted(ids.tolist()) == list(range(n))


def test_transform_and_torch_outputs(pair: Any) -> None:
    torch = pytest.importorskip("torch")
    stats = lsio.stats(pair.sat, dims=("time", "y", "x"))
    mean = stats.mean.astype(np.float32)[:, None, None]
    std = stats.std.astype(np.float32)[:, None, None]

    def normalise(batch: dict[str, Any]) -> dict[str, Any]:
        batch["sat"] = (batch["sat"].float() - torch.from_numpy(mean)) / torch.from_numpy(std)
        return batch

    raw = next(iter(Loader(sampler(pair), steps=1, out="torch")))
    done = next(iter(Loader(sampler(pair), steps=1, out="torch", transform=normalise)))
    assert raw["sat"].dtype == torch.int16
    np.testing.assert_allclose(
        done["sat"].numpy(), (raw["sat"].numpy().astype(np.float32) - mean) / std, rtol=1e-6
    )
    with pytest.warns(UserWarning, match="CUDA is not available"):
        Loader(sampler(pair), out="torch", pin_memory=True)


def test_transform_stage_keeps_order_errors_and_stops(pair: Any) -> None:
    """With prefetch, transforms run in their own thread: same batches, in order, as
    prefetch=0; a failing transform is raised at its step; leaving early stops both threads."""
    import threading

    def tag(batch: dict[str, Any]) -> dict[str, Any]:
        if batch["step"] == 4:
            raise RuntimeError("transform failed at step 4")
        batch["sat"] = batch["sat"] * 2
        return batch

    want = [b["sat"] for b in Loader(sampler(pair), steps=4, prefetch=0, transform=tag)]
    got = [b["sat"] for b in Loader(sampler(pair), steps=4, prefetch=2, transform=tag)]
    for x, y in zip(got, want, strict=True):
        np.testing.assert_array_equal(x, y)
    delivered: list[int] = []

    def consume() -> None:
        for batch in Loader(sampler(pair), steps=6, prefetch=3, transform=tag):
            delivered.append(batch["step"])

    with pytest.raises(RuntimeError, match="transform failed at step 4"):
        consume()
    assert delivered == [0, 1, 2, 3]
    loader = Loader(sampler(pair), steps=20, prefetch=2, transform=tag)
    for batch in loader:
        if batch["step"] == 1:
            break
    assert loader.step == 2
    alive = [t.name for t in threading.enumerate() if t.name.startswith("lsio-prefetch")]
    assert alive == []


def test_torch_dataloader_workers_give_the_same_batches(pair: Any) -> None:
    torch = pytest.importorskip("torch")
    from torch.utils.data import DataLoader

    def run(workers: int) -> list[Any]:
        ds = torch_dataset(sampler(pair), steps=4)
        return [b["ids"].clone() for b in DataLoader(ds, batch_size=None, num_workers=workers)]

    for x, y in zip(run(0), run(2), strict=True):
        assert torch.equal(x, y)


def test_batch_nbytes_is_what_a_batch_holds(pair: Any) -> None:
    s = sampler(pair)
    batch = next(iter(Loader(s, steps=1)))
    assert (
        s.batch_nbytes
        == batch["sat"].nbytes + batch["nwp"].nbytes
        == 5 * (3 * 3 * 24 * 24 * 2 + 2 * 4 * 8 * 8 * 4)
    )


def test_synthetic_pair_takes_the_satellite_chunk_side(tmp_path: Path) -> None:
    small = make_sat_nwp(tmp_path / "a", timesteps=4, side=64, channels=2, gap_at=None, chunk=16)
    assert small.sat.chunks == (1, 2, 16, 16)
    assert small.sat.shards == (4, 2, 64, 64)
    with pytest.raises(lsio.InvalidArgumentError, match="chunk=48 must be a positive divisor of"):
        make_sat_nwp(tmp_path / "b", timesteps=4, side=64, chunk=48)


def test_errors_say_what_is_wrong(pair: Any) -> None:
    with pytest.raises(lsio.InvalidArgumentError, match=r"crop of 99 along sat\.y does not fit"):
        CropSampler({"sat": pair.sat}, crop={"sat": {"y": 99}})
    with pytest.raises(lsio.InvalidArgumentError, match="its dimensions are"):
        CropSampler({"sat": pair.sat}, crop={"sat": {"depth": 2}})
    with pytest.raises(lsio.InvalidArgumentError, match="unknown sources"):
        CropSampler({"sat": pair.sat}, crop={"radar": {"y": 2}})
    # A forecast that starts after the satellite data ends: no overlapping time range.
    with pytest.raises(lsio.InvalidArgumentError, match="no valid sample"):
        CropSampler(
            {"sat": pair.sat, "nwp": pair.nwp},
            crop=CROP,
            align=ALIGN,
            tolerance={"nwp": {"init_time": -1}},
        )


def test_ready_made_transforms(pair: Any) -> None:
    from lsio.ml import Downsample, Normalize

    stats = lsio.stats(pair.sat, dims=("time", "y", "x"))
    norm = Normalize({"sat": stats}, axis={"sat": 1})
    raw = next(iter(Loader(sampler(pair), steps=1)))
    sat = raw["sat"].copy()
    done = next(iter(Loader(sampler(pair), steps=1, transform=norm)))
    mean = stats.mean[None, None, :, None, None]
    std = stats.std[None, None, :, None, None]
    assert done["sat"].dtype == np.float32
    np.testing.assert_allclose(done["sat"], (sat - mean) / std, rtol=1e-5, atol=1e-5)
    small = next(iter(Loader(sampler(pair), steps=1, transform=Downsample(("sat", "nwp"), 2))))
    assert small["sat"].shape == (5, 3, 3, 12, 12)
    np.testing.assert_allclose(small["sat"][0, 0, 0, 0, 0], sat[0, 0, 0, :2, :2].mean(), rtol=1e-6)
    with pytest.raises(lsio.InvalidArgumentError, match="not multiples of 5"):
        Downsample(("sat",), 5)(dict(raw))
    with pytest.raises(lsio.InvalidArgumentError, match="exactly one dimension"):
        Normalize({"sat": lsio.stats(pair.sat)}, axis={"sat": 1})
    for wrong_axis in (2, 7):  # y (24 long, 3 channels), and no such axis
        with pytest.raises(lsio.InvalidArgumentError, match=f"have no axis {wrong_axis} of length"):
            Normalize({"sat": stats}, axis={"sat": wrong_axis})(dict(raw))


def test_normalize_reuses_only_dropped_outputs(pair: Any) -> None:
    from lsio.ml import Normalize

    stats = lsio.stats(pair.sat, dims=("time", "y", "x"))
    norm = Normalize({"sat": stats}, axis={"sat": 1}, reuse=2)
    rng = np.random.default_rng(5)
    # Large enough (8 MiB of float32) for the output pool to keep and hand out again.
    raws = [rng.integers(0, 2000, (64, 2, 3, 64, 64)).astype(np.int16) for _ in range(4)]
    mean = stats.mean.astype(np.float32)[None, None, :, None, None]
    std = stats.std.astype(np.float32)[None, None, :, None, None]
    expect = [(r - mean) / std for r in raws]
    first = norm({"sat": raws[0]})["sat"]
    second = norm({"sat": raws[1]})["sat"]
    assert not np.shares_memory(first, second)
    address = second.__array_interface__["data"][0]
    del second  # dropped: its memory may serve the next batch
    third = norm({"sat": raws[2]})["sat"]
    assert third.__array_interface__["data"][0] == address
    fourth = norm({"sat": raws[3]})["sat"]
    for got, want in zip((first, third, fourth), (expect[0], expect[2], expect[3]), strict=True):
        np.testing.assert_allclose(got, want, rtol=1e-6)
    with pytest.raises(lsio.InvalidArgumentError, match="reuse must be >= 0"):
        Normalize({"sat": stats}, axis={"sat": 1}, reuse=-1)
    with pytest.raises(lsio.InvalidArgumentError, match="must be a float dtype"):
        Normalize({"sat": stats}, axis={"sat": 1}, dtype=np.int16)


def _flip_and_label(sample: dict[str, Any]) -> dict[str, Any]:
    """A per-sample transform: flip x in place when the id is odd; a new per-sample label."""
    if sample["id"] % 2:
        sample["sat"][...] = sample["sat"][..., ::-1].copy()
    return {
        "sat": sample["sat"],
        "nwp": sample["nwp"].astype(np.float16),
        "hour": np.asarray(sample["coords"]["sat"]["time"][0] // 3600 % 24),
    }


@pytest.mark.parametrize("out", ["numpy", "torch"])
def test_per_sample_transform(pair: Any, out: str) -> None:
    if out == "torch":
        pytest.importorskip("torch")
    raw = next(iter(Loader(sampler(pair), steps=1)))
    done = next(iter(Loader(sampler(pair), steps=1, sample_transform=_flip_and_label, out=out)))
    sat = done["sat"] if out == "numpy" else done["sat"].numpy()
    for i, sample_id in enumerate(raw["ids"].tolist()):
        want = raw["sat"][i][..., ::-1] if sample_id % 2 else raw["sat"][i]
        np.testing.assert_array_equal(sat[i], want)
    nwp = np.asarray(done["nwp"])
    assert nwp.dtype == np.float16
    assert nwp.shape == raw["nwp"].shape
    np.testing.assert_array_equal(nwp, raw["nwp"].astype(np.float16))
    hours = np.asarray(done["hour"])
    np.testing.assert_array_equal(hours, raw["coords"]["sat"]["time"][:, 0] // 3600 % 24)
    if out == "torch":  # the same in a torch Dataset
        ds = torch_dataset(sampler(pair), steps=1, sample_transform=_flip_and_label)
        again = next(iter(ds))
        np.testing.assert_array_equal(again["sat"].numpy(), sat)
        np.testing.assert_array_equal(again["hour"].numpy(), hours)


def test_per_sample_transform_errors(pair: Any) -> None:
    first = int(sampler(pair)[0].ids[0])

    def ragged(sample: dict[str, Any]) -> dict[str, Any]:
        return {"sat": sample["sat"][: 1 + sample["id"] % 2]}

    with pytest.raises(lsio.InvalidArgumentError, match="the first sample's was"):
        next(iter(Loader(sampler(pair), steps=1, sample_transform=ragged, prefetch=0)))
    with pytest.raises(lsio.InvalidArgumentError, match="must return a dict"):
        next(iter(Loader(sampler(pair), steps=1, sample_transform=lambda s: s["sat"])))
    # A key the first sample returned and a later one did not: never uninitialised memory.
    with pytest.raises(lsio.InvalidArgumentError, match=r"keys \[\] for sample 1; the first"):
        next(
            iter(
                Loader(
                    sampler(pair),
                    steps=1,
                    prefetch=0,
                    sample_transform=lambda s: {"x": 7} if s["id"] == first else {},
                )
            )
        )
    with pytest.raises(lsio.InvalidArgumentError, match="transform must return the batch"):
        next(iter(Loader(sampler(pair), steps=1, prefetch=0, transform=lambda b: None)))


def test_per_sample_views_of_the_crop_are_applied(pair: Any) -> None:
    s = sampler(pair)
    plain = next(iter(Loader(s, steps=1, prefetch=0)))["sat"]
    flipped = next(
        iter(
            Loader(
                s, steps=1, prefetch=0, sample_transform=lambda smp: {"sat": smp["sat"][..., ::-1]}
            )
        )
    )["sat"]
    np.testing.assert_array_equal(flipped, plain[..., ::-1])


def test_per_sample_views_of_torch_crops_are_applied(pair: Any) -> None:
    pytest.importorskip("torch")  # the torch extra; .ci/run installs it
    s = sampler(pair)
    plain = next(iter(Loader(s, steps=1, prefetch=0)))["sat"]
    swapped = next(
        iter(
            Loader(
                s,
                steps=1,
                prefetch=0,
                out="torch",
                sample_transform=lambda smp: {"sat": smp["sat"].swapaxes(-1, -2)},
            )
        )
    )["sat"]
    np.testing.assert_array_equal(swapped.numpy(), plain.swapaxes(-1, -2))


def test_batch_memory_is_reused_only_after_the_caller_drops_it(tmp_path: Path) -> None:
    big = make_sat_nwp(tmp_path, timesteps=10, side=256, channels=4, gap_at=None)
    crop = {"sat": {"time": 2, "y": 256, "x": 256}, "nwp": {"step": 2, "y": 8, "x": 8}}
    s = CropSampler(
        {"sat": big.sat, "nwp": big.nwp}, crop=crop, align=ALIGN, seed=3, batch_size=5
    )  # 1 MiB of satellite crop per sample, 5 MiB per batch: from the loader's pool
    loader = Loader(s, steps=6, prefetch=1)
    addresses = set()
    held = kept = None
    for i, batch in enumerate(loader):
        assert not batch["sat"].flags.owndata  # a view of pooled memory
        addresses.add(batch["sat"].__array_interface__["data"][0])
        if i == 1:
            held, kept = batch["sat"], batch["sat"].copy()
        del batch
    assert len(addresses) < 6  # dropped batches' memory came back
    np.testing.assert_array_equal(held, kept)  # the one still held was never overwritten
    direct = np.stack(
        [
            big.sat.read(
                s.sources()["sat"].selection({d: int(v[i]) for d, v in s[1].starts["sat"].items()})
            )
            for i in range(5)
        ]
    )
    np.testing.assert_array_equal(held, direct)
