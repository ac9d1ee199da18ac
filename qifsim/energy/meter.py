"""Operation and spike counting by forward hooks, with constant memory.

``OpCounter(model)`` classifies every module of ``model`` once (:func:`check_supported`),
then, while open, hooks

* synaptic layers (``nn.Conv2d``, also inside :class:`~qifsim.layers.MergeTime`,
  spikingjelly's ``SeqToANNContainer`` or norse's ``Lift``; ``nn.Linear``; quadratic
  synapses), pooling (``nn.AvgPool2d``, ``nn.MaxPool2d``, ``nn.AdaptiveAvgPool2d``,
  ``GlobalAvgPool``), residual additions (:class:`~qifsim.models.resnet.BasicBlock`) and
  the readout's voting;
* spiking neuron layers of qifsim, norse, snntorch and spikingjelly
  (:mod:`qifsim.energy.peers`): spikes and neuron updates;

and keeps running sums per row (no tensors are stored between batches). Count in eval
mode (:func:`measure_energy` does): training-mode dropout scales spikes into graded values.

Which modules count (:func:`check_supported`):

* known layers (above), known free modules (``nn.Identity``, ``nn.Flatten``,
  ``nn.Dropout``, ``nn.BatchNorm1d/2d/3d`` and tdBN, folded into the weights like tdBN;
  torch's activation and padding modules) and registered classes
  (:func:`register_layer_kind`, :func:`~qifsim.energy.peers.register_neuron`);
* **containers**: any other module with no parameters or buffers of its own (a user's
  model class, norse ``SequentialState``/``Lift``, spikingjelly containers). Its
  children are classified in turn; its own forward only calls them. Arithmetic written
  as functions inside a forward (``F.conv2d(x, self.w)``, ``x + y``, ``x.mean(0)``)
  cannot be seen by hooks and is not counted;
* anything else, a module with parameters or buffers of its own that qifsim cannot
  count (or a torch pooling/upsampling module other than the three above), raises
  :class:`UnsupportedLayerError` naming it; with ``strict=False`` it becomes a row of
  kind ``"not counted"`` (zero operations, listed in the report) and its children are
  still counted.

Time steps and samples (the per-sample normalisation): a *forward* is one call of the
model (or, with :meth:`OpCounter.sample_batch` / ``measure_energy(forward=...)``, all
calls of one batch, e.g. a snntorch loop calling the model once per step). In each
forward the first spiking layer that fires is the *lead*: ``T`` = the steps of all its
calls in that forward (a multi-step call ``[T, B, ...]`` brings ``T``, a one-step call
``[B, ...]`` one), samples += its batch ``B``. A model with no spiking layer must take a
time-first input ``[T, B, ...]``, read from the model's input.

Counting rules (per frame = one sample at one time step):

* **Input kinds.** A layer's input is *spikes* when every value is 0 or 1; *pooled
  spikes* when it is the output of average pooling of spikes (the pooled value times the
  window area is the number of spikes in the window); *graded* otherwise (the model's
  real-valued input, an event frame with counts > 1, a current).
* **Conv / linear.** Dense ops = every MAC of the dense layer (padding taps included).
  On graded input all dense ops are MACs (the encoding layer); ``event_macs`` counts
  only those with a non-zero input, ``sum((x != 0) * fanout)`` (a zero-skipping MAC
  array; NeuroBench's Effective_MACs). On spikes: the paper's
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
* **Neurons**: spikes, neuron updates (``neurons * T`` per sample), firing rate. Outputs
  of qifsim neurons and of the listed norse / spikingjelly classes are spikes by
  construction (:attr:`~qifsim.energy.peers.NeuronInfo.binary`); any other output is
  checked: when it is not binary (snntorch's ``graded_spikes_factor``, spikingjelly's
  ``LIAFNode`` or a ``spiking=False`` surrogate) the non-zero outputs are counted as
  spikes and the next layer sees graded input.
"""

from __future__ import annotations

import contextlib
import weakref
from collections.abc import Callable, Iterable, Iterator
from dataclasses import asdict, dataclass
from typing import Any

import torch
from torch import nn

from ..layers import MergeTime, TDBatchNorm1d, TDBatchNorm2d
from . import counting
from .peers import NeuronInfo, is_norse_recurrent, neuron_info, replace_spikes, spikes_of

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
            ``voting``, ``neuron`` or ``not counted``.
        layer_type: the module's class name.
        neuron: the neuron type of neuron rows (``"qif"``, ``"lif"``, ``"norse-lif"``, ...:
            :mod:`qifsim.energy.neuron_ops`), else ``None``.
        update_ops: ``{"mul", "add"}`` per neuron update of neuron rows (None: not stated).
        neurons: output neurons (elements) per frame.
        frames: frames (samples x steps) seen.
        in_elements: input elements seen (for the input firing rate).
        in_mass: sum of the input values that were spikes or pooled spikes.
        dense_ops: dense operations (all frames).
        padded_taps: the dense operations of a conv that fall on zero padding (all frames;
            ``dense_ops - padded_taps`` = every connection of a real input pixel).
        macs: operations costed as MACs.
        event_macs: MACs whose graded input is non-zero (``sum((x != 0) * fanout)``).
        acs: the paper's estimate of ACs (``fr * dense`` on spikes; all dense adds on graded
            input for adders).
        event_acs: exact event-driven ACs.
        spikes: spikes emitted (neuron rows; non-zero outputs of a non-binary peer).
        calls: forward calls of a synaptic layer.
        graded_calls: forward calls with graded input.
        pooled_calls: forward calls with average-pooled spikes as input.
        graded_output: a neuron row whose output was not binary at least once.
    """

    name: str
    kind: str
    layer_type: str
    neuron: str | None = None
    update_ops: dict[str, int] | None = None
    neurons: int = 0
    frames: int = 0
    in_elements: int = 0
    in_mass: float = 0.0
    dense_ops: int = 0
    padded_taps: int = 0
    macs: int = 0
    event_macs: int = 0
    acs: float = 0.0
    event_acs: int = 0
    spikes: int = 0
    calls: int = 0
    graded_calls: int = 0
    pooled_calls: int = 0
    graded_output: bool = False

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

#: Modules that compute nothing countable: reshapers, dropout (identity in eval), folded
#: batch norms (tdBN and plain BatchNorm fold into the preceding layer's weights).
_FREE: list[type] = [
    nn.Identity,
    nn.Flatten,
    nn.Unflatten,
    nn.Dropout,
    nn.Dropout1d,
    nn.Dropout2d,
    nn.Dropout3d,
    TDBatchNorm1d,
    TDBatchNorm2d,
    nn.BatchNorm1d,
    nn.BatchNorm2d,
    nn.BatchNorm3d,
]
#: torch.nn submodules whose parameter-free modules compute nothing countable
#: (elementwise activations, padding, reshuffles).
_TORCH_FREE_MODULES = (
    "torch.nn.modules.activation",
    "torch.nn.modules.dropout",
    "torch.nn.modules.flatten",
    "torch.nn.modules.padding",
    "torch.nn.modules.pixelshuffle",
    "torch.nn.modules.channelshuffle",
)
#: Containers whose forward only chains their children.
_CONTAINERS: list[type] = [nn.Sequential, nn.ModuleList, nn.ModuleDict, MergeTime]
#: Extra classes registered by :func:`register_layer_kind`.
_REGISTERED: dict[type, str] = {}
_REGISTRABLE = ("free", "container", "quadratic", "quadratic_linear")
#: Kind of a module that ``strict=False`` lists without counting it.
NOT_COUNTED = "not counted"


def register_layer_kind(cls: type, kind: str) -> None:
    """Tell the counter about your own module class.

    ``kind``: ``"free"`` (computes nothing countable: reshaping, identity, a folded norm,
    even though it holds parameters or buffers), ``"container"`` (its forward only calls
    its children in turn, with no arithmetic of its own; needed only when it holds
    parameters or buffers of its own, else it is a container anyway), or ``"quadratic"`` /
    ``"quadratic_linear"`` (a quadratic synapse term following the quadratic-layer
    contract, counted by :mod:`qifsim.energy.quadratic`). Neuron classes:
    :func:`qifsim.energy.register_neuron`.
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


def _has_own_state(module: nn.Module) -> bool:
    """Whether ``module`` holds parameters or buffers of its own (not its children's)."""
    return any(True for _ in module.parameters(recurse=False)) or any(
        True for _ in module.buffers(recurse=False)
    )


def _torch_op_module(module: nn.Module) -> str | None:
    """The torch.nn submodule of ``module``'s nearest torch.nn base class (not nn.Module)."""
    for cls in type(module).__mro__:
        name = cls.__module__
        if name.startswith("torch.nn.modules.") and name != "torch.nn.modules.module":
            return name
    return None


def classify(module: nn.Module) -> str | None:
    """The counting kind of ``module`` by its class, or None when unknown.

    Kinds: ``neuron``, ``conv``, ``linear``, ``pool``, ``adaptive_pool``, ``gap``,
    ``residual``, ``readout``, ``quadratic``, ``quadratic_linear``, ``free``,
    ``container``. Unknown modules are judged by :func:`check_supported`.
    """
    for cls, kind in _REGISTERED.items():
        if isinstance(module, cls):
            return kind
    if neuron_info(module) is not None:
        return "neuron"
    if isinstance(module, nn.Conv2d):
        return "conv"
    if isinstance(module, nn.Linear):
        return "linear"
    if isinstance(module, (nn.AvgPool2d, nn.MaxPool2d)):
        return "pool"
    if isinstance(module, nn.AdaptiveAvgPool2d):
        return "adaptive_pool"
    for cls, kind in _qifsim_kinds().items():
        if isinstance(module, cls):
            return kind
    if isinstance(module, tuple(_FREE)):
        return "free"
    if type(module) in _CONTAINERS:
        return "container"
    return None


def _judge_unknown(module: nn.Module) -> str | None:
    """Kind of a module :func:`classify` does not know: container/free, or None (uncountable)."""
    if _has_own_state(module):
        return None
    torch_module = _torch_op_module(module)
    if torch_module is not None and next(module.children(), None) is None:
        # torch's own parameter-free leaves: elementwise/reshaping ones are free; the rest
        # (other pooling, upsampling, distances, ...) do arithmetic qifsim cannot count
        return "free" if torch_module in _TORCH_FREE_MODULES else None
    return "container" if next(module.children(), None) is not None else "free"


def _unsupported_message(name: str, module: nn.Module) -> str:
    shown = name or "<the model itself>"
    what = (
        "a module with parameters or buffers of its own"
        if _has_own_state(module)
        else "a torch operation"
    )
    hint = ""
    if is_norse_recurrent(module):
        hint = (
            " norse's recurrent neurons apply their input and recurrent weights inside the "
            "neuron, which the counter cannot see; use a feed-forward norse neuron with "
            "nn.Linear layers (recurrence through the model) to count it."
        )
    return (
        f"cannot count the operations of layer {shown!r} ({type(module).__module__}."
        f"{type(module).__qualname__}): {what} that qifsim's energy accounting does not "
        "know.{hint} Supported: Conv2d, Linear, AvgPool2d, MaxPool2d, AdaptiveAvgPool2d, "
        "quadratic synapses, spiking neurons of qifsim, norse, snntorch and spikingjelly, "
        "folded batch norms, dropout, reshapers and containers (modules without parameters "
        "or buffers of their own). If it computes nothing countable or only chains its "
        "children, declare it with qifsim.energy.register_layer_kind(cls, 'free' or "
        "'container'); a neuron class with qifsim.energy.register_neuron; or pass "
        "strict=False to list it as 'not counted'."
    ).replace("{hint}", hint)


def check_supported(model: nn.Module, strict: bool = True) -> dict[str, str]:
    """Kinds of every module of ``model`` by qualified name (see the module docstring).

    Args:
        strict: True: an uncountable module raises; False: its kind is ``"not counted"``
            (its children are still classified and counted).

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
            kind = _judge_unknown(module)
        if kind is None:
            if strict:
                raise UnsupportedLayerError(_unsupported_message(name, module))
            kind = NOT_COUNTED
        kinds[name] = kind
        if kind == "quadratic":  # a quadratic term counts its own internals
            skip = (f"{name}.",) if name else ()
    return kinds


_is_binary = counting.is_binary


def _frames(name: str, x: torch.Tensor, what: str) -> int:
    """Frames of a ``[..., C, H, W]`` input (leading dims: ``N``, or ``T, N`` multi-step)."""
    if x.dim() < 4:
        raise ValueError(f"layer {name!r}: expected a [N, C, H, W] (or [T, N, C, H, W]) {what} "
                         f"input, got shape {tuple(x.shape)}")  # fmt: skip
    return x.numel() // max(int(x.shape[-3] * x.shape[-2] * x.shape[-1]), 1)


def _pair_size(output_size, x: torch.Tensor) -> tuple[int, int]:
    """An adaptive pool's output size, ``None`` entries meaning the input's size."""
    size = (output_size, output_size) if isinstance(output_size, int) else tuple(output_size)
    return tuple(  # type: ignore[return-value]
        int(x.shape[-2 + i]) if s is None else int(s) for i, s in enumerate(size)
    )


def _adaptive_geometry(name: str, module: nn.Module, x: torch.Tensor) -> dict:
    """``nn.AdaptiveAvgPool2d`` as average pooling with equal windows (input divisible)."""
    (h, w), (oh, ow) = (int(x.shape[-2]), int(x.shape[-1])), _pair_size(module.output_size, x)
    if h % oh or w % ow:
        raise ValueError(
            f"layer {name!r}: AdaptiveAvgPool2d from {h}x{w} to {oh}x{ow} has windows of "
            "unequal sizes, which the counter does not support (use an input size divisible "
            "by the output size, or output size 1)"
        )
    kernel = (h // oh, w // ow)
    return {"kernel": kernel, "stride": kernel, "padding": (0, 0), "dilation": (1, 1)}


class OpCounter:
    """Context manager counting operations and spikes of ``model`` (see the module docstring).

    Args:
        model: a time-first spiking model (input ``[T, B, ...]``).
        encoding_macs: ``"per_step"`` or ``"once"`` (see the module docstring).
        spike_override: ``f(neuron name, spikes) -> spikes`` applied to every neuron's
            output before it is counted and passed on (:func:`estimate_energy` uses it to
            impose a firing rate); None: the model's own spikes.
        strict: False: list modules that cannot be counted as ``"not counted"`` rows
            instead of raising :class:`UnsupportedLayerError`.

    Attributes:
        rows: ``{name: RowCounts}`` in forward order of registration.
        samples: samples seen (the ``B`` of every forward summed; module docstring).
        steps: ``T`` of the last forward.
    """

    def __init__(
        self,
        model: nn.Module,
        encoding_macs: str = "per_step",
        spike_override: Callable[[str, torch.Tensor], torch.Tensor] | None = None,
        strict: bool = True,
    ) -> None:
        if encoding_macs not in ENCODING_MACS:
            raise ValueError(f"encoding_macs must be one of {ENCODING_MACS}, got {encoding_macs!r}")
        self.model = model
        self.encoding_macs = encoding_macs
        self.kinds = check_supported(model, strict=strict)
        self.spike_override = spike_override
        self.rows: dict[str, RowCounts] = {}
        self.samples = 0
        self.steps = 0
        self._infos: dict[str, NeuronInfo] = {}
        self._explicit = 0  # open sample_batch() contexts
        self._group_open = False
        self._lead: str | None = None  # the forward's first spiking layer
        self._lead_steps = 0
        self._lead_batch: int | None = None
        self._root_shape: tuple[int, ...] | None = None
        self._time_hint = 0  # encoding_macs="once": T of the root's time-first input
        self._handles: list = []
        self._pooled: dict[int, tuple[torch.Tensor, float]] = {}
        self._spikes: dict[int, tuple[weakref.ref, torch.Tensor | None, bool]] = {}
        self._known_pixel: torch.Tensor | None = None
        self._fanout_cache: dict[tuple, torch.Tensor] = {}
        self._fan_totals: dict[int, int] = {}
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
            if kind == "neuron":
                info = neuron_info(module)
                assert info is not None
                self._infos[name] = info
                self.rows[name] = RowCounts(
                    name, "neuron", type(module).__name__, info.neuron, info.ops
                )
                continue
            self._row(name, row_kind, module)

    def _in_readout(self, name: str) -> bool:
        parent = name.rpartition(".")[0]
        return self.kinds.get(parent) == "readout"

    def _row(self, name: str, kind: str, module: nn.Module) -> None:
        self.rows[name] = RowCounts(name, kind, type(module).__name__)

    @property
    def not_counted(self) -> list[str]:
        """Modules listed as ``"not counted"`` (``strict=False``), by qualified name."""
        return [n for n, k in self.kinds.items() if k == NOT_COUNTED]

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
        if known is not None and entry[2] and known.dtype == x.dtype:
            return "spikes", 1.0  # a view (e.g. norse Lift's step x[t]) of a spike tensor
        if _is_binary(x):
            return "spikes", 1.0
        return "graded", 0.0

    def _mark_pooled(self, y: torch.Tensor, area: float) -> None:
        self._pooled[y.untyped_storage().data_ptr()] = (y, area)

    def _mark_spikes(self, y: torch.Tensor, pixel: torch.Tensor | None = None) -> None:
        """Remember ``y`` as spikes (and its per-position sums over frames) for this forward.

        ``y`` must be the tensor the next layer receives (not a detached copy: the entry is
        a weak reference). When ``y`` fills its whole storage every view of that storage
        (a time step ``y[t]``) is known to be spikes too.
        """
        storage = y.untyped_storage()
        whole = y.storage_offset() == 0 and storage.nbytes() == y.numel() * y.element_size()
        self._spikes[storage.data_ptr()] = (weakref.ref(y), pixel, whole)

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
            self._fan_totals[id(fan)] = int(round(float(fan.sum().item())))
        return fan

    def _fan_total(self, fan: torch.Tensor) -> int:
        """Sum of a cached fan-out map (exact small integers)."""
        return self._fan_totals[id(fan)]

    # -- hooks ----------------------------------------------------------------
    @contextlib.contextmanager
    def sample_batch(self) -> Iterator[OpCounter]:
        """One forward made of several model calls (one batch of samples).

        ``with counter.sample_batch(): for t in range(T): model(x[t])`` counts ``T`` and
        the batch once, from the lead spiking layer's calls (module docstring), instead
        of one forward per call.
        """
        if self.encoding_macs == "once":
            raise ValueError(
                "encoding_macs='once' needs a time-first model called once per batch "
                "([T, B, ...] input); a model called once per step counts MACs per step"
            )
        if self._explicit == 0:
            self._begin_forward()
        self._explicit += 1
        try:
            yield self
        finally:
            self._explicit -= 1
            if self._explicit == 0:
                self._end_forward()

    def _begin_forward(self) -> None:
        self._group_open = True
        self._lead, self._lead_steps, self._lead_batch = None, 0, None
        self._root_shape = None

    def _end_forward(self) -> None:
        """Add the forward's samples and set ``steps`` (lead layer, else the root's input)."""
        self._group_open = False
        if self._lead is not None:
            steps, batch = self._lead_steps, int(self._lead_batch or 0)
            if self.encoding_macs == "once" and steps != self._time_hint:
                raise ValueError(
                    f"encoding_macs='once' needs a time-first input [T, B, ...]: the model's "
                    f"input has {self._time_hint} leading steps but its first spiking layer "
                    f"{self._lead!r} counted T={steps}"
                )
        else:
            shape = self._root_shape
            if shape is None or len(shape) < 2:
                raise ValueError(
                    "energy accounting of a model without spiking layers needs its input as "
                    f"a time-first tensor [T, B, ...], got {shape}"
                )
            steps, batch = int(shape[0]), int(shape[1])
        self.steps = steps
        self.samples += batch

    def _root_pre_hook(self, module, args) -> None:
        self._pooled.clear()
        self._spikes.clear()
        if self._explicit == 0:
            self._begin_forward()
        x = args[0] if args else None
        if self._root_shape is None and isinstance(x, torch.Tensor):
            self._root_shape = tuple(int(n) for n in x.shape)
        if self.encoding_macs == "once":
            if not isinstance(x, torch.Tensor) or x.dim() < 2:
                raise ValueError(
                    "encoding_macs='once' needs the model's input as a time-first tensor "
                    "[T, B, ...], got "
                    f"{type(x).__name__ if not isinstance(x, torch.Tensor) else tuple(x.shape)}"
                )
            self._time_hint = int(x.shape[0])

    def _root_hook(self, module, args, output) -> None:
        self._pooled.clear()
        self._spikes.clear()
        self._known_pixel = None
        if self._explicit == 0 and self._group_open:
            self._end_forward()

    def _lead_call(self, name: str, info: NeuronInfo, spikes: torch.Tensor) -> None:
        """Steps and batch of a call of the forward's lead spiking layer."""
        if not self._group_open:
            return
        if self._lead is None:
            self._lead = name
            if self.encoding_macs == "once" and not info.multi_step:
                raise ValueError(
                    f"encoding_macs='once' needs a time-first model; its first spiking layer "
                    f"{name!r} takes one step per call"
                )
        if name != self._lead:
            return
        steps = int(spikes.shape[0]) if info.multi_step else 1
        batch = int(spikes.shape[1]) if info.multi_step else int(spikes.shape[0])
        if self._lead_batch is not None and batch != self._lead_batch:
            raise ValueError(
                f"the first spiking layer {name!r} saw batches of {self._lead_batch} and "
                f"{batch} samples in one forward; the energy per sample needs one batch size "
                "per forward"
            )
        self._lead_batch = batch
        self._lead_steps += steps

    def _account_synapse(
        self, row: RowCounts, x: torch.Tensor, frames: int, dense_frame: int, fan_fn
    ) -> None:
        """Dense / MAC / AC / event counts of a multiply layer on input ``x``."""
        kind, area = self._input_kind(x)
        row.calls += 1
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
                row.macs += dense_frame * (frames // max(self._time_hint, 1))
                row.event_macs += fan_fn(*self._nonzero(x, frames)) // max(self._time_hint, 1)
            else:
                row.macs += dense_frame * frames
                row.event_macs += fan_fn(*self._nonzero(x, frames))
            return
        row.pooled_calls += kind == "pooled"
        pixel = self._pixels_of(x, frames)
        mass = float(pixel.double().sum().item())
        row.in_mass += mass
        per_frame_in = x.numel() // frames
        row.acs += mass * dense_frame / per_frame_in
        row.event_acs += fan_fn(pixel, area, mass)

    @staticmethod
    def _nonzero(x: torch.Tensor, frames: int) -> tuple[torch.Tensor, float, float]:
        """``(per-position counts of non-zero inputs, 1, their total)`` for a fan-out count."""
        pixel = counting.nonzero_sums(x, frames)
        return pixel, 1.0, float(pixel.double().sum().item())

    def _constant_over_time(self, x: torch.Tensor, frames: int) -> bool:
        t = max(self._time_hint, 1)
        if frames % t:
            return False
        seq = x.reshape(t, frames // t, -1)
        return bool((seq == seq[:1]).all())

    def _conv_hook(self, name: str):
        row = self.rows[name]

        def hook(module: nn.Conv2d, args, output) -> None:
            x = args[0]
            frames = _frames(name, x, "conv")
            geom = counting.conv_geometry(module)
            in_hw = (int(x.shape[-2]), int(x.shape[-1]))
            row.neurons = int(output.numel()) // frames
            dense = counting.conv_dense_ops(geom, in_hw)
            fan = self._fanout(
                (name, in_hw, x.device), lambda: counting.conv_fanout_map(geom, in_hw, x.device)
            )
            row.padded_taps += (dense - self._fan_total(fan)) * frames

            def events(pixel: torch.Tensor, area: float, mass: float) -> int:
                return counting.event_ops_from_sums(pixel, fan, area)

            self._account_synapse(row, x, frames, dense, events)

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
            frames = _frames(name, x, "pooling")
            geom = (
                counting.pool_geometry(module)
                if isinstance(module, (nn.AvgPool2d, nn.MaxPool2d))
                else _adaptive_geometry(name, module, x)
            )
            in_hw = (int(x.shape[-2]), int(x.shape[-1]))
            channels = int(x.shape[-3])
            dense = counting.pool_dense_ops(geom, channels, in_hw)
            row.neurons = int(output.numel()) // frames
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
            if not isinstance(module, nn.MaxPool2d) and kind != "graded":
                kh, kw = geom["kernel"]
                divisor = getattr(module, "divisor_override", None) or kh * kw
                self._mark_pooled(output, area * divisor)

        return hook

    def _adaptive_pool_hook(self, name: str):
        """``nn.AdaptiveAvgPool2d``: a global average (output 1x1) or equal windows."""
        pool, gap = self._pool_hook(name), self._gap_hook(name)

        def hook(module: nn.Module, args, output) -> None:
            out = _pair_size(module.output_size, args[0])
            (gap if out == (1, 1) else pool)(module, args, output)

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
        info = self._infos[name]
        override = self.spike_override
        trusted = info.binary  # 0/1 by construction: no value check

        def hook(module: nn.Module, args, output):
            spikes = spikes_of(output)
            replaced = None
            if override is not None:
                spikes = override(name, spikes)
                replaced = replace_spikes(output, spikes)
            per_sample = spikes.shape[2:] if info.multi_step else spikes.shape[1:]
            row.neurons = int(torch.Size(per_sample).numel())
            frames = spikes.numel() // max(row.neurons, 1)
            row.frames += frames
            self._lead_call(name, info, spikes)
            values = spikes.detach()
            if trusted or _is_binary(values):
                pixel = counting.frame_sums(values, frames)
                row.spikes += int(round(float(pixel.double().sum().item())))
                self._mark_spikes(spikes, pixel)  # the tensor the next layer receives
            else:  # graded output: count the non-zero outputs, the next layer sees values
                row.graded_output = True
                row.spikes += int(torch.count_nonzero(values).item())
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
            "adaptive_pool": self._adaptive_pool_hook,
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
            "event_macs": sum(r.event_macs for r in rows),
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
    "NOT_COUNTED",
    "OpCounter",
    "RowCounts",
    "UnsupportedLayerError",
    "check_supported",
    "classify",
    "iter_batches",
    "register_layer_kind",
]
