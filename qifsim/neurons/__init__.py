"""QIF and LIF neurons: parameters, pure step functions, the fused op, modules, surrogates."""

from .functional import NeuronTensors, neuron_sequence_reference, neuron_step
from .fused import neuron_sequence_fused
from .modules import LIF, QIF, LIFCell, LIFState, QIFCell, QIFState
from .parameters import LIFParameters, QIFParameters, analytic_window, window_moments
from .surrogate import SURROGATES, surrogate_grad

__all__ = [
    "LIF",
    "QIF",
    "SURROGATES",
    "LIFCell",
    "LIFParameters",
    "LIFState",
    "NeuronTensors",
    "QIFCell",
    "QIFParameters",
    "QIFState",
    "analytic_window",
    "neuron_sequence_fused",
    "neuron_sequence_reference",
    "neuron_step",
    "surrogate_grad",
    "window_moments",
]
