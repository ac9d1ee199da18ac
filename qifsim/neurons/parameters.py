"""Neuron parameters: validation and the analytic surrogate window (Theorem 1).

All potentials are dimensionless (the paper's units); time is in steps.
Each field may be a Python float or a tensor broadcastable to the neuron
shape (e.g. ``[C, 1, 1]`` for per-channel values of a conv layer).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, fields

import torch

from .surrogate import DEFAULT_ALPHA, canonical_surrogate

Value = float | torch.Tensor

FORMS: tuple[str, ...] = ("paper", "euler")


def _as_tensor(value: Value) -> torch.Tensor:
    return value.detach() if isinstance(value, torch.Tensor) else torch.tensor(float(value))


def _check_finite(name: str, value: Value) -> None:
    if isinstance(value, bool) or not isinstance(value, (int, float, torch.Tensor)):
        raise ValueError(f"{name} must be a float or a tensor, got {type(value).__name__}")
    if not bool(torch.isfinite(_as_tensor(value)).all()):
        raise ValueError(f"{name} must be finite (no NaN or inf), got {value!r}")


def _resolve_alpha(surrogate: str, alpha: float | None) -> float | None:
    default = DEFAULT_ALPHA[surrogate]
    if default is None:
        if alpha is not None:
            raise ValueError(
                f"surrogate {surrogate!r} takes no alpha (its window follows from the "
                "neuron parameters); leave alpha=None"
            )
        return None
    alpha = default if alpha is None else float(alpha)
    if not math.isfinite(alpha) or alpha <= 0:
        raise ValueError(f"alpha must be a finite number > 0, got {alpha}")
    return alpha


class _Replaceable:
    """``replace(**changes)``: a validated copy with some fields changed.

    Changing the surrogate without giving ``alpha`` resets ``alpha`` to the
    new surrogate's default.
    """

    def replace(self, **changes):
        values = {f.name: getattr(self, f.name) for f in fields(self)}
        values.update(changes)
        if "surrogate" in changes and "alpha" not in changes:
            values["alpha"] = None
        return type(self)(**values)


@dataclass(frozen=True)
class QIFParameters(_Replaceable):
    """Discretized QIF neuron (QIF paper, Eqs. 11-15).

    ``paper`` form: ``v(t+1) = a (u - u_rest)(u - u_c) + I(t)``;
    ``euler`` form (Eq. 22): ``v(t+1) = u + a (u - u_rest)(u - u_c) + I(t)``.
    A spike is emitted when ``v >= u_th``; then ``u`` is reset to ``u_rest``.

    Args:
        a: quadratic coefficient, ``a > 0``.
        u_rest: resting (and reset) potential, ``u_rest < u_c``.
        u_c: critical potential.
        u_th: firing threshold.
        form: ``"paper"`` (default) or ``"euler"``.
        surrogate: surrogate-gradient name (see :mod:`qifsim.neurons.surrogate`);
            ``"analytic"`` (default) is the Theorem-1 window.
        alpha: width/slope of a parametric surrogate; ``None`` uses its default.

    Raises:
        ValueError: naming the parameter and the rule it breaks.
    """

    a: Value = 0.25
    u_rest: Value = 0.0
    u_c: Value = 0.5
    u_th: Value = 0.5
    form: str = "paper"
    surrogate: str = "analytic"
    alpha: float | None = None

    def __post_init__(self) -> None:
        for name in ("a", "u_rest", "u_c", "u_th"):
            _check_finite(name, getattr(self, name))
        if not bool((_as_tensor(self.a) > 0).all()):
            raise ValueError(
                f"a must be > 0 (the quadratic term must open upwards), got {self.a!r}"
            )
        if not bool((_as_tensor(self.u_rest) < _as_tensor(self.u_c)).all()):
            raise ValueError(
                f"u_rest must be < u_c (resting potential below the critical one), "
                f"got u_rest={self.u_rest!r}, u_c={self.u_c!r}"
            )
        if self.form not in FORMS:
            raise ValueError(f"form must be one of {FORMS}, got {self.form!r}")
        surrogate = canonical_surrogate(self.surrogate)
        object.__setattr__(self, "surrogate", surrogate)
        object.__setattr__(self, "alpha", _resolve_alpha(surrogate, self.alpha))


@dataclass(frozen=True)
class LIFParameters(_Replaceable):
    """Discrete LIF neuron in the form of Wu et al. 2018 (QIF paper, Eqs. 3-5).

    ``u(t+1) = beta u(t) (1 - o(t)) + I(t)``, ``o(t+1) = Θ(u(t+1) - u_th)``:
    leak factor ``beta`` per step, hard reset to 0.

    Args:
        beta: leak factor per step, ``0 <= beta <= 1``.
        u_th: firing threshold.
        surrogate: surrogate-gradient name; ``"rect"`` (default) is Eq. 5.
        alpha: width/slope of the surrogate (rect: window width, height 1/alpha).
    """

    beta: Value = 0.25
    u_th: Value = 0.5
    surrogate: str = "rect"
    alpha: float | None = 1.0

    def __post_init__(self) -> None:
        for name in ("beta", "u_th"):
            _check_finite(name, getattr(self, name))
        beta = _as_tensor(self.beta)
        if not bool(((beta >= 0) & (beta <= 1)).all()):
            raise ValueError(
                f"beta must be within [0, 1] (a leak factor per step), got {self.beta!r}"
            )
        surrogate = canonical_surrogate(self.surrogate)
        if surrogate == "analytic":
            raise ValueError(
                "the analytic surrogate window is derived for QIF neurons; "
                "use surrogate='rect' (Eq. 5) or another parametric surrogate for LIF"
            )
        object.__setattr__(self, "surrogate", surrogate)
        object.__setattr__(self, "alpha", _resolve_alpha(surrogate, self.alpha))


def window_moments(
    a: torch.Tensor | float,
    u_rest: torch.Tensor | float,
    u_c: torch.Tensor | float,
    u_th: torch.Tensor | float,
    form: str = "paper",
):
    """Mean and standard deviation of the QIF membrane under tdBN inputs.

    Theorem 1 of the QIF paper: with ``I ~ N(0, u_th²)`` and
    ``u(t+1) ≈ a (I' - u_rest)(I' - u_c) + I`` (``I'`` the previous input),

    * ``mu_u = a (u_th² + u_rest u_c)``
    * ``sigma_u² = u_th² (1 + a² (2 u_th² + (u_c + u_rest)²))``

    The theorem's statement prints ``(u_c - u_rest)²``; its proof derives
    ``(u_c + u_rest)²`` (``Var[a I'² - a (r + c) I'] = a² (2 s⁴ + (r + c)² s²)``).
    The proof is right and is what this function computes; the two agree
    when ``u_rest = 0`` (the paper's setting).

    For the ``euler`` form the same derivation with ``u ≈ I' + a(...) + I`` gives
    ``sigma_u² = u_th² (1 + 2 a² u_th² + (1 - a (u_c + u_rest))²)`` (same ``mu_u``).

    Works elementwise on floats or tensors; returns ``(mu, sigma)`` of the same kind.
    """
    mu = a * (u_th * u_th + u_rest * u_c)
    s2 = u_th * u_th
    if form == "paper":
        var = s2 * (1 + a * a * (2 * s2 + (u_c + u_rest) ** 2))
    elif form == "euler":
        var = s2 * (1 + 2 * a * a * s2 + (1 - a * (u_c + u_rest)) ** 2)
    else:
        raise ValueError(f"form must be one of {FORMS}, got {form!r}")
    sigma = var.sqrt() if isinstance(var, torch.Tensor) else math.sqrt(var)
    return mu, sigma


def analytic_window(p: QIFParameters):
    """Theorem-1 surrogate window ``(mu_u, sigma_u)`` of a :class:`QIFParameters`.

    The surrogate is 1 on ``[mu_u - sigma_u, mu_u + sigma_u]`` and 0 elsewhere:
    centred on ``mu_u`` (not on the threshold), height 1. Floats in, floats out;
    tensor parameters give tensors.
    """
    if not isinstance(p, QIFParameters):
        raise TypeError(f"analytic_window expects QIFParameters, got {type(p).__name__}")
    return window_moments(p.a, p.u_rest, p.u_c, p.u_th, p.form)
