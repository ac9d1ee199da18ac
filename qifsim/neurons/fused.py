"""The fused multi-step neuron op: one custom op over all T steps.

``neuron_scan(x [T, ...], u0 [...], params)`` returns ``(spikes, v, u_last)``:
spikes and ``v`` (the potential before reset) are ``[T, ...]``, and
``u_last [...]`` is the state after the last step's reset. It is registered
as the torch custom op ``qifsim::neuron_scan`` with a hand-written backward
(``qifsim::neuron_scan_backward``). So:

* autograd saves only ``v``, one tensor (the spikes are recomputed from it),
  instead of every intermediate of the step-by-step graph;
* ``torch.compile`` sees one opaque op (no graph break in the neuron);
* the kernel is picked per call (see :func:`resolve_backend`): Triton on
  CUDA, numba on CPU, torch ops where neither applies (or when forced).

Dtypes: ``x`` is any floating dtype. ``u0`` and the parameters share the state
dtype (float32 for half inputs, which the modules arrange). Spikes come back
in ``x``'s dtype, and ``v`` and ``u_last`` in the state dtype. The gradient of
the next call's state therefore never passes through half-precision spikes.
The Triton kernels read halves directly; the numba and torch-ops kernels
compute on a state-dtype copy.

Backward semantics (STBP): gradients flow through the spike into the reset
unless ``detach_reset``; the spike's pseudo-derivative is the surrogate
window; the window's centre and width carry no gradient.
"""

from __future__ import annotations

import functools
import importlib.util

import torch

from . import kernels_torch
from .functional import NeuronTensors

BACKENDS = ("auto", "numba", "torch", "triton")
_NUMBA_DTYPES = (torch.float32, torch.float64)


@functools.cache
def triton_available() -> bool:
    """True when Triton imports (it ships with torch's CUDA wheels on Linux)."""
    if importlib.util.find_spec("triton") is None:
        return False
    try:
        from . import kernels_triton  # noqa: F401
    except Exception:  # noqa: BLE001 - a broken triton install means "not available"
        return False
    return True


def resolve_backend(backend: str, x: torch.Tensor, state_dtype: torch.dtype) -> str:
    """The kernel that runs ``x`` with a state of ``state_dtype``.

    ``"auto"`` picks Triton for CUDA tensors when Triton imports, numba for CPU
    float32/float64 states, and torch ops otherwise. A forced backend that
    cannot run raises a ``ValueError`` naming the fix.
    """
    if backend not in BACKENDS:
        raise ValueError(f"backend must be one of {BACKENDS}, got {backend!r}")
    numba_ok = x.device.type == "cpu" and state_dtype in _NUMBA_DTYPES
    if backend == "auto":
        if x.device.type == "cuda" and triton_available():
            return "triton"
        return "numba" if numba_ok else "torch"
    if backend == "numba" and not numba_ok:
        raise ValueError(
            f"the numba kernel runs on CPU float32/float64 only, got {x.device.type} "
            f"{state_dtype}; use backend='auto' or 'torch'"
        )
    if backend == "triton":
        if not triton_available():
            raise ValueError(
                "backend='triton' needs the triton package (it ships with torch's CUDA "
                "wheels; or `pip install triton`); use backend='auto' or 'torch'"
            )
        from .kernels_triton import interpreting

        if x.device.type != "cuda" and not interpreting():
            raise ValueError(
                f"the Triton kernels run on CUDA tensors, got a {x.device.type} tensor; use "
                "backend='auto', or set TRITON_INTERPRET=1 to run them in Triton's CPU "
                "interpreter (slow: for tests)"
            )
    return backend


def flat_parameter(p: torch.Tensor, neuron_shape: torch.Size) -> tuple[torch.Tensor, int]:
    """A parameter as a flat contiguous tensor plus its stride (0: shared, 1: per neuron)."""
    p = p.detach()
    if p.numel() == 1:
        return p.reshape(1).contiguous(), 0
    return p.expand(neuron_shape).contiguous().reshape(-1), 1


def _numba_arrays(params, shape) -> list:
    """The numba kernels' parameter arguments: ``array, stride`` for each parameter."""
    args = []
    for p in params:
        flat, stride = flat_parameter(p, shape)
        args += [flat.numpy(), stride]
    return args


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
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    chosen = resolve_backend(backend, x, u0.dtype)
    T, shape = x.shape[0], u0.shape
    if chosen == "triton":
        from . import kernels_triton

        spikes, v, u_last = kernels_triton.scan_forward(
            x.detach().contiguous().reshape(T, -1),
            u0.detach().contiguous().reshape(-1),
            tuple(flat_parameter(p, shape) for p in (a, r, c, th)),
            mode,
        )
        return spikes.reshape(x.shape), v.reshape(x.shape), u_last.reshape(shape)
    xs = x.detach().to(u0.dtype)
    if chosen == "torch":
        spikes, v, u_last = kernels_torch.scan_forward(xs, u0.detach(), a, r, c, th, mode)
        return spikes.to(x.dtype), v, u_last
    from . import kernels_numba

    x2 = xs.contiguous().reshape(T, -1)
    spikes = torch.empty_like(x2)
    v = torch.empty_like(x2)
    u0_flat = u0.detach().contiguous().reshape(-1)
    u_last = torch.empty_like(u0_flat)
    kernels_numba.forward_kernel(mode)(
        x2.numpy(),
        u0_flat.numpy(),
        *_numba_arrays((a, r, c, th), shape),
        spikes.numpy(),
        v.numpy(),
        u_last.numpy(),
    )
    return spikes.reshape(x.shape).to(x.dtype), v.reshape(x.shape), u_last.reshape(shape)


@_neuron_scan.register_fake
def _(x, u0, a, r, c, th, centre, width, mode, kind, detach_reset, backend):
    return torch.empty_like(x), torch.empty_like(x, dtype=u0.dtype), torch.empty_like(u0)


def _shaped(grads, needs, shape, like: torch.Tensor) -> list[torch.Tensor]:
    """Per-neuron parameter gradients in the neuron shape, empty where not needed."""
    pairs = zip(grads, needs, strict=True)
    return [g.reshape(shape) if need else like.new_empty(0) for g, need in pairs]


@torch.library.custom_op("qifsim::neuron_scan_backward", mutates_args=())
def _neuron_scan_backward(
    grad_s: torch.Tensor | None,
    grad_v: torch.Tensor | None,
    grad_u: torch.Tensor | None,
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
    x_dtype: torch.dtype,
    backend: str,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """``(grad_x in x_dtype, grad_u0, grad_a, grad_r, grad_c, grad_th)``.

    ``grad_s``, ``grad_v`` and ``grad_u`` are the gradients of the outputs
    (spikes, ``v``, ``u_last``), and ``None`` means zero. Parameter gradients
    are per neuron (shape of ``u0``) where ``needs`` asks for them, else empty.
    """
    shape = u0.shape
    T = v.shape[0]
    chosen = resolve_backend(backend, v, u0.dtype)
    if chosen == "triton":
        from . import kernels_triton

        def flat(g):
            return None if g is None else g.detach().contiguous().reshape(T, -1)

        gx, gu0, *grads = kernels_triton.scan_backward(
            flat(grad_s),
            flat(grad_v),
            None if grad_u is None else grad_u.detach().contiguous().reshape(-1),
            v.detach().contiguous().reshape(T, -1),
            u0.detach().contiguous().reshape(-1),
            tuple(flat_parameter(p, shape) for p in (a, r, c, th, centre, width)),
            mode,
            kind,
            detach_reset,
            any(needs),
            x_dtype,
        )
        return (gx.reshape(v.shape), gu0.reshape(shape), *_shaped(grads, needs, shape, v))
    grad_s = torch.zeros_like(v) if grad_s is None else grad_s.to(v.dtype)
    grad_v = torch.zeros_like(v) if grad_v is None else grad_v
    grad_u = torch.zeros_like(u0) if grad_u is None else grad_u
    if chosen == "torch":
        out = kernels_torch.scan_backward(
            grad_s,
            grad_v,
            grad_u,
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
        return (out[0].to(x_dtype), out[1], *grads)
    from . import kernels_numba

    n = u0.numel()
    v2 = v.detach().contiguous().reshape(T, -1)
    grad_x = torch.empty_like(v2)
    grad_u0 = torch.empty(n, dtype=v.dtype)
    need_params = any(needs)
    grads = [torch.empty(n if need_params else 1, dtype=v.dtype) for _ in needs]
    kernel = kernels_numba.backward_kernel(mode, kind, detach_reset, need_params)
    kernel(
        grad_s.detach().contiguous().reshape(T, -1).numpy(),
        grad_v.detach().contiguous().reshape(T, -1).numpy(),
        grad_u.detach().contiguous().reshape(-1).numpy(),
        v2.numpy(),
        u0.detach().contiguous().reshape(-1).numpy(),
        *_numba_arrays((a, r, c, th, centre, width), shape),
        grad_x.numpy(),
        grad_u0.numpy(),
        *(g.numpy() for g in grads),
    )
    grads = _shaped(grads, needs, shape, v)
    return (grad_x.reshape(v.shape).to(x_dtype), grad_u0.reshape(shape), *grads)


@_neuron_scan_backward.register_fake
def _(
    grad_s, grad_v, grad_u, v, u0, a, r, c, th, centre, width, mode, kind, detach_reset, needs,
    x_dtype, backend,
):  # fmt: skip
    grads = [u0.new_empty(u0.shape) if need else u0.new_empty(0) for need in needs]
    return (torch.empty_like(v, dtype=x_dtype), torch.empty_like(u0), *grads)


def _setup_context(ctx, inputs, output):
    x, u0, a, r, c, th, centre, width, mode, kind, detach_reset, backend = inputs
    ctx.save_for_backward(output[1], u0, a, r, c, th, centre, width)
    ctx.static = (mode, kind, detach_reset, x.dtype, backend)
    ctx.needs = [p.requires_grad for p in (a, r, c, th)]
    ctx.set_materialize_grads(False)


def _backward(ctx, grad_s, grad_v, grad_u):
    v, u0, a, r, c, th, centre, width = ctx.saved_tensors
    mode, kind, detach_reset, x_dtype, backend = ctx.static
    gx, gu0, *gp = _neuron_scan_backward(
        grad_s,
        grad_v,
        grad_u,
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
        x_dtype,
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
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Fused equivalent of :func:`~qifsim.neurons.functional.neuron_sequence_reference`.

    Args:
        x: input currents ``[T, B, ...]``, any floating dtype (halves are read
            as they are by the Triton kernels, converted to the state dtype by the others).
        u0: state after reset before the first step, ``[B, ...]``, in the state
            dtype (float32/float64; any floating dtype with ``backend="torch"``).
        p: parameters, tensors broadcastable to ``[B, ...]`` in the state dtype.
        detach_reset: stop gradients through the reset.
        backend: ``"auto"`` | ``"numba"`` | ``"torch"`` | ``"triton"`` (see
            :func:`resolve_backend`).

    Returns:
        ``(spikes [T, B, ...], v [T, B, ...], u_last [B, ...])``: spikes in
        ``x``'s dtype, ``v`` (before reset) and ``u_last`` (the state after the
        last reset) in the state dtype.
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
