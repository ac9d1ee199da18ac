"""Layers for time-first ``[T, B, ...]`` spiking networks: tdBN, folding, time merging."""

from .tdbn import TDBatchNorm1d, TDBatchNorm2d, fold_batchnorm
from .temporal import MergeTime

__all__ = ["MergeTime", "TDBatchNorm1d", "TDBatchNorm2d", "fold_batchnorm"]
