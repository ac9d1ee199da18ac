"""qifsim: spiking-first simulation of discretized Quadratic Integrate-and-Fire networks."""

from .neurons.parameters import LIFParameters, QIFParameters

__version__ = "0.1.0"

__all__ = ["LIFParameters", "QIFParameters", "__version__"]
