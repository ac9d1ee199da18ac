"""The training configuration: one frozen, validated, JSON-serialisable dataclass.

``TrainConfig`` holds everything that shapes a training run (model, data,
optimiser, schedule, seeds). It validates itself on construction and names
the valid choices when a value is wrong; ``to_dict()`` / ``from_dict()`` give
a JSON round trip (tuples become lists and back).
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Mapping
from dataclasses import dataclass, fields
from typing import Any

NEURONS = ("qif", "lif")
DATASETS = (
    "digits-dvs",
    "n-mnist",
    "n-caltech101",
    "n-cars",
    "cifar10-dvs",
    "dvs128-gesture",
    "cifar10",
    "cifar100",
    "fashion-mnist",
)
OPTIMIZERS = ("sgd", "adam")
SCHEDULES = ("cosine", "multistep", "none")
AMP_MODES = (None, "bf16")

#: Neuron parameter names accepted in ``neuron_params`` (the parameter dataclasses' fields).
NEURON_PARAM_NAMES = {
    "qif": ("a", "u_rest", "u_c", "u_th", "form", "surrogate", "alpha"),
    "lif": ("beta", "u_th", "surrogate", "alpha"),
}


class ConfigError(ValueError):
    """A training configuration is invalid; the message lists every problem found."""


@dataclass(frozen=True)
class TrainConfig:
    """One training run.

    Attributes:
        name: run name (free text, used in logs).
        model: a :func:`qifsim.models.build_model` name (``"digits-net"``,
            ``"lenet5"``, ``"resnet19"``, ``"vggsnn"``, ``"vgg11"``,
            ``"dvsgesturenet"``, ...) or ``"package.module:factory"`` for a custom
            factory with ``build_model``'s keyword arguments.
        neuron: ``"qif"`` or ``"lif"``.
        neuron_params: neuron parameters passed to the model, e.g.
            ``{"a": 0.25, "u_c": 0.5}`` (QIF) or ``{"beta": 0.25}`` (LIF); ``None``
            uses the paper's defaults.
        dataset: one of :data:`DATASETS`.
        data_root: dataset folder (``None`` is fine for ``"digits-dvs"``, which is
            generated and cached).
        n_samples: use only this many training samples (quick runs); ``None``: all.
        n_test_samples: test samples to use; ``None``: ``n_samples`` (so one
            setting shrinks both splits), and all when that is ``None`` too.
        T: time steps per sample (event frames, or repeats of a static image).
        epochs: training epochs.
        batch_size: global batch size (split evenly over the processes under
            ``torchrun``; must then be divisible by the number of processes).
        optimizer: ``"sgd"`` (with ``momentum``) or ``"adam"`` (with ``betas``).
        lr: peak learning rate.
        momentum: SGD momentum.
        betas: Adam's ``(beta1, beta2)``.
        weight_decay: L2 weight decay (the optimiser's ``weight_decay``).
        schedule: ``"cosine"`` (cosine decay from ``lr`` to 0 over all training
            steps, updated after every optimiser step), ``"multistep"`` (``lr``
            divided by 10 at each epoch of ``milestones``) or ``"none"`` (constant).
        milestones: epochs (0-based counts of completed epochs) at which the
            ``"multistep"`` schedule divides the rate by 10, increasing.
        quad_lr_scale: learning-rate factor of the quadratic synapses' parameters
            (``A`` and the LayerNorm before it; 10 in the dendritic-integration
            paper), see :func:`qifsim.quadratic.quadratic_param_groups`.
        dropout: dropout probability inside the model.
        grad_clip: clip the global gradient norm to this value; ``None``: no clipping.
        amp: ``None`` (float32) or ``"bf16"`` (bfloat16 autocast, CPU and CUDA).
        seed: seed of everything (weights, shuffling, augmentation, dropout).
        num_workers: DataLoader worker processes.
        eval_every: evaluate on the test set every this many epochs (and after
            the last epoch).
        input_size: ``(H, W)`` to resize inputs to; ``None``: the dataset's default.
        detach_reset: stop gradients through the neurons' reset.
        synapse: synapse type passed to the model (``"linear"`` or ``"quadratic"``).
        quadratic_layers: with ``synapse="quadratic"``: ``"auto"``/``None`` (the model's
            default placement) or a list of synapse names (``build_model``'s argument).
        frame_cache: cache the framed event datasets in HDF5 (the
            :mod:`qifsim.events.cache`; not used by digits-dvs and static images).
        deterministic: ask torch for deterministic algorithms (warn-only where an
            op has none) and turn off cuDNN benchmarking.
    """

    name: str = "run"
    model: str = "digits-net"
    neuron: str = "qif"
    neuron_params: dict[str, Any] | None = None
    dataset: str = "digits-dvs"
    data_root: str | None = None
    n_samples: int | None = None
    n_test_samples: int | None = None
    T: int = 10
    epochs: int = 10
    batch_size: int = 64
    optimizer: str = "adam"
    lr: float = 1e-3
    momentum: float = 0.9
    betas: tuple[float, float] = (0.9, 0.999)
    weight_decay: float = 0.0
    schedule: str = "cosine"
    milestones: tuple[int, ...] = ()
    quad_lr_scale: float = 10.0
    dropout: float = 0.0
    grad_clip: float | None = None
    amp: str | None = None
    seed: int = 0
    num_workers: int = 0
    eval_every: int = 1
    input_size: tuple[int, int] | None = None
    detach_reset: bool = False
    synapse: str = "linear"
    quadratic_layers: str | tuple[str, ...] | None = None
    frame_cache: bool = True
    deterministic: bool = True

    def __post_init__(self) -> None:
        self._normalise()
        problems = _problems(self)
        if problems:
            raise ConfigError(
                "invalid training configuration:\n" + "\n".join(f"  - {p}" for p in problems)
            )

    def _normalise(self) -> None:
        """Copy mutable values and turn JSON lists into tuples (no validation)."""
        setter = object.__setattr__
        if isinstance(self.betas, list):
            setter(self, "betas", tuple(self.betas))
        if isinstance(self.milestones, list):
            setter(self, "milestones", tuple(self.milestones))
        if isinstance(self.input_size, list):
            setter(self, "input_size", tuple(self.input_size))
        if isinstance(self.quadratic_layers, list):
            setter(self, "quadratic_layers", tuple(self.quadratic_layers))
        if isinstance(self.input_size, int) and not isinstance(self.input_size, bool):
            setter(self, "input_size", (self.input_size, self.input_size))
        if isinstance(self.neuron_params, Mapping):
            setter(self, "neuron_params", dict(self.neuron_params))
        if self.data_root is not None and not isinstance(self.data_root, str):
            setter(self, "data_root", str(self.data_root))
        for name in ("lr", "momentum", "weight_decay", "dropout", "grad_clip", "quad_lr_scale"):
            value = getattr(self, name)
            if isinstance(value, int) and not isinstance(value, bool):
                setter(self, name, float(value))

    # -- serialisation -------------------------------------------------------

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-able dict (tuples as lists)."""
        out = {}
        for f in fields(self):
            value = getattr(self, f.name)
            if isinstance(value, tuple):
                value = list(value)
            elif isinstance(value, dict):
                value = dict(value)
            out[f.name] = value
        return out

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> TrainConfig:
        """Build from a dict like ``to_dict()``'s; unknown keys raise, listing the valid ones."""
        if not isinstance(data, Mapping):
            raise ConfigError(f"a training configuration must be a mapping, got {type(data)}")
        valid = field_names()
        unknown = sorted(set(data) - set(valid))
        if unknown:
            raise ConfigError(
                f"unknown configuration keys {unknown}; valid keys: {', '.join(valid)}"
            )
        return cls(**dict(data))

    def replace(self, **changes: Any) -> TrainConfig:
        """A copy with ``changes`` applied (validated again)."""
        unknown = sorted(set(changes) - set(field_names()))
        if unknown:
            raise ConfigError(
                f"unknown configuration keys {unknown}; valid keys: {', '.join(field_names())}"
            )
        return dataclasses.replace(self, **changes)


def field_names() -> tuple[str, ...]:
    """Names of the :class:`TrainConfig` fields, in declaration order."""
    return tuple(f.name for f in fields(TrainConfig))


# -- validation ------------------------------------------------------------------


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def _choice(problems: list[str], name: str, value: Any, choices: tuple) -> None:
    if value not in choices:
        problems.append(f"{name} must be one of {choices}, got {value!r}")


def _int_at_least(problems: list[str], name: str, value: Any, low: int, optional=False) -> None:
    if optional and value is None:
        return
    if not _is_int(value) or value < low:
        none = " or None" if optional else ""
        problems.append(f"{name} must be an integer >= {low}{none}, got {value!r}")


def _number(problems: list[str], name: str, value: Any, low: float, high: float | None = None):
    upper = f" and < {high}" if high is not None else ""
    if not _is_number(value) or value < low or (high is not None and value >= high):
        problems.append(f"{name} must be a finite number >= {low}{upper}, got {value!r}")


def _neuron_param_problems(neuron: str, params: Any) -> list[str]:
    """Problems with ``neuron_params`` (unknown names, values the parameter classes reject)."""
    if params is None:
        return []
    if not isinstance(params, dict):
        return [f"neuron_params must be a dict or None, got {params!r}"]
    if neuron not in NEURON_PARAM_NAMES:
        return []  # the neuron problem is reported already
    valid = NEURON_PARAM_NAMES[neuron]
    unknown = sorted(set(params) - set(valid))
    if unknown:
        return [f"neuron_params {unknown} are not {neuron} parameters; valid names: {valid}"]
    from ..neurons.parameters import LIFParameters, QIFParameters

    cls = QIFParameters if neuron == "qif" else LIFParameters
    try:
        cls(**params)
    except (TypeError, ValueError) as err:
        return [f"neuron_params rejected by {cls.__name__}: {err}"]
    return []


def _milestone_problems(c: TrainConfig) -> list[str]:
    """Problems with ``milestones`` (increasing epochs in [1, epochs); needed by multistep)."""
    m = c.milestones
    if not isinstance(m, tuple) or not all(_is_int(v) and v >= 1 for v in m):
        return [f"milestones must be a list of epochs >= 1, got {m!r}"]
    if any(a >= b for a, b in zip(m, m[1:], strict=False)):
        return [f"milestones must be increasing, got {list(m)}"]
    if c.schedule == "multistep" and not m:
        return ["schedule 'multistep' needs milestones (epochs at which lr is divided by 10)"]
    if _is_int(c.epochs) and m and m[-1] >= c.epochs:
        return [f"milestones must be < epochs ({c.epochs}), got {list(m)}"]
    return []


def _problems(c: TrainConfig) -> list[str]:
    """Every problem with ``c`` (empty when valid)."""
    p: list[str] = []
    if not isinstance(c.name, str) or not c.name:
        p.append(f"name must be a non-empty string, got {c.name!r}")
    if not isinstance(c.model, str) or not c.model:
        p.append(f"model must be a model name (or 'module:factory'), got {c.model!r}")
    _choice(p, "neuron", c.neuron, NEURONS)
    p += _neuron_param_problems(c.neuron, c.neuron_params)
    _choice(p, "dataset", c.dataset, DATASETS)
    _int_at_least(p, "n_samples", c.n_samples, 1, optional=True)
    _int_at_least(p, "n_test_samples", c.n_test_samples, 1, optional=True)
    _int_at_least(p, "T", c.T, 1)
    _int_at_least(p, "epochs", c.epochs, 1)
    _int_at_least(p, "batch_size", c.batch_size, 1)
    _choice(p, "optimizer", c.optimizer, OPTIMIZERS)
    _number(p, "lr", c.lr, 0.0)
    if _is_number(c.lr) and c.lr == 0:
        p.append("lr must be > 0, got 0")
    _number(p, "momentum", c.momentum, 0.0, 1.0)
    if (
        not isinstance(c.betas, tuple)
        or len(c.betas) != 2
        or not all(_is_number(b) and 0 <= b < 1 for b in c.betas)
    ):
        p.append(f"betas must be two numbers in [0, 1), got {c.betas!r}")
    _number(p, "weight_decay", c.weight_decay, 0.0)
    _choice(p, "schedule", c.schedule, SCHEDULES)
    p += _milestone_problems(c)
    _number(p, "quad_lr_scale", c.quad_lr_scale, 0.0)
    if _is_number(c.quad_lr_scale) and c.quad_lr_scale == 0:
        p.append("quad_lr_scale must be > 0, got 0")
    _number(p, "dropout", c.dropout, 0.0, 1.0)
    if c.grad_clip is not None and (not _is_number(c.grad_clip) or c.grad_clip <= 0):
        p.append(f"grad_clip must be a number > 0 or None, got {c.grad_clip!r}")
    _choice(p, "amp", c.amp, AMP_MODES)
    _int_at_least(p, "seed", c.seed, 0)
    _int_at_least(p, "num_workers", c.num_workers, 0)
    _int_at_least(p, "eval_every", c.eval_every, 1)
    if c.input_size is not None and (
        not isinstance(c.input_size, tuple)
        or len(c.input_size) != 2
        or not all(_is_int(v) and v >= 1 for v in c.input_size)
    ):
        p.append(f"input_size must be (H, W) with positive integers or None, got {c.input_size!r}")
    if c.data_root is not None and not c.data_root:
        p.append("data_root must be a folder path or None, got ''")
    if not isinstance(c.synapse, str) or not c.synapse:
        p.append(f"synapse must be a synapse name such as 'linear', got {c.synapse!r}")
    q = c.quadratic_layers
    if q is not None and not (
        q == "auto" or (isinstance(q, tuple) and q and all(isinstance(n, str) and n for n in q))
    ):
        p.append(f"quadratic_layers must be 'auto', null or a list of layer names, got {q!r}")
    elif q is not None and c.synapse != "quadratic":
        p.append(f"quadratic_layers needs synapse 'quadratic', got synapse {c.synapse!r}")
    for name in ("detach_reset", "frame_cache", "deterministic"):
        if not isinstance(getattr(c, name), bool):
            p.append(f"{name} must be true or false, got {getattr(c, name)!r}")
    return p
