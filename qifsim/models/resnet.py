"""ResNet-19 (Zheng et al., AAAI 2021, the tdBN paper), the QIF paper's CIFAR model.

Layers (3x3 convs padded "same"; every conv and the hidden FC are followed by
tdBN and a neuron; ``C`` input channels, default input 3x32x32, T=2)::

    stem    conv3x3 C->128                             32x32
    layer1  3 x BasicBlock(128)                        32x32
    layer2  3 x BasicBlock(256), first stride 2        16x16
    layer3  2 x BasicBlock(512), first stride 2         8x8
    pool    global average pool                        512
    fc1     FC 512->256 (spiking)
    readout FC 256->num_classes (non-firing, averaged over T)

17 conv + 2 FC weight layers; 18 spiking layers; about 12.6 M parameters for
CIFAR-10. The classifier does not depend on the input size (global pooling).

Residual block (tdBN paper, Fig. 2)::

    out   = neuron1(tdBN_1(conv1(x)))                      eta = 1
    y     = tdBN_{1/√2}(conv2(out)) + shortcut(x)
    spike = neuron2(y)

``shortcut`` is ``tdBN_{1/√2}(conv1x1(x))`` (stride 2) where the shape
changes; both branches then meet normalised with ``eta = 1/√2`` so that their
sum has the variance tdBN targets, ``u_th²``. Where the shape is unchanged the
shortcut is the identity and carries the block's input spikes unnormalised (no
tdBN on it: there is no pre-synaptic current on that branch to normalise);
only the conv branch is scaled by ``1/√2``.
"""

from __future__ import annotations

import math
from collections import OrderedDict

import torch
from torch import nn

from .base import SpikingModel
from .blocks import ConvSpike, GlobalAvgPool, LinearSpike, Readout, TimeFlatten, TimeSharedDropout
from .factory import LayerFactory

#: tdBN ``eta`` on the two branches that meet at a residual addition.
RESIDUAL_ETA = 1.0 / math.sqrt(2.0)


class BasicBlock(nn.Module):
    """Spiking residual block ``[T, B, C_in, H, W] -> spikes [T, B, C_out, H/s, W/s]``.

    Children in forward order: ``conv1``, ``bn1`` (eta 1), ``spike1``, ``conv2``,
    ``bn2`` (eta 1/√2), ``shortcut`` (``nn.Sequential(conv, bn)`` with eta 1/√2
    when ``stride != 1`` or ``C_in != C_out``, else ``nn.Identity``), ``spike2``.
    """

    def __init__(
        self, factory: LayerFactory, in_channels: int, out_channels: int, stride: int = 1
    ) -> None:
        super().__init__()
        self.conv1 = factory.conv(in_channels, out_channels, 3, stride)
        self.bn1 = factory.tdbn2d(out_channels)
        self.spike1 = factory.spiking()
        self.conv2 = factory.conv(out_channels, out_channels, 3)
        self.bn2 = factory.tdbn2d(out_channels, eta=RESIDUAL_ETA)
        if stride != 1 or in_channels != out_channels:
            self.shortcut: nn.Module = nn.Sequential(
                OrderedDict(
                    conv=factory.conv(in_channels, out_channels, 1, stride, 0),
                    bn=factory.tdbn2d(out_channels, eta=RESIDUAL_ETA),
                )
            )
        else:
            self.shortcut = nn.Identity()
        self.spike2 = factory.spiking()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``x: [T, B, C_in, H, W]`` -> spikes ``[T, B, C_out, H', W']``."""
        out, _ = self.spike1(self.bn1(self.conv1(x)))
        y = self.bn2(self.conv2(out)) + self.shortcut(x)
        spikes, _ = self.spike2(y)
        return spikes


def _stage(
    factory: LayerFactory, in_channels: int, out_channels: int, blocks: int, stride: int
) -> nn.Sequential:
    layers = [BasicBlock(factory, in_channels, out_channels, stride)]
    layers += [BasicBlock(factory, out_channels, out_channels) for _ in range(blocks - 1)]
    return nn.Sequential(*layers)


class ResNet19(SpikingModel):
    """ResNet-19 of the tdBN paper (see the module docstring for the layer list).

    Spiking layers: ``features.stem.spike``, ``features.layer{1,2,3}.{i}.spike{1,2}``,
    ``classifier.fc1.spike``.

    Args:
        factory: neuron/synapse/tdBN factory.
        num_classes: readout size.
        in_channels: input channels (3 for CIFAR, 2 for DVS frames).
        input_size: ``(H, W)``; any size works (global pooling), default 32x32.
        dropout: time-shared dropout before ``fc1`` and before the readout (the
            paper uses none for ResNet-19).
    """

    name = "resnet19"
    default_steps = 2
    fixed_size = False

    def __init__(
        self,
        factory: LayerFactory,
        num_classes: int = 10,
        in_channels: int = 3,
        input_size: tuple[int, int] = (32, 32),
        dropout: float = 0.0,
    ) -> None:
        super().__init__(factory, num_classes, in_channels, input_size)
        self.features = nn.Sequential(
            OrderedDict(
                stem=ConvSpike(factory, in_channels, 128),
                layer1=_stage(factory, 128, 128, 3, 1),
                layer2=_stage(factory, 128, 256, 3, 2),
                layer3=_stage(factory, 256, 512, 2, 2),
                pool=GlobalAvgPool(),
            )
        )
        self.classifier = nn.Sequential(
            OrderedDict(
                flatten=TimeFlatten(),
                drop1=TimeSharedDropout(dropout),
                fc1=LinearSpike(factory, 512, 256),
                drop2=TimeSharedDropout(dropout),
            )
        )
        self.readout = Readout(256, num_classes)
