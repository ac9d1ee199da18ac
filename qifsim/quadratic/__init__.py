"""Quadratic dendritic integration: pure functions (pairs, references) and the fused op.

The modules live in :mod:`qifsim.layers.quadratic` (``ChannelQuadratic``, ``QuadraticConv2d``,
``QuadraticLinear``, ``PixelQuadratic``).
"""

from .functional import (
    centre_pixels,
    channel_quadratic_reference,
    dense_from_packed,
    linear_quadratic_reference,
    num_pairs,
    pair_indices,
    pixel_quadratic_reference,
)
from .fused import lowrank_quadratic, pairwise_quadratic
from .params import quadratic_param_groups

__all__ = [
    "centre_pixels",
    "channel_quadratic_reference",
    "dense_from_packed",
    "linear_quadratic_reference",
    "lowrank_quadratic",
    "num_pairs",
    "pair_indices",
    "pairwise_quadratic",
    "pixel_quadratic_reference",
    "quadratic_param_groups",
]
