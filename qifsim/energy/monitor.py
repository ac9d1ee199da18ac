"""Spike monitors: per-layer spike counts and firing rates with constant memory.

``SpikeMonitor(model)`` hooks every spiking layer in ``model`` (qifsim's QIF, LIF and
their cells; norse, snntorch and spikingjelly neurons, :mod:`qifsim.energy.peers`) and
keeps running sums while it is open::

    with SpikeMonitor(model) as monitor:
        for x, _ in loader:
            model(x)
    monitor.rates()   # {layer name: spikes / (neurons * T * samples)}

Only sums are kept (no tensors are stored), so memory does not grow with the
number of batches.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from ..neurons.modules import _NeuronBase
from .counting import frame_sums, is_binary
from .peers import NeuronInfo, neuron_layers, spikes_of


@dataclass
class LayerSpikes:
    """Running totals of one spiking layer.

    ``spikes``: spikes emitted; ``neuron_steps``: neurons x time steps x samples
    seen; ``neurons``: neurons per sample (the layer's size).
    """

    spikes: int = 0
    neuron_steps: int = 0
    neurons: int = 0

    @property
    def rate(self) -> float:
        """Firing rate: spikes per neuron per time step (0 before any input)."""
        return self.spikes / self.neuron_steps if self.neuron_steps else 0.0


def spiking_layers(model: nn.Module) -> dict[str, nn.Module]:
    """Named qifsim neuron modules of ``model`` (the model itself under the name ``""``)."""
    return {name: m for name, m in model.named_modules() if isinstance(m, _NeuronBase)}


class SpikeMonitor:
    """Context manager counting spikes of every spiking layer in ``model``.

    A peer's output that is not binary counts its non-zero values (as the energy
    counter does).
    """

    def __init__(self, model: nn.Module) -> None:
        self.model = model
        found = neuron_layers(model)
        if not found:
            raise ValueError(
                "the model has no spiking layers (qifsim QIF/LIF and cells, norse, snntorch "
                "or spikingjelly neurons, or classes given to qifsim.energy.register_neuron)"
            )
        self.layers = {name: module for name, (module, _) in found.items()}
        self._infos = {name: info for name, (_, info) in found.items()}
        self.records = {name: LayerSpikes() for name in self.layers}
        self._handles: list = []

    def _hook(self, name: str, info: NeuronInfo):
        record = self.records[name]
        multi_step = info.multi_step
        trusted = info.binary

        def hook(module, inputs, output):
            spikes = spikes_of(output).detach()
            if not trusted and not is_binary(spikes):
                spikes = spikes != 0
            per_sample = spikes.shape[2:] if multi_step else spikes.shape[1:]
            record.neurons = int(torch.Size(per_sample).numel())
            # per-position sums over steps and samples (exact below 2**24 of them, half
            # types widened), then float64: exact counts, as fast as a plain sum
            frames = spikes.numel() // max(record.neurons, 1)
            record.spikes += int(round(frame_sums(spikes, frames).double().sum().item()))
            record.neuron_steps += spikes.numel()

        return hook

    def __enter__(self) -> SpikeMonitor:
        for name, module in self.layers.items():
            self._handles.append(module.register_forward_hook(self._hook(name, self._infos[name])))
        return self

    def __exit__(self, *exc) -> None:
        for handle in self._handles:
            handle.remove()
        self._handles.clear()

    def rates(self) -> dict[str, float]:
        """Firing rate per layer (spikes / (neurons * T * samples))."""
        return {name: rec.rate for name, rec in self.records.items()}
