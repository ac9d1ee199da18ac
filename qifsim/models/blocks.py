"""Building blocks shared by the architectures; all on time-first tensors.

* :class:`ConvSpike`: conv -> tdBN -> neuron, ``[T, B, C, H, W] -> [T, B, C', H', W']``;
* :class:`LinearSpike`: linear -> tdBN1d -> neuron, ``[T, B, F] -> [T, B, F']``;
* :class:`Readout`: the non-firing output layer (linear, optional voting),
  ``[T, B, F] -> [T, B, classes]`` per step (the model averages over ``T``);
* :class:`TimeSharedDropout`: dropout with one mask per sample for all ``T``;
* :func:`pool`, :class:`GlobalAvgPool`, :class:`TimeFlatten`: stateless reshapers;
* :func:`conv_size`, :func:`pool_size`: spatial-size arithmetic for classifier sizes.
"""

from __future__ import annotations

import torch
from torch import nn

from ..layers import MergeTime
from .factory import LayerFactory


class ConvSpike(nn.Module):
    """``conv -> tdBN -> neuron``: one spiking conv layer.

    ``[T, B, C_in, H, W] -> spikes [T, B, C_out, H', W']``. Children: ``conv``
    (:class:`~qifsim.layers.MergeTime` of a bias-free ``Conv2d``), ``bn``
    (:class:`~qifsim.layers.TDBatchNorm2d`, ``eta=1``), ``spike`` (the neuron).
    """

    def __init__(
        self,
        factory: LayerFactory,
        in_channels: int,
        out_channels: int,
        kernel_size: int = 3,
        stride: int = 1,
        padding: int | None = None,
    ) -> None:
        super().__init__()
        self.conv = factory.conv(in_channels, out_channels, kernel_size, stride, padding)
        self.bn = factory.tdbn2d(out_channels)
        self.spike = factory.spiking()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``x: [T, B, C_in, H, W]`` -> spikes ``[T, B, C_out, H', W']``."""
        spikes, _ = self.spike(self.bn(self.conv(x)))
        return spikes


class LinearSpike(nn.Module):
    """``linear -> tdBN1d -> neuron``: one spiking fully connected layer.

    ``[T, B, F_in] -> spikes [T, B, F_out]``. Children: ``fc`` (bias-free
    ``Linear``), ``bn`` (:class:`~qifsim.layers.TDBatchNorm1d`), ``spike``.
    """

    def __init__(self, factory: LayerFactory, in_features: int, out_features: int) -> None:
        super().__init__()
        self.fc = factory.linear(in_features, out_features)
        self.bn = factory.tdbn1d(out_features)
        self.spike = factory.spiking()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``x: [T, B, F_in]`` -> spikes ``[T, B, F_out]``."""
        spikes, _ = self.spike(self.bn(self.fc(x)))
        return spikes


class Readout(nn.Module):
    """The non-firing output layer: ``W o(t) + b`` per time step.

    ``[T, B, F] -> [T, B, num_classes]``; the model averages over ``T``
    (``u_i = (1/T) Σ_t W o(t)``, QIF paper Sec. 3.4). With ``voting > 1`` the
    linear layer has ``num_classes * voting`` outputs and each class is the mean
    of its ``voting`` consecutive outputs (the voting layer of Fang et al. 2021,
    ``AvgPool1d(voting)``).
    """

    def __init__(self, in_features: int, num_classes: int, voting: int = 1) -> None:
        super().__init__()
        if num_classes < 1 or voting < 1:
            raise ValueError(f"num_classes and voting must be >= 1, got {num_classes}, {voting}")
        self.num_classes = num_classes
        self.voting = voting
        self.fc = nn.Linear(in_features, num_classes * voting)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``x: [T, B, F]`` -> per-step logits ``[T, B, num_classes]``."""
        y = self.fc(x)
        if self.voting > 1:
            y = y.unflatten(-1, (self.num_classes, self.voting)).mean(-1)
        return y


class TimeSharedDropout(nn.Module):
    """Dropout with the same mask at every time step of a sample.

    ``[T, B, ...] -> [T, B, ...]``. In training, each element of a
    ``[1, B, ...]`` mask is kept with probability ``1 - p`` and scaled by
    ``1 / (1 - p)``; the mask is broadcast over ``T``, so a dropped neuron stays
    silent for the whole sample (a spike train is never cut into pieces). In
    eval mode, or with ``p = 0``, the input is returned unchanged.
    """

    def __init__(self, p: float = 0.5) -> None:
        super().__init__()
        if not 0.0 <= p < 1.0:
            raise ValueError(f"dropout probability must be in [0, 1), got {p}")
        self.p = float(p)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``x: [T, B, ...]`` -> same shape."""
        if not self.training or self.p == 0.0:
            return x
        keep = 1.0 - self.p
        mask = torch.empty_like(x[:1]).bernoulli_(keep).div_(keep)
        return x * mask

    def extra_repr(self) -> str:
        return f"p={self.p}, shared over time"


class TimeFlatten(nn.Module):
    """``[T, B, ...] -> [T, B, F]`` (flattens everything after the batch dim)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x.flatten(2)


class GlobalAvgPool(nn.Module):
    """Spatial mean per channel: ``[T, B, C, H, W] -> [T, B, C]``."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x.mean(dim=(-2, -1))


def pool(kind: str = "avg", kernel_size: int = 2) -> MergeTime:
    """Pooling between spiking layers: ``[T, B, C, H, W] -> [T, B, C, H//k, W//k]``.

    ``kind``: ``"avg"`` (AvgPool2d) or ``"max"`` (MaxPool2d), stride = kernel.
    """
    if kind == "avg":
        return MergeTime(nn.AvgPool2d(kernel_size))
    if kind == "max":
        return MergeTime(nn.MaxPool2d(kernel_size))
    raise ValueError(f"pool kind must be 'avg' or 'max', got {kind!r}")


def conv_size(n: int, kernel_size: int, stride: int = 1, padding: int | None = None) -> int:
    """Output length of a conv along one axis (``padding=None``: ``kernel_size // 2``)."""
    pad = kernel_size // 2 if padding is None else padding
    return (n + 2 * pad - kernel_size) // stride + 1


def pool_size(n: int, kernel_size: int = 2) -> int:
    """Output length of a stride-``kernel_size`` pooling along one axis."""
    return n // kernel_size


def check_size(model: str, input_size: tuple[int, int], final: tuple[int, int]) -> None:
    """Raise ``ValueError`` if ``input_size`` leaves an empty feature map (``final < 1``)."""
    if min(final) < 1:
        raise ValueError(
            f"{model}: input_size {tuple(input_size)} is too small, the last feature map "
            f"would be {final[0]}x{final[1]}"
        )
