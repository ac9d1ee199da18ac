"""qifsim: spiking-first simulation of discretized Quadratic Integrate-and-Fire networks.

``import qifsim`` is light: sub-packages load on first use, so the event
pipeline (``qifsim.events``: readers, framing) works without importing torch.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING

__version__ = "0.1.0"

__all__ = ["LIFParameters", "QIFParameters", "__version__"]

_LAZY = {"QIFParameters": "qifsim.neurons.parameters", "LIFParameters": "qifsim.neurons.parameters"}

if TYPE_CHECKING:  # pragma: no cover
    from .neurons.parameters import LIFParameters, QIFParameters


def __getattr__(name: str):
    if name in _LAZY:
        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'qifsim' has no attribute {name!r}")
