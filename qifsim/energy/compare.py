"""LIF vs QIF: the QIF paper's Table 1 layout plus the spike-rate reduction.

``compare(report_lif, report_qif)`` -> :class:`Comparison` with the energy per sample of
both (mJ), the improvement ``E_LIF / E_QIF``, the overall spike rates and their
reduction ``1 - rate_QIF / rate_LIF``, and per-layer firing rates side by side (layers
matched by name; Fig. 8). ``to_markdown()``, ``to_json()``, ``to_csv()`` and
``write(folder)`` (atomic).
"""

from __future__ import annotations

import csv
import io
import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..atomic import atomic_path, write_json_atomic
from .report import EnergyReport


def _ratio(a: float | None, b: float | None) -> float | None:
    return None if a is None or b is None or b == 0 else a / b


@dataclass
class Comparison:
    """Table 1 of the QIF paper for one model: LIF mJ, QIF mJ, improvement, spike rates.

    Attributes:
        lif, qif: the two reports.
        label: row label (model and dataset).
    """

    lif: EnergyReport
    qif: EnergyReport
    label: str = ""

    def summary(self) -> dict[str, Any]:
        """Energies (mJ per sample), improvement (x), spike rates and their reduction."""
        lif_rate, qif_rate = self.lif.spike_rate, self.qif.spike_rate
        return {
            "label": self.label,
            "profile": self.lif.profile.name,
            "lif_mJ": self.lif.energy_J * 1e3,
            "qif_mJ": self.qif.energy_J * 1e3,
            "improvement_x": _ratio(self.lif.energy_J, self.qif.energy_J),
            "lif_event_mJ": self.lif.energy_event_J * 1e3,
            "qif_event_mJ": self.qif.energy_event_J * 1e3,
            "improvement_event_x": _ratio(self.lif.energy_event_J, self.qif.energy_event_J),
            "lif_spike_rate": lif_rate,
            "qif_spike_rate": qif_rate,
            "spike_rate_reduction": (
                None if lif_rate in (None, 0) or qif_rate is None else 1.0 - qif_rate / lif_rate
            ),
            "lif_samples": self.lif.samples,
            "qif_samples": self.qif.samples,
        }

    def layers(self) -> list[dict[str, Any]]:
        """Per neuron layer: LIF and QIF firing rates (layers present in both, LIF order)."""
        lif, qif = self.lif.layer_rates(), self.qif.layer_rates()
        return [
            {"layer": name, "lif_rate": rate, "qif_rate": qif[name]}
            for name, rate in lif.items()
            if name in qif
        ]

    def to_dict(self) -> dict[str, Any]:
        return {
            "summary": self.summary(),
            "layers": self.layers(),
            "lif": self.lif.to_dict(),
            "qif": self.qif.to_dict(),
        }

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=2, allow_nan=False)

    def to_csv(self) -> str:
        """Per-layer firing rates, then one ``total`` line with the energies."""
        buf = io.StringIO()
        w = csv.writer(buf, lineterminator="\n")
        w.writerow(["layer", "lif_rate", "qif_rate", "lif_mJ", "qif_mJ", "improvement_x"])
        for row in self.layers():
            w.writerow([row["layer"], row["lif_rate"], row["qif_rate"], "", "", ""])
        s = self.summary()
        w.writerow(
            ["total", s["lif_spike_rate"], s["qif_spike_rate"], s["lif_mJ"], s["qif_mJ"],
             "" if s["improvement_x"] is None else s["improvement_x"]]
        )  # fmt: skip
        return buf.getvalue()

    def to_markdown(self) -> str:
        """The Table 1 row (plus event-driven energies and spike rates) and per-layer rates."""
        s = self.summary()

        def num(v, spec: str) -> str:
            return "-" if v is None else format(v, spec)

        label = self.label or self.lif.model
        lines = [
            f"Energy per sample, profile `{s['profile']}` ({self.lif.samples} LIF / "
            f"{self.qif.samples} QIF samples)",
            "",
            "| model | LIF (mJ) | QIF (mJ) | improvement | LIF spike rate | QIF spike rate "
            "| spike-rate reduction |",
            "|---|---:|---:|---:|---:|---:|---:|",
            f"| {label} | {num(s['lif_mJ'], '.4f')} | {num(s['qif_mJ'], '.4f')} | "
            f"{num(s['improvement_x'], '.2f')}x | {num(s['lif_spike_rate'], '.4f')} | "
            f"{num(s['qif_spike_rate'], '.4f')} | {num(s['spike_rate_reduction'], '.1%')} |",
            "",
            f"Event-driven ACs: LIF {num(s['lif_event_mJ'], '.4f')} mJ, QIF "
            f"{num(s['qif_event_mJ'], '.4f')} mJ ({num(s['improvement_event_x'], '.2f')}x).",
            "",
            "| layer | LIF firing rate | QIF firing rate |",
            "|---|---:|---:|",
        ]
        lines += [
            f"| {r['layer']} | {r['lif_rate']:.4f} | {r['qif_rate']:.4f} |" for r in self.layers()
        ]
        return "\n".join(lines) + "\n"

    def write(self, folder: str | os.PathLike, stem: str = "compare") -> dict[str, Path]:
        """``STEM.json``, ``STEM.csv``, ``STEM.md`` in ``folder`` (atomic)."""
        folder = Path(folder)
        out = {"json": write_json_atomic(folder / f"{stem}.json", self.to_dict())}
        for key, ext, text in (
            ("csv", "csv", self.to_csv()),
            ("markdown", "md", self.to_markdown()),
        ):
            path = folder / f"{stem}.{ext}"
            with atomic_path(path) as tmp:
                tmp.write_text(text, encoding="utf-8")
            out[key] = path
        return out


def compare(report_lif: EnergyReport, report_qif: EnergyReport, label: str = "") -> Comparison:
    """Table 1 of the QIF paper for a LIF and a QIF report of the same architecture.

    Raises:
        ValueError: the reports use different energy profiles (their energies would not
            be comparable).
    """
    if report_lif.profile.to_dict() != report_qif.profile.to_dict():
        raise ValueError(
            f"the reports use different energy profiles ({report_lif.profile.name!r} vs "
            f"{report_qif.profile.name!r}); measure both with the same profile"
        )
    return Comparison(report_lif, report_qif, label)
