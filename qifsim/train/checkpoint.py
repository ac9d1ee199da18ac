"""Training checkpoints: what they hold, atomic writing, checked loading.

A checkpoint is a dict saved with ``torch.save`` (loadable with
``torch.load(weights_only=True)``: tensors, numbers, strings, lists, tuples
and dicts only):

==================  ==========================================================
``format``          :data:`FORMAT` and ``format_version`` (:data:`FORMAT_VERSION`)
``qifsim_version``  the package version that wrote it
``epoch``           completed epochs (training resumes at this 0-based epoch)
``config``          :meth:`TrainConfig.to_dict` of the run
``model``           the model's ``state_dict`` (never DDP-prefixed)
``optimizer``       the optimiser's ``state_dict``
``scheduler``       the LR scheduler's ``state_dict``
``rng``             per process (list indexed by rank): Python, numpy, torch
                    CPU and CUDA generator states, and the training loader's
                    generator (``"loader"``)
``history``         the metrics lines written so far (one dict per epoch)
``best``            ``{"test_acc", "epoch"}`` of the best evaluated epoch
``world_size``      processes that trained it
==================  ==========================================================

Files are written through :func:`qifsim.atomic.open_atomic`: a reader (or a
resumed run) sees the previous checkpoint or the new one, never a torn file.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch
from torch import nn

from ..atomic import atomic_path, open_atomic

FORMAT = "qifsim-train-checkpoint"
FORMAT_VERSION = 1
LAST = "last.pt"
BEST = "best.pt"

#: Config fields that may differ between a checkpoint and the run resuming it.
RESUMABLE_CHANGES = ("name", "data_root", "num_workers")


class CheckpointError(ValueError):
    """A checkpoint cannot be used: unreadable, of another format, or not matching."""


class CheckpointMismatchError(CheckpointError):
    """A checkpoint does not fit the model or configuration it is loaded into."""


def qifsim_version() -> str:
    """The installed qifsim version."""
    from .. import __version__

    return __version__


def save_checkpoint(path: str | os.PathLike, checkpoint: Mapping[str, Any]) -> Path:
    """Write ``checkpoint`` to ``path`` atomically (``torch.save``); return the path."""
    path = Path(path)
    with open_atomic(path) as f:
        torch.save(dict(checkpoint), f)
    return path


def copy_checkpoint(src: str | os.PathLike, dst: str | os.PathLike) -> Path:
    """Copy a checkpoint file atomically (e.g. ``last.pt`` to ``best.pt``)."""
    with atomic_path(dst) as tmp:
        shutil.copyfile(src, tmp)
    return Path(dst)


def load_checkpoint(
    path: str | os.PathLike, map_location: str | torch.device = "cpu"
) -> dict[str, Any]:
    """Load and check a checkpoint written by :func:`save_checkpoint`.

    Raises:
        FileNotFoundError: ``path`` does not exist.
        CheckpointError: the file is unreadable or not a qifsim training checkpoint
            of a supported format version.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"no checkpoint at {str(path)!r}")
    try:
        checkpoint = torch.load(path, map_location=map_location, weights_only=True)
    except Exception as err:  # any unpickling failure: say which file
        raise CheckpointError(f"cannot read checkpoint {str(path)!r}: {err}") from err
    if not isinstance(checkpoint, dict) or checkpoint.get("format") != FORMAT:
        raise CheckpointError(f"{str(path)!r} is not a qifsim training checkpoint")
    version = checkpoint.get("format_version")
    if version != FORMAT_VERSION:
        raise CheckpointError(
            f"checkpoint {str(path)!r} has format version {version}; this qifsim reads "
            f"version {FORMAT_VERSION}"
        )
    return checkpoint


def _shorten(items: list[str], limit: int = 12) -> str:
    shown = ", ".join(items[:limit])
    return shown + (f" ... ({len(items)} in all)" if len(items) > limit else "")


def model_state_problems(model: nn.Module, state: Mapping[str, torch.Tensor]) -> list[str]:
    """Missing keys, unexpected keys and shape mismatches of ``state`` against ``model``."""
    own = model.state_dict()
    missing = [k for k in own if k not in state]
    unexpected = [k for k in state if k not in own]
    shapes = [
        f"{k}: checkpoint {tuple(state[k].shape)} vs model {tuple(own[k].shape)}"
        for k in own
        if k in state
        and isinstance(state[k], torch.Tensor)
        and tuple(state[k].shape) != tuple(own[k].shape)
    ]
    problems = []
    if missing:
        problems.append(f"missing in the checkpoint: {_shorten(missing)}")
    if unexpected:
        problems.append(f"not in the model: {_shorten(unexpected)}")
    if shapes:
        problems.append(f"shape mismatches: {_shorten(shapes, 8)}")
    return problems


def load_model_state(model: nn.Module, state: Mapping[str, torch.Tensor]) -> None:
    """Load ``state`` into ``model`` strictly; a mismatch raises naming the keys and shapes.

    Raises:
        CheckpointMismatchError: listing missing keys, unexpected keys and shapes.
    """
    problems = model_state_problems(model, state)
    if problems:
        raise CheckpointMismatchError(
            f"the checkpoint does not fit {type(model).__name__}:\n"
            + "\n".join(f"  - {p}" for p in problems)
        )
    model.load_state_dict(state)


def config_differences(saved: Mapping[str, Any], current: Mapping[str, Any]) -> list[str]:
    """``"field: checkpoint X vs now Y"`` for every field that differs (beyond
    :data:`RESUMABLE_CHANGES`)."""
    keys = sorted(set(saved) | set(current))
    return [
        f"{k}: checkpoint {saved.get(k)!r} vs now {current.get(k)!r}"
        for k in keys
        if k not in RESUMABLE_CHANGES and saved.get(k) != current.get(k)
    ]


def check_resumable(saved: Mapping[str, Any], current: Mapping[str, Any]) -> None:
    """Raise unless a run with config ``current`` may continue a checkpoint of config ``saved``.

    Raises:
        CheckpointMismatchError: naming every differing field.
    """
    differences = config_differences(saved, current)
    if differences:
        raise CheckpointMismatchError(
            "cannot resume: the configuration differs from the checkpoint's in "
            f"(only {RESUMABLE_CHANGES} may change):\n" + "\n".join(f"  - {d}" for d in differences)
        )
