"""Spike-rate and energy accounting: monitors, operation counts, hardware profiles, reports.

::

    from qifsim.energy import measure_energy, compare
    report = measure_energy(model, loader, profile="cmos45nm-fp32", T=10)
    print(report.to_markdown()); report.write("out")
    table = compare(report_lif, report_qif)       # QIF paper Table 1 + spike-rate reduction

* :class:`SpikeMonitor`: per-layer spike counts and firing rates (running sums);
* spiking layers of norse, snntorch and spikingjelly are recognised (:mod:`.peers`,
  :func:`register_neuron` for your own), their update costs in :mod:`.neuron_ops`;
  snntorch-style models called once per step: ``measure_energy(..., forward="steps")``;
* :mod:`qifsim.energy.neurobench`: the NeuroBench cross-check (optional extra);
* :class:`OpCounter`: dense ops, MACs, ACs (fr x dense), exact event-driven ACs per layer;
* :func:`load_profile`: hardware profiles in ``hardware/profiles/`` (``cmos45nm-fp32`` is the
  paper's Eq. 17);
* :func:`measure_energy`, :func:`estimate_energy` -> :class:`EnergyReport`;
* :func:`compare`, :func:`plot_firing_rates`, :func:`plot_membrane`,
  :func:`demo_energy_section`.
"""

from .compare import Comparison, compare
from .demo import compare_models, demo_energy_section
from .histogram import Histogram, MembraneHistograms
from .meter import OpCounter, UnsupportedLayerError, check_supported, register_layer_kind
from .monitor import LayerSpikes, SpikeMonitor, spiking_layers
from .neuron_ops import NEURON_OPS, UpdateOps
from .peers import NeuronInfo, neuron_info, neuron_layers, register_neuron, reset_states, run_steps
from .plots import plot_firing_rates, plot_membrane
from .profiles import (
    DEFAULT_PROFILE,
    EnergyProfile,
    ProfileError,
    describe_profiles,
    load_profile,
    profile_names,
)
from .report import EnergyReport, EnergyRow, estimate_energy, measure_energy

__all__ = [
    "DEFAULT_PROFILE",
    "Comparison",
    "EnergyProfile",
    "EnergyReport",
    "EnergyRow",
    "Histogram",
    "LayerSpikes",
    "MembraneHistograms",
    "NEURON_OPS",
    "NeuronInfo",
    "OpCounter",
    "ProfileError",
    "SpikeMonitor",
    "UnsupportedLayerError",
    "UpdateOps",
    "check_supported",
    "compare",
    "compare_models",
    "demo_energy_section",
    "describe_profiles",
    "estimate_energy",
    "load_profile",
    "measure_energy",
    "neuron_info",
    "neuron_layers",
    "plot_firing_rates",
    "plot_membrane",
    "profile_names",
    "register_layer_kind",
    "register_neuron",
    "reset_states",
    "run_steps",
    "spiking_layers",
]
