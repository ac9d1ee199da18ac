"""digits-dvs: an embedded N-MNIST-like event dataset emulated from sklearn's digits.

The source is the real handwritten digits shipped inside scikit-learn
(``sklearn.datasets.load_digits``: 1,797 images of 8x8 pixels, values 0..16,
10 classes). Sample ``i`` is made as follows:

1. intensity ``image / 16`` in ``[0, 1]`` (ink bright on a black background,
   like the MNIST digits shown on a monitor for N-MNIST);
2. upscaled to 28x28 by bilinear interpolation with aligned pixel centres and
   clamped borders (:func:`qifsim.events.emulate.resize_bilinear`);
3. centred on a 34x34 sensor and moved by three saccades tracing a triangle
   (300 ms, rendered at 1 kHz; :func:`qifsim.events.emulate.saccade_video`);
4. turned into events by the DVS pixel model
   (:func:`qifsim.events.emulate.emulate_video`) with :data:`PARAMS`:
   ``C = 0.5``, mismatch ``sigma = 0.05``, refractory 1 ms, 0.5 Hz per pixel
   shot noise, ``eps = 0.01``. One sensor records every sample: its
   thresholds are drawn once from ``seed``; the noise of sample ``i`` comes
   from ``SeedSequence(seed, spawn_key=(i,))``, so a sample does not depend
   on which other samples are generated. About 5.5k events per sample
   (real N-MNIST: about 4.3k).

Split (fixed, independent of the seed, stratified): within each class, in
sklearn's order, every fifth sample (class positions 4, 9, 14, ...) is a test
sample, the rest are training samples: 1,442 train / 355 test.

Samples are generated on first use and cached in one compressed ``.npz``
under ``<cache root>/digits-dvs`` (:func:`qifsim.paths.cache_root`:
``$QIFSIM_CACHE``, else ``~/.cache/qifsim``), named by seed and
:data:`CACHE_VERSION`, written atomically (temporary file + ``os.replace``).
The file stores a SHA-256 of its arrays; a file that fails to load or to
match its checksum is rebuilt (with a warning). Only the samples asked for
are generated; later calls add missing ones to the same file.

:class:`DigitsDVS` is a ``torch.utils.data.Dataset`` of ``[T, 2, 34, 34]``
event frames (:func:`qifsim.events.frames.to_frames`).
"""

from __future__ import annotations

import functools
import hashlib
import json
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch.utils.data import Dataset

from ..atomic import atomic_path
from ..paths import cache_root
from .array import EVENT_DTYPE
from .emulate import draw_thresholds, emulate_video, resize_bilinear, saccade_video
from .frames import to_frames

SENSOR = (34, 34)
SENSOR_SIZE = (34, 34, 2)
DIGIT_SIZE = (28, 28)
N_SAMPLES = 1797
N_CLASSES = 10
SPLITS = ("train", "test", "all")
TEST_EVERY = 5
CACHE_VERSION = 1

PARAMS = {
    "contrast": 0.5,
    "contrast_sigma": 0.05,
    "refractory_us": 1000,
    "noise_rate_hz": 0.5,
    "eps": 0.01,
    "duration_us": 300_000,
    "fps": 1000.0,
    "amplitude": 2.0,
}
"""Emulation parameters of digits-dvs (changing them needs a new :data:`CACHE_VERSION`)."""

_ARRAYS = ("indices", "offsets", "x", "y", "t", "p")


@functools.cache
def _sklearn_digits() -> tuple[np.ndarray, np.ndarray]:
    """``(images [1797, 8, 8] float64 in [0, 1], labels [1797] int64)`` from sklearn."""
    from sklearn.datasets import load_digits

    digits = load_digits()
    return digits.images / 16.0, digits.target.astype(np.int64)


def split_indices(split: str = "train") -> np.ndarray:
    """sklearn indices (int64, ascending) of a split: ``"train"``, ``"test"`` or ``"all"``."""
    if split not in SPLITS:
        raise ValueError(f"split must be one of {SPLITS}, got {split!r}")
    labels = _sklearn_digits()[1]
    if split == "all":
        return np.arange(labels.shape[0], dtype=np.int64)
    position = np.zeros(labels.shape[0], dtype=np.int64)
    for c in range(N_CLASSES):
        members = labels == c
        position[members] = np.arange(int(members.sum()))
    is_test = position % TEST_EVERY == TEST_EVERY - 1
    return np.flatnonzero(is_test if split == "test" else ~is_test).astype(np.int64)


def default_cache_dir() -> Path:
    """``<cache root>/digits-dvs`` (root: :func:`qifsim.paths.cache_root`)."""
    return cache_root() / "digits-dvs"


def cache_path(cache_dir: str | Path | None = None, seed: int = 0) -> Path:
    """The cache file of one seed."""
    root = Path(cache_dir) if cache_dir is not None else default_cache_dir()
    return root / f"digits-dvs-v{CACHE_VERSION}-seed{seed}.npz"


def generate_sample(index: int, seed: int = 0) -> np.ndarray:
    """Emulate sample ``index`` (sklearn order) as an event array on the 34x34 sensor."""
    images, _ = _sklearn_digits()
    digit = resize_bilinear(images[index], DIGIT_SIZE)
    frames, timestamps = saccade_video(
        digit, SENSOR, PARAMS["duration_us"], PARAMS["fps"], PARAMS["amplitude"]
    )
    return emulate_video(
        frames,
        timestamps,
        refractory_us=PARAMS["refractory_us"],
        noise_rate_hz=PARAMS["noise_rate_hz"],
        seed=np.random.SeedSequence(seed, spawn_key=(int(index),)),
        eps=PARAMS["eps"],
        thresholds=_sensor_thresholds(seed),
    )


@functools.cache
def _sensor_thresholds(seed: int) -> np.ndarray:
    """The ON/OFF thresholds ``[2, 34, 34]`` of the sensor that records every sample."""
    shape = (SENSOR[1], SENSOR[0])
    return draw_thresholds(shape, PARAMS["contrast"], PARAMS["contrast_sigma"], seed)


def _generate(indices: np.ndarray, seed: int, progress: bool) -> dict[int, np.ndarray]:
    """Emulate the given samples, with a tqdm bar when ``progress``."""
    from tqdm.auto import tqdm

    bar = tqdm(indices, desc="digits-dvs", unit="sample", disable=not progress)
    return {int(i): generate_sample(int(i), seed) for i in bar}


def _checksum(arrays: dict[str, np.ndarray], meta: str) -> str:
    digest = hashlib.sha256(meta.encode())
    for name in _ARRAYS:
        digest.update(np.ascontiguousarray(arrays[name]).tobytes())
    return digest.hexdigest()


def _meta(seed: int) -> str:
    return json.dumps({"version": CACHE_VERSION, "seed": seed, "params": PARAMS}, sort_keys=True)


def _write_cache(path: Path, samples: dict[int, np.ndarray], seed: int) -> None:
    """Write ``samples`` (index -> events) atomically as one compressed ``.npz``."""
    indices = np.array(sorted(samples), dtype=np.int64)
    chunks = [samples[int(i)] for i in indices]
    counts = np.array([c.shape[0] for c in chunks], dtype=np.int64)
    offsets = np.concatenate([[0], np.cumsum(counts)]).astype(np.int64)
    events = np.concatenate(chunks) if chunks else np.empty(0, dtype=EVENT_DTYPE)
    arrays = {
        "indices": indices,
        "offsets": offsets,
        "x": events["x"].astype(np.uint8),
        "y": events["y"].astype(np.uint8),
        "t": events["t"].astype(np.int32),
        "p": events["p"].astype(np.uint8),
    }
    meta = _meta(seed)
    with atomic_path(path) as tmp, open(tmp, "wb") as f:
        np.savez_compressed(
            f, meta=np.array(meta), checksum=np.array(_checksum(arrays, meta)), **arrays
        )


def _read_cache(path: Path, seed: int) -> dict[int, np.ndarray]:
    """Samples stored in the cache file (empty if missing, stale or corrupt: warns)."""
    if not path.exists():
        return {}
    try:
        with np.load(path, allow_pickle=False) as data:
            arrays = {name: data[name] for name in _ARRAYS}
            meta, checksum = str(data["meta"]), str(data["checksum"])
        if meta != _meta(seed):
            warnings.warn(f"digits-dvs cache {path} has other parameters; rebuilding", stacklevel=3)
            return {}
        if _checksum(arrays, meta) != checksum:
            raise ValueError("checksum mismatch")
    except Exception as err:  # any failure means: rebuild
        warnings.warn(f"digits-dvs cache {path} is unreadable ({err}); rebuilding", stacklevel=3)
        return {}
    offsets = arrays["offsets"]
    samples = {}
    for k, index in enumerate(arrays["indices"]):
        lo, hi = offsets[k], offsets[k + 1]
        events = np.empty(hi - lo, dtype=EVENT_DTYPE)
        for name in ("x", "y", "t", "p"):
            events[name] = arrays[name][lo:hi]
        samples[int(index)] = events
    return samples


def load_digits_dvs(
    split: str = "train",
    cache_dir: str | Path | None = None,
    seed: int = 0,
    progress: bool = True,
    n_samples: int | None = None,
) -> tuple[list[np.ndarray], np.ndarray]:
    """Load (generating and caching on first use) the digits-dvs recordings.

    Args:
        split: ``"train"`` (1,442), ``"test"`` (355) or ``"all"`` (1,797).
        cache_dir: cache folder (default :func:`default_cache_dir`).
        seed: sensor and noise seed; the same seed gives identical events.
        progress: show a tqdm bar while generating.
        n_samples: only the first ``n_samples`` of the split (sklearn order).

    Returns:
        ``(events, labels)``: a list of event arrays (sorted by ``t``, sensor
        size :data:`SENSOR_SIZE`) and int64 labels ``[N]``.
    """
    indices = split_indices(split)
    if n_samples is not None:
        indices = indices[: max(0, int(n_samples))]
    path = cache_path(cache_dir, seed)
    samples = _read_cache(path, seed)
    missing = np.array([i for i in indices if int(i) not in samples], dtype=np.int64)
    if missing.size:
        samples.update(_generate(missing, seed, progress))
        _write_cache(path, samples, seed)
    labels = _sklearn_digits()[1][indices]
    return [samples[int(i)] for i in indices], labels.astype(np.int64)


def export_digits_dvs(
    out_dir: str | Path,
    format: str = "atis-bin",
    cache_dir: str | Path | None = None,
    seed: int = 0,
    progress: bool = True,
    n_samples: int | None = None,
) -> list[Path]:
    """Write digits-dvs as N-MNIST-layout files.

    Each sample goes to ``out_dir/{Train,Test}/{label}/{index:05d}.bin``, where
    ``index`` is the sample's sklearn index, via
    ``qifsim.events.io.write_events(path, events, format=format)``.
    ``n_samples`` limits each split to its first samples.

    Returns:
        The written paths, train first.
    """
    from .io import write_events

    written = []
    for split, folder in (("train", "Train"), ("test", "Test")):
        events, labels = load_digits_dvs(split, cache_dir, seed, progress, n_samples)
        indices = split_indices(split)[: len(events)]
        for ev, label, index in zip(events, labels, indices, strict=True):
            path = Path(out_dir) / folder / str(int(label)) / f"{int(index):05d}.bin"
            path.parent.mkdir(parents=True, exist_ok=True)
            write_events(path, ev, format=format)
            written.append(path)
    return written


class DigitsDVS(Dataset):
    """digits-dvs as a torch Dataset of event frames.

    Args:
        split: ``"train"``, ``"test"`` or ``"all"``.
        n_frames: frames per sample ``T``.
        split_by: ``"count"`` or ``"time"`` (:func:`qifsim.events.frames.to_frames`).
        transform: optional callable applied to the frame tensor.
        cache_dir, seed, progress, n_samples: as in :func:`load_digits_dvs`.

    Items are ``(frames, label)``: float32 tensor ``[T, 2, 34, 34]`` (channel
    0 OFF, 1 ON; event counts) and an ``int``. ``events`` and ``labels`` hold
    the recordings and their int64 labels.
    """

    sensor_size = SENSOR_SIZE

    def __init__(
        self,
        split: str = "train",
        n_frames: int = 10,
        split_by: str = "count",
        transform: Callable[[torch.Tensor], Any] | None = None,
        cache_dir: str | Path | None = None,
        seed: int = 0,
        progress: bool = True,
        n_samples: int | None = None,
    ) -> None:
        self.events, self.labels = load_digits_dvs(split, cache_dir, seed, progress, n_samples)
        self.n_frames = n_frames
        self.split_by = split_by
        self.transform = transform

    def __len__(self) -> int:
        return len(self.events)

    def __getitem__(self, i: int) -> tuple[Any, int]:
        frames = torch.from_numpy(
            to_frames(self.events[i], SENSOR_SIZE, self.n_frames, self.split_by)
        )
        if self.transform is not None:
            frames = self.transform(frames)
        return frames, int(self.labels[i])
