"""Apply stateless per-sample modules to time-first ``[T, B, ...]`` tensors."""

from __future__ import annotations

import torch
from torch import nn

__all__ = ["MergeTime"]


class MergeTime(nn.Module):
    """Apply a stateless per-sample module to a time-first tensor.

    ``[T, B, ...] -> [T*B, ...] -> module -> [T*B, ...'] -> [T, B, ...']``.
    For ``Conv2d``, pooling, ``Linear``, ``Flatten``, ``Dropout`` and the like:
    the module must treat dim 0 as the batch and keep it (no recurrent state).

    Args:
        module: the wrapped module, called on ``[T*B, ...]``.
    """

    def __init__(self, module: nn.Module) -> None:
        super().__init__()
        self.module = module

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``x``: ``[T, B, ...]`` -> ``[T, B, ...']`` (``...'`` the module's output shape)."""
        if x.dim() < 2:
            raise ValueError(
                f"MergeTime expects a time-first input [T, B, ...], got shape {tuple(x.shape)}"
            )
        t, b = x.shape[:2]
        y = self.module(x.flatten(0, 1))
        return y.reshape(t, b, *y.shape[1:])
