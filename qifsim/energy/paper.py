"""How qifsim's counts relate to the QIF paper's Table 1 (``python -m qifsim.energy.paper``).

For each of the paper's architectures in its paper setup (:data:`qifsim.models.PAPER_SETUPS`),
counted on Bernoulli spikes by :func:`~qifsim.energy.report.estimate_energy`:

* the energy per inference at a stated firing rate (every neuron layer fires at it), with
  the paper's AC estimate and with exact event-driven ACs;
* because the estimate is linear in the layers' input firing rate (Eq. 17's ``fr``),
  ``E = E_MAC + fr_in * slope`` with ``fr_in`` the input rate of the spike-driven layers
  averaged with their dense ops as weights: the ``fr_in`` at which qifsim's count gives
  the paper's reported LIF and QIF energies (the "implied" input rates). It equals the
  neurons' rate except after max pooling, which raises it (DVSGestureNet: 0.34 at a
  neuron rate of 0.1). A reported energy outside ``[E_MAC, E_MAC + slope]`` shows as ``-``.

The reported numbers (mJ, LIF -> QIF) are the QIF paper's Table 1 as collected in
SCIENCE.md; they are the reference the measured counts are set against, not inputs to them.
"""

from __future__ import annotations

import argparse
import json
import sys
from dataclasses import dataclass
from typing import Any

#: QIF paper Table 1 (mJ per inference): (model, dataset, num_classes, LIF, QIF).
PAPER_TABLE_1: tuple[tuple[str, str, int, float, float], ...] = (
    ("resnet19", "CIFAR-10", 10, 0.968, 0.531),
    ("resnet19", "CIFAR-100", 100, 0.958, 0.778),
    ("vggsnn", "CIFAR10-DVS", 10, 0.848, 0.361),
    ("vgg11", "N-Caltech101", 101, 0.788, 0.374),
    ("vggsnn", "N-Cars", 2, 1.090, 0.259),
    ("dvsgesturenet", "DVS128-Gesture", 11, 1.095, 0.724),
)


@dataclass
class PaperRow:
    """One architecture: counts at ``rate`` and the rates implied by the paper's energies."""

    model: str
    dataset: str
    input: str
    rate: float
    mac_mJ: float
    energy_mJ: float
    energy_event_mJ: float
    measured_rate: float
    paper_lif_mJ: float
    paper_qif_mJ: float
    implied_lif_rate: float | None
    implied_qif_rate: float | None


def paper_rows(
    rate: float = 0.1,
    profile: str = "cmos45nm-fp32",
    batch: int = 1,
    seed: int = 0,
    encoding_macs: str = "per_step",
) -> list[PaperRow]:
    """Count every Table 1 architecture at ``rate`` (see the module docstring)."""
    from ..models import PAPER_SETUPS, build_model
    from .report import estimate_energy

    rows = []
    for name, dataset, classes, lif_mJ, qif_mJ in PAPER_TABLE_1:
        setup = PAPER_SETUPS[name]
        model = build_model(
            name,
            num_classes=classes,
            in_channels=setup.in_channels,
            input_size=setup.input_size,
        )
        report = estimate_energy(model, T=setup.steps, firing_rate=rate, profile=profile,
                                 batch=batch, seed=seed, encoding_macs=encoding_macs)  # fmt: skip
        mac = sum(r.macs for r in report.rows) * report.profile.mac_energy
        driven = [r for r in report.rows if r.in_rate is not None]
        dense = sum(r.dense_ops for r in driven)
        measured = sum(r.in_rate * r.dense_ops for r in driven) / dense if dense else 0.0
        slope = (report.energy_J - mac) / measured if measured else 0.0

        def implied(paper_mJ: float, mac=mac, slope=slope) -> float | None:
            fr = (paper_mJ * 1e-3 - mac) / slope if slope else None
            return fr if fr is not None and 0.0 <= fr <= 1.0 else None

        rows.append(
            PaperRow(
                model=name,
                dataset=dataset,
                input=setup.input,
                rate=rate,
                mac_mJ=mac * 1e3,
                energy_mJ=report.energy_J * 1e3,
                energy_event_mJ=report.energy_event_J * 1e3,
                measured_rate=measured,
                paper_lif_mJ=lif_mJ,
                paper_qif_mJ=qif_mJ,
                implied_lif_rate=implied(lif_mJ),
                implied_qif_rate=implied(qif_mJ),
            )
        )
    return rows


def to_markdown(rows: list[PaperRow], profile: str, encoding_macs: str = "per_step") -> str:
    """The README table."""

    def f(v: float | None, spec: str) -> str:
        return "-" if v is None else format(v, spec)

    rate = rows[0].rate if rows else 0.0
    lines = [
        f"| model | dataset | input | MAC part (mJ) | E, neurons at fr={rate} (mJ) "
        "| event-driven (mJ) "
        "| paper LIF / QIF (mJ) | implied input fr LIF / QIF |",
        "|---|---|---|---:|---:|---:|---:|---:|",
    ]
    for r in rows:
        lines.append(
            f"| {r.model} | {r.dataset} | {r.input} | {r.mac_mJ:.3f} | {r.energy_mJ:.3f} | "
            f"{r.energy_event_mJ:.3f} | {r.paper_lif_mJ:.3f} / {r.paper_qif_mJ:.3f} | "
            f"{f(r.implied_lif_rate, '.3f')} / {f(r.implied_qif_rate, '.3f')} |"
        )
    lines.append("")
    lines.append(
        f"Profile `{profile}`, encoding MACs {encoding_macs.replace('_', ' ')}; energies per "
        "inference (one sample, all T steps)."
    )
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m qifsim.energy.paper", description=__doc__.split("\n\n")[0]
    )
    parser.add_argument("--rate", type=float, default=0.1, help="firing rate (default: 0.1)")
    parser.add_argument("--profile", default="cmos45nm-fp32")
    parser.add_argument("--encoding-macs", choices=("per_step", "once"), default="per_step")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args(argv)
    rows = paper_rows(args.rate, args.profile, encoding_macs=args.encoding_macs)
    if args.json:
        data: list[dict[str, Any]] = [vars(r) for r in rows]
        print(json.dumps(data, indent=2))
    else:
        print(to_markdown(rows, args.profile, args.encoding_macs), end="")
    return 0


if __name__ == "__main__":
    sys.exit(main())
