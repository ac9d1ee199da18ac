"""GPU kernels of the fused multi-step neuron op (Triton): one kernel per direction.

Each program owns ``BLOCK`` neurons and walks all ``T`` steps with the state
in registers. Forward reads ``x`` once and writes spikes and ``v`` once.
Backward reads the incoming gradients and ``v`` once and writes ``dL/dx``.
That is one launch per direction instead of the torch-ops kernel's 6 + 20
elementwise launches per step.

The contract is that of :mod:`qifsim.neurons.kernels_numba`, operation for
operation:

* ``x`` may be float16, bfloat16, float32 or float64. It is read in its own
  dtype and converted to the state dtype (``u0``'s: float32, or float64 for
  float64 input), so halves never get a float32 copy in memory.
* Spikes are written in ``x``'s dtype and ``v`` in the state dtype.
* ``dL/dx`` is written in ``x``'s dtype, and every other gradient in the
  state dtype.
* Membrane arithmetic runs in the state dtype in the reference's order of
  operations, and the compiled kernel is built with ``enable_fp_fusion=False``
  (no fused multiply-add). Spikes are therefore bit-equal to the numba and
  step-by-step paths.
* Parameters are flat arrays with a stride of 0 (shared) or 1 (per neuron),
  as in :func:`qifsim.neurons.fused.flat_parameter`. Parameter gradients come
  out per neuron, and the caller reduces them to the parameter's shape.

The membrane mode, the surrogate kind and the backward flags are compile-time
constants (``tl.constexpr``): one specialised kernel per combination, no
run-time dispatch.

Where a kernel runs:

* ``TRITON_INTERPRET=1`` in the environment at call time runs Triton's
  interpreter, on CPU tensors (and on CUDA tensors, copied to the host).
  This is how the tests check these kernels on machines without a GPU. One
  known difference: the interpreter (Triton 3.8) truncates float32 -> bfloat16
  where compiled code rounds to nearest even. bfloat16 ``dL/dx`` can then be
  one bfloat16 ulp off under the interpreter. Nothing else differs.
* Otherwise the kernel is compiled for the CUDA tensors' device.
"""

from __future__ import annotations

import contextlib
import functools
import os

import torch
import triton
import triton.language as tl
from triton.runtime.interpreter import InterpretedFunction
from triton.runtime.jit import JITFunction

#: Neurons per program. 4 warps x 32 threads x 8 neurons each.
BLOCK = 1024
NUM_WARPS = 4
STATE_DTYPES = (torch.float32, torch.float64)
INPUT_DTYPES = (torch.float16, torch.bfloat16, torch.float32, torch.float64)


def interpreting() -> bool:
    """True when ``TRITON_INTERPRET=1``: the kernels then run in Triton's CPU interpreter."""
    return os.environ.get("TRITON_INTERPRET", "0") == "1"


def _scan_forward_kernel(
    x_ptr,
    u0_ptr,
    a_ptr,
    r_ptr,
    c_ptr,
    th_ptr,
    s_ptr,
    v_ptr,
    uo_ptr,
    T,
    N,
    a_stride,
    r_stride,
    c_stride,
    th_stride,
    MODE: tl.constexpr,
    BLOCK: tl.constexpr,
):
    offs = tl.program_id(0) * BLOCK + tl.arange(0, BLOCK)
    mask = offs < N
    state = u0_ptr.dtype.element_ty
    u = tl.load(u0_ptr + offs, mask=mask, other=0.0)
    a = tl.load(a_ptr + offs * a_stride, mask=mask, other=0.0)
    r = tl.load(r_ptr + offs * r_stride, mask=mask, other=0.0)
    c = tl.load(c_ptr + offs * c_stride, mask=mask, other=0.0)
    th = tl.load(th_ptr + offs * th_stride, mask=mask, other=0.0)
    x_ptrs = x_ptr + offs
    s_ptrs = s_ptr + offs
    v_ptrs = v_ptr + offs
    for _ in range(T):
        x = tl.load(x_ptrs, mask=mask, other=0.0).to(state)
        if MODE == 0:  # QIF, paper form
            v = a * (u - r) * (u - c) + x
        elif MODE == 1:  # QIF, Euler form
            v = u + a * (u - r) * (u - c) + x
        else:  # LIF
            v = a * u + x
        fired = v >= th
        # 0/1 through float32: Triton's interpreter cannot cast a bool to bfloat16.
        tl.store(s_ptrs, tl.where(fired, 1.0, 0.0).to(s_ptr.dtype.element_ty), mask=mask)
        tl.store(v_ptrs, v, mask=mask)
        u = tl.where(fired, r, v)
        x_ptrs += N
        s_ptrs += N
        v_ptrs += N
    tl.store(uo_ptr + offs, u, mask=mask)


def _scan_backward_kernel(
    gs_ptr,
    gv_ptr,
    gu_ptr,
    v_ptr,
    u0_ptr,
    a_ptr,
    r_ptr,
    c_ptr,
    th_ptr,
    ce_ptr,
    w_ptr,
    gx_ptr,
    gu0_ptr,
    ga_ptr,
    gr_ptr,
    gc_ptr,
    gth_ptr,
    T,
    N,
    a_stride,
    r_stride,
    c_stride,
    th_stride,
    ce_stride,
    w_stride,
    MODE: tl.constexpr,
    KIND: tl.constexpr,
    DETACH_RESET: tl.constexpr,
    NEED_PARAMS: tl.constexpr,
    HAS_GRAD_S: tl.constexpr,
    HAS_GRAD_V: tl.constexpr,
    HAS_GRAD_U: tl.constexpr,
    BLOCK: tl.constexpr,
):
    offs = tl.program_id(0) * BLOCK + tl.arange(0, BLOCK)
    mask = offs < N
    state = u0_ptr.dtype.element_ty
    u0 = tl.load(u0_ptr + offs, mask=mask, other=0.0)
    a = tl.load(a_ptr + offs * a_stride, mask=mask, other=0.0)
    r = tl.load(r_ptr + offs * r_stride, mask=mask, other=0.0)
    c = tl.load(c_ptr + offs * c_stride, mask=mask, other=0.0)
    th = tl.load(th_ptr + offs * th_stride, mask=mask, other=0.0)
    ce = tl.load(ce_ptr + offs * ce_stride, mask=mask, other=0.0)
    w = tl.load(w_ptr + offs * w_stride, mask=mask, other=1.0)
    # Core builtins only (tl.full, not tl.zeros): they interpret however triton was imported.
    zero = tl.full([BLOCK], 0.0, state)
    carry = zero  # dL/du(t), u(t) the state after step t's reset
    if HAS_GRAD_U:
        carry = tl.load(gu_ptr + offs, mask=mask, other=0.0).to(state)
    acc_a = zero
    acc_r = zero
    acc_c = zero
    acc_th = zero
    # Walk t = T-1 .. 0 with pointers at step t; v(t-1) is read once and kept for the next step.
    last = (T - 1).to(tl.int64) * N
    v_ptrs = v_ptr + last + offs
    gs_ptrs = gs_ptr + last + offs
    gv_ptrs = gv_ptr + last + offs
    gx_ptrs = gx_ptr + last + offs
    v = tl.load(v_ptrs, mask=mask, other=0.0)
    for i in range(T):
        has_prev = i < T - 1
        fired = v >= th
        d = v - ce
        # Pseudo-derivative g(v - centre) of the spike (qifsim.neurons.surrogate).
        if KIND == 0:  # analytic: 1 on the closed window |d| <= sigma_u
            g = tl.where(tl.abs(d) <= w, 1.0, 0.0).to(state)
        elif KIND == 1:  # rect: 1/alpha on the open window |d| < alpha/2
            g = tl.where(tl.abs(d) < w * 0.5, 1.0 / w, 0.0).to(state)
        elif KIND == 2:  # sigmoid
            sg = 1.0 / (1.0 + tl.exp(-w * d))
            g = w * sg * (1.0 - sg)
        elif KIND == 3:  # atan
            z = tl.full([BLOCK], 1.5707963267948966, state) * w * d
            g = (w * 0.5) / (1.0 + z * z)
        elif KIND == 4:  # triangle
            g = w * tl.maximum(1.0 - tl.abs(d), 0.0)
        else:  # superspike / fast sigmoid
            z = w * tl.abs(d) + 1.0
            g = 1.0 / (z * z)
        gs = zero
        if HAS_GRAD_S:
            gs = tl.load(gs_ptrs, mask=mask, other=0.0).to(state)
        gv = zero
        if HAS_GRAD_V:
            gv = tl.load(gv_ptrs, mask=mask, other=0.0).to(state)
        # dL/dv(t): direct, through the spike, and (unless detached) through the reset.
        dudv = tl.where(fired, 0.0, 1.0).to(state)
        reset_term = zero
        if not DETACH_RESET:
            dudv += (r - v) * g
            reset_term = carry * (r - v)
        gv += gs * g + carry * dudv
        tl.store(gx_ptrs, gv.to(gx_ptr.dtype.element_ty), mask=mask)
        # State entering step t: u(t-1) after reset, or u0 at t = 0.
        v_prev = tl.load(v_ptrs - N, mask=mask & has_prev, other=0.0)
        up = tl.where(has_prev, tl.where(v_prev >= th, r, v_prev), u0)
        if MODE == 2:  # LIF: v = beta u + x
            dvdu = a
            dvda = up
        else:
            dvdu = a * (2.0 * up - r - c)
            if MODE == 1:
                dvdu += 1.0
            dvda = (up - r) * (up - c)
        if NEED_PARAMS:
            acc_th -= (gs + reset_term) * g
            acc_a += gv * dvda
            acc_r += tl.where(fired, carry, 0.0)
            if MODE != 2:
                acc_r += gv * (-a * (up - c))
                acc_c += gv * (-a * (up - r))
        carry = gv * dvdu
        v = v_prev
        v_ptrs -= N
        gs_ptrs -= N
        gv_ptrs -= N
        gx_ptrs -= N
    tl.store(gu0_ptr + offs, carry, mask=mask)
    if NEED_PARAMS:
        tl.store(ga_ptr + offs, acc_a, mask=mask)
        tl.store(gr_ptr + offs, acc_r, mask=mask)
        tl.store(gc_ptr + offs, acc_c, mask=mask)
        tl.store(gth_ptr + offs, acc_th, mask=mask)


@functools.cache
def _kernel(name: str, interpret: bool):
    """The kernel ``name``, compiled (CUDA) or interpreted (``TRITON_INTERPRET=1``)."""
    fn = {"forward": _scan_forward_kernel, "backward": _scan_backward_kernel}[name]
    if interpret:
        return InterpretedFunction(fn)
    # T and N stay run-time values: Triton would otherwise turn a 1 into a constant.
    return JITFunction(fn, do_not_specialize=["T", "N"])


def _launcher(name: str, device: torch.device):
    interpret = interpreting()
    if not interpret and device.type != "cuda":
        raise ValueError(
            f"the Triton kernels run on CUDA tensors, got a {device.type} tensor; use "
            "backend='auto' (numba on CPU), or set TRITON_INTERPRET=1 to run them in "
            "Triton's CPU interpreter (slow: for tests)"
        )
    return _kernel(name, interpret)


def _check_state(u0: torch.Tensor, params: tuple[torch.Tensor, ...]) -> None:
    if u0.dtype not in STATE_DTYPES:
        raise ValueError(f"the neuron state must be float32 or float64, got {u0.dtype}")
    for p in params:
        if p.dtype != u0.dtype or p.device != u0.device:
            raise ValueError(
                f"neuron parameters must match the state ({u0.dtype} on {u0.device}), "
                f"got {p.dtype} on {p.device}"
            )


def _device_guard(t: torch.Tensor):
    return torch.cuda.device(t.device) if t.device.type == "cuda" else contextlib.nullcontext()


def scan_forward(
    x: torch.Tensor,
    u0: torch.Tensor,
    params: tuple[tuple[torch.Tensor, int], ...],
    mode: int,
    block: int | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Forward scan.

    Args:
        x: input currents ``[T, N]``, contiguous, float16/bfloat16/float32/float64.
        u0: state entering step 0, ``[N]``, contiguous, float32 or float64.
        params: ``(tensor, stride)`` for ``a``, ``reset``, ``u_c``, ``u_th``
            (flat, state dtype; stride 0 shared, 1 per neuron).
        mode: membrane mode (``qifsim.neurons.functional.MODE_*``).
        block: neurons per program (a power of two); ``None``: the module's ``BLOCK``.

    Returns:
        ``(spikes [T, N] in x's dtype, v [T, N], u_last [N])``: ``v`` before
        reset and ``u_last`` the state after the last reset, in the state dtype.
    """
    if x.dtype not in INPUT_DTYPES:
        raise ValueError(f"the Triton kernels take {INPUT_DTYPES} inputs, got {x.dtype}")
    _check_state(u0, tuple(p for p, _ in params))
    T, N = x.shape
    spikes = torch.empty_like(x)
    v = torch.empty((T, N), dtype=u0.dtype, device=x.device)
    if T == 0 or N == 0:
        return spikes, v, u0.clone()
    u_last = torch.empty_like(u0)
    kernel = _launcher("forward", x.device)
    block = block or BLOCK
    tensors, strides = zip(*params, strict=True)
    with _device_guard(x):
        kernel[(triton.cdiv(N, block),)](
            x,
            u0,
            *tensors,
            spikes,
            v,
            u_last,
            T,
            N,
            *strides,
            MODE=mode,
            BLOCK=block,
            num_warps=NUM_WARPS,
            enable_fp_fusion=False,
        )
    return spikes, v, u_last


def scan_backward(
    grad_s: torch.Tensor | None,
    grad_v: torch.Tensor | None,
    grad_u: torch.Tensor | None,
    v: torch.Tensor,
    u0: torch.Tensor,
    params: tuple[tuple[torch.Tensor, int], ...],
    mode: int,
    kind: int,
    detach_reset: bool,
    need_params: bool,
    grad_x_dtype: torch.dtype,
    block: int | None = None,
) -> tuple[torch.Tensor, ...]:
    """Reverse scan.

    Args:
        grad_s: ``dL/dspikes`` ``[T, N]`` (any float dtype) or ``None`` (zero).
        grad_v: ``dL/dv`` ``[T, N]`` or ``None`` (zero).
        grad_u: ``dL/du_last`` ``[N]`` (the final state) or ``None`` (zero).
        v: potentials before reset from the forward, ``[T, N]``, state dtype.
        u0: state entering step 0, ``[N]``.
        params: ``(tensor, stride)`` for ``a``, ``reset``, ``u_c``, ``u_th``,
            ``centre``, ``width``.
        mode, kind: membrane mode and surrogate kind.
        detach_reset: no gradient through the reset.
        need_params: write the per-neuron gradients of ``a, reset, u_c, u_th``.
        grad_x_dtype: dtype of ``dL/dx`` (the input's).
        block: neurons per program; ``None``: the module's ``BLOCK``.

    Returns:
        ``(grad_x [T, N], grad_u0 [N], grad_a, grad_reset, grad_u_c, grad_u_th)``.
        The four parameter gradients are per neuron ``[N]`` with ``need_params``,
        else empty.
    """
    _check_state(u0, tuple(p for p, _ in params))
    T, N = v.shape
    grad_x = torch.empty((T, N), dtype=grad_x_dtype, device=v.device)
    grad_u0 = torch.empty_like(u0)
    grads = [u0.new_empty(N if need_params else 0) for _ in range(4)]
    if N == 0:
        return (grad_x, grad_u0, *grads)
    if T == 0:
        grad_u0 = u0.new_zeros(N) if grad_u is None else grad_u.to(u0.dtype).clone()
        return (grad_x, grad_u0, *(g.zero_() for g in grads))
    kernel = _launcher("backward", v.device)
    block = block or BLOCK
    tensors, strides = zip(*params, strict=True)
    # A missing gradient is never read (HAS_GRAD_* False); v stands in as a valid pointer.
    placeholder = v
    with _device_guard(v):
        kernel[(triton.cdiv(N, block),)](
            placeholder if grad_s is None else grad_s,
            placeholder if grad_v is None else grad_v,
            placeholder if grad_u is None else grad_u,
            v,
            u0,
            *tensors,
            grad_x,
            grad_u0,
            *(g if need_params else grad_u0 for g in grads),
            T,
            N,
            *strides,
            MODE=mode,
            KIND=kind,
            DETACH_RESET=detach_reset,
            NEED_PARAMS=need_params,
            HAS_GRAD_S=grad_s is not None,
            HAS_GRAD_V=grad_v is not None,
            HAS_GRAD_U=grad_u is not None,
            BLOCK=block,
            num_warps=NUM_WARPS,
            enable_fp_fusion=False,
        )
    return (grad_x, grad_u0, *grads)
