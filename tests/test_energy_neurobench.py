"""qifsim's counts against NeuroBench 2.3.0 (the optional extra, installed by make setup).

Agreement under the same convention, per layer and in total, on digits-net and on a
norse model (and an snntorch net stepped over T); then one test per named difference
(:data:`qifsim.energy.neurobench.CONVENTIONS`), each showing the difference and its size.
"""

from __future__ import annotations

import warnings

import pytest
import torch
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

pytest.importorskip("neurobench")

from neurobench.benchmarks import Benchmark  # noqa: E402
from neurobench.metrics.workload import (  # noqa: E402
    ActivationSparsity,
    ActivationSparsityByLayer,
)
from neurobench.models import TorchModel  # noqa: E402

from qifsim.energy import measure_energy  # noqa: E402
from qifsim.energy.demo import calibrate_batch_norms  # noqa: E402
from qifsim.energy.neurobench import (  # noqa: E402
    CONVENTIONS,
    cross_check,
    neurobench_layer_counts,
    neurobench_metrics,
    wrap,
)
from qifsim.energy.report import count_batches  # noqa: E402
from qifsim.layers import MergeTime  # noqa: E402
from qifsim.models import build_model  # noqa: E402
from qifsim.neurons import LIF, QIF  # noqa: E402

norse = pytest.importorskip("norse.torch")
snn = pytest.importorskip("snntorch")

warnings.filterwarnings("ignore", category=FutureWarning)


def loader_of(x: torch.Tensor, batch: int = 4) -> DataLoader:
    """Batch-first data, as NeuroBench takes it."""
    return DataLoader(TensorDataset(x, torch.zeros(len(x), dtype=torch.long)), batch_size=batch)


def spikes(shape, rate=0.3, seed=0) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return (torch.rand(shape, generator=g) < rate).float()


def assert_agrees(check) -> None:
    assert check.layers and all(c.compared for c in check.layers)
    for c in check.layers:
        assert (c.qifsim_acs, c.qifsim_macs, c.qifsim_dense) == (
            c.neurobench_acs, c.neurobench_macs, c.neurobench_dense), c  # fmt: skip
    n = check.samples
    for key, v in check.totals.items():
        assert round(v["qifsim"] * n) == round(v["neurobench"] * n), key
    assert check.sparsity["qifsim"] == pytest.approx(check.sparsity["neurobench"], abs=1e-12)
    for name, (q, nb) in check.layer_sparsity.items():
        assert q == pytest.approx(nb, abs=1e-12), name
    assert check.agrees


@pytest.fixture(scope="module")
def digits():
    torch.manual_seed(0)
    model = build_model("digits-net", neuron="qif")
    g = torch.Generator().manual_seed(1)
    x = torch.poisson(torch.full((8, 4, 2, 34, 34), 0.3), generator=g)
    calibrate_batch_norms(model, x.transpose(0, 1))
    return model.eval(), x


def test_digits_net_agrees_per_layer_and_in_total(digits):
    model, x = digits
    check = cross_check(model, loader_of(x), label="digits-net")
    assert_agrees(check)
    rows = {c.name: c for c in check.layers}
    assert rows["features.conv1.conv.module"].input == "graded"  # event counts: MACs
    assert rows["features.conv2.conv.module"].neurobench_acs > 0  # the layers fire
    assert rows["readout.fc"].neurobench_acs > 0
    assert all(0 < 1 - s < 1 for s, _ in check.layer_sparsity.values())
    assert "| features.conv2.conv.module | spikes |" in check.to_markdown()


def norse_model() -> nn.Module:
    torch.manual_seed(1)
    model = norse.SequentialState(
        nn.Linear(12, 24, bias=False),
        norse.LIF(norse.LIFParameters(v_th=torch.tensor(0.05))),
        nn.Linear(24, 16),
        QIF(),
        nn.Linear(16, 4),
    ).eval()
    with torch.no_grad():
        model[0].weight.mul_(3)
        model[2].weight.mul_(3)
    return model


def test_norse_model_agrees_per_layer_and_in_total():
    x = torch.rand(8, 6, 12)  # graded input: the first layer costs (non-zero) MACs
    x[x < 0.4] = 0
    check = cross_check(norse_model(), loader_of(x), label="norse")
    assert_agrees(check)
    assert check.totals["Effective_MACs"]["neurobench"] > 0
    assert check.totals["Effective_ACs"]["neurobench"] > 0
    assert set(check.layer_sparsity) == {"1", "3"}


def test_snntorch_net_stepped_over_t_agrees():
    torch.manual_seed(2)
    net = nn.Sequential(
        nn.Linear(12, 20, bias=False),
        snn.Leaky(beta=0.9, threshold=0.3, init_hidden=True),
        nn.Linear(20, 5),
        snn.Leaky(beta=0.9, threshold=0.3, init_hidden=True, output=True),
    ).eval()
    with torch.no_grad():
        net[0].weight.abs_()
    check = cross_check(net, loader_of(spikes((8, 6, 12), seed=3)), forward="steps")
    assert_agrees(check)
    assert check.totals["Effective_ACs"]["neurobench"] > 0


def test_wrapped_model_runs_in_neurobench_benchmark_harness(digits):
    model, x = digits
    results = neurobench_metrics(model, loader_of(x))
    report = measure_energy(model, [x.transpose(0, 1)])
    assert results["ActivationSparsity"] == pytest.approx(1 - report.spike_rate, abs=1e-12)
    assert set(results["ActivationSparsityByLayer"]) == set(report.layer_rates())
    syn = results["SynapticOperations"]
    assert syn["Effective_ACs"] == pytest.approx(
        sum(r.event_acs for r in report.rows if r.kind in ("conv", "linear", "readout")), rel=1e-12
    )
    wrapped = wrap(model)
    assert wrapped(x[:2]).shape[:2] == (2, 10)  # batch-first data in, the model's output out


# -- the named differences --------------------------------------------------------------


def one_layer_counts(layer: nn.Module, x: torch.Tensor, neuron=None):
    """qifsim's row and NeuroBench's per-layer counts of ``layer`` on time-first ``x``."""
    model = nn.Sequential(layer, neuron or LIF()).eval()
    counter, _ = count_batches(model, [x])
    nb, _ = neurobench_layer_counts(model, loader_of(x.transpose(0, 1)))
    (name,) = nb  # the one connection layer NeuroBench finds
    return counter.rows[name], nb[name]


def test_convention_padding():
    assert "padding" in CONVENTIONS
    conv = nn.Conv2d(2, 3, 3, padding=1, bias=False)
    T, B, H, W = 3, 2, 6, 5
    x = spikes((T, B, 2, H, W), seed=4)
    row, nb = one_layer_counts(MergeTime(conv), x)
    per_frame_padded = 3 * 2 * (9 * H * W - (3 * H - 2) * (3 * W - 2))  # by hand
    assert row.padded_taps == per_frame_padded * T * B
    assert row.dense_ops - nb["dense"] == per_frame_padded * T * B
    assert row.event_acs == nb["ac"]  # the event count already skips padding


def test_convention_zero_weights():
    lin = nn.Linear(6, 4, bias=False)
    with torch.no_grad():
        lin.weight[:, 0] = 0  # input 0 reaches no output
        lin.weight[1, 2] = 0
    x = spikes((5, 3, 6), seed=5)
    row, nb = one_layer_counts(lin, x)
    s = x.sum((0, 1))
    assert row.event_acs == int(s.sum()) * 4
    assert nb["ac"] == int((s * (lin.weight != 0).sum(0)).sum())  # non-zero weights only
    assert row.event_acs - nb["ac"] == int(s[0]) * 4 + int(s[2])


def test_convention_signed_spikes():
    x = spikes((4, 3, 6), seed=6) - spikes((4, 3, 6), seed=7)  # values in {-1, 0, 1}
    row, nb = one_layer_counts(nn.Linear(6, 4), x)
    nonzero = int((x != 0).sum())
    assert nb["ac"] == nonzero * 4 and nb["mac"] == 0  # NeuroBench: spikes
    assert row.event_acs == 0 and row.macs == 4 * 3 * 6 * 4  # qifsim: graded, dense MACs
    assert row.event_macs == nonzero * 4


def test_convention_graded_macs():
    x = torch.rand(4, 3, 6)
    x[x < 0.5] = 0
    row, nb = one_layer_counts(nn.Linear(6, 4), x)
    assert row.macs == 4 * 3 * 6 * 4  # Eq. 17: every MAC of the dense layer
    assert nb["mac"] == row.event_macs == int((x != 0).sum()) * 4 < row.macs


def test_convention_pooling():
    torch.manual_seed(8)
    model = norse.SequentialState(
        nn.Conv2d(2, 3, 3, padding=1, bias=False),
        norse.LIFBoxCell(norse.LIFBoxParameters(v_th=torch.tensor(0.02))),
        nn.AvgPool2d(2),
        nn.Flatten(),
        nn.Linear(3 * 4 * 4, 5),
    ).eval()
    with torch.no_grad():
        model[0].weight.abs_().mul_(3)
    x = spikes((1, 4, 2, 8, 8), seed=9)  # one step: the cell takes [B, C, H, W]

    def first_step(m, xs):
        return m(xs[0])

    counter, _ = count_batches(model, [x], forward=first_step)
    nb, _ = neurobench_layer_counts(model, loader_of(x.transpose(0, 1)), forward=first_step)
    pool, fc = counter.rows["2"], counter.rows["4"]
    cell_spikes = counter.rows["1"].spikes
    assert cell_spikes > 0
    assert pool.event_acs == cell_spikes and "2" not in nb  # NeuroBench counts no pooling
    assert fc.event_acs == cell_spikes * 5 and fc.pooled_calls == 1  # spikes x fan-out
    with torch.no_grad():
        pooled = nn.AvgPool2d(2)(model[1](model[0](x[0]))[0])
    assert nb["4"]["mac"] == int((pooled != 0).sum()) * 5 and nb["4"]["ac"] == 0
    check = cross_check(model, loader_of(x.transpose(0, 1)), forward=first_step)
    assert {c.name: c.compared for c in check.layers} == {"0": True, "4": False}


def test_convention_activations(digits, capsys):
    model, x = digits
    plain = TorchModel(model)
    plain.add_activation_module(QIF)  # qifsim's neurons return (spikes, state)
    bench = Benchmark(
        plain,
        loader_of(x),
        [lambda data: (data[0].transpose(0, 1), data[1])],  # time-first for the model
        [],
        [[], [ActivationSparsity, ActivationSparsityByLayer]],
    )
    results = bench.run()
    plain.cleanup_hooks()
    assert results["ActivationSparsity"] == 0.0  # its hooks hold tuples it cannot read
    assert "Error running workload metric 'ActivationSparsity'" in capsys.readouterr().out
    # layers are named by attribute: digits-net's three "spike" layers share one name
    assert [a["layer_name"] for a in plain.activation_layers()] == ["spike"] * 3
    wrapped = wrap(model)
    wrapped.register_hooks()
    assert [h.name for h in wrapped.activation_hooks] == [
        "features.conv1.spike",
        "features.conv2.spike",
        "classifier.fc1.spike",
    ]
    wrapped.cleanup_hooks()
    sparsity = neurobench_metrics(model, loader_of(x))["ActivationSparsity"]
    assert sparsity == pytest.approx(1 - measure_energy(model, [x.transpose(0, 1)]).spike_rate)


def test_every_convention_has_its_test():
    for key in CONVENTIONS:
        assert callable(globals().get(f"test_convention_{key}")), key


def test_peer_energy_section_measures_both_peers_and_agrees(capsys):
    from qifsim.energy.demo import peer_energy_section

    result = peer_energy_section()
    rows = {r["model"]: r for r in result["rows"]}
    assert set(rows) == {"norse", "snntorch"}
    assert rows["norse"]["neurons"] == "norse-lif, qif"
    assert rows["snntorch"]["neurons"] == "snntorch-leaky"
    for r in rows.values():
        assert (r["T"], r["samples"]) == (10, 8)  # snntorch: T counted from its 10 calls
        assert 0 < r["spike_rate"] < 1 and r["event_acs"] > 0 and r["macs"] > r["event_macs"]
        assert r["with_neuron_updates_uJ"] > r["energy_uJ"]
    assert result["neurobench_agrees"] is True
    assert set(result["neurobench"]) == {"digits-net", "norse", "snntorch"}
    out = capsys.readouterr().out
    assert "| norse | norse-lif, qif | 10 |" in out and "qifsim vs NeuroBench" in out
