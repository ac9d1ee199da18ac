"""The main job, ``qifsim demo``: QIF vs LIF on an event stream, measured end to end.

Steps (each printed as it runs):

1. load the embedded digits-dvs recordings (scikit-learn's handwritten digits
   emulated into N-MNIST-like 34x34 DVS recordings; generated and cached on
   first use) and frame them into ``[T, 2, H, W]`` count frames;
2. build the same small conv SNN twice (same weights), once with QIF and once
   with LIF neurons (paper parameters), tdBN before every spiking layer;
3. calibrate tdBN's running statistics on the stream, then simulate both in
   eval mode, counting spikes per layer with :class:`~qifsim.energy.SpikeMonitor`;
4. time the fused QIF op against the step-by-step reference on the same input;
5. print the per-layer table and write everything to ``OUT/demo.json``.
"""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np
import torch
from torch import nn

from .atomic import write_json_atomic
from .energy import SpikeMonitor
from .events import frames_batch
from .events.digits_dvs import SENSOR_SIZE, load_digits_dvs
from .events.plot import plot_frames
from .layers import MergeTime, TDBatchNorm2d
from .neurons import LIF, QIF, LIFParameters, QIFParameters, analytic_window


class DemoNet(nn.Module):
    """conv5x5/2 -> tdBN -> neuron -> conv3x3/2 -> tdBN -> neuron -> mean readout.

    Input ``[T, B, 2, 34, 34]``; output ``[B, n_classes]`` (the non-firing
    readout averaged over T).
    """

    def __init__(self, neuron: str, n_classes: int = 10, impl: str = "fused") -> None:
        super().__init__()
        u_th = 0.5

        def make_neuron():
            if neuron == "qif":
                return QIF(QIFParameters(), impl=impl)
            return LIF(LIFParameters(), impl=impl)

        self.conv1 = MergeTime(nn.Conv2d(2, 8, 5, stride=2, padding=2, bias=False))
        self.bn1 = TDBatchNorm2d(8, u_th=u_th, momentum=None)
        self.spike1 = make_neuron()
        self.conv2 = MergeTime(nn.Conv2d(8, 16, 3, stride=2, padding=1, bias=False))
        self.bn2 = TDBatchNorm2d(16, u_th=u_th, momentum=None)
        self.spike2 = make_neuron()
        self.readout = nn.Linear(16 * 9 * 9, n_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        s1, _ = self.spike1(self.bn1(self.conv1(x)))
        s2, _ = self.spike2(self.bn2(self.conv2(s1)))
        return self.readout(s2.flatten(2)).mean(0)


def _simulate(model: DemoNet, frames: torch.Tensor, batch: int) -> dict:
    """Calibrate tdBN on ``frames`` ``[T, N, 2, H, W]``, then count spikes in eval mode."""
    with torch.no_grad():
        model.train()
        for i in range(0, frames.shape[1], batch):
            model(frames[:, i : i + batch])
        model.eval()
        with SpikeMonitor(model) as monitor:
            for i in range(0, frames.shape[1], batch):
                model(frames[:, i : i + batch])
    return {
        name: {"neurons": r.neurons, "spikes": r.spikes, "rate": r.rate}
        for name, r in monitor.records.items()
    }


def _time_forward_backward(module: nn.Module, x: torch.Tensor, repeats: int = 3) -> float:
    """Median seconds of forward + backward of ``module`` on ``x`` (after one warm-up)."""
    times = []
    for k in range(repeats + 1):
        xi = x.clone().requires_grad_(True)
        start = time.perf_counter()
        spikes, _ = module(xi)
        spikes.sum().backward()
        if k:
            times.append(time.perf_counter() - start)
    return float(np.median(times))


def run_demo(
    out_dir: str | Path = "qifsim-demo",
    n_samples: int = 128,
    n_frames: int = 10,
    seed: int = 0,
    batch: int = 16,
) -> dict:
    """Run the demo; print its tables and return (and save) the measured results."""
    out_dir = Path(out_dir)
    torch.manual_seed(seed)
    print(
        f"qifsim demo: {n_samples} digits-dvs test recordings (34x34, N-MNIST-like, emulated "
        f"from scikit-learn's handwritten digits), T={n_frames} frames"
    )
    recordings, labels = load_digits_dvs("test", seed=seed, n_samples=n_samples)
    frames = frames_batch(recordings, SENSOR_SIZE, n_frames, split_by="count")
    n_events = int(sum(len(ev) for ev in recordings))
    x = torch.from_numpy(frames).transpose(0, 1).contiguous()  # [T, N, 2, H, W]
    sample_png = plot_frames(
        frames[0],
        out_dir / "digits-dvs-sample.png",
        title=f"digits-dvs test sample 0 (label {int(labels[0])}): ON - OFF per frame",
    )
    print(
        f"  events: {n_events} in total, {n_events / len(recordings):.0f} per recording; "
        f"frames {tuple(x.shape)} (time first)"
    )

    results = {}
    for neuron in ("lif", "qif"):
        torch.manual_seed(seed)  # identical weights for both neuron types
        model = DemoNet(neuron)
        with torch.no_grad():  # warm-up (eval: no statistics updated): loads the kernels
            model.eval()(x[:, :2])
        start = time.perf_counter()
        results[neuron] = _simulate(model, x, batch)
        results[neuron + "_seconds"] = time.perf_counter() - start

    mu, sigma = analytic_window(QIFParameters())
    print(
        f"\nQIF (a=0.25, u_rest=0, u_c=0.5, u_th=0.5), analytic surrogate window "
        f"[{mu - sigma:.3f}, {mu + sigma:.3f}] (mu={mu:.4f}, sigma={sigma:.4f})"
    )
    print("LIF (beta=0.25, u_th=0.5), rect surrogate alpha=1")
    print("untrained networks, identical random weights; tdBN calibrated on the stream\n")
    header = (
        f"{'layer':8} {'neurons':>8} {'LIF spikes':>11} {'LIF rate':>9} "
        f"{'QIF spikes':>11} {'QIF rate':>9} {'QIF/LIF':>8}"
    )
    print(header)
    print("-" * len(header))
    for name in results["qif"]:
        lif, qif = results["lif"][name], results["qif"][name]
        ratio = qif["spikes"] / lif["spikes"] if lif["spikes"] else float("nan")
        print(
            f"{name:8} {qif['neurons']:>8} {lif['spikes']:>11} {lif['rate']:>9.4f} "
            f"{qif['spikes']:>11} {qif['rate']:>9.4f} {ratio:>8.3f}"
        )
    total = {n: sum(r["spikes"] for r in results[n].values()) for n in ("lif", "qif")}
    print(
        f"{'total':8} {'':>8} {total['lif']:>11} {'':>9} {total['qif']:>11} {'':>9} "
        f"{total['qif'] / max(total['lif'], 1):>8.3f}"
    )
    print(
        f"\nsimulation time (calibration + monitored pass): LIF {results['lif_seconds']:.2f} s, "
        f"QIF {results['qif_seconds']:.2f} s"
    )

    probe = torch.randn(n_frames, 16, 8, 17, 17, generator=torch.Generator().manual_seed(seed))
    probe = probe * 0.5 + 0.1
    fused = _time_forward_backward(QIF(), probe)
    reference = _time_forward_backward(QIF(impl="reference"), probe)
    print(
        f"fused QIF op vs step-by-step reference (forward+backward, {tuple(probe.shape)}): "
        f"{reference / fused:.1f}x faster"
    )

    summary = {
        "n_samples": n_samples,
        "n_frames": n_frames,
        "n_events": n_events,
        "labels": labels.tolist(),
        "analytic_window": {"mu": mu, "sigma": sigma},
        "layers": {"lif": results["lif"], "qif": results["qif"]},
        "total_spikes": total,
        "simulation_seconds": {"lif": results["lif_seconds"], "qif": results["qif_seconds"]},
        "fused_over_reference_time": fused / reference,
    }
    write_json_atomic(out_dir / "demo.json", summary)
    print(f"\nresults written to {out_dir / 'demo.json'}; frames of one recording: {sample_png}")
    return summary
