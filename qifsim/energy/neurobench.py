"""NeuroBench as the external check of qifsim's operation counts (optional extra).

``pip install 'qifsim[neurobench]'`` (NeuroBench 2.3.0, Apache-2.0; it requires tonic,
GPL-3.0, which qifsim does not import). Three helpers:

* :func:`wrap`: a qifsim (or norse/snntorch/spikingjelly/your own) model as a NeuroBench
  model for its ``Benchmark`` harness. NeuroBench data are batch-first (its per-sample
  normalisation divides by ``data[0].size(0)``): the wrapper turns ``[B, T, ...]`` (or,
  with ``T`` and ``static=True``, images ``[B, C, H, W]``) into the model's time-first
  input. It registers every spiking layer qifsim recognises as a NeuroBench activation
  layer under its qualified name, recording the spikes (the output, or its first element).
* :func:`neurobench_metrics`: ``Benchmark(...).run()`` with ``SynapticOperations``,
  ``ActivationSparsity`` and ``ActivationSparsityByLayer`` on a wrapped model.
* :func:`cross_check`: qifsim's counts (:func:`~qifsim.energy.report.count_batches`) and
  NeuroBench's, per connection layer and in total, on the same model and data, each
  pair under the same convention; :class:`CrossCheck` tells whether they agree.

NeuroBench's conventions (``neurobench/metrics/utils/layers``, ``hooks``, ``models``) and
how they map onto qifsim's columns:

======================  =======================================  ============================
NeuroBench              its rule                                 qifsim under that convention
======================  =======================================  ============================
Effective_ACs           per call of a Linear/Conv layer whose    ``event_acs`` of conv/linear
                        input is all in {-1, 0, 1}: non-zero     rows on spikes
                        inputs x non-zero weights they reach
Effective_MACs          the same on any other input              ``event_macs`` (non-zero
                                                                 graded inputs x fan-out)
Dense                   all inputs and weights set to one:       ``dense_ops - padded_taps``
                        every connection of a real input pixel
activation sparsity     zeros / outputs of the activation        ``1 - spike_rate`` (and per
                        layers, over layers, steps and samples   layer ``1 - out_rate``)
======================  =======================================  ============================

The remaining differences are conventions, each shown by a test
(``tests/test_energy_neurobench.py``):

1. **Padding** (:data:`CONVENTIONS` ``"padding"``): qifsim's ``dense_ops`` count the taps
   of a padded conv that fall on zero padding (the QIF paper's ``OP``); NeuroBench's Dense
   does not.
2. **Zero weights** (``"zero_weights"``): NeuroBench skips connections whose weight is 0
   (pruning); qifsim counts every connection of the layer's shape.
3. **Signed spikes** (``"signed_spikes"``): NeuroBench counts an input in {-1, 0, 1} as
   spikes (ACs); qifsim counts a -1 as a graded value (MACs).
4. **Graded input** (``"graded_macs"``): qifsim's ``macs`` (the energies' Eq. 17) are every
   dense MAC of a graded-input layer; NeuroBench's Effective_MACs skip zero inputs
   (qifsim's ``event_macs``).
5. **Pooled spikes and adders** (``"pooling"``): qifsim folds average pooling of spikes
   into the next layer (ACs: each spike drives its pooled pixel's fan-out) and counts the
   pooling's, residual blocks' and voting's additions; NeuroBench counts MACs on the
   non-zero pooled values and no pooling or residual additions.
6. **Activation layers** (``"activations"``): plain NeuroBench finds only ``nn.ReLU``,
   ``nn.Sigmoid`` and (``SNNTorchModel``) snntorch neurons; a module added with
   ``add_activation_module`` that returns ``(spikes, state)`` (qifsim, norse) is stored as
   a tuple its sparsity metric cannot read (it reports the error and 0.0), and layers are
   named by their attribute name (two ``spike`` layers merge). :func:`wrap` registers
   every spiking layer by qualified name and records its spikes.
7. **Neuron updates** are not compared (NeuroBench's ``MembraneUpdates`` reads snntorch
   state only).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import nn

from .peers import neuron_layers, reset_states, run_steps, spikes_of
from .profiles import load_profile

#: The named differences between NeuroBench's and qifsim's conventions (module docstring).
CONVENTIONS: dict[str, str] = {
    "padding": "qifsim dense_ops include the taps of a padded conv on zero padding; "
    "NeuroBench's Dense does not (qifsim dense_ops - padded_taps = NeuroBench Dense)",
    "zero_weights": "NeuroBench skips connections with a zero weight; qifsim counts every "
    "connection of the layer's shape",
    "signed_spikes": "NeuroBench counts inputs in {-1, 0, 1} as spikes (ACs); qifsim counts "
    "-1 as graded (MACs)",
    "graded_macs": "qifsim macs (Eq. 17, the energies) are every dense MAC of a graded "
    "input; NeuroBench's Effective_MACs skip zero inputs (= qifsim event_macs)",
    "pooling": "qifsim folds average-pooled spikes into the next layer as ACs and counts "
    "pooling, residual and voting additions; NeuroBench counts MACs on non-zero pooled "
    "values and no adder layers",
    "activations": "plain NeuroBench sees nn.ReLU/nn.Sigmoid/snntorch neurons only, cannot "
    "read (spikes, state) outputs and names layers by attribute name; qifsim's wrapper "
    "registers every spiking layer by qualified name",
}


def require_neurobench():
    """The ``neurobench`` package, or an ImportError saying how to install it."""
    try:
        import neurobench
        from neurobench.models import NeuroBenchModel  # noqa: F401
    except ImportError as err:  # pragma: no cover - the extra is installed by make setup
        raise ImportError(
            "the NeuroBench cross-check needs the optional extra: pip install "
            "'qifsim[neurobench]' (neurobench==2.3.0)"
        ) from err
    return neurobench


def time_first(x: torch.Tensor, T: int | None = None, static: bool = False) -> torch.Tensor:
    """NeuroBench's batch-first data as a time-first model input.

    ``static=True``: images ``[B, C, H, W]`` repeated ``T`` times; otherwise ``[B, T, ...]``
    transposed to ``[T, B, ...]`` (with ``T`` given, its length is checked).
    """
    if static:
        if T is None:
            raise ValueError("static=True needs T (the number of repeats)")
        from ..train.loaders import to_time_first

        return to_time_first(x, T, True)
    if x.dim() < 2:
        raise ValueError(f"expected batch-first data [B, T, ...], got shape {tuple(x.shape)}")
    if T is not None and x.shape[1] != T:
        raise ValueError(f"expected [B, T={T}, ...], got shape {tuple(x.shape)}")
    return x.transpose(0, 1).contiguous()


class _SpikeHook:
    """A NeuroBench activation hook that records a spiking layer's spikes.

    The interface NeuroBench's metrics read (``activation_outputs``, ``name``,
    ``reset()``, ``close()``; ``pre_fire_mem_potential`` stays empty).
    """

    def __init__(self, layer: nn.Module, name: str) -> None:
        self.layer = layer
        self.name = name
        self.activation_outputs: list[torch.Tensor] = []
        self.activation_inputs: list[Any] = []
        self.pre_fire_mem_potential: list[torch.Tensor] = []
        self.post_fire_mem_potential: list[torch.Tensor] = []
        self.hook = layer.register_forward_hook(self._record)

    def _record(self, module: nn.Module, args: Any, output: Any) -> None:
        self.activation_outputs.append(spikes_of(output).detach())

    def reset(self) -> None:
        self.activation_outputs.clear()
        self.activation_inputs.clear()

    def close(self) -> None:
        if self.hook is not None:
            self.hook.remove()
            self.hook = None


def wrap(
    model: nn.Module,
    *,
    T: int | None = None,
    static: bool = False,
    forward: str | Callable[[nn.Module, torch.Tensor], Any] | None = None,
):
    """``model`` as a NeuroBench model (a ``NeuroBenchModel`` subclass instance).

    Args:
        model: a time-first model (or, with ``forward="steps"``, one called per step).
        T, static: how batch-first data become the model's input (:func:`time_first`).
        forward: None: ``model(x)``; ``"steps"``: :func:`~qifsim.energy.peers.run_steps`;
            or ``forward(model, x)``. States of snntorch/spikingjelly neurons are reset
            before every batch.

    Returns:
        The wrapped model: ``wrapped(batch)`` returns the model's output (its first
        element when it returns a tuple; with several calls per batch, their outputs
        stacked); ``wrapped.__net__()`` is ``model``.
    """
    require_neurobench()
    from neurobench.models import NeuroBenchModel

    step = run_steps if forward == "steps" else forward
    if step is not None and not callable(step):
        raise ValueError(f"forward must be None, 'steps' or a callable, got {forward!r}")

    class QifsimNeuroBenchModel(NeuroBenchModel):
        """A spiking model for NeuroBench's harness (see :func:`wrap`)."""

        def __init__(self) -> None:
            super().__init__()
            self.net = model
            self.net.eval()

        def __call__(self, batch: torch.Tensor):
            x = time_first(batch, T, static)
            reset_states(self.net)
            out = self.net(x) if step is None else step(self.net, x)
            if isinstance(out, list):
                return torch.stack([spikes_of(o) for o in out])
            return spikes_of(out) if isinstance(out, tuple) else out

        def __net__(self) -> nn.Module:
            return self.net

        def register_hooks(self) -> None:
            from neurobench.hooks.layer import LayerHook

            for name, (layer, _) in neuron_layers(self.net).items():
                self.activation_hooks.append(_SpikeHook(layer, name))
            for layer in self.connection_layers():  # NeuroBench's own discovery
                self.connection_hooks.append(LayerHook(layer))

    return QifsimNeuroBenchModel()


def _batch_first_loader(loader: Iterable) -> Any:
    if not hasattr(loader, "dataset"):
        raise TypeError(
            "NeuroBench's Benchmark needs a torch DataLoader (it reads len(loader.dataset)); "
            f"got {type(loader).__name__}"
        )
    return loader


def neurobench_metrics(
    model: nn.Module,
    loader: Any,
    *,
    T: int | None = None,
    static: bool = False,
    forward: str | Callable[[nn.Module, torch.Tensor], Any] | None = None,
) -> dict[str, Any]:
    """NeuroBench's ``Benchmark`` on the wrapped model: synaptic operations and sparsity.

    ``loader``: a DataLoader of batch-first ``(x, y)``. Returns NeuroBench's results:
    ``SynapticOperations`` (``Effective_MACs``, ``Effective_ACs``, ``Dense`` per sample),
    ``ActivationSparsity`` and ``ActivationSparsityByLayer`` (by qualified name).
    """
    require_neurobench()
    from neurobench.benchmarks import Benchmark
    from neurobench.metrics.workload import (
        ActivationSparsity,
        ActivationSparsityByLayer,
        SynapticOperations,
    )

    wrapped = wrap(model, T=T, static=static, forward=forward)
    bench = Benchmark(
        wrapped,
        _batch_first_loader(loader),
        [],
        [],
        [[], [SynapticOperations, ActivationSparsity, ActivationSparsityByLayer]],
    )
    try:
        with torch.no_grad():
            return bench.run(quiet=True)
    finally:
        wrapped.cleanup_hooks()


def neurobench_layer_counts(
    model: nn.Module,
    loader: Iterable,
    *,
    T: int | None = None,
    static: bool = False,
    forward: str | Callable[[nn.Module, torch.Tensor], Any] | None = None,
) -> tuple[dict[str, dict[str, int]], int]:
    """NeuroBench's synaptic operations per connection layer (its ``single_layer_MACs``).

    Returns ``({qualified name: {"ac", "mac", "dense"}}, samples)``: totals over all
    batches, by NeuroBench's own function on the inputs its ``LayerHook`` recorded.
    """
    require_neurobench()
    from neurobench.metrics.utils.layers import single_layer_MACs

    wrapped = wrap(model, T=T, static=static, forward=forward)
    wrapped.register_hooks()
    names = {id(m): n for n, m in model.named_modules()}
    counts: dict[str, dict[str, int]] = {}
    samples = 0
    try:
        with torch.no_grad():
            for batch in loader:
                x = batch[0] if isinstance(batch, (tuple, list)) else batch
                wrapped(x)
                samples += int(x.shape[0])
                for hook in wrapped.connection_hooks:
                    row = counts.setdefault(names[id(hook.layer)], {"ac": 0, "mac": 0, "dense": 0})
                    for inputs in hook.inputs:
                        inp = inputs[0] if len(inputs) == 1 else inputs
                        ops, spiking = single_layer_MACs(inp, hook.layer)
                        dense, _ = single_layer_MACs(inp, hook.layer, total=True)
                        row["ac" if spiking else "mac"] += int(ops)
                        row["dense"] += int(dense)
                wrapped.reset_hooks()
    finally:
        wrapped.cleanup_hooks()
    return counts, samples


@dataclass
class LayerCheck:
    """One connection layer: qifsim's and NeuroBench's counts (totals over all samples).

    ``input``: qifsim's classification of the layer's input (``spikes``, ``graded``,
    ``pooled`` or ``mixed``); pooled input is a different convention (not compared).
    """

    name: str
    input: str
    qifsim_acs: int
    qifsim_macs: int
    qifsim_dense: int
    neurobench_acs: int
    neurobench_macs: int
    neurobench_dense: int

    @property
    def compared(self) -> bool:
        return self.input in ("spikes", "graded")

    @property
    def agrees(self) -> bool:
        return (self.qifsim_acs, self.qifsim_macs, self.qifsim_dense) == (
            self.neurobench_acs,
            self.neurobench_macs,
            self.neurobench_dense,
        )


@dataclass
class CrossCheck:
    """qifsim vs NeuroBench on one model and data set (see :func:`cross_check`).

    Per-layer counts are totals over ``samples``; ``totals`` per sample as NeuroBench
    reports them; sparsities as fractions of zeros.
    """

    label: str
    samples: int
    layers: list[LayerCheck]
    totals: dict[str, dict[str, float]]
    sparsity: dict[str, float]
    layer_sparsity: dict[str, tuple[float, float]]
    conventions: dict[str, str] = field(default_factory=lambda: dict(CONVENTIONS))

    @property
    def agrees(self) -> bool:
        """Every compared layer, the totals and the sparsities are equal."""
        layers = all(layer.agrees for layer in self.layers if layer.compared)
        totals = all(math.isclose(v["qifsim"], v["neurobench"], rel_tol=1e-9, abs_tol=1e-9)
                     for v in self.totals.values())  # fmt: skip
        sparse = math.isclose(self.sparsity["qifsim"], self.sparsity["neurobench"], abs_tol=1e-12)
        per_layer = all(math.isclose(a, b, abs_tol=1e-12) for a, b in self.layer_sparsity.values())
        return layers and totals and sparse and per_layer

    def to_markdown(self) -> str:
        """Per-layer table and totals (per sample), qifsim vs NeuroBench."""
        n = max(self.samples, 1)
        lines = [
            f"qifsim vs NeuroBench 2.3.0: {self.label} ({self.samples} samples, per sample)",
            "",
            "| layer | input | ACs qifsim / NB | MACs on non-zero input qifsim / NB "
            "| dense without padding qifsim / NB | equal |",
            "|---|---|---:|---:|---:|---|",
        ]
        for c in self.layers:
            equal = ("yes" if c.agrees else "NO") if c.compared else "other convention"
            lines.append(
                f"| {c.name} | {c.input} | {c.qifsim_acs / n:,.1f} / {c.neurobench_acs / n:,.1f} "
                f"| {c.qifsim_macs / n:,.1f} / {c.neurobench_macs / n:,.1f} "
                f"| {c.qifsim_dense / n:,.1f} / {c.neurobench_dense / n:,.1f} | {equal} |"
            )
        lines += ["", "| total per sample | qifsim | NeuroBench | equal |", "|---|---:|---:|---|"]
        for key, v in self.totals.items():
            same = math.isclose(v["qifsim"], v["neurobench"], rel_tol=1e-9, abs_tol=1e-9)
            mark = "yes" if same else "NO"
            lines.append(f"| {key} | {v['qifsim']:,.1f} | {v['neurobench']:,.1f} | {mark} |")
        same = math.isclose(self.sparsity["qifsim"], self.sparsity["neurobench"], abs_tol=1e-12)
        lines.append(
            f"| activation sparsity | {self.sparsity['qifsim']:.6f} "
            f"| {self.sparsity['neurobench']:.6f} | {'yes' if same else 'NO'} |"
        )
        return "\n".join(lines) + "\n"

    def to_dict(self) -> dict[str, Any]:
        return {
            "label": self.label,
            "samples": self.samples,
            "agrees": self.agrees,
            "layers": [
                {**vars(c), "compared": c.compared, "agrees": c.agrees} for c in self.layers
            ],
            "totals": self.totals,
            "sparsity": self.sparsity,
            "layer_sparsity": {k: list(v) for k, v in self.layer_sparsity.items()},
            "conventions": self.conventions,
        }


def _input_kind(row) -> str:
    """qifsim's view of a layer's inputs over all calls."""
    if row.pooled_calls:
        return "pooled"
    if row.graded_calls == 0:
        return "spikes" if row.in_elements else "unseen"
    return "graded" if row.graded_calls == row.calls else "mixed"


def cross_check(
    model: nn.Module,
    loader: Any,
    *,
    T: int | None = None,
    static: bool = False,
    forward: str | Callable[[nn.Module, torch.Tensor], Any] | None = None,
    label: str = "",
    layers: Sequence[str] | None = None,
) -> CrossCheck:
    """Count ``model`` on ``loader`` with qifsim and with NeuroBench and line them up.

    ``loader``: a DataLoader of batch-first ``(x, y)`` (NeuroBench's format); qifsim gets
    the same batches time-first (:func:`time_first`). Per connection layer: qifsim's
    ``event_acs`` vs NeuroBench's effective ACs, ``event_macs`` vs effective MACs,
    ``dense_ops - padded_taps`` vs Dense (totals over all samples, by NeuroBench's own
    per-layer function); totals per sample from NeuroBench's ``Benchmark``; activation
    sparsity ``1 - spike_rate`` vs NeuroBench's, in total and per layer. ``layers``:
    restrict the per-layer table to these names.
    """
    from .report import build_report, count_batches

    batches = [(time_first(b[0] if isinstance(b, (tuple, list)) else b, T, static),)
               for b in loader]  # fmt: skip
    counter, _ = count_batches(model, batches, forward=forward)
    report = build_report(counter, load_profile())
    nb_layers, nb_samples = neurobench_layer_counts(
        model, loader, T=T, static=static, forward=forward
    )
    if nb_samples != counter.samples:
        raise ValueError(
            f"NeuroBench saw {nb_samples} samples, qifsim {counter.samples}: the data must be "
            "batch-first [B, T, ...] for NeuroBench"
        )
    results = neurobench_metrics(model, loader, T=T, static=static, forward=forward)
    checks = []
    q_acs = q_macs = q_dense = 0
    for name, nb in nb_layers.items():
        if layers is not None and name not in layers:
            continue
        row = counter.rows[name]
        check = LayerCheck(
            name=name,
            input=_input_kind(row),
            qifsim_acs=int(row.event_acs),
            qifsim_macs=int(row.event_macs),
            qifsim_dense=int(row.dense_ops - row.padded_taps),
            neurobench_acs=nb["ac"],
            neurobench_macs=nb["mac"],
            neurobench_dense=nb["dense"],
        )
        checks.append(check)
        q_acs, q_macs, q_dense = q_acs + check.qifsim_acs, q_macs + check.qifsim_macs, (
            q_dense + check.qifsim_dense)  # fmt: skip
    n = counter.samples
    syn = results["SynapticOperations"]
    totals = {
        "Effective_ACs": {"qifsim": q_acs / n, "neurobench": float(syn["Effective_ACs"])},
        "Effective_MACs": {"qifsim": q_macs / n, "neurobench": float(syn["Effective_MACs"])},
        "Dense": {"qifsim": q_dense / n, "neurobench": float(syn["Dense"])},
    }
    rate = report.spike_rate or 0.0
    by_layer = results["ActivationSparsityByLayer"]
    layer_sparsity = {
        name: (1.0 - r, float(by_layer.get(name, float("nan"))))
        for name, r in report.layer_rates().items()
    }
    return CrossCheck(
        label=label or type(model).__name__,
        samples=n,
        layers=checks,
        totals=totals,
        sparsity={"qifsim": 1.0 - rate, "neurobench": float(results["ActivationSparsity"])},
        layer_sparsity=layer_sparsity,
    )


__all__ = [
    "CONVENTIONS",
    "CrossCheck",
    "LayerCheck",
    "cross_check",
    "neurobench_layer_counts",
    "neurobench_metrics",
    "require_neurobench",
    "time_first",
    "wrap",
]
