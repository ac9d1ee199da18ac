"""Optimiser and learning-rate schedule of a :class:`~qifsim.train.config.TrainConfig`.

* ``"sgd"``: :class:`torch.optim.SGD` with ``momentum`` (not Nesterov);
  ``"adam"``: :class:`torch.optim.Adam` with ``betas``. Both apply
  ``weight_decay`` as L2 regularisation to every trainable parameter
  (batch-norm and neuron parameters included), as the paper's recipes do.
  Given the model, parameters of quadratic synapses (``A`` and the LayerNorm
  before it) form a second group at ``lr * quad_lr_scale``
  (:func:`qifsim.quadratic.quadratic_param_groups`).
* ``"cosine"``: the learning rate follows ``lr * (1 + cos(pi * k / K)) / 2``
  where ``k`` counts optimiser steps taken and ``K = epochs * steps_per_epoch``;
  it is updated after every step (per-step cosine), so step ``k`` (0-based) uses
  the factor of ``k`` and the rate reaches 0 after the last step.
  ``"multistep"``: ``lr`` divided by 10 at each epoch of ``milestones`` (the
  factor of step ``k`` is ``0.1 ** #{m in milestones : m <= k // steps_per_epoch}``).
  ``"none"``: constant ``lr``.
"""

from __future__ import annotations

import math
from collections.abc import Iterable

import torch
from torch.optim.lr_scheduler import LambdaLR

from .config import TrainConfig


def make_optimizer(
    config: TrainConfig, params: Iterable[torch.nn.Parameter] | torch.nn.Module
) -> torch.optim.Optimizer:
    """The optimiser ``config.optimizer`` over ``params`` (trainable parameters only).

    ``params`` may be the model itself: then quadratic-synapse parameters get
    their own group at ``config.lr * config.quad_lr_scale`` (group 0 is the base one).
    """
    if isinstance(params, torch.nn.Module):
        from ..quadratic.params import quadratic_param_groups

        trainable = quadratic_param_groups(
            params, config.lr, config.quad_lr_scale, weight_decay=config.weight_decay
        )
    else:
        trainable = [p for p in params if p.requires_grad]
    if not trainable:
        raise ValueError("the model has no trainable parameters")
    if config.optimizer == "sgd":
        return torch.optim.SGD(
            trainable, lr=config.lr, momentum=config.momentum, weight_decay=config.weight_decay
        )
    if config.optimizer == "adam":
        return torch.optim.Adam(
            trainable, lr=config.lr, betas=tuple(config.betas), weight_decay=config.weight_decay
        )
    raise ValueError(f"unknown optimizer {config.optimizer!r}")  # config validation stops this


class CosineToZero:
    """Picklable LR factor ``(1 + cos(pi * min(k, K) / K)) / 2`` for step ``k`` of ``K``."""

    def __init__(self, total_steps: int) -> None:
        if total_steps < 1:
            raise ValueError(f"total_steps must be >= 1, got {total_steps}")
        self.total_steps = int(total_steps)

    def __call__(self, step: int) -> float:
        return 0.5 * (1.0 + math.cos(math.pi * min(step, self.total_steps) / self.total_steps))


class MultiStep:
    """Picklable LR factor ``0.1 ** #{m in milestones : m <= step // steps_per_epoch}``."""

    def __init__(self, milestones: Iterable[int], steps_per_epoch: int) -> None:
        if steps_per_epoch < 1:
            raise ValueError(f"steps_per_epoch must be >= 1, got {steps_per_epoch}")
        self.milestones = tuple(int(m) for m in milestones)
        self.steps_per_epoch = int(steps_per_epoch)

    def __call__(self, step: int) -> float:
        epoch = step // self.steps_per_epoch
        return 0.1 ** sum(1 for m in self.milestones if m <= epoch)


def constant(step: int) -> float:
    """LR factor 1 at every step."""
    return 1.0


def make_scheduler(
    config: TrainConfig, optimizer: torch.optim.Optimizer, steps_per_epoch: int
) -> LambdaLR:
    """The per-step schedule ``config.schedule`` (call ``step()`` after every optimiser step)."""
    if config.schedule == "cosine":
        return LambdaLR(optimizer, CosineToZero(config.epochs * steps_per_epoch))
    if config.schedule == "multistep":
        return LambdaLR(optimizer, MultiStep(config.milestones, steps_per_epoch))
    return LambdaLR(optimizer, constant)
