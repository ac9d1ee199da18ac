"""CIFAR ResNets and Dit-ResNets (ANN), quadratic param groups, the CIFAR presets and schedule."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from qifsim.layers import ChannelQuadratic, QuadraticLinear
from qifsim.models import build_model, count_parameters
from qifsim.models.dit_resnet import CifarBlock, PadShortcut
from qifsim.quadratic.params import quadratic_norms, quadratic_param_groups
from qifsim.train import TrainConfig
from qifsim.train.config import ConfigError
from qifsim.train.optim import MultiStep, make_optimizer, make_scheduler
from qifsim.train.presets import load_preset

#: He et al. 2016, Table 6: 0.27 M, 0.46 M, 0.85 M, 1.7 M (option-A shortcuts).
HE_PARAMS = {20: 0.27e6, 32: 0.46e6, 56: 0.85e6, 110: 1.7e6}


@pytest.mark.parametrize("depth", sorted(HE_PARAMS))
def test_parameter_counts(depth):
    plain = count_parameters(build_model(f"resnet{depth}", in_channels=3))
    assert abs(plain - HE_PARAMS[depth]) / HE_PARAMS[depth] < 0.02, plain
    dit = count_parameters(build_model(f"dit-resnet{depth}", in_channels=3))
    # + the 32x32 symmetric A of 32 outputs (distinct entries only) + LayerNorm over [16, 16]
    assert dit - plain == 32 * (32 * 33 // 2) + 2 * 16 * 16


def test_resnet20_exact_count():
    assert count_parameters(build_model("resnet20", in_channels=3)) == 269_722


def test_dit_placement_second_layer_of_first_block_of_stage2():
    model = build_model("dit-resnet32", in_channels=3)
    quads = [n for n, m in model.named_modules() if isinstance(m, ChannelQuadratic)]
    assert quads == ["features.module.layer2.0.quad"]
    block = model.dit_block
    assert isinstance(block, CifarBlock) and block.quad_norm.normalized_shape == (16, 16)
    assert (block.quad.in_channels, block.quad.out_channels) == (32, 32)
    assert torch.count_nonzero(block.quad.matrices()) == 0  # A starts at zero
    assert model.name == "dit-resnet32" and model.neuron == "none"
    assert model.synapse == "quadratic" and model.spiking_layers() == {}
    assert build_model("resnet32", in_channels=3).dit_block is None


def test_dit_block_computes_the_paper_formula():
    torch.manual_seed(0)
    block = CifarBlock(16, 32, stride=2, quadratic_size=(8, 8), quadratic_kwargs={})
    with torch.no_grad():
        block.quad.weight.normal_()
        block.quad_norm.weight.uniform_(0.5, 1.5)
    block.eval()
    x = torch.randn(3, 16, 16, 16)
    out = F.relu(block.bn1(block.conv1(x)))
    ln = F.layer_norm(out, (8, 8), block.quad_norm.weight, block.quad_norm.bias)
    quad = torch.einsum("nihw,oij,njhw->nohw", ln, block.quad.matrices(), ln)
    shortcut = F.pad(x[:, :, ::2, ::2], (0, 0, 0, 0, 8, 8))
    expected = F.relu((block.bn2(block.conv2(out)) + quad) / 2 + shortcut)
    torch.testing.assert_close(block(x), expected, rtol=1e-4, atol=1e-4)


def test_pad_shortcut():
    x = torch.randn(2, 4, 5, 7)
    y = PadShortcut(4, 8, 2)(x)
    assert y.shape == (2, 8, 3, 4)
    assert torch.equal(y[:, 2:6], x[:, :, ::2, ::2])
    assert torch.count_nonzero(y[:, :2]) == 0 and torch.count_nonzero(y[:, 6:]) == 0
    with pytest.raises(ValueError, match="even"):
        PadShortcut(4, 7, 2)


def test_time_first_input_and_sizes():
    torch.manual_seed(0)
    model = build_model("dit-resnet20", in_channels=3).eval()
    x = torch.randn(2, 3, 32, 32)
    one = model(x[None])
    assert one.shape == (2, 10)
    torch.testing.assert_close(model(x[None].repeat(3, 1, 1, 1, 1)), one)  # T averages
    with pytest.raises(ValueError, match="input_size"):
        model(torch.randn(1, 2, 3, 40, 40))  # the LayerNorm is built for 16x16
    with pytest.raises(ValueError, match=r"\[T, B, C, H, W\]"):
        model(x)
    plain = build_model("resnet20", in_channels=3, num_classes=7)
    assert plain(torch.randn(1, 2, 3, 40, 40)).shape == (2, 7)  # global pooling: any size
    assert build_model("dit-resnet20", in_channels=2, input_size=(34, 34)).dit_block.quad_norm
    for name in ("resnet20", "dit-resnet20"):
        with pytest.raises(ValueError, match="is an ANN"):
            build_model(name, in_channels=3, synapse="quadratic")
    with pytest.raises(TypeError, match="depth"):
        build_model("resnet20", in_channels=3, depth=32)


def test_param_groups_of_dit_resnet():
    model = build_model("dit-resnet20", in_channels=3)
    groups = quadratic_param_groups(model, lr=0.1, weight_decay=1e-4)
    base, quad = groups
    assert (base["name"], base["lr"], quad["name"], quad["lr"]) == ("base", 0.1, "quadratic", 1.0)
    assert base["weight_decay"] == quad["weight_decay"] == 1e-4
    block = model.dit_block
    expected = {id(block.quad.weight), id(block.quad_norm.weight), id(block.quad_norm.bias)}
    assert {id(p) for p in quad["params"]} == expected
    everything = [p for g in groups for p in g["params"]]
    assert len(everything) == len({id(p) for p in everything}) == len(list(model.parameters()))
    assert quadratic_norms(model) == {"features.module.layer2.0.quad_norm": block.quad_norm}
    plain = quadratic_param_groups(build_model("resnet20", in_channels=3), 0.1)
    assert [g["name"] for g in plain] == ["base"]


def test_param_groups_find_a_layernorm_in_front_of_a_quadratic_layer():
    net = nn.Sequential(nn.Linear(3, 4), nn.LayerNorm(4), QuadraticLinear(4, 2, rank=2))
    quad = quadratic_param_groups(net, 0.01, quad_lr_scale=5, quad_weight_decay=0.0)[1]
    names = {id(p): n for n, p in net.named_parameters()}
    assert sorted(names[id(p)] for p in quad["params"]) == ["1.bias", "1.weight", "2.u", "2.v"]
    assert quad["lr"] == pytest.approx(0.05) and quad["weight_decay"] == 0.0
    with pytest.raises(ValueError, match="quad_lr_scale"):
        quadratic_param_groups(net, 0.1, quad_lr_scale=0)
    with pytest.raises(ValueError, match="lr"):
        quadratic_param_groups(net, float("nan"))
    with pytest.raises(ValueError, match="weight_decay"):
        quadratic_param_groups(net, 0.1, weight_decay=-1)
    with pytest.raises(ValueError, match="no trainable"):
        quadratic_param_groups(nn.ReLU(), 0.1)


def test_dit_resnet20_trains_an_epoch_on_cpu_with_the_paper_groups():
    """256 synthetic 32x32 images of 4 classes (a class template plus noise), batch 32, the
    paper's optimiser (SGD 0.1, momentum 0.9, wd 1e-4, A and its LayerNorm at 1.0)."""
    torch.manual_seed(0)
    templates = torch.randn(4, 3, 32, 32)
    labels = torch.arange(256) % 4
    images = templates[labels] + 0.8 * torch.randn(256, 3, 32, 32)
    model = build_model("dit-resnet20", in_channels=3, num_classes=4)
    config = TrainConfig(
        model="dit-resnet20", optimizer="sgd", lr=0.1, momentum=0.9, weight_decay=1e-4,
        schedule="multistep", milestones=(1,), epochs=2,
    )  # fmt: skip
    optimizer = make_optimizer(config, model)
    assert [g["lr"] for g in optimizer.param_groups] == [0.1, 1.0]
    scheduler = make_scheduler(config, optimizer, steps_per_epoch=8)

    def full_loss() -> float:  # train mode: batch statistics, as during the epoch
        with torch.no_grad():
            return float(F.cross_entropy(model(images[None]), labels))

    model.train()
    before = full_loss()
    for step in range(8):
        batch = slice(32 * step, 32 * step + 32)
        loss = F.cross_entropy(model(images[batch][None]), labels[batch])
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        scheduler.step()
    after = full_loss()
    assert after < 0.8 * before, (before, after)
    assert model.dit_block.quad.matrices().abs().max() > 1e-3  # A moved from zero
    assert [g["lr"] for g in optimizer.param_groups] == pytest.approx([0.01, 0.1])  # milestone 1


def test_fit_builds_the_quadratic_groups(tmp_path):
    from qifsim.train import fit
    from qifsim.train.checkpoint import load_checkpoint

    config = TrainConfig(
        name="dit", model="dit-resnet20", dataset="digits-dvs", n_samples=16, T=2, epochs=2,
        batch_size=16, optimizer="sgd", lr=0.05, schedule="multistep", milestones=(1,),
        quad_lr_scale=4.0,
    )  # fmt: skip
    out = fit(config, tmp_path, progress=False, tensorboard=False)
    assert out["epochs_completed"] == 2 and out["mean_spike_rate"] is None
    groups = load_checkpoint(tmp_path / "last.pt")["optimizer"]["param_groups"]
    assert [g["name"] for g in groups] == ["base", "quadratic"]
    assert [g["lr"] for g in groups] == pytest.approx([0.005, 0.02])  # /10 after epoch 1


def test_multistep_schedule_and_config_checks():
    factor = MultiStep((2, 4), steps_per_epoch=3)
    assert [factor(k) for k in (0, 5, 6, 11, 12, 30)] == pytest.approx([1, 1, 0.1, 0.1, 0.01, 0.01])
    with pytest.raises(ConfigError, match="needs milestones"):
        TrainConfig(schedule="multistep")
    with pytest.raises(ConfigError, match="increasing"):
        TrainConfig(schedule="multistep", milestones=(3, 2), epochs=5)
    with pytest.raises(ConfigError, match="< epochs"):
        TrainConfig(schedule="multistep", milestones=(5,), epochs=5)
    with pytest.raises(ConfigError, match="quad_lr_scale"):
        TrainConfig(quad_lr_scale=0)
    c = TrainConfig(schedule="multistep", milestones=[1, 2], epochs=3)
    assert c.milestones == (1, 2) and TrainConfig.from_dict(c.to_dict()) == c


@pytest.mark.parametrize("name", ["dit-resnet20-cifar10", "resnet20-cifar10"])
def test_cifar_presets_follow_the_paper(name):
    c = load_preset(name)
    assert c.model == name.removesuffix("-cifar10") and c.dataset == "cifar10"
    assert (c.optimizer, c.lr, c.momentum, c.weight_decay) == ("sgd", 0.1, 0.9, 1e-4)
    assert (c.schedule, c.milestones, c.epochs, c.batch_size, c.T) == (
        "multistep",
        (80, 120),
        160,
        128,
        1,
    )
    assert c.lr * c.quad_lr_scale == pytest.approx(1.0)  # A and its LayerNorm at lr 1.0
