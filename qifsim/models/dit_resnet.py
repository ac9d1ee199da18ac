"""CIFAR ResNet-20/32/56/110 (He et al. 2016) and their Dit versions (ANN, not spiking).

The dendritic-integration paper's CIFAR models: a plain CIFAR ResNet in which
one layer, the second conv of the first block of stage 2, also integrates its
input quadratically. Layers (``depth = 6n + 2``, ``n`` = 3, 5, 9, 18)::

    stem    conv3x3 C->16, BN, ReLU                    32x32
    stage1  n x Block(16)                              32x32
    stage2  n x Block(32), first stride 2              16x16
    stage3  n x Block(64), first stride 2               8x8
    pool    global average pool                         64
    fc      FC 64->num_classes

Blocks are ``relu(bn2(conv2(relu(bn1(conv1(x))))) + shortcut(x))``; the
shortcut is the identity, or (where the shape changes) the parameter-free
"option A" of He et al.: subsample by 2 and zero-pad the new channels. This
gives ResNet-20 its 0.27 M parameters.

Dit block (stage 2, block 1 only)::

    out  = relu(bn1(conv1(x)))
    main = (bn2(conv2(out)) + quad(ln(out))) / 2
    y    = relu(main + shortcut(x))

``ln`` is a LayerNorm over ``[H, W]`` of each channel (elementwise affine of
shape ``[H, W]``, so the Dit models are tied to their input size) and
``quad`` a :class:`qifsim.layers.ChannelQuadratic` (``32 -> 32`` channels,
the same pixel: ``out[i, h, w] = x[:, h, w]^T A_i x[:, h, w]``, A zero at
start). Train with :func:`qifsim.quadratic.quadratic_param_groups` (A and
``ln`` at 10x the base learning rate, as the paper).

The models follow the :class:`~qifsim.models.base.SpikingModel` contract so
that the trainer can use them unchanged: input ``[T, B, C, H, W]`` (static
images with ``T = 1``; a larger ``T`` repeats the same ANN and averages the
logits), output ``[B, num_classes]``. They hold no neurons: ``neuron`` is
``"none"`` and ``spiking_layers()`` is empty.
"""

from __future__ import annotations

from collections import OrderedDict
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from ..layers.temporal import MergeTime
from .base import SpikingModel
from .factory import LayerFactory

#: Depth -> blocks per stage (``depth = 6n + 2``).
DEPTHS: dict[int, int] = {20: 3, 32: 5, 56: 9, 110: 18}
#: Channels of the three stages.
STAGE_CHANNELS: tuple[int, int, int] = (16, 32, 64)
#: ``(stage, block)`` (0-based) of the Dit block: first block of stage 2.
DIT_BLOCK: tuple[int, int] = (1, 0)


class PadShortcut(nn.Module):
    """He et al.'s option-A shortcut: ``[N, Cin, H, W] -> [N, Cout, ceil(H/s), ceil(W/s)]``.

    Takes every ``stride``-th pixel and zero-pads the channels evenly on both
    sides (``Cout - Cin`` must be even and >= 0). No parameters.
    """

    def __init__(self, in_channels: int, out_channels: int, stride: int) -> None:
        super().__init__()
        extra = out_channels - in_channels
        if extra < 0 or extra % 2:
            raise ValueError(
                f"option-A shortcut needs out_channels - in_channels even and >= 0, "
                f"got {in_channels} -> {out_channels}"
            )
        self.pad = extra // 2
        self.stride = int(stride)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = x[:, :, :: self.stride, :: self.stride]
        return F.pad(y, (0, 0, 0, 0, self.pad, self.pad))


class CifarBlock(nn.Module):
    """Basic residual block ``[N, Cin, H, W] -> [N, Cout, H', W']`` (ANN), optionally Dit.

    Args:
        in_channels, out_channels: channels.
        stride: stride of ``conv1`` (and of the shortcut).
        quadratic_size: ``(H', W')`` of the block's output when this is the
            Dit block (adds ``quad_norm`` = LayerNorm over ``[H', W']`` and
            ``quad`` = ChannelQuadratic); ``None``: a plain block.
        quadratic_kwargs: extra :class:`~qifsim.layers.ChannelQuadratic`
            options (``rank``, ``chunk_size``, ``impl``).
    """

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        stride: int = 1,
        quadratic_size: tuple[int, int] | None = None,
        quadratic_kwargs: dict[str, Any] | None = None,
    ) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(in_channels, out_channels, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(out_channels)
        self.conv2 = nn.Conv2d(out_channels, out_channels, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(out_channels)
        self.quad_norm: nn.LayerNorm | None = None
        self.quad: nn.Module | None = None
        if quadratic_size is not None:
            from ..layers.quadratic import ChannelQuadratic

            self.quad_norm = nn.LayerNorm(tuple(quadratic_size))
            self.quad = ChannelQuadratic(
                out_channels, out_channels, kernel_size=1, **(quadratic_kwargs or {})
            )
        if stride != 1 or in_channels != out_channels:
            self.shortcut: nn.Module = PadShortcut(in_channels, out_channels, stride)
        else:
            self.shortcut = nn.Identity()

    @property
    def quadratic_norm(self) -> nn.Module | None:
        """The LayerNorm in front of the quadratic term (for the param groups), or ``None``."""
        return self.quad_norm

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = F.relu(self.bn1(self.conv1(x)))
        main = self.bn2(self.conv2(out))
        if self.quad is not None:
            main = (main + self.quad(self.quad_norm(out))) / 2
        return F.relu(main + self.shortcut(x))


def _conv_out(size: int, stride: int) -> int:
    """Output size of a 3x3 conv with padding 1."""
    return (size - 1) // stride + 1


class CifarResNet(SpikingModel):
    """CIFAR ResNet-``depth`` (ANN), optionally with the Dit quadratic block.

    Built through :func:`qifsim.models.build_model` (``"resnet20"`` ...
    ``"dit-resnet110"``); ``forward(x [T, B, C, H, W]) -> logits [B, classes]``.

    Args:
        factory: the registry's layer factory; only its ``synapse`` is read and
            must be ``"linear"`` (the model has no neurons; the Dit term is built in).
        num_classes: classes.
        in_channels: input channels (3 for CIFAR).
        input_size: ``(H, W)``; the Dit LayerNorm's shape depends on it.
        dropout: dropout before the FC layer (0 in the paper).
        depth: 20, 32, 56 or 110.
        dit: add the quadratic term to the second conv of stage 2, block 1.
        rank, chunk_size, impl: :class:`~qifsim.layers.ChannelQuadratic` options.
    """

    default_steps = 1

    def __init__(
        self,
        factory: LayerFactory,
        num_classes: int = 10,
        in_channels: int = 3,
        input_size: tuple[int, int] = (32, 32),
        dropout: float = 0.0,
        *,
        depth: int = 20,
        dit: bool = False,
        rank: int | None = None,
        chunk_size: int | None = None,
        impl: str = "fused",
    ) -> None:
        super().__init__(factory, num_classes, in_channels, input_size)
        if depth not in DEPTHS:
            raise ValueError(f"CIFAR ResNet depth must be one of {tuple(DEPTHS)}, got {depth!r}")
        if not 0.0 <= dropout < 1.0:
            raise ValueError(f"dropout must be in [0, 1), got {dropout!r}")
        if factory.synapse != "linear":
            hint = "its quadratic term is built in" if dit else f"build 'dit-resnet{depth}'"
            raise ValueError(
                f"{_registry_name(depth, dit)} is an ANN: synapse={factory.synapse!r} (spiking "
                f"quadratic synapses) does not apply ({hint}); use synapse='linear'"
            )
        self.depth = int(depth)
        self.dit = bool(dit)
        self.name = _registry_name(depth, dit)
        self.neuron = "none"
        self.synapse = "quadratic" if dit else "linear"
        self.fixed_size = self.dit
        quadratic_kwargs = {"rank": rank, "chunk_size": chunk_size, "impl": impl}

        layers: OrderedDict[str, nn.Module] = OrderedDict()
        layers["conv"] = nn.Conv2d(in_channels, STAGE_CHANNELS[0], 3, 1, 1, bias=False)
        layers["bn"] = nn.BatchNorm2d(STAGE_CHANNELS[0])
        layers["relu"] = nn.ReLU(inplace=True)
        height, width = self.input_size
        channels = STAGE_CHANNELS[0]
        for stage, width_c in enumerate(STAGE_CHANNELS):
            blocks = []
            for index in range(DEPTHS[depth]):
                stride = 2 if (stage > 0 and index == 0) else 1
                height, width = _conv_out(height, stride), _conv_out(width, stride)
                quad_size = (height, width) if dit and (stage, index) == DIT_BLOCK else None
                blocks.append(CifarBlock(channels, width_c, stride, quad_size, quadratic_kwargs))
                channels = width_c
            layers[f"layer{stage + 1}"] = nn.Sequential(*blocks)
        self.features = MergeTime(nn.Sequential(layers))
        self.classifier = MergeTime(
            nn.Sequential(
                nn.AdaptiveAvgPool2d(1),
                nn.Flatten(1),
                nn.Dropout(dropout) if dropout > 0 else nn.Identity(),
            )
        )
        self.readout = MergeTime(nn.Linear(channels, num_classes))
        self._init_weights()

    def _init_weights(self) -> None:
        for module in self.modules():  # as torchvision's ResNets (the FC layer keeps its default)
            if isinstance(module, nn.Conv2d):
                nn.init.kaiming_normal_(module.weight, mode="fan_out", nonlinearity="relu")

    @property
    def dit_block(self) -> CifarBlock | None:
        """The block holding the quadratic term (``None`` for a plain ResNet)."""
        if not self.dit:
            return None
        stage, index = DIT_BLOCK
        return getattr(self.features.module, f"layer{stage + 1}")[index]

    def extra_repr(self) -> str:
        c, h, w = self.input_shape
        return f"name={self.name!r}, input={c}x{h}x{w}, num_classes={self.num_classes}"


def _variant(depth: int, dit: bool) -> type[CifarResNet]:
    """A :class:`CifarResNet` subclass with ``depth`` and ``dit`` fixed (for the registry)."""

    def __init__(self, factory: LayerFactory, *args: Any, **kwargs: Any) -> None:
        fixed = sorted({"depth", "dit"} & set(kwargs))
        if fixed:
            raise TypeError(
                f"{_registry_name(depth, dit)} fixes {fixed}; choose the model by name "
                f"(resnet20/32/56/110, dit-resnet20/32/56/110) instead"
            )
        CifarResNet.__init__(self, factory, *args, depth=depth, dit=dit, **kwargs)

    name = f"{'Dit' if dit else ''}ResNet{depth}"
    doc = f"{'Dit-' if dit else ''}ResNet-{depth} for CIFAR (ANN); see :class:`CifarResNet`."
    return type(name, (CifarResNet,), {"__init__": __init__, "__doc__": doc})


ResNet20, ResNet32, ResNet56, ResNet110 = (_variant(d, False) for d in DEPTHS)
DitResNet20, DitResNet32, DitResNet56, DitResNet110 = (_variant(d, True) for d in DEPTHS)


def _registry_name(depth: int, dit: bool) -> str:
    return f"dit-resnet{depth}" if dit else f"resnet{depth}"


#: Registry entries: name -> class (``resnet20`` ... ``resnet110``, ``dit-resnet20`` ...).
CIFAR_RESNETS: dict[str, type[CifarResNet]] = {
    _registry_name(depth, dit): cls
    for dit, classes in (
        (False, (ResNet20, ResNet32, ResNet56, ResNet110)),
        (True, (DitResNet20, DitResNet32, DitResNet56, DitResNet110)),
    )
    for depth, cls in zip(DEPTHS, classes, strict=True)
}
