"""Walk a qifsim model into a flat list of exportable layers (tdBN folded, float64).

:func:`walk` turns a :class:`~qifsim.models.SpikingModel` (or any module built
from the same blocks) into :class:`ExportLayer` s in forward order:

* :class:`~qifsim.models.ConvSpike` / :class:`~qifsim.models.LinearSpike`:
  ``conv``/``dense`` with tdBN folded into weight and bias, role ``hidden``,
  and the neuron's effective scalar parameters;
* ``MergeTime(AvgPool2d(k))``: a ``pool`` layer (sum pool, stride = kernel); the
  ``1/k^2`` is folded into the next synaptic layer's weights;
* :class:`~qifsim.models.blocks.GlobalAvgPool`: a sum pool over the whole map
  plus ``flatten`` (``1/(H W)`` folded into the next layer);
* :class:`~qifsim.models.blocks.TimeFlatten`: ``flatten`` (omitted when the
  input is already flat);
* :class:`~qifsim.models.blocks.TimeSharedDropout`, ``nn.Dropout``,
  ``nn.Identity``: identity at inference, omitted;
* :class:`~qifsim.models.Readout`: ``dense`` with role ``readout`` (voting
  folded: each class row is the mean of its ``voting`` rows).

Anything else (residual blocks, max pooling, quadratic synapses, ...) raises
:class:`ExportError` naming the module's qualified name and type.

Weight layouts: dense ``(out, in)``; conv ``(out, in/groups, kH, kW)`` (torch
cross-correlation). Shapes are per sample, torch order ``(C, H, W)`` or ``(N,)``.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field

import numpy as np
import torch
from torch import nn

from ..layers import MergeTime
from ..layers.tdbn import fold_batchnorm
from ..models.base import SpikingModel
from ..models.blocks import (
    ConvSpike,
    GlobalAvgPool,
    LinearSpike,
    Readout,
    TimeFlatten,
    TimeSharedDropout,
)
from ..neurons import LIF, QIF

__all__ = ["ExportError", "ExportLayer", "walk"]


class ExportError(ValueError):
    """A model (or one of its modules) cannot be represented in the exchange format."""


@dataclass
class ExportLayer:
    """One layer of the flat export graph.

    Attributes:
        kind: ``"dense"``, ``"conv"``, ``"flatten"`` or ``"pool"``.
        role: ``"hidden"`` (spiking), ``"readout"``, ``"flatten"`` or ``"pool"``.
        name: qualified name of the source module in the model.
        shape: output shape per sample, ``(C, H, W)`` or ``(N,)``.
        neuron: ``"qif"``, ``"lif"`` or ``"none"``.
        params: effective scalar neuron parameters (QIF ``a, u_rest, u_c, u_th``
            and ``form``; LIF ``beta, u_th``); empty for non-spiking layers.
        weight: float64 folded weights (dense ``(out, in)``, conv
            ``(out, in/groups, kH, kW)``), ``None`` for flatten/pool.
        bias: float64 folded bias ``(out,)``, ``None`` for flatten/pool.
        stride, padding, dilation: conv ``(y, x)``; pool: stride = kernel, padding 0.
        groups: conv groups (1 for pool: the Lava side builds a grouped conv itself).
        kernel_size: pool kernel ``(kH, kW)``.
        pool_scale: the average-pooling factor (product of ``1/k^2``) folded into
            ``weight``; ``unpooled_weight`` is ``weight`` before it (tdBN folded).
    """

    kind: str
    role: str
    name: str
    shape: tuple[int, ...]
    neuron: str = "none"
    params: dict = field(default_factory=dict)
    weight: np.ndarray | None = None
    bias: np.ndarray | None = None
    stride: tuple[int, int] = (1, 1)
    padding: tuple[int, int] = (0, 0)
    dilation: tuple[int, int] = (1, 1)
    groups: int = 1
    kernel_size: tuple[int, int] = (1, 1)
    pool_scale: float = 1.0
    unpooled_weight: np.ndarray | None = None

    @property
    def synaptic(self) -> bool:
        """True for ``dense``/``conv`` layers (they carry weights)."""
        return self.kind in ("dense", "conv")


def _pair(value) -> tuple[int, int]:
    if isinstance(value, (tuple, list)):
        if len(value) != 2:
            raise ExportError(f"expected a pair, got {value!r}")
        return int(value[0]), int(value[1])
    return int(value), int(value)


def _neuron_values(name: str, module: nn.Module) -> tuple[str, dict]:
    """``("qif"|"lif", effective scalar parameters)`` of a multi-step neuron module."""
    if type(module) not in (QIF, LIF):
        raise ExportError(
            f"module {name!r} ({type(module).__name__}) is not a multi-step qifsim QIF/LIF "
            "neuron; only qifsim.neurons.QIF and LIF layers can be exported"
        )
    values = {}
    for key, value in module.neuron_values().items():
        t = torch.as_tensor(value).detach().double()
        if t.numel() != 1:
            raise ExportError(
                f"module {name!r}: parameter {key} has shape {tuple(t.shape)}; per-channel "
                "neuron parameters are not supported by exchange format v1 (use scalars)"
            )
        v = float(t.reshape(()))
        if not np.isfinite(v):
            raise ExportError(f"module {name!r}: parameter {key} is not finite ({v})")
        values[key] = v
    if isinstance(module, QIF):
        values["form"] = module.p.form
        return "qif", values
    return "lif", values


def _check_bn(name: str, bn: nn.Module) -> None:
    if bn.running_mean is None or bn.running_var is None:
        raise ExportError(
            f"module {name!r}: tdBN without running statistics cannot be folded "
            "(build it with track_running_stats=True and train/calibrate it)"
        )
    for key in ("running_mean", "running_var"):
        if not torch.isfinite(getattr(bn, key)).all():
            raise ExportError(f"module {name!r}: tdBN {key} has NaN/inf entries")


class _Walker:
    """Stateful walk: tracks the current per-sample shape and pending pool scales."""

    def __init__(self, input_shape: tuple[int, ...]) -> None:
        self.shape = tuple(int(s) for s in input_shape)
        self.layers: list[ExportLayer] = []
        self.pending_scale = 1.0  # product of 1/k^2 of avg pools not yet folded

    # -- helpers -------------------------------------------------------------
    def _fold_pending(self, weight: np.ndarray) -> np.ndarray:
        weight = weight * self.pending_scale
        self.pending_scale = 1.0
        return weight

    def _append(self, layer: ExportLayer) -> None:
        """Add a synaptic layer, folding the pending pooling factor into its weights."""
        layer.pool_scale = self.pending_scale
        layer.unpooled_weight = layer.weight
        layer.weight = self._fold_pending(layer.weight)
        self.layers.append(layer)

    def _need_map(self, name: str, module: nn.Module) -> tuple[int, int, int]:
        if len(self.shape) != 3:
            raise ExportError(
                f"module {name!r} ({type(module).__name__}) needs a (C, H, W) input here, "
                f"but the data is flat {self.shape} at this point"
            )
        return self.shape  # type: ignore[return-value]

    def _need_flat(self, name: str, module: nn.Module, features: int) -> None:
        if len(self.shape) != 1:
            raise ExportError(
                f"module {name!r} ({type(module).__name__}) needs flat input, got {self.shape}; "
                "put a TimeFlatten before it"
            )
        if self.shape[0] != features:
            raise ExportError(
                f"module {name!r}: expects {features} input features, the graph has "
                f"{self.shape[0]} at this point (wrong input_shape?)"
            )

    # -- layer handlers ------------------------------------------------------
    def conv_spike(self, name: str, block: ConvSpike) -> None:
        conv = block.conv.module if isinstance(block.conv, MergeTime) else block.conv
        if type(conv) is not nn.Conv2d:
            raise ExportError(
                f"module {name}.conv ({type(conv).__name__}) is not a plain torch.nn.Conv2d "
                "(quadratic/dendritic synapses cannot be exported)"
            )
        if conv.padding_mode != "zeros" or isinstance(conv.padding, str):
            raise ExportError(
                f"module {name}.conv: padding {conv.padding!r}/{conv.padding_mode!r} is not "
                "supported; use integer zero padding"
            )
        c, h, w = self._need_map(name, block)
        if conv.in_channels != c:
            raise ExportError(
                f"module {name!r}: conv expects {conv.in_channels} channels, the graph has {c}"
            )
        _check_bn(f"{name}.bn", block.bn)
        folded = fold_batchnorm(conv, block.bn)
        stride, padding, dilation = (_pair(v) for v in (conv.stride, conv.padding, conv.dilation))
        kh, kw = conv.kernel_size
        oh = (h + 2 * padding[0] - dilation[0] * (kh - 1) - 1) // stride[0] + 1
        ow = (w + 2 * padding[1] - dilation[1] * (kw - 1) - 1) // stride[1] + 1
        neuron, params = _neuron_values(f"{name}.spike", block.spike)
        weight = folded.weight.detach().double().cpu().numpy()
        self.shape = (conv.out_channels, oh, ow)
        self._append(
            ExportLayer(
                "conv", "hidden", name, self.shape, neuron, params, weight,
                folded.bias.detach().double().cpu().numpy(), stride, padding, dilation,
                int(conv.groups),
            )
        )  # fmt: skip

    def linear_spike(self, name: str, block: LinearSpike) -> None:
        fc = block.fc
        if type(fc) is not nn.Linear:
            raise ExportError(
                f"module {name}.fc ({type(fc).__name__}) is not a plain torch.nn.Linear "
                "(quadratic/dendritic synapses cannot be exported)"
            )
        self._need_flat(name, block, fc.in_features)
        _check_bn(f"{name}.bn", block.bn)
        folded = fold_batchnorm(fc, block.bn)
        neuron, params = _neuron_values(f"{name}.spike", block.spike)
        weight = folded.weight.detach().double().cpu().numpy()
        self.shape = (fc.out_features,)
        self._append(
            ExportLayer(
                "dense", "hidden", name, self.shape, neuron, params, weight,
                folded.bias.detach().double().cpu().numpy(),
            )
        )  # fmt: skip

    def readout(self, name: str, block: Readout) -> None:
        fc = block.fc
        if type(fc) is not nn.Linear:
            raise ExportError(f"module {name}.fc ({type(fc).__name__}) is not torch.nn.Linear")
        self._need_flat(name, block, fc.in_features)
        weight = fc.weight.detach().double().cpu()
        bias = (
            fc.bias.detach().double().cpu()
            if fc.bias is not None
            else torch.zeros(fc.out_features, dtype=torch.float64)
        )
        if block.voting > 1:  # class c = mean of rows c*voting .. c*voting + voting - 1
            weight = weight.unflatten(0, (block.num_classes, block.voting)).mean(1)
            bias = bias.unflatten(0, (block.num_classes, block.voting)).mean(1)
        self.shape = (block.num_classes,)
        self._append(
            ExportLayer(
                "dense", "readout", name, self.shape, "none", {}, weight.numpy(), bias.numpy(),
            )
        )  # fmt: skip

    def avg_pool(self, name: str, kernel: tuple[int, int], module: nn.Module) -> None:
        c, h, w = self._need_map(name, module)
        kh, kw = kernel
        if h < kh or w < kw:
            raise ExportError(f"module {name!r}: pool kernel {kernel} larger than map {h}x{w}")
        self.shape = (c, h // kh, w // kw)
        self.pending_scale /= kh * kw
        self.layers.append(
            ExportLayer("pool", "pool", name, self.shape, stride=kernel, kernel_size=kernel)
        )

    def flatten(self, name: str) -> None:
        if len(self.shape) == 1:
            return
        self.shape = (int(np.prod(self.shape)),)
        self.layers.append(ExportLayer("flatten", "flatten", name, self.shape))

    # -- dispatch ------------------------------------------------------------
    def visit(self, name: str, module: nn.Module) -> None:
        if isinstance(module, ConvSpike):
            self.conv_spike(name, module)
        elif isinstance(module, LinearSpike):
            self.linear_spike(name, module)
        elif isinstance(module, Readout):
            self.readout(name, module)
        elif isinstance(module, TimeFlatten):
            self.flatten(name)
        elif isinstance(module, (TimeSharedDropout, nn.Dropout, nn.Identity)):
            return
        elif isinstance(module, GlobalAvgPool):
            _, h, w = self._need_map(name, module)
            self.avg_pool(name, (h, w), module)
            self.flatten(name)
        elif isinstance(module, MergeTime) and type(module.module) is nn.AvgPool2d:
            self.avg_pool(name, _check_avg_pool(name, module.module), module)
        elif type(module) is nn.Sequential:
            for child_name, child in module.named_children():
                self.visit(f"{name}.{child_name}" if name else child_name, child)
        else:
            inner = (
                f" wrapping {type(module.module).__name__}" if isinstance(module, MergeTime) else ""
            )
            raise ExportError(
                f"cannot export module {name!r} ({type(module).__name__}{inner}): the exchange "
                "format represents ConvSpike/LinearSpike (conv/linear + tdBN + QIF/LIF), average "
                "pooling, TimeFlatten, dropout and the Readout only (no residual blocks, max "
                "pooling or quadratic synapses)"
            )


def _check_avg_pool(name: str, pool: nn.AvgPool2d) -> tuple[int, int]:
    kernel = _pair(pool.kernel_size)
    stride = _pair(pool.stride if pool.stride is not None else pool.kernel_size)
    if stride != kernel or _pair(pool.padding) != (0, 0) or pool.ceil_mode:
        raise ExportError(
            f"module {name!r}: only non-overlapping average pooling is supported "
            f"(stride = kernel, no padding, ceil_mode=False), got kernel {kernel}, "
            f"stride {stride}, padding {pool.padding}, ceil_mode {pool.ceil_mode}"
        )
    if pool.divisor_override is not None:
        raise ExportError(f"module {name!r}: AvgPool2d divisor_override is not supported")
    return kernel


def _top_level(model: nn.Module) -> Iterator[tuple[str, nn.Module]]:
    if isinstance(model, SpikingModel):
        yield "features", model.features
        yield "classifier", model.classifier
        yield "readout", model.readout
    else:
        yield from model.named_children()


def walk(model: nn.Module, input_shape: tuple[int, ...]) -> list[ExportLayer]:
    """Flatten ``model`` into export layers (forward order, tdBN folded, float64).

    Args:
        model: a :class:`~qifsim.models.SpikingModel` or an ``nn.Sequential``-like
            module of the supported blocks; evaluated as in eval mode (running stats).
        input_shape: one input frame, ``(C, H, W)`` or ``(N,)``.

    Returns:
        The layers; the last one is the readout.

    Raises:
        ExportError: an unsupported module (named with its type), a shape
        mismatch, no readout or layers after it, per-channel neuron parameters.
    """
    shape = tuple(int(s) for s in input_shape)
    if len(shape) not in (1, 3) or min(shape) < 1:
        raise ExportError(f"input_shape must be (C, H, W) or (N,) with sizes >= 1, got {shape}")
    walker = _Walker(shape)
    for name, module in _top_level(model):
        walker.visit(name, module)
    layers = walker.layers
    roles = [layer.role for layer in layers]
    if "readout" not in roles:
        raise ExportError(
            f"{type(model).__name__} has no qifsim Readout layer; the exchange format needs the "
            "non-firing readout as its last layer"
        )
    if roles.index("readout") != len(layers) - 1:
        extra = layers[roles.index("readout") + 1]
        raise ExportError(f"layer {extra.name!r} follows the readout; the readout must be last")
    if not any(layer.role == "hidden" for layer in layers):
        raise ExportError("the model has no spiking layer to export")
    return layers
