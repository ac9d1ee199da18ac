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

import torch
from torch import nn

from .compare import Comparison, compare
from .plots import plot_firing_rates, plot_membrane
from .profiles import DEFAULT_PROFILE, EnergyProfile, load_profile
from .report import EnergyReport, build_report, count_batches, measure_energy


@torch.no_grad()
def calibrate_batch_norms(model: nn.Module, x: torch.Tensor) -> nn.Module:
    """Set every batch norm's running statistics to those of one batch ``x`` (in place).

    An untrained model's norms hold mean 0 / variance 1, so its deeper layers would not
    fire: one pass in train mode with ``momentum=None`` (a cumulative average, so one
    batch gives its own statistics). Returns the model in eval mode, momenta restored.
    """
    norms = [m for m in model.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]
    saved = [m.momentum for m in norms]
    for m in norms:
        m.reset_running_stats()
        m.momentum = None
    model.train()
    try:
        model(x)
    finally:
        for m, momentum in zip(norms, saved, strict=True):
            m.momentum = momentum
        model.eval()
    return model


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


# -- the peers' models: norse and snntorch measured, NeuroBench cross-check --------------

#: Frames, samples and seed of :func:`peer_energy_section`.
PEER_T, PEER_SAMPLES, PEER_SEED = 10, 8, 0


def peer_frames(samples: int = PEER_SAMPLES, T: int = PEER_T) -> torch.Tensor:
    """The first ``samples`` digits-dvs test recordings as event frames ``[B, T, 2, 34, 34]``."""
    from ..events.digits_dvs import DigitsDVS

    data = DigitsDVS("test", n_frames=T, split_by="count", progress=False, n_samples=samples)
    return torch.stack([torch.as_tensor(data[i][0]) for i in range(len(data))]).float()


def norse_model(seed: int = PEER_SEED) -> nn.Module:
    """The demo's norse model (untrained, seeded), for digits-dvs frames ``2x34x34``.

    ``norse.torch.SequentialState`` of ``Flatten -> Linear 2312->128 -> norse LIF ->
    Linear 128->64 -> qifsim QIF -> Linear 64->10``, time-first ``[T, B, ...]``; the
    threshold and the second layer's gain are set so every layer fires on digits-dvs
    frames. Also an entry point: ``qifsim energy qifsim.energy.demo:norse_model ...``.
    """
    from norse.torch import LIF as NorseLIF
    from norse.torch import LIFParameters, SequentialState

    from ..neurons import QIF

    torch.manual_seed(seed)
    model = SequentialState(
        nn.Flatten(2),
        nn.Linear(2 * 34 * 34, 128),
        NorseLIF(LIFParameters(v_th=torch.tensor(0.05))),
        nn.Linear(128, 64),
        QIF(),
        nn.Linear(64, 10),
    )
    with torch.no_grad():
        model[3].weight.mul_(4.0)
    return model.eval()


def snntorch_model(seed: int = PEER_SEED) -> nn.Module:
    """The demo's snntorch model (untrained, seeded), for digits-dvs frames ``2x34x34``.

    ``nn.Sequential`` of ``Flatten -> Linear 2312->128 -> snntorch Leaky -> Linear 128->10
    -> Leaky``, called once per step with ``[B, ...]`` (``forward="steps"``, CLI
    ``--step-loop``); thresholds set so both layers fire. Also an entry point.
    """
    import snntorch

    torch.manual_seed(seed)
    model = nn.Sequential(
        nn.Flatten(),
        nn.Linear(2 * 34 * 34, 128),
        snntorch.Leaky(beta=0.9, threshold=0.5, init_hidden=True),
        nn.Linear(128, 10),
        snntorch.Leaky(beta=0.9, threshold=0.2, init_hidden=True, output=True),
    )
    return model.eval()


def peer_models(seed: int = PEER_SEED) -> dict[str, nn.Module]:
    """The two demo models: ``{"norse": norse_model(seed), "snntorch": snntorch_model(seed)}``."""
    return {"norse": norse_model(seed), "snntorch": snntorch_model(seed)}


def _peer_row(name: str, report: EnergyReport, neuron_report: EnergyReport) -> dict[str, Any]:
    t = report.totals()
    return {
        "model": name,
        "neurons": ", ".join(sorted({r.neuron for r in report.rows if r.neuron})),
        "T": report.steps,
        "samples": report.samples,
        "spike_rate": report.spike_rate,
        "macs": t["macs"],
        "event_macs": t["event_macs"],
        "event_acs": t["event_acs"],
        "energy_uJ": report.energy_J * 1e6,
        "event_energy_uJ": report.energy_event_J * 1e6,
        "with_neuron_updates_uJ": neuron_report.energy_J * 1e6,
    }


def _peer_table(rows: list[dict[str, Any]]) -> str:
    lines = [
        "| model | neurons | T | spike rate | MACs | MACs on non-zero input | ACs (event) "
        "| energy (µJ) | event energy (µJ) | + neuron updates (µJ) |",
        "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for r in rows:
        lines.append(
            f"| {r['model']} | {r['neurons']} | {r['T']} | {r['spike_rate']:.4f} "
            f"| {r['macs']:,.0f} | {r['event_macs']:,.0f} | {r['event_acs']:,.0f} "
            f"| {r['energy_uJ']:.4f} "
            f"| {r['event_energy_uJ']:.4f} | {r['with_neuron_updates_uJ']:.4f} |"
        )
    return "\n".join(lines) + "\n"


def peer_energy_section(progress: bool = False) -> dict[str, Any]:
    """Energy of a norse and an snntorch model, and the NeuroBench cross-check.

    Measures the two :func:`peer_models` on the first :data:`PEER_SAMPLES` digits-dvs
    test recordings (``T`` = :data:`PEER_T`, event frames: graded, so the first layer
    costs MACs) with :func:`~qifsim.energy.report.measure_energy` under ``cmos45nm-fp32``
    (Eq. 17) and ``cmos45nm-fp32-neuron`` (plus every neuron update: norse LIF 2 mul +
    5 add, QIF 2 mul + 3 add, snntorch Leaky 1 mul + 1 add). When ``neurobench`` is
    importable, cross-checks both models and an untrained digits-net (tdBN statistics
    from the same frames) with NeuroBench (:func:`qifsim.energy.neurobench.cross_check`).
    Prints the tables (with ``progress``, also what it is doing).

    Returns:
        ``{"text": markdown, "rows": [per model: spike rate, MACs, ACs, energies in µJ],
        "reports": {"norse": EnergyReport, "snntorch": EnergyReport},
        "neurobench": {model: CrossCheck.to_dict()} or None (not installed),
        "neurobench_agrees": bool or None}``.
    """
    import time

    start = time.perf_counter()
    say = print if progress else (lambda *a, **k: None)
    frames = peer_frames()
    time_first = frames.transpose(0, 1).contiguous()
    say(f"peers: {len(frames)} digits-dvs recordings, {time.perf_counter() - start:.1f} s")
    models = peer_models()
    forwards = {"norse": None, "snntorch": "steps"}
    reports: dict[str, EnergyReport] = {}
    rows = []
    for name, model in models.items():
        counter, _ = count_batches(model, [time_first], forward=forwards[name])
        reports[name] = build_report(counter, load_profile(DEFAULT_PROFILE), f"{name} model")
        with_updates = build_report(counter, load_profile("cmos45nm-fp32-neuron"), name)
        rows.append(_peer_row(name, reports[name], with_updates))
    text = (
        f"Peers' models on {len(frames)} digits-dvs test recordings (T={PEER_T}, untrained, "
        f"seed {PEER_SEED}; per sample; `cmos45nm-fp32`, last column "
        "`cmos45nm-fp32-neuron`):\n\n" + _peer_table(rows)
    )
    checks: dict[str, Any] | None = None
    agrees: bool | None = None
    try:
        from .neurobench import cross_check, require_neurobench

        require_neurobench()
    except ImportError:
        text += "\nNeuroBench cross-check skipped: neurobench is not installed.\n"
    else:
        from torch.utils.data import DataLoader, TensorDataset

        from ..models import build_model

        loader = DataLoader(
            TensorDataset(frames, torch.zeros(len(frames), dtype=torch.long)), batch_size=4
        )
        torch.manual_seed(PEER_SEED)
        digits = calibrate_batch_norms(build_model("digits-net", neuron="qif"), time_first)
        checks, agree = {}, []
        for name, model, forward in (
            ("digits-net", digits, None),
            ("norse", models["norse"], None),
            ("snntorch", models["snntorch"], "steps"),
        ):
            say(f"peers: NeuroBench cross-check of {name}, {time.perf_counter() - start:.1f} s")
            check = cross_check(model, loader, forward=forward, label=name)
            checks[name] = check.to_dict()
            agree.append(check.agrees)
            if name != "snntorch":
                text += "\n" + check.to_markdown()
        agrees = all(agree)
        text += (
            "\nNeuroBench agreement (per layer and in total, same convention): "
            + ", ".join(f"{name} {'yes' if c['agrees'] else 'NO'}" for name, c in checks.items())
            + "\n"
        )
    print(text, end="")
    say(f"peers: done in {time.perf_counter() - start:.1f} s")
    return {
        "text": text,
        "rows": rows,
        "reports": reports,
        "neurobench": checks,
        "neurobench_agrees": agrees,
    }


if __name__ == "__main__":  # python -m qifsim.energy.demo: the numbers of the README section
    peer_energy_section(progress=True)
