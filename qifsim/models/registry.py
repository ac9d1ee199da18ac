"""Model registry: build a model by name, list the models with their paper setups.

``build_model(name, neuron="qif", ...)`` creates one of :data:`MODEL_NAMES`;
``model_table()`` describes each (input, parameter count, spiking layers) for
``qifsim models``.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Any

from .base import SpikingModel
from .dit_resnet import CIFAR_RESNETS
from .dvsgesture import DVSGestureNet
from .factory import (
    LayerFactory,
    NeuronParameters,
    apply_quadratic_synapses,
    check_neuron,
    check_synapse,
    resolve_quadratic_layers,
)
from .lenet import LeNet5
from .resnet import ResNet19
from .small import DigitsNet
from .vgg import VGG11, VGGSNN

MODEL_NAMES: tuple[str, ...] = (
    "resnet19",
    "vggsnn",
    "vgg11",
    "dvsgesturenet",
    "lenet5",
    "digits-net",
)

_CLASSES: dict[str, type[SpikingModel]] = {
    "resnet19": ResNet19,
    "vggsnn": VGGSNN,
    "vgg11": VGG11,
    "dvsgesturenet": DVSGestureNet,
    "lenet5": LeNet5,
    "digits-net": DigitsNet,
}


@dataclass(frozen=True)
class ModelSetup:
    """The dataset and input a model is used with (QIF paper Table 5 / Appendix F).

    ``input_size`` is ``(H, W)``; ``steps`` is ``T``.
    """

    dataset: str
    in_channels: int
    num_classes: int
    input_size: tuple[int, int]
    steps: int
    dropout: float = 0.0

    @property
    def input(self) -> str:
        """E.g. ``"3x32x32, T=2"``."""
        h, w = self.input_size
        return f"{self.in_channels}x{h}x{w}, T={self.steps}"


#: Each model's setup in the QIF paper (digits-net: this package's digits-dvs demo data).
PAPER_SETUPS: dict[str, ModelSetup] = {
    "resnet19": ModelSetup("CIFAR-10", 3, 10, (32, 32), 2),
    "vggsnn": ModelSetup("CIFAR10-DVS", 2, 10, (48, 48), 10, 0.6),
    "vgg11": ModelSetup("N-Caltech101", 2, 101, (48, 48), 10, 0.6),
    "dvsgesturenet": ModelSetup("DVS128-Gesture", 2, 11, (128, 128), 10, 0.75),
    "lenet5": ModelSetup("Fashion-MNIST", 1, 10, (28, 28), 2),
    "digits-net": ModelSetup("digits-dvs", 2, 10, (34, 34), 10),
}

# Dendritic-integration paper: CIFAR ResNet-20/32/56/110 and Dit-ResNets (ANN, T=1); built by
# name like the spiking models but listed apart from them (MODEL_NAMES: the spiking models).
ANN_MODEL_NAMES: tuple[str, ...] = tuple(CIFAR_RESNETS)
_CLASSES.update(CIFAR_RESNETS)
PAPER_SETUPS.update({name: ModelSetup("CIFAR-10", 3, 10, (32, 32), 1) for name in CIFAR_RESNETS})


def check_model_name(name: str) -> str:
    """Return ``name`` lower-cased, or raise ``ValueError`` listing :data:`MODEL_NAMES`."""
    key = name.lower() if isinstance(name, str) else name
    if key not in _CLASSES:
        raise ValueError(f"unknown model {name!r}; choose one of {tuple(_CLASSES)}")
    return key


def default_input_size(name: str) -> tuple[int, int]:
    """``(H, W)`` a model is built for when ``input_size`` is not given."""
    return PAPER_SETUPS[check_model_name(name)].input_size


def build_model(
    name: str,
    neuron: str = "qif",
    num_classes: int = 10,
    in_channels: int = 2,
    neuron_params: NeuronParameters | None = None,
    synapse: str = "linear",
    dropout: float = 0.0,
    input_size: tuple[int, int] | None = None,
    quadratic_layers: str | Sequence[str] | None = None,
    **kwargs: Any,
) -> SpikingModel:
    """Build a spiking model by name.

    Args:
        name: one of :data:`MODEL_NAMES`.
        neuron: ``"qif"`` or ``"lif"``.
        num_classes: readout size.
        in_channels: input channels ``C`` (3 for RGB images, 2 for DVS polarities).
        neuron_params: :class:`~qifsim.neurons.QIFParameters` /
            :class:`~qifsim.neurons.LIFParameters`; ``None``: the paper's
            defaults (QIF ``a=0.25, u_rest=0, u_c=0.5, u_th=0.5``; LIF
            ``beta=0.25, u_th=0.5``). tdBN layers use its ``u_th``.
        synapse: ``"linear"``, or ``"quadratic"``: the synapses named by ``quadratic_layers``
            become spiking quadratic ones (:func:`~qifsim.models.factory.apply_quadratic_synapses`:
            zero diagonal, no norm, quadratic term zero-initialised).
        dropout: time-shared dropout probability before the classifier's FC layers.
        input_size: ``(H, W)``; ``None``: the model's default (resnet19 32x32,
            vggsnn 48x48, vgg11 48x48, dvsgesturenet 128x128, lenet5 28x28,
            digits-net 34x34).
        quadratic_layers: with ``synapse="quadratic"``: ``None``/``"auto"`` (the model's
            default placement, :data:`~qifsim.models.factory.QUADRATIC_AUTO_LAYERS`) or a list
            of synapse names (e.g. ``["features.conv2.conv"]``) fed by binary spikes.
        **kwargs: ``neuron_kwargs`` (dict of neuron-module options such as
            ``impl``, ``backend``, ``detach_reset``) and model options
            (``voting``, ``channels``, ``hidden`` for dvsgesturenet; ``variant``
            for vgg11; ``channels``, ``hidden`` for digits-net).

    Returns:
        The model; ``forward(x [T, B, C, H, W]) -> logits [B, num_classes]``.

    Raises:
        ValueError: unknown name, neuron or synapse, or an input size too small.
        TypeError: neuron parameters of the wrong type, or unknown keyword arguments.
    """
    key = check_model_name(name)
    check_neuron(neuron)
    check_synapse(synapse)
    factory = LayerFactory(
        neuron=neuron,
        params=neuron_params,
        synapse=synapse,
        neuron_kwargs=kwargs.pop("neuron_kwargs", None) or {},
    )
    if synapse != "quadratic" and quadratic_layers is not None:
        raise ValueError("quadratic_layers needs synapse='quadratic'")
    size = default_input_size(key) if input_size is None else tuple(input_size)
    model = _CLASSES[key](
        factory,
        num_classes=num_classes,
        in_channels=in_channels,
        input_size=size,
        dropout=dropout,
        **kwargs,
    )
    if synapse == "quadratic":
        names = resolve_quadratic_layers(model, key, quadratic_layers)
        apply_quadratic_synapses(model, names)
    return model


def count_parameters(model: SpikingModel) -> int:
    """Number of trainable parameters (tdBN's gamma and xi included)."""
    return sum(p.numel() for p in model.parameters() if p.requires_grad)


def model_table(
    names: Iterable[str] = MODEL_NAMES,
    configs: Mapping[str, ModelSetup | Mapping[str, Any]] | None = None,
    neuron: str = "qif",
) -> list[dict[str, Any]]:
    """One row per model, built in its paper setup (:data:`PAPER_SETUPS`).

    Args:
        names: models to list.
        configs: per-model overrides, a :class:`ModelSetup` or a mapping of its
            fields (e.g. ``{"resnet19": {"num_classes": 100, "dataset": "CIFAR-100"}}``).
        neuron: neuron type to build with (the counts are the same for both).

    Returns:
        Dicts with ``name``, ``dataset``, ``input`` (e.g. ``"3x32x32, T=2"``),
        ``num_classes``, ``parameters`` (trainable) and ``spiking_layers``.
    """
    configs = configs or {}
    rows = []
    for name in names:
        key = check_model_name(name)
        setup = PAPER_SETUPS[key]
        override = configs.get(key, configs.get(name))
        if isinstance(override, ModelSetup):
            setup = override
        elif override:
            setup = replace(setup, **dict(override))
        model = build_model(
            key,
            neuron=neuron,
            num_classes=setup.num_classes,
            in_channels=setup.in_channels,
            input_size=setup.input_size,
        )
        rows.append(
            {
                "name": key,
                "dataset": setup.dataset,
                "input": setup.input,
                "num_classes": setup.num_classes,
                "parameters": count_parameters(model),
                "spiking_layers": len(model.spiking_layers()),
            }
        )
    return rows
