"""Benchmark: the demo net (digits-net, QIF) exported and run in Lava, float and fixed point.

Measured in one run, on the same digits-dvs test samples:

  export        ``qifsim.export.export_lava`` wall time (median of repeats)
  lava_float    Lava ``floating_pt`` models (CPU simulation, ``.venv-lava`` subprocess):
                Lava steps/s (``T + D`` steps per sample, all samples in one compiled
                network) and sample-steps/s (``T`` per sample), compile time
  lava_fixed    the same with the bit-accurate ``fixed_pt`` models
  torch         the peer a user would otherwise run: the PyTorch model itself (float32,
                eval, one sample at a time, as Lava runs them, ``--threads`` torch threads,
                default 1: on a shared machine more threads contend), steps/s
  reference     qifsim's torch integer reference (``run_reference(..., "fixed")``, batched)

Also: agreement of Lava's predictions with the PyTorch model, accuracy, and whether the
fixed-point accumulators equal the torch integer reference bit for bit. Ratios are
``lava_*_over_torch`` of sample-steps/s. The model is a trained checkpoint (``--checkpoint``,
e.g. from ``qifsim train --preset digits-qif``) or, without one, digits-net with tdBN
calibrated on one batch of the test frames (untrained: agreement is still meaningful,
accuracy is not). Lava's simulator runs every process in its own OS process, so its timings
are wall-clock and depend on the free cores. Results go to ``benchmarks/results/lava.json``
(atomic). Run from the repository root: ``python benchmarks/lava.py [--quick]``.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch

_HERE = Path(__file__).resolve().parent
if str(_HERE) not in sys.path:
    sys.path.insert(0, str(_HERE))

import _common  # noqa: E402

DEFAULT_OUT = _HERE / "results" / "lava.json"


def load_model(checkpoint: Path | None, frames: torch.Tensor, seed: int):
    """The trained checkpoint's model, or digits-net (QIF) with tdBN calibrated on ``frames``."""
    if checkpoint is not None:
        from qifsim.train import load_trained

        return load_trained(checkpoint).model, f"checkpoint {checkpoint}"
    from qifsim.models import build_model

    torch.manual_seed(seed)
    model = build_model("digits-net", neuron="qif", in_channels=2, input_size=(34, 34))
    with torch.no_grad():
        model.train()(frames)  # tdBN running statistics from real inputs, so neurons fire
    return model.eval(), "digits-net (untrained, tdBN calibrated on the test frames)"


@torch.no_grad()
def time_torch(model, frames: torch.Tensor) -> tuple[float, np.ndarray]:
    """Seconds for one-sample-at-a-time inference of all samples, and the predictions."""
    model(frames[:, :1])  # warm-up
    preds = []
    start = time.perf_counter()
    for i in range(frames.shape[1]):
        preds.append(int(model(frames[:, i : i + 1]).argmax(1)))
    return time.perf_counter() - start, np.array(preds)


def run(args: argparse.Namespace) -> dict[str, Any]:
    from qifsim.export import export_lava, read_exchange, run_reference
    from qifsim.lava_bridge import digits_test_frames, run_exchange_modes

    samples = 2 if args.quick else args.samples
    repeats = 1 if args.quick else args.repeats
    T = 10
    frames, labels = digits_test_frames(T, samples)
    model, source = load_model(args.checkpoint, frames, args.seed)
    T = int(getattr(model, "default_steps", T) or T)
    if T != frames.shape[0]:
        frames, labels = digits_test_frames(T, samples)
    export_s = []
    with tempfile.TemporaryDirectory(prefix="qifsim-bench-lava-") as tmp:
        path = Path(tmp) / "digits-net.h5"
        for _ in _common.iterate(range(repeats), "export", not args.no_progress):
            start = time.perf_counter()
            export_lava(model, path, max_input=float(frames.max()))
            export_s.append(time.perf_counter() - start)
        exchange = read_exchange(path)
        lava = run_exchange_modes(path, frames, ("float", "fixed"))
        start = time.perf_counter()
        ref = run_reference(exchange, frames, "fixed")
        ref_s = time.perf_counter() - start
    torch_s, torch_pred = time_torch(model, frames)
    y = labels.numpy()
    sample_steps = samples * T
    torch_sps = sample_steps / torch_s
    result: dict[str, Any] = {
        "config": {
            "quick": bool(args.quick),
            "model": source,
            "samples": samples,
            "T": T,
            "delay": sum(layer.kind in ("dense", "conv", "pool") for layer in exchange.layers),
            "export_repeats": repeats,
            **_common.environment(["h5py"]),
        },
        "export": {"seconds": export_s, "median_seconds": statistics.median(export_s)},
        "torch": {
            "seconds": torch_s,
            "sample_steps_per_second": torch_sps,
            "accuracy": float((torch_pred == y).mean()),
        },
        "reference_fixed": {
            "seconds": ref_s,
            "sample_steps_per_second": sample_steps / ref_s,
            "agreement": float((ref.predictions.numpy() == torch_pred).mean()),
        },
    }
    ratios: dict[str, float | None] = {}
    for mode, res in lava.items():
        entry = {
            "lava_steps": res.steps,
            "seconds": res.seconds,
            "compile_seconds": res.compile_seconds,
            "steps_per_second": res.steps_per_second,
            "sample_steps_per_second": sample_steps / res.seconds,
            "accuracy": float((res.predictions == y).mean()),
            "agreement_with_torch": float((res.predictions == torch_pred).mean()),
        }
        if mode == "fixed":
            entry["bit_exact_vs_reference"] = bool(np.array_equal(res.acc, ref.acc.numpy()))
        result[f"lava_{mode}"] = entry
        ratios[f"lava_{mode}_over_torch"] = _common.ratio(
            entry["sample_steps_per_second"], torch_sps
        )
    result["ratios"] = ratios
    return result


def print_table(result: dict[str, Any]) -> None:
    rows = [
        ["export", None, None, _common.fmt(result["export"]["median_seconds"], ".3f"), None],
        [
            "torch",
            None,
            _common.fmt(result["torch"]["sample_steps_per_second"], ".0f"),
            _common.fmt(result["torch"]["seconds"], ".3f"),
            "1.000",
        ],
    ]
    for mode in ("float", "fixed"):
        e = result[f"lava_{mode}"]
        rows.append(
            [
                f"lava_{mode}",
                _common.fmt(e["steps_per_second"], ".0f"),
                _common.fmt(e["sample_steps_per_second"], ".0f"),
                _common.fmt(e["seconds"], ".3f"),
                _common.fmt(e["agreement_with_torch"], ".3f"),
            ]
        )
    print(
        _common.format_table(
            ["case", "lava steps/s", "sample steps/s", "seconds", "agreement"], rows
        )
    )
    print("ratios:", {k: _common.fmt(v, ".4f") for k, v in result["ratios"].items()})
    print(
        "fixed bit-exact vs torch integer reference:",
        result["lava_fixed"]["bit_exact_vs_reference"],
    )


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description="Lava steps/s of the exported digits-net (float and fixed) and export time",
    )
    parser.add_argument("--samples", type=int, default=50, help="test samples (default 50)")
    parser.add_argument("--repeats", type=int, default=3, help="export repeats (default 3)")
    parser.add_argument("--checkpoint", type=Path, default=None, help="trained digits-qif")
    parser.add_argument("--threads", type=int, default=1, help="torch threads (default 1)")
    _common.add_run_args(parser, DEFAULT_OUT)
    return parser.parse_args(argv)


def main(argv=None) -> int:
    args = parse_args(argv)
    from qifsim.lava_bridge import LavaEnvironmentError, find_lava_python

    try:
        find_lava_python()
    except LavaEnvironmentError as err:
        print(f"benchmarks/lava.py: {err}", file=sys.stderr)
        return 2
    torch.set_num_threads(args.threads)
    try:
        import numba

        numba.set_num_threads(min(args.threads, numba.config.NUMBA_NUM_THREADS))
    except ImportError:  # pragma: no cover
        pass
    result = run(args)
    print_table(result)
    _common.write_json_atomic(args.out, result)
    print(f"results written to {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
