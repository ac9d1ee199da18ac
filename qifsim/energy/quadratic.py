"""Operation counts of quadratic (dendritic) synapses, per the quadratic-layer contract.

A quadratic module (``ChannelQuadratic``, the quadratic term of ``QuadraticConv2d``;
``QuadraticLinear``'s own term, its ``.linear`` child being counted as a linear layer)
exposes ``quadratic_op_counts(out_hw) -> {"mul", "mac"}`` (dense operations per sample and
step), ``centre_pixels(x)`` (conv: the input pixel each output's term reads), ``out_channels``
/ ``out_features`` and ``rank``. Rules:

* **Dense** ops = ``mul + mac`` of ``quadratic_op_counts`` per frame.
* **Graded input** (also pooled spikes: their products need multiplications): all dense ops
  are MACs (a multiplication alone is costed as a MAC: an upper bound).
* **Binary spikes, full rank** (spiking mode: zero diagonal): a product of two spikes is
  an AND (free); each co-active pair of channels at a centre pixel adds one coefficient to
  every output channel. Event ACs = ``sum over positions of n(n-1)/2 * C_out`` (``n``
  active channels); the paper-style estimate is ``fr**2 * mac`` (both spikes of a pair
  must fire: ``fr**2`` of the dense pair accumulations). A non-spiking layer fed by spikes
  also has its diagonal, ``A_mm s_m**2 = A_mm s_m``: ``n(n+1)/2`` per position, and the
  estimate counts those ``C_in * C_out`` terms per position at ``fr``.
* **Binary spikes, low rank** ``A_i = U_i U_i^T - V_i V_i^T`` (rank ``r``): the term is
  ``|U_i^T x|^2 - |V_i^T x|^2`` (minus the diagonal, ``sum_d A_dd s_d``, in spiking mode):
  each active input adds ``2 r`` (+1 for the diagonal) coefficients per output (ACs;
  estimate ``fr * C_in * (2r + 1) * C_out`` per position) and each output squares ``2 r``
  sums (``2 r * C_out`` multiplications per position, costed as MACs).
* ``PixelQuadratic`` (``mode="pixel"``, the ablation) is not counted: it raises
  :class:`~qifsim.energy.meter.UnsupportedLayerError` naming the layer.
* ``QuadraticConv2d`` adds its conv and quadratic outputs: the quadratic ACs accumulate
  into the same targets as the conv's, so the sum costs nothing extra.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from . import counting
from .meter import OpCounter, RowCounts


def _out_channels(module: nn.Module) -> int:
    for attr in ("out_channels", "out_features"):
        value = getattr(module, attr, None)
        if value is not None:
            return int(value)
    raise ValueError(f"{type(module).__name__} has neither out_channels nor out_features")


def _in_channels(module: nn.Module) -> int:
    for attr in ("in_channels", "in_features"):
        value = getattr(module, attr, None)
        if value is not None:
            return int(value)
    raise ValueError(f"{type(module).__name__} has neither in_channels nor in_features")


def _dense(module: nn.Module, out_hw: tuple[int, int] | None) -> dict[str, int]:
    counts = module.quadratic_op_counts(out_hw) if out_hw else module.quadratic_op_counts()
    if not isinstance(counts, dict) or not {"mul", "mac"} <= set(counts):
        raise ValueError(
            f"{type(module).__name__}.quadratic_op_counts must return {{'mul', 'mac'}}, "
            f"got {counts!r}"
        )
    return {"mul": int(counts["mul"]), "mac": int(counts["mac"])}


def quadratic_hook(counter: OpCounter, row: RowCounts, name: str):
    """Forward hook counting a quadratic term into ``row`` (see the module docstring)."""

    def hook(module: nn.Module, args: tuple[Any, ...], output: torch.Tensor) -> None:
        x = args[0]
        conv_like = x.dim() == 4 and hasattr(module, "centre_pixels")
        if conv_like:
            frames = int(x.shape[0])
            out_hw = (int(output.shape[-2]), int(output.shape[-1]))
            positions = out_hw[0] * out_hw[1]
        else:
            frames = x.numel() // _in_channels(module)
            out_hw, positions = None, 1
        dense = _dense(module, out_hw)
        per_frame = dense["mul"] + dense["mac"]
        c_out, c_in = _out_channels(module), _in_channels(module)
        row.neurons = c_out * positions
        row.frames += frames
        row.in_elements += x.numel()
        row.dense_ops += per_frame * frames
        kind, _ = counter._input_kind(x)
        if kind != "spikes":
            row.graded_calls += 1
            row.macs += per_frame * frames
            return
        mass = float(counter._pixels_of(x, frames).double().sum().item())
        fr = mass / x.numel()
        row.in_mass += mass
        rank = getattr(module, "rank", None)
        if rank is None:
            spiking = bool(getattr(module, "spiking", False))
            # off-diagonal pairs need both spikes (fr**2); a non-spiking layer's diagonal
            # terms A_mm s_m**2 = A_mm s_m need one (fr)
            diagonal = 0 if spiking else c_in * c_out * positions
            row.acs += (fr * fr * (dense["mac"] - diagonal) + fr * diagonal) * frames
            centre = module.centre_pixels(x) if conv_like else x.reshape(frames, c_in, 1)
            row.event_acs += counting.quadratic_event_ops(centre, c_out, diagonal=not spiking)
        else:
            # per active input: 2r projection coefficients, plus the diagonal correction
            # (A_dd s_d, one coefficient) in spiking mode; per output: 2r squares (MACs)
            r2 = 2 * int(rank)
            per_active = (r2 + (1 if getattr(module, "spiking", False) else 0)) * c_out
            row.acs += fr * c_in * per_active * positions * frames
            centre = module.centre_pixels(x) if conv_like else x.reshape(frames, c_in, 1)
            active = int(round(float(centre.sum(dtype=torch.float64).item())))
            row.event_acs += active * per_active
            row.macs += r2 * c_out * positions * frames

    return hook
