"""Build the model a :class:`~qifsim.train.config.TrainConfig` names.

``config.model`` is a :func:`qifsim.models.build_model` name, or
``"package.module:function"`` for a custom factory that takes the same
keyword arguments (``neuron``, ``num_classes``, ``in_channels``,
``neuron_params``, ``synapse``, ``dropout``, ``input_size``; ``quadratic_layers`` only
when the config sets it) and returns a
module mapping ``[T, B, C, H, W]`` to logits ``[B, num_classes]``.

The config's ``neuron_params`` dict becomes a
:class:`~qifsim.neurons.QIFParameters` / :class:`~qifsim.neurons.LIFParameters`
(missing fields keep the paper's defaults) before it reaches the factory.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable

from torch import nn

from .config import TrainConfig
from .data import DataInfo


def resolve_factory(spec: str) -> Callable[..., nn.Module]:
    """The model factory for ``spec`` (a ``build_model`` name or ``"module:function"``)."""
    if ":" not in spec:
        from ..models import build_model

        def factory(**kwargs) -> nn.Module:
            return build_model(spec, **kwargs)

        return factory
    module_name, _, attr = spec.partition(":")
    try:
        module = importlib.import_module(module_name)
    except ImportError as err:
        raise ValueError(f"model {spec!r}: cannot import module {module_name!r} ({err})") from err
    factory = getattr(module, attr, None)
    if not callable(factory):
        raise ValueError(f"model {spec!r}: {module_name!r} has no callable {attr!r}")
    return factory


def neuron_parameters(config: TrainConfig):
    """``config.neuron_params`` as a QIF/LIF parameter object (``None`` when not set)."""
    if config.neuron_params is None:
        return None
    from ..neurons.parameters import LIFParameters, QIFParameters

    cls = QIFParameters if config.neuron == "qif" else LIFParameters
    return cls(**config.neuron_params)


def build_model_from_config(config: TrainConfig, info: DataInfo) -> nn.Module:
    """The model of ``config`` for data described by ``info`` (on the CPU, freshly initialised).

    ``config.detach_reset`` is applied to every qifsim neuron module afterwards.
    """
    from ..energy.monitor import spiking_layers

    extra = {} if config.quadratic_layers is None else {"quadratic_layers": config.quadratic_layers}
    model = resolve_factory(config.model)(
        neuron=config.neuron,
        num_classes=info.num_classes,
        in_channels=info.in_channels,
        neuron_params=neuron_parameters(config),
        synapse=config.synapse,
        dropout=config.dropout,
        input_size=tuple(info.input_size),
        **extra,
    )
    for neuron in spiking_layers(model).values():
        neuron.detach_reset = config.detach_reset
    return model
