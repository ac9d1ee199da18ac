"""The main job, ``qifsim demo``: train QIF and LIF networks on event data, compare them.

Steps (each printed as it runs, every number measured by this run):

1. the embedded digits-dvs recordings (scikit-learn's handwritten digits
   emulated into N-MNIST-like 34x34 DVS recordings; generated and cached on
   first use), with a PNG of one recording's frames;
2. train the small ``digits-net`` three times with the presets ``digits-lif``,
   ``digits-qif`` and ``digits-qif-quadratic`` (QIF with one quadratic dendritic
   synapse; same seed, same data, STBP with tdBN): test accuracy, per-layer
   spike rates and training time; training curves as a PNG;
3. energy (QIF paper Eq. 17, profile ``cmos45nm-fp32``, quadratic operations
   counted): the LIF vs QIF table in the paper's Table 1 layout, the quadratic
   net beside it, firing rates per layer and membrane distributions as PNGs;
   then a norse and an snntorch model measured the same way and cross-checked
   with NeuroBench;
4. time the fused QIF op against the step-by-step reference, and check every
   kernel of it (numba, torch ops, Triton; Triton in its CPU interpreter when
   there is no GPU) against the reference: spikes, potentials, gradients;
5. export the trained QIF net to a Lava exchange file and run it in Lava
   (``.venv-lava``) in floating and fixed point on test recordings: accuracy,
   agreement with PyTorch, steps/s (skipped with a message when the Lava
   environment is missing);
6. write everything to ``OUT/demo.json`` (runs and checkpoints in ``OUT/lif``,
   ``OUT/qif``, ``OUT/qif-quadratic``; energy files in ``OUT/energy``; the
   exchange file ``OUT/qif.h5``).
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

#: Demo runs: label -> training preset.
RUNS = {"lif": "digits-lif", "qif": "digits-qif", "qif-quadratic": "digits-qif-quadratic"}


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


def _train(label: str, out_dir: Path, overrides: dict, progress: bool) -> dict:
    from .train import fit, read_jsonl
    from .train.presets import load_preset

    config = load_preset(RUNS[label], overrides)
    start = time.perf_counter()
    final = fit(config, out_dir / label, progress=progress, overwrite=True)
    seconds = time.perf_counter() - start
    history = read_jsonl(out_dir / label / "metrics.jsonl")
    last = history[-1]
    return {
        "preset": RUNS[label],
        "config": config.to_dict(),
        "final": final,
        "history": history,
        "test_acc": last["test_acc"],
        "spike_rates": last["spike_rates"],
        "mean_spike_rate": last["mean_spike_rate"],
        "train_seconds": seconds,
    }


def _print_comparison(runs: dict[str, dict]) -> None:
    """Accuracy, spike rates and training time of every run; ratios QIF/LIF."""
    labels = list(runs)
    print(f"\n{'':30}" + "".join(f"{label.upper():>15}" for label in labels) + f"{'QIF/LIF':>9}")

    def row(name: str, values: list[float], spec: str, ratio: bool = True) -> None:
        cells = "".join(f"{v:>15{spec}}" for v in values)
        r = values[1] / values[0] if ratio and values[0] else float("nan")
        print(f"{name:30}{cells}{r:>9.3f}" if ratio else f"{name:30}{cells}")

    row("test accuracy", [runs[k]["test_acc"] for k in labels], ".4f", ratio=False)
    for name in runs["qif"]["spike_rates"]:
        row("rate " + name, [runs[k]["spike_rates"].get(name, float("nan")) for k in labels], ".4f")
    row("mean spike rate", [runs[k]["mean_spike_rate"] for k in labels], ".4f")
    row("training time (s)", [runs[k]["train_seconds"] for k in labels], ".1f")


def _energy_section(out_dir: Path, progress: bool) -> dict:
    """LIF vs QIF energy (Table 1 layout) + the quadratic net; PNGs in ``out_dir/energy``."""
    from .energy import compare_models, measure_energy
    from .train import load_trained

    trained = {label: load_trained(out_dir / label / "last.pt") for label in RUNS}
    lif, qif = trained["lif"], trained["qif"]
    loader = lif.loader()
    T = lif.config.T
    result = compare_models(
        lif.model, qif.model, loader, out_dir / "energy", T=T, label="digits-net on digits-dvs"
    )
    quad = measure_energy(trained["qif-quadratic"].model, loader, T=T, progress=False)
    quad_paths = quad.write(out_dir / "energy", stem="energy-qif-quadratic")
    print("\nenergy per inference (QIF paper Eq. 17, 45 nm: E_MAC 4.6 pJ, E_AC 0.9 pJ):")
    print(result["text"], end="")
    lif_report, qif_report = result["reports"]
    uj = {k: r.energy_J * 1e6 for k, r in (("lif", lif_report), ("qif", qif_report), ("q", quad))}
    print(
        f"QIF + quadratic synapse: {uj['q']:.3f} uJ (LIF {uj['lif']:.3f}, QIF {uj['qif']:.3f}), "
        f"mean spike rate {quad.spike_rate:.4f}; its quadratic operations are counted in the "
        "conv2 row of energy-qif-quadratic.md"
    )
    files = {k: str(v) for k, v in result["files"].items()}
    files.update({f"quadratic_{k}": str(v) for k, v in quad_paths.items()})
    print("energy tables and plots: " + ", ".join(sorted(files.values())))
    return {
        "comparison": result["comparison"].to_dict(),
        "energy_J": {
            "lif": lif_report.energy_J,
            "qif": qif_report.energy_J,
            "qif-quadratic": quad.energy_J,
        },
        "files": files,
    }


def _lava_section(out_dir: Path, samples: int) -> dict:
    """Export the trained QIF net and run it in Lava (float and fixed point)."""
    from .export import export_lava
    from .lava_bridge import LavaEnvironmentError, LavaRunError, lava_run_report
    from .train import load_trained

    checkpoint = out_dir / "qif" / "last.pt"
    trained = load_trained(checkpoint)
    frames, _ = trained.frames()
    report = export_lava(
        trained.model,
        out_dir / "qif.h5",
        time_steps=trained.config.T,
        max_input=float(frames.max()),
    )
    print(f"\nexported the QIF net to {report.path} in {report.seconds:.2f} s")
    print(report.table())
    try:
        run = lava_run_report(report.path, samples=samples, checkpoint=checkpoint)
    except (LavaEnvironmentError, LavaRunError, OSError) as err:
        print(f"Lava run skipped: {err}")
        return {"exchange": str(report.path), "error": str(err)}
    print(f"Lava on {run['samples']} test recordings (PyTorch accuracy {run['acc_torch']:.4f}):")
    for mode, entry in run["modes"].items():
        exact = entry.get("fixed_matches_reference")
        note = "" if exact is None else f", bit-exact vs torch integer reference: {exact}"
        print(
            f"  {mode:5}: accuracy {entry['accuracy']:.4f}, agreement with PyTorch "
            f"{entry['agreement']:.4f}, {entry['steps_per_second']:.0f} Lava steps/s{note}"
        )
    return {"exchange": str(report.path), **run}


def _kernels_section() -> dict:
    """Every kernel of the fused op (numba, torch ops, Triton) against the reference, now."""
    from .neurons.parity import backend_parity

    parity = backend_parity()
    where = "Triton in its CPU interpreter" if parity["triton_interpreted"] else "Triton compiled"
    print(
        f"\nfused-op kernels vs the reference, forward+backward on {tuple(parity['shape'])} "
        f"(backend 'auto' runs {parity['auto']} here; {where}):"
    )
    for neuron, checked in parity["neurons"].items():
        for backend, row in checked["backends"].items():
            same = "identical" if row["spikes_equal"] else "DIFFERENT"
            print(
                f"  {neuron.upper()} {backend:6}: spikes {same} (rate "
                f"{checked['reference_firing_rate']:.3f}), max |v - ref| {row['max_abs_v']:.1e}, "
                f"max |grad - ref| {row['max_abs_grad']:.1e}"
            )
    return parity


def run_demo(
    out_dir: str | Path = "qifsim-demo",
    epochs: int | None = None,
    n_samples: int | None = None,
    seed: int = 0,
    progress: bool = True,
    lava_samples: int = 355,
) -> dict:
    """Run the demo; print its tables and return (and save) the measured results.

    ``epochs`` and ``n_samples`` (training recordings) override the presets,
    for quick checks; ``None`` keeps the presets' values. ``lava_samples``: test
    recordings run in Lava (default: all 355; 0: skip the Lava step).
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
    for label, preset in RUNS.items():
        print(f"\ntraining digits-net: {label.upper()} (preset {preset})")
        runs[label] = _train(label, out_dir, overrides, progress)
        print(
            f"  {label.upper()}: test accuracy {runs[label]['test_acc']:.4f}, "
            f"mean spike rate {runs[label]['mean_spike_rate']:.4f}, "
            f"{runs[label]['train_seconds']:.1f} s"
        )
    _print_comparison(runs)
    curves = plot_curves({n: runs[n]["history"] for n in RUNS}, out_dir / "training-curves.png")
    energy = _energy_section(out_dir, progress)
    from .energy.demo import peer_energy_section

    print("\nenergy of models built with norse and snntorch (and the NeuroBench cross-check):")
    peer_energy = peer_energy_section(progress=progress)
    energy["peer_models"] = {k: v for k, v in peer_energy.items() if k != "reports"}

    probe = torch.randn(10, 16, 8, 17, 17, generator=torch.Generator().manual_seed(seed))
    probe = probe * 0.5 + 0.1
    fused = _time_forward_backward(QIF(), probe)
    reference = _time_forward_backward(QIF(impl="reference"), probe)
    print(
        f"\nfused QIF op vs step-by-step reference (forward+backward, {tuple(probe.shape)}): "
        f"{reference / fused:.1f}x faster"
    )

    kernels = _kernels_section()

    from .events.io.selfcheck import hardening_section

    print()
    hardening = hardening_section(out_dir / "hardening")

    lava = _lava_section(out_dir, lava_samples) if lava_samples > 0 else None

    summary = {
        "analytic_window": {"mu": mu, "sigma": sigma},
        "runs": runs,
        "energy": energy,
        "lava": lava,
        "fused_over_reference_time": fused / reference,
        "kernels": kernels,
        "hardening": hardening,
        "curves_png": str(curves),
        "sample_png": str(sample_png),
    }
    write_json_atomic(out_dir / "demo.json", summary)
    print(f"training curves: {curves}; results: {out_dir / 'demo.json'}")
    return summary
