"""Quantisation of exported layers to Loihi's fixed-point constraints (EXCHANGE.md).

Per synaptic layer (float64 weights ``W``, bias ``b``, from :mod:`.graph`):

* weights become mantissas ``m``: even integers in ``[-256, 254]`` (8-bit
  mixed-sign) with one exponent ``e`` in ``0..7``; the integer potential is
  ``V = round(lambda v)`` and the synaptic current ``I = (sum m 2^e x + bias_mant) 64``
  with ``x`` the layer's integer input (spikes, sum-pooled spikes, or
  ``round(frames * input_scale)`` for the first layer);
* so ``m ~= W r`` with the *ratio* ``r = lambda / (64 2^e s_in)`` (``s_in`` is
  ``input_scale`` for the layer fed by the input, else 1). :func:`best_ratio`
  picks ``r`` on a grid around the no-clipping value ``255 / max|W|`` to
  minimise the relative L2 error ``||W - m / r|| / ||W||`` (clipping a few
  outliers can pay off);
* spiking layers: ``lambda = 64 vth_mant / u_th`` with ``vth_mant`` a 13-bit
  integer (``1..8191``), so the threshold is exact; ``e`` is the largest
  exponent whose ``vth_mant = round(r 2^e s_in u_th)`` fits 13 bits *and* whose
  worst-case ``|I| + V_th`` fits the 24-bit state (``2^23 - 1``) for inputs up to
  their maximum; when no exponent fits the 24-bit bound, ``e`` is the smallest
  one with ``vth_mant >= 1`` and ``saturation_possible`` is set (the state then
  saturates as specified);
* the readout (off-chip accumulator): ``lambda = 64 2^e r s_in``, ``e`` the
  largest exponent with ``T`` steps of worst-case ``|I|`` within ``2^23 - 1``;
* ``bias_mant = round(lambda b / 64)``, a 13-bit signed mantissa: exponents whose bias
  leaves ``[-4096, 4095]`` do not fit (clipped, and counted in ``bias_error``, only when no
  exponent fits); QIF ``u_rest_int = round(lambda u_rest)``,
  ``u_c_int = round(lambda u_c)``, ``a_mant / 2^a_shift ~= a / lambda`` with
  ``1 <= a_mant <= 4095`` (largest ``a_shift`` that fits); LIF
  ``dv = round(4096 (1 - beta))``.

Rounding is numpy's (half to even). The per-layer report
(:meth:`LayerQuant.report`) gives the relative weight, bias and ``a``/``beta``
errors and the worst-case current in units of the 24-bit limit.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .graph import ExportError, ExportLayer

__all__ = [
    "MANT_MAX",
    "MANT_MIN",
    "STATE_MAX",
    "VTH_MANT_MAX",
    "LayerQuant",
    "best_ratio",
    "quantize_layers",
    "quantize_weights",
]

#: Weight mantissa range (8-bit mixed sign: even values).
MANT_MIN, MANT_MAX = -256, 254
#: Largest weight exponent.
EXP_MAX = 7
#: Largest threshold mantissa (13 bits).
VTH_MANT_MAX = 2**13 - 1
#: Saturation bound of the 24-bit state.
STATE_MAX = 2**23 - 1
#: Largest ``a_mant`` (12 bits).
A_MANT_MAX = 4095
#: Bias mantissa range (13-bit signed; the bias is ``bias_mant * 2**6``).
BIAS_MANT_MIN, BIAS_MANT_MAX = -(2**12), 2**12 - 1
#: Largest ``a_shift`` the Lava side accepts (int64 shifts).
A_SHIFT_MAX = 62


def quantize_weights(weight: np.ndarray, ratio: float) -> np.ndarray:
    """Mantissas ``m = clip(2 round(W r / 2), -256, 254)`` (float64 holding even integers)."""
    m = 2.0 * np.round(np.asarray(weight, dtype=np.float64) * ratio / 2.0)
    return np.clip(m, MANT_MIN, MANT_MAX)


def _relative_error(weight: np.ndarray, approx: np.ndarray) -> float:
    norm = float(np.linalg.norm(weight))
    if norm == 0.0:
        return 0.0
    return float(np.linalg.norm(weight - approx)) / norm


def weight_error(weight: np.ndarray, ratio: float) -> float:
    """Relative L2 error ``||W - m / r|| / ||W||`` of the mantissas at ratio ``r``."""
    return _relative_error(weight, quantize_weights(weight, ratio) / ratio)


def best_ratio(weight: np.ndarray, points: int = 49) -> float:
    """The ratio ``r`` (mantissa per unit weight) minimising :func:`weight_error`.

    Searched on a log grid from ``r0 / 4`` to ``r0 * 4``, ``r0 = 255 / max|W|``
    (the largest ratio without clipping). All-zero weights give ``r = 1``.
    """
    wmax = float(np.max(np.abs(weight))) if np.size(weight) else 0.0
    if wmax == 0.0:
        return 1.0
    r0 = 255.0 / wmax * (1 - 1e-12)
    grid = np.concatenate([[r0], r0 * 2.0 ** np.linspace(-2, 2, points)])
    errors = [weight_error(weight, r) for r in grid]
    return float(grid[int(np.argmin(errors))])


def _worst_current(m: np.ndarray, exponent: int, bias_mant: np.ndarray, in_max: float) -> float:
    """Largest ``|I| = |sum m 2^e x + bias_mant| 64`` over outputs for ``0 <= x <= in_max``."""
    fan = np.abs(m).reshape(m.shape[0], -1).sum(axis=1)
    return float(np.max((fan * 2.0**exponent * in_max + np.abs(bias_mant)) * 64.0))


@dataclass
class LayerQuant:
    """Fixed-point form of one synaptic layer (EXCHANGE.md ``qif/`` datasets).

    Attributes:
        weight_mant: even integer mantissas (float64), the layer's weight layout.
        weight_exponent: ``e``; the effective integer weight is ``m 2^e``.
        bias_mant: ``round(lambda b / 64)`` (float64 holding integers), ``(out,)``.
        scale: ``lambda`` (integer potential per unit of float potential).
        input_scale: ``s_in`` of this layer (``input_scale`` for the first, else 1).
        quant_error: ``||W - m 2^e 64 s_in / lambda|| / ||W||``.
        bias_error: ``||b - 64 bias_mant / lambda|| / ||b||`` (0 for zero bias).
        param_error: relative error of the quantised ``a`` (QIF) or ``beta`` (LIF).
        worst_current: worst-case ``|I|`` (integer units) for inputs in range.
        saturation_possible: worst-case ``|I| + V_th`` exceeds ``2^23 - 1``.
        fixed: integer neuron parameters: QIF ``vth_mant, u_rest_int, u_c_int,
            a_mant, a_shift``; LIF ``vth_mant, dv``; empty for the readout.
    """

    weight_mant: np.ndarray
    weight_exponent: int
    bias_mant: np.ndarray
    scale: float
    input_scale: float
    quant_error: float
    bias_error: float
    param_error: float
    worst_current: float
    saturation_possible: bool
    fixed: dict

    def report(self) -> dict:
        """JSON-ready summary (no arrays)."""
        return {
            "weight_exponent": self.weight_exponent,
            "scale": self.scale,
            "quant_error": self.quant_error,
            "bias_error": self.bias_error,
            "param_error": self.param_error,
            "worst_current_over_limit": self.worst_current / STATE_MAX,
            "saturation_possible": self.saturation_possible,
            **{k: v for k, v in self.fixed.items()},
        }


def _qif_fixed(params: dict, lam: float, name: str) -> tuple[dict, float]:
    a = params["a"]
    target = a / lam
    if not target > 0:
        raise ExportError(f"layer {name!r}: QIF a must be > 0, got {a}")
    shift = int(np.floor(np.log2(A_MANT_MAX / target)))
    if shift < 0:
        raise ExportError(
            f"layer {name!r}: a / lambda = {target:.3g} needs a_mant > {A_MANT_MAX} at shift 0; "
            "a is too large for this threshold scale"
        )
    mant = int(np.round(target * 2.0**shift))
    if mant > A_MANT_MAX:
        shift -= 1
        mant = int(np.round(target * 2.0**shift))
    if shift > A_SHIFT_MAX:
        raise ExportError(
            f"layer {name!r}: a / lambda = {target:.3g} needs a_shift {shift} > {A_SHIFT_MAX}; "
            "a is too small for this threshold scale"
        )
    r_int, c_int = int(np.round(lam * params["u_rest"])), int(np.round(lam * params["u_c"]))
    if max(abs(r_int), abs(c_int)) > STATE_MAX:
        raise ExportError(
            f"layer {name!r}: u_rest/u_c ({params['u_rest']}, {params['u_c']}) exceed the 24-bit "
            f"state at scale {lam:.4g}"
        )
    fixed = {"u_rest_int": r_int, "u_c_int": c_int, "a_mant": max(mant, 1), "a_shift": shift}
    return fixed, abs(mant * 2.0**-shift * lam - a) / a


def _lif_fixed(params: dict, name: str) -> tuple[dict, float]:
    beta = params["beta"]
    if not 0.0 <= beta <= 1.0:
        raise ExportError(f"layer {name!r}: LIF beta must lie in [0, 1] to export, got {beta}")
    dv = int(np.round(4096.0 * (1.0 - beta)))
    err = abs((4096 - dv) / 4096.0 - beta) / beta if beta > 0 else abs((4096 - dv) / 4096.0)
    return {"dv": dv}, err


def _quantize_layer(layer: ExportLayer, s_in: float, in_max: float, time_steps: int) -> LayerQuant:
    weight = np.asarray(layer.weight, dtype=np.float64)
    bias = np.asarray(layer.bias, dtype=np.float64)
    if not (np.isfinite(weight).all() and np.isfinite(bias).all()):
        raise ExportError(f"layer {layer.name!r} has NaN/inf weights or bias")
    ratio = best_ratio(weight)
    spiking = layer.role == "hidden"
    u_th = layer.params.get("u_th", 1.0)
    if spiking and not u_th > 0:
        raise ExportError(f"layer {layer.name!r}: u_th must be > 0 to export, got {u_th}")

    bias_max = float(np.abs(bias).max()) if bias.size else 0.0

    def ratio_at(e: int, cap: bool) -> float:
        """The weight ratio at exponent ``e``; ``cap``: lowered so the bias fits 13 bits."""
        if cap and bias_max > 0:
            return min(ratio, (BIAS_MANT_MAX - 0.5) / (2.0**e * s_in * bias_max))
        return ratio

    def build(e: int, cap: bool = False) -> tuple[float, np.ndarray, np.ndarray, int | None]:
        r_e = ratio_at(e, cap)
        if spiking:
            vth = int(np.clip(np.round(r_e * 2.0**e * s_in * u_th), 1, VTH_MANT_MAX))
            lam = 64.0 * vth / u_th
        else:
            vth, lam = None, 64.0 * 2.0**e * r_e * s_in
        r = lam / (64.0 * 2.0**e * s_in)
        return lam, quantize_weights(weight, r), np.round(lam * bias / 64.0), vth

    def fits(e: int, cap: bool = False) -> bool:
        lam, m, bm, vth = build(e, cap)
        if bm.size and not BIAS_MANT_MIN <= bm.min() <= bm.max() <= BIAS_MANT_MAX:
            return False
        worst = _worst_current(m, e, bm, in_max)
        if spiking:
            exact = np.round(ratio_at(e, cap) * 2.0**e * s_in * u_th)
            return 1 <= exact <= VTH_MANT_MAX and worst + vth * 64 <= STATE_MAX
        return worst * time_steps <= STATE_MAX

    # the largest exponent that fits at the best weight ratio; when the folded bias is too
    # large for 13 bits at every exponent, the smallest exponent with the ratio lowered
    # until it fits (weights lose mantissa bits, the bias stays exact)
    exponents = range(EXP_MAX + 1)
    feasible = [e for e in exponents if fits(e)]
    cap = not feasible
    if feasible:
        e = max(feasible)
    elif capped := [e for e in exponents if fits(e, cap=True)]:
        e = min(capped)
    elif spiking:  # saturation possible: the smallest usable exponent, flagged below
        usable = [e for e in exponents if np.round(ratio_at(e, True) * 2.0**e * s_in * u_th) >= 1]
        e = min(usable) if usable else EXP_MAX
    else:
        e = 0
    lam, m, bias_mant, vth = build(e, cap)
    bias_mant = np.clip(bias_mant, BIAS_MANT_MIN, BIAS_MANT_MAX)  # only when nothing fits
    worst = _worst_current(m, e, bias_mant, in_max)
    fixed: dict = {}
    param_error = 0.0
    if spiking:
        fixed["vth_mant"] = int(vth)
        if layer.neuron == "qif":
            extra, param_error = _qif_fixed(layer.params, lam, layer.name)
        else:
            extra, param_error = _lif_fixed(layer.params, layer.name)
        fixed.update(extra)
        saturation = worst + fixed["vth_mant"] * 64 > STATE_MAX
    else:
        saturation = worst * time_steps > STATE_MAX
    w_hat = m * 2.0**e * 64.0 * s_in / lam
    return LayerQuant(
        weight_mant=m,
        weight_exponent=e,
        bias_mant=bias_mant,
        scale=lam,
        input_scale=s_in,
        quant_error=_relative_error(weight, w_hat),
        bias_error=_relative_error(bias, bias_mant * 64.0 / lam),
        param_error=float(param_error),
        worst_current=worst,
        saturation_possible=bool(saturation),
        fixed=fixed,
    )


def quantize_layers(
    layers: list[ExportLayer],
    input_scale: float = 1.0,
    max_input: float = 1.0,
    time_steps: int = 1,
) -> list[LayerQuant | None]:
    """Fixed-point form of every synaptic layer (``None`` for flatten/pool).

    Args:
        layers: from :func:`~qifsim.export.graph.walk`.
        input_scale: fixed-point inputs are ``round(frames * input_scale)``
            (1 for event counts; a power of two for graded inputs).
        max_input: the largest input value (float units, before scaling), for
            the 24-bit bound of the first layer (1 for spikes; the largest event
            count of the data for count frames).
        time_steps: ``T``, for the readout accumulator bound.

    Raises:
        ExportError: bad ``input_scale``/``max_input``, NaN weights, or neuron
        parameters that cannot be represented.
    """
    if not (np.isfinite(input_scale) and input_scale > 0):
        raise ExportError(f"input_scale must be finite and > 0, got {input_scale}")
    if not (np.isfinite(max_input) and max_input >= 0):
        raise ExportError(f"max_input must be finite and >= 0, got {max_input}")
    s_in = float(input_scale)
    in_max = float(np.round(max_input * input_scale))
    out: list[LayerQuant | None] = []
    for layer in layers:
        if layer.kind == "pool":
            in_max *= layer.kernel_size[0] * layer.kernel_size[1]
            out.append(None)
        elif layer.kind == "flatten":
            out.append(None)
        else:
            out.append(_quantize_layer(layer, s_in, in_max, time_steps))
            s_in, in_max = 1.0, 1.0
    return out
