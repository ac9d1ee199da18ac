"""Shared test helper for the export/Lava parity tests: small random qifsim nets and spike inputs.

* :func:`random_net` builds an eval-mode :class:`~qifsim.models.SpikingModel`
  (``features -> classifier -> readout``, the same blocks as the registry models)
  with random weights, non-trivial tdBN running statistics and affine parameters,
  calibrated so hidden layers fire at useful rates (about 10-40 % per step) on
  :func:`random_spikes` input.
* :func:`random_spikes` draws a time-first 0/1 spike tensor ``[T, B, *shape]``;
* :func:`model_spikes` runs a model and returns every spiking layer's spikes and the logits.

Both are deterministic in ``seed``. Import as ``from export_nets import random_net``
(``tests/`` is on ``sys.path`` under pytest) or by path from another environment.
"""

from __future__ import annotations

from collections import OrderedDict

import torch
from torch import nn

from qifsim.models import ConvSpike, LinearSpike, Readout, SpikingModel
from qifsim.models.blocks import TimeFlatten, TimeSharedDropout, conv_size, pool
from qifsim.models.factory import LayerFactory
from qifsim.neurons import LIFParameters, QIFParameters

__all__ = ["ExportTestNet", "layer_rates", "model_spikes", "random_net", "random_spikes"]

#: Input shape ``(C, H, W)`` of the random nets.
DENSE_INPUT = (2, 4, 4)
CONV_INPUT = (2, 8, 8)


class ExportTestNet(SpikingModel):
    """A small random net in the registry models' layout.

    ``kind="dense"``: ``flatten -> depth x LinearSpike(hidden) -> Readout``;
    ``kind="conv"``: ``depth x ConvSpike(3x3, channels)`` (an ``AvgPool2d(2)`` after
    the first one with ``pool=True``) ``-> flatten -> Readout``. Input
    ``[T, B, C, H, W]`` -> logits ``[B, num_classes]``.
    """

    name = "export-test-net"
    default_steps = 4

    def __init__(
        self,
        factory: LayerFactory,
        kind: str,
        depth: int,
        input_shape: tuple[int, int, int],
        num_classes: int = 5,
        hidden: int = 24,
        channels: int = 6,
        pool_first: bool = False,
        voting: int = 1,
        dropout: float = 0.1,
    ) -> None:
        c, h, w = input_shape
        super().__init__(factory, num_classes, c, (h, w))
        if kind not in ("dense", "conv"):
            raise ValueError(f"kind must be 'dense' or 'conv', got {kind!r}")
        if not 1 <= depth <= 3:
            raise ValueError(f"depth must be 1, 2 or 3, got {depth}")
        if kind == "dense":
            self.features = nn.Sequential()
            layers: OrderedDict[str, nn.Module] = OrderedDict(flatten=TimeFlatten())
            width = c * h * w
            for i in range(depth):
                layers[f"drop{i + 1}"] = TimeSharedDropout(dropout)
                layers[f"fc{i + 1}"] = LinearSpike(factory, width, hidden)
                width = hidden
            self.classifier = nn.Sequential(layers)
        else:
            feats: OrderedDict[str, nn.Module] = OrderedDict()
            cin, size = c, (h, w)
            for i in range(depth):
                stride = 1 if i == 0 else 2
                feats[f"conv{i + 1}"] = ConvSpike(factory, cin, channels, 3, stride=stride)
                size = tuple(conv_size(s, 3, stride) for s in size)
                cin = channels
                if i == 0 and pool_first:
                    feats["pool1"] = pool("avg", 2)
                    size = tuple(s // 2 for s in size)
            self.features = nn.Sequential(feats)
            self.classifier = nn.Sequential(
                OrderedDict(flatten=TimeFlatten(), drop=TimeSharedDropout(dropout))
            )
            width = cin * size[0] * size[1]
        self.readout = Readout(width, num_classes, voting)


def random_spikes(
    T: int, B: int, shape: tuple[int, ...], rate: float = 0.3, seed: int = 0
) -> torch.Tensor:
    """0/1 spikes ``[T, B, *shape]`` (float32), each element 1 with probability ``rate``."""
    if not 0.0 <= rate <= 1.0:
        raise ValueError(f"rate must be in [0, 1], got {rate}")
    gen = torch.Generator().manual_seed(seed)
    return (torch.rand((T, B, *shape), generator=gen) < rate).float()


def _neuron_params(neuron: str, gen: torch.Generator, form: str) -> QIFParameters | LIFParameters:
    """Slightly randomised paper parameters (so exporters cannot rely on the defaults)."""
    u = torch.rand(4, generator=gen).tolist()
    if neuron == "qif":
        return QIFParameters(
            a=0.2 + 0.1 * u[0],
            u_rest=-0.05 + 0.1 * u[1],
            u_c=0.45 + 0.1 * u[2],
            u_th=0.45 + 0.1 * u[3],
            form=form,
        )
    if neuron == "lif":
        return LIFParameters(beta=0.2 + 0.3 * u[0], u_th=0.45 + 0.1 * u[1])
    raise ValueError(f"neuron must be 'qif' or 'lif', got {neuron!r}")


@torch.no_grad()
def model_spikes(model: SpikingModel, x: torch.Tensor) -> tuple[list[torch.Tensor], torch.Tensor]:
    """Run ``model`` on ``x: [T, B, C, H, W]``: (spikes of every spiking layer in forward
    order, each ``[T, B, *shape]``; logits ``[B, num_classes]``). For float64 parity checks
    call it on ``model.double()`` with ``x.double()``."""
    out: list[torch.Tensor] = []
    hooks = [
        m.register_forward_hook(lambda _m, _i, o: out.append(o[0]))
        for m in model.spiking_layers().values()
    ]
    try:
        logits = model(x)
    finally:
        for h in hooks:
            h.remove()
    return out, logits


@torch.no_grad()
def layer_rates(model: SpikingModel, x: torch.Tensor) -> dict[str, float]:
    """Mean firing rate of every spiking layer of ``model`` on input ``x`` (by qualified name)."""
    rates: dict[str, float] = {}
    hooks = [
        module.register_forward_hook(
            lambda _m, _i, out, name=name: rates.__setitem__(name, float(out[0].float().mean()))
        )
        for name, module in model.spiking_layers().items()
    ]
    try:
        model(x)
    finally:
        for h in hooks:
            h.remove()
    return rates


@torch.no_grad()
def random_net(
    kind: str = "dense",
    neuron: str = "qif",
    depth: int = 1,
    seed: int = 0,
    pool: bool = False,
    T: int = 4,
    voting: int = 1,
    form: str = "paper",
    num_classes: int = 5,
    input_rate: float = 0.3,
) -> ExportTestNet:
    """A random eval-mode qifsim net for export/parity tests.

    Args:
        kind: ``"dense"`` (input 2x4x4 flattened) or ``"conv"`` (input 2x8x8).
        neuron: ``"qif"`` or ``"lif"`` (parameters slightly randomised per seed).
        depth: number of spiking layers, 1..3.
        seed: everything (weights, tdBN statistics, parameters) follows from it.
        pool: conv only, average pooling 2x2 after the first conv layer.
        T: time steps used for calibration (``model.default_steps`` is set to it).
        voting: readout voting factor.
        form: QIF form, ``"paper"`` or ``"euler"``.
        num_classes: readout size.
        input_rate: spike rate of the calibration input.

    The tdBN running statistics are those of a calibration batch of
    :func:`random_spikes` (so they are data-dependent, non-zero means, variances
    far from 1), then ``gamma`` in [0.8, 1.2] and ``xi`` in [-0.1, 0.1] are drawn;
    hidden layers then fire at roughly 10-40 % on such input. Float32, eval mode.
    """
    if pool and kind != "conv":
        raise ValueError("pool=True needs kind='conv'")
    gen = torch.Generator().manual_seed(seed)
    torch.manual_seed(seed)
    params = _neuron_params(neuron, gen, form)
    factory = LayerFactory(neuron, params, neuron_kwargs={"impl": "reference"})
    shape = DENSE_INPUT if kind == "dense" else CONV_INPUT
    model = ExportTestNet(
        factory, kind, depth, shape, num_classes=num_classes, pool_first=pool, voting=voting
    )
    model.default_steps = T
    bns = [m for m in model.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]
    for bn in bns:
        bn.momentum = None  # cumulative average: one batch -> its statistics
        bn.reset_running_stats()
    model.train()
    x = random_spikes(T, 16, shape, input_rate, seed + 1000)
    model(x)  # batch statistics layer by layer become the running statistics
    for bn in bns:
        n = bn.num_features
        bn.weight.copy_(0.8 + 0.4 * torch.rand(n, generator=gen))
        bn.bias.copy_(-0.1 + 0.2 * torch.rand(n, generator=gen))
        bn.momentum = 0.1
    readout = model.readout.fc
    readout.bias.copy_(0.1 * torch.randn(readout.bias.shape, generator=gen))
    return model.eval()
