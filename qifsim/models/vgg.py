"""VGG-style spiking networks: VGGSNN (Deng et al. 2022, TET) and VGG-11 (for N-Caltech101).

Notation: ``64C3`` = conv3x3 (padded "same") with 64 channels, followed by
tdBN and a neuron; ``AP2`` = 2x2 average pooling (stride 2); ``DP`` =
time-shared dropout; the readout is the non-firing linear layer averaged over T.

VGGSNN (QIF paper: CIFAR10-DVS and N-Cars, 2x48x48, T=10, dropout 0.6)::

    64C3 128C3 AP2 256C3 256C3 AP2 512C3 512C3 AP2 512C3 512C3 AP2
    flatten DP readout(512*3*3 -> num_classes)          (on 48x48: 3x3 final map)

The readout size follows ``input_size`` (``512 * (H//16) * (W//16)``).

VGG-11 (QIF paper: N-Caltech101, 2x48x48, T=10, dropout 0.6; the paper cites
Kim & Panda 2021 and compares with Li et al. 2022 "under identical
conditions"). The 8 conv layers of VGG-11 (configuration "A" of Simonyan &
Zisserman) in the layout the neuromorphic-augmentation work of Li et al.
(2022) uses for 48x48 event frames: three pooling stages, then global average
pooling (their VGG-11 has no hidden FC layers)::

    variant="nda" (default):
    64C3 AP2 128C3 AP2 256C3 256C3 AP2 512C3 512C3 512C3 512C3
    global-average-pool DP readout(512 -> num_classes)  (on 48x48: 6x6 before pooling)

    variant="classic" (pooling after every stage, as in the ImageNet VGG-11):
    64C3 AP2 128C3 AP2 256C3 256C3 AP2 512C3 512C3 AP2 512C3 512C3 AP2
    global-average-pool DP readout(512 -> num_classes)  (on 48x48: 1x1 before pooling)

The ImageNet VGG-11's FC-4096 layers are not used: neither paper's event-data
VGG-11 has them, and at 48x48 they would triple the parameter count.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Sequence

from torch import nn

from .base import SpikingModel
from .blocks import (
    ConvSpike,
    GlobalAvgPool,
    Readout,
    TimeFlatten,
    TimeSharedDropout,
    check_size,
    pool,
    pool_size,
)
from .factory import LayerFactory

#: Layer lists: an int is a spiking conv3x3 with that many channels, "A" a 2x2 average pool.
VGGSNN_CFG: tuple[int | str, ...] = (64, 128, "A", 256, 256, "A", 512, 512, "A", 512, 512, "A")
VGG11_CFGS: dict[str, tuple[int | str, ...]] = {
    "nda": (64, "A", 128, "A", 256, 256, "A", 512, 512, 512, 512),
    "classic": (64, "A", 128, "A", 256, 256, "A", 512, 512, "A", 512, 512, "A"),
}


def conv_stack(
    factory: LayerFactory,
    cfg: Sequence[int | str],
    in_channels: int,
    input_size: tuple[int, int],
    pool_kind: str = "avg",
) -> tuple[nn.Sequential, int, tuple[int, int]]:
    """Spiking conv stack from a layer list.

    Returns ``(stack, out_channels, (H, W) of the last map)``; children are named
    ``conv1, conv2, ...`` (:class:`~qifsim.models.blocks.ConvSpike`) and
    ``pool1, pool2, ...``.
    """
    layers: OrderedDict[str, nn.Module] = OrderedDict()
    channels, (h, w) = in_channels, input_size
    n_conv = n_pool = 0
    for item in cfg:
        if item == "A":
            n_pool += 1
            layers[f"pool{n_pool}"] = pool(pool_kind, 2)
            h, w = pool_size(h), pool_size(w)
        else:
            n_conv += 1
            layers[f"conv{n_conv}"] = ConvSpike(factory, channels, int(item))
            channels = int(item)
    return nn.Sequential(layers), channels, (h, w)


class VGGSNN(SpikingModel):
    """VGGSNN of Deng et al. 2022 (TET); layer list in the module docstring.

    Spiking layers: ``features.conv1.spike`` ... ``features.conv8.spike``.

    Args:
        factory: neuron/synapse/tdBN factory.
        num_classes: readout size.
        in_channels: input channels (2 for DVS frames).
        input_size: ``(H, W)``; the readout has ``512 * (H//16) * (W//16)`` inputs.
        dropout: time-shared dropout before the readout (paper: 0.6).
    """

    name = "vggsnn"
    default_steps = 10

    def __init__(
        self,
        factory: LayerFactory,
        num_classes: int = 10,
        in_channels: int = 2,
        input_size: tuple[int, int] = (48, 48),
        dropout: float = 0.0,
    ) -> None:
        super().__init__(factory, num_classes, in_channels, input_size)
        self.features, channels, final = conv_stack(
            factory, VGGSNN_CFG, in_channels, self.input_size
        )
        check_size(self.name, self.input_size, final)
        self.classifier = nn.Sequential(
            OrderedDict(flatten=TimeFlatten(), drop=TimeSharedDropout(dropout))
        )
        self.readout = Readout(channels * final[0] * final[1], num_classes)


class VGG11(SpikingModel):
    """Spiking VGG-11 for event frames; layer lists in the module docstring.

    Spiking layers: ``features.conv1.spike`` ... ``features.conv8.spike``.

    Args:
        factory: neuron/synapse/tdBN factory.
        num_classes: readout size (101 for N-Caltech101).
        in_channels: input channels (2 for DVS frames).
        input_size: ``(H, W)``; any size works (global pooling), default 48x48.
        dropout: time-shared dropout before the readout (paper: 0.6).
        variant: ``"nda"`` (three pooling stages, default) or ``"classic"`` (five).
    """

    name = "vgg11"
    default_steps = 10
    fixed_size = False

    def __init__(
        self,
        factory: LayerFactory,
        num_classes: int = 101,
        in_channels: int = 2,
        input_size: tuple[int, int] = (48, 48),
        dropout: float = 0.0,
        variant: str = "nda",
    ) -> None:
        super().__init__(factory, num_classes, in_channels, input_size)
        if variant not in VGG11_CFGS:
            raise ValueError(f"VGG-11 variant must be one of {tuple(VGG11_CFGS)}, got {variant!r}")
        self.variant = variant
        self.features, channels, final = conv_stack(
            factory, VGG11_CFGS[variant], in_channels, self.input_size
        )
        check_size(self.name, self.input_size, final)
        self.features.add_module("gap", GlobalAvgPool())
        self.classifier = nn.Sequential(
            OrderedDict(flatten=TimeFlatten(), drop=TimeSharedDropout(dropout))
        )
        self.readout = Readout(channels, num_classes)
