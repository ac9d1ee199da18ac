"""Energy reports: ``measure_energy`` over a loader, ``estimate_energy`` at a given firing rate.

An :class:`EnergyReport` holds one row per counted module (per sample: one inference
of ``T`` steps) and totals in joules::

    report = measure_energy(model, loader, profile="cmos45nm-fp32", T=10)
    print(report.to_markdown())
    report.write("out/energy")        # energy.json, energy.csv, energy.md (atomic)

Energy of a row (profile :class:`~qifsim.energy.profiles.EnergyProfile`)::

    energy_J       = MACs * E_MAC + ACs * E_AC + neuron updates * E_update
    energy_event_J = MACs * E_MAC + event ACs * E_AC + neuron updates * E_update

``ACs`` is the QIF paper's estimate (input firing rate x dense ops, Eq. 17), ``event
ACs`` the exact event-driven count (:mod:`qifsim.energy.meter` states the rules). With
the default profile ``energy_J`` is Eq. 17: ``T (fr E_AC OP_AC + E_MAC OP_MAC)`` summed
over layers.
"""

from __future__ import annotations

import csv
import io
import json
import os
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import nn

from ..atomic import atomic_path, write_json_atomic
from .histogram import MembraneHistograms
from .meter import ENCODING_MACS, NOT_COUNTED, OpCounter, RowCounts
from .profiles import DEFAULT_PROFILE, EnergyProfile, load_profile

#: Columns of a report row, in order (CSV header).
ROW_FIELDS = (
    "name",
    "kind",
    "layer_type",
    "neuron",
    "neurons",
    "in_rate",
    "out_rate",
    "dense_ops",
    "macs",
    "acs",
    "event_acs",
    "event_macs",
    "neuron_updates",
    "spikes",
    "energy_J",
    "energy_event_J",
)


@dataclass
class EnergyRow:
    """One counted module, per sample (one inference of ``T`` steps).

    ``neurons``: output elements per step; ``in_rate``: mean input value on spike inputs
    (the paper's fr; None on graded input); ``out_rate``: firing rate of a neuron row,
    spikes / (neurons * T); ``dense_ops``, ``macs``, ``acs`` (estimate), ``event_acs``:
    operations per sample; ``event_macs``: the MACs with a non-zero input (informative:
    the energies cost ``macs``); ``neuron_updates``: neurons * T (neuron rows);
    ``spikes``: spikes per sample; energies in joules per sample.
    """

    name: str
    kind: str
    layer_type: str
    neuron: str | None
    neurons: int
    in_rate: float | None
    out_rate: float | None
    dense_ops: float
    macs: float
    acs: float
    event_acs: float
    event_macs: float
    neuron_updates: float
    spikes: float
    energy_J: float
    energy_event_J: float

    def to_dict(self) -> dict[str, Any]:
        return {k: getattr(self, k) for k in ROW_FIELDS}


def _row(counts: RowCounts, samples: int, profile: EnergyProfile) -> EnergyRow:
    n = max(samples, 1)
    updates = counts.frames * counts.neurons / n if counts.kind == "neuron" else 0.0
    e_update = (
        profile.neuron_update_energy(counts.neuron, counts.update_ops) if counts.neuron else 0.0
    )
    macs, acs, event = counts.macs / n, counts.acs / n, counts.event_acs / n
    fixed = macs * profile.mac_energy + updates * e_update
    return EnergyRow(
        name=counts.name,
        kind=counts.kind,
        layer_type=counts.layer_type,
        neuron=counts.neuron,
        neurons=counts.neurons,
        in_rate=counts.in_rate,
        out_rate=counts.out_rate,
        dense_ops=counts.dense_ops / n,
        macs=macs,
        acs=acs,
        event_acs=event,
        event_macs=counts.event_macs / n,
        neuron_updates=updates,
        spikes=counts.spikes / n,
        energy_J=fixed + acs * profile.ac_energy,
        energy_event_J=fixed + event * profile.ac_energy,
    )


@dataclass
class EnergyReport:
    """Per-layer operation counts, firing rates and energy of one model (per sample).

    Attributes:
        rows: :class:`EnergyRow` per counted module, forward-registration order.
        profile: the :class:`EnergyProfile` used.
        samples: samples measured; ``steps``: ``T``.
        encoding_macs: ``"per_step"`` or ``"once"``.
        model: a label (e.g. ``"digits-net (qif)"``).
        neuron: ``"qif"``/``"lif"``/``"mixed"``/None.
        note: how the inputs/spikes were obtained (e.g. an imposed firing rate).
        histograms: ``{layer: Histogram}`` when requested.
    """

    rows: list[EnergyRow]
    profile: EnergyProfile
    samples: int
    steps: int
    encoding_macs: str
    model: str = ""
    neuron: str | None = None
    note: str = ""
    histograms: dict[str, Any] = field(default_factory=dict)

    # -- totals -----------------------------------------------------------
    def total(self, column: str) -> float:
        """Sum of a numeric column over all rows (per sample)."""
        return float(sum(getattr(r, column) for r in self.rows))

    @property
    def energy_J(self) -> float:
        """Energy per sample in joules (the paper's AC estimate)."""
        return self.total("energy_J")

    @property
    def energy_event_J(self) -> float:
        """Energy per sample in joules with exact event-driven ACs."""
        return self.total("energy_event_J")

    @property
    def spike_rate(self) -> float | None:
        """Spikes over neuron updates of all neuron rows together (layers weigh by size)."""
        updates = self.total("neuron_updates")
        return self.total("spikes") / updates if updates else None

    def layer_rates(self) -> dict[str, float]:
        """Firing rate per neuron layer (spikes / (neurons * T)), forward order."""
        return {
            r.name: r.out_rate for r in self.rows if r.kind == "neuron" and r.out_rate is not None
        }

    @property
    def not_counted(self) -> list[str]:
        """Modules listed without operations (``strict=False``), by qualified name."""
        return [r.name for r in self.rows if r.kind == NOT_COUNTED]

    def totals(self) -> dict[str, Any]:
        """Totals per sample: operation counts, spikes, spike rate and energies (J)."""
        return {
            "dense_ops": self.total("dense_ops"),
            "macs": self.total("macs"),
            "acs": self.total("acs"),
            "event_acs": self.total("event_acs"),
            "event_macs": self.total("event_macs"),
            "neuron_updates": self.total("neuron_updates"),
            "spikes": self.total("spikes"),
            "spike_rate": self.spike_rate,
            "energy_J": self.energy_J,
            "energy_event_J": self.energy_event_J,
        }

    # -- serialisation ----------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        return {
            "model": self.model,
            "neuron": self.neuron,
            "profile": self.profile.to_dict(),
            "samples": self.samples,
            "steps": self.steps,
            "encoding_macs": self.encoding_macs,
            "note": self.note,
            "units": "per sample (one inference of T steps); energies in joules",
            "totals": self.totals(),
            "rows": [r.to_dict() for r in self.rows],
            "histograms": {k: h.to_dict() for k, h in self.histograms.items()},
        }

    def to_json(self) -> str:
        """The report as indented, strict JSON."""
        return json.dumps(self.to_dict(), indent=2, allow_nan=False)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> EnergyReport:
        """Rebuild a report from :meth:`to_dict` output (histograms are not restored)."""
        from .profiles import validate_profile

        return cls(
            rows=[EnergyRow(**{k: r.get(k, 0.0) for k in ROW_FIELDS}) for r in data["rows"]],
            profile=validate_profile(data["profile"]),
            samples=int(data["samples"]),
            steps=int(data["steps"]),
            encoding_macs=data["encoding_macs"],
            model=data.get("model", ""),
            neuron=data.get("neuron"),
            note=data.get("note", ""),
        )

    def to_csv(self) -> str:
        """One line per row, :data:`ROW_FIELDS` columns."""
        buf = io.StringIO()
        writer = csv.writer(buf, lineterminator="\n")
        writer.writerow(ROW_FIELDS)
        for r in self.rows:
            writer.writerow(["" if v is None else v for v in (getattr(r, k) for k in ROW_FIELDS)])
        return buf.getvalue()

    def to_markdown(self) -> str:
        """A markdown table: per layer and totals (energies in µJ and mJ)."""
        head = (
            f"Energy of {self.model or 'the model'}: profile `{self.profile.name}`, "
            f"{self.samples} samples, T={self.steps}, encoding MACs {self.encoding_macs}"
        )
        lines = [
            head,
            "",
            "| layer | kind | neurons | in fr | out fr | MACs | ACs (fr x ops) | event ACs "
            "| energy (µJ) | event energy (µJ) |",
            "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|",
        ]
        for r in self.rows:
            kind = f"{r.kind} ({r.neuron})" if r.neuron else r.kind
            lines.append(
                f"| {r.name} | {kind} | {r.neurons:,} | {_rate(r.in_rate)} | "
                f"{_rate(r.out_rate)} | {r.macs:,.0f} | {r.acs:,.0f} | {r.event_acs:,.0f} | "
                f"{_uj(r.energy_J)} | {_uj(r.energy_event_J)} |"
            )
        t = self.totals()
        lines.append(
            f"| **total** | | | | {_rate(t['spike_rate'])} | {t['macs']:,.0f} | "
            f"{t['acs']:,.0f} | {t['event_acs']:,.0f} | {_uj(t['energy_J'])} | "
            f"{_uj(t['energy_event_J'])} |"
        )
        lines += [
            "",
            f"Total per sample: {t['energy_J'] * 1e3:.6f} mJ (paper estimate), "
            f"{t['energy_event_J'] * 1e3:.6f} mJ (event-driven).",
        ]
        if self.not_counted:
            lines.append(
                "Not counted (strict=False; their operations are missing from the totals): "
                + ", ".join(self.not_counted)
                + "."
            )
        if self.note:
            lines.append(self.note)
        return "\n".join(lines) + "\n"

    def write(self, folder: str | os.PathLike, stem: str = "energy") -> dict[str, Path]:
        """Write ``STEM.json``, ``STEM.csv`` and ``STEM.md`` into ``folder`` (atomically)."""
        folder = Path(folder)
        paths = {
            "json": write_json_atomic(folder / f"{stem}.json", self.to_dict()),
            "csv": _write_text(folder / f"{stem}.csv", self.to_csv()),
            "markdown": _write_text(folder / f"{stem}.md", self.to_markdown()),
        }
        return paths


def _uj(joules: float) -> str:
    """Joules as µJ: 4 decimals from 1 µJ up, 4 significant digits below (small models)."""
    uj = joules * 1e6
    return f"{uj:.4f}" if abs(uj) >= 1 or uj == 0 else f"{uj:.4g}"


def _rate(v: float | None) -> str:
    return "-" if v is None else f"{v:.4f}"


def _write_text(path: Path, text: str) -> Path:
    with atomic_path(path) as tmp:
        tmp.write_text(text, encoding="utf-8")
    return path


def _neuron_kind(rows: Sequence[RowCounts]) -> str | None:
    kinds = {r.neuron for r in rows if r.neuron}
    return kinds.pop() if len(kinds) == 1 else ("mixed" if kinds else None)


def build_report(
    counter: OpCounter,
    profile: EnergyProfile,
    model_label: str = "",
    note: str = "",
    histograms: dict | None = None,
) -> EnergyReport:
    """An :class:`EnergyReport` from an :class:`~qifsim.energy.meter.OpCounter`'s sums."""
    if counter.samples == 0:
        raise ValueError("no samples were counted (empty loader?)")
    counts = list(counter.rows.values())
    return EnergyReport(
        rows=[_row(c, counter.samples, profile) for c in counts],
        profile=profile,
        samples=counter.samples,
        steps=counter.steps,
        encoding_macs=counter.encoding_macs,
        model=model_label,
        neuron=_neuron_kind(counts),
        note=note,
        histograms=histograms or {},
    )


def _label(model: nn.Module) -> str:
    name = getattr(model, "name", "") or type(model).__name__
    neuron = getattr(model, "neuron", None)
    return f"{name} ({neuron})" if neuron else name


def _prepare(T: int | None, static: bool, device: torch.device) -> Callable:
    from ..train.loaders import to_time_first

    def prepare(x: torch.Tensor) -> torch.Tensor:
        x = x.to(device)
        return x if T is None else to_time_first(x, T, static)

    return prepare


def _batch_runner(forward) -> Callable[[OpCounter, nn.Module, torch.Tensor], None]:
    """``run(counter, model, x)``: one batch through the model, as ``forward`` asks.

    Every batch starts from fresh neuron states (snntorch and spikingjelly keep them in the
    modules between calls: :func:`~qifsim.energy.peers.reset_states`), as their evaluation
    loops do.
    """
    from .peers import reset_states, run_steps

    if forward is None:

        def plain(counter: OpCounter, model: nn.Module, x: torch.Tensor) -> None:
            reset_states(model)
            model(x)

        return plain
    if forward == "steps":
        forward = run_steps
    if not callable(forward):
        raise ValueError(f"forward must be None, 'steps' or a callable, got {forward!r}")

    def run(counter: OpCounter, model: nn.Module, x: torch.Tensor) -> None:
        reset_states(model)
        with counter.sample_batch():
            forward(model, x)

    return run


@torch.no_grad()
def measure_energy(
    model: nn.Module,
    loader: Iterable,
    profile: str | os.PathLike | EnergyProfile = DEFAULT_PROFILE,
    *,
    T: int | None = None,
    static: bool = False,
    encoding_macs: str = "per_step",
    histograms: bool | Sequence[str] | None = None,
    bins: int = 200,
    value_range: tuple[float, float] = (-1.0, 2.0),
    device: str | torch.device | None = None,
    max_batches: int | None = None,
    progress: bool = False,
    label: str | None = None,
    strict: bool = True,
    forward: str | Callable[[nn.Module, torch.Tensor], Any] | None = None,
) -> EnergyReport:
    """Count operations and spikes of ``model`` over ``loader`` and cost them with ``profile``.

    ``T`` and the samples are counted from the model's first spiking layer in each batch
    (:mod:`qifsim.energy.meter`): a multi-step model called on ``[T, B, ...]``, a model
    that loops over time inside its forward, and a model called once per step
    (``forward="steps"``) all give per-sample counts.

    Args:
        model: a spiking model: qifsim's, a norse/snntorch/spikingjelly network, or your own
            module built from countable layers (run in eval mode; its mode is restored).
        loader: yields ``(x, labels)`` or ``x``. With ``T=None`` ``x`` is time-first
            ``[T, B, ...]``; with ``T`` given ``x`` is batch-first event frames ``[B, T, C,
            H, W]`` or, with ``static=True``, images ``[B, C, H, W]`` repeated ``T`` times.
        profile: a shipped profile name, a profile ``.json`` path, or an EnergyProfile.
        encoding_macs: ``"per_step"`` (Eq. 17) or ``"once"`` (direct encoding).
        histograms: pre-reset membrane histograms: ``True`` (all neuron layers), a list of
            layer names, or ``None``/``False``.
        bins, value_range: histogram bins over ``value_range`` (potential units).
        device: where to run (default: the model's).
        max_batches: stop after this many batches.
        progress: show a tqdm bar.
        label: model label in the report (default: ``"<name> (<neuron>)"``).
        strict: False: modules that cannot be counted become ``"not counted"`` rows
            instead of raising.
        forward: how one batch ``x`` runs: None: ``model(x)``; ``"steps"``: once per time
            step, ``model(x[t])``, after resetting snntorch/spikingjelly states
            (:func:`qifsim.energy.peers.run_steps`; ``x`` time-first); or a callable
            ``forward(model, x)`` (all its model calls count as one batch).

    Returns:
        An :class:`EnergyReport`; counts and energies are per sample.

    Raises:
        UnsupportedLayerError: a layer whose operations cannot be counted.
        ValueError: bad arguments, or no samples.
    """
    prof = load_profile(profile)
    counter, recorder = count_batches(
        model,
        loader,
        T=T,
        static=static,
        encoding_macs=encoding_macs,
        histograms=histograms,
        bins=bins,
        value_range=value_range,
        device=device,
        max_batches=max_batches,
        progress=progress,
        strict=strict,
        forward=forward,
    )
    return build_report(
        counter,
        prof,
        label or _label(model),
        histograms=recorder.histograms if recorder is not None else None,
    )


@torch.no_grad()
def count_batches(
    model: nn.Module,
    loader: Iterable,
    *,
    T: int | None = None,
    static: bool = False,
    encoding_macs: str = "per_step",
    histograms: bool | Sequence[str] | None = None,
    bins: int = 200,
    value_range: tuple[float, float] = (-1.0, 2.0),
    device: str | torch.device | None = None,
    max_batches: int | None = None,
    progress: bool = False,
    strict: bool = True,
    forward: str | Callable[[nn.Module, torch.Tensor], Any] | None = None,
) -> tuple[OpCounter, MembraneHistograms | None]:
    """The counting loop of :func:`measure_energy` (same arguments): the filled
    :class:`~qifsim.energy.meter.OpCounter` and the histogram recorder (or None)."""
    from tqdm.auto import tqdm

    if encoding_macs not in ENCODING_MACS:
        raise ValueError(f"encoding_macs must be one of {ENCODING_MACS}, got {encoding_macs!r}")
    if max_batches is not None and max_batches < 1:
        raise ValueError(f"max_batches must be >= 1, got {max_batches}")
    run_batch = _batch_runner(forward)
    if device is None:
        param = next(model.parameters(), None)
        device = param.device if param is not None else torch.device("cpu")
    device = torch.device(device)
    counter = OpCounter(model, encoding_macs=encoding_macs, strict=strict)
    recorder = None
    if histograms:
        layers = None if histograms is True else list(histograms)
        recorder = MembraneHistograms(model, layers, bins, value_range)
    prepare = _prepare(T, static, device)
    was_training = model.training
    model.eval()
    bar = tqdm(loader, desc="energy", leave=False, disable=not progress, dynamic_ncols=True)
    try:
        with counter:
            if recorder is not None:
                recorder.__enter__()
            try:
                for i, batch in enumerate(bar):
                    if max_batches is not None and i >= max_batches:
                        break
                    x = batch[0] if isinstance(batch, (tuple, list)) else batch
                    run_batch(counter, model, prepare(x))
            finally:
                if recorder is not None:
                    recorder.__exit__(None, None, None)
    finally:
        bar.close()
        model.train(was_training)
    return counter, recorder


@torch.no_grad()
def estimate_energy(
    model: nn.Module,
    input_shape: Sequence[int] | None = None,
    T: int | None = None,
    firing_rate: float = 0.1,
    profile: str | os.PathLike | EnergyProfile = DEFAULT_PROFILE,
    *,
    batch: int = 1,
    encoding_macs: str = "per_step",
    seed: int = 0,
    device: str | torch.device | None = None,
) -> EnergyReport:
    """Energy of ``model`` when every neuron layer fires at ``firing_rate`` (no data needed).

    Runs one batch of uniform random graded input ``[T, batch, *input_shape]`` (values in
    ``[0, 1)``, so the encoding layer costs MACs; with ``encoding_macs="once"`` the same
    frame at every step) through the model, replacing every
    neuron layer's output by independent Bernoulli(``firing_rate``) spikes, and counts as
    :func:`measure_energy` does. The paper-style estimate (``acs``) then uses the
    measured rate of those spikes, which is within sampling error of ``firing_rate``.

    Args:
        model: a time-first spiking model; ``input_shape`` defaults to its
            ``input_shape`` attribute (``(C, H, W)``) and ``T`` to its ``default_steps``.
        firing_rate: spikes per neuron per step, in [0, 1].
        batch: samples in the batch (more: smaller sampling error).
        seed: seed of the input and the spikes.

    Raises:
        ValueError: a rate outside [0, 1] or a missing input shape / T.
    """
    if not 0.0 <= float(firing_rate) <= 1.0:
        raise ValueError(f"firing_rate must be in [0, 1], got {firing_rate}")
    shape = tuple(input_shape) if input_shape is not None else getattr(model, "input_shape", None)
    steps = T if T is not None else getattr(model, "default_steps", None)
    if shape is None or steps is None:
        raise ValueError("give input_shape (C, H, W) and T for a model without those attributes")
    prof = load_profile(profile)
    if device is None:
        param = next(model.parameters(), None)
        device = param.device if param is not None else torch.device("cpu")
    gen = torch.Generator(device="cpu").manual_seed(seed)
    if encoding_macs == "once":  # the same frame at every step (direct encoding)
        x = torch.rand((1, int(batch), *shape), generator=gen).expand(int(steps), -1, *shape)
        x = x.contiguous().to(device)
    else:
        x = torch.rand((int(steps), int(batch), *shape), generator=gen).to(device)

    def override(name: str, spikes: torch.Tensor) -> torch.Tensor:
        draw = torch.rand(spikes.shape, generator=gen) < firing_rate
        return draw.to(device=spikes.device, dtype=spikes.dtype)

    counter = OpCounter(model, encoding_macs=encoding_macs, spike_override=override)
    was_training = model.training
    model.eval()
    try:
        with counter:
            model(x)
    finally:
        model.train(was_training)
    note = (
        f"Spikes imposed: every neuron layer fires Bernoulli({firing_rate}) per neuron and step; "
        f"input uniform [0, 1) (graded), batch {batch}, seed {seed}."
    )
    return build_report(counter, prof, _label(model), note=note)


__all__ = [
    "ROW_FIELDS",
    "EnergyReport",
    "EnergyRow",
    "build_report",
    "count_batches",
    "estimate_energy",
    "measure_energy",
]
