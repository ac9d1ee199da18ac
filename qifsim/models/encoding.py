"""Input encoding for static images: direct (repeated) encoding."""

from __future__ import annotations

import operator

import torch


def direct_encode(images: torch.Tensor, T: int) -> torch.Tensor:
    """Repeat static images over time: ``[B, C, H, W] -> [T, B, C, H, W]``.

    Direct encoding (as in the tdBN and QIF papers): the first conv layer sees
    the real-valued image at every step. Returns a new contiguous tensor.

    Raises:
        ValueError: ``images`` is not 4-D or ``T`` is not an integer >= 1.
    """
    if images.dim() != 4:
        raise ValueError(f"direct_encode expects images [B, C, H, W], got {tuple(images.shape)}")
    try:
        steps = operator.index(T)
    except TypeError:
        steps = 0
    if isinstance(T, bool) or steps < 1:
        raise ValueError(f"T (time steps) must be an integer >= 1, got {T!r}")
    return images.unsqueeze(0).repeat(steps, 1, 1, 1, 1)
