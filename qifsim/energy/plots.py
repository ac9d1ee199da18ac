"""Plots (matplotlib, Agg, PNG, written atomically).

* :func:`plot_firing_rates`: per-layer firing rates, LIF vs QIF (QIF paper Fig. 8);
* :func:`plot_membrane`: a layer's pre-reset membrane-potential distribution with the
  threshold, the analytic surrogate window ``[mu - sigma, mu + sigma]`` (Theorem 1) and the
  naive rectangular window of width ``alpha = 1`` centred on the threshold (Figs. 1 and 9).
"""

from __future__ import annotations

import os
from pathlib import Path

from ..atomic import atomic_path
from .compare import Comparison
from .histogram import Histogram


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _save(fig, path: str | os.PathLike) -> Path:
    path = Path(path)
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", dpi=120, bbox_inches="tight")
    _pyplot().close(fig)
    return path


def _short(name: str) -> str:
    """``features.conv1.spike`` -> ``conv1``; ``features.layer1.0.spike2`` -> ``layer1.0.2``."""
    parts = [p for p in name.split(".") if p not in ("features", "classifier", "spike")]
    if parts and parts[-1].startswith("spike"):
        parts[-1] = parts[-1].removeprefix("spike")
    return ".".join(parts) or name


def plot_firing_rates(comparison: Comparison, path: str | os.PathLike, title: str = "") -> Path:
    """Grouped bars: firing rate of each neuron layer, LIF vs QIF. Returns the PNG path."""
    plt = _pyplot()
    import numpy as np

    rows = comparison.layers()
    if not rows:
        raise ValueError("the two reports share no neuron layer to plot")
    names = [_short(r["layer"]) for r in rows]
    x = np.arange(len(rows))
    fig, ax = plt.subplots(figsize=(max(5.0, 0.55 * len(rows) + 2), 3.6))
    ax.bar(x - 0.2, [r["lif_rate"] for r in rows], 0.4, label="LIF", color="#4477aa")
    ax.bar(x + 0.2, [r["qif_rate"] for r in rows], 0.4, label="QIF", color="#cc6677")
    ax.set_xticks(x, names, rotation=45, ha="right")
    ax.set_ylabel("firing rate (spikes / neuron / step)")
    s = comparison.summary()
    red = s["spike_rate_reduction"]
    change = ""
    if red is not None:
        change = f" ({red:.0%} fewer spikes)" if red >= 0 else f" ({-red:.0%} more spikes)"
    subtitle = f"mean LIF {s['lif_spike_rate']:.3f}, QIF {s['qif_spike_rate']:.3f}{change}"
    ax.set_title((title + "\n" if title else "") + subtitle, fontsize=10)
    ax.legend()
    ax.grid(axis="y", alpha=0.3)
    return _save(fig, path)


def plot_membrane(
    hist: Histogram,
    path: str | os.PathLike,
    title: str = "",
    alpha: float = 1.0,
) -> Path:
    """Density of the pre-reset potential with the threshold and both surrogate windows.

    The analytic window is drawn for QIF layers (``hist.params`` a QIFParameters); the
    naive window is ``|u - u_th| < alpha / 2``. Returns the PNG path.
    """
    plt = _pyplot()
    import numpy as np

    from ..neurons.parameters import QIFParameters, analytic_window

    edges = np.asarray(hist.edges)
    counts = np.asarray(hist.counts, dtype=float)
    total = hist.total
    if total == 0:
        raise ValueError("the histogram is empty: run the model with the recorder open first")
    density = counts / (total * np.diff(edges))
    fig, ax = plt.subplots(figsize=(6.0, 3.6))
    ax.stairs(density, edges, fill=True, alpha=0.5, color="#777777", label="pre-reset v")
    if hist.u_th is not None:
        ax.axvline(hist.u_th, color="k", linestyle="--", linewidth=1, label=f"u_th = {hist.u_th}")
        ax.axvspan(
            hist.u_th - alpha / 2, hist.u_th + alpha / 2, color="#4477aa", alpha=0.15,
            label=f"naive window (alpha={alpha})",
        )  # fmt: skip
    if isinstance(hist.params, QIFParameters):
        mu, sigma = (float(v) for v in analytic_window(hist.params))
        ax.axvspan(mu - sigma, mu + sigma, color="#cc6677", alpha=0.2,
                   label=f"analytic window [{mu - sigma:.2f}, {mu + sigma:.2f}]")  # fmt: skip
    outside = hist.below + hist.above
    note = f"; {outside / total:.1%} outside the plotted range" if outside else ""
    ax.set_xlabel("membrane potential v (before reset)")
    ax.set_ylabel("density")
    ax.set_title((title + "\n" if title else "") + f"{total:,} values{note}", fontsize=10)
    ax.legend(fontsize=8)
    return _save(fig, path)
