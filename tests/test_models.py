"""Model zoo (qifsim.models): shapes, parameter counts, layer order, tdBN placement, errors."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from qifsim.layers import TDBatchNorm1d, TDBatchNorm2d
from qifsim.models import (
    MODEL_NAMES,
    PAPER_SETUPS,
    RESIDUAL_ETA,
    BasicBlock,
    TimeSharedDropout,
    build_model,
    count_parameters,
    direct_encode,
    model_table,
)
from qifsim.neurons import LIF, QIF, LIFParameters, QIFParameters

NEURON_TYPES = ("qif", "lif")
TDBN = (TDBatchNorm1d, TDBatchNorm2d)

#: Spiking layers per model (conv + hidden FC layers; the readout does not fire).
SPIKING_COUNTS = {
    "resnet19": 18,
    "vggsnn": 8,
    "vgg11": 8,
    "dvsgesturenet": 6,
    "lenet5": 3,
    "digits-net": 3,
}


def _run(model: nn.Module, x: torch.Tensor) -> torch.Tensor:
    """Forward + backward; checks finite logits and gradients reaching the first layer."""
    logits = model(x)
    F.cross_entropy(logits, torch.zeros(x.shape[1], dtype=torch.long)).backward()
    assert torch.isfinite(logits).all()
    first = next(p for p in model.parameters() if p.dim() == 4)
    assert first.grad is not None and torch.isfinite(first.grad).all()
    assert first.grad.abs().sum() > 0
    return logits


def _events(T: int, B: int, C: int, H: int, W: int, seed: int = 0) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return torch.poisson(torch.full((T, B, C, H, W), 0.3), generator=g)


# -- every architecture builds, runs forward + backward -------------------------------------------


@pytest.mark.parametrize("neuron", NEURON_TYPES)
@pytest.mark.parametrize("name", MODEL_NAMES)
def test_cifar_input_forward_backward(name, neuron):
    torch.manual_seed(0)
    model = build_model(name, neuron, num_classes=10, in_channels=3, input_size=(32, 32))
    x = direct_encode(torch.rand(2, 3, 32, 32), 2)
    assert _run(model, x).shape == (2, 10)


def _dvs48_cases() -> list:
    """Every model x neuron at T=10. ResNet-19 (2-5 s per step at T=10 on 2 cores): QIF at T=2
    in the fast suite, the rest in the slow one."""
    cases = []
    for name in MODEL_NAMES:
        for neuron in NEURON_TYPES:
            if name == "resnet19":
                marks = () if neuron == "qif" else pytest.mark.slow
                cases.append(pytest.param(name, neuron, 2, id=f"{name}-{neuron}-T2", marks=marks))
                cases.append(
                    pytest.param(name, neuron, 10, id=f"{name}-{neuron}", marks=pytest.mark.slow)
                )
            else:
                cases.append(pytest.param(name, neuron, 10, id=f"{name}-{neuron}"))
    return cases


@pytest.mark.parametrize(("name", "neuron", "T"), _dvs48_cases())
def test_dvs48_input_forward_backward(name, neuron, T):
    torch.manual_seed(0)
    model = build_model(name, neuron, num_classes=7, in_channels=2, input_size=(48, 48))
    assert _run(model, _events(T, 1, 2, 48, 48)).shape == (1, 7)


@pytest.mark.parametrize(
    ("name", "neuron"),
    [
        ("dvsgesturenet", "qif"),
        ("lenet5", "lif"),
        ("digits-net", "qif"),
        pytest.param("dvsgesturenet", "lif", marks=pytest.mark.slow),
        pytest.param("resnet19", "qif", marks=pytest.mark.slow),
        pytest.param("resnet19", "lif", marks=pytest.mark.slow),
        pytest.param("vggsnn", "qif", marks=pytest.mark.slow),
        pytest.param("vggsnn", "lif", marks=pytest.mark.slow),
        pytest.param("vgg11", "qif", marks=pytest.mark.slow),
        pytest.param("vgg11", "lif", marks=pytest.mark.slow),
    ],
)
def test_dvs128_input_forward_backward(name, neuron):
    torch.manual_seed(0)
    model = build_model(name, neuron, num_classes=11, in_channels=2, input_size=(128, 128))
    assert _run(model, _events(10, 1, 2, 128, 128)).shape == (1, 11)


@pytest.mark.parametrize("name", MODEL_NAMES)
def test_default_input_sizes_and_attributes(name):
    setup = PAPER_SETUPS[name]
    model = build_model(name, "lif", num_classes=setup.num_classes, in_channels=setup.in_channels)
    assert model.input_size == setup.input_size
    assert model.name == name and model.neuron == "lif" and model.synapse == "linear"
    assert model.default_steps == setup.steps
    assert model.input_shape == (setup.in_channels, *setup.input_size)


# -- parameter counts -----------------------------------------------------------------------------


def _bn(c: int) -> int:
    return 2 * c  # tdBN gamma and xi


def test_resnet19_parameter_count_cifar10():
    n = count_parameters(build_model("resnet19", num_classes=10, in_channels=3))
    assert abs(n - 12.6e6) / 12.6e6 < 0.03, n


def test_resnet19_parameter_count_exact():
    def block(cin, cout, conv_shortcut):
        n = 9 * cin * cout + _bn(cout) + 9 * cout * cout + _bn(cout)
        return n + (cin * cout + _bn(cout) if conv_shortcut else 0)

    expected = 9 * 3 * 128 + _bn(128)
    expected += 3 * block(128, 128, False)
    expected += block(128, 256, True) + 2 * block(256, 256, False)
    expected += block(256, 512, True) + block(512, 512, False)
    expected += 512 * 256 + _bn(256) + 256 * 100 + 100
    model = build_model("resnet19", num_classes=100, in_channels=3)
    assert count_parameters(model) == expected


def test_vggsnn_parameter_count_and_classifier_size():
    chans = [(2, 64), (64, 128), (128, 256), (256, 256), (256, 512)] + [(512, 512)] * 3
    convs = sum(9 * a * b + _bn(b) for a, b in chans)
    for size, final in (((48, 48), 3), ((128, 128), 8), ((64, 32), (4, 2))):
        fh, fw = (final, final) if isinstance(final, int) else final
        model = build_model("vggsnn", num_classes=10, input_size=size)
        assert model.readout.fc.in_features == 512 * fh * fw
        assert count_parameters(model) == convs + 512 * fh * fw * 10 + 10


def test_vgg11_parameter_count_and_variants():
    chans = [(2, 64), (64, 128), (128, 256), (256, 256), (256, 512)] + [(512, 512)] * 3
    expected = sum(9 * a * b + _bn(b) for a, b in chans) + 512 * 101 + 101
    for variant in ("nda", "classic"):
        model = build_model("vgg11", num_classes=101, variant=variant)
        assert count_parameters(model) == expected
    pools = {
        v: sum(isinstance(m, nn.AvgPool2d) for m in build_model("vgg11", variant=v).modules())
        for v in ("nda", "classic")
    }
    assert pools == {"nda": 3, "classic": 5}
    with pytest.raises(ValueError, match="variant"):
        build_model("vgg11", variant="vgg16")


def test_dvsgesturenet_parameter_count_and_voting():
    model = build_model("dvsgesturenet", num_classes=11)
    convs = 9 * 2 * 128 + _bn(128) + 4 * (9 * 128 * 128 + _bn(128))
    fc = 128 * 4 * 4 * 512 + _bn(512)
    assert count_parameters(model) == convs + fc + 512 * 110 + 110
    assert model.readout.fc.out_features == 110
    assert sum(isinstance(m, nn.MaxPool2d) for m in model.modules()) == 5
    # voting: each class is the mean of its 10 consecutive readout outputs
    h = torch.rand(3, 2, 512)
    raw = model.readout.fc(h)
    assert torch.allclose(model.readout(h), raw.view(3, 2, 11, 10).mean(-1))
    plain = build_model("dvsgesturenet", num_classes=11, voting=1)
    assert plain.readout.fc.out_features == 11


def test_lenet5_parameter_count():
    model = build_model("lenet5", num_classes=10, in_channels=1)
    expected = 25 * 6 + _bn(6) + 25 * 6 * 16 + _bn(16) + 400 * 120 + _bn(120) + 1210
    assert count_parameters(model) == expected
    cifar = build_model("lenet5", in_channels=3, input_size=(32, 32))
    assert cifar.classifier.fc1.fc.in_features == 16 * 6 * 6


def test_digits_net_size():
    model = build_model("digits-net")
    assert model.classifier.fc1.fc.in_features == 32 * 9 * 9
    assert count_parameters(model) < 500_000


# -- spiking layers, tdBN placement, residual eta -------------------------------------------------


def _call_order(model: nn.Module, x: torch.Tensor) -> list[tuple[str, nn.Module, tuple, object]]:
    """(name, module, inputs, output) of every leaf-module call, in call order."""
    calls = []
    handles = []
    for name, m in model.named_modules():
        leaf = not list(m.children()) or isinstance(m, (QIF, LIF))
        if leaf and name:
            handles.append(
                m.register_forward_hook(
                    lambda mod, inp, out, name=name: calls.append((name, mod, inp, out))
                )
            )
    try:
        model(x)
    finally:
        for h in handles:
            h.remove()
    return calls


#: Small input sizes for the structure tests (DVSGestureNet needs 32 px per side).
SMALL_SIZES = {"resnet19": (16, 16), "dvsgesturenet": (64, 64)}


def _small(name: str) -> tuple[tuple[int, int], torch.Tensor]:
    """``(input_size, a [T=2, B=2, 2, H, W] event input)`` for structure tests."""
    size = SMALL_SIZES.get(name, (32, 32))
    return size, _events(2, 2, 2, *size)


@pytest.mark.parametrize("name", MODEL_NAMES)
def test_spiking_layers_named_ordered_and_counted(name):
    size, x = _small(name)
    model = build_model(name, "qif", input_size=size)
    layers = model.spiking_layers()
    assert len(layers) == SPIKING_COUNTS[name]
    assert all(isinstance(m, QIF) for m in layers.values())
    assert "readout" not in " ".join(layers)
    calls = [c[0] for c in _call_order(model, x) if isinstance(c[1], QIF)]
    assert calls == list(layers)  # listed in forward order, each called once
    lif = build_model(name, "lif", input_size=size)
    assert list(lif.spiking_layers()) == list(layers)
    assert all(isinstance(m, LIF) for m in lif.spiking_layers().values())


def test_spiking_layer_names():
    names = list(build_model("resnet19", in_channels=3).spiking_layers())
    assert names[0] == "features.stem.spike"
    assert names[1:3] == ["features.layer1.0.spike1", "features.layer1.0.spike2"]
    assert names[-1] == "classifier.fc1.spike"
    assert list(build_model("vggsnn").spiking_layers())[-1] == "features.conv8.spike"


@pytest.mark.parametrize("name", MODEL_NAMES)
def test_tdbn_feeds_every_spiking_layer(name):
    """The call just before every neuron is a tdBN (conv: 2d, FC: 1d) whose output it receives
    (residual adds: the sum of the normalised conv branch and the shortcut)."""
    size, x = _small(name)
    params = QIFParameters(u_th=0.7, u_c=0.6)
    model = build_model(name, "qif", neuron_params=params, input_size=size)
    calls = _call_order(model, x)
    n_neurons = 0
    for i, (cname, mod, inputs, _) in enumerate(calls):
        if not isinstance(mod, QIF):
            continue
        n_neurons += 1
        j = i - 1
        while isinstance(calls[j][1], nn.Identity):  # an identity shortcut is not a layer
            j -= 1
        prev_name, prev, _, prev_out = calls[j]
        assert isinstance(prev, TDBN), f"{cname} follows {prev_name} ({type(prev).__name__})"
        expected_bn = TDBatchNorm2d if inputs[0].dim() == 5 else TDBatchNorm1d
        assert isinstance(prev, expected_bn)
        assert prev.u_th == pytest.approx(0.7)
        if cname.endswith("spike2"):  # residual: bn2(conv2(.)) + shortcut(x)
            block = model.get_submodule(cname.rsplit(".", 1)[0])
            shortcut = block.shortcut
            last = shortcut if isinstance(shortcut, nn.Identity) else shortcut.bn
            bn2_out = next(c[3] for c in calls if c[1] is block.bn2)
            shortcut_out = next(c[3] for c in calls if c[1] is last)
            assert torch.allclose(inputs[0], bn2_out + shortcut_out)
        else:
            assert inputs[0] is prev_out
    assert n_neurons == SPIKING_COUNTS[name]
    assert all(m.u_th == pytest.approx(0.7) for m in model.modules() if isinstance(m, TDBN))


def test_resnet19_residual_eta():
    model = build_model("resnet19", in_channels=3)
    blocks = [m for m in model.modules() if isinstance(m, BasicBlock)]
    assert len(blocks) == 8
    conv_shortcuts = 0
    for block in blocks:
        assert block.bn1.eta == 1.0
        assert block.bn2.eta == pytest.approx(1 / math.sqrt(2))
        if isinstance(block.shortcut, nn.Identity):
            continue
        conv_shortcuts += 1
        assert isinstance(block.shortcut.bn, TDBatchNorm2d)
        assert block.shortcut.bn.eta == pytest.approx(RESIDUAL_ETA)
    assert conv_shortcuts == 2  # first blocks of layer2 and layer3
    etas = [m.eta for m in model.modules() if isinstance(m, TDBN)]
    assert sum(e == RESIDUAL_ETA for e in etas) == 10
    assert all(e in (1.0, RESIDUAL_ETA) for e in etas)


@pytest.mark.parametrize("name", [n for n in MODEL_NAMES if n != "resnet19"])
def test_no_residual_eta_outside_resnet(name):
    model = build_model(name, input_size=SMALL_SIZES.get(name))
    assert all(m.eta == 1.0 for m in model.modules() if isinstance(m, TDBN))


# -- readout, neurons, dropout --------------------------------------------------------------------


def test_readout_is_non_firing_and_averaged_over_time():
    torch.manual_seed(0)
    model = build_model("digits-net", "qif").eval()
    x = _events(4, 3, 2, 34, 34)
    hidden = model.classifier(model.features(x))
    assert set(hidden.unique().tolist()) <= {0.0, 1.0}  # spikes reach the readout
    steps = model.step_logits(x)
    assert steps.shape == (4, 3, 10)
    manual = (hidden @ model.readout.fc.weight.T + model.readout.fc.bias).mean(0)
    assert torch.allclose(model(x), manual, atol=1e-6)
    assert torch.allclose(model(x), steps.mean(0))


def test_default_neuron_parameters_and_neuron_kwargs():
    qif = build_model("lenet5", "qif", in_channels=1)
    p = next(iter(qif.spiking_layers().values())).p
    assert (p.a, p.u_rest, p.u_c, p.u_th) == (0.25, 0.0, 0.5, 0.5)
    lif = build_model("lenet5", "LIF", in_channels=1)
    p = next(iter(lif.spiking_layers().values())).p
    assert (p.beta, p.u_th) == (0.25, 0.5)
    ref = build_model("lenet5", "qif", in_channels=1, neuron_kwargs={"impl": "reference"})
    assert all(m.impl == "reference" for m in ref.spiking_layers().values())
    ref.load_state_dict(qif.state_dict())
    x = _events(2, 4, 1, 28, 28)
    assert torch.allclose(ref.eval()(x), qif.eval()(x), atol=1e-5)


def test_time_shared_dropout():
    torch.manual_seed(0)
    drop = TimeSharedDropout(0.5)
    x = torch.ones(6, 4, 3, 5)
    y = drop(x)
    assert torch.equal(y, y[:1].expand_as(y))  # one mask for all steps
    assert set(y.unique().tolist()) <= {0.0, 2.0}
    assert 0.2 < (y == 0).float().mean() < 0.8
    assert torch.equal(drop.eval()(x), x)
    assert torch.equal(TimeSharedDropout(0.0).train()(x), x)
    with pytest.raises(ValueError, match="dropout"):
        TimeSharedDropout(1.0)


def test_model_dropout_is_active_in_training_only():
    model = build_model("dvsgesturenet", dropout=0.75, input_size=(64, 64))
    drops = [m for m in model.modules() if isinstance(m, TimeSharedDropout)]
    assert len(drops) == 2 and all(d.p == 0.75 for d in drops)
    x = _events(2, 2, 2, 64, 64)
    model.train()
    torch.manual_seed(1)
    a = model(x)
    torch.manual_seed(2)
    assert not torch.allclose(a, model(x))
    model.eval()
    assert torch.equal(model(x), model(x))


def test_direct_encode():
    images = torch.rand(3, 3, 8, 8)
    x = direct_encode(images, 4)
    assert x.shape == (4, 3, 3, 8, 8) and x.is_contiguous()
    assert all(torch.equal(x[t], images) for t in range(4))
    with pytest.raises(ValueError, match="B, C, H, W"):
        direct_encode(torch.rand(3, 8, 8), 2)
    for bad in (0, 2.5, True):
        with pytest.raises(ValueError, match="T"):
            direct_encode(images, bad)


def test_small_batch_overfits():
    """digits-net learns: 25 Adam steps on 10 fixed samples bring the loss well down."""
    torch.manual_seed(0)
    model = build_model("digits-net", "qif")
    x = _events(2, 10, 2, 34, 34)
    y = torch.arange(10)
    opt = torch.optim.Adam(model.parameters(), lr=3e-3)
    losses = []
    for _ in range(25):
        opt.zero_grad()
        loss = F.cross_entropy(model(x), y)
        loss.backward()
        opt.step()
        losses.append(loss.item())
    assert losses[-1] < 0.3 * losses[0]


# -- errors ---------------------------------------------------------------------------------------


def test_unknown_model_name_lists_choices():
    with pytest.raises(ValueError, match="unknown model") as info:
        build_model("resnet50")
    assert all(n in str(info.value) for n in MODEL_NAMES)


def test_bad_neuron_synapse_and_params():
    with pytest.raises(ValueError, match="unknown neuron"):
        build_model("lenet5", neuron="izhikevich")
    with pytest.raises(ValueError, match="unknown synapse"):
        build_model("lenet5", synapse="cubic")
    with pytest.raises(TypeError, match="QIFParameters"):
        build_model("lenet5", neuron="qif", neuron_params=LIFParameters())
    with pytest.raises(TypeError, match="LIFParameters"):
        build_model("lenet5", neuron="lif", neuron_params=QIFParameters())
    with pytest.raises(ValueError, match="scalar u_th"):
        build_model("lenet5", neuron="lif", neuron_params=LIFParameters(u_th=torch.ones(6, 1, 1)))
    with pytest.raises(TypeError):
        build_model("lenet5", no_such_option=1)


def test_bad_inputs():
    model = build_model("vggsnn")  # 2x48x48
    with pytest.raises(ValueError, match="direct_encode"):
        model(torch.rand(2, 2, 48, 48))
    with pytest.raises(ValueError, match="in_channels=2"):
        model(torch.rand(2, 1, 3, 48, 48))
    with pytest.raises(ValueError, match="input_size"):
        model(torch.rand(2, 1, 2, 32, 32))
    with pytest.raises(ValueError, match="too small"):
        build_model("vggsnn", input_size=(8, 8))
    with pytest.raises(ValueError, match="too small"):
        build_model("lenet5", input_size=(8, 8))


# -- model table ----------------------------------------------------------------------------------


def test_model_table():
    rows = model_table()
    assert [r["name"] for r in rows] == list(MODEL_NAMES)
    by_name = {r["name"]: r for r in rows}
    assert by_name["resnet19"]["input"] == "3x32x32, T=2"
    assert by_name["vggsnn"]["input"] == "2x48x48, T=10"
    assert by_name["dvsgesturenet"]["input"] == "2x128x128, T=10"
    assert by_name["lenet5"]["input"] == "1x28x28, T=2"
    for r in rows:
        assert set(r) >= {"name", "dataset", "input", "parameters", "spiking_layers"}
        assert r["spiking_layers"] == SPIKING_COUNTS[r["name"]]
    assert abs(by_name["resnet19"]["parameters"] - 12.6e6) / 12.6e6 < 0.03
    c100 = model_table(["resnet19"], {"resnet19": {"num_classes": 100, "dataset": "CIFAR-100"}})
    assert c100[0]["dataset"] == "CIFAR-100"
    assert c100[0]["parameters"] - by_name["resnet19"]["parameters"] == 90 * 256 + 90


# -- training check on digits-dvs (slow) ----------------------------------------------------------


@pytest.mark.slow
@pytest.mark.parametrize("neuron", NEURON_TYPES)
def test_digits_net_trains_on_digits_dvs(neuron):
    from qifsim.events import frames_batch
    from qifsim.events.digits_dvs import SENSOR_SIZE, load_digits_dvs

    def frames(split):
        events, labels = load_digits_dvs(split, progress=False)
        x = torch.from_numpy(frames_batch(events, SENSOR_SIZE, 10, "count"))
        return x.transpose(0, 1).contiguous(), torch.from_numpy(labels)

    x_train, y_train = frames("train")
    x_test, y_test = frames("test")
    torch.manual_seed(0)
    model = build_model("digits-net", neuron)
    opt = torch.optim.Adam(model.parameters(), lr=1e-3, weight_decay=1e-4)
    for _ in range(4):
        model.train()
        for idx in torch.randperm(x_train.shape[1]).split(64):
            opt.zero_grad()
            F.cross_entropy(model(x_train[:, idx]), y_train[idx]).backward()
            opt.step()
    model.eval()
    with torch.no_grad():
        accuracy = (model(x_test).argmax(1) == y_test).float().mean().item()
    assert accuracy >= 0.85, accuracy
