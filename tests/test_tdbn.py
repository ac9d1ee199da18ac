"""Tests of tdBN (qifsim.layers.tdbn): normalization, running stats, folding, MergeTime."""

from __future__ import annotations

import math

import pytest
import torch
from torch import nn

from qifsim.layers import MergeTime, TDBatchNorm1d, TDBatchNorm2d, fold_batchnorm

ETAS = [1.0, 1.0 / math.sqrt(2.0)]
EPS = 1e-5


def _input(shape: tuple[int, ...], seed: int = 0) -> torch.Tensor:
    """Random float64 input ``[T, B, C, ...]`` with per-channel mean and scale far from 0/1."""
    g = torch.Generator().manual_seed(seed)
    c = shape[2]
    bshape = (1, 1, c) + (1,) * (len(shape) - 3)
    mean = (torch.rand(c, generator=g, dtype=torch.float64) * 6 - 3).view(bshape)
    scale = (torch.rand(c, generator=g, dtype=torch.float64) * 4 + 0.5).view(bshape)
    return torch.randn(shape, generator=g, dtype=torch.float64) * scale + mean


def _reduce_dims(x: torch.Tensor) -> tuple[int, ...]:
    """All dims except the channel dim 2 of ``[T, B, C, ...]``."""
    return tuple(d for d in range(x.dim()) if d != 2)


def _channel_view(v: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    """Reshape a per-channel ``[C]`` vector to broadcast against ``x`` ``[T, B, C, ...]``."""
    return v.view((1, 1, -1) + (1,) * (x.dim() - 3))


def _manual_tdbn(x, mean, var, u_th, eta, gamma, xi, eps=EPS):
    """The tdBN formula, written out: ``γ η u_th (x − mean) / sqrt(var + ε) + ξ``."""
    m, v = _channel_view(mean, x), _channel_view(var, x)
    g, b = _channel_view(gamma, x), _channel_view(xi, x)
    return g * (eta * u_th * (x - m) / torch.sqrt(v + eps)) + b


def _randomize_affine(bn: nn.Module, seed: int = 1) -> None:
    """Set γ and ξ to random values."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        bn.weight.copy_(torch.rand(bn.num_features, generator=g, dtype=bn.weight.dtype) + 0.5)
        bn.bias.copy_(torch.randn(bn.num_features, generator=g, dtype=bn.bias.dtype))


CASES = [
    (TDBatchNorm2d, (4, 3, 5, 6, 7)),
    (TDBatchNorm1d, (4, 3, 5)),
    (TDBatchNorm1d, (4, 3, 5, 8)),
]


@pytest.mark.parametrize("eta", ETAS)
@pytest.mark.parametrize(("cls", "shape"), CASES)
def test_training_output_has_mean_zero_std_eta_uth(cls, shape, eta):
    u_th = 0.7
    x = _input(shape)
    bn = cls(shape[2], u_th=u_th, eta=eta).double().train()
    y = bn(x)
    assert y.shape == x.shape
    dims = _reduce_dims(y)
    mean = y.mean(dim=dims)
    std = y.std(dim=dims, correction=0)
    assert torch.allclose(mean, torch.zeros_like(mean), atol=1e-3)
    assert torch.allclose(std, torch.full_like(std, eta * u_th), atol=1e-3)
    # The input really was off-centre and off-scale, so the test can fail.
    assert (x.mean(dim=dims).abs() > 0.1).any()
    assert ((x.std(dim=dims, correction=0) - eta * u_th).abs() > 0.1).any()


@pytest.mark.parametrize("eta", ETAS)
@pytest.mark.parametrize(("cls", "shape"), CASES)
def test_training_matches_manual_formula(cls, shape, eta):
    u_th = 0.5
    x = _input(shape, seed=3)
    bn = cls(shape[2], u_th=u_th, eta=eta).double().train()
    _randomize_affine(bn)
    dims = _reduce_dims(x)
    mean = x.mean(dim=dims)
    var = ((x - _channel_view(mean, x)) ** 2).mean(dim=dims)  # biased
    expected = _manual_tdbn(x, mean, var, u_th, eta, bn.weight.detach(), bn.bias.detach())
    assert torch.allclose(bn(x), expected, atol=1e-5)


def test_statistics_are_over_time_jointly():
    """Per-time-step normalization would give a different result."""
    x = _input((4, 3, 2, 5, 5))
    x[0] += 10.0  # time step 0 differs strongly from the others
    bn = TDBatchNorm2d(2).double().train()
    y = bn(x)
    # Per-step statistics would centre step 0 at 0; joint ones leave it well above.
    assert y[0].mean() > 0.3
    assert y[1:].mean() < -0.1


@pytest.mark.parametrize("momentum", [0.1, None])
def test_eval_uses_running_stats(momentum):
    u_th, eta = 0.5, 1.0 / math.sqrt(2.0)
    bn = TDBatchNorm2d(3, u_th=u_th, eta=eta, momentum=momentum).double()
    _randomize_affine(bn)
    for seed in range(5):
        bn(_input((3, 2, 3, 4, 4), seed=seed))
    assert int(bn.num_batches_tracked) == 5
    assert not torch.allclose(bn.running_mean, torch.zeros(3, dtype=torch.float64))

    x = _input((3, 2, 3, 4, 4), seed=42)
    bn.eval()
    y = bn(x)
    expected = _manual_tdbn(
        x, bn.running_mean, bn.running_var, u_th, eta, bn.weight.detach(), bn.bias.detach()
    )
    assert torch.allclose(y, expected, atol=1e-6)
    # Eval output differs from the batch-statistics output.
    bn.train()
    y_batch = bn(x)
    assert (y - y_batch).abs().max() > 1e-2


def test_running_stats_cumulative_average():
    """momentum=None: the running mean is the plain average of the batch means."""
    bn = TDBatchNorm1d(4, momentum=None).double()
    xs = [_input((5, 3, 4, 6), seed=s) for s in range(3)]
    for x in xs:
        bn(x)
    batch_means = torch.stack([x.mean(dim=(0, 1, 3)) for x in xs])
    assert torch.allclose(bn.running_mean, batch_means.mean(dim=0), atol=1e-12)


def test_state_dict_compatible_with_torch_batchnorm():
    bn = TDBatchNorm2d(3)
    assert set(bn.state_dict()) == set(nn.BatchNorm2d(3).state_dict())
    ref = nn.BatchNorm2d(3)
    ref.running_mean.fill_(0.3)
    bn.load_state_dict(ref.state_dict())
    assert torch.equal(bn.running_mean, ref.running_mean)


def test_without_affine_scales_by_eta_uth():
    x = _input((3, 4, 2, 5))
    bn = TDBatchNorm1d(2, u_th=2.0, eta=0.5, affine=False).double()
    assert bn.weight is None
    std = bn(x).std(dim=(0, 1, 3), correction=0)
    assert torch.allclose(std, torch.ones_like(std), atol=1e-3)


def test_gradients_flow_to_gamma_and_xi():
    x = _input((3, 2, 4, 5, 5)).float().requires_grad_(True)
    bn = TDBatchNorm2d(4, eta=1.0 / math.sqrt(2.0))
    w = torch.randn_like(x)
    (bn(x) * w).sum().backward()
    for p in (bn.weight, bn.bias, x):
        assert p.grad is not None
        assert torch.isfinite(p.grad).all()
        assert p.grad.abs().sum() > 0


def _random_running_stats(bn: nn.Module, seed: int = 7) -> None:
    """Give ``bn`` random running mean/var and γ, ξ, and put it in eval mode."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        bn.running_mean.copy_(torch.randn(bn.num_features, generator=g) * 2)
        bn.running_var.copy_(torch.rand(bn.num_features, generator=g) * 3 + 0.1)
    _randomize_affine(bn, seed)
    bn.eval()


@pytest.mark.parametrize("bias", [True, False])
@pytest.mark.parametrize(("stride", "padding"), [(1, 0), (2, 1)])
def test_fold_conv2d(bias, stride, padding):
    torch.manual_seed(0)
    conv = nn.Conv2d(3, 6, 3, stride=stride, padding=padding, bias=bias)
    bn = TDBatchNorm2d(6, u_th=0.8, eta=1.0 / math.sqrt(2.0))
    _random_running_stats(bn)
    folded = fold_batchnorm(conv, bn)
    assert folded is not conv and folded.bias is not None
    assert (conv.bias is None) == (not bias)  # original untouched
    x = torch.randn(4, 2, 3, 9, 9)
    with torch.no_grad():
        ref = bn(MergeTime(conv)(x))
        got = MergeTime(folded)(x)
    assert torch.allclose(got, ref, atol=1e-5)
    assert torch.allclose(bn.fold_into(conv).weight, folded.weight)


def test_fold_conv1d():
    torch.manual_seed(1)
    conv = nn.Conv1d(2, 5, 3, padding=1)
    bn = TDBatchNorm1d(5, eta=0.7)
    _random_running_stats(bn)
    x = torch.randn(3, 2, 2, 11)
    with torch.no_grad():
        ref = bn(MergeTime(conv)(x))
        got = MergeTime(fold_batchnorm(conv, bn))(x)
    assert torch.allclose(got, ref, atol=1e-5)


@pytest.mark.parametrize("bias", [True, False])
def test_fold_linear(bias):
    torch.manual_seed(2)
    lin = nn.Linear(7, 4, bias=bias)
    bn = TDBatchNorm1d(4, u_th=0.3)
    _random_running_stats(bn)
    x = torch.randn(5, 3, 7)
    with torch.no_grad():
        ref = bn(lin(x))
        got = fold_batchnorm(lin, bn)(x)
    assert torch.allclose(got, ref, atol=1e-5)


def test_fold_errors():
    bn = TDBatchNorm2d(6)
    with pytest.raises(ValueError, match=r"supported types: torch\.nn\.Conv1d"):
        fold_batchnorm(nn.ConvTranspose2d(3, 6, 3), bn)
    with pytest.raises(ValueError, match="channel mismatch"):
        fold_batchnorm(nn.Conv2d(3, 5, 3), bn)
    no_stats = TDBatchNorm2d(6, track_running_stats=False)
    with pytest.raises(ValueError, match="without running statistics"):
        fold_batchnorm(nn.Conv2d(3, 6, 3), no_stats)


def test_merge_time_shapes():
    x = torch.randn(4, 3, 2, 8, 8)
    conv = MergeTime(nn.Conv2d(2, 5, 3, stride=2, padding=1))
    assert conv(x).shape == (4, 3, 5, 4, 4)
    pooled = MergeTime(nn.AvgPool2d(2))(x)
    assert pooled.shape == (4, 3, 2, 4, 4)
    flat = MergeTime(nn.Flatten())(pooled)
    assert flat.shape == (4, 3, 32)
    assert MergeTime(nn.Linear(32, 10))(flat).shape == (4, 3, 10)
    # Each (t, b) sample is processed independently.
    assert torch.allclose(pooled[1, 2], nn.AvgPool2d(2)(x[1, 2]))
    with pytest.raises(ValueError, match=r"\[T, B, \.\.\.\]"):
        MergeTime(nn.Flatten())(torch.randn(5))


def test_bad_input_shapes_raise():
    bn2 = TDBatchNorm2d(3)
    with pytest.raises(ValueError, match=r"\[T, B, C, H, W\].*got shape \(2, 3, 4, 4\)"):
        bn2(torch.randn(2, 3, 4, 4))
    with pytest.raises(
        ValueError, match=r"\[T, B, C, H, W\] with C=3, got shape \(2, 2, 4, 4, 4\)"
    ):
        bn2(torch.randn(2, 2, 4, 4, 4))
    bn1 = TDBatchNorm1d(3)
    with pytest.raises(ValueError, match=r"\[T, B, C\] or \[T, B, C, L\].*got shape \(2, 3\)"):
        bn1(torch.randn(2, 3))
    with pytest.raises(ValueError, match=r"got shape \(2, 2, 5\)"):
        bn1(torch.randn(2, 2, 5))


@pytest.mark.parametrize("u_th", [0.0, -1.0, float("nan"), float("inf")])
def test_bad_u_th_raises(u_th):
    with pytest.raises(ValueError, match="u_th must be finite and > 0"):
        TDBatchNorm2d(3, u_th=u_th)


@pytest.mark.parametrize("eta", [0.0, -0.5, float("nan")])
def test_bad_eta_raises(eta):
    with pytest.raises(ValueError, match="eta must be finite and > 0"):
        TDBatchNorm1d(3, eta=eta)
