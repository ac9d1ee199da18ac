"""Spiking architectures of the QIF paper, built with QIF or LIF neurons and tdBN.

``build_model(name, neuron="qif", ...)`` creates one of :data:`MODEL_NAMES`:

=================  =====================================  ==================
name               architecture                           paper setup
=================  =====================================  ==================
``resnet19``       ResNet-19 (Zheng et al. 2021)          CIFAR, 3x32x32, T=2
``vggsnn``         VGGSNN (Deng et al. 2022)              CIFAR10-DVS / N-Cars, 2x48x48, T=10
``vgg11``          VGG-11 (Kim & Panda 2021)              N-Caltech101, 2x48x48, T=10
``dvsgesturenet``  DVSGestureNet (Fang et al. 2021)       DVS128-Gesture, 2x128x128, T=10
``lenet5``         LeNet-5 (QIF paper, Appendix F)        Fashion-MNIST, 1x28x28, T=2
``digits-net``     small CPU-sized conv net               digits-dvs, 2x34x34, T=10
=================  =====================================  ==================

Every model takes time-first input ``[T, B, C, H, W]`` (static images:
:func:`direct_encode`) and returns the non-firing readout averaged over T,
``[B, num_classes]``. There is a tdBN before every spiking layer;
``model.spiking_layers()`` lists the neuron modules by name.
"""

from .base import SpikingModel
from .blocks import ConvSpike, LinearSpike, Readout, TimeSharedDropout
from .dvsgesture import DVSGestureNet
from .encoding import direct_encode
from .factory import NEURONS, SYNAPSES, LayerFactory
from .lenet import LeNet5
from .registry import (
    MODEL_NAMES,
    PAPER_SETUPS,
    ModelSetup,
    build_model,
    count_parameters,
    default_input_size,
    model_table,
)
from .resnet import RESIDUAL_ETA, BasicBlock, ResNet19
from .small import DigitsNet
from .vgg import VGG11, VGGSNN

__all__ = [
    "MODEL_NAMES",
    "NEURONS",
    "PAPER_SETUPS",
    "RESIDUAL_ETA",
    "SYNAPSES",
    "VGG11",
    "VGGSNN",
    "BasicBlock",
    "ConvSpike",
    "DVSGestureNet",
    "DigitsNet",
    "LayerFactory",
    "LeNet5",
    "LinearSpike",
    "ModelSetup",
    "Readout",
    "ResNet19",
    "SpikingModel",
    "TimeSharedDropout",
    "build_model",
    "count_parameters",
    "default_input_size",
    "direct_encode",
    "model_table",
]
