"""Training and test datasets for a :class:`~qifsim.train.config.TrainConfig`.

Items are ``(x, label)`` with ``x`` either event frames ``[T, C, H, W]``
(``info.static`` false) or a static image ``[C, H, W]`` (``info.static``
true, repeated over time by the training loop).

* ``digits-dvs``: :class:`qifsim.events.digits_dvs.DigitsDVS` with
  ``n_frames = T`` (generated and cached on first use; ``n_samples`` takes
  the first samples of each split, which mixes all classes).
* N-MNIST, N-Caltech101, N-Cars, CIFAR10-DVS, DVS128-Gesture:
  :func:`qifsim.events.datasets.load_dataset` with the paper's preprocessing
  from the catalogue (``n_frames = T``; ``input_size`` overrides the resize);
  the training split gets the paper's augmentation
  (:func:`qifsim.events.transforms.preset`).
* CIFAR-10/100, Fashion-MNIST: torchvision with ``download=False``; CIFAR
  training images get random crops (32, padding 4) and horizontal flips; all
  are normalised per channel with the training set's mean and std.

Random augmentation is seeded per sample by ``(seed, epoch, index)`` in
:class:`SeededAugment`, so it does not depend on worker processes, on the
order samples are drawn in, or on how many processes train together; that
is what makes an interrupted run resume bit for bit. A missing dataset raises
:class:`~qifsim.events.errors.DatasetNotFoundError` (a ``FileNotFoundError``)
saying where the files should go.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch.utils.data import Dataset, Subset

from ..events.errors import DatasetNotFoundError
from .config import TrainConfig

EVENT_DATASETS = ("n-mnist", "n-caltech101", "n-cars", "cifar10-dvs", "dvs128-gesture")
STATIC_DATASETS = ("cifar10", "cifar100", "fashion-mnist")
SPLITS = ("train", "test")

#: Per-channel (mean, std) of the training images (after scaling to [0, 1]).
NORMALISATION = {
    "cifar10": ((0.4914, 0.4822, 0.4465), (0.2470, 0.2435, 0.2616)),
    "cifar100": ((0.5071, 0.4865, 0.4409), (0.2673, 0.2564, 0.2762)),
    "fashion-mnist": ((0.2860,), (0.3530,)),
}

#: (torchvision class name, classes, channels, (H, W), what to put where).
_STATIC = {
    "cifar10": (
        "CIFAR10",
        10,
        3,
        (32, 32),
        "the folder cifar-10-batches-py/ (data_batch_1 .. data_batch_5, test_batch, "
        "batches.meta), unpacked from cifar-10-python.tar.gz "
        "(https://www.cs.toronto.edu/~kriz/cifar.html)",
    ),
    "cifar100": (
        "CIFAR100",
        100,
        3,
        (32, 32),
        "the folder cifar-100-python/ (train, test, meta), unpacked from "
        "cifar-100-python.tar.gz (https://www.cs.toronto.edu/~kriz/cifar.html)",
    ),
    "fashion-mnist": (
        "FashionMNIST",
        10,
        1,
        (28, 28),
        "FashionMNIST/raw/ with train-images-idx3-ubyte, train-labels-idx1-ubyte, "
        "t10k-images-idx3-ubyte and t10k-labels-idx1-ubyte (the .gz files from "
        "https://github.com/zalandoresearch/fashion-mnist, gunzipped or not)",
    ),
}


@dataclass(frozen=True)
class DataInfo:
    """What the model needs to know about the data.

    Attributes:
        dataset: the dataset name.
        num_classes: number of classes.
        in_channels: input channels (2 polarities for events).
        input_size: ``(H, W)`` of one input frame/image as fed to the model.
        static: ``True`` for static images ``[C, H, W]`` (repeated over ``T``),
            ``False`` for event frames ``[T, C, H, W]``.
    """

    dataset: str
    num_classes: int
    in_channels: int
    input_size: tuple[int, int]
    static: bool


class SeededAugment(Dataset):
    """Apply a random ``transform`` to ``base[i]`` with a generator seeded by ``(seed, epoch, i)``.

    ``transform`` is either a :class:`qifsim.events.transforms.Transform`
    (called as ``transform(x, rng=rng)`` with a numpy generator) or any other
    callable that draws from torch's global generator (torchvision transforms),
    which then runs inside ``torch.random.fork_rng`` seeded from the same
    sequence, leaving the caller's generator untouched. Call
    :meth:`set_epoch` before each epoch (the loader helpers do).
    """

    def __init__(self, base: Dataset, transform: Callable[..., Any], seed: int) -> None:
        from ..events.transforms import Transform

        self.base = base
        self.transform = transform
        self.seed = int(seed)
        self.epoch = 0
        self._takes_rng = isinstance(transform, Transform)

    def set_epoch(self, epoch: int) -> None:
        """Use the draws of ``epoch`` from now on."""
        self.epoch = int(epoch)

    def __len__(self) -> int:
        return len(self.base)  # type: ignore[arg-type]

    def __getitem__(self, index: int) -> tuple[Any, int]:
        x, label = self.base[index]
        sequence = np.random.SeedSequence([self.seed, self.epoch, int(index)])
        if self._takes_rng:
            return self.transform(x, rng=np.random.default_rng(sequence)), label
        torch_seed = int(sequence.generate_state(1, np.uint64)[0] >> np.uint64(1))
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(torch_seed)
            return self.transform(x), label


class _Mapped(Dataset):
    """``(fn(x), label)`` for every item of ``base`` (a deterministic transform)."""

    def __init__(self, base: Dataset, fn: Callable[[Any], Any]) -> None:
        self.base = base
        self.fn = fn

    def __len__(self) -> int:
        return len(self.base)  # type: ignore[arg-type]

    def __getitem__(self, index: int) -> tuple[Any, int]:
        x, label = self.base[index]
        return self.fn(x), label


def sample_limit(config: TrainConfig, split: str) -> int | None:
    """How many samples of ``split`` the config asks for (``None``: all)."""
    if split == "test" and config.n_test_samples is not None:
        return config.n_test_samples
    return config.n_samples


def _subset(dataset: Dataset, n: int | None) -> Dataset:
    """A fixed random subset of ``n`` samples (in index order; seed 0, independent of the run seed).

    Event and image datasets are stored class by class, so the first ``n``
    samples would cover few classes; a random subset keeps the class mix.
    """
    size = len(dataset)  # type: ignore[arg-type]
    if n is None or n >= size:
        return dataset
    generator = torch.Generator().manual_seed(0)
    keep = torch.randperm(size, generator=generator)[:n].sort().values
    return Subset(dataset, keep.tolist())


def _require_root(config: TrainConfig) -> Path:
    if config.data_root is None:
        raise DatasetNotFoundError(
            f"dataset {config.dataset!r} needs data_root (the folder holding its files); "
            "only 'digits-dvs' is generated without one"
        )
    return Path(config.data_root).expanduser()


def _digits(config: TrainConfig, split: str) -> tuple[Dataset, DataInfo]:
    from ..events.digits_dvs import SENSOR, DigitsDVS

    resize = None
    size = (SENSOR[1], SENSOR[0])
    if config.input_size is not None and tuple(config.input_size) != size:
        from ..events.transforms import Resize

        resize, size = Resize(config.input_size), tuple(config.input_size)
    kwargs: dict[str, Any] = {}
    if config.data_root is not None:
        kwargs["cache_dir"] = config.data_root
    dataset = DigitsDVS(
        split,
        n_frames=config.T,
        split_by="count",
        transform=resize,
        progress=False,
        n_samples=sample_limit(config, split),
        **kwargs,
    )
    return dataset, DataInfo(config.dataset, 10, 2, size, static=False)


def _events(config: TrainConfig, split: str) -> tuple[Dataset, DataInfo]:
    from ..events.catalogue import dataset_info
    from ..events.datasets import load_dataset
    from ..events.transforms import preset

    root = _require_root(config)
    cat = dataset_info(config.dataset)
    kwargs: dict[str, Any] = {"split": split, "n_frames": config.T, "transform": None}
    if config.frame_cache:
        kwargs["cache"] = True
    resize = config.input_size or (tuple(cat.paper["resize"]) if cat.paper.get("resize") else None)
    if config.input_size is not None:
        kwargs["resize"] = tuple(config.input_size)
    base = load_dataset(config.dataset, root, paper=True, **kwargs)
    dataset: Dataset = _subset(base, sample_limit(config, split))
    augmentation = cat.paper.get("augmentation")
    if split == "train" and augmentation:
        dataset = SeededAugment(dataset, preset(augmentation, train=True, size=resize), config.seed)
    _, _, height, width = base.frame_shape
    info = DataInfo(config.dataset, len(cat.classes), 2, (height, width), static=False)
    return dataset, info


def _static_transform(config: TrainConfig, split: str, size: tuple[int, int]):
    from torchvision import transforms as tv

    mean, std = NORMALISATION[config.dataset]
    steps: list[Any] = []
    if config.input_size is not None and tuple(config.input_size) != size:
        steps.append(tv.Resize(tuple(config.input_size)))
    height, width = config.input_size or size
    if split == "train" and config.dataset in ("cifar10", "cifar100"):
        steps += [tv.RandomCrop((height, width), padding=4), tv.RandomHorizontalFlip()]
    steps += [tv.ToTensor(), tv.Normalize(mean, std)]
    return tv.Compose(steps), split == "train" and config.dataset != "fashion-mnist"


def _static(config: TrainConfig, split: str) -> tuple[Dataset, DataInfo]:
    import torchvision

    root = _require_root(config)
    cls_name, classes, channels, size, where = _STATIC[config.dataset]
    cls = getattr(torchvision.datasets, cls_name)
    try:
        base = cls(str(root), train=split == "train", download=False)
    except RuntimeError as err:  # torchvision: "Dataset not found or corrupted."
        raise DatasetNotFoundError(
            f"{cls_name} ({config.dataset!r}, split {split!r}) not found under {str(root)!r} "
            f"({err}). Put {where} into that folder; qifsim downloads nothing."
        ) from err
    transform, random = _static_transform(config, split, size)
    limited = _subset(base, sample_limit(config, split))
    dataset = (
        SeededAugment(limited, transform, config.seed) if random else _Mapped(limited, transform)
    )
    info = DataInfo(config.dataset, classes, channels, config.input_size or size, static=True)
    return dataset, info


def build_dataset(config: TrainConfig, split: str) -> tuple[Dataset, DataInfo]:
    """The ``split`` (``"train"`` or ``"test"``) dataset of ``config`` and its :class:`DataInfo`."""
    if split not in SPLITS:
        raise ValueError(f"split must be one of {SPLITS}, got {split!r}")
    if config.dataset == "digits-dvs":
        return _digits(config, split)
    if config.dataset in EVENT_DATASETS:
        return _events(config, split)
    if config.dataset in STATIC_DATASETS:
        return _static(config, split)
    raise ValueError(f"no loader for dataset {config.dataset!r}")  # config validation stops this


def build_datasets(config: TrainConfig) -> tuple[Dataset, Dataset, DataInfo]:
    """``(train_ds, test_ds, info)`` for ``config``."""
    train, info = build_dataset(config, "train")
    test, _ = build_dataset(config, "test")
    return train, test, info
