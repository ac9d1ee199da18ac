"""The Lava semantics of an exchange file, in torch (EXCHANGE.md, without Lava's delays).

:func:`run_reference` runs the layers of an :class:`~qifsim.export.exchange.ExchangeFile`
on input frames ``[T, B, *input_shape]``:

* ``mode="float"``: float64 with the float deployment weights, exactly the
  PyTorch model's arithmetic up to rounding (QIF spikes at ``v >= u_th``, LIF at
  ``v > u_th``; ties are measure-zero);
* ``mode="fixed"``: exact integer arithmetic (int64 state), bit for bit the
  fixed-point semantics: ``a_in = sum m 2^e x``, ``I = (a_in + bias_mant) 64``,
  QIF ``V = shr((U - R)(U - C) a_mant, a_shift) [+ U] + I``, LIF
  ``V = shr(U (4096 - dv), 12) + I``, ``shr`` rounding toward zero, 24-bit
  saturation, readout accumulated over ``T`` without saturation.

The synaptic sums run as float64 convolutions / matmuls on integer values:
every partial sum is an integer below ``2^53`` (checked), so they are exact in
any summation order; the neuron updates are int64.

Per-layer spikes are returned in torch time (step ``t`` of every layer is the
model's step ``t``); Lava's layer ``l`` emits them at step ``t + l``.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch
import torch.nn.functional as F

from .exchange import ExchangeFile, ExchangeLayer

__all__ = ["ReferenceResult", "run_reference", "shr"]

STATE_MAX = 2**23 - 1
_EXACT = 2**53


@dataclass
class ReferenceResult:
    """Output of :func:`run_reference`.

    Attributes:
        logits: ``[B, num_classes]`` float64: the readout averaged over ``T``
            (fixed: ``acc / (T * lambda)``).
        predictions: ``[B]`` int64, ``argmax`` (first maximal index; fixed: of ``acc``).
        spikes: ``{layer index (as in /layer/{i}): [T, B, *shape]}`` for hidden
            layers when ``record=True`` (float64 0/1, or int64 in fixed mode).
        acc: fixed mode only: the integer readout accumulator ``[B, num_classes]`` (int64).
        peak: fixed mode only: ``{layer index: largest |V| before saturation}`` over all
            neurons and steps (the 24-bit state saturates above ``2^23 - 1``).
    """

    logits: torch.Tensor
    predictions: torch.Tensor
    spikes: dict[int, torch.Tensor] = field(default_factory=dict)
    acc: torch.Tensor | None = None
    peak: dict[int, int] = field(default_factory=dict)


def shr(x: torch.Tensor, k: int) -> torch.Tensor:
    """Arithmetic shift right rounding toward zero: ``sign(x) * (|x| >> k)`` (int64)."""
    return torch.sign(x) * (x.abs() >> k)


def _synapse(layer: ExchangeLayer, x: torch.Tensor, weight: torch.Tensor) -> torch.Tensor:
    """``[N, *in_shape] -> [N, *out_shape]`` with ``weight`` (float64), no bias."""
    if layer.kind == "dense":
        return x @ weight.T
    return F.conv2d(x, weight, None, layer.stride, layer.padding, layer.dilation, layer.groups)


def _sum_pool(layer: ExchangeLayer, x: torch.Tensor) -> torch.Tensor:
    return F.avg_pool2d(x, layer.kernel_size, layer.kernel_size, divisor_override=1)


def _flatten(layer: ExchangeLayer, x: torch.Tensor) -> torch.Tensor:
    return x.flatten(1)


def _float_neuron(layer: ExchangeLayer, current: torch.Tensor) -> torch.Tensor:
    """``current [T, B, ...]`` -> spikes (float64 0/1)."""
    p = layer.params
    u_th = p["u_th"]
    if layer.neuron == "qif":
        reset = p["u_rest"]
        euler = p["form"] == "euler"
    else:
        reset = 0.0
    u = torch.full_like(current[0], reset)
    out = []
    for i_t in current:
        if layer.neuron == "qif":
            drive = p["a"] * (u - p["u_rest"]) * (u - p["u_c"])
            v = (u + drive if euler else drive) + i_t
            s = v >= u_th
        else:
            v = p["beta"] * u + i_t
            s = v > u_th
        u = torch.where(s, torch.full_like(v, reset), v)
        out.append(s.to(torch.float64))
    return torch.stack(out)


def _fixed_neuron(layer: ExchangeLayer, current: torch.Tensor) -> tuple[torch.Tensor, int]:
    """Integer ``current [T, B, ...]`` (int64) -> (spikes (int64 0/1), peak |V| before clipping)."""
    fx = layer.fixed
    v_th = fx["vth_mant"] * 64
    if layer.neuron == "qif":
        r, c, a_mant, a_shift = fx["u_rest_int"], fx["u_c_int"], fx["a_mant"], fx["a_shift"]
        euler = layer.params["form"] == "euler"
        reset = r
    else:
        keep = 4096 - fx["dv"]
        reset = 0
    u = torch.full_like(current[0], reset)
    out = []
    peak = 0
    for i_t in current:
        if layer.neuron == "qif":
            drive = shr((u - r) * (u - c) * a_mant, a_shift)
            v = (u + drive if euler else drive) + i_t
        else:
            v = shr(u * keep, 12) + i_t
        peak = max(peak, int(v.abs().max()) if v.numel() else 0)
        v = v.clamp(-STATE_MAX, STATE_MAX)
        s = v >= v_th if layer.neuron == "qif" else v > v_th
        u = torch.where(s, torch.full_like(v, reset), v)
        out.append(s.to(torch.int64))
    return torch.stack(out), peak


def _check_exact(x: torch.Tensor, weight: torch.Tensor, layer_index: int) -> None:
    bound = float(x.abs().flatten(1).sum(1).max()) * float(weight.abs().max()) if x.numel() else 0
    if bound >= _EXACT:
        raise OverflowError(
            f"layer {layer_index}: integer synaptic sums could reach {bound:.3g} >= 2^53; "
            "inputs are too large for the exact reference (lower input_scale)"
        )


def _check_input(exchange: ExchangeFile, frames: torch.Tensor) -> None:
    if not isinstance(frames, torch.Tensor):
        raise TypeError(f"frames must be a torch.Tensor, got {type(frames).__name__}")
    want = tuple(exchange.input_shape)
    if frames.dim() != 2 + len(want) or tuple(frames.shape[2:]) != want:
        raise ValueError(
            f"frames must be [T, B, {', '.join(map(str, want))}] for this exchange file, "
            f"got shape {tuple(frames.shape)}"
        )
    if frames.shape[0] < 1 or frames.shape[1] < 1:
        raise ValueError(f"frames need T >= 1 and B >= 1, got shape {tuple(frames.shape)}")
    if not torch.isfinite(frames).all():
        raise ValueError("frames contain NaN/inf")


@torch.no_grad()
def run_reference(
    exchange: ExchangeFile, frames: torch.Tensor, mode: str = "float", record: bool = False
) -> ReferenceResult:
    """Run an exchange file's network on ``frames`` with Lava's arithmetic (no delays).

    Args:
        exchange: from :func:`~qifsim.export.read_exchange` or
            :func:`~qifsim.export.model_exchange`.
        frames: ``[T, B, *input_shape]`` (event counts or spikes; any float/int dtype).
            Fixed mode feeds ``round(frames * input_scale)`` (half to even).
        mode: ``"float"`` or ``"fixed"``.
        record: keep every hidden layer's spikes.

    Returns:
        :class:`ReferenceResult`.
    """
    if mode not in ("float", "fixed"):
        raise ValueError(f"mode must be 'float' or 'fixed', got {mode!r}")
    _check_input(exchange, frames)
    T, B = frames.shape[:2]
    x = frames.detach().to("cpu", torch.float64)
    if mode == "fixed":
        x = torch.round(x * exchange.input_scale)
    x = x.flatten(0, 1)  # [T*B, ...]
    spikes: dict[int, torch.Tensor] = {}
    peak: dict[int, int] = {}
    for index, layer in enumerate(exchange.layers, start=1):
        if layer.kind == "pool":
            x = _sum_pool(layer, x)
            continue
        if layer.kind == "flatten":
            x = _flatten(layer, x)
            continue
        if mode == "float":
            weight = torch.from_numpy(layer.weight_float)
            bias = torch.from_numpy(layer.bias_float)
            a_in = _synapse(layer, x, weight)
        else:
            weight = torch.from_numpy(layer.weight_mant) * 2.0**layer.weight_exponent
            bias = torch.from_numpy(layer.bias_mant)
            _check_exact(x, weight, index)
            a_in = _synapse(layer, x, weight)
        shape = (-1,) + (1,) * (a_in.dim() - 2)
        if mode == "float":
            current = a_in + bias.view(shape)
        else:
            current = (a_in.to(torch.int64) + bias.to(torch.int64).view(shape)) * 64
        current = current.unflatten(0, (T, B))
        if layer.role == "readout":
            if mode == "float":
                logits = current.mean(0)
                return ReferenceResult(logits, logits.argmax(1), spikes)
            acc = current.sum(0)
            logits = acc.to(torch.float64) / (T * layer.scale)
            peak[index] = int(acc.abs().max())
            return ReferenceResult(logits, acc.argmax(1), spikes, acc, peak)
        if mode == "float":
            s = _float_neuron(layer, current)
        else:
            s, peak[index] = _fixed_neuron(layer, current)
        if record:
            spikes[index] = s
        x = s.flatten(0, 1).to(torch.float64)
    raise ValueError("the exchange file has no readout layer")
