"""Theory checks of quadratic dendritic integration: two Gaussians (Theorem 1), few-shot."""

from __future__ import annotations

import pytest
import torch
from torch.distributions import MultivariateNormal

from qifsim.quadratic.theory import (
    GaussianPair,
    bayes_accuracy,
    cosine,
    few_shot_digits,
    few_shot_indices,
    fit_quadratic_neuron,
    log_odds,
    matched_mlp,
    optimal_quadratic,
    paper_critical_point,
    random_pair,
    sample_pair,
    two_gaussian_check,
)


def test_optimal_quadratic_is_the_log_likelihood_ratio():
    pair = random_pair(5, seed=3)
    x = torch.randn(200, 5, dtype=torch.float64, generator=torch.Generator().manual_seed(0))
    p1 = MultivariateNormal(pair.mu1, pair.sigma1)
    p2 = MultivariateNormal(pair.mu2, pair.sigma2)
    expected = p2.log_prob(x) - p1.log_prob(x)
    torch.testing.assert_close(log_odds(pair, x), expected, rtol=1e-10, atol=1e-10)
    a, w, b = optimal_quadratic(pair)
    torch.testing.assert_close(a, a.T)
    a2, w2, b2 = paper_critical_point(pair)
    s1, s2 = torch.linalg.inv(pair.sigma1), torch.linalg.inv(pair.sigma2)
    torch.testing.assert_close(a2, s1 - s2)  # the paper's A* = S1^-1 - S2^-1
    torch.testing.assert_close(w2, -2 * (s1 @ pair.mu1 - s2 @ pair.mu2))
    torch.testing.assert_close((a2, w2, b2), (2 * a, 2 * w, 2 * b))


def test_two_gaussians_single_neuron_reaches_a_star_and_bayes():
    """d = 4 (10 distinct entries of A): 5000 samples per class estimate A to about 1% and
    L-BFGS converges in well under a second; the test split of 20000 per class measures the
    accuracy to +-0.3 points, well inside the 2-point tolerance."""
    result = two_gaussian_check(
        random_pair(4, seed=0), n_train_per_class=5000, n_test_per_class=20_000, seed=0
    )
    assert result["cosine_A"] >= 0.95, result
    assert abs(result["accuracy"] - result["bayes_accuracy"]) <= 0.02, result
    assert result["bayes_accuracy"] > 0.7  # a task where the boundary matters
    # the loss minimiser is the log-odds itself: A = A*/2 (see the module docstring)
    assert result["scale_A"] == pytest.approx(1.0, abs=0.1), result
    assert result["loss_learned"] == pytest.approx(result["loss_optimal"], abs=0.01)


def test_few_samples_do_not_find_a_star():
    """The check can fail: with 10 samples per class the learned A is far from A*."""
    result = two_gaussian_check(
        random_pair(4, seed=0), n_train_per_class=10, n_test_per_class=5000, seed=0, max_iter=50
    )
    assert result["cosine_A"] < 0.95


def test_fused_and_reference_neurons_agree():
    g = torch.Generator().manual_seed(2)
    x, y = sample_pair(random_pair(3, seed=2), 500, g)
    ref = fit_quadratic_neuron(x, y, max_iter=200, impl="reference")
    fused = fit_quadratic_neuron(x, y, max_iter=200, impl="fused")
    # both converge to the same optimum (trajectories differ by float rounding)
    torch.testing.assert_close(ref.matrices(), fused.matrices(), rtol=1e-4, atol=1e-6)


def test_bayes_accuracy_is_reproducible_and_sane():
    pair = random_pair(3, seed=1)
    a = bayes_accuracy(pair, n_per_class=20_000, seed=5)
    assert a == bayes_accuracy(pair, n_per_class=20_000, seed=5)
    assert 0.5 < a < 1.0
    same = GaussianPair(pair.mu1, pair.mu1, pair.sigma1, pair.sigma1)
    assert bayes_accuracy(same, n_per_class=1000) == pytest.approx(0.5, abs=1e-12)  # LLR = 0


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"sigma1": -torch.eye(2)}, "positive definite"),
        ({"sigma1": torch.tensor([[1.0, 0.5], [0.0, 1.0]])}, "symmetric"),
        ({"mu2": torch.zeros(3)}, "mu1 and mu2"),
        ({"sigma2": torch.eye(3)}, "sigma2 must be"),
        ({"mu1": torch.tensor([float("nan"), 0.0])}, "NaN"),
    ],
)
def test_gaussian_pair_rejects_bad_parameters(changes, message):
    base = {"mu1": torch.zeros(2), "mu2": torch.ones(2), "sigma1": torch.eye(2),
            "sigma2": 2 * torch.eye(2)}  # fmt: skip
    with pytest.raises(ValueError, match=message):
        GaussianPair(**{**base, **changes})


def test_fit_rejects_bad_shapes():
    with pytest.raises(ValueError, match="expected x"):
        fit_quadratic_neuron(torch.zeros(4, 2), torch.zeros(3))


def test_cosine():
    assert cosine(torch.ones(3), 2 * torch.ones(3)) == pytest.approx(1.0)
    assert cosine(torch.ones(2), torch.tensor([1.0, -1.0])) == pytest.approx(0.0)
    assert cosine(torch.zeros(2), torch.ones(2)) == 0.0


def test_few_shot_indices_are_balanced():
    y = torch.arange(10).repeat(7)
    idx = few_shot_indices(y, 3, torch.Generator().manual_seed(0))
    assert torch.bincount(y[idx]).tolist() == [3] * 10
    with pytest.raises(ValueError, match="fewer than k"):
        few_shot_indices(y, 8, torch.Generator())


def test_mlp_matches_the_parameter_count():
    mlp = matched_mlp(64, 10, 21_450)
    n = sum(p.numel() for p in mlp.parameters())
    assert abs(n - 21_450) <= 64 + 1 + 10


def test_few_shot_digits_runs_small():
    out = few_shot_digits(shots=(3,), seeds=(0,), steps=40)
    assert out["parameters"]["quadratic"] == 10 * (64 * 65 // 2) + 64 * 10 + 10
    ratio = out["parameters"]["mlp"] / out["parameters"]["quadratic"]
    assert 0.99 < ratio < 1.01
    (row,) = out["results"]
    assert row["shots"] == 3 and out["n_test"] > 800
    for key in ("quadratic", "mlp"):
        assert 0.3 < row[key] <= 1.0  # far above chance (0.1) after 30 training samples
    (summary,) = out["summary"]
    assert summary["quadratic_minus_mlp"] == pytest.approx(row["quadratic"] - row["mlp"])


def test_benchmark_quick_run(tmp_path):
    from conftest import quick_benchmark

    result, stdout = quick_benchmark("quadratic_theory", tmp_path / "q.json")
    assert "few-shot digits" in stdout
    (row,) = result["two_gaussians"]
    assert 0.0 <= row["accuracy"] <= 1.0 and 0.0 <= row["qda_accuracy"] <= 1.0
    assert result["targets"]["cosine_A_min"]["value"] == row["cosine_A"]
    assert result["few_shot"]["summary"][0]["shots"] == 2
    table4 = result["table4_digits"]
    assert table4["minus_quadratic"] < table4["original"]  # the quadratic term carries the model
    assert len(table4["trace_terms"]) == 10
