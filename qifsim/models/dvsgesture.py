"""DVSGestureNet (Fang et al., ICCV 2021, the PLIF paper), the QIF paper's DVS128-Gesture model.

Layers (default input 2x128x128, T=10; QIF paper dropout 0.75)::

    5 x { conv3x3 128 -> tdBN -> neuron -> MP2 }        128 -> 64 -> 32 -> 16 -> 8 -> 4
    flatten  DP  FC 128*4*4 -> 512 (tdBN1d, spiking)  DP
    readout  FC 512 -> num_classes * voting (non-firing)  -> voting (mean of groups of 10)

Differences from the PLIF network, which ends with a spiking FC-110 layer and
``AvgPool1d(10)`` over its spike counts: here the last FC layer is the
non-firing readout averaged over T (QIF paper, Sec. 3.4) and the voting
averages its outputs in groups of ``voting`` (default 10: FC 512 -> 110 ->
11 classes, the PLIF parameter count). ``voting=1`` gives a plain
``FC 512 -> num_classes`` readout. The voting of a linear readout is itself
linear, so it changes the parametrisation, not what the layer can express.
Pooling is max pooling as in the PLIF network; dropout (DP) is time-shared
(one mask per sample for all T, like the PLIF network's multi-step dropout).
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
    pool,
    pool_size,
)
from .factory import LayerFactory


class DVSGestureNet(SpikingModel):
    """The PLIF paper's DVS128-Gesture network with tdBN (layer list in the module docstring).

    Spiking layers: ``features.conv1.spike`` ... ``features.conv5.spike``,
    ``classifier.fc1.spike``.

    Args:
        factory: neuron/synapse/tdBN factory.
        num_classes: classes (11 for DVS128-Gesture).
        in_channels: input channels (2 polarities).
        input_size: ``(H, W)``; the FC layer has ``128 * (H//32) * (W//32)`` inputs.
        dropout: time-shared dropout before the hidden FC layer and the readout.
        channels: conv width (128 in the paper).
        hidden: hidden FC size (512 in the paper).
        voting: readout outputs per class (10 in the paper; 1 disables voting).
    """

    name = "dvsgesturenet"
    default_steps = 10

    def __init__(
        self,
        factory: LayerFactory,
        num_classes: int = 11,
        in_channels: int = 2,
        input_size: tuple[int, int] = (128, 128),
        dropout: float = 0.0,
        channels: int = 128,
        hidden: int = 512,
        voting: int = 10,
    ) -> None:
        super().__init__(factory, num_classes, in_channels, input_size)
        layers: OrderedDict[str, nn.Module] = OrderedDict()
        c_in, (h, w) = in_channels, self.input_size
        for i in range(1, 6):
            layers[f"conv{i}"] = ConvSpike(factory, c_in, channels)
            layers[f"pool{i}"] = pool("max", 2)
            c_in, h, w = channels, pool_size(h), pool_size(w)
        check_size(self.name, self.input_size, (h, w))
        self.features = nn.Sequential(layers)
        self.classifier = nn.Sequential(
            OrderedDict(
                flatten=TimeFlatten(),
                drop1=TimeSharedDropout(dropout),
                fc1=LinearSpike(factory, channels * h * w, hidden),
                drop2=TimeSharedDropout(dropout),
            )
        )
        self.readout = Readout(hidden, num_classes, voting=voting)
