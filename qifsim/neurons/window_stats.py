"""Measure the QIF membrane distribution that Theorem 1 predicts.

Three numbers per parameter set, all under tdBN-like inputs ``I ~ N(0, u_th²)``:

* ``formula``: :func:`~qifsim.neurons.parameters.window_moments`;
* ``approx``: Monte Carlo of the theorem's approximated model
  ``u = a (I' - u_rest)(I' - u_c) + I`` (``I'``, ``I`` independent draws;
  the euler form adds ``I'``). It must agree with the formula up to sampling
  error;
* ``full``: the full recurrent QIF dynamics (reset included) driven by i.i.d.
  inputs; the potential before reset is sampled after a burn-in. This is the
  distribution the surrogate window actually meets, and it drifts from the
  formula because the approximation ignores the state's memory and the reset.
"""

from __future__ import annotations

import torch

from .functional import QIF_MODES, NeuronTensors, neuron_sequence_reference
from .parameters import QIFParameters, window_moments


def _scalar(p: QIFParameters, name: str) -> float:
    value = getattr(p, name)
    if isinstance(value, torch.Tensor) and value.numel() != 1:
        raise ValueError(
            f"membrane_statistics needs scalar parameters, {name} has shape {tuple(value.shape)}"
        )
    return float(value)


def membrane_statistics(
    p: QIFParameters,
    n_samples: int = 1_000_000,
    n_neurons: int = 20_000,
    n_steps: int = 100,
    burn_in: int = 20,
    seed: int = 0,
) -> dict[str, float]:
    """Mean and std of the QIF membrane potential: formula, approximation, full dynamics.

    Args:
        p: scalar QIF parameters.
        n_samples: Monte Carlo samples of the approximated model.
        n_neurons, n_steps, burn_in: size of the full simulation; statistics use
            the steps after ``burn_in``.
        seed: random seed (the result is deterministic for a given seed).

    Returns:
        dict with ``formula_mu, formula_sigma, approx_mu, approx_sigma, full_mu,
        full_sigma, full_rate`` (firing probability per step of the full model).
    """
    a, r, c, th = (_scalar(p, k) for k in ("a", "u_rest", "u_c", "u_th"))
    mu, sigma = window_moments(a, r, c, th, p.form)
    g = torch.Generator().manual_seed(seed)
    prev = torch.randn(n_samples, generator=g, dtype=torch.float64) * th
    now = torch.randn(n_samples, generator=g, dtype=torch.float64) * th
    approx = a * (prev - r) * (prev - c) + now
    if p.form == "euler":
        approx = approx + prev
    x = torch.randn(n_steps, n_neurons, generator=g, dtype=torch.float64) * th
    f64 = lambda v: torch.tensor(v, dtype=torch.float64)  # noqa: E731
    tensors = NeuronTensors(
        f64(a), f64(r), f64(c), f64(th), f64(mu), f64(sigma), QIF_MODES[p.form], 0
    )
    with torch.no_grad():
        spikes, v, _ = neuron_sequence_reference(
            x, torch.full((n_neurons,), r, dtype=torch.float64), tensors
        )
    full = v[burn_in:]
    return {
        "formula_mu": float(mu),
        "formula_sigma": float(sigma),
        "approx_mu": approx.mean().item(),
        "approx_sigma": approx.std().item(),
        "full_mu": full.mean().item(),
        "full_sigma": full.std().item(),
        "full_rate": spikes[burn_in:].mean().item(),
    }
