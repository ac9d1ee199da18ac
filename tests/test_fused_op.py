"""The fused op equals the step-by-step reference, forward and every gradient."""

import itertools

import pytest
import torch

from qifsim.neurons import LIF, QIF, SURROGATES, LIFParameters, QIFParameters
from qifsim.neurons.functional import (
    MODE_LIF,
    MODE_QIF_EULER,
    MODE_QIF_PAPER,
    NeuronTensors,
    neuron_sequence_reference,
)
from qifsim.neurons.fused import neuron_sequence_fused
from qifsim.neurons.surrogate import DEFAULT_ALPHA

BACKENDS = ["numba", "torch"]


def _inputs(seed, shape=(10, 3, 6), dtype=torch.float64):
    g = torch.Generator().manual_seed(seed)
    return torch.randn(shape, generator=g, dtype=dtype) * 0.6 + 0.25


def _run_and_grad(module, x, params):
    """Loss touching spikes and the final state; returns outputs and grads."""
    x = x.clone().requires_grad_(True)
    spikes, state = module(x)
    weights = torch.linspace(-1, 1, spikes[0].numel(), dtype=x.dtype).reshape(spikes[0].shape)
    loss = (spikes * weights).sum() + (state.v**2).sum()
    grads = torch.autograd.grad(loss, [x, *params])
    return spikes.detach(), state.v.detach(), grads


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("form", ["paper", "euler"])
@pytest.mark.parametrize("surrogate", SURROGATES)
@pytest.mark.parametrize("detach_reset", [False, True])
def test_qif_fused_equals_reference_with_learnable_parameters(
    backend, form, surrogate, detach_reset
):
    p = QIFParameters(a=0.3, u_rest=-0.1, u_c=0.6, u_th=0.55, form=form, surrogate=surrogate)
    learn = ("a", "u_rest", "u_c", "u_th")
    outs = []
    for impl in ("fused", "reference"):
        m = QIF(p, learnable=learn, impl=impl, backend=backend, detach_reset=detach_reset).double()
        outs.append(_run_and_grad(m, _inputs(1), list(m.parameters())))
    (s1, v1, g1), (s2, v2, g2) = outs
    assert torch.equal(s1, s2)
    torch.testing.assert_close(v1, v2, rtol=0, atol=1e-12)
    for a, b in zip(g1, g2, strict=True):
        torch.testing.assert_close(a, b, rtol=1e-9, atol=1e-11)
    assert g1[0].abs().sum() > 0


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("surrogate", [s for s in SURROGATES if s != "analytic"])
@pytest.mark.parametrize("detach_reset", [False, True])
def test_lif_fused_equals_reference_with_learnable_parameters(backend, surrogate, detach_reset):
    p = LIFParameters(beta=0.4, u_th=0.5, surrogate=surrogate, alpha=DEFAULT_ALPHA[surrogate])
    outs = []
    for impl in ("fused", "reference"):
        m = LIF(
            p, learnable=("beta", "u_th"), impl=impl, backend=backend, detach_reset=detach_reset
        ).double()
        outs.append(_run_and_grad(m, _inputs(2), list(m.parameters())))
    (s1, v1, g1), (s2, v2, g2) = outs
    assert torch.equal(s1, s2)
    torch.testing.assert_close(v1, v2, rtol=0, atol=1e-12)
    for a, b in zip(g1, g2, strict=True):
        torch.testing.assert_close(a, b, rtol=1e-9, atol=1e-11)


@pytest.mark.parametrize("backend", BACKENDS)
def test_per_channel_learnable_gradients_float32(backend):
    p = QIFParameters(a=torch.full((4, 1, 1), 0.25), u_c=torch.linspace(0.3, 0.7, 4).view(4, 1, 1))
    x = _inputs(3, shape=(6, 2, 4, 3, 5), dtype=torch.float32)
    outs = []
    for impl in ("fused", "reference"):
        m = QIF(p, learnable=("a", "u_c"), impl=impl, backend=backend)
        outs.append(_run_and_grad(m, x, list(m.parameters())))
    (s1, _, g1), (s2, _, g2) = outs
    assert torch.equal(s1, s2)
    for a, b in zip(g1, g2, strict=True):
        assert a.shape == b.shape
        torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-5)


def _far_from_threshold_inputs(seed, tensors):
    """Inputs whose potentials stay 1e-3 away from u_th (finite differences cross no spike)."""
    for s in itertools.count(seed):
        x = _inputs(s, shape=(6, 2, 3))
        _, v, _ = neuron_sequence_reference(x, tensors["u0"], tensors["p"])
        if (v - tensors["p"].u_th).abs().min() > 1e-3:
            return x


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("mode", [MODE_QIF_PAPER, MODE_QIF_EULER, MODE_LIF])
def test_gradcheck_float64(backend, mode):
    """gradcheck of the hand-written backward where the true derivative exists.

    Spikes are piecewise constant, so finite differences see only the
    potential path: check ``v`` (before reset) with ``detach_reset=True``
    against numerical derivatives in x, u0 and all neuron parameters.
    """
    dt = torch.float64
    a = torch.tensor(0.3 if mode != MODE_LIF else 0.6, dtype=dt, requires_grad=True)
    r = torch.tensor(-0.1 if mode != MODE_LIF else 0.0, dtype=dt, requires_grad=mode != MODE_LIF)
    c = torch.tensor(0.5, dtype=dt, requires_grad=mode != MODE_LIF)
    th = torch.tensor(0.6, dtype=dt, requires_grad=True)
    u0 = torch.randn(2, 3, dtype=dt, generator=torch.Generator().manual_seed(5)) * 0.2
    p = NeuronTensors(a, r, c, th, th.detach(), torch.tensor(1.0, dtype=dt), mode, 1)
    x = _far_from_threshold_inputs(10, {"u0": u0, "p": p})

    def f(x, u0, a, r, c, th):
        q = NeuronTensors(a, r, c, th, th.detach(), p.width, mode, 1)
        return neuron_sequence_fused(x, u0, q, detach_reset=True, backend=backend)[1]

    args = (x.requires_grad_(True), u0.requires_grad_(True), a, r, c, th)
    assert torch.autograd.gradcheck(f, args, eps=1e-6, atol=1e-7)


def test_fused_saves_less_than_half_of_reference():
    x = _inputs(4, shape=(16, 4, 8, 8, 8), dtype=torch.float32).requires_grad_(True)

    def saved_bytes(module):
        storages = {}

        def pack(t):
            storages[t.untyped_storage().data_ptr()] = t.untyped_storage().nbytes()
            return t

        with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
            spikes, _ = module(x)
        spikes.sum().backward()
        return sum(storages.values())

    fused, reference = saved_bytes(QIF()), saved_bytes(QIF(impl="reference"))
    assert fused <= 0.5 * reference, (fused, reference)


def test_numba_backend_refuses_what_it_cannot_run():
    half = torch.tensor(0.5, dtype=torch.float16)
    p = NeuronTensors(half, half * 0, half, half, half, half, MODE_QIF_PAPER, 0)
    x = torch.randn(3, 2, 4, dtype=torch.float16)
    with pytest.raises(ValueError, match="numba kernel runs on CPU float32/float64"):
        neuron_sequence_fused(x, x[0], p, backend="numba")
    # the torch kernel takes it (the modules upcast halves to a float32 state anyway)
    assert neuron_sequence_fused(x, x[0], p, backend="torch")[0].dtype == torch.float16
    with pytest.raises(ValueError, match="backend must be one of"):
        QIF(backend="cuda-magic")
