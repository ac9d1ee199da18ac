"""Spiking LeNet-5 of the QIF paper's robustness study (Appendix F, Fashion-MNIST, T=2).

The paper alters LeNet-5 (LeCun et al. 1998) in two ways: tdBN after each
conv layer, and a two-layer classifier with 120 and 10 units. Layers (default
input 1x28x28)::

    conv5x5 6 (padding 2) -> tdBN -> neuron -> AP2       28 -> 28 -> 14
    conv5x5 16            -> tdBN -> neuron -> AP2       14 -> 10 -> 5
    flatten DP  FC 16*5*5 -> 120 (tdBN1d, spiking)  DP
    readout FC 120 -> num_classes (non-firing, averaged over T)

The first conv is padded by 2 so a 28x28 image gives LeNet-5's original
16x5x5 map (LeNet-5 was designed for 32x32 inputs). Pooling is 2x2 average
pooling (LeNet's subsampling). The FC size follows ``input_size``:
``16 * ((H//2 - 4)//2) * ((W//2 - 4)//2)``.
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
    pool,
    pool_size,
)
from .factory import LayerFactory


class LeNet5(SpikingModel):
    """Spiking LeNet-5 with tdBN (layer list in the module docstring).

    Spiking layers: ``features.conv1.spike``, ``features.conv2.spike``,
    ``classifier.fc1.spike``.

    Args:
        factory: neuron/synapse/tdBN factory.
        num_classes: readout size.
        in_channels: input channels (1 for Fashion-MNIST).
        input_size: ``(H, W)``, default 28x28.
        dropout: time-shared dropout before the hidden FC layer and the readout.
    """

    name = "lenet5"
    default_steps = 2

    def __init__(
        self,
        factory: LayerFactory,
        num_classes: int = 10,
        in_channels: int = 1,
        input_size: tuple[int, int] = (28, 28),
        dropout: float = 0.0,
    ) -> None:
        super().__init__(factory, num_classes, in_channels, input_size)
        h, w = self.input_size
        h, w = pool_size(conv_size(h, 5, 1, 2)), pool_size(conv_size(w, 5, 1, 2))
        h, w = pool_size(conv_size(h, 5, 1, 0)), pool_size(conv_size(w, 5, 1, 0))
        check_size(self.name, self.input_size, (h, w))
        self.features = nn.Sequential(
            OrderedDict(
                conv1=ConvSpike(factory, in_channels, 6, 5, padding=2),
                pool1=pool("avg", 2),
                conv2=ConvSpike(factory, 6, 16, 5, padding=0),
                pool2=pool("avg", 2),
            )
        )
        self.classifier = nn.Sequential(
            OrderedDict(
                flatten=TimeFlatten(),
                drop1=TimeSharedDropout(dropout),
                fc1=LinearSpike(factory, 16 * h * w, 120),
                drop2=TimeSharedDropout(dropout),
            )
        )
        self.readout = Readout(120, num_classes)
