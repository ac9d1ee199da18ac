"""One place that creates the layers of a model: neurons, synapses (conv/linear) and tdBN.

Every architecture in :mod:`qifsim.models` builds its layers through a
:class:`LayerFactory`, so the choices made once in
:func:`~qifsim.models.build_model` (neuron type and parameters, synapse type,
neuron-module options) reach every layer:

* ``neuron``: ``"qif"`` (:class:`~qifsim.neurons.QIF`) or ``"lif"``
  (:class:`~qifsim.neurons.LIF`), with the paper's parameters by default
  (QIF ``a=0.25, u_rest=0, u_c=0.5, u_th=0.5``; LIF ``beta=0.25, u_th=0.5``);
* ``synapse``: ``"linear"`` only for now. Conv layers are created in
  :meth:`LayerFactory.conv`, which is where quadratic (dendritic) synapses will
  plug in;
* tdBN layers take ``u_th`` from the neuron parameters.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import nn

from ..layers import MergeTime, TDBatchNorm1d, TDBatchNorm2d
from ..neurons import LIF, QIF, LIFParameters, QIFParameters

#: Neuron types a model can be built with.
NEURONS: tuple[str, ...] = ("qif", "lif")

#: Synapse types a model can be built with.
SYNAPSES: tuple[str, ...] = ("linear",)

NeuronParameters = QIFParameters | LIFParameters


def check_neuron(neuron: str) -> str:
    """Return ``neuron`` lower-cased, or raise ``ValueError`` listing :data:`NEURONS`."""
    key = neuron.lower() if isinstance(neuron, str) else neuron
    if key not in NEURONS:
        raise ValueError(f"unknown neuron {neuron!r}; choose one of {NEURONS}")
    return key


def check_synapse(synapse: str) -> str:
    """Return ``synapse``, or raise ``ValueError`` (only ``"linear"`` exists for now)."""
    if synapse not in SYNAPSES:
        raise ValueError(
            f"unknown synapse {synapse!r}: only 'linear' synapses are available; "
            "quadratic synapses arrive with the dendritic-integration work"
        )
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
        synapse: ``"linear"`` (the only type for now).
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
