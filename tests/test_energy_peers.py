"""Energy of models from norse, snntorch, spikingjelly and user modules, against hand counts.

Every expected count here is computed independently of the counter: the spikes are
recorded from the neuron layers' outputs with plain forward hooks (a second run of the
same model from the same state), and each layer's expected accumulations are
``input spikes x fan-out`` (a linear layer: ``out_features``; a conv: the output
positions and channels each pixel feeds, counted by loops). The input is binary spikes,
so no layer costs MACs and the energy is exactly ``E_AC x`` that sum.
"""

from __future__ import annotations

import itertools
import re
import warnings

import pytest
import torch
from torch import nn

from qifsim.energy import (
    OpCounter,
    UnsupportedLayerError,
    check_supported,
    load_profile,
    measure_energy,
    neuron_layers,
    register_neuron,
)
from qifsim.energy.neuron_ops import NEURON_OPS, ops_summary
from qifsim.neurons import QIF

norse = pytest.importorskip("norse.torch")
snn = pytest.importorskip("snntorch")
snn_utils = pytest.importorskip("snntorch.utils")
sj_neuron = pytest.importorskip("spikingjelly.activation_based.neuron")
sj_layer = pytest.importorskip("spikingjelly.activation_based.layer")
sj_functional = pytest.importorskip("spikingjelly.activation_based.functional")

warnings.filterwarnings("ignore", category=FutureWarning)

E_AC = 0.9e-12
NEURON = load_profile("cmos45nm-fp32-neuron")
E_MUL, E_ADD = 3.7e-12, 0.9e-12
T, B = 6, 4


def spikes_in(shape, rate=0.3, seed=0) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return (torch.rand(shape, generator=g) < rate).float()


def record_outputs(model: nn.Module, modules: dict[str, nn.Module], run) -> dict[str, list]:
    """Outputs (spikes: the output or its first element) of ``modules`` during ``run()``."""
    seen: dict[str, list] = {n: [] for n in modules}
    handles = [
        m.register_forward_hook(
            lambda mod, a, out, n=n: seen[n].append(
                (out[0] if isinstance(out, tuple) else out).detach().clone()
            )
        )
        for n, m in modules.items()
    ]
    try:
        with torch.no_grad():
            run()
    finally:
        for h in handles:
            h.remove()
    return seen


def total_spikes(records: list[torch.Tensor]) -> int:
    return int(sum(int(r.sum().item()) for r in records))


def conv_fanout_loops(c_in, c_out, hw, k) -> torch.Tensor:
    """Fan-out of each input pixel of a stride-1, unpadded k x k conv, by plain loops."""
    h, w = hw
    fan = torch.zeros(c_in, h, w, dtype=torch.float64)
    for i, j in itertools.product(range(h - k + 1), range(w - k + 1)):
        fan[:, i : i + k, j : j + k] += c_out
    return fan


def total_acs(report) -> int:
    """The report's accumulations over all samples, as exact integers (rows are per sample)."""
    return sum(round(r.event_acs * report.samples) for r in report.rows)


def check_exact(report, expected_acs: int, updates_J: float = 0.0) -> None:
    """Event-driven ACs equal the hand count exactly; energy = E_AC x count (+ updates)."""
    assert report.totals()["macs"] == 0
    assert total_acs(report) == expected_acs
    assert report.energy_event_J * report.samples == pytest.approx(
        E_AC * expected_acs + updates_J, rel=1e-12, abs=0
    )


# -- a user's module, no parameters of its own --------------------------------------


class UserNet(nn.Module):
    """``Linear -> QIF -> Linear``, time-first; the model class holds no parameters."""

    def __init__(self) -> None:
        super().__init__()
        self.fc1 = nn.Linear(12, 20, bias=False)
        self.spike = QIF()
        self.fc2 = nn.Linear(20, 5)

    def forward(self, x):
        s, _ = self.spike(self.fc1(x))
        return self.fc2(s)


def test_user_module_is_a_container_and_counts_exactly():
    torch.manual_seed(0)
    model = UserNet().eval()
    with torch.no_grad():
        model.fc1.weight.mul_(4)
    assert check_supported(model)[""] == "container"
    x = spikes_in((T, B, 12))
    report = measure_energy(model, [x])
    rec = record_outputs(model, {"spike": model.spike}, lambda: model(x))
    n1 = total_spikes(rec["spike"])
    assert n1 > 0
    check_exact(report, int(x.sum().item()) * 20 + n1 * 5)
    assert report.samples == B and report.steps == T
    assert report.layer_rates()["spike"] == pytest.approx(n1 / (20 * T * B))


def test_parametrised_unknown_module_raises_naming_it_or_is_listed():
    class Scaled(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.fc = nn.Linear(12, 20)
            self.gain = nn.Parameter(torch.ones(20))  # may be a weight used functionally

        def forward(self, x):
            return self.fc(x) * self.gain

    class Outer(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.block = Scaled()
            self.spike = QIF()

        def forward(self, x):
            return self.spike(self.block(x))[0]

    model = Outer()
    with pytest.raises(UnsupportedLayerError, match=r"'block' .*Scaled.*parameters or buffers"):
        measure_energy(model, [spikes_in((T, B, 12))])
    report = measure_energy(model, [spikes_in((T, B, 12))], strict=False)
    assert report.not_counted == ["block"]
    row = {r.name: r for r in report.rows}
    assert row["block"].kind == "not counted" and row["block"].event_acs == 0
    assert row["block.fc"].event_acs > 0  # its children are still counted
    assert "Not counted (strict=False" in report.to_markdown()


# -- norse SequentialState mixing norse LIF and qifsim QIF ---------------------------


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


def test_norse_sequential_state_with_norse_lif_and_qif_counts_exactly():
    model = norse_model()
    x = spikes_in((T, B, 12), seed=2)
    report = measure_energy(model, [x], profile=NEURON)
    rec = record_outputs(model, {"lif": model[1], "qif": model[3]}, lambda: model(x))
    n_lif, n_qif = total_spikes(rec["lif"]), total_spikes(rec["qif"])
    assert n_lif > 0 and n_qif > 0
    # neuron updates: norse LIF 2 mul + 5 add, QIF 2 mul + 3 add, every neuron every step
    updates = (24 * (2 * E_MUL + 5 * E_ADD) + 16 * (2 * E_MUL + 3 * E_ADD)) * T * B
    check_exact(report, int(x.sum().item()) * 24 + n_lif * 16 + n_qif * 4, updates)
    rows = {r.name: r for r in report.rows}
    assert rows["1"].neuron == "norse-lif" and rows["3"].neuron == "qif"
    assert report.neuron == "mixed"


def test_norse_cells_stepped_with_common_layers():
    """A one-step norse cell stepped by the caller, with BatchNorm, pooling and reshapes."""
    torch.manual_seed(3)
    model = norse.SequentialState(
        nn.Conv2d(2, 3, 3, bias=False),  # 8x8 -> 6x6
        nn.BatchNorm2d(3),
        norse.LIFBoxCell(norse.LIFBoxParameters(v_th=torch.tensor(0.02))),
        nn.AdaptiveAvgPool2d(2),  # 6x6 -> 2x2: windows of 3x3
        nn.Flatten(),
        nn.Dropout(0.5),
        nn.Identity(),
        nn.Linear(12, 5),
    ).eval()
    with torch.no_grad():
        model[0].weight.abs_().mul_(3)

    def forward(m, xs):  # xs [T, B, C, H, W]; the state goes from step to step
        state = None
        for t in range(xs.shape[0]):
            _, state = m(xs[t], state)

    xs = spikes_in((3, B, 2, 8, 8), seed=4)
    report = measure_energy(model, [xs], forward=forward)
    rec = record_outputs(model, {"cell": model[2]}, lambda: forward(model, xs))
    assert report.steps == 3 and report.samples == B
    conv = int((xs.sum((0, 1)).double() * conv_fanout_loops(2, 3, (8, 8), 3)).sum().item())
    n = total_spikes(rec["cell"])
    assert n > 0
    # each spike enters one 3x3 window (one add) and its pooled pixel feeds 5 outputs
    check_exact(report, conv + n + n * 5)
    assert {r.name for r in report.rows if r.kind == "neuron"} == {"2"}


def test_norse_lift_applies_a_layer_per_step():
    torch.manual_seed(4)
    model = norse.SequentialState(
        norse.Lift(nn.Conv2d(2, 3, 3, bias=False)),
        norse.LIF(norse.LIFParameters(v_th=torch.tensor(0.02))),
        nn.Flatten(2),
        norse.Lift(nn.Linear(3 * 36, 5)),
    ).eval()
    with torch.no_grad():
        model[0].lifted_module.weight.abs_().mul_(3)
    x = spikes_in((T, B, 2, 8, 8), seed=5)
    report = measure_energy(model, [x])
    rec = record_outputs(model, {"lif": model[1]}, lambda: model(x))
    conv = int((x.sum((0, 1)).double() * conv_fanout_loops(2, 3, (8, 8), 3)).sum().item())
    n = total_spikes(rec["lif"])
    assert n > 0 and report.steps == T and report.samples == B
    check_exact(report, conv + n * 5)


# -- snntorch: a Leaky net stepped over T ---------------------------------------------


def snntorch_net() -> nn.Module:
    torch.manual_seed(5)
    net = nn.Sequential(
        nn.Linear(12, 20, bias=False),
        snn.Leaky(beta=0.9, threshold=0.3, init_hidden=True),
        nn.Linear(20, 5),
        snn.Leaky(beta=0.9, threshold=0.3, init_hidden=True, output=True),
    ).eval()
    with torch.no_grad():
        net[0].weight.abs_()
    return net


def test_snntorch_leaky_net_stepped_over_t_counts_exactly():
    net = snntorch_net()
    x = spikes_in((T, B, 12), seed=6)
    report = measure_energy(net, [x, x[:, :2]], forward="steps", profile=NEURON)
    assert report.steps == T and report.samples == B + 2  # T from the calls, B per batch

    def run():
        for batch in (x, x[:, :2]):
            snn_utils.reset(net)
            for t in range(T):
                net(batch[t])

    rec = record_outputs(net, {"l1": net[1], "l2": net[3]}, run)
    n1 = total_spikes(rec["l1"])
    assert n1 > 0
    expected = int(x.sum().item() + x[:, :2].sum().item()) * 20 + n1 * 5
    # snntorch Leaky: 1 mul + 1 add per neuron and step
    check_exact(report, expected, (20 + 5) * T * (B + 2) * (E_MUL + E_ADD))
    assert {r.neuron for r in report.rows if r.neuron} == {"snntorch-leaky"}


def test_step_loop_inside_the_model_counts_t_from_the_neuron_calls():
    """snntorch tutorial style: the model loops over time itself on a [B, F] input."""

    class Net(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.fc1 = nn.Linear(12, 20)
            self.lif1 = snn.Leaky(beta=0.9, threshold=0.3)
            self.fc2 = nn.Linear(20, 5)
            self.lif2 = snn.Leaky(beta=0.9, threshold=0.3)

        def forward(self, x):  # x [B, 12] static, T steps inside
            mem1, mem2 = self.lif1.reset_mem(), self.lif2.reset_mem()
            out = []
            for _ in range(T):
                s1, mem1 = self.lif1(self.fc1(x), mem1)
                s2, mem2 = self.lif2(self.fc2(s1), mem2)
                out.append(s2)
            return torch.stack(out)

    torch.manual_seed(7)
    net = Net().eval()
    x = spikes_in((B, 12), seed=8)
    report = measure_energy(net, [x])
    rec = record_outputs(net, {"l1": net.lif1}, lambda: net(x))
    assert report.steps == T and report.samples == B
    n1 = total_spikes(rec["l1"])
    check_exact(report, int(x.sum().item()) * 20 * T + n1 * 5)


def test_sample_batch_groups_per_step_calls_and_root_calls_do_not():
    net = snntorch_net()
    x = spikes_in((T, B, 12), seed=9)
    with OpCounter(net) as counter, torch.no_grad():
        snn_utils.reset(net)
        with counter.sample_batch():
            for t in range(T):
                net(x[t])
    assert (counter.steps, counter.samples) == (T, B)
    with OpCounter(net) as counter, torch.no_grad():  # each call is its own forward
        for t in range(T):
            net(x[t])
    assert (counter.steps, counter.samples) == (1, T * B)


# -- spikingjelly, multi-step ----------------------------------------------------------


def test_spikingjelly_multi_step_net_counts_exactly():
    torch.manual_seed(9)
    net = nn.Sequential(
        sj_layer.SeqToANNContainer(nn.Conv2d(2, 4, 3, bias=False), nn.BatchNorm2d(4)),
        sj_neuron.IFNode(v_threshold=0.5, step_mode="m"),
        sj_layer.Flatten(step_mode="m"),
        sj_layer.Linear(4 * 6 * 6, 10, step_mode="m"),
        sj_neuron.LIFNode(v_threshold=0.2, step_mode="m"),
        sj_layer.Linear(10, 3, step_mode="m"),
    ).eval()
    with torch.no_grad():
        net[0][0].weight.abs_()
    x = spikes_in((T, B, 2, 8, 8), seed=10)
    report = measure_energy(net, [x], profile=NEURON)

    def run():
        sj_functional.reset_net(net)
        net(x)

    rec = record_outputs(net, {"if": net[1], "lif": net[4]}, run)
    n_if, n_lif = total_spikes(rec["if"]), total_spikes(rec["lif"])
    assert n_if > 0 and n_lif > 0
    fan = conv_fanout_loops(2, 4, (8, 8), 3)
    conv = int((x.sum((0, 1)).double() * fan).sum().item())
    updates = (4 * 36 * E_ADD + 10 * (E_MUL + 3 * E_ADD)) * T * B  # IF 1 add, LIF 1 mul + 3 add
    check_exact(report, conv + n_if * 10 + n_lif * 3, updates)
    assert report.steps == T and report.samples == B
    kinds = {r.name: r.neuron for r in report.rows if r.neuron}
    assert kinds == {"1": "spikingjelly-if", "4": "spikingjelly-lif"}


def test_spikingjelly_conv_wrapper_takes_time_first_input():
    net = nn.Sequential(
        sj_layer.Conv2d(2, 3, 3, bias=False, step_mode="m"),
        sj_neuron.IFNode(step_mode="m"),
    )
    x = spikes_in((T, B, 2, 8, 8), seed=11)
    report = measure_energy(net, [x])
    fan = conv_fanout_loops(2, 3, (8, 8), 3)
    check_exact(report, int((x.sum((0, 1)).double() * fan).sum().item()))


# -- recognition rules, update costs --------------------------------------------------


def test_peer_neurons_are_recognised_with_their_step_mode():
    model = nn.Sequential(
        norse.LIFCell(),
        norse.LIF(),
        norse.LI(),  # a leaky integrator: no spikes, not a spiking layer
        snn.Synaptic(alpha=0.8, beta=0.9),
        sj_neuron.ParametricLIFNode(step_mode="m"),
        sj_neuron.IFNode(),
        QIF(),
    )
    found = {n: (i.framework, i.neuron, i.multi_step) for n, (_, i) in neuron_layers(model).items()}
    assert found == {
        "0": ("norse", "norse-lif", False),
        "1": ("norse", "norse-lif", True),
        "3": ("snntorch", "snntorch-synaptic", False),
        "4": ("spikingjelly", "spikingjelly-plif", True),
        "5": ("spikingjelly", "spikingjelly-if", False),
        "6": ("qifsim", "qif", True),
    }
    assert check_supported(model)["2"] == "free"
    binary = {n: i.binary for n, (_, i) in neuron_layers(model).items()}
    assert binary == {"0": True, "1": True, "3": False, "4": True, "5": True, "6": True}


def test_outputs_not_binary_by_construction_are_checked():
    """Subclasses and spikingjelly's spiking=False surrogates are not trusted to be 0/1."""
    sj_surrogate = pytest.importorskip("spikingjelly.activation_based.surrogate")

    class Scaled(norse.LIF):  # a subclass may change the output
        def forward(self, x, state=None):
            z, s = super().forward(x, state)
            return 0.5 * z, s

    smooth = sj_neuron.LIFNode(
        step_mode="m", v_threshold=0.2, surrogate_function=sj_surrogate.Sigmoid(spiking=False)
    )
    x = spikes_in((T, B, 4), seed=21)
    scaled = Scaled(norse.LIFParameters(v_th=torch.tensor(0.05)))
    for container, neuron in ((norse.SequentialState, scaled), (nn.Sequential, smooth)):
        model = container(nn.Linear(4, 6), neuron, nn.Linear(6, 3))
        with torch.no_grad():
            model[0].weight.fill_(0.6)
            model[0].bias.zero_()
        info = neuron_layers(model)["1"][1]
        assert not info.binary
        report = measure_energy(model, [x])
        rows = {r.name: r for r in report.rows}
        assert rows["1"].spikes > 0
        assert rows["2"].macs == 6 * 3 * T and rows["2"].event_acs == 0  # graded input


def test_norse_recurrent_neuron_raises_with_a_hint():
    model = norse.SequentialState(norse.LIFRecurrent(4, 6))
    with pytest.raises(UnsupportedLayerError, match=r"'0'.*LIFRecurrent.*recurrent weights"):
        OpCounter(model)


def test_neuron_profile_quotes_the_stated_counts_and_refuses_unstated_ones():
    assert any(a == ops_summary() for a in NEURON.assumptions)
    assert NEURON.neuron_update_energy("snntorch-leaky") == pytest.approx(E_MUL + E_ADD)
    ops = NEURON_OPS["norse-lif"]
    assert (ops.mul, ops.add) == (2, 5) and "lif_feed_forward_step" in ops.source
    model = norse.SequentialState(nn.Linear(3, 4), norse.LIFEx())
    x = spikes_in((T, B, 3))
    assert measure_energy(model, [x]).rows[1].neuron == "norse-LIFEx"  # no neuron costs
    with pytest.raises(ValueError, match="norse-LIFEx.*no stated count"):
        measure_energy(model, [x], profile=NEURON)
    loihi = load_profile("loihi-approx")  # fixed prices: 'other' covers every neuron type
    assert measure_energy(model, [x], profile=loihi).rows[1].energy_J == pytest.approx(
        4 * T * 52e-12
    )


def test_registered_neuron_and_graded_peer_outputs():
    class Heaviside(nn.Module):
        def forward(self, x):
            return (x > 0.5).float()

    register_neuron(Heaviside, "user-heaviside", multi_step=True, mul=0, add=1)
    model = nn.Sequential(nn.Linear(4, 6), Heaviside(), nn.Linear(6, 2))
    x = spikes_in((T, B, 4), seed=12)
    report = measure_energy(model, [x], profile=NEURON)
    row = {r.name: r for r in report.rows}["1"]
    assert row.neuron == "user-heaviside" and row.energy_J == pytest.approx(6 * T * E_ADD)
    # snntorch spikes scaled by graded_spikes_factor are not 0/1: the next layer pays MACs
    net = nn.Sequential(
        nn.Linear(4, 6),
        snn.Leaky(beta=0.5, threshold=0.1, init_hidden=True, graded_spikes_factor=2.0),
        nn.Linear(6, 2),
    )
    with torch.no_grad():
        net[0].weight.fill_(0.5)
        net[0].bias.zero_()
    report = measure_energy(net, [x], forward="steps")
    rows = {r.name: r for r in report.rows}
    assert rows["1"].spikes > 0 and rows["2"].macs == 6 * 2 * T and rows["2"].event_acs == 0


# -- the CLI: a model from a Python entry point ----------------------------------------

NETS = """
import torch
from torch import nn
import snntorch as snn
from qifsim.neurons import QIF


class QifNet(nn.Module):
    def __init__(self):
        super().__init__()
        self.fc1, self.spike, self.fc2 = nn.Linear(6, 8), QIF(), nn.Linear(8, 3)

    def forward(self, x):
        return self.fc2(self.spike(self.fc1(x))[0])


def qif_net():
    torch.manual_seed(0)
    return QifNet()


def snn_net():
    torch.manual_seed(0)
    return nn.Sequential(
        nn.Linear(6, 8), snn.Leaky(beta=0.9, threshold=0.2, init_hidden=True), nn.Linear(8, 3)
    )


class Gain(nn.Module):
    def __init__(self):
        super().__init__()
        self.g = nn.Parameter(torch.ones(8))

    def forward(self, x):
        return x * self.g


def odd_net():
    return nn.Sequential(nn.Linear(6, 8), Gain(), QIF())


def not_a_model():
    return 42
"""


def _cli_json(capsys, *args) -> dict:
    import json

    from qifsim.cli import main

    assert main(["energy", *args, "--json", "--no-progress"]) == 0
    return json.loads(capsys.readouterr().out)


def test_cli_measures_an_entry_point_model(tmp_path, capsys, monkeypatch):
    from qifsim.energy.cli import random_batches

    (tmp_path / "nets.py").write_text(NETS)
    data = _cli_json(capsys, f"{tmp_path / 'nets.py'}:qif_net", "--input-shape", "4,3,6",
                     "--input-rate", "0.5")  # fmt: skip
    assert (data["samples"], data["steps"]) == (3, 4)
    x = random_batches((4, 3, 6), 1, 0.5, 0)[0]
    assert set(x.unique().tolist()) <= {0.0, 1.0}
    namespace: dict = {}
    exec(NETS, namespace)  # the entry point's model, built here by the same code
    model = namespace["qif_net"]().eval()
    rec = record_outputs(model, {"q": model.spike}, lambda: model(x))
    expected = int(x.sum().item()) * 8 + total_spikes(rec["q"]) * 3
    assert round(data["totals"]["event_acs"] * 3) == expected
    assert "Bernoulli(0.5) spikes" in data["note"]
    # importable by module name from the current folder; snntorch stepped per call
    monkeypatch.chdir(tmp_path)
    data = _cli_json(capsys, "nets:snn_net", "--input-shape", "5,2,6", "--step-loop",
                     "--profile", "cmos45nm-fp32-neuron")  # fmt: skip
    assert (data["samples"], data["steps"]) == (2, 5)
    assert {r["neuron"] for r in data["rows"] if r["neuron"]} == {"snntorch-leaky"}
    # uniform graded input by default: the first layer costs MACs
    data = _cli_json(capsys, "nets:qif_net", "--input-shape", "4,3,6", "--batches", "2")
    assert data["samples"] == 6 and data["rows"][0]["macs"] == 4 * 6 * 8
    data = _cli_json(capsys, "nets:odd_net", "--input-shape", "4,3,6", "--no-strict")
    assert [r["name"] for r in data["rows"] if r["kind"] == "not counted"] == ["1"]


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["nets:qif_net"], "needs its input: --input-shape"),
        (["nets:qif_net", "--input-shape", "4"], "time-first T,B"),
        (["nets:qif_net", "--input-shape", "4,a"], "integers"),
        (["nets:qif_net", "--input-shape", "4,2,6", "--input-rate", "2"], r"in \[0, 1\]"),
        (["nets:not_a_model", "--input-shape", "4,2,6"], "not a torch.nn.Module"),
        (["nets:missing", "--input-shape", "4,2,6"], "no function 'missing'"),
        (["nomodule_xyz:f", "--input-shape", "4,2,6"], "cannot import 'nomodule_xyz'"),
        (["nets:odd_net", "--input-shape", "4,3,6"], r"'1' .*Gain.*strict=False"),
        (["no_such_checkpoint.pt"], "no checkpoint file"),
    ],
)
def test_cli_entry_point_errors_name_the_problem(tmp_path, capsys, monkeypatch, args, message):
    from qifsim.cli import main

    (tmp_path / "nets.py").write_text(NETS)
    monkeypatch.chdir(tmp_path)
    assert main(["energy", *args, "--no-progress"]) == 2
    assert re.search(message, capsys.readouterr().err)
