"""Optimiser parameter groups for models with quadratic dendritic integration.

The dendritic-integration paper trains the quadratic matrices ``A`` (and the
LayerNorm in front of the quadratic term) with a learning rate ten times the
base rate (1.0 vs 0.1 on CIFAR), and applies the same weight decay (1e-4) to
every parameter. :func:`quadratic_param_groups` builds those two groups for
any ``torch.optim`` optimiser.

Which parameters are "quadratic":

* every parameter a module yields from ``quadratic_parameters()`` (the
  :mod:`qifsim.layers.quadratic` modules: ``A``, or ``U``/``V`` when low-rank);
* the parameters of the normalisation in front of a quadratic term: a
  module's ``quadratic_norm`` attribute (e.g. the Dit-ResNet block's
  LayerNorm), and any ``nn.LayerNorm`` registered immediately before a module
  with ``quadratic_parameters()`` in the same parent (``nn.Sequential(ln, quad)``).

A module's own linear weights (``QuadraticConv2d.conv``) stay in the base group.
"""

from __future__ import annotations

import math
from typing import Any

from torch import nn


def _is_quadratic(module: nn.Module) -> bool:
    return callable(getattr(module, "quadratic_parameters", None))


def quadratic_modules(model: nn.Module) -> dict[str, nn.Module]:
    """Modules of ``model`` having ``quadratic_parameters()``, by qualified name."""
    return {name: m for name, m in model.named_modules() if _is_quadratic(m)}


def quadratic_norms(model: nn.Module) -> dict[str, nn.Module]:
    """The normalisation layers in front of quadratic terms, by qualified name.

    Found as a module's ``quadratic_norm`` attribute, or as an ``nn.LayerNorm``
    registered immediately before a quadratic module within the same parent.
    """
    names = {id(m): name for name, m in model.named_modules()}
    found: dict[str, nn.Module] = {}
    for parent_name, parent in model.named_modules():
        norm = getattr(parent, "quadratic_norm", None)
        if isinstance(norm, nn.Module) and id(norm) in names:
            found[names[id(norm)]] = norm
        children = list(parent.named_children())
        for (name, before), (_, after) in zip(children, children[1:], strict=False):
            if isinstance(before, nn.LayerNorm) and _is_quadratic(after):
                found[f"{parent_name}.{name}" if parent_name else name] = before
    return found


def quadratic_param_groups(
    model: nn.Module,
    lr: float,
    quad_lr_scale: float = 10.0,
    weight_decay: float = 0.0,
    quad_weight_decay: float | None = None,
) -> list[dict[str, Any]]:
    """Two optimiser parameter groups: the base parameters and the quadratic ones.

    Args:
        model: any module; only trainable parameters (``requires_grad``) are used.
        lr: base learning rate.
        quad_lr_scale: the quadratic group's rate is ``lr * quad_lr_scale``
            (10 in the paper: 1.0 vs 0.1).
        weight_decay: weight decay of the base group (the paper: 1e-4).
        quad_weight_decay: weight decay of the quadratic group; ``None``: the
            same as ``weight_decay`` (the paper applies one value to all).

    Returns:
        ``[{"params", "lr", "weight_decay", "name": "base"},
        {"params", "lr", "weight_decay", "name": "quadratic"}]``; the base group
        is always first (the trainer logs its rate). The quadratic group is
        left out when the model has no quadratic parameters; the base group
        when every parameter is quadratic.

    Raises:
        ValueError: a non-positive or non-finite ``lr`` / ``quad_lr_scale``, a
            negative weight decay, or a model without trainable parameters.
    """
    for name, value in (("lr", lr), ("quad_lr_scale", quad_lr_scale)):
        if (
            isinstance(value, bool)
            or not isinstance(value, (int, float))
            or not (math.isfinite(value) and value > 0)
        ):
            raise ValueError(f"{name} must be a finite number > 0, got {value!r}")
    quad_wd = weight_decay if quad_weight_decay is None else quad_weight_decay
    for name, value in (("weight_decay", weight_decay), ("quad_weight_decay", quad_wd)):
        if (
            isinstance(value, bool)
            or not isinstance(value, (int, float))
            or not (math.isfinite(value) and value >= 0)
        ):
            raise ValueError(f"{name} must be a finite number >= 0, got {value!r}")
    quadratic_ids: set[int] = set()
    for module in quadratic_modules(model).values():
        quadratic_ids.update(id(p) for p in module.quadratic_parameters())
    for norm in quadratic_norms(model).values():
        quadratic_ids.update(id(p) for p in norm.parameters())
    base, quad = [], []
    for p in model.parameters():  # each parameter once, in registration order
        if p.requires_grad:
            (quad if id(p) in quadratic_ids else base).append(p)
    if not base and not quad:
        raise ValueError("the model has no trainable parameters")
    groups: list[dict[str, Any]] = []
    if base:
        groups.append(
            {"params": base, "lr": float(lr), "weight_decay": float(weight_decay), "name": "base"}
        )
    if quad:
        groups.append(
            {
                "params": quad,
                "lr": float(lr) * float(quad_lr_scale),
                "weight_decay": float(quad_wd),
                "name": "quadratic",
            }
        )
    return groups
