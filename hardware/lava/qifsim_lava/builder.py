"""Wire an exchange file's network out of Lava processes (``hardware/lava/EXCHANGE.md``).

* dense -> ``lava.proc.dense.Dense`` (float: ``weight_float``; fixed: mantissas with
  ``weight_exp``), conv -> ``lava.proc.conv.Conv`` (torch cross-correlation weights
  flipped and transposed to Lava's ``(Cout, kW, kH, Cin)`` true convolution; Lava's
  fixed Conv model ignores ``weight_exp``, so fixed weights are passed as ``m * 2**e``),
  sum pool -> grouped ``Conv`` with a ones kernel, stride = kernel;
* flatten: Lava ports hold maps as ``(W, H, C)``; flattening one gives W-major order, so
  the next Dense's columns are permuted into that order instead of reshaping data;
* QIF -> :class:`qifsim_lava.procs.qif.QIF`, LIF -> Lava's ``LIFReset`` (float: ``du=1``,
  ``dv=1-beta``, ``vth=u_th``; fixed: ``du=4095``, ``dv``, ``vth=vth_mant``, bias
  exponent 6), readout -> :class:`qifsim_lava.procs.readout.Readout`.

Every Dense/Conv/pool process delays by one step; hidden layer ``l`` (counting synaptic
processes up to and including its own) sees sample ``k``'s step 0 at Lava step
``k P + 1 + l`` with ``P = T + D``, and its state is reset exactly then.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
from lava.proc.conv.process import Conv
from lava.proc.dense.process import Dense
from lava.proc.io.source import RingBuffer as Source
from lava.proc.lif.process import LIFReset
from lava.utils.weightutils import SignMode

from .exchange import Layer, Network
from .procs.qif import QIF
from .procs.readout import Readout

GRADED_BITS = 24
MODES = ("float", "fixed")


@dataclass
class Hidden:
    """A spiking layer of the built network.

    ``index``: ``/layer/{index}``; ``delay``: its ``l``; ``shape``: torch output shape;
    ``spatial``: Lava holds it as ``(W, H, C)`` (else ``(N,)`` in torch order).
    """

    index: int
    delay: int
    shape: tuple[int, ...]
    spatial: bool
    process: object


@dataclass
class Built:
    """The wired network: feed ``source``, read ``readout.results``; ``hidden`` in forward order."""

    source: Source
    readout: Readout
    hidden: list[Hidden] = field(default_factory=list)
    spatial_input: bool = False
    delay: int = 0


def lava_conv_weight(weight: np.ndarray) -> np.ndarray:
    """torch cross-correlation ``(Cout, Cin/g, kH, kW)`` -> Lava convolution
    ``(Cout, kW, kH, Cin/g)``."""
    return np.ascontiguousarray(weight[:, :, ::-1, ::-1].transpose(0, 3, 2, 1))


def whc_order(shape: tuple[int, int, int]) -> np.ndarray:
    """Torch flat index (C-major) of every element of a flattened Lava ``(W, H, C)`` array."""
    c, h, w = shape
    return np.arange(c * h * w).reshape(c, h, w).transpose(2, 1, 0).ravel()


def lava_shape(shape: tuple[int, ...]) -> tuple[int, ...]:
    """Torch ``(C, H, W)`` -> Lava ``(W, H, C)``; flat shapes unchanged."""
    return tuple(reversed(shape)) if len(shape) == 3 else tuple(shape)


def _synapse(layer: Layer, mode: str, graded: bool, in_shape: tuple, perm: np.ndarray | None):
    """The Dense/Conv process of a dense/conv/pool layer."""
    bits = GRADED_BITS if graded else 0
    if layer.kind == "dense":
        if mode == "float":
            return Dense(weights=layer.weight_float[:, perm], num_message_bits=bits)
        weights = layer.weight_mant[:, perm]
        return Dense(
            weights=weights,
            weight_exp=layer.weight_exponent,
            num_weight_bits=8,
            num_message_bits=bits,
            # mixed sign always: Lava would pick INHIBITORY for a layer without positive
            # weights and clip its -256 mantissas to -255
            sign_mode=SignMode.MIXED,
        )
    if layer.kind == "pool":
        c = in_shape[0]
        kh, kw = layer.kernel_size
        weight = np.ones((c, kw, kh, 1), dtype=np.float64 if mode == "float" else np.int32)
        stride, padding, dilation, groups = (kw, kh), (0, 0), (1, 1), c
    else:
        if mode == "float":
            weight = lava_conv_weight(layer.weight_float)
        else:
            weight = lava_conv_weight(layer.weight_mant * 2**layer.weight_exponent).astype(np.int32)
        stride = layer.stride[::-1]
        padding = layer.padding[::-1]
        dilation = layer.dilation[::-1]
        groups = layer.groups
    return Conv(
        weight=weight,
        input_shape=lava_shape(in_shape),
        stride=stride,
        padding=padding,
        dilation=dilation,
        groups=groups,
        num_message_bits=bits,
    )


def _neuron(layer: Layer, mode: str, period: int, delay: int):
    """QIF or LIFReset process for a hidden layer (reset at Lava steps ``1 + delay`` mod P)."""
    shape = lava_shape(layer.shape)
    offset = (1 + delay) % period
    if layer.neuron == "lif":
        if mode == "float":
            return LIFReset(
                shape=shape,
                du=1.0,
                dv=1.0 - layer.params["beta"],
                vth=layer.params["u_th"],
                bias_mant=np.broadcast_to(layer.bias_float, shape).copy(),
                bias_exp=0,
                reset_interval=period,
                reset_offset=offset,
            )
        return LIFReset(
            shape=shape,
            du=4095,
            dv=layer.fixed["dv"],
            vth=layer.fixed["vth_mant"],
            bias_mant=np.broadcast_to(layer.bias_mant, shape).copy(),
            bias_exp=6,
            reset_interval=period,
            reset_offset=offset,
        )
    p, fx = layer.params, layer.fixed
    return QIF(
        shape=shape,
        bias=np.broadcast_to(layer.bias_float, shape),
        a=p["a"],
        u_rest=p["u_rest"],
        u_c=p["u_c"],
        u_th=p["u_th"],
        bias_mant=np.broadcast_to(layer.bias_mant, shape),
        u_rest_int=fx["u_rest_int"],
        u_c_int=fx["u_c_int"],
        a_mant=fx["a_mant"],
        a_shift=fx["a_shift"],
        vth_mant=fx["vth_mant"],
        euler=p["form"] == "euler",
        reset_interval=period,
        reset_offset=offset,
    )


def build(net: Network, data: np.ndarray, steps: int, samples: int, mode: str) -> Built:
    """Wire ``net`` for ``samples`` samples of ``steps`` steps each.

    Args:
        net: from :func:`~qifsim_lava.exchange.load_exchange`.
        data: source buffer ``(*lava_input_shape, samples * (steps + D))`` (see
            :func:`input_layout`), float64 (float) or int32 (fixed).
        steps: ``T``; samples: number of samples.
        mode: ``"float"`` or ``"fixed"``.
    """
    if mode not in MODES:
        raise ValueError(f"mode must be 'float' or 'fixed', got {mode!r}")
    period = steps + net.delay
    spatial = input_layout(net)
    source = Source(data=data)
    port = source.s_out
    shape = net.input_shape
    perm = None if spatial else np.arange(int(np.prod(shape)))
    graded = True
    delay = 0
    built = Built(source=source, readout=None, spatial_input=spatial, delay=net.delay)
    for layer in net.layers:
        if layer.kind == "flatten":
            if perm is None:  # a Lava (W, H, C) map becomes a W-major vector
                perm = whc_order(shape)
                port = port.flatten()
            shape = layer.shape
            continue
        if layer.kind in ("conv", "pool") and perm is not None:
            raise ValueError(f"layer {layer.index}: {layer.kind} after flatten is not supported")
        conn = _synapse(layer, mode, graded, shape, perm)
        port.connect(conn.s_in)
        delay += 1
        port = conn.a_out
        shape = layer.shape
        if layer.kind == "pool":
            graded = True
            continue
        graded = False
        perm = None if len(shape) == 3 else np.arange(shape[0])
        if layer.role == "readout":
            readout = Readout(
                n=shape[0],
                samples=samples,
                steps=steps,
                period=period,
                first=1 + delay,
                bias=layer.bias_float,
                bias_mant=layer.bias_mant,
            )
            port.connect(readout.a_in)
            built.readout = readout
            return built
        neuron = _neuron(layer, mode, period, delay)
        port.connect(neuron.a_in)
        port = neuron.s_out
        built.hidden.append(Hidden(layer.index, delay, layer.shape, len(shape) == 3, neuron))
    raise ValueError("the network has no readout layer")


def input_layout(net: Network) -> bool:
    """``True`` when the source feeds Lava ``(W, H, C)`` maps, ``False`` for a flat
    torch-order vector (flat inputs, or a flatten right after the input)."""
    return len(net.input_shape) == 3 and net.layers[0].kind != "flatten"
