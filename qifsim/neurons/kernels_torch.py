"""Device-agnostic kernels of the fused multi-step neuron op (torch ops).

Used on CUDA and for dtypes numba does not handle; selectable on CPU too so
the tests run this path everywhere. Same contract as
:mod:`qifsim.neurons.kernels_numba`, written with broadcasting tensors:
forward runs the recurrence without building an autograd graph, backward is
the hand-written reverse scan. Parameters broadcast to the neuron shape.
"""

from __future__ import annotations

import torch

from .functional import MODE_LIF, MODE_QIF_EULER, membrane_drive
from .surrogate import surrogate_grad


@torch.no_grad()
def scan_forward(x, u0, a, r, c, th, mode: int):
    """``x: [T, ...]``, ``u0: [...]`` -> ``(spikes [T, ...], v [T, ...], u_last [...])``."""
    spikes = torch.empty_like(x)
    v_out = torch.empty_like(x)
    u = u0
    for t in range(x.shape[0]):
        v = membrane_drive(mode, u, a, r, c) + x[t]
        fired = v >= th
        spikes[t] = fired
        v_out[t] = v
        u = torch.where(fired, r, v)
    return spikes, v_out, u.expand(u0.shape).clone()


def _drive_derivatives(mode: int, u, a, r, c):
    """(dv/du, dv/da, dv/dr, dv/dc) of :func:`membrane_drive`."""
    if mode == MODE_LIF:
        zero = torch.zeros_like(u)
        return a.expand_as(u), u, zero, zero
    dvdu = a * (2.0 * u - r - c)
    if mode == MODE_QIF_EULER:
        dvdu = dvdu + 1.0
    return dvdu, (u - r) * (u - c), -a * (u - c), -a * (u - r)


@torch.no_grad()
def scan_backward(
    grad_s,
    grad_v,
    grad_u,
    v_seq,
    u0,
    a,
    r,
    c,
    th,
    centre,
    width,
    mode: int,
    kind: int,
    detach_reset: bool,
    needs: tuple[bool, bool, bool, bool],
):
    """Reverse scan. Returns ``(grad_x, grad_u0, grad_a, grad_r, grad_c, grad_th)``.

    ``grad_u`` is the gradient of the final state (the starting carry).
    Parameter gradients are per neuron (shape of ``u0``) or ``None`` where
    ``needs`` (for a, r, c, th) is False.
    """
    grad_x = torch.empty_like(v_seq)
    carry = grad_u.expand(u0.shape).clone()
    acc = [torch.zeros_like(u0) if need else None for need in needs]
    for t in range(v_seq.shape[0] - 1, -1, -1):
        v = v_seq[t]
        fired = v >= th
        g = surrogate_grad(kind, v - centre, width)
        dudv = (~fired).to(v.dtype)
        if not detach_reset:
            dudv = dudv + (r - v) * g
        gv = grad_v[t] + grad_s[t] * g + carry * dudv
        if needs[3]:
            reset_term = 0.0 if detach_reset else carry * (r - v)
            acc[3] -= (grad_s[t] + reset_term) * g
        if needs[1]:
            acc[1] += carry * fired
        grad_x[t] = gv
        if t > 0:
            up = torch.where(v_seq[t - 1] >= th, r, v_seq[t - 1])
        else:
            up = u0
        dvdu, dvda, dvdr, dvdc = _drive_derivatives(mode, up, a, r, c)
        for i, d in ((0, dvda), (1, dvdr), (2, dvdc)):
            if needs[i]:
                acc[i] += gv * d
        carry = gv * dvdu
    return (grad_x, carry, *acc)
