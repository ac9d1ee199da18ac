"""qifsim neurons inside norse models, snntorch-style stepping, torch.compile."""

import pytest
import torch
from norse.torch import LIF as NorseLIF
from norse.torch import LIFParameters as NorseLIFParameters
from norse.torch import Lift, SequentialState

from qifsim.neurons import QIF, QIFCell, QIFState


def make_model():
    torch.manual_seed(0)
    return SequentialState(
        torch.nn.Linear(12, 32),
        QIF(),
        Lift(torch.nn.Linear(32, 24)),
        NorseLIF(NorseLIFParameters(v_th=torch.tensor(0.3))),
        torch.nn.Linear(24, 16),
        QIF(record_states=True),
        torch.nn.Linear(16, 3),
    )


def test_qif_is_stateful_in_sequential_state():
    model = make_model()
    assert model.stateful_layers == [False, True, False, True, False, True, False]
    x = torch.rand(20, 4, 12) * 2
    out, state = model(x)
    assert out.shape == (20, 4, 3)
    assert isinstance(state[1], QIFState) and state[1].v.shape == (4, 32)
    # record_states: every step's membrane
    assert state[5].v.shape == (20, 4, 16)


def test_state_is_kept_across_calls():
    torch.manual_seed(0)
    model = SequentialState(torch.nn.Linear(12, 32), QIF(), torch.nn.Linear(32, 8), QIF())
    x = torch.rand(20, 4, 12) * 2
    full, _ = model(x)
    first, state = model(x[:7])
    second, _ = model(x[7:], state)
    assert torch.equal(torch.cat([first, second]), full)


def test_mixed_norse_qif_model_trains():
    model = make_model()
    g = torch.Generator().manual_seed(1)
    x = torch.rand(10, 32, 12, generator=g) * 2
    y = x.mean(0)[:, :3].argmax(1)
    opt = torch.optim.Adam(model.parameters(), lr=1e-2)
    losses = []
    for _ in range(40):
        opt.zero_grad()
        out, _ = model(x)
        loss = torch.nn.functional.cross_entropy(out.mean(0), y)
        loss.backward()
        opt.step()
        losses.append(loss.item())
    assert losses[-1] < 0.8 * losses[0], losses
    assert all(p.grad is not None for p in model.parameters())


def test_snntorch_style_stepping_with_explicit_state():
    cell = QIFCell()
    x = torch.rand(8, 3, 5)
    mem = None
    spikes = []
    for x_t in x:
        spk, mem = cell(x_t, mem)
        spikes.append(spk)
    seq_spikes, seq_state = QIF()(x)
    assert torch.equal(torch.stack(spikes), seq_spikes)
    assert torch.equal(mem.v, seq_state.v)


@pytest.mark.parametrize("backend", ["aot_eager"])
def test_torch_compile_has_no_graph_break_in_the_neuron(backend):
    torch.manual_seed(0)
    model = SequentialState(torch.nn.Linear(12, 32), QIF(), torch.nn.Linear(32, 3))

    def loss_fn(x):
        out, _ = model(x)
        return out.pow(2).mean()

    x = torch.rand(6, 4, 12) * 2
    compiled = torch.compile(loss_fn, fullgraph=True, backend=backend)  # fullgraph: no breaks
    loss_c = compiled(x)
    loss_c.backward()
    grads_c = [p.grad.clone() for p in model.parameters()]
    model.zero_grad()
    loss_e = loss_fn(x)
    loss_e.backward()
    torch.testing.assert_close(loss_c, loss_e)
    for gc, ge in zip(grads_c, [p.grad for p in model.parameters()], strict=True):
        torch.testing.assert_close(gc, ge)


@pytest.mark.slow
def test_torch_compile_inductor():
    test_torch_compile_has_no_graph_break_in_the_neuron("inductor")
