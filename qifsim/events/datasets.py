"""Event datasets as torch ``Dataset``s: N-MNIST, N-Caltech101, N-Cars, CIFAR10-DVS, DVS128-Gesture.

Every class reads a root folder laid out as the dataset's archives unpack
(``datasets/<name>.json`` in the catalogue says where each file goes and
where to download it; nothing is downloaded here), indexes it
deterministically (names sorted in Python string order) and returns
``(frames, label)``: ``frames`` a float32 tensor ``[T, 2, H, W]`` of
per-polarity event counts (``qifsim.events.to_frames``; channel 0 = OFF,
1 = ON), ``label`` an int.

Pipeline of one sample: raw file -> events (``events(i)``) ->
``event_transform`` -> ``to_frames`` on the catalogue's sensor size ->
optional ``resize`` -> (HDF5 cache when ``cache`` is set) -> ``transform`` ->
tensor. Everything before the cache must be deterministic; ``transform`` (the
random augmentation) runs on every access.

Splits (details and counts in the catalogue):

* N-MNIST, N-Cars: the official folders (``Train``/``Test``,
  ``n-cars_train``/``n-cars_test``);
* CIFAR10-DVS, N-Caltech101 (no official split): per class, files sorted by
  name, the first ``floor(train_ratio * n)`` are train, the rest test
  (``train_ratio=0.9`` by default);
* DVS128-Gesture: the official trial lists; every row of a recording's label
  CSV is one sample (events with ``start <= t < end``).

Sensor sizes: N-Caltech101 (240x180) and N-Cars (120x100) samples differ in
size; they are framed on the nominal maximum canvas with events at their
recorded coordinates (zero elsewhere), so every item has the same shape.

A root that is missing or incomplete raises
:class:`~qifsim.events.errors.DatasetNotFoundError`, whose message lists the
expected layout, the counts found against those expected, how to lay the
archives out and where to get them. ``strict=False`` accepts a subset (at
least one sample).
"""

from __future__ import annotations

import hashlib
import math
import os
import warnings
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import torch
from torch.utils.data import Dataset

from .cache import FrameCache, cached_frames, default_cache_dir
from .catalogue import DatasetInfo, dataset_info
from .errors import DatasetNotFoundError
from .frames import to_frames
from .transforms import resize_frames

SPLITS = ("train", "test")
RESIZE_MODES = ("bilinear", "nearest")
CacheArg = bool | str | os.PathLike | None


@dataclass(frozen=True)
class Sample:
    """One indexed sample.

    Attributes:
        path: the raw file, relative to the dataset folder (POSIX separators).
        label: class index (``classes[label]``).
        start_us, end_us: the labelled slice ``start_us <= t < end_us`` (us) of a
            recording (DVS128-Gesture), else ``None`` (the whole file).
    """

    path: str
    label: int
    start_us: int | None = None
    end_us: int | None = None


def download_message(info: DatasetInfo) -> str:
    """Why ``download=True`` cannot work and what to do instead."""
    return (
        f"{info.title} cannot be downloaded automatically (qifsim ships and fetches no data). "
        f"Download it by hand from {info.url} and lay it out as follows: {info.setup} "
        "Then pass that folder as root with download=False."
    )


def _files(folder: Path, suffix: str) -> list[str]:
    """Sorted names of the files in ``folder`` ending in ``suffix`` (case-sensitive)."""
    with os.scandir(folder) as entries:
        return sorted(e.name for e in entries if e.name.endswith(suffix) and e.is_file())


def _subdirs(folder: Path) -> set[str]:
    with os.scandir(folder) as entries:
        return {e.name for e in entries if e.is_dir() and not e.name.startswith(".")}


class _Framed:
    """The deterministic part of a dataset (what the cache stores): ``[i] -> (frames, label)``."""

    def __init__(self, dataset: EventDataset) -> None:
        self.dataset = dataset

    def __len__(self) -> int:
        return len(self.dataset)

    def __getitem__(self, index: int) -> tuple[np.ndarray, int]:
        return self.dataset._compute_frames(index), self.dataset.samples[index].label


class EventDataset(Dataset):
    """Shared base of the event datasets (subclasses set ``name`` and ``_index``).

    Args:
        root: folder holding the raw dataset (layout in the catalogue).
        split: ``"train"`` or ``"test"``.
        n_frames: number of frames ``T``.
        split_by: ``"count"`` or ``"time"`` (see :func:`qifsim.events.to_frames`).
        transform: ``frames [T, 2, H, W] numpy float32 -> frames`` (numpy or tensor),
            applied on every access (random augmentation goes here), e.g.
            ``qifsim.events.transforms.preset(name, train=True)``.
        event_transform: ``events -> events``, applied before framing; must be
            deterministic when ``cache`` is set (and described by ``cache_key_extra``).
        cache: ``None``/``False`` (frame on every access), ``True`` (HDF5 cache in
            :func:`qifsim.events.cache.default_cache_dir`), or a directory / ``.h5`` file.
        download: must stay ``False``: ``True`` raises, saying where to get the data.
        strict: require the complete dataset (the catalogue's counts); ``False``
            accepts a subset of the files.
        resize: ``(H, W)`` to resize the frames to before caching, or ``None``.
        resize_mode: ``"bilinear"`` (``align_corners=False``) or ``"nearest"``
            (:func:`qifsim.events.transforms.resize_frames`).
        reader_options: options for :func:`qifsim.events.io.read_events`, on top of
            the catalogue's (e.g. ``{"orientation": "transposed"}`` for CIFAR10-DVS).
        cache_key_extra: JSON-able description of ``event_transform`` for the cache key.
        cache_options: extra keyword arguments for
            :func:`qifsim.events.cache.cached_frames` (``compression``, ``progress``...).

    Attributes:
        info: the catalogue entry; samples: the index (list of :class:`Sample`);
        sensor_size: ``(W, H, 2)``; frame_shape: ``(T, 2, H', W')`` of every item.
    """

    name: ClassVar[str] = ""

    def __init__(
        self,
        root: str | os.PathLike,
        split: str = "train",
        n_frames: int = 10,
        split_by: str = "count",
        transform: Callable[[np.ndarray], Any] | None = None,
        event_transform: Callable[[np.ndarray], np.ndarray] | None = None,
        cache: CacheArg = None,
        download: bool = False,
        *,
        strict: bool = True,
        resize: tuple[int, int] | int | None = None,
        resize_mode: str = "bilinear",
        reader_options: Mapping[str, Any] | None = None,
        cache_key_extra: Mapping[str, Any] | None = None,
        cache_options: Mapping[str, Any] | None = None,
    ) -> None:
        self.info = dataset_info(self.name)
        if download:
            raise RuntimeError(download_message(self.info))
        if split not in SPLITS:
            raise ValueError(f"split must be one of {SPLITS}, got {split!r}")
        if isinstance(n_frames, bool) or not isinstance(n_frames, int) or n_frames < 1:
            raise ValueError(f"n_frames must be an integer >= 1, got {n_frames!r}")
        if split_by not in ("count", "time"):
            raise ValueError(f"split_by must be 'count' or 'time', got {split_by!r}")
        if resize_mode not in RESIZE_MODES:
            raise ValueError(f"resize_mode must be one of {RESIZE_MODES}, got {resize_mode!r}")
        if isinstance(resize, int):
            resize = (resize, resize)
        if resize is not None:
            resize = tuple(int(v) for v in resize)
            if len(resize) != 2 or min(resize) < 1:
                raise ValueError(f"resize must be (H, W) with positive sizes, got {resize!r}")
        self.root = Path(root).expanduser()
        self.split = split
        self.n_frames = n_frames
        self.split_by = split_by
        self.transform = transform
        self.event_transform = event_transform
        self.strict = strict
        self.resize = resize
        self.resize_mode = resize_mode
        self.reader_options = {**self.info.raw_options, **dict(reader_options or {})}
        self.sensor_size: tuple[int, int, int] = self.info.sensor_size
        width, height, _ = self.sensor_size
        self.frame_shape = (n_frames, 2, *(resize or (height, width)))
        if not self.root.is_dir():
            raise self._not_found([f"the root folder {str(self.root)!r} does not exist"])
        self.base = self._locate()
        self.samples: list[Sample] = self._index()
        self._cache: FrameCache | None = None
        if cache is not None and cache is not False:
            if event_transform is not None and cache_key_extra is None:
                raise ValueError(
                    "an event_transform changes the cached frames: describe it in "
                    "cache_key_extra (e.g. {'denoise_us': 5000}) so that another transform "
                    "gets another cache"
                )
            directory = default_cache_dir() if cache is True else Path(cache)
            self._cache = cached_frames(
                _Framed(self),
                self.cache_config(cache_key_extra),
                directory,
                dtype="uint16" if resize is None else "float32",
                **dict(cache_options or {}),
            )

    # -- to be provided by subclasses --------------------------------------------

    def _index(self) -> list[Sample]:
        """All samples of ``self.split``, in a deterministic order (raise if incomplete)."""
        raise NotImplementedError

    # -- layout ------------------------------------------------------------------

    @property
    def classes(self) -> tuple[str, ...]:
        """Class names in label order."""
        return self.info.classes

    @property
    def num_classes(self) -> int:
        """Number of classes."""
        return len(self.classes)

    @property
    def targets(self) -> list[int]:
        """Label of every sample, in index order."""
        return [s.label for s in self.samples]

    def _locate(self) -> Path:
        """The folder the catalogue's layout starts from: ``root/<root_folder>`` or ``root``."""
        folder = self.info.root_folder
        if folder and (self.root / folder).is_dir():
            return self.root / folder
        return self.root

    def _not_found(self, problems: list[str]) -> DatasetNotFoundError:
        info = self.info
        expected = info.expected_files
        counts = ", ".join(f"{k} {v:,}" for k, v in expected.items() if v is not None)
        lines = [
            f"{info.title} ({info.name!r}, split {self.split!r}) not found or incomplete "
            f"under {str(self.root)!r}:",
            *(f"  - {p}" for p in problems),
            "expected layout, relative to the root:",
            *(f"  {split}: {pattern}" for split, pattern in info.layout.items()),
        ]
        if counts:
            what = "recordings" if info.split_rule == "trial-lists" else "raw files"
            lines.append(f"expected {what}: {counts} ({info.raw_format} format)")
        lines += [
            f"setup: {info.setup}",
            f"get it from: {info.url} (download by hand; qifsim downloads nothing)",
        ]
        if self.strict:
            lines.append("strict=False accepts a partial copy (any non-empty subset).")
        return DatasetNotFoundError("\n".join(lines))

    def _scan_classes(self, folder: Path, where: str) -> tuple[dict[str, list[str]], list[str]]:
        """``class -> sorted file names`` in ``folder/<class>/``, and a list of problems."""
        suffix = self.info.raw_suffix
        present = _subdirs(folder)
        unknown = sorted(present - set(self.info.classes))
        if unknown:
            shown = ", ".join(unknown[:10]) + (" ..." if len(unknown) > 10 else "")
            warnings.warn(
                f"{self.info.title}: ignoring folders that are not classes of the catalogue "
                f"in {str(folder)!r}: {shown}",
                RuntimeWarning,
                stacklevel=3,
            )
        files = {c: _files(folder / c, suffix) if c in present else [] for c in self.classes}
        problems = []
        missing = [c for c in self.classes if c not in present]
        empty = [c for c in self.classes if c in present and not files[c]]
        if self.strict and missing:
            shown = ", ".join(missing[:10]) + (" ..." if len(missing) > 10 else "")
            problems.append(
                f"{len(missing)} of {len(self.classes)} class folders missing in {where}: {shown}"
            )
        if self.strict and empty:
            shown = ", ".join(empty[:10]) + (" ..." if len(empty) > 10 else "")
            problems.append(f"class folders without {suffix} files in {where}: {shown}")
        if not any(files.values()):
            problems.append(f"no {suffix} files in {where}<class>/ (found 0 files)")
        return files, problems

    def _count_problems(
        self, files: dict[str, list[str]], expected_total: int | None, per_class, where: str
    ) -> list[str]:
        """Exact-count check (strict only): totals, and the classes that differ."""
        if not self.strict or self.info.count_check != "exact":
            return []
        found = sum(len(v) for v in files.values())
        problems = []
        if expected_total is not None and found != expected_total:
            problems.append(
                f"found {found:,} of {expected_total:,} {self.info.raw_suffix} files in {where}"
            )
        if per_class:
            differ = [
                f"{c}: {len(files.get(c, [])):,}/{n:,}"
                for c, n in per_class.items()
                if len(files.get(c, [])) != n
            ]
            if differ and (problems or expected_total is None):
                shown = ", ".join(differ[:12]) + (" ..." if len(differ) > 12 else "")
                problems.append(f"per class found/expected: {shown}")
        return problems

    # -- samples -------------------------------------------------------------------

    def __len__(self) -> int:
        return len(self.samples)

    def _read(self, sample: Sample) -> np.ndarray:
        from .io import read_events

        return read_events(self.base / sample.path, self.info.raw_format, **self.reader_options)

    def events(self, index: int) -> np.ndarray:
        """Raw events of sample ``index`` (EVENT_DTYPE, sorted by t; no event_transform)."""
        return self._read(self.samples[index])

    def _compute_frames(self, index: int) -> np.ndarray:
        """Deterministic frames of sample ``index`` (float32 ``frame_shape``), from the raw file."""
        sample = self.samples[index]
        events = self._read(sample)
        if self.event_transform is not None:
            events = self.event_transform(events)
        try:
            frames = to_frames(events, self.sensor_size, self.n_frames, self.split_by)
        except ValueError as err:
            raise ValueError(f"{self.info.title} sample {index} ({sample.path}): {err}") from err
        if self.resize is not None:
            frames = resize_frames(frames, self.resize, self.resize_mode)
        return frames

    def frames(self, index: int) -> np.ndarray:
        """Frames of sample ``index`` before ``transform`` (float32 ``[T, 2, H, W]``, cached)."""
        if self._cache is not None:
            return self._cache.frames(index)
        return self._compute_frames(index)

    def __getitem__(self, index: int) -> tuple[torch.Tensor, int]:
        """``(frames float32 tensor [T, 2, H, W], label)``."""
        frames = self.frames(index)
        if self.transform is not None:
            frames = self.transform(frames)
        if isinstance(frames, torch.Tensor):
            tensor = frames.to(torch.float32)
        else:
            tensor = torch.from_numpy(np.ascontiguousarray(frames, dtype=np.float32))
        return tensor, self.samples[index].label

    # -- cache ---------------------------------------------------------------------

    def file_digest(self) -> str:
        """SHA-256 over the index (relative paths, file sizes, labels, slices): root-independent."""
        digest = hashlib.sha256()
        sizes: dict[str, int] = {}
        for s in self.samples:
            if s.path not in sizes:
                sizes[s.path] = (self.base / s.path).stat().st_size
            digest.update(
                f"{s.path}\t{sizes[s.path]}\t{s.label}\t{s.start_us}\t{s.end_us}\n".encode()
            )
        return digest.hexdigest()

    def cache_config(self, extra: Mapping[str, Any] | None = None) -> dict[str, Any]:
        """The cache key config: everything that shapes the cached frames."""
        return {
            "dataset": self.info.name,
            "split": self.split,
            "files": self.file_digest(),
            "classes": list(self.classes),
            "n_frames": self.n_frames,
            "split_by": self.split_by,
            "sensor_size": list(self.sensor_size),
            "resize": None if self.resize is None else list(self.resize),
            "resize_mode": None if self.resize is None else self.resize_mode,
            "reader": {"format": self.info.raw_format, "options": dict(self.reader_options)},
            "event_transform": None if extra is None else dict(extra),
            "framing": "qifsim.events.to_frames/1",
        }

    @property
    def cache(self) -> FrameCache | None:
        """The frame cache in use, or ``None``."""
        return self._cache

    def __repr__(self) -> str:
        return (
            f"{type(self).__name__}(root={str(self.root)!r}, split={self.split!r}, "
            f"n={len(self)}, frame_shape={self.frame_shape}, cache={self._cache is not None})"
        )


class _FolderSplit(EventDataset):
    """Official split by folders: ``<split folder>/<class>/<file>``."""

    def _index(self) -> list[Sample]:
        folder = self.info.split_folders[self.split]
        where = f"{folder}/"
        if not (self.base / folder).is_dir():
            raise self._not_found(
                [f"missing folder {where} (expected {self.info.layout[self.split]})"]
            )
        files, problems = self._scan_classes(self.base / folder, where)
        per_class = (self.info.per_class_files or {}).get(self.split)
        problems += self._count_problems(
            files, self.info.expected_files.get(self.split), per_class, where
        )
        if problems:
            raise self._not_found(problems)
        return [
            Sample(f"{folder}/{c}/{name}", label)
            for label, c in enumerate(self.classes)
            for name in files[c]
        ]


class _RatioSplit(EventDataset):
    """No official split: per class, sorted names, the first ``floor(ratio * n)`` are train."""

    def __init__(self, root: str | os.PathLike, *args: Any, train_ratio: float | None = None, **kw):
        ratio = dataset_info(self.name).train_ratio if train_ratio is None else train_ratio
        if not 0.0 < float(ratio) < 1.0:
            raise ValueError(f"train_ratio must be in (0, 1), got {ratio!r}")
        self.train_ratio = float(ratio)
        super().__init__(root, *args, **kw)

    def _index(self) -> list[Sample]:
        folder = self.info.root_folder
        where = f"{folder}/" if folder and self.base != self.root else "./"
        if folder and self.base == self.root and not _subdirs(self.root) & set(self.classes):
            layout = self.info.layout[self.split]
            raise self._not_found([f"missing folder {folder}/ (expected {layout})"])
        files, problems = self._scan_classes(self.base, where)
        per_class = (self.info.per_class_files or {}).get("all")
        if per_class is not None:
            per_class = {c: n for c, n in per_class.items() if c in self.classes}
        problems += self._count_problems(
            files, self.info.expected_files.get("total"), per_class, where
        )
        if problems:
            raise self._not_found(problems)
        samples = []
        for label, c in enumerate(self.classes):
            names = files[c]
            n_train = math.floor(self.train_ratio * len(names) + 1e-9)
            chosen = names[:n_train] if self.split == "train" else names[n_train:]
            samples += [Sample(f"{c}/{name}", label) for name in chosen]
        return samples

    def cache_config(self, extra: Mapping[str, Any] | None = None) -> dict[str, Any]:
        return {**super().cache_config(extra), "train_ratio": self.train_ratio}


class NMNIST(_FolderSplit):
    """N-MNIST: 34x34, official ``Train/`` (60,000) and ``Test/`` (10,000) folders."""

    name = "n-mnist"


class NCars(_FolderSplit):
    """N-Cars: nominal 120x100 canvas, ``n-cars_train/`` (15,422) and ``n-cars_test/`` (8,607)."""

    name = "n-cars"


class CIFAR10DVS(_RatioSplit):
    """CIFAR10-DVS: 128x128, 10 x 1,000 ``.aedat`` files, per-class ``train_ratio`` split.

    ``reader_options={"orientation": "transposed"}`` gives SpikingJelly's image
    orientation instead of jAER's (the default).
    """

    name = "cifar10-dvs"


class NCaltech101(_RatioSplit):
    """N-Caltech101: nominal 240x180 canvas, 101 classes, per-class ``train_ratio`` split.

    Args:
        include_background: keep ``BACKGROUND_Google`` (101 classes, default, as
            SpikingJelly and the QIF paper); ``False`` gives the 100 object classes.
    """

    name = "n-caltech101"
    BACKGROUND = "BACKGROUND_Google"

    def __init__(self, root: str | os.PathLike, *args: Any, include_background: bool = True, **kw):
        self.include_background = bool(include_background)
        super().__init__(root, *args, **kw)

    @property
    def classes(self) -> tuple[str, ...]:
        if self.include_background:
            return self.info.classes
        return tuple(c for c in self.info.classes if c != self.BACKGROUND)


class DVS128Gesture(EventDataset):
    """DVS128-Gesture: 128x128, official trial lists; one sample per label-CSV row.

    Reading a sample reads its whole recording; the last recording read is
    kept in memory (per process), so iterating in index order reads each
    recording once. Use ``cache=`` for shuffled training.
    """

    name = "dvs128-gesture"

    def _index(self) -> list[Sample]:
        from .io.gesture import read_gesture_labels, read_trials

        folder = self.info.root_folder
        where = f"{folder}/" if self.base != self.root else ""
        list_name = self.info.split_folders[self.split]
        trial_list = self.base / list_name
        if not trial_list.is_file():
            raise self._not_found([f"missing trial list {where}{list_name}"])
        names = sorted(set(read_trials(trial_list)))
        missing = []
        present = []
        for name in names:
            stem = name[: -len(".aedat")]
            lacking = [f for f in (name, f"{stem}_labels.csv") if not (self.base / f).is_file()]
            (missing if lacking else present).append((name, lacking))
        problems = []
        if missing and self.strict:
            shown = ", ".join(f"{where}{f}" for _, lack in missing[:6] for f in lack)
            problems.append(
                f"{len(missing)} of {len(names)} trials listed in {list_name} lack files: "
                f"{shown}{' ...' if len(missing) > 6 else ''}"
            )
        if not present:
            problems.append(f"none of the {len(names)} trials listed in {list_name} is present")
        if problems:
            raise self._not_found(problems)
        if missing:
            warnings.warn(
                f"DVS128-Gesture: {len(missing)} of {len(names)} listed trials are missing "
                "(strict=False): skipped",
                RuntimeWarning,
                stacklevel=3,
            )
        samples = []
        for name, _ in present:
            rows = read_gesture_labels(self.base / f"{name[: -len('.aedat')]}_labels.csv")
            samples += [
                Sample(name, int(r["class"]) - 1, int(r["start_us"]), int(r["end_us"]))
                for r in rows
            ]
        return samples

    def _read(self, sample: Sample) -> np.ndarray:
        from .array import slice_by_time

        recording = getattr(self, "_recording", None)
        if recording is None or recording[0] != (os.getpid(), sample.path):
            events = super()._read(sample)
            recording = ((os.getpid(), sample.path), events)
            self._recording = recording
        return slice_by_time(recording[1], sample.start_us, sample.end_us).copy()

    def __getstate__(self) -> dict[str, Any]:
        state = self.__dict__.copy()
        state.pop("_recording", None)
        return state


DATASETS: dict[str, type[EventDataset]] = {
    cls.name: cls for cls in (CIFAR10DVS, DVS128Gesture, NCaltech101, NCars, NMNIST)
}


def load_dataset(
    name: str, root: str | os.PathLike, *, paper: bool = False, **kwargs: Any
) -> EventDataset:
    """The dataset class for catalogue ``name``, built on ``root``.

    Args:
        name: a catalogue name (``"cifar10-dvs"``, ``"n-caltech101"``, ``"n-cars"``,
            ``"dvs128-gesture"``, ``"n-mnist"``).
        root: the dataset root.
        paper: fill in the QIF paper's preprocessing from the catalogue
            (``n_frames``, ``split_by``, ``resize``, ``resize_mode``, and
            ``transform = transforms.preset(name, train=split == "train")``)
            wherever ``kwargs`` does not set them.
        **kwargs: passed to the class (``split``, ``cache``, ``strict``, ...).
    """
    info = dataset_info(name)
    cls = DATASETS[info.name]
    if paper:
        p = info.paper
        defaults: dict[str, Any] = {"n_frames": p["n_frames"], "split_by": p["split_by"]}
        if p.get("resize"):
            defaults.update(resize=tuple(p["resize"]), resize_mode=p["resize_mode"])
        if p.get("augmentation") and "transform" not in kwargs:
            from .transforms import preset

            defaults["transform"] = preset(
                p["augmentation"], train=kwargs.get("split", "train") == "train"
            )
        kwargs = {**defaults, **kwargs}
    return cls(root, **kwargs)
