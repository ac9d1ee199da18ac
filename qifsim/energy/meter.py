"""Operation and spike counting by forward hooks, with constant memory.

``OpCounter(model)`` classifies every module of ``model`` once (an unknown layer type
raises :class:`UnsupportedLayerError` naming it), then, while open, hooks

* synaptic layers (``nn.Conv2d`` inside :class:`~qifsim.layers.MergeTime`, ``nn.Linear``,
  quadratic synapses), pooling (``nn.AvgPool2d``, ``nn.MaxPool2d``, ``GlobalAvgPool``),
  residual additions (:class:`~qifsim.models.resnet.BasicBlock`) and the readout's voting;
* neuron modules (QIF/LIF): spikes and neuron updates;

and keeps running sums per row (no tensors are stored between batches). The model's
input must be time-first ``[T, B, ...]``; count in eval mode (:func:`measure_energy` does):
training-mode dropout scales spikes into graded values.

Counting rules (per frame = one sample at one time step):

* **Input kinds.** A layer's input is *spikes* when every value is 0 or 1; *pooled
  spikes* when it is the output of average pooling of spikes (the pooled value times the
  window area is the number of spikes in the window); *graded* otherwise (the model's
  real-valued input, an event frame with counts > 1, a current).
* **Conv / linear.** Dense ops = every MAC of the dense layer (padding taps included).
  On graded input all dense ops are MACs (the encoding layer). On spikes: the paper's
  estimate ``ACs = fr * dense`` (fr = the input's mean value), and the exact
  event-driven count ``sum(spikes * fanout)``. On pooled spikes the event count folds
  the pooling into the layer (each spike that entered the pool drives the fan-out of its
  pooled pixel: ``sum(pooled * area * fanout)``, ``area`` times the estimate for uniform
  spikes).
* **Encoding MACs.** ``encoding_macs="per_step"`` (default, Eq. 17): graded-input MACs at
  every time step; ``"once"``: once per sample (direct encoding repeats the same image;
  an input that changes over time raises).
* **Pooling** costs additions (average) or comparisons (max): dense ``C * H_out * W_out *
  k * k`` per frame, costed as ACs; on spikes ACs = ``fr * dense`` and the event count is
  ``sum(spikes * windows covering the pixel)``; on graded input all dense ops.
* **Residual addition** (``BasicBlock``): one add per output neuron and step; with an
  identity shortcut carrying spikes the estimate is ``fr * dense`` and the event count
  the number of shortcut spikes; with a conv shortcut (two currents) all dense adds.
* **Readout** is a linear layer on spikes (ACs); voting adds ``classes * voting`` per step.
* **tdBN** is folded into the weights (no operations); bias additions and the readout's
  mean over ``T`` are not counted (Eq. 17 counts neither).
* **Neurons**: spikes, neuron updates (``neurons * T`` per sample), firing rate.
"""

from __future__ import annotations

import weakref
from collections.abc import Callable, Iterable
from dataclasses import asdict, dataclass
from typing import Any

import torch
from torch import nn

from ..layers import MergeTime, TDBatchNorm1d, TDBatchNorm2d
from ..neurons.modules import LIFCell, QIFCell, _NeuronBase, _QIFBase
from . import counting

#: Encoding-MAC switch values.
ENCODING_MACS = ("per_step", "once")


class UnsupportedLayerError(ValueError):
    """A model holds a layer whose operations qifsim cannot count."""


@dataclass
class RowCounts:
    """Running totals of one counted module (summed over every sample and step seen).

    Attributes:
        name: qualified module name (``"features.conv1.conv.module"``).
        kind: ``conv``, ``linear``, ``readout``, ``quadratic``, ``pool``, ``residual``,
            ``voting`` or ``neuron``.
        layer_type: the module's class name.
        neuron: ``"qif"``/``"lif"`` for neuron rows, else ``None``.
        neurons: output neurons (elements) per frame.
        frames: frames (samples x steps) seen.
        in_elements: input elements seen (for the input firing rate).
        in_mass: sum of the input values that were spikes or pooled spikes.
        dense_ops: dense operations (all frames).
        macs: operations costed as MACs.
        acs: the paper's estimate of ACs (``fr * dense`` on spikes; all dense adds on graded
            input for adders).
        event_acs: exact event-driven ACs.
        spikes: spikes emitted (neuron rows).
        graded_calls: forward calls with graded input.
    """

    name: str
    kind: str
    layer_type: str
    neuron: str | None = None
    neurons: int = 0
    frames: int = 0
    in_elements: int = 0
    in_mass: float = 0.0
    dense_ops: int = 0
    macs: int = 0
    acs: float = 0.0
    event_acs: int = 0
    spikes: int = 0
    graded_calls: int = 0

    @property
    def in_rate(self) -> float | None:
        """Mean input value on spike inputs (the paper's fr); None when graded or unseen."""
        if not self.in_elements or self.graded_calls:
            return None
        return self.in_mass / self.in_elements

    @property
    def out_rate(self) -> float | None:
        """Firing rate of a neuron row: spikes / (neurons * T * samples)."""
        if self.kind != "neuron" or not self.frames:
            return None
        return self.spikes / (self.neurons * self.frames)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


# -- module classification ---------------------------------------------------

#: Modules that compute nothing countable: reshapers, dropout (identity in eval), folded tdBN.
_FREE: list[type] = [
    nn.Identity,
    nn.Flatten,
    nn.Unflatten,
    nn.Dropout,
    TDBatchNorm1d,
    TDBatchNorm2d,
    nn.BatchNorm1d,
    nn.BatchNorm2d,
]
#: Containers whose forward only chains their children.
_CONTAINERS: list[type] = [nn.Sequential, nn.ModuleList, nn.ModuleDict, MergeTime]
#: Extra classes registered by :func:`register_layer_kind`.
_REGISTERED: dict[type, str] = {}
_REGISTRABLE = ("free", "container", "quadratic", "quadratic_linear")


def register_layer_kind(cls: type, kind: str) -> None:
    """Tell the counter about your own module class.

    ``kind``: ``"free"`` (computes nothing countable: reshaping, identity, a folded norm),
    ``"container"`` (its forward only calls its children in turn, with no arithmetic
    of its own), or ``"quadratic"`` / ``"quadratic_linear"`` (a quadratic synapse term
    following the quadratic-layer contract, counted by :mod:`qifsim.energy.quadratic`).
    Anything else must be built from the supported layers.
    """
    if kind not in _REGISTRABLE:
        raise ValueError(f"kind must be one of {_REGISTRABLE}, got {kind!r}")
    _REGISTERED[cls] = kind


_KINDS_CACHE: dict[type, str] | None = None


def _qifsim_kinds() -> dict[type, str]:
    """qifsim's own module classes and their kinds (computed once)."""
    global _KINDS_CACHE
    if _KINDS_CACHE is None:
        _KINDS_CACHE = _build_qifsim_kinds()
    return _KINDS_CACHE


def _build_qifsim_kinds() -> dict[type, str]:
    from ..models.base import SpikingModel
    from ..models.blocks import (
        ConvSpike,
        GlobalAvgPool,
        LinearSpike,
        Readout,
        TimeFlatten,
        TimeSharedDropout,
    )
    from ..models.resnet import BasicBlock

    kinds: dict[type, str] = {
        SpikingModel: "container",
        ConvSpike: "container",
        LinearSpike: "container",
        TimeFlatten: "free",
        TimeSharedDropout: "free",
        GlobalAvgPool: "gap",
        BasicBlock: "residual",
        Readout: "readout",
    }
    kinds.update(_quadratic_kinds())
    return kinds


def _quadratic_kinds() -> dict[type, str]:
    """Quadratic synapse classes (qifsim.layers.quadratic), when that module exists."""
    try:
        from ..layers import quadratic
    except ImportError:
        return {}
    kinds: dict[type, str] = {}
    for name, kind in (
        ("ChannelQuadratic", "quadratic"),
        ("QuadraticConv2d", "container"),
        ("QuadraticLinear", "quadratic_linear"),
    ):
        cls = getattr(quadratic, name, None)
        if isinstance(cls, type):
            kinds[cls] = kind
    return kinds


def classify(module: nn.Module) -> str | None:
    """The counting kind of ``module``, or None when unknown."""
    for cls, kind in _REGISTERED.items():
        if isinstance(module, cls):
            return kind
    if isinstance(module, _NeuronBase):
        return "neuron"
    if isinstance(module, nn.Conv2d):
        return "conv"
    if isinstance(module, nn.Linear):
        return "linear"
    if isinstance(module, (nn.AvgPool2d, nn.MaxPool2d)):
        return "pool"
    for cls, kind in _qifsim_kinds().items():
        if isinstance(module, cls):
            return kind
    if isinstance(module, tuple(_FREE)):
        return "free"
    if type(module) in _CONTAINERS:
        return "container"
    return None


def check_supported(model: nn.Module) -> dict[str, str]:
    """Kinds of every module of ``model`` by qualified name.

    Raises:
        UnsupportedLayerError: naming the first module whose operations cannot be counted
            (its qualified name and type), so no layer is silently counted as zero.
    """
    kinds: dict[str, str] = {}
    skip: tuple[str, ...] = ()
    for name, module in model.named_modules():
        if skip and name.startswith(skip):
            continue
        kind = classify(module)
        if kind is None:
            shown = name or "<the model itself>"
            has_params = any(True for _ in module.parameters(recurse=False))
            what = "a layer with parameters" if has_params else "an operation"
            raise UnsupportedLayerError(
                f"cannot count the operations of layer {shown!r} ({type(module).__module__}."
                f"{type(module).__qualname__}): {what} qifsim's energy accounting does not "
                "know. Supported: Conv2d, Linear, AvgPool2d, MaxPool2d, quadratic synapses, "
                "qifsim neurons, tdBN (folded), residual BasicBlock, Readout, dropout and "
                "reshapers. If it only chains its children or reshapes, declare it with "
                "qifsim.energy.register_layer_kind(cls, 'container' or 'free')."
            )
        kinds[name] = kind
        if kind == "quadratic":  # a quadratic term counts its own internals
            skip = (f"{name}.",) if name else ()
    return kinds


def _is_binary(x: torch.Tensor) -> bool:
    """Whether every element of ``x`` is 0 or 1."""
    if x.dtype == torch.bool:
        return True
    return bool(((x == 0) | (x == 1)).all())


class OpCounter:
    """Context manager counting operations and spikes of ``model`` (see the module docstring).

    Args:
        model: a time-first spiking model (input ``[T, B, ...]``).
        encoding_macs: ``"per_step"`` or ``"once"`` (see the module docstring).
        spike_override: ``f(neuron name, spikes) -> spikes`` applied to every neuron's
            output before it is counted and passed on (:func:`estimate_energy` uses it to
            impose a firing rate); None: the model's own spikes.

    Attributes:
        rows: ``{name: RowCounts}`` in forward order of registration.
        samples: samples seen (the ``B`` of every batch summed).
        steps: ``T`` of the last batch.
    """

    def __init__(
        self,
        model: nn.Module,
        encoding_macs: str = "per_step",
        spike_override: Callable[[str, torch.Tensor], torch.Tensor] | None = None,
    ) -> None:
        if encoding_macs not in ENCODING_MACS:
            raise ValueError(f"encoding_macs must be one of {ENCODING_MACS}, got {encoding_macs!r}")
        self.model = model
        self.encoding_macs = encoding_macs
        self.kinds = check_supported(model)
        self.spike_override = spike_override
        self.rows: dict[str, RowCounts] = {}
        self.samples = 0
        self.steps = 0
        self._handles: list = []
        self._pooled: dict[int, tuple[torch.Tensor, float]] = {}
        self._spikes: dict[int, tuple[weakref.ref, float | None]] = {}
        self._known_pixel: torch.Tensor | None = None
        self._fanout_cache: dict[tuple, torch.Tensor] = {}
        modules = dict(model.named_modules())
        self._modules = modules
        for name, kind in self.kinds.items():
            if kind in ("free", "container"):
                continue
            module = modules[name]
            if kind == "readout":
                if getattr(module, "voting", 1) > 1:
                    self._row(f"{name}.voting", "voting", module)
                continue
            row_kind = kind
            if kind in ("conv", "linear") and self._in_readout(name):
                row_kind = "readout"
            neuron = None
            if kind == "neuron":
                neuron = "qif" if isinstance(module, _QIFBase) else "lif"
            self._row(name, row_kind, module, neuron)

    def _in_readout(self, name: str) -> bool:
        parent = name.rpartition(".")[0]
        return self.kinds.get(parent) == "readout"

    def _row(self, name: str, kind: str, module: nn.Module, neuron: str | None = None) -> None:
        self.rows[name] = RowCounts(name, kind, type(module).__name__, neuron)

    # -- input classification ------------------------------------------------
    def _input_kind(self, x: torch.Tensor) -> tuple[str, float]:
        """(``"spikes"`` | ``"pooled"`` | ``"graded"``, spikes per unit of value).

        Neuron outputs (and max pooling of them) are known to be spikes: their storages
        are remembered for the current forward (weakly), so only other tensors are
        checked value by value.
        """
        self._known_pixel = None
        key = x.untyped_storage().data_ptr()
        mark = self._pooled.get(key)
        if mark is not None and mark[0].numel() == x.numel():
            return "pooled", mark[1]
        entry = self._spikes.get(key)
        known = entry[0]() if entry is not None else None
        if known is not None and known.numel() == x.numel():
            self._known_pixel = entry[1]
            return "spikes", 1.0
        if _is_binary(x):
            return "spikes", 1.0
        return "graded", 0.0

    def _mark_pooled(self, y: torch.Tensor, area: float) -> None:
        self._pooled[y.untyped_storage().data_ptr()] = (y, area)

    def _mark_spikes(self, y: torch.Tensor, pixel: torch.Tensor | None = None) -> None:
        """Remember ``y`` as spikes (and its per-position sums over frames) for this forward."""
        self._spikes[y.untyped_storage().data_ptr()] = (weakref.ref(y), pixel)

    def _pixels_of(self, x: torch.Tensor, frames: int) -> torch.Tensor:
        """Per-position sums of ``x`` over its frames (``[P]``), reusing a neuron hook's.

        A layer fed straight by a neuron layer reads the sums that hook already took, so
        counting adds no pass over the spikes.
        """
        known, self._known_pixel = self._known_pixel, None
        if known is not None and known.numel() * frames == x.numel():
            return known
        return counting.frame_sums(x, frames)

    def _fanout(self, key: tuple, make: Callable[[], torch.Tensor]) -> torch.Tensor:
        fan = self._fanout_cache.get(key)
        if fan is None:
            fan = make()
            self._fanout_cache[key] = fan
        return fan

    # -- hooks ----------------------------------------------------------------
    def _root_pre_hook(self, module, args) -> None:
        self._pooled.clear()
        self._spikes.clear()
        x = args[0] if args else None
        if not isinstance(x, torch.Tensor) or x.dim() < 2:
            raise ValueError(
                "energy accounting needs the model's input as a time-first tensor [T, B, ...], "
                f"got {type(x).__name__ if not isinstance(x, torch.Tensor) else tuple(x.shape)}"
            )
        self.steps = int(x.shape[0])
        self.samples += int(x.shape[1])

    def _root_hook(self, module, args, output) -> None:
        self._pooled.clear()
        self._spikes.clear()
        self._known_pixel = None

    def _account_synapse(
        self, row: RowCounts, x: torch.Tensor, frames: int, dense_frame: int, fan_fn
    ) -> None:
        """Dense / MAC / AC / event counts of a multiply layer on input ``x``."""
        kind, area = self._input_kind(x)
        row.frames += frames
        row.in_elements += x.numel()
        row.dense_ops += dense_frame * frames
        if kind == "graded":
            row.graded_calls += 1
            if self.encoding_macs == "once":
                if not self._constant_over_time(x, frames):
                    raise ValueError(
                        f"encoding_macs='once' counts the MACs of layer {row.name!r} once per "
                        "sample, which assumes the same input at every time step (direct "
                        "encoding of a static image); this input changes over time: use "
                        "encoding_macs='per_step'"
                    )
                row.macs += dense_frame * (frames // max(self.steps, 1))
            else:
                row.macs += dense_frame * frames
            return
        pixel = self._pixels_of(x, frames)
        mass = float(pixel.double().sum().item())
        row.in_mass += mass
        per_frame_in = x.numel() // frames
        row.acs += mass * dense_frame / per_frame_in
        row.event_acs += fan_fn(pixel, area, mass)

    def _constant_over_time(self, x: torch.Tensor, frames: int) -> bool:
        t = max(self.steps, 1)
        if frames % t:
            return False
        seq = x.reshape(t, frames // t, -1)
        return bool((seq == seq[:1]).all())

    def _conv_hook(self, name: str):
        row = self.rows[name]

        def hook(module: nn.Conv2d, args, output) -> None:
            x = args[0]
            if x.dim() != 4:
                raise ValueError(f"layer {name!r}: expected a 4-D [N, C, H, W] conv input")
            geom = counting.conv_geometry(module)
            in_hw = (int(x.shape[2]), int(x.shape[3]))
            row.neurons = int(output[0].numel())
            dense = counting.conv_dense_ops(geom, in_hw)

            def events(pixel: torch.Tensor, area: float, mass: float) -> int:
                fan = self._fanout(
                    (name, in_hw, x.device),
                    lambda: counting.conv_fanout_map(geom, in_hw, x.device),
                )
                return counting.event_ops_from_sums(pixel, fan, area)

            self._account_synapse(row, x, int(x.shape[0]), dense, events)

        return hook

    def _linear_hook(self, name: str):
        row = self.rows[name]

        def hook(module: nn.Linear, args, output) -> None:
            x = args[0]
            frames = x.numel() // module.in_features
            row.neurons = module.out_features
            dense = module.in_features * module.out_features

            def events(pixel: torch.Tensor, area: float, mass: float) -> int:
                return int(round(mass * area)) * module.out_features

            self._account_synapse(row, x, frames, dense, events)

        return hook

    def _pool_hook(self, name: str):
        row = self.rows[name]

        def hook(module: nn.Module, args, output) -> None:
            x = args[0]
            if x.dim() != 4:
                raise ValueError(f"layer {name!r}: expected a 4-D [N, C, H, W] pooling input")
            geom = counting.pool_geometry(module)
            in_hw = (int(x.shape[2]), int(x.shape[3]))
            frames, channels = int(x.shape[0]), int(x.shape[1])
            dense = counting.pool_dense_ops(geom, channels, in_hw)
            row.neurons = int(output[0].numel())
            kind, area = self._input_kind(x)

            def events(pixel: torch.Tensor, area: float, mass: float) -> int:
                fan = self._fanout(
                    (name, in_hw, x.device),
                    lambda: counting.pool_fanout_map(geom, in_hw, x.device),
                )
                return counting.event_ops_from_sums(pixel, fan, area)

            self._account_adder(row, x, frames, dense, events, (kind, area))
            if isinstance(module, nn.MaxPool2d) and kind == "spikes":
                self._mark_spikes(output)  # the max of spikes is a spike
            if isinstance(module, nn.AvgPool2d) and kind != "graded":
                kh, kw = geom["kernel"]
                divisor = module.divisor_override or kh * kw
                self._mark_pooled(output, area * divisor)

        return hook

    def _gap_hook(self, name: str):
        row = self.rows[name]

        def hook(module: nn.Module, args, output) -> None:
            x = args[0]
            kind, area = self._input_kind(x)
            hw = int(x.shape[-1] * x.shape[-2])
            frames = x.numel() // (hw * int(x.shape[-3]))
            row.neurons = int(x.shape[-3])
            dense = int(x.shape[-3]) * hw

            def events(pixel: torch.Tensor, area: float, mass: float) -> int:
                return int(round(mass * area))

            self._account_adder(row, x, frames, dense, events, (kind, area))
            if kind != "graded":
                self._mark_pooled(output, area * hw)

        return hook

    def _account_adder(
        self, row: RowCounts, x, frames: int, dense_frame: int, fan_fn, kind_area=None
    ) -> None:
        """Counts of an adder (pooling, residual): never MACs; graded input adds densely."""
        kind, area = kind_area if kind_area is not None else self._input_kind(x)
        row.frames += frames
        row.in_elements += x.numel()
        row.dense_ops += dense_frame * frames
        if kind == "graded":
            row.graded_calls += 1
            row.acs += dense_frame * frames
            row.event_acs += dense_frame * frames
            return
        pixel = self._pixels_of(x, frames)
        mass = float(pixel.double().sum().item())
        row.in_mass += mass
        row.acs += mass * dense_frame / (x.numel() // frames)
        row.event_acs += fan_fn(pixel, area, mass)

    def _residual_hook(self, name: str):
        row = self.rows[name]

        def hook(module: nn.Module, args, output) -> None:
            x = args[0]
            per_frame = int(output[0, 0].numel())  # output [T, B, C, H, W]
            frames = int(output.shape[0] * output.shape[1])
            row.neurons = per_frame
            if isinstance(module.shortcut, nn.Identity):

                def events(pixel: torch.Tensor, area: float, mass: float) -> int:
                    return int(round(mass * area))

                self._account_adder(row, x, frames, per_frame, events)
            else:  # two synaptic currents meet: one add per neuron and step
                row.frames += frames
                row.graded_calls += 1
                row.dense_ops += per_frame * frames
                row.acs += per_frame * frames
                row.event_acs += per_frame * frames

        return hook

    def _voting_hook(self, name: str):
        row = self.rows[f"{name}.voting"]

        def hook(module: nn.Module, args, output) -> None:
            frames = int(output.numel() // module.num_classes)
            dense = module.num_classes * module.voting
            row.neurons = module.num_classes
            row.frames += frames
            row.graded_calls += 1
            row.dense_ops += dense * frames
            row.acs += dense * frames
            row.event_acs += dense * frames

        return hook

    def _neuron_hook(self, name: str):
        row = self.rows[name]
        override = self.spike_override

        def hook(module: nn.Module, args, output):
            spikes = output[0]
            replaced = None
            if override is not None:
                spikes = override(name, spikes)
                replaced = (spikes, *output[1:])
            multi_step = not isinstance(module, (QIFCell, LIFCell))
            per_sample = spikes.shape[2:] if multi_step else spikes.shape[1:]
            row.neurons = int(torch.Size(per_sample).numel())
            row.frames += spikes.numel() // max(row.neurons, 1)
            pixel = counting.frame_sums(spikes.detach(), spikes.numel() // max(row.neurons, 1))
            row.spikes += int(round(float(pixel.double().sum().item())))
            self._mark_spikes(spikes, pixel)
            return replaced

        return hook

    def _quadratic_hook(self, name: str):
        from .quadratic import quadratic_hook

        return quadratic_hook(self, self.rows[name], name)

    def __enter__(self) -> OpCounter:
        self._handles.append(self.model.register_forward_pre_hook(self._root_pre_hook))
        makers = {
            "conv": self._conv_hook,
            "linear": self._linear_hook,
            "pool": self._pool_hook,
            "gap": self._gap_hook,
            "residual": self._residual_hook,
            "neuron": self._neuron_hook,
            "quadratic": self._quadratic_hook,
            "quadratic_linear": self._quadratic_hook,
        }
        try:
            for name, kind in self.kinds.items():
                module = self._modules[name]
                if kind == "readout":
                    if getattr(module, "voting", 1) > 1:
                        self._handles.append(module.register_forward_hook(self._voting_hook(name)))
                elif kind in makers:
                    self._handles.append(module.register_forward_hook(makers[kind](name)))
            self._handles.append(self.model.register_forward_hook(self._root_hook))
        except BaseException:
            self.close()
            raise
        return self

    def close(self) -> None:
        """Remove the hooks (the counts stay)."""
        for handle in self._handles:
            handle.remove()
        self._handles.clear()
        self._pooled.clear()

    def __exit__(self, *exc) -> None:
        self.close()

    def totals(self) -> dict[str, Any]:
        """Sums over all rows (all samples): dense ops, MACs, ACs, event ACs, spikes."""
        rows = list(self.rows.values())
        return {
            "samples": self.samples,
            "steps": self.steps,
            "dense_ops": sum(r.dense_ops for r in rows if r.kind != "neuron"),
            "macs": sum(r.macs for r in rows),
            "acs": sum(r.acs for r in rows),
            "event_acs": sum(r.event_acs for r in rows),
            "spikes": sum(r.spikes for r in rows),
        }


def iter_batches(loader: Iterable, prepare: Callable[[Any], torch.Tensor]) -> Iterable:
    """Inputs of ``loader`` (``(x, y)`` pairs or bare tensors) passed through ``prepare``."""
    for batch in loader:
        x = batch[0] if isinstance(batch, (tuple, list)) else batch
        yield prepare(x)


__all__ = [
    "ENCODING_MACS",
    "OpCounter",
    "RowCounts",
    "UnsupportedLayerError",
    "check_supported",
    "classify",
    "iter_batches",
    "register_layer_kind",
]
