"""``digits-net``: a small CPU-sized spiking conv net for digits-dvs (2x34x34, T=10).

Layers (default input 2x34x34)::

    conv5x5 16, stride 2 -> tdBN -> neuron              34 -> 17
    conv3x3 32, stride 2 -> tdBN -> neuron              17 -> 9
    flatten DP  FC 32*9*9 -> 128 (tdBN1d, spiking)  DP
    readout FC 128 -> num_classes (non-firing, averaged over T)

Strided convs instead of conv + pooling keep the neuron count small (the
neuron scans, tdBN and pooling over ``T * B * C * H * W`` elements dominate the
CPU time of a small net): about 0.34 M parameters, and a forward + backward
step on a batch of 64 (T=10) takes about 60 ms on two CPU cores (conv + AP2
at full resolution: about 330 ms). The FC size follows ``input_size``
(``32 * ceil(ceil(H/2)/2) * ceil(ceil(W/2)/2)``).
"""

from __future__ import annotations

from collections import OrderedDict

from torch import nn

from .base import SpikingModel
from .blocks import (
    ConvSpike,
    LinearSpike,
    Readout,
    TimeFlatten,
    TimeSharedDropout,
    check_size,
    conv_size,
)
from .factory import LayerFactory


class DigitsNet(SpikingModel):
    """Small spiking conv net for digits-dvs (layer list in the module docstring).

    Spiking layers: ``features.conv1.spike``, ``features.conv2.spike``,
    ``classifier.fc1.spike``.

    Args:
        factory: neuron/synapse/tdBN factory.
        num_classes: readout size.
        in_channels: input channels (2 polarities).
        input_size: ``(H, W)``, default 34x34.
        dropout: time-shared dropout before the hidden FC layer and the readout.
        channels: widths of the two conv layers.
        hidden: hidden FC size.
    """

    name = "digits-net"
    default_steps = 10

    def __init__(
        self,
        factory: LayerFactory,
        num_classes: int = 10,
        in_channels: int = 2,
        input_size: tuple[int, int] = (34, 34),
        dropout: float = 0.0,
        channels: tuple[int, int] = (16, 32),
        hidden: int = 128,
    ) -> None:
        super().__init__(factory, num_classes, in_channels, input_size)
        c1, c2 = channels
        h, w = (conv_size(conv_size(s, 5, 2), 3, 2) for s in self.input_size)
        check_size(self.name, self.input_size, (h, w))
        self.features = nn.Sequential(
            OrderedDict(
                conv1=ConvSpike(factory, in_channels, c1, 5, stride=2),
                conv2=ConvSpike(factory, c1, c2, 3, stride=2),
            )
        )
        self.classifier = nn.Sequential(
            OrderedDict(
                flatten=TimeFlatten(),
                drop1=TimeSharedDropout(dropout),
                fc1=LinearSpike(factory, c2 * h * w, hidden),
                drop2=TimeSharedDropout(dropout),
            )
        )
        self.readout = Readout(hidden, num_classes)
