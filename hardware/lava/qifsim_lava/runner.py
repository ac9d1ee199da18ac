"""Run an exchange file's network in Lava on a batch of samples.

All samples run back to back in one compiled network: sample ``k`` occupies Lava steps
``k P + 1 .. (k + 1) P`` with ``P = T + D`` (``D`` synaptic processes, one step of delay
each); its frames are fed at the first ``T`` of them, zeros after, and every stateful
process resets at the step that carries the sample's first step. Recorded spikes are
shifted back by each layer's delay, so they line up with the delay-free torch model.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field

import numpy as np
from lava.magma.core.run_conditions import RunSteps
from lava.magma.core.run_configs import Loihi2SimCfg
from lava.proc.io.sink import RingBuffer as Sink

from .builder import build, input_layout, lava_shape
from .exchange import Network

INT32_MAX = 2**31 - 1


@dataclass
class RunResult:
    """Output of :func:`run_network`.

    Attributes:
        logits: ``[B, num_classes]`` float64: readout averaged over ``T``
            (fixed: ``acc / (T lambda)``).
        predictions: ``[B]`` int64 ``argmax`` (fixed: of ``acc``; first maximal index).
        acc: fixed mode: integer readout accumulators ``[B, num_classes]`` (int64), else ``None``.
        spikes: with ``record_spikes``: ``{layer index: [T, B, *shape]}`` (torch layout,
            delay removed).
        steps: Lava steps run; seconds: wall time of the run (without compilation and reads);
        compile_seconds: build + compile time.
    """

    logits: np.ndarray
    predictions: np.ndarray
    acc: np.ndarray | None
    spikes: dict[int, np.ndarray] = field(default_factory=dict)
    steps: int = 0
    seconds: float = 0.0
    compile_seconds: float = 0.0

    @property
    def steps_per_second(self) -> float:
        return self.steps / self.seconds if self.seconds > 0 else float("nan")


def check_frames(net: Network, frames: np.ndarray) -> np.ndarray:
    """Validate ``frames [T, B, *input_shape]`` and return them as float64."""
    frames = np.asarray(frames)
    want = tuple(net.input_shape)
    if frames.ndim != 2 + len(want) or tuple(frames.shape[2:]) != want:
        raise ValueError(
            f"frames must be [T, B, {', '.join(map(str, want))}] for {net.path.name}, "
            f"got shape {frames.shape}"
        )
    if frames.shape[0] < 1 or frames.shape[1] < 1:
        raise ValueError(f"frames need T >= 1 and B >= 1, got shape {frames.shape}")
    if frames.dtype.kind not in "biuf":
        raise ValueError(f"frames must be numeric, got dtype {frames.dtype}")
    frames = frames.astype(np.float64)
    if not np.isfinite(frames).all():
        raise ValueError("frames contain NaN/inf")
    return frames


def source_data(net: Network, frames: np.ndarray, mode: str) -> np.ndarray:
    """The source ring buffer ``(*lava_input_shape, B P)``: sample ``k``'s step ``t`` in column
    ``k P + t`` (fixed: ``round(frames * input_scale)`` as int32), zeros elsewhere."""
    T, B = frames.shape[:2]
    period = T + net.delay
    x = frames
    if mode == "fixed":
        x = np.round(frames * net.input_scale)
        if np.abs(x).max(initial=0) > INT32_MAX:
            raise ValueError("fixed-point inputs exceed int32: lower input_scale")
    if input_layout(net):  # [T, B, C, H, W] -> [W, H, C, B, T]
        x = x.transpose(4, 3, 2, 1, 0)
    else:
        x = x.reshape(T, B, -1).transpose(2, 1, 0)
    shape = x.shape[:-2]
    data = np.zeros((*shape, B, period), dtype=np.float64)
    data[..., :T] = x
    data = data.reshape(*shape, B * period)
    return data.astype(np.int32) if mode == "fixed" else data


def _unshift(record: np.ndarray, T: int, B: int, period: int, delay: int, spatial: bool):
    """Sink buffer ``(*lava_shape, B P)`` -> spikes ``[T, B, *torch_shape]``."""
    cols = (np.arange(B)[:, None] * period + np.arange(T)[None, :] + delay).ravel()
    x = record[..., cols].reshape(*record.shape[:-1], B, T)
    if spatial:  # (W, H, C, B, T) -> (T, B, C, H, W)
        return x.transpose(4, 3, 2, 1, 0)
    return x.transpose(2, 1, 0)


def run_network(
    net: Network, frames: np.ndarray, mode: str = "float", record_spikes: bool = False
) -> RunResult:
    """Run ``net`` on ``frames [T, B, *input_shape]`` in Lava (CPU simulation).

    Args:
        net: from :func:`~qifsim_lava.exchange.load_exchange`.
        frames: event counts or 0/1 spikes per step.
        mode: ``"float"`` (``floating_pt`` models) or ``"fixed"`` (``fixed_pt``, bit-accurate).
        record_spikes: also return every hidden layer's spikes.
    """
    frames = check_frames(net, frames)
    T, B = frames.shape[:2]
    period = T + net.delay
    total = B * period
    start = time.perf_counter()
    built = build(net, source_data(net, frames, mode), T, B, mode)
    sinks = []
    if record_spikes:
        for hidden in built.hidden:
            sink = Sink(shape=lava_shape(hidden.shape), buffer=total)
            hidden.process.s_out.connect(sink.a_in)
            sinks.append(sink)
    tag = "floating_pt" if mode == "float" else "fixed_pt"
    readout = built.readout
    readout.create_runtime(run_cfg=Loihi2SimCfg(select_tag=tag))
    compiled = time.perf_counter()
    try:
        readout.run(condition=RunSteps(num_steps=total))
        seconds = time.perf_counter() - compiled
        results = np.asarray(readout.results.get())
        spikes = (
            {
                h.index: _unshift(np.asarray(s.data.get()), T, B, period, h.delay, h.spatial)
                for h, s in zip(built.hidden, sinks, strict=True)
            }
            if record_spikes
            else {}
        )
    finally:
        readout.stop()
    if mode == "fixed":
        acc = np.round(results).astype(np.int64)
        scale = net.layers[-1].scale
        logits = acc.astype(np.float64) / (T * scale)
        preds = acc.argmax(1)
        spikes = {k: np.round(v).astype(np.int64) for k, v in spikes.items()}
    else:
        acc = None
        logits = results.astype(np.float64) / T
        preds = logits.argmax(1)
    return RunResult(
        logits=logits,
        predictions=preds.astype(np.int64),
        acc=acc,
        spikes=spikes,
        steps=total,
        seconds=seconds,
        compile_seconds=compiled - start,
    )
