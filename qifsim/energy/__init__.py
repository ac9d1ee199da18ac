"""Spike-rate (and, later, energy) accounting."""

from .monitor import LayerSpikes, SpikeMonitor, spiking_layers

__all__ = ["LayerSpikes", "SpikeMonitor", "spiking_layers"]
