"""Evaluation: accuracy, loss and per-layer firing rates on a loader; checkpoint evaluation.

Firing rates come from :class:`qifsim.energy.SpikeMonitor` (spikes per
neuron per time step and sample). ``mean_spike_rate`` is the rate over all
spiking layers together: total spikes / total neuron-steps (so layers weigh
by their size). Under ``torchrun`` the counts (correct answers, summed loss,
spikes, neuron-steps) are summed over the processes before dividing.
"""

from __future__ import annotations

import contextlib
import os
from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import DataLoader

from ..energy.monitor import SpikeMonitor, spiking_layers
from .distributed import DistContext, all_reduce_sum
from .loaders import to_time_first


def amp_context(device: torch.device, amp: str | None):
    """``torch.autocast`` in bfloat16 on ``device`` when ``amp == "bf16"``, else a no-op."""
    if amp is None:
        return contextlib.nullcontext()
    if amp != "bf16":
        raise ValueError(f"amp must be None or 'bf16', got {amp!r}")
    return torch.autocast(device_type=device.type, dtype=torch.bfloat16)


@torch.no_grad()
def evaluate(
    model: nn.Module,
    loader: DataLoader,
    *,
    T: int,
    static: bool,
    device: torch.device | str = "cpu",
    amp: str | None = None,
    ctx: DistContext | None = None,
    progress: bool = False,
    desc: str = "eval",
) -> dict[str, Any]:
    """Evaluate ``model`` (not DDP-wrapped) on ``loader``.

    Args:
        model: maps ``[T, B, C, H, W]`` to logits ``[B, classes]``.
        loader: yields ``(x, labels)``; ``x`` is ``[B, T, C, H, W]`` (events)
            or ``[B, C, H, W]`` (``static``).
        T: time steps.
        static: whether inputs are static images (repeated over ``T``).
        device: where to compute.
        amp: ``None`` or ``"bf16"`` autocast.
        ctx: process context; counts are summed over processes when distributed.
        progress: show a tqdm bar.
        desc: the bar's label.

    Returns:
        ``{"loss", "acc", "n_samples", "spike_rates": {layer: rate},
        "mean_spike_rate"}``: mean cross-entropy (nats), accuracy in [0, 1],
        the number of samples, and firing rates (spikes / (neurons * T *
        samples)); ``spike_rates`` is empty and ``mean_spike_rate`` ``None``
        when the model has no qifsim neuron modules.
    """
    from tqdm.auto import tqdm

    ctx = ctx or DistContext()
    device = torch.device(device)
    was_training = model.training
    model.eval()
    has_neurons = bool(spiking_layers(model))
    monitor = SpikeMonitor(model) if has_neurons else None
    sums = torch.zeros(3, dtype=torch.float64, device=device)  # loss, correct, count
    bar = tqdm(loader, desc=desc, leave=False, disable=not progress, dynamic_ncols=True)
    try:
        with monitor if monitor is not None else contextlib.nullcontext():
            for x, y in bar:
                x = to_time_first(x.to(device, non_blocking=True), T, static)
                y = y.to(device, non_blocking=True)
                with amp_context(device, amp):
                    logits = model(x)
                logits = logits.float()
                sums[0] += F.cross_entropy(logits, y, reduction="sum").double()
                sums[1] += (logits.argmax(dim=1) == y).sum()
                sums[2] += y.shape[0]
    finally:
        bar.close()
        model.train(was_training)
    records = list(monitor.records.items()) if monitor is not None else []
    counts = [sums[0].item(), sums[1].item(), sums[2].item()]
    for _, rec in records:
        counts += [float(rec.spikes), float(rec.neuron_steps)]
    total = all_reduce_sum(counts, ctx).tolist()
    loss_sum, correct, n = total[:3]
    spikes = total[3::2]
    steps = total[4::2]
    names = [name for name, _ in records]
    rates = {name: (s / m if m else 0.0) for name, s, m in zip(names, spikes, steps, strict=True)}
    all_steps = sum(steps)
    return {
        "loss": loss_sum / n if n else float("nan"),
        "acc": correct / n if n else float("nan"),
        "n_samples": int(n),
        "spike_rates": rates,
        "mean_spike_rate": sum(spikes) / all_steps if all_steps else None,
    }


@dataclass
class TrainedModel:
    """A model rebuilt from a training checkpoint (see :func:`load_trained`).

    Attributes:
        model: the network with the checkpoint's weights, in eval mode on ``device``.
        config: its :class:`~qifsim.train.config.TrainConfig` (with the requested changes).
        info: the dataset info (``static``, classes, input shape).
        test: the test split as a torch Dataset (the first ``samples`` items when asked).
        epoch: completed training epochs.
        path: the checkpoint file.
    """

    model: nn.Module
    config: Any
    info: Any
    test: Any
    epoch: int
    path: str

    def frames(self, n: int | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """The first ``n`` test items as ``(x [T, N, C, H, W], labels [N])``."""
        from .loaders import stack_time_first

        return stack_time_first(self.test, self.config.T, self.info.static, n)

    def loader(self, batch_size: int | None = None) -> DataLoader:
        """A sequential loader over :attr:`test` (batch: the config's by default)."""
        device = next(self.model.parameters()).device
        return DataLoader(
            self.test,
            batch_size=batch_size or self.config.batch_size,
            shuffle=False,
            num_workers=self.config.num_workers,
            pin_memory=device.type == "cuda",
        )


def load_trained(
    path: str | os.PathLike,
    *,
    dataset: str | None = None,
    data_root: str | os.PathLike | None = None,
    samples: int | None = None,
    device: str | torch.device | None = "cpu",
) -> TrainedModel:
    """Rebuild the model of checkpoint ``path`` (``last.pt``/``best.pt`` of :func:`fit`).

    Args:
        path: the checkpoint.
        dataset: use this dataset's test split instead of the trained one (same input shape).
        data_root: dataset folder, replacing the one in the checkpoint's config.
        samples: keep only the first ``samples`` test items (``>= 1``).
        device: where to put the model (``None``: CUDA if available, else CPU).
    """
    from torch.utils.data import Subset

    from .checkpoint import load_checkpoint, load_model_state
    from .config import TrainConfig
    from .data import build_dataset
    from .distributed import resolve_device
    from .factory import build_model_from_config

    if samples is not None and samples < 1:
        raise ValueError(f"samples must be >= 1, got {samples}")
    checkpoint = load_checkpoint(path)
    config = TrainConfig.from_dict(checkpoint["config"])
    changes: dict[str, Any] = {}
    if dataset is not None:
        changes["dataset"] = dataset
    if data_root is not None:
        changes["data_root"] = str(data_root)
    if changes:
        config = config.replace(**changes)
    test, info = build_dataset(config, "test")
    if samples is not None:
        test = Subset(test, range(min(samples, len(test))))
    model = build_model_from_config(config, info)
    load_model_state(model, checkpoint["model"])
    model.to(resolve_device(device)).eval()
    return TrainedModel(model, config, info, test, int(checkpoint["epoch"]), str(path))


def evaluate_checkpoint(
    path: str | os.PathLike,
    data_root: str | os.PathLike | None = None,
    device: str | torch.device | None = None,
    batch_size: int | None = None,
    progress: bool = False,
) -> dict[str, Any]:
    """Rebuild the model of checkpoint ``path`` from its config and evaluate it on the test set.

    Args:
        path: a checkpoint written by :func:`qifsim.train.fit` (``last.pt``/``best.pt``).
        data_root: dataset folder, replacing the one in the checkpoint's config.
        device: where to run (default: CUDA if available, else CPU).
        batch_size: evaluation batch (default: the config's).
        progress: show a tqdm bar.

    Returns:
        :func:`evaluate`'s dict with keys prefixed ``test_`` (``test_loss``,
        ``test_acc``, ``spike_rates``, ``mean_spike_rate``, ``n_samples``), plus
        ``epoch`` (completed training epochs) and ``checkpoint`` (the path).
    """
    trained = load_trained(path, data_root=data_root, device=device)
    config = trained.config
    dev = next(trained.model.parameters()).device
    result = evaluate(
        trained.model,
        trained.loader(batch_size),
        T=config.T,
        static=trained.info.static,
        device=dev,
        amp=config.amp,
        progress=progress,
    )
    return {
        "test_loss": result["loss"],
        "test_acc": result["acc"],
        "spike_rates": result["spike_rates"],
        "mean_spike_rate": result["mean_spike_rate"],
        "n_samples": result["n_samples"],
        "epoch": trained.epoch,
        "checkpoint": str(path),
    }
