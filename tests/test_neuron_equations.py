"""Neuron outputs equal an independent numpy transcription of the equations."""

import numpy as np
import pytest
import torch
from numpy_neurons import lif_numpy, qif_numpy

from qifsim.neurons import LIF, QIF, LIFCell, LIFParameters, QIFCell, QIFParameters

IMPLS = [("fused", "numba"), ("fused", "torch"), ("reference", "auto")]


def random_qif_params(rng, form):
    u_rest = float(rng.uniform(-0.5, 0.3))
    return QIFParameters(
        a=float(rng.uniform(0.05, 0.8)),
        u_rest=u_rest,
        u_c=u_rest + float(rng.uniform(0.1, 1.0)),
        u_th=float(rng.uniform(0.2, 1.2)),
        form=form,
    )


@pytest.mark.parametrize("impl,backend", IMPLS)
@pytest.mark.parametrize("form", ["paper", "euler"])
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("seed", range(4))
def test_qif_matches_numpy(impl, backend, form, dtype, seed):
    rng = np.random.default_rng(seed)
    p = random_qif_params(rng, form)
    x = rng.normal(0.3, 0.6, size=(12, 5, 7)).astype(
        np.float32 if dtype == torch.float32 else np.float64
    )
    spikes_np, u_np, _ = qif_numpy(x, p.a, p.u_rest, p.u_c, p.u_th, form)
    neuron = QIF(p, impl=impl, backend=backend, record_states=True)
    spikes, state = neuron(torch.from_numpy(x))
    assert spikes.dtype == dtype
    np.testing.assert_array_equal(spikes.numpy(), spikes_np)
    np.testing.assert_allclose(state.v.numpy(), u_np, rtol=0, atol=1e-6)
    assert 0 < spikes_np.mean() < 1, "the test input must make some neurons fire, not all"


@pytest.mark.parametrize("impl,backend", IMPLS)
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("seed", range(4))
def test_lif_matches_numpy(impl, backend, dtype, seed):
    rng = np.random.default_rng(100 + seed)
    p = LIFParameters(beta=float(rng.uniform(0, 1)), u_th=float(rng.uniform(0.2, 1.2)))
    x = rng.normal(0.3, 0.6, size=(12, 5, 7)).astype(
        np.float32 if dtype == torch.float32 else np.float64
    )
    spikes_np, after_np, _ = lif_numpy(x, p.beta, p.u_th)
    spikes, state = LIF(p, impl=impl, backend=backend, record_states=True)(torch.from_numpy(x))
    np.testing.assert_array_equal(spikes.numpy(), spikes_np)
    np.testing.assert_allclose(state.v.numpy(), after_np, rtol=0, atol=1e-6)
    assert 0 < spikes_np.mean() < 1


@pytest.mark.parametrize("impl,backend", IMPLS)
def test_per_channel_parameters_match_numpy(impl, backend):
    rng = np.random.default_rng(7)
    C = 3
    a = rng.uniform(0.1, 0.6, size=(C, 1, 1))
    u_rest = rng.uniform(-0.3, 0.1, size=(C, 1, 1))
    u_c = u_rest + rng.uniform(0.2, 0.8, size=(C, 1, 1))
    u_th = rng.uniform(0.3, 0.9, size=(C, 1, 1))
    x = rng.normal(0.3, 0.6, size=(9, 2, C, 4, 5))
    p = QIFParameters(*(torch.from_numpy(v) for v in (a, u_rest, u_c, u_th)))
    spikes_np, u_np, _ = qif_numpy(x, a, u_rest, u_c, u_th)
    spikes, state = QIF(p, impl=impl, backend=backend, record_states=True)(torch.from_numpy(x))
    np.testing.assert_array_equal(spikes.numpy(), spikes_np)
    np.testing.assert_allclose(state.v.numpy(), u_np, rtol=0, atol=1e-12)


def test_initial_state_is_rest_and_cells_equal_sequence():
    p = QIFParameters(u_rest=-0.2, u_c=0.4)
    x = torch.randn(6, 3, 4) * 0.5 + 0.2
    cell, seq = QIFCell(p), QIF(p, record_states=True)
    # from rest u = u_rest with zero input: paper form gives v = a (u_rest - u_rest)(...) = 0,
    # the euler form (u + ...) stays at rest.
    _, st = cell(torch.zeros(3, 4))
    assert torch.equal(st.v, torch.zeros(3, 4))
    _, st = QIFCell(p.replace(form="euler"))(torch.zeros(3, 4, dtype=torch.float64))
    assert torch.equal(st.v, torch.full((3, 4), -0.2, dtype=torch.float64))
    state, outs, vs = None, [], []
    for x_t in x:
        o, state = cell(x_t, state)
        outs.append(o)
        vs.append(state.v)
    spikes, states = seq(x)
    assert torch.equal(torch.stack(outs), spikes)
    assert torch.equal(torch.stack(vs), states.v)
    lif_state = None
    lif_cell, lif_seq = LIFCell(), LIF()
    for x_t in x:
        _, lif_state = lif_cell(x_t, lif_state)
    assert torch.equal(lif_state.v, lif_seq(x)[1].v)


def test_state_carries_across_calls():
    x = torch.randn(10, 2, 8) * 0.6 + 0.2
    neuron = QIF()
    full, full_state = neuron(x)
    first, state = neuron(x[:4])
    second, state = neuron(x[4:], state)
    assert torch.equal(torch.cat([first, second]), full)
    assert torch.equal(state.v, full_state.v)


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
def test_half_inputs_run_in_float32_state(dtype):
    x = (torch.randn(8, 4, 16) * 0.6 + 0.2).to(dtype)
    for backend in ("auto", "torch"):
        spikes, state = QIF(backend=backend)(x)
        assert spikes.dtype == dtype and state.v.dtype == torch.float32
        ref, _ = QIF(impl="reference")(x.float())
        assert torch.equal(spikes.float(), ref)
