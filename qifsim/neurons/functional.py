"""Pure step functions of the QIF and LIF neurons: the reference path.

These are direct transcriptions of the equations (SCIENCE.md) in plain torch
ops, differentiated by autograd. The fused multi-step op
(:mod:`qifsim.neurons.fused`) must agree with them: spikes exactly,
potentials and gradients to rounding.

Shapes: ``x`` is one time step ``[B, ...]``; a sequence is time-first
``[T, B, ...]``. Parameters are floats or tensors broadcastable to ``[B, ...]``.
"""

from __future__ import annotations

from typing import NamedTuple

import torch

from .surrogate import spike

#: Membrane update modes shared by the reference path and the fused kernels.
MODE_QIF_PAPER, MODE_QIF_EULER, MODE_LIF = 0, 1, 2
QIF_MODES = {"paper": MODE_QIF_PAPER, "euler": MODE_QIF_EULER}


class NeuronTensors(NamedTuple):
    """Tensor form of one layer's neuron parameters, as the kernels take them.

    ``a`` is the QIF coefficient or the LIF leak ``beta``; ``reset`` the
    potential after a spike (``u_rest`` for QIF, 0 for LIF); ``u_c`` the QIF
    critical potential (unused for LIF); ``centre``/``width`` place the
    surrogate window. All broadcastable to the neuron shape.
    """

    a: torch.Tensor
    reset: torch.Tensor
    u_c: torch.Tensor
    u_th: torch.Tensor
    centre: torch.Tensor
    width: torch.Tensor
    mode: int
    kind: int


def membrane_drive(mode: int, u: torch.Tensor, a, reset, u_c) -> torch.Tensor:
    """``v - I``: the part of the next potential that comes from the state ``u``.

    paper: ``a (u - u_rest)(u - u_c)``; euler: ``u + a (u - u_rest)(u - u_c)``;
    LIF: ``beta u`` (``u`` after reset).
    """
    if mode == MODE_QIF_PAPER:
        return a * (u - reset) * (u - u_c)
    if mode == MODE_QIF_EULER:
        return u + a * (u - reset) * (u - u_c)
    if mode == MODE_LIF:
        return a * u
    raise ValueError(f"unknown membrane mode {mode}")


def neuron_step(
    x: torch.Tensor, u: torch.Tensor, p: NeuronTensors, detach_reset: bool = False
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """One time step of the reference neuron.

    Args:
        x: input current ``I(t)``, ``[B, ...]``.
        u: potential after the previous reset, ``[B, ...]``.
        p: parameters (:class:`NeuronTensors`).
        detach_reset: if True the spike used in the reset carries no gradient.

    Returns:
        ``(o, v, u_next)``: spikes (0/1, dtype of ``x``), potential before reset,
        potential after reset.
    """
    v = membrane_drive(p.mode, u, p.a, p.reset, p.u_c) + x
    o = spike(v, p.u_th, p.centre, p.width, p.kind)
    o_reset = o.detach() if detach_reset else o
    u_next = v * (1.0 - o_reset) + p.reset * o_reset
    return o, v, u_next


def neuron_sequence_reference(
    x: torch.Tensor, u0: torch.Tensor, p: NeuronTensors, detach_reset: bool = False
) -> tuple[torch.Tensor, torch.Tensor]:
    """Run :func:`neuron_step` over ``x: [T, B, ...]`` from state ``u0: [B, ...]``.

    Returns ``(spikes [T, B, ...], v [T, B, ...], u_last [B, ...])``: ``v``
    before reset, ``u_last`` the state after the last step's reset (``u0`` if
    ``T == 0``). This is the same contract as the fused op.
    """
    spikes, potentials = [], []
    u = u0
    for x_t in x:
        o, v, u = neuron_step(x_t, u, p, detach_reset)
        spikes.append(o)
        potentials.append(v)
    if not spikes:
        return x.new_empty(x.shape), x.new_empty(x.shape, dtype=u0.dtype), u0
    return torch.stack(spikes), torch.stack(potentials), u


def state_after_reset(
    spikes: torch.Tensor, v: torch.Tensor, reset: torch.Tensor, detach_reset: bool = False
) -> torch.Tensor:
    """Potential after reset ``u = v (1 - o) + reset · o`` (differentiable through ``o``)."""
    o = spikes.detach() if detach_reset else spikes
    return v * (1.0 - o) + reset * o
