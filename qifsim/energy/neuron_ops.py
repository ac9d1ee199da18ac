"""Operations of one neuron update (one neuron, one time step), per neuron model.

Counting rule, the same for every model: the elementwise multiplications and additions
(a subtraction is an addition) that the model's update equation performs on tensors of
the neuron layer's size, *as its source writes them*; products of parameters alone
(``dt * tau_mem_inv``, ``1 / tau``, ``snntorch``'s ``beta.clamp(0, 1)``) are constants
computed once per layer, not per neuron, and are not counted; the comparison with the
threshold, the reset and other spike-triggered jumps (an LSNN's threshold increase) are
not counted either (the QIF paper counts neither for QIF and LIF). A division by a
constant is a multiplication by its inverse.

:data:`NEURON_OPS` maps a neuron type (the ``neuron`` column of an energy report) to its
:class:`UpdateOps`: counts, the update equation and the source file the counts were read
from (norse 1.1.0, snntorch 1.0.0, spikingjelly 2.0.0). Types recognised as spiking
layers but without a stated count (norse's exponential and Izhikevich neurons, other
snntorch and spikingjelly neurons) have no entry: a profile that costs neuron updates
by operation counts then refuses them by name (give counts with
:func:`qifsim.energy.register_neuron`).
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class UpdateOps:
    """Multiplications and additions of one neuron update, where the counts come from."""

    mul: int
    add: int
    equation: str
    source: str

    def counts(self) -> dict[str, int]:
        return {"mul": self.mul, "add": self.add}


_NORSE = "norse 1.1.0 norse/torch/functional/"
_SNNTORCH = "snntorch 1.0.0 snntorch/_neurons/"
_SJ = "spikingjelly 2.0.0 spikingjelly/_ops/"

#: Per-update counts by neuron type (see the module docstring for the rule).
NEURON_OPS: dict[str, UpdateOps] = {
    "qif": UpdateOps(
        2, 3, "u += a (u - u_rest)(u - u_c) + I", "QIF paper Sec. 5.2 (qifsim QIF, QIFCell)"
    ),
    "lif": UpdateOps(1, 1, "u = beta u + I", "QIF paper Sec. 5.2 (qifsim LIF, LIFCell)"),
    "norse-lif": UpdateOps(
        2,
        5,
        "i' = i + x; v' = v + c_m ((v_leak - v) + i'); i'' = i' + c_s i'",
        _NORSE + "lif.py lif_feed_forward_step (LIF, LIFCell)",
    ),
    "norse-lif-box": UpdateOps(
        1, 3, "v' = v + c_m (x + v_leak - v)", _NORSE + "lif_box.py lif_box_feed_forward_step"
    ),
    "norse-iaf": UpdateOps(0, 1, "v' = v + x", _NORSE + "iaf.py iaf_feed_forward_step"),
    "norse-lsnn": UpdateOps(
        3,
        7,
        "v' = v + c_m ((v_leak - v) + i); i' = i + c_s i + x; b' = b + c_a (v_th - b)",
        _NORSE + "lsnn.py lsnn_feed_forward_step (LSNN, LSNNCell)",
    ),
    "snntorch-leaky": UpdateOps(
        1, 1, "mem' = beta mem + x", _SNNTORCH + "leaky.py Leaky._base_state_function"
    ),
    "snntorch-synaptic": UpdateOps(
        2,
        2,
        "syn' = alpha syn + x; mem' = beta mem + syn'",
        _SNNTORCH + "synaptic.py Synaptic._base_state_function",
    ),
    "snntorch-rleaky": UpdateOps(
        1,
        2,
        "mem' = beta mem + x + R(spk) (R, the recurrent layer, is counted as a synaptic layer)",
        _SNNTORCH + "rleaky.py RLeaky._base_state_function",
    ),
    "snntorch-rsynaptic": UpdateOps(
        2,
        3,
        "syn' = alpha syn + x + R(spk); mem' = beta mem + syn' (R counted as a synaptic layer)",
        _SNNTORCH + "rsynaptic.py RSynaptic._base_state_function",
    ),
    "snntorch-alpha": UpdateOps(
        3,
        3,
        "exc' = alpha exc + x; inh' = beta inh - x; mem' = tau_alpha (exc' + inh')",
        _SNNTORCH + "alpha.py Alpha._base_state_function",
    ),
    "snntorch-lapicque": UpdateOps(
        2,
        1,
        "mem' = x (dt / C) + (1 - dt / (R C)) mem",
        _SNNTORCH + "lapicque.py Lapicque._base_state_function",
    ),
    "spikingjelly-if": UpdateOps(
        0, 1, "v' = v + x", _SJ + "if_/reference.py step (IFNode, SimpleIFNode)"
    ),
    "spikingjelly-lif": UpdateOps(
        1,
        3,
        "v' = v + (x - (v - v_reset)) / tau (decay_input; else v - (v - v_reset) / tau + x)",
        _SJ + "lif/reference.py charge (LIFNode, SimpleLIFNode)",
    ),
    "spikingjelly-plif": UpdateOps(
        1,
        3,
        "v' = v + (x - (v - v_reset)) sigmoid(w) (sigmoid(w): one per layer)",
        _SJ + "plif (ParametricLIFNode; the LIF charge with 1/tau = sigmoid(w))",
    ),
    "spikingjelly-qif": UpdateOps(
        3,
        4,
        "v' = v + (x + a0 (v - v_rest)(v - v_c)) / tau",
        _SJ + "qif/reference.py step (QIFNode)",
    ),
}


def update_counts(neuron: str) -> dict[str, int] | None:
    """``{"mul": m, "add": a}`` of a neuron type, or None when no count is stated."""
    ops = NEURON_OPS.get(neuron)
    return ops.counts() if ops is not None else None


#: The counting rule in one sentence (quoted by the profiles that cost neuron updates).
COUNTING_RULE = (
    "Neuron-update operations follow each model's update equation as its source writes it: "
    "elementwise multiplications and additions on layer-sized tensors; products of "
    "parameters alone are constants (not counted); threshold comparison, reset and "
    "spike-triggered jumps are not counted."
)


def ops_summary() -> str:
    """One line with every stated count, ``type mul+add``, as the neuron profiles quote it."""
    parts = [f"{k} {v.mul} mul + {v.add} add" for k, v in NEURON_OPS.items()]
    return "Per-update counts (qifsim.energy.neuron_ops, sources there): " + "; ".join(parts) + "."


def describe_neuron_ops() -> list[dict[str, object]]:
    """The table as rows (type, mul, add, equation, source), for docs and the CLI."""
    return [
        {"neuron": k, "mul": v.mul, "add": v.add, "equation": v.equation, "source": v.source}
        for k, v in NEURON_OPS.items()
    ]
