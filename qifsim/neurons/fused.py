"""The fused multi-step neuron op: one custom op over all T steps.

``neuron_scan(x [T, ...], u0 [...], params)`` returns ``(spikes, v)``, both
``[T, ...]``, ``v`` the potential before reset. It is registered as the torch
custom op ``qifsim::neuron_scan`` with a hand-written backward
(``qifsim::neuron_scan_backward``), so

* autograd saves only ``v`` (one tensor, the spikes are recomputed from it),
  instead of every intermediate of the step-by-step graph;
* ``torch.compile`` sees one opaque op (no graph break in the neuron);
* the kernel is picked per call: numba on CPU for float32/float64, torch ops
  on CUDA and for other dtypes (``backend="torch"`` forces them anywhere).

Backward semantics (STBP): gradients flow through the spike into the reset
unless ``detach_reset``; the spike's pseudo-derivative is the surrogate
window; the window's centre and width carry no gradient.
"""

from __future__ import annotations

import torch

from . import kernels_torch
from .functional import NeuronTensors

BACKENDS = ("auto", "numba", "torch")
_NUMBA_DTYPES = (torch.float32, torch.float64)


def _pick_backend(backend: str, x: torch.Tensor) -> str:
    if backend not in BACKENDS:
        raise ValueError(f"backend must be one of {BACKENDS}, got {backend!r}")
    numba_ok = x.device.type == "cpu" and x.dtype in _NUMBA_DTYPES
    if backend == "numba" and not numba_ok:
        raise ValueError(
            f"the numba kernel runs on CPU float32/float64 only, got {x.device.type} {x.dtype}; "
            "use backend='auto' or 'torch'"
        )
    if backend == "auto":
        return "numba" if numba_ok else "torch"
    return backend


def _flat_param(p: torch.Tensor, neuron_shape: torch.Size) -> tuple:
    """A parameter as a numba array plus its stride (0: shared, 1: per neuron)."""
    if p.numel() == 1:
        return p.reshape(1).contiguous().numpy(), 0
    return p.expand(neuron_shape).contiguous().reshape(-1).numpy(), 1


@torch.library.custom_op("qifsim::neuron_scan", mutates_args=())
def _neuron_scan(
    x: torch.Tensor,
    u0: torch.Tensor,
    a: torch.Tensor,
    r: torch.Tensor,
    c: torch.Tensor,
    th: torch.Tensor,
    centre: torch.Tensor,
    width: torch.Tensor,
    mode: int,
    kind: int,
    detach_reset: bool,
    backend: str,
) -> tuple[torch.Tensor, torch.Tensor]:
    if _pick_backend(backend, x) == "torch":
        return kernels_torch.scan_forward(x, u0, a, r, c, th, mode)
    from . import kernels_numba

    T = x.shape[0]
    shape = u0.shape
    x2 = x.detach().contiguous().reshape(T, -1)
    spikes = torch.empty_like(x2)
    v = torch.empty_like(x2)
    flat = [arg for p in (a, r, c, th) for arg in _flat_param(p.detach(), shape)]
    kernels_numba.forward_kernel(mode)(
        x2.numpy(),
        u0.detach().contiguous().reshape(-1).numpy(),
        *flat,
        spikes.numpy(),
        v.numpy(),
    )
    return spikes.reshape(x.shape), v.reshape(x.shape)


@_neuron_scan.register_fake
def _(x, u0, a, r, c, th, centre, width, mode, kind, detach_reset, backend):
    return torch.empty_like(x), torch.empty_like(x)


@torch.library.custom_op("qifsim::neuron_scan_backward", mutates_args=())
def _neuron_scan_backward(
    grad_s: torch.Tensor,
    grad_v: torch.Tensor,
    v: torch.Tensor,
    u0: torch.Tensor,
    a: torch.Tensor,
    r: torch.Tensor,
    c: torch.Tensor,
    th: torch.Tensor,
    centre: torch.Tensor,
    width: torch.Tensor,
    mode: int,
    kind: int,
    detach_reset: bool,
    needs: list[bool],
    backend: str,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    shape = u0.shape
    if _pick_backend(backend, v) == "torch":
        out = kernels_torch.scan_backward(
            grad_s,
            grad_v,
            v,
            u0,
            a,
            r,
            c,
            th,
            centre,
            width,
            mode,
            kind,
            detach_reset,
            tuple(needs),
        )
        grads = [g if g is not None else v.new_empty(0) for g in out[2:]]
        return (out[0], out[1], *grads)
    from . import kernels_numba

    T = v.shape[0]
    n = u0.numel()
    v2 = v.detach().contiguous().reshape(T, -1)
    grad_x = torch.empty_like(v2)
    grad_u0 = torch.empty(n, dtype=v.dtype)
    need_params = any(needs)
    grads = [torch.empty(n if need_params else 1, dtype=v.dtype) for _ in needs]
    flat = [arg for p in (a, r, c, th, centre, width) for arg in _flat_param(p.detach(), shape)]
    kernel = kernels_numba.backward_kernel(mode, kind, detach_reset, need_params)
    kernel(
        grad_s.detach().contiguous().reshape(T, -1).numpy(),
        grad_v.detach().contiguous().reshape(T, -1).numpy(),
        v2.numpy(),
        u0.detach().contiguous().reshape(-1).numpy(),
        *flat,
        grad_x.numpy(),
        grad_u0.numpy(),
        *(g.numpy() for g in grads),
    )
    grads = [
        g.reshape(shape) if need else v.new_empty(0) for g, need in zip(grads, needs, strict=True)
    ]
    return (grad_x.reshape(v.shape), grad_u0.reshape(shape), *grads)


@_neuron_scan_backward.register_fake
def _(grad_s, grad_v, v, u0, a, r, c, th, centre, width, mode, kind, detach_reset, needs, backend):
    grads = [u0.new_empty(u0.shape) if need else u0.new_empty(0) for need in needs]
    return (torch.empty_like(v), torch.empty_like(u0), *grads)


def _setup_context(ctx, inputs, output):
    x, u0, a, r, c, th, centre, width, mode, kind, detach_reset, backend = inputs
    ctx.save_for_backward(output[1], u0, a, r, c, th, centre, width)
    ctx.static = (mode, kind, detach_reset, backend)
    ctx.needs = [p.requires_grad for p in (a, r, c, th)]


def _backward(ctx, grad_s, grad_v):
    v, u0, a, r, c, th, centre, width = ctx.saved_tensors
    mode, kind, detach_reset, backend = ctx.static
    grad_s = torch.zeros_like(v) if grad_s is None else grad_s
    grad_v = torch.zeros_like(v) if grad_v is None else grad_v
    gx, gu0, *gp = _neuron_scan_backward(
        grad_s,
        grad_v,
        v,
        u0,
        a,
        r,
        c,
        th,
        centre,
        width,
        mode,
        kind,
        detach_reset,
        ctx.needs,
        backend,
    )
    param_grads = [
        g.sum_to_size(p.shape) if need else None
        for g, p, need in zip(gp, (a, r, c, th), ctx.needs, strict=True)
    ]
    return (gx, gu0, *param_grads, None, None, None, None, None, None)


torch.library.register_autograd("qifsim::neuron_scan", _backward, setup_context=_setup_context)


def neuron_sequence_fused(
    x: torch.Tensor,
    u0: torch.Tensor,
    p: NeuronTensors,
    detach_reset: bool = False,
    backend: str = "auto",
) -> tuple[torch.Tensor, torch.Tensor]:
    """Fused equivalent of :func:`~qifsim.neurons.functional.neuron_sequence_reference`.

    Args:
        x: input currents ``[T, B, ...]`` (state dtype: float32/float64, or any
            floating dtype with ``backend="torch"``).
        u0: state after reset before the first step, ``[B, ...]``.
        p: parameters, tensors broadcastable to ``[B, ...]`` in ``x``'s dtype.
        detach_reset: stop gradients through the reset.
        backend: ``"auto"`` | ``"numba"`` | ``"torch"``.

    Returns:
        ``(spikes [T, B, ...], v [T, B, ...])``.
    """
    return _neuron_scan(
        x,
        u0,
        p.a,
        p.reset,
        p.u_c,
        p.u_th,
        p.centre,
        p.width,
        p.mode,
        p.kind,
        detach_reset,
        backend,
    )
