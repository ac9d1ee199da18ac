"""The Triton kernels of the fused neuron op equal the numba kernel and the step-by-step reference.

Every test runs twice:

* ``cpu``: in Triton's interpreter (``TRITON_INTERPRET=1``), on every machine;
* ``cuda``: compiled on the GPU (``@pytest.mark.cuda``; skipped without one).

The checks are the following:

* spikes are bit-equal;
* ``v`` is bit-equal (same operation order, no fused multiply-add);
* gradients match in ``x``, ``u0`` and every learnable parameter, to rounding.

Coverage: every mode (QIF paper, QIF Euler, LIF), every surrogate,
``detach_reset`` on and off, shared / per-channel / per-neuron parameters,
float16 / bfloat16 / float32 / float64 inputs, and sizes that are not
multiples of the block, with several programs per launch. T = 1 is included.
"""

from __future__ import annotations

import os
import types

import pytest
import torch

from qifsim.neurons import LIF, QIF, SURROGATES, LIFParameters, QIFParameters
from qifsim.neurons import fused as fused_mod
from qifsim.neurons.functional import (
    MODE_LIF,
    MODE_QIF_EULER,
    MODE_QIF_PAPER,
    NeuronTensors,
    neuron_sequence_reference,
)
from qifsim.neurons.fused import neuron_sequence_fused, resolve_backend
from qifsim.neurons.surrogate import DEFAULT_ALPHA

pytest.importorskip("triton", reason="Triton is not installed (it ships with torch's wheels)")
if not fused_mod.triton_available():
    pytest.skip("triton does not import here", allow_module_level=True)

from qifsim.neurons import kernels_triton  # noqa: E402

DEVICES = [
    "cpu",
    pytest.param(
        "cuda",
        marks=[
            pytest.mark.cuda,
            pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device"),
        ],
    ),
]


@pytest.fixture(params=DEVICES)
def device(request, monkeypatch):
    """``cpu``: the interpreter, with small blocks (several programs, a ragged last one)."""
    if request.param == "cpu":
        monkeypatch.setenv("TRITON_INTERPRET", "1")
        monkeypatch.setattr(kernels_triton, "BLOCK", 16)
    else:
        monkeypatch.delenv("TRITON_INTERPRET", raising=False)
    return torch.device(request.param)


def _inputs(seed, shape, dtype=torch.float64, device="cpu"):
    g = torch.Generator().manual_seed(seed)
    return (torch.randn(shape, generator=g, dtype=torch.float64) * 0.6 + 0.25).to(device, dtype)


def _loss_grads(module, x, *, use_spikes=True, use_state=True):
    """Outputs and gradients (x, then every parameter) of a loss on spikes and/or the state."""
    x = x.clone().requires_grad_(True)
    spikes, state = module(x)
    loss = x.new_zeros((), dtype=torch.float64)
    if use_spikes:
        weights = torch.linspace(-1, 1, spikes[0].numel(), device=x.device)
        loss = loss + (spikes.double() * weights.double().reshape(spikes[0].shape)).sum()
    if use_state:
        loss = loss + (state.v.double() ** 2).sum()
    grads = torch.autograd.grad(loss, [x, *module.parameters()], allow_unused=True)
    return spikes.detach(), state.v.detach(), grads


def _compare(triton_out, other_out, grad_tol):
    (s1, v1, g1), (s2, v2, g2) = triton_out, other_out
    assert s1.dtype == s2.dtype
    assert torch.equal(s1.cpu(), s2.cpu())
    torch.testing.assert_close(v1.cpu(), v2.cpu(), rtol=0, atol=0)
    for a, b in zip(g1, g2, strict=True):
        assert (a is None) == (b is None)
        if a is not None:
            assert a.shape == b.shape and a.dtype == b.dtype
            torch.testing.assert_close(a.cpu(), b.cpu(), **grad_tol)


def _run_three(factory, x, device, **loss):
    """(triton on device, numba on CPU, reference on CPU) outputs of the same module."""
    outs = []
    runs = (("triton", "fused", device), ("numba", "fused", "cpu"), (None, "reference", "cpu"))
    for backend, impl, dev in runs:
        kwargs = {"impl": impl} if backend is None else {"impl": impl, "backend": backend}
        module = factory(**kwargs).to(dev)
        outs.append(_loss_grads(module, x.to(dev), **loss))
    return outs


TIGHT64 = {"rtol": 1e-10, "atol": 1e-12}
TIGHT32 = {"rtol": 2e-5, "atol": 2e-6}


@pytest.mark.parametrize("form", ["paper", "euler"])
@pytest.mark.parametrize("surrogate", SURROGATES)
@pytest.mark.parametrize("detach_reset", [False, True])
def test_qif_every_surrogate_and_form(device, form, surrogate, detach_reset):
    p = QIFParameters(a=0.3, u_rest=-0.1, u_c=0.6, u_th=0.55, form=form, surrogate=surrogate)
    learn = ("a", "u_rest", "u_c", "u_th")

    def factory(**kw):
        return QIF(p, learnable=learn, detach_reset=detach_reset, **kw).double()

    tri, numba, ref = _run_three(factory, _inputs(1, (7, 3, 13)), device)
    _compare(tri, numba, TIGHT64)
    _compare(tri, ref, TIGHT64)
    assert tri[2][0].abs().sum() > 0


@pytest.mark.parametrize("surrogate", [s for s in SURROGATES if s != "analytic"])
@pytest.mark.parametrize("detach_reset", [False, True])
def test_lif_every_surrogate(device, surrogate, detach_reset):
    p = LIFParameters(beta=0.4, u_th=0.5, surrogate=surrogate, alpha=DEFAULT_ALPHA[surrogate])

    def factory(**kw):
        return LIF(p, learnable=("beta", "u_th"), detach_reset=detach_reset, **kw).double()

    tri, numba, ref = _run_three(factory, _inputs(2, (6, 2, 19)), device)
    _compare(tri, numba, TIGHT64)
    _compare(tri, ref, TIGHT64)


def _layout(kind: str, C: int = 3, H: int = 5, W: int = 7):
    """QIF parameters shared, per channel ``[C, 1, 1]``, or per neuron ``[C, H, W]``."""
    if kind == "shared":
        return QIFParameters(a=0.3, u_c=0.55)
    shape = (C, 1, 1) if kind == "per-channel" else (C, H, W)
    g = torch.Generator().manual_seed(7)
    a = 0.2 + 0.2 * torch.rand(shape, generator=g, dtype=torch.float64)
    u_c = 0.4 + 0.3 * torch.rand(shape, generator=g, dtype=torch.float64)
    u_th = 0.45 + 0.1 * torch.rand(shape, generator=g, dtype=torch.float64)
    return QIFParameters(a=a, u_c=u_c, u_th=u_th)


@pytest.mark.parametrize("layout", ["shared", "per-channel", "per-neuron"])
@pytest.mark.parametrize("mode", ["paper", "euler", "lif"])
def test_parameter_layouts_reduce_to_the_parameter_shape(device, layout, mode):
    """Per-neuron parameter gradients from the kernel, summed to each parameter's shape."""
    x = _inputs(3, (5, 2, 3, 5, 7), dtype=torch.float32)
    if mode == "lif":
        beta = _layout(layout).a  # any positive layout in [0, 1]
        p = LIFParameters(beta=beta, u_th=0.5)

        def factory(**kw):
            return LIF(p, learnable=("beta", "u_th"), **kw)
    else:
        p = _layout(layout).replace(form=mode)

        def factory(**kw):
            return QIF(p, learnable=("a", "u_rest", "u_c", "u_th"), **kw)

    tri, numba, ref = _run_three(factory, x, device)
    _compare(tri, numba, TIGHT32)
    _compare(tri, ref, TIGHT32)
    module = factory()
    for g, param in zip(tri[2][1:], module.parameters(), strict=True):
        assert g.shape == param.shape


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
@pytest.mark.parametrize("mode", ["paper", "lif"])
def test_half_inputs_run_with_a_float32_state(device, dtype, mode):
    """Halves are read directly; spikes come back in the half dtype, dL/dx too.

    The references convert x to float32 first. Spikes and v are therefore
    bit-equal, and dL/dx is the float32 gradient rounded to the half dtype.
    That rounding allows one half ulp. A float32 sum in another order can fall
    on the other side of a rounding boundary, and under the interpreter the
    bfloat16 rounding truncates (see :mod:`qifsim.neurons.kernels_triton`).
    """
    x = _inputs(4, (6, 2, 37), dtype=dtype)
    if mode == "lif":
        def factory(**kw):
            return LIF(learnable=("beta",), **kw)
    else:
        def factory(**kw):
            return QIF(learnable=("a", "u_c"), **kw)

    tri, numba, ref = _run_three(factory, x, device)
    assert tri[0].dtype == dtype and tri[2][0].dtype == dtype
    assert tri[1].dtype == torch.float32
    ulp = torch.finfo(dtype).eps  # relative spacing of the half dtype
    grad_x_tol = {"rtol": ulp, "atol": 1e-6}
    for other in (numba, ref):
        assert torch.equal(tri[0].cpu(), other[0])
        torch.testing.assert_close(tri[1].cpu(), other[1], rtol=0, atol=0)
        torch.testing.assert_close(tri[2][0].cpu(), other[2][0], **grad_x_tol)
        for a, b in zip(tri[2][1:], other[2][1:], strict=True):
            torch.testing.assert_close(a.cpu(), b, **TIGHT32)


@pytest.mark.parametrize("T", [1, 2, 9])
@pytest.mark.parametrize("n", [1, 15, 16, 17, 50])
def test_odd_sizes_and_short_sequences(device, T, n):
    """Neuron counts below, at and past the block (16 here); T = 1 included."""
    p = QIFParameters(a=0.35, u_rest=-0.05, u_c=0.5, u_th=0.5, surrogate="sigmoid")

    def factory(**kw):
        return QIF(p, learnable=("a", "u_th"), **kw).double()

    tri, numba, ref = _run_three(factory, _inputs(5 + T + n, (T, n)), device)
    _compare(tri, numba, TIGHT64)
    _compare(tri, ref, TIGHT64)


@pytest.mark.parametrize(
    ("use_spikes", "use_state", "detach_reset"),
    [(True, False, False), (False, True, True), (True, True, False)],
)
def test_missing_incoming_gradients_read_as_zero(device, use_spikes, use_state, detach_reset):
    """Only spikes in the loss (no dL/dv), or only the detached state (no dL/dspikes)."""

    def factory(**kw):
        return QIF(learnable=("a",), detach_reset=detach_reset, **kw).double()

    loss = {"use_spikes": use_spikes, "use_state": use_state}
    tri, numba, ref = _run_three(factory, _inputs(6, (8, 4, 9)), device, **loss)
    _compare(tri, numba, TIGHT64)
    _compare(tri, ref, TIGHT64)


@pytest.mark.parametrize("mode", [MODE_QIF_PAPER, MODE_QIF_EULER, MODE_LIF])
def test_gradcheck_float64(device, mode):
    """gradcheck of the Triton backward on the potential path (true derivatives exist there)."""
    dt = torch.float64
    dev = device
    a = torch.tensor(0.3 if mode != MODE_LIF else 0.6, dtype=dt, device=dev, requires_grad=True)
    r = torch.tensor(-0.1 if mode != MODE_LIF else 0.0, dtype=dt, device=dev)
    r.requires_grad_(mode != MODE_LIF)
    c = torch.tensor(0.5, dtype=dt, device=dev, requires_grad=mode != MODE_LIF)
    th = torch.tensor(0.6, dtype=dt, device=dev, requires_grad=True)
    width = torch.tensor(1.0, dtype=dt, device=dev)
    g = torch.Generator().manual_seed(5)
    u0 = (torch.randn(2, 3, generator=g, dtype=dt) * 0.2).to(dev)
    p = NeuronTensors(a, r, c, th, th.detach(), width, mode, 1)
    for seed in range(10, 100):  # inputs whose potentials stay away from the threshold
        x = _inputs(seed, (6, 2, 3)).to(dev)
        _, v, _ = neuron_sequence_reference(x, u0, p)
        if (v - th).abs().min() > 1e-3:
            break

    def f(x, u0, a, r, c, th):
        q = NeuronTensors(a, r, c, th, th.detach(), width, mode, 1)
        return neuron_sequence_fused(x, u0, q, detach_reset=True, backend="triton")[1]

    args = (x.requires_grad_(True), u0.requires_grad_(True), a, r, c, th)
    assert torch.autograd.gradcheck(f, args, eps=1e-6, atol=1e-7)


def test_torch_compile_fullgraph_with_the_triton_backend(device):
    """The custom op (fake kernels included) traces with no graph break; compiled == eager."""
    torch.manual_seed(0)
    net = torch.nn.Sequential(torch.nn.Linear(11, 13)).to(device)
    qif = QIF(backend="triton").to(device)
    x = torch.randn(4, 3, 11, device=device)

    def loss_fn(x):
        spikes, state = qif(net(x))
        return spikes.sum() + state.v.square().sum()

    eager = loss_fn(x)
    eager.backward()
    eager_grad = net[0].weight.grad.clone()
    net.zero_grad()
    compiled = torch.compile(loss_fn, fullgraph=True, backend="aot_eager")(x)
    compiled.backward()
    torch.testing.assert_close(compiled, eager)
    torch.testing.assert_close(net[0].weight.grad, eager_grad)


# -- backend choice ---------------------------------------------------------------


def test_auto_picks_triton_on_cuda_and_numba_on_cpu():
    cuda_like = types.SimpleNamespace(device=torch.device("cuda"))
    assert resolve_backend("auto", cuda_like, torch.float32) == "triton"
    cpu = torch.zeros(1)
    assert resolve_backend("auto", cpu, torch.float32) == "numba"
    assert resolve_backend("auto", cpu.half(), torch.float16) == "torch"


def test_auto_falls_back_to_torch_ops_on_cuda_without_triton(monkeypatch):
    monkeypatch.setattr(fused_mod, "triton_available", lambda: False)
    cuda_like = types.SimpleNamespace(device=torch.device("cuda"))
    assert resolve_backend("auto", cuda_like, torch.float32) == "torch"
    with pytest.raises(ValueError, match="needs the triton package"):
        resolve_backend("triton", cuda_like, torch.float32)


def test_forced_triton_on_cpu_needs_the_interpreter(monkeypatch):
    monkeypatch.delenv("TRITON_INTERPRET", raising=False)
    x = torch.randn(3, 2, 4)
    with pytest.raises(ValueError, match="TRITON_INTERPRET=1"):
        QIF(backend="triton")(x)
    monkeypatch.setenv("TRITON_INTERPRET", "1")
    spikes, _ = QIF(backend="triton")(x)
    assert torch.equal(spikes, QIF()(x)[0])


def test_triton_refuses_a_half_state(monkeypatch):
    monkeypatch.setenv("TRITON_INTERPRET", "1")
    half = torch.tensor(0.5, dtype=torch.float16)
    p = NeuronTensors(half, half * 0, half, half, half, half, MODE_QIF_PAPER, 0)
    x = torch.randn(3, 2, 4, dtype=torch.float16)
    with pytest.raises(ValueError, match="state must be float32 or float64"):
        neuron_sequence_fused(x, x[0], p, backend="triton")


def test_backend_parity_report_checks_every_kernel_here():
    """The demo's kernel check: every backend runs and matches the reference on this machine."""
    from qifsim.neurons.parity import backend_parity

    before = os.environ.get("TRITON_INTERPRET")
    report = backend_parity(shape=(5, 2, 19))
    assert os.environ.get("TRITON_INTERPRET") == before, "the interpreter flag must be restored"
    assert report["auto"] == "numba"
    for checked in report["neurons"].values():
        assert 0.0 < checked["reference_firing_rate"] < 1.0
        assert set(checked["backends"]) == {"numba", "torch", "triton"}
        for row in checked["backends"].values():
            assert row["spikes_equal"]
            assert row["max_abs_v"] <= 1e-6 and row["max_abs_grad"] <= 1e-5
