"""Helpers for the demo and the CLI: LIF vs QIF energy section, models from checkpoints.

* :func:`demo_energy_section`: two trained models (LIF, QIF) and a loader -> the Table 1
  text, the comparison, and PNGs (firing rates per layer, membrane distributions).

Models come from checkpoints through :func:`qifsim.train.load_trained`.
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from torch import nn

from .compare import Comparison, compare
from .plots import plot_firing_rates, plot_membrane
from .profiles import DEFAULT_PROFILE, EnergyProfile
from .report import EnergyReport, measure_energy


def _first_neuron_layer(model: nn.Module) -> str:
    from .monitor import spiking_layers

    names = list(spiking_layers(model))
    if not names:
        raise ValueError("the model has no qifsim neuron layers")
    return names[0]


def compare_models(
    model_lif: nn.Module,
    model_qif: nn.Module,
    loader: Iterable,
    out_dir: str | os.PathLike,
    *,
    T: int | None = None,
    static: bool = False,
    profile: str | os.PathLike | EnergyProfile = DEFAULT_PROFILE,
    layer: str | None = None,
    max_batches: int | None = None,
    encoding_macs: str = "per_step",
    label: str = "",
    progress: bool = False,
) -> dict[str, Any]:
    """Measure both models on ``loader``, compare them and write table + plots to ``out_dir``.

    ``layer``: the neuron layer whose membrane distribution is plotted (default: the
    first). Writes ``compare.{json,csv,md}``, ``firing_rates.png``,
    ``membrane_qif.png`` and ``membrane_lif.png``.

    Returns:
        ``{"text": markdown table, "comparison": Comparison, "reports": (lif, qif),
        "files": {kind: path}}``.
    """
    out = Path(out_dir)
    layer = layer or _first_neuron_layer(model_qif)
    reports: list[EnergyReport] = []
    for model in (model_lif, model_qif):
        reports.append(
            measure_energy(
                model,
                loader,
                profile,
                T=T,
                static=static,
                histograms=[layer],
                max_batches=max_batches,
                encoding_macs=encoding_macs,
                progress=progress,
            )
        )
    lif, qif = reports
    comparison: Comparison = compare(lif, qif, label=label or lif.model.split(" (")[0])
    files: dict[str, Path] = dict(comparison.write(out))
    files["firing_rates_png"] = plot_firing_rates(
        comparison, out / "firing_rates.png", title=f"{comparison.label}: firing rate per layer"
    )
    for name, report in (("qif", qif), ("lif", lif)):
        files[f"membrane_{name}_png"] = plot_membrane(
            report.histograms[layer],
            out / f"membrane_{name}.png",
            title=f"{name.upper()} {layer}: pre-reset membrane potential",
        )
    return {"text": comparison.to_markdown(), "comparison": comparison, "reports": (lif, qif),
            "files": files}  # fmt: skip


def demo_energy_section(
    model_lif: nn.Module,
    model_qif: nn.Module,
    loader: Iterable,
    out_dir: str | os.PathLike,
    **kwargs: Any,
) -> dict[str, Any]:
    """The demo's energy section: :func:`compare_models` (same arguments and result)."""
    return compare_models(model_lif, model_qif, loader, out_dir, **kwargs)
