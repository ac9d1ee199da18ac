"""NIR: LIF nets imported by norse and snntorch spike like the qifsim model; QIF refused.

Tolerance: the per-layer spikes are compared exactly and the per-step logits
averaged over T to 1e-5 (the importers run float32; the qifsim reference float64).
The importers run one unbatched sample at a time: both map NIR's ``Flatten``
(``start_dim=0`` over the unbatched ``(C, H, W)``) to ``torch.nn.Flatten(0)``.
"""

from __future__ import annotations

import warnings

import nir
import numpy as np
import pytest
import torch
from export_nets import random_net, random_spikes

from qifsim.export import model_exchange, run_reference
from qifsim.export.nir import NIRExportError, from_nir, read_nir, to_nir, write_nir

T, B = 6, 3


def reference(model, x):
    ex, _, _ = model_exchange(model)
    return run_reference(ex, x, "float", record=True)


def run_imported(net, x, neuron_types, stateful_call):
    """Run an imported net per sample and step: (logits [B, K], spikes per layer [T, B, ...])."""
    spikes: list[list[torch.Tensor]] = []
    record: list[torch.Tensor] = []
    hooks = [
        m.register_forward_hook(
            lambda _m, _i, out: record.append(out[0] if isinstance(out, tuple) else out)
        )
        for m in net.modules()
        if isinstance(m, neuron_types)
    ]
    logits = []
    try:
        for b in range(x.shape[1]):
            ys = stateful_call(net, x[:, b])
            logits.append(torch.stack(ys).mean(0))
            n_layers = len(record) // x.shape[0]
            per_step = [record[t * n_layers : (t + 1) * n_layers] for t in range(x.shape[0])]
            spikes.append([torch.stack([s[i] for s in per_step]) for i in range(n_layers)])
            record.clear()
    finally:
        for h in hooks:
            h.remove()
    layers = [torch.stack([sample[i] for sample in spikes], 1) for i in range(len(spikes[0]))]
    return torch.stack(logits), layers


def snntorch_steps(net, xs):
    import snntorch as snn

    for m in net.modules():
        if isinstance(m, snn.Leaky):
            m.reset_mem()
    with torch.no_grad():
        return [net(x_t)[0] for x_t in xs]


def norse_steps(net, xs):
    state, ys = None, []
    with torch.no_grad():
        for x_t in xs:
            y, state = net(x_t, state)
            ys.append(y)
    return ys


def check_same(ref, logits, spikes):
    assert len(spikes) == len(ref.spikes)
    for got, want in zip(spikes, ref.spikes.values(), strict=True):
        assert torch.equal(got.double(), want), "spikes differ"
    torch.testing.assert_close(logits.double(), ref.logits, rtol=0, atol=1e-5)


@pytest.mark.parametrize(
    "kind,depth,pool,fold_r",
    [("dense", 2, False, False), ("conv", 2, True, False), ("conv", 2, False, True)],
)
def test_snntorch_imports_lif_net(kind, depth, pool, fold_r, tmp_path):
    snn = pytest.importorskip("snntorch")
    from snntorch.import_nir import import_from_nir

    model = random_net(kind, "lif", depth, seed=11, pool=pool)
    x = random_spikes(T, B, model.input_shape, 0.3, 2)
    path = write_nir(tmp_path / "net.nir", to_nir(model, fold_r=fold_r))
    net = import_from_nir(nir.read(path))
    logits, spikes = run_imported(net, x, (snn.Leaky,), snntorch_steps)
    check_same(reference(model, x), logits, spikes)


@pytest.mark.parametrize("kind", ["dense", "conv"])
def test_norse_imports_lif_net(kind, tmp_path):
    norse = pytest.importorskip("norse.torch")
    from norse.torch.module.lif_box import LIFBoxCell

    model = random_net(kind, "lif", 2, seed=12)
    x = random_spikes(T, B, model.input_shape, 0.3, 3)
    graph = to_nir(model, fold_r=True)  # norse's importer ignores r
    write_nir(tmp_path / "net.nir", graph)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)  # torch.jit.script inside norse
        warnings.simplefilter("ignore", DeprecationWarning)  # nirtorch.load inside norse
        net = norse.from_nir(nir.read(tmp_path / "net.nir"), dt=float(graph.metadata["qifsim_dt"]))
    logits, spikes = run_imported(net, x, (LIFBoxCell,), norse_steps)
    check_same(reference(model, x), logits, spikes)


def test_lif_parameter_mapping():
    model = random_net("dense", "lif", 1, seed=4)
    beta = float(model.classifier.fc1.spike.neuron_values()["beta"])
    for fold_r in (False, True):
        g = to_nir(model, dt=1e-3, fold_r=fold_r)
        lif = g.nodes["1_lif"]
        np.testing.assert_allclose(lif.tau, 1e-3 / (1 - beta))
        np.testing.assert_allclose(lif.r, 1.0 if fold_r else 1.0 / (1 - beta))
        assert np.all(lif.v_leak == 0) and np.all(lif.v_reset == 0)
        # Euler step of NIR's LIF ODE: v + dt/tau (v_leak - v + r W x) == beta v + W_model x
        w = g.nodes["1_dense"].weight
        eff = (1e-3 / lif.tau[0]) * lif.r[0] * w
        from qifsim.export import walk

        np.testing.assert_allclose(eff, walk(model, model.input_shape)[1].weight, rtol=1e-12)


def test_qif_refused_without_approximate():
    model = random_net("conv", "qif", 1, seed=0)
    with pytest.raises(NIRExportError, match="NIR has no QIF primitive.*approximate=True"):
        to_nir(model)


def test_qif_approximate_writes_if_with_metadata(tmp_path):
    model = random_net("dense", "qif", 2, seed=5, form="euler")
    with pytest.warns(UserWarning, match="IF nodes with the QIF parameters"):
        graph = to_nir(model, approximate=True)
    write_nir(tmp_path / "q.nir", graph)
    g = read_nir(tmp_path / "q.nir")
    node = g.nodes["1_qif"]
    assert isinstance(node, nir.IF)
    spike = model.classifier.fc1.spike.neuron_values()
    for key in ("a", "u_rest", "u_c", "u_th"):
        assert float(node.metadata[f"qifsim_{key}"]) == pytest.approx(float(spike[key]), rel=1e-15)
    np.testing.assert_allclose(node.v_threshold, float(spike["u_th"]))
    restored = from_nir(g)
    x = random_spikes(T, 4, model.input_shape, 0.3, 6)
    with torch.no_grad():
        assert torch.equal(restored(x), model(x))
    assert restored.classifier.fc1.spike.p.form == "euler"


@pytest.mark.parametrize("kind,pool,voting", [("dense", False, 1), ("conv", True, 3)])
def test_from_nir_restores_exactly(kind, pool, voting, tmp_path):
    model = random_net(kind, "lif", 2, seed=8, pool=pool, voting=voting)
    path = write_nir(tmp_path / "m.nir", to_nir(model))
    restored = from_nir(path)
    x = random_spikes(T, 5, model.input_shape, 0.3, 7)
    with torch.no_grad():
        assert torch.equal(restored.step_logits(x), model.step_logits(x))
    assert restored.default_steps == model.default_steps
    assert restored.input_shape == model.input_shape


def test_from_nir_rejects_foreign_graphs(tmp_path):
    graph = nir.NIRGraph(
        nodes={
            "input": nir.Input(input_type={"input": np.array([3])}),
            "lin": nir.Affine(weight=np.ones((2, 3)), bias=np.zeros(2)),
            "output": nir.Output(output_type={"output": np.array([2])}),
        },
        edges=[("input", "lin"), ("lin", "output")],
    )
    with pytest.raises(ValueError, match="written by qifsim.export.to_nir only"):
        from_nir(graph)
    (tmp_path / "bad.nir").write_bytes(b"not hdf5")
    with pytest.raises(ValueError, match="not a readable NIR file"):
        read_nir(tmp_path / "bad.nir")
    with pytest.raises(FileNotFoundError):
        read_nir(tmp_path / "missing.nir")


def test_public_wrappers_round_trip_non_square_global_pooling():
    """qifsim.export.to_nir/from_nir (the package-level names): same defaults as
    qifsim.export.nir, and a global average pool over a non-square map comes back exactly."""
    import inspect

    import qifsim.export as export
    import qifsim.export.nir as nir_module
    from qifsim.models import build_model

    defaults = inspect.signature(nir_module.to_nir).parameters
    torch.manual_seed(0)
    model = build_model("vgg11", neuron="lif", input_size=(16, 32)).eval()
    graph = export.to_nir(model, fold_r=True)
    lif = next(n for n in graph.nodes.values() if type(n).__name__ == "LIF")
    dt = defaults["dt"].default
    beta = float(model.features.conv1.spike.current_parameters().beta)
    np.testing.assert_allclose(np.asarray(lif.tau).reshape(-1)[0], dt / (1 - beta), rtol=1e-6)
    restored = export.from_nir(graph)
    x = torch.rand(2, 2, 2, 16, 32)
    assert torch.equal(model(x), restored(x))
