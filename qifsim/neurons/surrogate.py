"""Surrogate gradients for the spike non-linearity ``o = Θ(v - u_th)``.

Forward, every surrogate is the Heaviside step with ``Θ(0) = 1`` (a neuron
fires when ``v >= u_th``). Backward, ``∂o/∂v`` is replaced by a window
``g(d)`` of the distance ``d = v - centre``:

==============  ==============================================  ==================  =============
name            g(d)                                            centre              default alpha
==============  ==============================================  ==================  =============
``analytic``    ``1`` if ``|d| <= sigma_u`` else ``0``          ``mu_u`` (Thm. 1)   (not used)
``rect``        ``1/alpha`` if ``|d| < alpha/2`` else ``0``     ``u_th``            1.0
``sigmoid``     ``alpha * s * (1 - s)``, ``s = σ(alpha d)``     ``u_th``            4.0
``atan``        ``(alpha/2) / (1 + (π/2 · alpha · d)²)``        ``u_th``            2.0
``triangle``    ``alpha * max(0, 1 - |d|)`` (norse's form)      ``u_th``            0.3
``superspike``  ``1 / (alpha |d| + 1)²`` (norse ``super``,      ``u_th``            100.0
                snntorch ``fast_sigmoid``)
==============  ==============================================  ==================  =============

``analytic`` is the window of Theorem 1 of the QIF paper (see
:func:`qifsim.neurons.parameters.analytic_window`); ``rect`` is Eq. 5 (Wu et
al. 2018). The threshold's own gradient is ``∂o/∂u_th = -g``; the window's
centre and width carry no gradient (they define the pseudo-derivative).

This module holds the torch form of ``g``; the numba kernels hold a
transcription of it that the tests keep equal to this one.
"""

from __future__ import annotations

import math

import torch

#: Surrogate names in kernel order (the index is the kernel's ``kind`` code).
SURROGATES: tuple[str, ...] = ("analytic", "rect", "sigmoid", "atan", "triangle", "superspike")

#: Default ``alpha`` of each surrogate (``None``: the surrogate takes no alpha).
DEFAULT_ALPHA: dict[str, float | None] = {
    "analytic": None,
    "rect": 1.0,
    "sigmoid": 4.0,
    "atan": 2.0,
    "triangle": 0.3,
    "superspike": 100.0,
}

#: Accepted aliases (peers' names) -> canonical name.
ALIASES: dict[str, str] = {"super": "superspike", "fast_sigmoid": "superspike", "rectangle": "rect"}


def canonical_surrogate(name: str) -> str:
    """Return the canonical surrogate name for ``name`` or raise a ValueError listing choices."""
    if not isinstance(name, str):
        raise ValueError(f"surrogate must be a string, got {type(name).__name__}")
    key = ALIASES.get(name.lower(), name.lower())
    if key not in SURROGATES:
        choices = ", ".join(SURROGATES + tuple(ALIASES))
        raise ValueError(f"unknown surrogate {name!r}; choose one of: {choices}")
    return key


def surrogate_kind(name: str) -> int:
    """Kernel code of a surrogate name."""
    return SURROGATES.index(canonical_surrogate(name))


def surrogate_grad(kind: int, d: torch.Tensor, width: torch.Tensor | float) -> torch.Tensor:
    """Pseudo-derivative ``g(d)`` of the step function.

    Args:
        kind: index into :data:`SURROGATES`.
        d: distance ``v - centre`` (any shape).
        width: ``sigma_u`` for ``analytic``, ``alpha`` otherwise; broadcastable to ``d``.

    Returns:
        ``g(d)``, same shape and dtype as ``d``.
    """
    if kind == 0:  # analytic: closed window of half-width sigma_u, height 1
        return (d.abs() <= width).to(d.dtype)
    if kind == 1:  # rect: open window of width alpha, height 1/alpha
        return (d.abs() < width * 0.5).to(d.dtype) / width
    if kind == 2:  # sigmoid
        s = torch.sigmoid(width * d)
        return width * s * (1.0 - s)
    if kind == 3:  # atan
        return (width * 0.5) / (1.0 + (math.pi * 0.5 * width * d) ** 2)
    if kind == 4:  # triangle (norse)
        return width * torch.relu(1.0 - d.abs())
    if kind == 5:  # superspike / fast sigmoid
        return 1.0 / (width * d.abs() + 1.0) ** 2
    raise ValueError(f"unknown surrogate kind {kind}; valid: 0..{len(SURROGATES) - 1}")


class SpikeFunction(torch.autograd.Function):
    """``o = Θ(v - u_th)`` forward, ``g(v - centre)`` backward (reference path)."""

    @staticmethod
    def forward(ctx, v, u_th, centre, width, kind: int):  # type: ignore[override]
        ctx.save_for_backward(v, centre, width)
        ctx.kind = kind
        ctx.th_shape = u_th.shape
        return (v >= u_th).to(v.dtype)

    @staticmethod
    def backward(ctx, grad_o):  # type: ignore[override]
        v, centre, width = ctx.saved_tensors
        grad_v = grad_o * surrogate_grad(ctx.kind, v - centre, width)
        grad_th = None
        if ctx.needs_input_grad[1]:
            grad_th = (-grad_v).sum_to_size(ctx.th_shape)
        return grad_v, grad_th, None, None, None


def spike(
    v: torch.Tensor,
    u_th: torch.Tensor,
    centre: torch.Tensor,
    width: torch.Tensor,
    kind: int,
) -> torch.Tensor:
    """Heaviside spike with surrogate gradient (differentiable in ``v`` and ``u_th``)."""
    return SpikeFunction.apply(v, u_th, centre, width, kind)
