"""Spiking models with quadratic synapses: placement, validation, training, checkpoints, preset."""

from __future__ import annotations

from collections import OrderedDict

import pytest
import torch
from torch import nn
from train_helpers import tiny_config

from qifsim.events.digits_dvs import DigitsDVS
from qifsim.layers import MergeTime, QuadraticConv2d, QuadraticLinear
from qifsim.models import build_model
from qifsim.models.factory import (
    QUADRATIC_AUTO_LAYERS,
    apply_quadratic_synapses,
    resolve_quadratic_layers,
)
from qifsim.train import TrainConfig, fit
from qifsim.train.checkpoint import load_checkpoint, load_model_state
from qifsim.train.presets import load_preset


def _quadratic_modules(model):
    kinds = (QuadraticConv2d, QuadraticLinear)
    return {n: m for n, m in model.named_modules() if isinstance(m, kinds)}


@pytest.mark.parametrize("name", ["digits-net", "lenet5", "dvsgesturenet"])
def test_auto_placement_is_spiking_bias_free_and_starts_as_the_linear_model(name):
    in_ch = 1 if name == "lenet5" else 2
    size = {"dvsgesturenet": (32, 32), "digits-net": (18, 18)}.get(name)
    torch.manual_seed(0)
    plain = build_model(name, in_channels=in_ch, input_size=size).eval()
    torch.manual_seed(0)
    quad = build_model(name, in_channels=in_ch, input_size=size, synapse="quadratic").eval()
    assert quad.quadratic_layers == QUADRATIC_AUTO_LAYERS[name]
    mods = _quadratic_modules(quad)
    assert len(mods) == 1
    (mod,) = mods.values()
    assert mod.spiking and mod.rank is None
    assert torch.count_nonzero(mod.matrices()) == 0
    if isinstance(mod, QuadraticConv2d):
        assert mod.conv.bias is None
    h, w = size or quad.input_size
    x = (torch.rand(2, 3, in_ch, h, w, generator=torch.Generator().manual_seed(1)) < 0.3).float()
    # A = 0 at init, linear weights copied: the same outputs as the plain model
    torch.testing.assert_close(quad(x), plain(x))


def test_auto_placements_of_the_large_models_are_valid():
    for name in ("vggsnn", "vgg11", "resnet19"):
        model = build_model(name, synapse="quadratic", input_size=(32, 32))
        mods = _quadratic_modules(model)
        assert [n.rsplit(".module", 1)[0] for n in mods] == list(QUADRATIC_AUTO_LAYERS[name])


def test_explicit_layers_and_names():
    model = build_model(
        "digits-net",
        channels=(4, 8),
        hidden=16,
        synapse="quadratic",
        quadratic_layers=["features.conv2.conv.module", "classifier.fc1.fc", "readout.fc"],
    )
    assert model.quadratic_layers == ("features.conv2.conv", "classifier.fc1.fc", "readout.fc")
    assert isinstance(model.features.conv2.conv, MergeTime)
    assert isinstance(model.features.conv2.conv.module, QuadraticConv2d)
    assert isinstance(model.classifier.fc1.fc, QuadraticLinear)
    assert model.classifier.fc1.fc.spiking and model.classifier.fc1.fc.linear.bias is None


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"quadratic_layers": ["features.conv1.conv"]}, "first synapse"),
        ({"quadratic_layers": ["features.conv9.conv"]}, "not a synapse"),
        ({"quadratic_layers": ["features.conv2.bn"]}, "not a synapse"),
        ({"quadratic_layers": "features.conv2.conv"}, "list of layer names"),
        ({"quadratic_layers": []}, "empty"),
        ({"quadratic_layers": ["readout.fc", "readout.fc"]}, "twice"),
    ],
)
def test_bad_placements_raise(kwargs, match):
    with pytest.raises(ValueError, match=match):
        build_model("digits-net", synapse="quadratic", **kwargs)


def test_non_binary_inputs_and_layernorm_are_refused():
    with pytest.raises(ValueError, match="AvgPool2d precedes"):
        build_model("lenet5", in_channels=1, synapse="quadratic",
                    quadratic_layers=["features.conv2.conv"])  # fmt: skip
    with pytest.raises(ValueError, match="AvgPool2d precedes"):  # through flatten and dropout
        build_model("vggsnn", synapse="quadratic", quadratic_layers=["readout.fc"])
    with pytest.raises(ValueError, match="needs synapse='quadratic'"):
        build_model("digits-net", quadratic_layers="auto")
    with pytest.raises(ValueError, match="unknown synapse"):
        build_model("digits-net", synapse="cubic")
    net = nn.Sequential(
        OrderedDict(fc1=nn.Linear(4, 8), spike=nn.ReLU(), ln=nn.LayerNorm(8), fc2=nn.Linear(8, 3))
    )
    with pytest.raises(ValueError, match="LayerNorm in front"):
        resolve_quadratic_layers(net, "custom", ["fc2"])
    with pytest.raises(ValueError, match="no default quadratic placement"):
        resolve_quadratic_layers(net, "custom", "auto")


def _batch(n: int = 24):
    data = DigitsDVS("train", n_frames=4, progress=False, n_samples=n)
    frames = torch.stack([data[i][0] for i in range(n)]).transpose(0, 1)  # [T, B, 2, 34, 34]
    labels = torch.tensor([data[i][1] for i in range(n)])
    return frames, labels


def test_spiking_quadratic_model_trains():
    torch.manual_seed(0)
    model = build_model("digits-net", synapse="quadratic", channels=(4, 8), hidden=16)
    quad = model.features.conv2.conv.module
    frames, labels = _batch()
    opt = torch.optim.Adam(model.parameters(), lr=5e-3)
    losses = []
    for _ in range(8):
        loss = nn.functional.cross_entropy(model(frames), labels)
        opt.zero_grad()
        loss.backward()
        assert quad.quadratic.weight.grad.abs().sum() > 0  # the spike-pair term learns
        opt.step()
        losses.append(loss.item())
    assert min(losses[-3:]) < losses[0] - 0.1
    a = quad.matrices()
    assert torch.count_nonzero(a) > 0
    assert torch.count_nonzero(torch.diagonal(a, dim1=-2, dim2=-1)) == 0


def test_trainer_checkpoint_round_trip(tmp_path):
    config = tiny_config(
        synapse="quadratic", quadratic_layers=["features.conv2.conv"], epochs=1, n_samples=32
    )
    assert TrainConfig.from_dict(config.to_dict()) == config
    final = fit(config, tmp_path, progress=False)
    assert 0.0 <= final["test_acc"] <= 1.0
    ckpt = load_checkpoint(tmp_path / "last.pt")
    saved = TrainConfig.from_dict(ckpt["config"])
    assert saved.synapse == "quadratic" and saved.quadratic_layers == ("features.conv2.conv",)
    key = "features.conv2.conv.module.quadratic.weight"
    state = ckpt["model"]
    assert key in state and torch.count_nonzero(state[key]) > 0
    rebuilt = build_model("digits-net", channels=(4, 8), hidden=16, synapse="quadratic",
                          quadratic_layers=saved.quadratic_layers)  # fmt: skip
    load_model_state(rebuilt, state)
    torch.testing.assert_close(rebuilt.state_dict()[key], state[key])
    with pytest.raises(Exception, match="quadratic_layers needs synapse"):
        tiny_config(quadratic_layers=["features.conv2.conv"])
    with pytest.raises(Exception, match="quadratic_layers must be"):
        tiny_config(synapse="quadratic", quadratic_layers=[""])


def test_preset_validates_and_builds():
    config = load_preset("digits-qif-quadratic")
    assert config.synapse == "quadratic" and config.model == "digits-net"
    assert config.quadratic_layers == ("features.conv2.conv",)
    model = build_model(config.model, synapse=config.synapse,
                        quadratic_layers=config.quadratic_layers)  # fmt: skip
    assert isinstance(model.features.conv2.conv.module, QuadraticConv2d)


def test_apply_rejects_non_synapse():
    model = build_model("digits-net")
    with pytest.raises(ValueError, match="not a Conv2d/Linear"):
        apply_quadratic_synapses(model, ["features.conv2.bn"])


@pytest.mark.parametrize(
    ("name", "layer"), [("resnet19", "classifier.fc1.fc"), ("vgg11", "readout.fc")]
)
def test_layers_after_global_average_pooling_are_refused(name, layer):
    with pytest.raises(ValueError, match="GlobalAvgPool precedes it"):
        build_model(name, synapse="quadratic", quadratic_layers=[layer])


@pytest.mark.parametrize("name", ["digits-net", "dit-resnet20"])
def test_quadratic_models_run_under_bf16_autocast(name):
    """Mixed precision (TrainConfig amp="bf16"): the quadratic term computes in bf16."""
    model = build_model(name, synapse="quadratic") if name == "digits-net" else build_model(name)
    c, h, w = model.input_shape
    x = torch.rand(2, 2, c, h, w)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        logits = model(x)
    assert logits.dtype == torch.bfloat16 and torch.isfinite(logits.float()).all()
    logits.float().sum().backward()
    from qifsim.quadratic.params import quadratic_modules

    params = {id(p): p for m in quadratic_modules(model).values() for p in m.quadratic_parameters()}
    assert params and all(p.dtype == torch.float32 and p.grad is not None for p in params.values())
