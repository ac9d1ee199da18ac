"""The main job, ``qifsim demo``: train QIF and LIF networks on event data, compare them.

Steps (each printed as it runs, every number measured by this run):

1. the embedded digits-dvs recordings (scikit-learn's handwritten digits
   emulated into N-MNIST-like 34x34 DVS recordings; generated and cached on
   first use), with a PNG of one recording's frames;
2. train the small ``digits-net`` twice with the ``digits-qif`` and
   ``digits-lif`` presets (same seed, same data, STBP with tdBN): test
   accuracy, per-layer spike rates and training time for both; training
   curves as a PNG;
3. time the fused QIF op against the step-by-step reference;
4. write everything to ``OUT/demo.json`` (runs and checkpoints in ``OUT/lif``,
   ``OUT/qif``).
"""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np
import torch

from .atomic import atomic_path, write_json_atomic
from .events.digits_dvs import SENSOR_SIZE, load_digits_dvs
from .events.frames import to_frames
from .events.plot import plot_frames
from .neurons import QIF, QIFParameters, analytic_window

NEURONS = ("lif", "qif")


def _time_forward_backward(module: torch.nn.Module, x: torch.Tensor, repeats: int = 3) -> float:
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


def plot_curves(histories: dict[str, list[dict]], path: str | Path) -> Path:
    """Training curves (train loss, test accuracy, mean spike rate per epoch) as one PNG."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 3, figsize=(11, 3.2))
    for label, rows in histories.items():
        epochs = [r["epoch"] for r in rows]
        for ax, key in zip(axes, ("train_loss", "test_acc", "mean_spike_rate"), strict=True):
            ax.plot(epochs, [r.get(key) for r in rows], marker="o", label=label.upper())
    for ax, title in zip(
        axes, ("train loss", "test accuracy", "mean spike rate (test)"), strict=True
    ):
        ax.set_title(title, fontsize=10)
        ax.set_xlabel("epoch")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    fig.tight_layout()
    with atomic_path(path) as tmp:
        fig.savefig(tmp, dpi=110, format="png")
    plt.close(fig)
    return Path(path)


def _train(neuron: str, out_dir: Path, overrides: dict, progress: bool) -> dict:
    from .train import fit, read_jsonl
    from .train.presets import load_preset

    config = load_preset(f"digits-{neuron}", overrides)
    start = time.perf_counter()
    final = fit(config, out_dir / neuron, progress=progress, overwrite=True)
    seconds = time.perf_counter() - start
    history = read_jsonl(out_dir / neuron / "metrics.jsonl")
    last = history[-1]
    return {
        "config": config.to_dict(),
        "final": final,
        "history": history,
        "test_acc": last["test_acc"],
        "spike_rates": last["spike_rates"],
        "mean_spike_rate": last["mean_spike_rate"],
        "train_seconds": seconds,
    }


def _print_comparison(runs: dict[str, dict]) -> None:
    lif, qif = runs["lif"], runs["qif"]
    print(f"\n{'':30} {'LIF':>10} {'QIF':>10} {'QIF/LIF':>8}")
    print(f"{'test accuracy':30} {lif['test_acc']:>10.4f} {qif['test_acc']:>10.4f}")
    for name in qif["spike_rates"]:
        a, b = lif["spike_rates"].get(name, float("nan")), qif["spike_rates"][name]
        print(f"{'rate ' + name:30} {a:>10.4f} {b:>10.4f} {b / a if a else float('nan'):>8.3f}")
    a, b = lif["mean_spike_rate"], qif["mean_spike_rate"]
    print(f"{'mean spike rate':30} {a:>10.4f} {b:>10.4f} {b / a if a else float('nan'):>8.3f}")
    a, b = lif["train_seconds"], qif["train_seconds"]
    print(f"{'training time (s)':30} {a:>10.1f} {b:>10.1f} {b / a:>8.3f}")


def run_demo(
    out_dir: str | Path = "qifsim-demo",
    epochs: int | None = None,
    n_samples: int | None = None,
    seed: int = 0,
    progress: bool = True,
) -> dict:
    """Run the demo; print its tables and return (and save) the measured results.

    ``epochs`` and ``n_samples`` (training recordings) override the presets,
    for quick checks; ``None`` keeps the presets' values.
    """
    out_dir = Path(out_dir)
    overrides: dict = {"seed": seed}
    if epochs is not None:
        overrides["epochs"] = epochs
    if n_samples is not None:
        overrides["n_samples"] = n_samples

    recordings, labels = load_digits_dvs("test", seed=seed, n_samples=1, progress=progress)
    sample_png = plot_frames(
        to_frames(recordings[0], SENSOR_SIZE, 10, split_by="count"),
        out_dir / "digits-dvs-sample.png",
        title=f"digits-dvs test recording 0 (digit {int(labels[0])}): ON - OFF per frame",
    )
    print(
        "qifsim demo: digits-dvs, scikit-learn's handwritten digits emulated into N-MNIST-like "
        f"34x34 DVS recordings (1,442 train / 355 test); one recording: {sample_png}"
    )
    mu, sigma = analytic_window(QIFParameters())
    print(
        f"QIF a=0.25 u_rest=0 u_c=0.5 u_th=0.5, analytic surrogate window "
        f"[{mu - sigma:.3f}, {mu + sigma:.3f}]; LIF beta=0.25 u_th=0.5, rect surrogate alpha=1"
    )

    runs = {}
    for neuron in NEURONS:
        print(f"\ntraining digits-net with {neuron.upper()} neurons (preset digits-{neuron})")
        runs[neuron] = _train(neuron, out_dir, overrides, progress)
        print(
            f"  {neuron.upper()}: test accuracy {runs[neuron]['test_acc']:.4f}, "
            f"mean spike rate {runs[neuron]['mean_spike_rate']:.4f}, "
            f"{runs[neuron]['train_seconds']:.1f} s"
        )
    _print_comparison(runs)
    curves = plot_curves({n: runs[n]["history"] for n in NEURONS}, out_dir / "training-curves.png")

    probe = torch.randn(10, 16, 8, 17, 17, generator=torch.Generator().manual_seed(seed))
    probe = probe * 0.5 + 0.1
    fused = _time_forward_backward(QIF(), probe)
    reference = _time_forward_backward(QIF(impl="reference"), probe)
    print(
        f"\nfused QIF op vs step-by-step reference (forward+backward, {tuple(probe.shape)}): "
        f"{reference / fused:.1f}x faster"
    )

    summary = {
        "analytic_window": {"mu": mu, "sigma": sigma},
        "runs": runs,
        "fused_over_reference_time": fused / reference,
        "curves_png": str(curves),
        "sample_png": str(sample_png),
    }
    write_json_atomic(out_dir / "demo.json", summary)
    print(f"training curves: {curves}; results: {out_dir / 'demo.json'}")
    return summary
