"""Training: STBP/BPTT trainer, configuration, data, checkpoints, distributed runs.

Main entry points::

    from qifsim.train import TrainConfig, fit, evaluate_checkpoint
    config = TrainConfig(model="digits-net", dataset="digits-dvs", T=10, epochs=5)
    fit(config, "runs/digits")                  # -> final metrics dict
    fit(config, "runs/digits", resume=True)     # continue an interrupted run
    evaluate_checkpoint("runs/digits/best.pt")  # -> test accuracy, loss, spike rates

Multi-process: ``torchrun --standalone --nproc_per_node=N -m qifsim.train.run config.json out``.
"""

from .checkpoint import (
    CheckpointError,
    CheckpointMismatchError,
    load_checkpoint,
    load_model_state,
    save_checkpoint,
)
from .config import DATASETS, ConfigError, TrainConfig
from .data import DataInfo, build_dataset, build_datasets
from .distributed import DistContext
from .evaluation import TrainedModel, evaluate, evaluate_checkpoint, load_trained
from .factory import build_model_from_config
from .loaders import Loaders, build_loaders, to_time_first
from .loop import TrainingDiverged, fit
from .metrics import read_jsonl
from .presets import load_preset, preset_names
from .seeding import seed_everything
from .sweep import run_sweep

__all__ = [
    "DATASETS",
    "CheckpointError",
    "CheckpointMismatchError",
    "ConfigError",
    "DataInfo",
    "DistContext",
    "Loaders",
    "TrainConfig",
    "TrainingDiverged",
    "build_dataset",
    "build_datasets",
    "build_loaders",
    "build_model_from_config",
    "evaluate",
    "evaluate_checkpoint",
    "load_trained",
    "TrainedModel",
    "fit",
    "load_checkpoint",
    "load_model_state",
    "load_preset",
    "preset_names",
    "read_jsonl",
    "run_sweep",
    "save_checkpoint",
    "seed_everything",
    "to_time_first",
]
