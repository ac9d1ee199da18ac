"""Spiking layers of qifsim and its peers (norse, snntorch, spikingjelly), as the energy
accounting recognises them.

:func:`neuron_info` says whether a module is a spiking neuron layer and how it steps:

=============  ===================================================  ==========================
framework      recognised classes                                   step mode
=============  ===================================================  ==========================
qifsim         ``QIF``, ``LIF`` / ``QIFCell``, ``LIFCell``          multi-step / one step
norse          subclasses of ``SNN`` / ``SNNCell`` (``LIF``,        multi-step / one step
               ``LIFCell``, ``LIFBoxCell``, ``IAF``, ``LSNN``, ...)
               except the leaky integrators ``LI``, ``LICell``,
               ``LIBoxCell`` (no spike output)
snntorch       subclasses of ``SpikingNeuron`` (``Leaky``,          one step per call
               ``Synaptic``, ``RLeaky``, ``RSynaptic``, ``Alpha``,  (``StateLeaky`` and its
               ``Lapicque``, ...)                                   subclasses: multi-step)
spikingjelly   subclasses of ``BaseNode`` / ``SimpleBaseNode``      ``step_mode`` ``'m'`` /
               (``IFNode``, ``LIFNode``, ``ParametricLIFNode``,     ``'s'``
               ``QIFNode``, ...)
=============  ===================================================  ==========================

A multi-step layer takes ``[T, B, ...]`` per call, a one-step layer ``[B, ...]``. The spikes
are the module's output, or its first element when it returns a tuple (norse, qifsim and
snntorch return ``(spikes, state...)``). The neuron type (``"norse-lif"``, ...) selects the
per-update operation counts of :mod:`qifsim.energy.neuron_ops`; subclasses get the counts
of their class only when it is listed there (a subclass may change the equation).
norse's recurrent neurons (``LIFRecurrent``, ``LIFRecurrentCell``, ...) apply input and
recurrent weights inside the neuron: they are not recognised and, having parameters,
raise :class:`~qifsim.energy.meter.UnsupportedLayerError`.

Your own neuron class: :func:`register_neuron`. The peers are imported only when already
imported (a module of theirs cannot exist otherwise), so qifsim does not depend on them.

:func:`reset_states` and :func:`run_steps` drive models that are called once per time step
(snntorch style): ``measure_energy(net, loader, forward=run_steps)``.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from .neuron_ops import update_counts


@dataclass(frozen=True)
class NeuronInfo:
    """How a neuron module is counted.

    Attributes:
        framework: ``"qifsim"``, ``"norse"``, ``"snntorch"``, ``"spikingjelly"`` or ``"user"``.
        neuron: the neuron type (report column ``neuron``; profile look-up key).
        multi_step: True when a call takes ``[T, B, ...]``, False for ``[B, ...]``.
        ops: ``{"mul": m, "add": a}`` per neuron and step, or None when not stated.
        binary: the output is 0/1 by construction (qifsim's neurons; the listed norse and
            spikingjelly classes themselves, whose spike functions are a Heaviside step in
            the forward pass), so the counters skip the value check. False: every output is
            checked (snntorch's ``graded_spikes_factor``, subclasses, user neurons).
    """

    framework: str
    neuron: str
    multi_step: bool
    ops: dict[str, int] | None
    binary: bool = False


_USER: dict[type, tuple[str, bool, dict[str, int] | None]] = {}


def register_neuron(
    cls: type,
    neuron: str,
    *,
    multi_step: bool,
    mul: int | None = None,
    add: int | None = None,
) -> None:
    """Count instances of ``cls`` as spiking neuron layers of type ``neuron``.

    ``multi_step``: a call takes ``[T, B, ...]`` (else ``[B, ...]``, one step); ``mul``,
    ``add``: operations per neuron update (both or neither; needed by profiles that cost
    neuron updates by operation counts). The module's output (or its first element) must
    be the spikes.
    """
    if not isinstance(cls, type) or not issubclass(cls, nn.Module):
        raise TypeError(f"cls must be an nn.Module subclass, got {cls!r}")
    if (mul is None) != (add is None):
        raise ValueError("give both mul and add (operations per neuron update) or neither")
    ops = None
    if mul is not None:
        if int(mul) < 0 or int(add) < 0:  # type: ignore[arg-type]
            raise ValueError(f"mul and add must be >= 0, got {mul}, {add}")
        ops = {"mul": int(mul), "add": int(add)}  # type: ignore[arg-type]
    _USER[cls] = (str(neuron), bool(multi_step), ops)


def _qifsim(module: nn.Module) -> NeuronInfo | None:
    from ..neurons.modules import LIFCell, QIFCell, _NeuronBase, _QIFBase

    if not isinstance(module, _NeuronBase):
        return None
    key = "qif" if isinstance(module, _QIFBase) else "lif"
    multi = not isinstance(module, (QIFCell, LIFCell))
    return NeuronInfo("qifsim", key, multi, update_counts(key), binary=True)


def _norse(module: nn.Module) -> NeuronInfo | None:
    from norse.torch.module import iaf, leaky_integrator, leaky_integrator_box, lif, lif_box, lsnn
    from norse.torch.module.snn import SNN, SNNCell

    if not isinstance(module, (SNN, SNNCell)):
        return None
    integrators = (leaky_integrator.LI, leaky_integrator.LICell, leaky_integrator_box.LIBoxCell)
    if isinstance(module, integrators):
        return None
    keys = {
        lif.LIF: "norse-lif",
        lif.LIFCell: "norse-lif",
        lif_box.LIFBoxCell: "norse-lif-box",
        iaf.IAF: "norse-iaf",
        iaf.IAFCell: "norse-iaf",
        lsnn.LSNN: "norse-lsnn",
        lsnn.LSNNCell: "norse-lsnn",
    }
    key = keys.get(type(module), f"norse-{type(module).__name__}")
    listed = type(module) in keys
    return NeuronInfo("norse", key, isinstance(module, SNN), update_counts(key), binary=listed)


def _snntorch(module: nn.Module) -> NeuronInfo | None:
    import snntorch

    if not isinstance(module, snntorch.SpikingNeuron):
        return None
    keys = {
        snntorch.Leaky: "snntorch-leaky",
        snntorch.Synaptic: "snntorch-synaptic",
        snntorch.RLeaky: "snntorch-rleaky",
        snntorch.RSynaptic: "snntorch-rsynaptic",
        snntorch.Alpha: "snntorch-alpha",
        snntorch.Lapicque: "snntorch-lapicque",
    }
    key = keys.get(type(module), f"snntorch-{type(module).__name__}")
    state_leaky = getattr(snntorch, "StateLeaky", None)
    multi = state_leaky is not None and isinstance(module, state_leaky)
    return NeuronInfo("snntorch", key, multi, update_counts(key))


def _spikingjelly(module: nn.Module) -> NeuronInfo | None:
    from spikingjelly.activation_based import neuron as sj

    if not isinstance(module, (sj.BaseNode, sj.SimpleBaseNode)):
        return None
    keys = {
        sj.IFNode: "spikingjelly-if",
        sj.SimpleIFNode: "spikingjelly-if",
        sj.LIFNode: "spikingjelly-lif",
        sj.SimpleLIFNode: "spikingjelly-lif",
        sj.ParametricLIFNode: "spikingjelly-plif",
        sj.QIFNode: "spikingjelly-qif",
    }
    key = keys.get(type(module), f"spikingjelly-{type(module).__name__}")
    multi = getattr(module, "step_mode", "s") == "m"
    # a listed node emits the Heaviside step of its surrogate (spiking=True); a surrogate
    # in spiking=False mode (or another callable) emits graded values
    from spikingjelly.activation_based import surrogate

    fn = getattr(module, "surrogate_function", None)
    steps = isinstance(fn, surrogate.SurrogateFunctionBase) and bool(fn.spiking)
    binary = type(module) in keys and steps
    return NeuronInfo("spikingjelly", key, multi, update_counts(key), binary=binary)


_PEERS = (("norse", _norse), ("snntorch", _snntorch), ("spikingjelly", _spikingjelly))


def neuron_info(module: nn.Module) -> NeuronInfo | None:
    """How ``module`` is counted as a spiking layer, or None when it is not one."""
    for cls, (key, multi, ops) in _USER.items():
        if isinstance(module, cls):
            return NeuronInfo("user", key, multi, ops)
    info = _qifsim(module)
    if info is not None:
        return info
    for package, recognise in _PEERS:
        if package in sys.modules:
            info = recognise(module)
            if info is not None:
                return info
    return None


def is_norse_recurrent(module: nn.Module) -> bool:
    """Whether ``module`` is a norse recurrent neuron (weights inside the neuron)."""
    if "norse" not in sys.modules:
        return False
    from norse.torch.module.snn import SNNRecurrent, SNNRecurrentCell

    return isinstance(module, (SNNRecurrent, SNNRecurrentCell))


def neuron_layers(model: nn.Module) -> dict[str, tuple[nn.Module, NeuronInfo]]:
    """Every spiking layer of ``model`` by qualified name, with its :class:`NeuronInfo`."""
    out = {}
    for name, module in model.named_modules():
        info = neuron_info(module)
        if info is not None:
            out[name] = (module, info)
    return out


def spikes_of(output: Any) -> torch.Tensor:
    """The spikes of a neuron module's output: the output, or its first element."""
    if isinstance(output, (tuple, list)):
        output = output[0]
    if not isinstance(output, torch.Tensor):
        raise TypeError(f"a neuron layer returned {type(output).__name__}, not spikes (a tensor)")
    return output


def replace_spikes(output: Any, spikes: torch.Tensor) -> Any:
    """``output`` with its spikes (the output, or its first element) replaced by ``spikes``."""
    if isinstance(output, tuple):
        return (spikes, *output[1:])
    if isinstance(output, list):
        return [spikes, *output[1:]]
    return spikes


def reset_states(model: nn.Module) -> None:
    """Zero the hidden states that modules keep between calls (a new sequence starts).

    snntorch neurons (their ``reset_mem``), spikingjelly's stateful modules (``reset()``,
    as ``functional.reset_net``). qifsim and norse modules keep no state between calls (it
    is passed in and returned), so there is nothing to reset.
    """
    snn_base = None
    if "snntorch" in sys.modules:
        import snntorch

        snn_base = snntorch.SpikingNeuron
    sj_base = None
    if "spikingjelly" in sys.modules:
        from spikingjelly.activation_based import base

        sj_base = base.MemoryModule
    for module in model.modules():
        if snn_base is not None and isinstance(module, snn_base) and hasattr(module, "reset_mem"):
            module.reset_mem()
        elif sj_base is not None and isinstance(module, sj_base):
            module.reset()


def run_steps(model: nn.Module, x: torch.Tensor) -> list[Any]:
    """Call ``model`` once per time step of ``x`` (``[T, B, ...]``), after :func:`reset_states`.

    The snntorch way of running a network: ``model(x[t])`` for ``t = 0 .. T-1``; returns
    the ``T`` outputs. Pass it as ``measure_energy(..., forward=run_steps)``.
    """
    if not isinstance(x, torch.Tensor) or x.dim() < 2:
        raise ValueError(
            "run_steps needs a time-first input [T, B, ...], got "
            f"{tuple(x.shape) if isinstance(x, torch.Tensor) else type(x).__name__}"
        )
    reset_states(model)
    return [model(x[t]) for t in range(int(x.shape[0]))]


__all__ = [
    "NeuronInfo",
    "is_norse_recurrent",
    "neuron_info",
    "neuron_layers",
    "register_neuron",
    "replace_spikes",
    "reset_states",
    "run_steps",
    "spikes_of",
]
