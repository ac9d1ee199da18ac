"""One place that creates the layers of a model: neurons, synapses (conv/linear) and tdBN.

Every architecture in :mod:`qifsim.models` builds its layers through a
:class:`LayerFactory`, so the choices made once in
:func:`~qifsim.models.build_model` (neuron type and parameters, synapse type,
neuron-module options) reach every layer:

* ``neuron``: ``"qif"`` (:class:`~qifsim.neurons.QIF`) or ``"lif"``
  (:class:`~qifsim.neurons.LIF`), with the paper's parameters by default
  (QIF ``a=0.25, u_rest=0, u_c=0.5, u_th=0.5``; LIF ``beta=0.25, u_th=0.5``);
* ``synapse``: ``"linear"`` or ``"quadratic"``. The factory always creates plain
  synapses; with ``"quadratic"``, :func:`apply_quadratic_synapses` (called by
  ``build_model``) then swaps the chosen ones, by qualified name, for spiking quadratic
  versions (placement needs the finished model's names);
* tdBN layers take ``u_th`` from the neuron parameters.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import nn

from ..layers import MergeTime, QuadraticConv2d, QuadraticLinear, TDBatchNorm1d, TDBatchNorm2d
from ..neurons import LIF, QIF, LIFParameters, QIFParameters

#: Neuron types a model can be built with.
NEURONS: tuple[str, ...] = ("qif", "lif")

#: Synapse types a model can be built with.
SYNAPSES: tuple[str, ...] = ("linear", "quadratic")

NeuronParameters = QIFParameters | LIFParameters


def check_neuron(neuron: str) -> str:
    """Return ``neuron`` lower-cased, or raise ``ValueError`` listing :data:`NEURONS`."""
    key = neuron.lower() if isinstance(neuron, str) else neuron
    if key not in NEURONS:
        raise ValueError(f"unknown neuron {neuron!r}; choose one of {NEURONS}")
    return key


def check_synapse(synapse: str) -> str:
    """Return ``synapse``, or raise ``ValueError`` listing :data:`SYNAPSES`."""
    if synapse not in SYNAPSES:
        raise ValueError(f"unknown synapse {synapse!r}; choose one of {SYNAPSES}")
    return synapse


def _threshold(params: NeuronParameters) -> float:
    """The scalar firing threshold of ``params`` (tdBN needs one number per layer)."""
    u_th = params.u_th
    if isinstance(u_th, torch.Tensor):
        if u_th.numel() != 1:
            raise ValueError(
                "models need one scalar u_th (tdBN scales every channel by it); "
                f"got a tensor of shape {tuple(u_th.shape)}"
            )
        u_th = u_th.item()
    return float(u_th)


@dataclass(frozen=True)
class LayerFactory:
    """Creates the neurons, synapses and tdBN layers of one model.

    Args:
        neuron: ``"qif"`` or ``"lif"``.
        params: :class:`~qifsim.neurons.QIFParameters` /
            :class:`~qifsim.neurons.LIFParameters` matching ``neuron``;
            ``None``: the paper's defaults.
        synapse: ``"linear"`` or ``"quadratic"`` (the layers it creates are plain either way;
            see :func:`apply_quadratic_synapses`).
        neuron_kwargs: extra keyword arguments of every neuron module
            (``impl``, ``backend``, ``detach_reset``, ``learnable``, ...).

    Raises:
        ValueError: unknown neuron or synapse, or a non-scalar ``u_th``.
        TypeError: parameters of the wrong neuron type.
    """

    neuron: str = "qif"
    params: NeuronParameters | None = None
    synapse: str = "linear"
    neuron_kwargs: Mapping[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        neuron = check_neuron(self.neuron)
        check_synapse(self.synapse)
        cls = QIFParameters if neuron == "qif" else LIFParameters
        params = cls() if self.params is None else self.params
        if not isinstance(params, cls):
            raise TypeError(
                f"neuron={neuron!r} takes {cls.__name__} as neuron_params, "
                f"got {type(params).__name__}"
            )
        object.__setattr__(self, "neuron", neuron)
        object.__setattr__(self, "params", params)
        object.__setattr__(self, "neuron_kwargs", dict(self.neuron_kwargs))
        _threshold(params)

    @property
    def u_th(self) -> float:
        """Firing threshold of the neurons (the ``u_th`` of every tdBN)."""
        return _threshold(self.params)

    def spiking(self) -> nn.Module:
        """A new multi-step neuron layer: ``[T, B, ...] -> (spikes [T, B, ...], state)``."""
        cls = QIF if self.neuron == "qif" else LIF
        return cls(self.params, **self.neuron_kwargs)

    def conv(
        self,
        in_channels: int,
        out_channels: int,
        kernel_size: int,
        stride: int = 1,
        padding: int | None = None,
    ) -> nn.Module:
        """A synaptic conv layer on ``[T, B, C_in, H, W] -> [T, B, C_out, H', W']``.

        No bias (the tdBN after it has one). ``padding=None``: ``kernel_size // 2``
        ("same" size at stride 1). The synapse type is applied here.
        """
        check_synapse(self.synapse)
        pad = kernel_size // 2 if padding is None else padding
        conv = nn.Conv2d(in_channels, out_channels, kernel_size, stride, pad, bias=False)
        return MergeTime(conv)

    def linear(self, in_features: int, out_features: int, bias: bool = False) -> nn.Linear:
        """A synaptic fully connected layer on ``[T, B, F_in] -> [T, B, F_out]``."""
        check_synapse(self.synapse)
        return nn.Linear(in_features, out_features, bias=bias)

    def tdbn2d(self, channels: int, eta: float = 1.0) -> TDBatchNorm2d:
        """tdBN on ``[T, B, C, H, W]`` with this factory's ``u_th``."""
        return TDBatchNorm2d(channels, u_th=self.u_th, eta=eta)

    def tdbn1d(self, features: int, eta: float = 1.0) -> TDBatchNorm1d:
        """tdBN on ``[T, B, F]`` with this factory's ``u_th``."""
        return TDBatchNorm1d(features, u_th=self.u_th, eta=eta)


# -- quadratic (dendritic) synapses ----------------------------------------------------------

#: Default quadratic placement per spiking model (``quadratic_layers="auto"``), following the
#: Dit paper's logic of one quadratic layer in the middle of the network, fed by binary spikes:
#: the second layer of the first block of stage 2 (resnet19, as the paper's ResNets), the
#: second conv of the second stage where the first follows average pooling (vggsnn, vgg11),
#: the second conv stage (dvsgesturenet, after max pooling; digits-net). In lenet5 every
#: hidden synapse follows average pooling (non-binary), so its readout takes the term.
QUADRATIC_AUTO_LAYERS: dict[str, tuple[str, ...]] = {
    "digits-net": ("features.conv2.conv",),
    "lenet5": ("readout.fc",),
    "vggsnn": ("features.conv4.conv",),
    "vgg11": ("features.conv4.conv",),
    "dvsgesturenet": ("features.conv2.conv",),
    "resnet19": ("features.layer2.0.conv2",),
}

_NON_BINARY = (
    nn.AvgPool1d,
    nn.AvgPool2d,
    nn.AdaptiveAvgPool1d,
    nn.AdaptiveAvgPool2d,
    nn.LayerNorm,
    nn.GroupNorm,
    nn.modules.batchnorm._BatchNorm,
    TDBatchNorm1d,
    TDBatchNorm2d,
)
_NON_BINARY_NAMES = ("GlobalAvgPool",)  # qifsim.models.blocks (imports this module)


def _non_binary(module: nn.Module) -> bool:
    """Whether ``module`` turns spikes into graded values (pooling by averaging, norms)."""
    return isinstance(module, _NON_BINARY) or type(module).__name__ in _NON_BINARY_NAMES


def synapse_names(model: nn.Module) -> list[str]:
    """Qualified names of the plain synapses: ``MergeTime(Conv2d)`` wrappers and ``Linear``s."""
    names = []
    for name, module in model.named_modules():
        if isinstance(module, MergeTime) and type(module.module) is nn.Conv2d:
            names.append(name)
        elif type(module) is nn.Linear:
            names.append(name)
    return names


_PASS_THROUGH = (nn.Dropout, nn.Flatten, nn.Identity, nn.MaxPool1d, nn.MaxPool2d)
_PASS_THROUGH_NAMES = ("TimeFlatten", "TimeSharedDropout")  # qifsim.models.blocks


def _leaf_name(model: nn.Module, name: str) -> str:
    """The last module data passes through inside ``name`` (MergeTime unwrapped)."""
    while True:
        module = model.get_submodule(name)
        if isinstance(module, MergeTime):
            name = f"{name}.module"
            continue
        keys = [k for k, _ in module.named_children()]
        if not keys or _non_binary(module):
            return name
        name = f"{name}.{keys[-1]}" if name else keys[-1]


def _predecessor(model: nn.Module, name: str) -> nn.Module | None:
    """The module feeding ``name``, skipping dropout/flatten/max pooling (``None``: the input).

    Relies on children being registered in data-flow order, as in qifsim's models.
    """
    while True:
        parts = name.split(".")
        found = None
        for depth in range(len(parts) - 1, -1, -1):
            parent = model.get_submodule(".".join(parts[:depth]))
            keys = [k for k, _ in parent.named_children()]
            idx = keys.index(parts[depth])
            if idx > 0:
                found = _leaf_name(model, ".".join([*parts[:depth], keys[idx - 1]]))
                break
        if found is None:
            return None
        module = model.get_submodule(found)
        if not (isinstance(module, _PASS_THROUGH) or type(module).__name__ in _PASS_THROUGH_NAMES):
            return module
        name = found


def _binary_input_problem(model: nn.Module, name: str, first: str) -> str | None:
    if name == first:
        return "it is the first synapse: it sees the encoded input, not spikes"
    pred = _predecessor(model, name)
    if pred is None:
        return "nothing spiking precedes it"
    if isinstance(pred, (nn.LayerNorm, nn.GroupNorm)):
        return (
            f"a {type(pred).__name__} precedes it: a LayerNorm in front of a spiking quadratic "
            "synapse is forbidden (it makes the binary inputs graded)"
        )
    if _non_binary(pred):
        return f"a {type(pred).__name__} precedes it, so its inputs are not binary spikes"
    return None


def resolve_quadratic_layers(
    model: nn.Module, model_name: str, layers: str | Sequence[str] | None
) -> tuple[str, ...]:
    """The synapse names ``layers`` selects (``None``/``"auto"``: :data:`QUADRATIC_AUTO_LAYERS`).

    Names are those of :func:`synapse_names`; a ``Conv2d`` inside a ``MergeTime`` may be named
    with its ``.module`` suffix. Raises ``ValueError`` for unknown names, duplicates, layers
    whose inputs are not binary spikes (first synapse, after average pooling or a norm) or a
    model without a default placement.
    """
    candidates = synapse_names(model)
    if layers is None or layers == "auto":
        if model_name not in QUADRATIC_AUTO_LAYERS:
            raise ValueError(
                f"model {model_name!r} has no default quadratic placement; pass "
                f"quadratic_layers=[...] from {candidates}"
            )
        chosen = list(QUADRATIC_AUTO_LAYERS[model_name])
    elif isinstance(layers, str):
        raise ValueError(
            f"quadratic_layers must be 'auto', None or a list of layer names, got {layers!r}"
        )
    else:
        chosen = [n[: -len(".module")] if n.endswith(".module") else n for n in layers]
    if not chosen:
        raise ValueError("quadratic_layers is empty; name at least one synapse or use 'auto'")
    if len(set(chosen)) != len(chosen):
        raise ValueError(f"quadratic_layers names a layer twice: {chosen}")
    allowed = [n for n in candidates if _binary_input_problem(model, n, candidates[0]) is None]
    for n in chosen:
        if n not in candidates:
            raise ValueError(
                f"{n!r} is not a synapse of {model_name}; choose from {allowed} (layers fed by "
                "binary spikes)"
            )
        problem = _binary_input_problem(model, n, candidates[0])
        if problem is not None:
            raise ValueError(
                f"spiking quadratic synapses need binary spike inputs, but for {n!r} {problem}; "
                f"choose from {allowed}"
            )
    return tuple(chosen)


def apply_quadratic_synapses(model: nn.Module, names: Sequence[str]) -> nn.Module:
    """Swap the named synapses for spiking quadratic versions, in place; returns ``model``.

    ``MergeTime(Conv2d)`` -> ``MergeTime(QuadraticConv2d(..., spiking=True))`` and ``Linear``
    -> ``QuadraticLinear(..., spiking=True)``, keeping the linear weights (and bias, if any)
    and adding a zero-initialised quadratic term with zero diagonal (``s^2 = s``). The model
    records the names in ``model.quadratic_layers``. Validate names first with
    :func:`resolve_quadratic_layers`.
    """
    for name in names:
        parent_name, _, attr = name.rpartition(".")
        parent = model.get_submodule(parent_name)
        old = getattr(parent, attr)
        if isinstance(old, MergeTime):
            conv = old.module
            if conv.groups != 1 or conv.padding_mode != "zeros" or isinstance(conv.padding, str):
                raise ValueError(f"{name}: only zero-padded, ungrouped convs can turn quadratic")
            quad = QuadraticConv2d(
                conv.in_channels, conv.out_channels, conv.kernel_size, conv.stride,
                conv.padding, conv.dilation, bias=conv.bias is not None, spiking=True,
            )  # fmt: skip
            quad.conv.load_state_dict(conv.state_dict())
            old.module = quad.to(conv.weight.device, conv.weight.dtype)
        elif isinstance(old, nn.Linear):
            quad = QuadraticLinear(
                old.in_features, old.out_features, bias=old.bias is not None, spiking=True
            )
            quad.linear.load_state_dict(old.state_dict())
            setattr(parent, attr, quad.to(old.weight.device, old.weight.dtype))
        else:
            raise ValueError(f"{name} is a {type(old).__name__}, not a Conv2d/Linear synapse")
    model.quadratic_layers = tuple(names)
    return model
