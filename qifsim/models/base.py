"""The common contract of every model in :mod:`qifsim.models`.

A :class:`SpikingModel` is ``features -> classifier -> readout``:

* ``features``: spiking conv layers and pooling, ``[T, B, C, H, W] -> [T, B, ...]``;
* ``classifier``: flatten, dropout and spiking fully connected layers,
  ``[T, B, ...] -> [T, B, F]``;
* ``readout``: the non-firing :class:`~qifsim.models.blocks.Readout`,
  ``[T, B, F] -> [T, B, num_classes]``.

``forward(x)`` returns the readout averaged over time, ``[B, num_classes]``
(``u_i = (1/T) Σ_t W o(t)``); :meth:`SpikingModel.step_logits` keeps the time
axis (for per-step losses such as TET).
"""

from __future__ import annotations

import torch
from torch import nn

from ..neurons import LIF, QIF, LIFCell, QIFCell
from .factory import LayerFactory


class SpikingModel(nn.Module):
    """Base class of the architectures: input checks, forward, spiking-layer listing.

    Subclasses set ``name`` and ``default_steps`` (the paper's ``T``) and build
    ``self.features``, ``self.classifier`` and ``self.readout``.

    Attributes:
        name: registry name (``"resnet19"``, ...).
        neuron: ``"qif"`` or ``"lif"``.
        synapse: synapse type (``"linear"``).
        num_classes, in_channels: output classes, input channels ``C``.
        input_size: ``(H, W)`` the model was built for.
        fixed_size: True when the classifier size depends on ``input_size`` (then
            other input sizes are rejected with a clear message).
        default_steps: time steps ``T`` of the paper's setup.
    """

    name: str = ""
    default_steps: int = 1
    fixed_size: bool = True

    features: nn.Module
    classifier: nn.Module
    readout: nn.Module

    def __init__(
        self,
        factory: LayerFactory,
        num_classes: int,
        in_channels: int,
        input_size: tuple[int, int],
    ) -> None:
        super().__init__()
        if num_classes < 1 or in_channels < 1:
            raise ValueError(
                f"num_classes and in_channels must be >= 1, got {num_classes}, {in_channels}"
            )
        size = tuple(int(s) for s in input_size)
        if len(size) != 2 or min(size) < 1:
            raise ValueError(f"input_size must be (H, W) with H, W >= 1, got {input_size!r}")
        self.factory = factory
        self.neuron = factory.neuron
        self.synapse = factory.synapse
        self.num_classes = int(num_classes)
        self.in_channels = int(in_channels)
        self.input_size: tuple[int, int] = size  # type: ignore[assignment]

    @property
    def input_shape(self) -> tuple[int, int, int]:
        """``(C, H, W)`` of one input frame."""
        return (self.in_channels, *self.input_size)

    def _check_input(self, x: torch.Tensor) -> None:
        if x.dim() != 5:
            hint = " (static images: use qifsim.models.direct_encode(x, T))" if x.dim() == 4 else ""
            raise ValueError(
                f"{self.name} expects time-first input [T, B, C, H, W], "
                f"got shape {tuple(x.shape)}{hint}"
            )
        if x.shape[2] != self.in_channels:
            raise ValueError(
                f"{self.name} was built for in_channels={self.in_channels}, "
                f"got input with C={x.shape[2]} (shape {tuple(x.shape)})"
            )
        if self.fixed_size and tuple(x.shape[3:]) != self.input_size:
            raise ValueError(
                f"{self.name} was built for input_size={self.input_size} (its classifier "
                f"size depends on it), got {tuple(x.shape[3:])}; build it with "
                f"input_size={tuple(x.shape[3:])}"
            )

    def step_logits(self, x: torch.Tensor) -> torch.Tensor:
        """``x: [T, B, C, H, W]`` -> readout at every step ``[T, B, num_classes]``."""
        self._check_input(x)
        return self.readout(self.classifier(self.features(x)))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``x: [T, B, C, H, W]`` -> logits ``[B, num_classes]`` (readout averaged over T)."""
        return self.step_logits(x).mean(0)

    def spiking_layers(self) -> dict[str, nn.Module]:
        """Neuron modules (QIF/LIF) by qualified name, in forward order."""
        return {
            name: module
            for name, module in self.named_modules()
            if isinstance(module, (QIF, LIF, QIFCell, LIFCell))
        }

    def extra_repr(self) -> str:
        c, h, w = self.input_shape
        return (
            f"name={self.name!r}, neuron={self.neuron!r}, input={c}x{h}x{w}, "
            f"num_classes={self.num_classes}"
        )
