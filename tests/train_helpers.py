"""Shared pieces of the training tests: a tiny model factory and config/metrics helpers.

``MODEL`` names :func:`tiny_digits_net` as ``"train_helpers:tiny_digits_net"``;
it resolves in-process (pytest puts ``tests/`` on ``sys.path``) and in
subprocesses started with :func:`subprocess_env` (which adds ``tests/`` to
``PYTHONPATH``).
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

import torch

from qifsim.models import build_model
from qifsim.train import TrainConfig

TESTS = Path(__file__).resolve().parent
REPO = TESTS.parent
MODEL = "train_helpers:tiny_digits_net"


def tiny_digits_net(**kwargs) -> torch.nn.Module:
    """``digits-net`` shrunk to 4/8 conv channels and 16 hidden units (fast on CPU)."""
    return build_model("digits-net", channels=(4, 8), hidden=16, **kwargs)


def tiny_config(**changes) -> TrainConfig:
    """A digits-dvs run of the tiny model on a few samples (a few seconds per epoch at most)."""
    base = {
        "name": "tiny",
        "model": MODEL,
        "dataset": "digits-dvs",
        "n_samples": 48,
        "T": 4,
        "epochs": 2,
        "batch_size": 16,
        "optimizer": "adam",
        "lr": 5e-3,
        "weight_decay": 1e-4,
        "dropout": 0.2,
        "seed": 3,
    }
    base.update(changes)
    return TrainConfig(**base)


def without_seconds(rows: list[dict]) -> list[dict]:
    """Metrics rows without the wall-clock field (the only one allowed to differ)."""
    return [{k: v for k, v in row.items() if k != "seconds"} for row in rows]


def subprocess_env(**extra: str) -> dict[str, str]:
    """The environment for a training subprocess: this one, ``tests/`` and the repo importable."""
    env = dict(os.environ)
    paths = [str(TESTS), str(REPO), env.get("PYTHONPATH", "")]
    env["PYTHONPATH"] = os.pathsep.join(p for p in paths if p)
    env.update(extra)
    return env


PYTHON = sys.executable
