"""Layers for time-first ``[T, B, ...]`` spiking networks: tdBN, folding, time merging,
quadratic (dendritic) synapses."""

from .quadratic import ChannelQuadratic, PixelQuadratic, QuadraticConv2d, QuadraticLinear
from .tdbn import TDBatchNorm1d, TDBatchNorm2d, fold_batchnorm
from .temporal import MergeTime

__all__ = [
    "ChannelQuadratic",
    "MergeTime",
    "PixelQuadratic",
    "QuadraticConv2d",
    "QuadraticLinear",
    "TDBatchNorm1d",
    "TDBatchNorm2d",
    "fold_batchnorm",
]
