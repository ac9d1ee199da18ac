"""Membrane-potential histograms (pre-reset ``v``) of chosen neuron layers, running counts.

``MembraneHistograms(model, layers, bins=200, value_range=(-1.0, 2.0))`` is a context manager.
While open, each chosen qifsim neuron module reports the potential it compares with the
threshold, ``v(t+1)`` before the reset (QIF paper Figs. 1 and 9), for every neuron and
step; the counts go into fixed bins (plus one underflow and one overflow count), so
memory does not grow with the number of batches.

How: for its lifetime the recorder wraps the module instance's ``_run`` (which returns
spikes and the pre-reset potentials of all steps) and restores it on exit.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from ..neurons.modules import _NeuronBase


@dataclass
class Histogram:
    """Running histogram of one layer's pre-reset membrane potential.

    ``edges``: ``bins + 1`` floats; ``counts``: ``bins`` ints; ``below``/``above``: values
    outside ``[edges[0], edges[-1]]``; ``u_th``: the layer's threshold; ``params``: the
    neuron's parameters (for the analytic window in plots).
    """

    edges: list[float]
    counts: list[int]
    below: int = 0
    above: int = 0
    u_th: float | None = None
    params: Any = None

    @property
    def total(self) -> int:
        return sum(self.counts) + self.below + self.above

    def to_dict(self) -> dict[str, Any]:
        return {
            "edges": self.edges,
            "counts": self.counts,
            "below": self.below,
            "above": self.above,
            "u_th": self.u_th,
        }


_HISTC_EXACT = 2**24  # values per histc call: float32 bin counts stay exact


def histogram_counts(
    v: torch.Tensor, bins: int, lo: float, hi: float
) -> tuple[torch.Tensor, int, int]:
    """``(counts [bins] int64, below, above)`` of ``v`` on equal bins over ``[lo, hi]``.

    A value equal to ``hi`` goes to the last bin (as in ``numpy.histogram``).
    """
    flat = v.detach().reshape(-1)
    if flat.dtype not in (torch.float32, torch.float64):
        flat = flat.float()
    below = int(torch.count_nonzero(flat < lo).item())
    above = int(torch.count_nonzero(flat > hi).item())
    # histc counts in float32 (exact up to 2**24): chunks of 2**24 values, int64 totals
    counts = torch.zeros(bins, dtype=torch.int64, device=flat.device)
    for chunk in flat.split(_HISTC_EXACT):
        counts += torch.histc(chunk, bins=bins, min=lo, max=hi).to(torch.int64)  # drops outside
    return counts.cpu(), below, above


class MembraneHistograms:
    """Context manager recording pre-reset potentials of ``layers`` (names) of ``model``.

    Args:
        model: a module with qifsim neuron modules.
        layers: qualified names of neuron modules; ``None``: all of them.
        bins: number of equal bins.
        value_range: ``(lo, hi)`` of the bins, membrane-potential units.

    Raises:
        ValueError: an unknown layer name (listing the neuron layers), bins < 1 or lo >= hi.
    """

    def __init__(
        self,
        model: nn.Module,
        layers: Iterable[str] | None = None,
        bins: int = 200,
        value_range: tuple[float, float] = (-1.0, 2.0),
    ) -> None:
        neurons = {n: m for n, m in model.named_modules() if isinstance(m, _NeuronBase)}
        names = list(neurons) if layers is None else list(layers)
        unknown = [n for n in names if n not in neurons]
        if unknown:
            raise ValueError(
                f"no neuron layer named {unknown}; neuron layers: {', '.join(neurons) or 'none'}"
            )
        lo, hi = (float(v) for v in value_range)
        if int(bins) < 1 or not (math.isfinite(lo) and math.isfinite(hi) and lo < hi):
            raise ValueError(
                f"need bins >= 1 and a finite range lo < hi, got {bins}, {value_range}"
            )
        self.bins, self.lo, self.hi = int(bins), lo, hi
        self.modules = {n: neurons[n] for n in names}
        width = (hi - lo) / self.bins
        edges = [lo + i * width for i in range(self.bins)] + [hi]
        self.histograms = {
            n: Histogram(
                edges=list(edges),
                counts=[0] * self.bins,
                u_th=_scalar(m.neuron_values()["u_th"]),
                params=m.current_parameters(),
            )
            for n, m in self.modules.items()
        }
        self._counts = {n: torch.zeros(self.bins, dtype=torch.int64) for n in names}
        self._patched: list[nn.Module] = []

    def _wrap(self, name: str, module: nn.Module):
        original = module._run
        hist = self.histograms[name]

        def run(x, state):
            out = original(x, state)  # (spikes, pre-reset v, ...): v is the second item
            counts, below, above = histogram_counts(out[1], self.bins, self.lo, self.hi)
            self._counts[name] += counts
            hist.below += below
            hist.above += above
            return out

        return run

    def __enter__(self) -> MembraneHistograms:
        for name, module in self.modules.items():
            module._run = self._wrap(name, module)  # instance attribute shadows the method
            self._patched.append(module)
        return self

    def __exit__(self, *exc) -> None:
        for module in self._patched:
            del module._run
        self._patched.clear()
        for name, hist in self.histograms.items():
            hist.counts = [int(c) for c in self._counts[name].tolist()]


def _scalar(t: torch.Tensor) -> float | None:
    return float(t.item()) if t.numel() == 1 else None
