"""Theory checks of quadratic dendritic integration (the Dit paper, Section 3).

Two Gaussians
-------------
Class 1 is ``N(mu1, S1)``, class 2 ``N(mu2, S2)``, equal priors. The Bayes
classifier thresholds the log-likelihood ratio, which is itself a quadratic
neuron ``f(x) = x^T A x + w.x + b``::

    log p2(x)/p1(x) = 1/2 x^T (S1^-1 - S2^-1) x  -  (S1^-1 mu1 - S2^-1 mu2).x
                      + 1/2 (mu1^T S1^-1 mu1 - mu2^T S2^-1 mu2 + log(|S1| / |S2|))

(expand ``-1/2 (x-mu)^T S^-1 (x-mu) - 1/2 log|S|`` for both classes and
subtract). A neuron trained with the logistic loss, ``f`` the logit of class
2, is well specified, so its population minimiser is ``f = log p2/p1``:

    A_opt = (S1^-1 - S2^-1) / 2,  w_opt = -(S1^-1 mu1 - S2^-1 mu2),
    b_opt = (mu1^T S1^-1 mu1 - mu2^T S2^-1 mu2 + log(|S1|/|S2|)) / 2.

The paper's Theorem 1 states ``A* = S1^-1 - S2^-1``, ``w* = -2(...)``,
``b* = ...``: twice these, i.e. the same decision boundary ``f = 0`` (the
factor 2 is the paper's constant; the minimiser of the loss as written is the
log-odds above). The check therefore compares *directions*: the cosine
similarity between the learned ``A`` and ``A*`` (scale-free), and reports the
scale ratio ``||A|| / ||A_opt||`` (about 1 when the fit is good).

Few-shot digits
---------------
Ten quadratic neurons (one per class, :class:`~qifsim.layers.QuadraticLinear`)
against an MLP with about as many parameters, trained the same way on ``k``
samples per class of sklearn's 8x8 digits (bundled with scikit-learn, nothing
is downloaded), several seeds; the paper's Figure 2 makes this comparison on
MNIST (784 inputs; here only when a local copy exists).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

# -- two Gaussians ---------------------------------------------------------------------------


@dataclass(frozen=True)
class GaussianPair:
    """Two Gaussian classes: ``N(mu1, sigma1)`` (label 0) and ``N(mu2, sigma2)`` (label 1).

    Attributes:
        mu1, mu2: means ``[d]``.
        sigma1, sigma2: symmetric positive-definite covariances ``[d, d]``.
    All float64.
    """

    mu1: torch.Tensor
    mu2: torch.Tensor
    sigma1: torch.Tensor
    sigma2: torch.Tensor

    def __post_init__(self) -> None:
        setter = object.__setattr__
        for name in ("mu1", "mu2", "sigma1", "sigma2"):
            value = torch.as_tensor(getattr(self, name), dtype=torch.float64)
            if not torch.isfinite(value).all():
                raise ValueError(f"{name} holds NaN or infinite values")
            setter(self, name, value)
        d = self.mu1.shape[0] if self.mu1.dim() == 1 else -1
        if d < 1 or self.mu2.shape != (d,):
            raise ValueError(
                f"mu1 and mu2 must both be vectors [d], got {tuple(self.mu1.shape)} "
                f"and {tuple(self.mu2.shape)}"
            )
        for name in ("sigma1", "sigma2"):
            s = getattr(self, name)
            if s.shape != (d, d):
                raise ValueError(f"{name} must be [d, d] = [{d}, {d}], got {tuple(s.shape)}")
            if not torch.allclose(s, s.T, atol=1e-10, rtol=1e-8):
                raise ValueError(f"{name} must be symmetric")
            if torch.linalg.eigvalsh(s).min() <= 0:
                raise ValueError(f"{name} must be positive definite (smallest eigenvalue <= 0)")

    @property
    def dim(self) -> int:
        """Input dimension ``d``."""
        return int(self.mu1.shape[0])


def random_spd(d: int, generator: torch.Generator, low: float = 0.3, high: float = 3.0):
    """A random ``[d, d]`` SPD matrix ``Q diag(lambda) Q^T``, eigenvalues log-uniform in
    ``[low, high]`` and ``Q`` a random rotation (float64)."""
    q, _ = torch.linalg.qr(torch.randn(d, d, generator=generator, dtype=torch.float64))
    u = torch.rand(d, generator=generator, dtype=torch.float64)
    eig = torch.exp(math.log(low) + u * (math.log(high) - math.log(low)))
    s = (q * eig) @ q.T
    return (s + s.T) / 2


def random_pair(d: int = 4, seed: int = 0, separation: float = 0.5) -> GaussianPair:
    """Two Gaussians with random means (``N(0, separation^2 I)``) and random SPD covariances."""
    if d < 1:
        raise ValueError(f"d must be >= 1, got {d}")
    g = torch.Generator().manual_seed(seed)
    mu1 = separation * torch.randn(d, generator=g, dtype=torch.float64)
    mu2 = separation * torch.randn(d, generator=g, dtype=torch.float64)
    return GaussianPair(mu1, mu2, random_spd(d, g), random_spd(d, g))


def sample_pair(
    pair: GaussianPair, n_per_class: int, generator: torch.Generator
) -> tuple[torch.Tensor, torch.Tensor]:
    """``(x [2n, d] float64, y [2n] int64)``: ``n`` samples of class 1 (label 0), then class 2."""
    if n_per_class < 1:
        raise ValueError(f"n_per_class must be >= 1, got {n_per_class}")
    xs = []
    for mu, sigma in ((pair.mu1, pair.sigma1), (pair.mu2, pair.sigma2)):
        z = torch.randn(n_per_class, pair.dim, generator=generator, dtype=torch.float64)
        xs.append(mu + z @ torch.linalg.cholesky(sigma).T)
    y = torch.cat([torch.zeros(n_per_class), torch.ones(n_per_class)]).long()
    return torch.cat(xs), y


def optimal_quadratic(pair: GaussianPair) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """``(A_opt [d, d], w_opt [d], b_opt [])`` with ``x^T A x + w.x + b = log p2(x)/p1(x)``.

    The paper's Theorem-1 values ``(A*, w*, b*)`` are twice these (see the module docstring).
    """
    p1, p2 = torch.linalg.inv(pair.sigma1), torch.linalg.inv(pair.sigma2)
    a = (p1 - p2) / 2
    w = -(p1 @ pair.mu1 - p2 @ pair.mu2)
    b = (
        pair.mu1 @ p1 @ pair.mu1
        - pair.mu2 @ p2 @ pair.mu2
        + torch.logdet(pair.sigma1)
        - torch.logdet(pair.sigma2)
    ) / 2
    return (a + a.T) / 2, w, b


def paper_critical_point(pair: GaussianPair) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """The paper's Theorem 1: ``A* = S1^-1 - S2^-1``, ``w* = -2(S1^-1 mu1 - S2^-1 mu2)``, ``b*``."""
    a, w, b = optimal_quadratic(pair)
    return 2 * a, 2 * w, 2 * b


def log_odds(pair: GaussianPair, x: torch.Tensor) -> torch.Tensor:
    """``log p2(x)/p1(x)`` for ``x [n, d]`` -> ``[n]`` (the Bayes classifier's score)."""
    a, w, b = optimal_quadratic(pair)
    x = x.to(torch.float64)
    return torch.einsum("ni,ij,nj->n", x, a, x) + x @ w + b


def bayes_accuracy(pair: GaussianPair, n_per_class: int = 200_000, seed: int = 1) -> float:
    """Accuracy of the Bayes classifier ``log p2/p1 > 0`` (equal priors), by Monte Carlo.

    Standard error about ``sqrt(acc (1 - acc) / (2 n))`` (0.0008 at the default n).
    """
    g = torch.Generator().manual_seed(seed)
    x, y = sample_pair(pair, n_per_class, g)
    return float(((log_odds(pair, x) > 0).long() == y).double().mean())


def fit_quadratic_neuron(
    x: torch.Tensor, y: torch.Tensor, max_iter: int = 200, impl: str = "reference"
) -> nn.Module:
    """A single :class:`~qifsim.layers.QuadraticLinear` ``(d, 1)`` neuron fitted to ``(x, y)``.

    Full-batch L-BFGS (strong-Wolfe line search) on the mean logistic loss, the
    neuron's output the logit of label 1, float64, A starting at zero.

    Args:
        x: ``[n, d]`` inputs.
        y: ``[n]`` labels in {0, 1}.
        max_iter: L-BFGS iterations.
        impl: the quadratic layer's implementation (``"reference"`` or ``"fused"``).
    """
    from ..layers.quadratic import QuadraticLinear

    if x.dim() != 2 or y.shape != (x.shape[0],):
        raise ValueError(f"expected x [n, d] and y [n], got {tuple(x.shape)} and {tuple(y.shape)}")
    x = x.to(torch.float64)
    target = y.to(torch.float64)
    neuron = QuadraticLinear(x.shape[1], 1, impl=impl).double()
    optimizer = torch.optim.LBFGS(
        neuron.parameters(),
        lr=1.0,
        max_iter=max_iter,
        tolerance_grad=1e-10,
        tolerance_change=1e-12,
        history_size=50,
        line_search_fn="strong_wolfe",
    )

    def closure() -> torch.Tensor:
        optimizer.zero_grad()
        loss = F.binary_cross_entropy_with_logits(neuron(x).squeeze(-1), target)
        loss.backward()
        return loss

    optimizer.step(closure)
    return neuron


def cosine(a: torch.Tensor, b: torch.Tensor) -> float:
    """Cosine similarity of two tensors flattened (0 when either is zero)."""
    a, b = a.flatten().double(), b.flatten().double()
    norms = a.norm() * b.norm()
    return float(a @ b / norms) if norms > 0 else 0.0


def two_gaussian_check(
    pair: GaussianPair | None = None,
    n_train_per_class: int = 20_000,
    n_test_per_class: int = 50_000,
    seed: int = 0,
    max_iter: int = 200,
    impl: str = "reference",
) -> dict[str, Any]:
    """Train one quadratic neuron on two Gaussians; compare with the Bayes-optimal classifier.

    Args:
        pair: the classes; ``None``: :func:`random_pair` ``(d=4, seed)``.
        n_train_per_class, n_test_per_class: samples per class.
        seed: seeds the data (the neuron starts at zero, L-BFGS is deterministic).
        max_iter: L-BFGS iterations.
        impl: quadratic layer implementation.

    Returns:
        ``{"d", "n_train_per_class", "cosine_A" (learned A vs A*), "cosine_w",
        "scale_A" (||A|| / ||A_opt||), "accuracy" (test), "bayes_accuracy"
        (same test samples), "gap" (bayes - accuracy), "loss_learned",
        "loss_optimal" (test logistic loss of the neuron and of the log-odds)}``.
    """
    pair = random_pair(4, seed) if pair is None else pair
    g = torch.Generator().manual_seed(seed + 1000)
    x, y = sample_pair(pair, n_train_per_class, g)
    xt, yt = sample_pair(pair, n_test_per_class, g)
    neuron = fit_quadratic_neuron(x, y, max_iter=max_iter, impl=impl)
    a_opt, w_opt, _ = optimal_quadratic(pair)
    with torch.no_grad():
        a = neuron.matrices()[0]
        w = neuron.linear.weight[0]
        score = neuron(xt).squeeze(-1)
        best = log_odds(pair, xt)
        target = yt.double()
        return {
            "d": pair.dim,
            "n_train_per_class": int(n_train_per_class),
            "n_test_per_class": int(n_test_per_class),
            "cosine_A": cosine(a, a_opt),
            "cosine_w": cosine(w, w_opt),
            "scale_A": float(a.norm() / a_opt.norm()),
            "accuracy": float(((score > 0).long() == yt).double().mean()),
            "bayes_accuracy": float(((best > 0).long() == yt).double().mean()),
            "gap": float(((best > 0).long() == yt).double().mean())
            - float(((score > 0).long() == yt).double().mean()),
            "loss_learned": float(F.binary_cross_entropy_with_logits(score, target)),
            "loss_optimal": float(F.binary_cross_entropy_with_logits(best, target)),
        }


# -- few-shot digits -----------------------------------------------------------------------------


def load_digits_split(test_fraction: float = 0.5, seed: int = 0):
    """sklearn's 8x8 digits scaled to [0, 1]: ``(x_pool, y_pool, x_test, y_test)``.

    A stratified split (fixed ``seed``): few-shot training sets are drawn from
    the pool, every run is tested on the same held-out half. Tensors float32 / int64.
    """
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split

    data = load_digits()
    x = data.data.astype("float32") / 16.0
    xp, xt, yp, yt = train_test_split(
        x, data.target, test_size=test_fraction, stratify=data.target, random_state=seed
    )
    return (
        torch.from_numpy(xp),
        torch.from_numpy(yp).long(),
        torch.from_numpy(xt),
        torch.from_numpy(yt).long(),
    )


def few_shot_indices(y: torch.Tensor, k: int, generator: torch.Generator) -> torch.Tensor:
    """``k`` random indices per class of ``y`` (sorted). Raises if a class has fewer than ``k``."""
    picks = []
    for c in torch.unique(y).tolist():
        idx = torch.nonzero(y == c).flatten()
        if idx.numel() < k:
            raise ValueError(f"class {c} has {idx.numel()} samples, fewer than k={k}")
        picks.append(idx[torch.randperm(idx.numel(), generator=generator)[:k]])
    return torch.cat(picks).sort().values


def quadratic_classifier(in_features: int, classes: int, impl: str = "fused") -> nn.Module:
    """``classes`` quadratic neurons on ``in_features`` inputs (one QuadraticLinear)."""
    from ..layers.quadratic import QuadraticLinear

    return QuadraticLinear(in_features, classes, impl=impl)


def matched_mlp(in_features: int, classes: int, parameters: int) -> nn.Sequential:
    """``in -> ReLU(h) -> classes`` with ``h`` chosen so its parameter count is closest to
    ``parameters``."""
    hidden = max(1, round((parameters - classes) / (in_features + 1 + classes)))
    return nn.Sequential(nn.Linear(in_features, hidden), nn.ReLU(), nn.Linear(hidden, classes))


def count_parameters(module: nn.Module) -> int:
    """Trainable parameters (the quadratic layers store only distinct entries of A)."""
    return sum(p.numel() for p in module.parameters() if p.requires_grad)


def train_classifier(
    model: nn.Module, x: torch.Tensor, y: torch.Tensor, steps: int = 300, lr: float = 0.01
) -> nn.Module:
    """Full-batch Adam on the cross-entropy for ``steps`` steps (the same protocol for both)."""
    optimizer = torch.optim.Adam(model.parameters(), lr=lr)
    model.train()
    for _ in range(steps):
        optimizer.zero_grad()
        F.cross_entropy(model(x), y).backward()
        optimizer.step()
    return model.eval()


@torch.no_grad()
def accuracy(model: nn.Module, x: torch.Tensor, y: torch.Tensor) -> float:
    """Fraction of ``argmax(model(x)) == y``."""
    return float((model(x).argmax(-1) == y).double().mean())


def few_shot_digits(
    shots: tuple[int, ...] = (1, 5, 10, 20),
    seeds: tuple[int, ...] = (0, 1, 2, 3, 4),
    steps: int = 300,
    lr: float = 0.01,
    impl: str = "fused",
) -> dict[str, Any]:
    """Ten quadratic neurons vs a parameter-matched MLP with ``k`` samples per class (digits).

    Both train with full-batch Adam (``lr``, ``steps``), from the same
    ``torch.manual_seed(seed)``; test on the fixed held-out half.

    Returns:
        ``{"dataset", "n_test", "parameters": {"quadratic", "mlp"}, "mlp_hidden",
        "protocol", "results": [{"shots", "seed", "quadratic", "mlp"}, ...],
        "summary": [{"shots", "quadratic_mean", "quadratic_std", "mlp_mean",
        "mlp_std", "quadratic_minus_mlp"}, ...]}`` (accuracies in [0, 1]).
    """
    xp, yp, xt, yt = load_digits_split()
    d, classes = xp.shape[1], int(yp.max()) + 1
    quad_params = count_parameters(quadratic_classifier(d, classes, impl))
    mlp = matched_mlp(d, classes, quad_params)
    rows = []
    for k in shots:
        for seed in seeds:
            g = torch.Generator().manual_seed(10_000 * seed + k)
            idx = few_shot_indices(yp, k, g)
            x, y = xp[idx], yp[idx]
            torch.manual_seed(seed)
            quad = train_classifier(quadratic_classifier(d, classes, impl), x, y, steps, lr)
            torch.manual_seed(seed)
            net = train_classifier(matched_mlp(d, classes, quad_params), x, y, steps, lr)
            rows.append(
                {
                    "shots": k,
                    "seed": seed,
                    "quadratic": accuracy(quad, xt, yt),
                    "mlp": accuracy(net, xt, yt),
                }
            )
    summary = []
    for k in shots:
        q = torch.tensor([r["quadratic"] for r in rows if r["shots"] == k], dtype=torch.float64)
        m = torch.tensor([r["mlp"] for r in rows if r["shots"] == k], dtype=torch.float64)
        summary.append(
            {
                "shots": k,
                "quadratic_mean": float(q.mean()),
                "quadratic_std": float(q.std()) if q.numel() > 1 else 0.0,
                "mlp_mean": float(m.mean()),
                "mlp_std": float(m.std()) if m.numel() > 1 else 0.0,
                "quadratic_minus_mlp": float(q.mean() - m.mean()),
            }
        )
    return {
        "dataset": "sklearn digits 8x8 (64 inputs, 10 classes)",
        "n_test": int(yt.numel()),
        "parameters": {"quadratic": quad_params, "mlp": count_parameters(mlp)},
        "mlp_hidden": int(mlp[0].out_features),
        "protocol": f"full-batch Adam lr={lr}, {steps} steps, cross-entropy, seeds {list(seeds)}",
        "results": rows,
        "summary": summary,
    }
