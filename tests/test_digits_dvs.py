"""digits-dvs: the embedded emulated dataset, its cache, split, Dataset and export."""

import os

import numpy as np
import pytest
from sklearn.datasets import load_digits

from qifsim.events import digits_dvs as dd
from qifsim.events import validate_events

N = 40


@pytest.fixture(scope="module")
def cache(tmp_path_factory):
    """A cache folder holding the first N training samples (generated once)."""
    root = tmp_path_factory.mktemp("digits-dvs-cache")
    events, labels = dd.load_digits_dvs("train", cache_dir=root, n_samples=N, progress=False)
    return root, events, labels


def test_split_is_fixed_stratified_and_complete():
    train, test, full = dd.split_indices("train"), dd.split_indices("test"), dd.split_indices("all")
    assert (len(train), len(test), len(full)) == (1442, 355, 1797)
    assert np.array_equal(np.sort(np.concatenate([train, test])), full)
    targets = load_digits().target
    for c in range(10):
        members = np.flatnonzero(targets == c)
        assert np.array_equal(test[targets[test] == c], members[4::5])
    with pytest.raises(ValueError, match="split"):
        dd.split_indices("val")


def test_labels_match_sklearn_and_events_are_valid(cache):
    _, events, labels = cache
    assert labels.dtype == np.int64 and len(events) == len(labels) == N
    assert np.array_equal(labels, load_digits().target[dd.split_indices("train")[:N]])
    for ev in events:
        validate_events(ev, dd.SENSOR_SIZE)
        assert ev["p"].min() == 0 and ev["p"].max() == 1
        assert ev["t"].max() <= 300_000
    mean = np.mean([len(ev) for ev in events])
    print(f"digits-dvs: mean {mean:.0f} events per sample over {N} samples")
    assert 3000 <= mean <= 8000


def test_same_seed_same_events_independent_of_the_subset(cache):
    root, events, _ = cache
    index = int(dd.split_indices("train")[7])
    assert np.array_equal(dd.generate_sample(index, seed=0), events[7])
    assert np.array_equal(dd.generate_sample(index, seed=0), dd.generate_sample(index, seed=0))
    assert not np.array_equal(dd.generate_sample(index, seed=1), events[7])


def test_cache_is_reused_and_extended(cache, monkeypatch):
    root, events, _ = cache
    original = dd._generate
    path = dd.cache_path(root)
    mtime = os.stat(path).st_mtime_ns

    def forbidden(*args, **kwargs):
        raise AssertionError("regenerated samples that are cached")

    monkeypatch.setattr(dd, "_generate", forbidden)
    again, _ = dd.load_digits_dvs("train", cache_dir=root, n_samples=N, progress=False)
    assert all(np.array_equal(a, b) for a, b in zip(events, again, strict=True))
    assert os.stat(path).st_mtime_ns == mtime

    asked = []

    def record(indices, seed, progress):
        asked.extend(indices.tolist())
        return original(indices, seed, progress)

    monkeypatch.setattr(dd, "_generate", record)
    test_events, test_labels = dd.load_digits_dvs("test", cache_dir=root, n_samples=3)
    assert asked == dd.split_indices("test")[:3].tolist()
    assert np.array_equal(test_labels, load_digits().target[asked])
    monkeypatch.setattr(dd, "_generate", forbidden)
    both, _ = dd.load_digits_dvs("train", cache_dir=root, n_samples=N, progress=False)
    assert len(both) == N and np.array_equal(both[-1], events[-1])


def test_corrupt_cache_is_detected_and_rebuilt(tmp_path):
    events, _ = dd.load_digits_dvs("all", cache_dir=tmp_path, n_samples=3, progress=False)
    path = dd.cache_path(tmp_path)
    path.write_bytes(b"not a zip file" + path.read_bytes()[100:])
    with pytest.warns(UserWarning, match="rebuilding"):
        rebuilt, _ = dd.load_digits_dvs("all", cache_dir=tmp_path, n_samples=3, progress=False)
    assert all(np.array_equal(a, b) for a, b in zip(events, rebuilt, strict=True))
    # a readable file whose content no longer matches its checksum is rebuilt too
    with np.load(path) as data:
        arrays = dict(data)
    arrays["t"] = arrays["t"] + 1
    with open(path, "wb") as f:
        np.savez_compressed(f, **arrays)
    with pytest.warns(UserWarning, match="checksum"):
        again, _ = dd.load_digits_dvs("all", cache_dir=tmp_path, n_samples=3, progress=False)
    assert all(np.array_equal(a, b) for a, b in zip(events, again, strict=True))
    dd.load_digits_dvs("all", cache_dir=tmp_path, n_samples=3, progress=False)  # no warning now


def test_default_cache_dir_honours_environment(monkeypatch, tmp_path):
    monkeypatch.setenv("QIFSIM_CACHE", str(tmp_path))
    assert dd.default_cache_dir() == tmp_path / "digits-dvs"
    path = dd.cache_path(seed=3)
    assert path.parent == tmp_path / "digits-dvs" and "seed3" in path.name
    monkeypatch.delenv("QIFSIM_CACHE")
    monkeypatch.delenv("XDG_CACHE_HOME", raising=False)
    assert dd.default_cache_dir() == dd.Path.home() / ".cache" / "qifsim" / "digits-dvs"


def test_dataset_items(cache):
    import torch

    root, events, labels = cache
    data = dd.DigitsDVS("train", cache_dir=root, n_samples=N, progress=False)
    assert isinstance(data, torch.utils.data.Dataset) and len(data) == N
    frames, label = data[5]
    assert frames.shape == (10, 2, 34, 34) and frames.dtype == torch.float32
    assert isinstance(label, int) and label == labels[5]
    assert frames.sum().item() == len(events[5])
    assert frames[:, 1].sum().item() == events[5]["p"].sum()
    timed = dd.DigitsDVS(
        "train",
        n_frames=4,
        split_by="time",
        cache_dir=root,
        n_samples=N,
        transform=lambda x: x * 2,
    )
    frames, _ = timed[0]
    assert frames.shape == (4, 2, 34, 34) and frames.sum().item() == 2 * len(events[0])
    batch = next(iter(torch.utils.data.DataLoader(data, batch_size=8)))
    assert batch[0].shape == (8, 10, 2, 34, 34) and batch[1].tolist() == labels[:8].tolist()


def test_export_writes_nmnist_layout(cache, tmp_path):
    try:
        from qifsim.events.io import read_events, write_events  # noqa: F401
    except ImportError:
        pytest.skip("qifsim.events.io (write_events, read_events) is not available yet")
    root, events, labels = cache
    paths = dd.export_digits_dvs(tmp_path / "out", cache_dir=root, n_samples=2, progress=False)
    train = dd.split_indices("train")[:2]
    test = dd.split_indices("test")[:2]
    targets = load_digits().target
    expected = [tmp_path / "out" / "Train" / str(targets[i]) / f"{i:05d}.bin" for i in train]
    expected += [tmp_path / "out" / "Test" / str(targets[i]) / f"{i:05d}.bin" for i in test]
    assert paths == expected
    assert all(p.is_file() for p in paths)
    assert paths[0].stat().st_size == 5 * len(events[0])  # 5-byte ATIS events, no overflow
    back = read_events(paths[1], format="atis-bin")
    for name in ("x", "y", "t", "p"):
        assert np.array_equal(back[name], events[1][name])


@pytest.mark.slow
def test_full_build(tmp_path):
    import time

    start = time.perf_counter()
    events, labels = dd.load_digits_dvs("all", cache_dir=tmp_path, progress=False)
    seconds = time.perf_counter() - start
    counts = np.array([len(ev) for ev in events])
    print(f"digits-dvs full build: {seconds:.1f} s, mean {counts.mean():.0f} events per sample")
    assert len(events) == 1797 and np.array_equal(labels, load_digits().target)
    assert 3000 <= counts.mean() <= 8000 and counts.min() > 0
    train, train_labels = dd.load_digits_dvs("train", cache_dir=tmp_path, progress=False)
    assert len(train) == 1442 and np.array_equal(train[0], events[0])
