"""HDF5 frame cache: keys, round trips, resumable builds, corruption, workers, speed."""

from __future__ import annotations

import pickle
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import h5py
import numpy as np
import pytest
import torch

from qifsim.events.cache import (
    CacheError,
    FrameCache,
    cache_file,
    cache_key,
    cached_frames,
    canonical_json,
)

sys.path.insert(0, str(Path(__file__).parent))
from test_events_datasets import make_cifar10dvs, make_gesture, make_nmnist  # noqa: E402

CONFIG = {"dataset": "toy", "split": "train", "n_frames": 3, "sensor_size": [6, 5, 2]}


class Source:
    """Deterministic in-memory frames; records which samples were asked for."""

    def __init__(self, n=12, integer=True, fail_at=None, seed=0, shape=(3, 2, 5, 6)):
        rng = np.random.default_rng(seed)
        self.items = []
        for i in range(n):
            frames = rng.integers(0, 400, shape).astype(np.float32)
            if not integer:
                frames = frames * np.float32(0.37)
            self.items.append((frames, i % 4))
        self.fail_at = fail_at
        self.calls: list[int] = []

    def __len__(self):
        return len(self.items)

    def __getitem__(self, i):
        self.calls.append(i)
        if i == self.fail_at:
            raise RuntimeError(f"interrupted at sample {i}")
        return self.items[i]


def assert_cache_equals(cache, source):
    assert len(cache) == len(source)
    for i, (frames, label) in enumerate(source.items):
        got, got_label = cache[i]
        assert got.dtype == np.float32 and got_label == label
        np.testing.assert_array_equal(got, frames)


def test_key_is_a_hash_of_canonical_json():
    a = {"b": (1, 2), "a": {"y": None, "x": 1.5}, "p": Path("/x")}
    b = {"a": {"x": 1.5, "y": None}, "p": "/x", "b": [1, 2]}
    assert canonical_json(a) == canonical_json(b) == '{"a":{"x":1.5,"y":null},"b":[1,2],"p":"/x"}'
    assert cache_key(a) == cache_key(b) and len(cache_key(a)) == 20
    assert cache_key({**b, "b": [1, 3]}) != cache_key(b)
    assert cache_key({"n": np.int64(3)}) == cache_key({"n": 3})
    with pytest.raises(TypeError, match=r"config.f: function is not JSON-able"):
        canonical_json({"f": lambda: 0})
    with pytest.raises(ValueError, match="finite"):
        canonical_json({"x": float("nan")})
    name = cache_file("/c", CONFIG).name
    assert name.startswith("toy-train-") and name.endswith(".h5")
    assert cache_file("/c/mine.h5", CONFIG) == Path("/c/mine.h5")


@pytest.mark.parametrize(
    "dtype, integer, compression",
    [("uint16", True, None), ("float32", False, "gzip"), ("uint16", True, "lzf")],
)
def test_round_trip_and_second_open_reads_only_the_file(tmp_path, dtype, integer, compression):
    source = Source(integer=integer)
    kwargs = {"dtype": dtype, "compression": compression, "progress": False}
    cache = cached_frames(source, CONFIG, tmp_path, **kwargs)
    assert isinstance(cache, FrameCache) and source.calls == list(range(12))
    assert_cache_equals(cache, source)
    files = list(tmp_path.glob("*.h5"))
    assert len(files) == 1 and not list(tmp_path.glob("*.tmp"))  # no .tmp left behind
    with h5py.File(files[0], "r") as f:
        frames = f["frames"]
        assert frames.dtype == np.dtype(dtype) and frames.chunks == (1, 3, 2, 5, 6)
        assert frames.compression == compression and frames.fletcher32
        assert f.attrs["complete"] and f.attrs["key"] == cache.key
    again = Source(integer=integer)
    cache2 = cached_frames(again, CONFIG, tmp_path, **kwargs)
    assert again.calls == []
    assert_cache_equals(cache2, again)
    with pytest.raises(IndexError):
        cache2.frames(12)


def test_uint16_storage_refuses_frames_that_are_not_counts(tmp_path):
    with pytest.raises(ValueError, match="not integer counts.*float32"):
        cached_frames(Source(integer=False), CONFIG, tmp_path, dtype="uint16", progress=False)
    with pytest.raises(ValueError, match="compression"):
        cached_frames(Source(), CONFIG, tmp_path, compression="zstd", progress=False)


def test_changed_config_gets_a_new_file(tmp_path):
    first = cached_frames(Source(), CONFIG, tmp_path, progress=False)
    other = Source(seed=1)
    second = cached_frames(other, {**CONFIG, "n_frames": 4}, tmp_path, progress=False)
    assert first.path != second.path and first.key != second.key
    assert len(list(tmp_path.glob("*.h5"))) == 2
    assert_cache_equals(first, Source())
    assert_cache_equals(second, other)
    lzf = cached_frames(Source(), CONFIG, tmp_path, compression="lzf", progress=False)
    assert lzf.path not in (first.path, second.path)


def test_build_interrupted_by_an_exception_resumes(tmp_path):
    failing = Source(fail_at=7)
    with pytest.raises(RuntimeError, match="interrupted at sample 7"):
        cached_frames(failing, CONFIG, tmp_path, flush_every=3, progress=False)
    assert not list(tmp_path.glob("*.h5")) and len(list(tmp_path.glob("*.h5.tmp"))) == 1
    with h5py.File(next(tmp_path.glob("*.h5.tmp")), "r") as f:
        assert f["done"][...].tolist() == [1] * 7 + [0] * 5  # 0..6 committed on the way out
    resumed = Source()
    cache = cached_frames(resumed, CONFIG, tmp_path, flush_every=3, progress=False)
    assert resumed.calls == list(range(7, 12))
    assert_cache_equals(cache, resumed)
    assert not list(tmp_path.glob("*.tmp"))


def test_build_killed_by_sigkill_resumes(tmp_path):
    script = textwrap.dedent(
        f"""
        import os, signal, sys
        sys.path.insert(0, {str(Path(__file__).parent)!r})
        from test_events_cache import CONFIG, Source
        from qifsim.events.cache import cached_frames

        class Killing(Source):
            def __getitem__(self, i):
                if i == 8:
                    os.kill(os.getpid(), signal.SIGKILL)
                return super().__getitem__(i)

        cached_frames(Killing(), CONFIG, {str(tmp_path)!r}, flush_every=3, progress=False)
        """
    )
    run = subprocess.run([sys.executable, "-c", script], capture_output=True, timeout=120)
    assert run.returncode == -9, run.stderr.decode()
    assert len(list(tmp_path.glob("*.h5.tmp"))) == 1 and not list(tmp_path.glob("*.h5"))
    resumed = Source()
    cache = cached_frames(resumed, CONFIG, tmp_path, flush_every=3, progress=False)
    assert resumed.calls == list(range(6, 12))  # samples 0..5 were committed before the kill
    assert_cache_equals(cache, resumed)


def test_processes_asking_at_once_build_once(tmp_path):
    script = textwrap.dedent(
        f"""
        import sys, time
        sys.path.insert(0, {str(Path(__file__).parent)!r})
        from test_events_cache import CONFIG, Source
        from qifsim.events.cache import cached_frames

        class Slow(Source):
            def __getitem__(self, i):
                time.sleep(0.02)
                return super().__getitem__(i)

        source = Slow()
        cache = cached_frames(source, CONFIG, {str(tmp_path)!r}, progress=False)
        assert len(cache) == 12
        print(len(source.calls))
        """
    )
    runs = [subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE) for _ in "ab"]
    counts = sorted(int(run.communicate(timeout=120)[0]) for run in runs)
    assert [run.returncode for run in runs] == [0, 0]
    assert counts == [0, 12]
    assert_cache_equals(cached_frames(Source(), CONFIG, tmp_path, progress=False), Source())


def _truncate(path: Path, config) -> None:
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])


def _bad_checksum(path: Path, config) -> None:
    with h5py.File(path, "r+") as f:
        f.attrs["checksum"] = "0" * 64


def _incomplete(path: Path, config) -> None:
    with h5py.File(path, "r+") as f:
        f.attrs["complete"] = False


def _other_labels(path: Path, config) -> None:
    with h5py.File(path, "r+") as f:  # labels no longer match the checksum
        f["labels"][0] = 3


@pytest.mark.parametrize("damage", [_truncate, _bad_checksum, _incomplete, _other_labels])
def test_corrupt_cache_is_rebuilt_with_a_warning(tmp_path, damage):
    first = cached_frames(Source(), CONFIG, tmp_path, progress=False)
    damage(first.path, CONFIG)
    with pytest.raises(CacheError):
        FrameCache(first.path, first.key)
    source = Source()
    with pytest.warns(RuntimeWarning, match="unusable.*rebuilding"):
        cache = cached_frames(source, CONFIG, tmp_path, progress=False)
    assert source.calls == list(range(12)) and cache.path == first.path
    assert_cache_equals(cache, source)


def test_explicit_file_with_another_key_is_rebuilt(tmp_path):
    path = tmp_path / "frames.h5"
    cached_frames(Source(), CONFIG, path, progress=False)
    other = Source(seed=5)
    with pytest.warns(RuntimeWarning, match="wrong key"):
        cache = cached_frames(other, {**CONFIG, "split": "test"}, path, progress=False)
    assert cache.path == path
    assert_cache_equals(cache, other)


def test_a_chunk_failing_its_checksum_is_framed_again(tmp_path):
    source = Source()
    cache = cached_frames(source, CONFIG, tmp_path, progress=False)
    with h5py.File(cache.path, "r") as f:
        info = f["frames"].id.get_chunk_info_by_coord((2, 0, 0, 0, 0))
    with open(cache.path, "r+b") as f:
        f.seek(info.byte_offset + 10)
        byte = f.read(1)
        f.seek(info.byte_offset + 10)
        f.write(bytes([byte[0] ^ 0xFF]))
    cache = FrameCache(cache.path, cache.key)  # attributes are intact: opens fine
    with pytest.raises(CacheError, match="sample 2 cannot be read"):
        cache.frames(2)
    cache.fallback = source.__getitem__
    with pytest.warns(RuntimeWarning, match="sample 2 failed its check"):
        frames = cache.frames(2)
    np.testing.assert_array_equal(frames, source.items[2][0])
    np.testing.assert_array_equal(cache.frames(3), source.items[3][0])


# -- through the datasets ----------------------------------------------------------------------


def test_dataset_cache_equals_framing_and_keys_on_the_config(tmp_path):
    from qifsim.events.datasets import NMNIST

    make_nmnist(tmp_path / "root", per_class=2)
    plain = NMNIST(tmp_path / "root", strict=False)
    cached = NMNIST(
        tmp_path / "root", strict=False, cache=tmp_path / "c", cache_options={"progress": False}
    )
    assert cached.cache is not None and cached.cache.dtype == "uint16"
    for i in range(len(plain)):
        a, la = plain[i]
        b, lb = cached[i]
        assert la == lb
        torch.testing.assert_close(a, b, rtol=0, atol=0)
    files = sorted((tmp_path / "c").glob("*.h5"))  # beside each: an empty .h5.lock
    assert len(files) == 1 and files[0].name.startswith("n-mnist-train-")
    stamp = files[0].stat().st_mtime_ns
    NMNIST(tmp_path / "root", strict=False, cache=tmp_path / "c")
    assert files[0].stat().st_mtime_ns == stamp  # reused, not rebuilt
    resized = NMNIST(
        tmp_path / "root",
        strict=False,
        resize=16,
        cache=tmp_path / "c",
        cache_options={"progress": False},
    )
    assert resized.cache.dtype == "float32" and resized[0][0].shape == (10, 2, 16, 16)
    NMNIST(tmp_path / "root", strict=False, n_frames=5, cache=tmp_path / "c")
    assert len(list((tmp_path / "c").glob("*.h5"))) == 3
    with pytest.raises(ValueError, match="cache_key_extra"):
        NMNIST(tmp_path / "root", strict=False, event_transform=lambda e: e, cache=tmp_path / "c")
    with_extra = NMNIST(
        tmp_path / "root",
        strict=False,
        event_transform=lambda e: e[e["p"] == 1],
        cache_key_extra={"keep": "on"},
        cache=tmp_path / "c",
    )
    assert with_extra[0][0][:, 0].sum() == 0
    assert len(list((tmp_path / "c").glob("*.h5"))) == 4


def test_dataset_cache_true_uses_the_cache_dir_setting(tmp_path, monkeypatch):
    from qifsim.events.datasets import DVS128Gesture

    make_gesture(tmp_path / "root", rows=2)
    monkeypatch.setenv("QIFSIM_CACHE", str(tmp_path / "env-cache"))
    plain = DVS128Gesture(tmp_path / "root", "train")
    cached = DVS128Gesture(tmp_path / "root", "train", cache=True)
    assert cached.cache.path.parent == tmp_path / "env-cache" / "frames"
    for i in (3, 0, 2):
        torch.testing.assert_close(plain[i][0], cached[i][0], rtol=0, atol=0)


def test_dataloader_workers_read_the_cache(tmp_path):
    from qifsim.events.datasets import CIFAR10DVS

    make_cifar10dvs(tmp_path / "root", per_class=4)
    plain = CIFAR10DVS(tmp_path / "root", "train", strict=False, resize=(48, 48))
    cached = CIFAR10DVS(
        tmp_path / "root", "train", strict=False, resize=(48, 48), cache=tmp_path / "c"
    )
    cached[0]  # the parent process opens the file too before the workers fork
    loader = torch.utils.data.DataLoader(cached, batch_size=5, num_workers=2, shuffle=False)
    got = torch.cat([frames for frames, _ in loader])
    labels = torch.cat([labels for _, labels in loader])
    assert got.shape == (30, 10, 2, 48, 48)
    assert labels.tolist() == plain.targets
    expected = torch.stack([plain[i][0] for i in range(len(plain))])
    torch.testing.assert_close(got, expected, rtol=0, atol=0)
    copy = pickle.loads(pickle.dumps(cached))  # what a spawned worker receives
    assert copy.cache._file is None and copy.cache.fallback is not None
    torch.testing.assert_close(copy[7][0], expected[7], rtol=0, atol=0)


# -- speed -------------------------------------------------------------------------------------


def _epoch_seconds(dataset, repeats: int = 3) -> float:
    """Best of ``repeats`` passes over the dataset in a fixed shuffled order."""
    order = np.random.default_rng(0).permutation(len(dataset)).tolist()
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        for i in order:
            dataset[i]
        best = min(best, time.perf_counter() - start)
    return best


def _measure(make, cache_dir: Path, label: str, **kwargs) -> float:
    """Speed-up of a cached second epoch over framing again; prints both times."""
    plain, cached = make(), make(cache=cache_dir, cache_options={"progress": False, **kwargs})
    plain[0], cached[0]  # warm up (numba, file handles)
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # as in DataLoader workers; also steadier on a busy machine
    try:
        t_plain, t_cached = _epoch_seconds(plain), _epoch_seconds(cached)
    finally:
        torch.set_num_threads(threads)
    n = len(plain)
    print(
        f"\n{label}, {n} samples: framing again {t_plain / n * 1e3:.2f} ms/sample, "
        f"cache {t_cached / n * 1e3:.2f} ms/sample, speed-up {t_plain / t_cached:.1f}x"
    )
    return t_plain / t_cached


def _cifar(root: Path, per_class: int, **kwargs):
    from qifsim.events.datasets import CIFAR10DVS

    make_cifar10dvs(root, per_class=per_class, n_events=50_000)
    return lambda **more: CIFAR10DVS(root, "train", strict=False, train_ratio=0.5, **kwargs, **more)


def test_cache_read_beats_framing_again(tmp_path):
    """Paper setup (10 frames, bilinear 48x48) on 50k-event 128x128 samples."""
    make = _cifar(tmp_path / "root", per_class=8, resize=(48, 48))
    assert _measure(make, tmp_path / "c", "CIFAR10-DVS-like 48x48, uncompressed") >= 3.0


def test_cache_read_beats_reslicing_gesture_recordings(tmp_path):
    """DVS128-Gesture: without a cache each shuffled sample re-reads its whole recording."""
    from qifsim.events.datasets import DVS128Gesture

    make_gesture(tmp_path / "root", rows=10, n_events=600_000)
    make = lambda **kw: DVS128Gesture(tmp_path / "root", "train", **kw)  # noqa: E731
    assert _measure(make, tmp_path / "c", "DVS128-Gesture-like 128x128, uncompressed") >= 3.0


@pytest.mark.slow
def test_cache_speedup_on_200_samples(tmp_path):
    """The 200-sample measurement: 50k events, 48x48 and 128x128, uncompressed and gzip."""
    ratios = {}
    for size, kwargs in (("48x48", {"resize": (48, 48)}), ("128x128", {})):
        make = _cifar(tmp_path / "root", per_class=40, **kwargs)
        for compression in (None, "gzip"):
            label = f"CIFAR10-DVS-like {size}, {compression or 'uncompressed'}"
            ratios[label] = _measure(make, tmp_path / "c", label, compression=compression)
    assert ratios["CIFAR10-DVS-like 48x48, uncompressed"] >= 3.0
