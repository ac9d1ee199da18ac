"""CPU kernels of the fused multi-step neuron op (numba, parallel over neurons).

One pass over ``[T, N]`` per direction: each neuron's state stays in a local
block buffer across all time steps, so forward reads ``x`` once and writes
spikes and ``v`` once; backward reads the incoming gradients and ``v`` once
and writes ``dL/dx``. Arithmetic follows :mod:`qifsim.neurons.functional`
operation for operation (same order, no fast-math), so spikes are bit-equal
to the reference path in float32 and float64.

Parameter arrays have length ``N`` (per neuron) or 1 (shared); ``*_stride``
is 1 or 0 accordingly. Gradient outputs for parameters are per neuron
(length ``N``) or length-1 dummies when not requested.

The membrane mode, the surrogate kind and the backward flags are compiled in
as constants: :func:`forward_kernel` and :func:`backward_kernel` build (and
memoise) one specialised kernel per combination, so the inner loops carry no
run-time dispatch. numba caches each specialisation on disk.
"""

from __future__ import annotations

import functools
import math

import numpy as np
from numba import njit, prange

BLOCK = 512  # neurons per block: the inner loop is contiguous and vectorises


@njit(inline="always", cache=True)
def _drive(mode, u, a, r, c):
    if mode == 0:
        return a * (u - r) * (u - c)
    if mode == 1:
        return u + a * (u - r) * (u - c)
    return a * u


@njit(inline="always", cache=True)
def _drive_derivatives(mode, u, a, r, c):
    """(dv/du, dv/da, dv/dr, dv/dc) of ``_drive``, all float64."""
    if mode == 2:
        return a, u, 0.0, 0.0
    dvdu = a * (2.0 * u - r - c)
    if mode == 1:
        dvdu = dvdu + 1.0
    return dvdu, (u - r) * (u - c), -a * (u - c), -a * (u - r)


@njit(inline="always", cache=True, error_model="numpy")
def _surrogate(kind, d, w):
    if kind == 0:
        return 1.0 if abs(d) <= w else 0.0
    if kind == 1:
        return 1.0 / w if abs(d) < w * 0.5 else 0.0
    if kind == 2:
        s = 1.0 / (1.0 + math.exp(-w * d))
        return w * s * (1.0 - s)
    if kind == 3:
        z = math.pi * 0.5 * w * d
        return (w * 0.5) / (1.0 + z * z)
    if kind == 4:
        return w * max(0.0, 1.0 - abs(d))
    z = w * abs(d) + 1.0
    return 1.0 / (z * z)


@functools.cache
def forward_kernel(mode: int):
    """Forward scan specialised for ``mode``.

    Signature: ``(x, u0, a, a_s, r, r_s, c, c_s, th, th_s, spikes, v_out, u_out)``
    with ``x, spikes, v_out: [T, N]`` and ``u0, u_out: [N]``; writes spikes,
    ``v`` and the state after the last step's reset.
    """

    @njit(parallel=True, cache=True)
    def scan_forward(x, u0, a, a_s, r, r_s, c, c_s, th, th_s, spikes, v_out, u_out):  # noqa: PLR0913
        T, N = x.shape
        nblocks = (N + BLOCK - 1) // BLOCK
        for b in prange(nblocks):
            lo = b * BLOCK
            m = min(BLOCK, N - lo)
            u = np.empty(m, dtype=x.dtype)
            pa = np.empty(m, dtype=x.dtype)
            pr = np.empty(m, dtype=x.dtype)
            pc = np.empty(m, dtype=x.dtype)
            pt = np.empty(m, dtype=x.dtype)
            for j in range(m):
                n = lo + j
                u[j] = u0[n]
                pa[j] = a[n * a_s]
                pr[j] = r[n * r_s]
                pc[j] = c[n * c_s]
                pt[j] = th[n * th_s]
            for t in range(T):
                for j in range(m):
                    v = _drive(mode, u[j], pa[j], pr[j], pc[j]) + x[t, lo + j]
                    fired = v >= pt[j]
                    spikes[t, lo + j] = 1.0 if fired else 0.0
                    v_out[t, lo + j] = v
                    u[j] = pr[j] if fired else v
            for j in range(m):
                u_out[lo + j] = u[j]

    return scan_forward


@functools.cache
def backward_kernel(mode: int, kind: int, detach_reset: bool, need_params: bool):
    """Backward scan specialised for its flags (reverse time).

    Signature: ``(grad_s, grad_v, grad_u, v_seq, u0, a, a_s, r, r_s, c, c_s, th,
    th_s, centre, centre_s, width, width_s, grad_x, grad_u0, grad_a, grad_r,
    grad_c, grad_th)``; ``grad_u: [N]`` is the gradient of the final state
    (the reverse scan's starting carry). Arithmetic runs in float64 whatever
    the storage dtype; spike decisions compare in the storage dtype, as the forward did, and the
    surrogate's argument ``v - centre`` is rounded to the storage dtype, as
    the reference path rounds it. With
    ``need_params`` the per-neuron parameter gradients (length ``N``) are
    written, else ``grad_a/r/c/th`` are untouched dummies.
    """

    @njit(parallel=True, cache=True, error_model="numpy")
    def scan_backward(  # noqa: PLR0913, PLR0915
        grad_s,
        grad_v,
        grad_u,
        v_seq,
        u0,
        a,
        a_s,
        r,
        r_s,
        c,
        c_s,
        th,
        th_s,
        centre,
        centre_s,
        width,
        width_s,
        grad_x,
        grad_u0,
        grad_a,
        grad_r,
        grad_c,
        grad_th,
    ):
        T, N = v_seq.shape
        nblocks = (N + BLOCK - 1) // BLOCK
        for b in prange(nblocks):
            lo = b * BLOCK
            m = min(BLOCK, N - lo)
            pa = np.empty(m)
            pr = np.empty(m)
            pc = np.empty(m)
            pw = np.empty(m)
            pt = np.empty(m, dtype=v_seq.dtype)  # threshold in storage dtype
            pce = np.empty(m, dtype=v_seq.dtype)  # window centre in storage dtype
            for j in range(m):
                n = lo + j
                pa[j] = a[n * a_s]
                pr[j] = r[n * r_s]
                pc[j] = c[n * c_s]
                pt[j] = th[n * th_s]
                pce[j] = centre[n * centre_s]
                pw[j] = width[n * width_s]
            carry = np.empty(m)
            for j in range(m):
                carry[j] = grad_u[lo + j]
            acc_a = np.zeros(m)
            acc_r = np.zeros(m)
            acc_c = np.zeros(m)
            acc_th = np.zeros(m)
            for t in range(T - 1, -1, -1):
                for j in range(m):
                    n = lo + j
                    v_store = v_seq[t, n]
                    fired = v_store >= pt[j]
                    v = float(v_store)
                    # d = v - centre in the storage dtype, as the reference path rounds it
                    # (a window edge then falls on the same side in every kernel).
                    g = _surrogate(kind, float(v_store - pce[j]), pw[j])
                    cu = carry[j]
                    gs = float(grad_s[t, n])
                    # dL/dv: direct, through the spike, and through the reset.
                    dudv = 0.0 if fired else 1.0
                    reset_term = 0.0
                    if not detach_reset:
                        dudv += (pr[j] - v) * g
                        reset_term = cu * (pr[j] - v)
                    gv = float(grad_v[t, n]) + gs * g + cu * dudv
                    grad_x[t, n] = gv
                    # state entering step t
                    if t > 0:
                        vp = v_seq[t - 1, n]
                        up = pr[j] if vp >= pt[j] else float(vp)
                    else:
                        up = float(u0[n])
                    dvdu, dvda, dvdr, dvdc = _drive_derivatives(mode, up, pa[j], pr[j], pc[j])
                    carry[j] = gv * dvdu
                    if need_params:
                        acc_th[j] -= (gs + reset_term) * g
                        acc_a[j] += gv * dvda
                        acc_r[j] += gv * dvdr + (cu if fired else 0.0)
                        acc_c[j] += gv * dvdc
            for j in range(m):
                n = lo + j
                grad_u0[n] = carry[j]
                if need_params:
                    grad_a[n] = acc_a[j]
                    grad_r[n] = acc_r[j]
                    grad_c[n] = acc_c[j]
                    grad_th[n] = acc_th[j]

    return scan_backward
