"""Table 4 ablations (minus tr(A Sigma), minus x^T A x) and the eigenvector comparison."""

from __future__ import annotations

import pytest
import torch
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

from qifsim.layers import ChannelQuadratic, QuadraticConv2d, QuadraticLinear
from qifsim.models import build_model
from qifsim.quadratic.analysis import (
    eigen_alignment,
    input_covariances,
    quadratic_ablation,
    quadratic_leaves,
    table4_ablation,
    trace_terms,
)
from qifsim.quadratic.theory import GaussianPair, fit_quadratic_neuron, log_odds, sample_pair


def _loader(x: torch.Tensor, y: torch.Tensor, batch: int = 64) -> DataLoader:
    return DataLoader(TensorDataset(x, y), batch_size=batch)


def _random_linear(d: int = 4, out: int = 3, seed: int = 0) -> QuadraticLinear:
    torch.manual_seed(seed)
    layer = QuadraticLinear(d, out).double()
    with torch.no_grad():
        layer.weight.normal_()
    return layer


def test_covariance_of_a_linear_layer_equals_the_sample_covariance():
    layer = _random_linear()
    x = torch.randn(300, 4, dtype=torch.float64) @ torch.randn(4, 4, dtype=torch.float64)
    y = torch.zeros(300, dtype=torch.long)
    (sigma,) = input_covariances(layer, _loader(x, y)).values()
    torch.testing.assert_close(sigma, torch.cov(x.T, correction=0))


def test_covariance_of_a_conv_layer_pools_centre_pixels():
    torch.manual_seed(1)
    conv = QuadraticConv2d(3, 2, 3, stride=2, padding=1).double()
    x = torch.randn(10, 3, 7, 9, dtype=torch.float64)
    sigmas = input_covariances(conv, _loader(x, torch.zeros(10, dtype=torch.long), 4))
    assert list(sigmas) == ["quadratic"]  # the leaf, not the QuadraticConv2d around it
    centre = conv.centre_pixels(x).permute(0, 2, 3, 1).reshape(-1, 3)
    torch.testing.assert_close(sigmas["quadratic"], torch.cov(centre.T, correction=0))


def test_minus_trace_shifts_each_output_by_tr_a_sigma():
    layer = _random_linear()
    x = torch.randn(50, 4, dtype=torch.float64)
    sigma = torch.cov(x.T)
    original = layer(x)
    with quadratic_ablation(layer, "minus_trace", {"": sigma}):
        ablated = layer(x)
    expected = torch.einsum("oij,ji->o", layer.matrices().detach(), sigma)
    torch.testing.assert_close(original - ablated, expected.expand_as(original))
    torch.testing.assert_close(trace_terms(layer, sigma), expected)
    torch.testing.assert_close(layer(x), original)  # hooks removed on exit


def test_minus_quadratic_keeps_only_the_linear_part():
    layer = _random_linear()
    x = torch.randn(20, 4, dtype=torch.float64)
    with quadratic_ablation(layer, "minus_quadratic"):
        torch.testing.assert_close(layer(x), layer.linear(x))
    conv = QuadraticConv2d(3, 2, 3, padding=1).double()
    with torch.no_grad():
        conv.quadratic.weight.normal_()
    img = torch.randn(2, 3, 5, 6, dtype=torch.float64)
    with quadratic_ablation(conv, "minus_quadratic"):
        torch.testing.assert_close(conv(img), conv.conv(img))


def test_minus_quadratic_on_dit_resnet_equals_a_zero():
    torch.manual_seed(0)
    model = build_model("dit-resnet20", in_channels=3).eval()
    with torch.no_grad():
        model.dit_block.quad.weight.normal_()
    x = torch.randn(1, 2, 3, 32, 32)
    with quadratic_ablation(model, "minus_quadratic"):
        ablated = model(x)
    with torch.no_grad():
        model.dit_block.quad.weight.zero_()
    torch.testing.assert_close(ablated, model(x))


def test_table4_on_gaussians_with_information_only_in_the_covariance():
    """Equal means, different covariances: only the quadratic term separates the classes, so
    dropping x^T A x falls to chance while the original model is near Bayes."""
    sigma2 = torch.tensor([[2.5, 0.8, 0.0], [0.8, 1.0, 0.0], [0.0, 0.0, 0.4]])
    pair = GaussianPair(torch.zeros(3), torch.zeros(3), torch.eye(3), sigma2)
    g = torch.Generator().manual_seed(0)
    x, y = sample_pair(pair, 3000, g)
    xt, yt = sample_pair(pair, 3000, g)
    neuron = fit_quadratic_neuron(x, y, max_iter=100)
    model = nn.Sequential(neuron, nn.Flatten(0))  # one logit -> two-class scores below

    class TwoClass(nn.Module):
        def __init__(self):
            super().__init__()
            self.net = model

        def forward(self, v):
            f = self.net(v)
            return torch.stack([torch.zeros_like(f), f], -1)

    result = table4_ablation(TwoClass(), _loader(x, y, 1000), _loader(xt, yt, 1000))
    bayes = float(((log_odds(pair, xt) > 0).long() == yt).double().mean())
    assert result["original"] > bayes - 0.02 and bayes > 0.6
    assert abs(result["minus_quadratic"] - 0.5) < 0.05
    # minus tr(A Sigma): the score shifts by the constant tr(A Sigma), Sigma of the training inputs
    trace = float((neuron.matrices()[0].detach() * torch.cov(x.T, correction=0)).sum())
    assert result["trace_terms"] == {"net.0": [pytest.approx(trace)]}
    with torch.no_grad():
        shifted = ((neuron(xt)[:, 0] - trace > 0).long() == yt).double().mean()
    assert result["minus_trace"] == pytest.approx(float(shifted))


def test_per_class_covariances_and_eigen_alignment():
    g = torch.Generator().manual_seed(3)
    sigma1 = torch.diag(torch.tensor([4.0, 1.0, 0.5]))
    sigma2 = torch.diag(torch.tensor([0.5, 1.0, 3.0]))
    pair = GaussianPair(torch.zeros(3), torch.zeros(3), sigma1, sigma2)
    x, y = sample_pair(pair, 4000, g)
    layer = _random_linear(3, 2)
    per_class = input_covariances(layer, _loader(x, y, 500), per_class=2)[""]
    assert per_class.shape == (2, 3, 3)
    torch.testing.assert_close(per_class[0], sigma1.double(), atol=0.25, rtol=0.1)
    torch.testing.assert_close(per_class[1], sigma2.double(), atol=0.25, rtol=0.1)
    a = torch.stack([torch.diag(torch.tensor([5.0, 1.0, 1.0])),
                     torch.diag(torch.tensor([0.0, 1.0, -2.0]))]).double()  # fmt: skip
    align = eigen_alignment(a, per_class)
    assert align.shape == (2, 2)
    assert align[0, 0] > 0.99 and align[1, 1] > 0.99  # e1 <-> class 1, e3 <-> class 2
    assert align[0, 1] < 0.1 and align[1, 0] < 0.1


def test_errors_name_the_problem():
    with pytest.raises(ValueError, match="no quadratic layers"):
        quadratic_leaves(nn.Linear(2, 2))
    with pytest.raises(ValueError, match="pixel"):
        quadratic_leaves(QuadraticConv2d(2, 2, 3, mode="pixel"))
    layer = _random_linear()
    with pytest.raises(ValueError, match="mode must be"):
        with quadratic_ablation(layer, "minus_everything"):
            pass
    with pytest.raises(ValueError, match="input_covariances"):
        with quadratic_ablation(layer, "minus_trace"):
            pass
    with pytest.raises(ValueError, match="does not match"):
        trace_terms(layer, torch.eye(3))
    with pytest.raises(ValueError, match="empty"):
        input_covariances(layer, [])
    with pytest.raises(ValueError, match="dimension mismatch"):
        eigen_alignment(torch.zeros(2, 3, 3), torch.zeros(2, 4, 4))
    assert isinstance(quadratic_leaves(ChannelQuadratic(2, 2))[""], ChannelQuadratic)


def test_per_class_covariances_follow_time_first_rows():
    """Rows of MergeTime / [T, B, F] inputs are time-major: labels follow the sample, not T."""
    from qifsim.layers import ChannelQuadratic, MergeTime, QuadraticLinear
    from qifsim.quadratic.analysis import input_covariances

    T, B, F = 3, 4, 2
    y = torch.tensor([0, 1, 0, 1])
    scale = torch.where(y == 0, 1.0, 10.0)
    g = torch.Generator().manual_seed(0)

    class Linear(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.q = QuadraticLinear(F, 1)

        def forward(self, x):
            return self.q(x).mean(0)

    class Conv(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.q = MergeTime(ChannelQuadratic(F, 1))

        def forward(self, x):
            return self.q(x).mean((0, 2, 3, 4))

    for model, shape in ((Linear(), (T, B, F)), (Conv(), (T, B, F, 3, 5))):
        expand = scale.view(1, B, *([1] * (len(shape) - 2)))
        loader = [(torch.randn(*shape, generator=g) * expand, y) for _ in range(150)]
        (sigma,) = input_covariances(model, loader, per_class=2, prepare=lambda t: t).values()
        var = sigma.diagonal(dim1=-2, dim2=-1)
        assert torch.allclose(var[0], torch.ones(F, dtype=var.dtype), rtol=0.15)
        assert torch.allclose(var[1], torch.full((F,), 100.0, dtype=var.dtype), rtol=0.15)
