"""``qifsim export CHECKPOINT OUT.h5 [--nir OUT.nir]``: a trained checkpoint to an exchange file.

The model and its test frames come from :func:`qifsim.train.load_trained`;
:func:`agreement` compares float-PyTorch with the torch reference (float and fixed
point) predictions on those frames, callable from Python.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import torch
from torch import nn

__all__ = ["agreement", "register_cli"]


@torch.no_grad()
def agreement(
    model: nn.Module,
    exchange,
    frames: torch.Tensor,
    labels: torch.Tensor | None = None,
    batch_size: int = 64,
) -> dict:
    """Predictions of the float PyTorch model vs the torch reference of ``exchange``.

    Args:
        model: the eval-mode model (run in float32, as trained).
        exchange: its :class:`~qifsim.export.ExchangeFile`.
        frames: ``[T, N, *input_shape]``.
        labels: ``[N]`` (optional: accuracies).

    Returns:
        ``{"n", "agree_float", "agree_fixed", "peak_over_limit", "acc_torch", "acc_float",
        "acc_fixed"}`` (fractions; accuracies only with labels; ``peak_over_limit``: per
        layer index, the largest fixed-point ``|V|`` (readout: ``|acc|``) seen, over ``2^23 - 1``).
    """
    from .reference import STATE_MAX, run_reference

    preds: dict[str, list[torch.Tensor]] = {"torch": [], "float": [], "fixed": []}
    peak: dict[int, int] = {}
    for start in range(0, frames.shape[1], batch_size):
        x = frames[:, start : start + batch_size]
        preds["torch"].append(model(x.float()).argmax(1))
        preds["float"].append(run_reference(exchange, x, "float").predictions)
        fixed = run_reference(exchange, x, "fixed")
        preds["fixed"].append(fixed.predictions)
        for i, v in fixed.peak.items():
            peak[i] = max(peak.get(i, 0), v)
    p = {k: torch.cat(v) for k, v in preds.items()}
    out = {
        "n": int(frames.shape[1]),
        "agree_float": float((p["float"] == p["torch"]).double().mean()),
        "agree_fixed": float((p["fixed"] == p["torch"]).double().mean()),
        "peak_over_limit": {str(i): v / STATE_MAX for i, v in sorted(peak.items())},
    }
    if labels is not None:
        for k in ("torch", "float", "fixed"):
            out[f"acc_{k}"] = float((p[k] == labels).double().mean())
    return out


def _cmd_export(args: argparse.Namespace) -> int:
    from ..train.evaluation import load_trained
    from . import export_lava, read_exchange

    trained = load_trained(args.checkpoint)
    model, config = trained.model, trained.config
    graph = None
    if args.nir:  # before writing anything: a QIF net without --approximate fails here
        from .nir import to_nir

        graph = to_nir(model, approximate=args.approximate, fold_r=args.fold_r)
    frames = labels = None
    max_input = args.max_input
    if max_input is None or args.check:
        frames, labels = trained.frames(args.check or None)
        if max_input is None:
            max_input = float(frames.max())
    report = export_lava(
        model, args.out, time_steps=config.T, input_scale=args.input_scale, max_input=max_input
    )
    result = {
        "exchange": str(report.path),
        "checksum": report.checksum,
        "export_seconds": report.seconds,
        "max_input": max_input,
        "layers": report.layers,
    }
    if args.check:
        result["check"] = agreement(model, read_exchange(args.out), frames, labels)
    if graph is not None:
        from .nir import write_nir

        write_nir(args.nir, graph)
        result["nir"] = str(args.nir)
    if args.json:
        print(json.dumps(result, indent=2))
        return 0
    print(f"wrote {report.path} ({config.model}, T={config.T}, checksum {report.checksum[:12]}...)")
    print(report.table())
    if "check" in result:
        c = result["check"]
        print(
            f"torch reference on {c['n']} test samples: agreement with the PyTorch model "
            f"float {c['agree_float']:.4f}, fixed point {c['agree_fixed']:.4f}; accuracy "
            f"PyTorch {c['acc_torch']:.4f}, float {c['acc_float']:.4f}, "
            f"fixed {c['acc_fixed']:.4f}"
        )
        peaks = ", ".join(f"{i}: {v:.3f}" for i, v in c["peak_over_limit"].items())
        print(f"largest fixed-point |V| per layer / (2^23 - 1): {peaks}")
    if args.nir:
        print(f"wrote {args.nir} (NIR)")
    return 0


def _run(args: argparse.Namespace) -> int:
    from ..train.checkpoint import CheckpointError
    from .graph import ExportError

    try:
        return _cmd_export(args)
    except (ExportError, CheckpointError, FileNotFoundError) as err:
        print(f"qifsim export: error: {err}", file=sys.stderr)
        return 2


def register_cli(sub) -> None:
    """Add ``qifsim export`` to the subcommands ``sub`` of the main parser."""
    helptext = "export a training checkpoint as a Lava exchange file (and NIR)"
    p = sub.add_parser(
        "export",
        help=helptext,
        description=(
            "Write a trained checkpoint as a Lava exchange file (hardware/lava/EXCHANGE.md): "
            "tdBN folded, float weights plus Loihi fixed-point mantissas; prints the per-layer "
            "quantisation error. --check N compares the torch reference (float and fixed "
            "point) with the PyTorch model on N test samples."
        ),
    )
    p.add_argument("checkpoint", type=Path, help="training checkpoint (last.pt / best.pt)")
    p.add_argument("out", type=Path, help="exchange file to write (.h5)")
    p.add_argument("--nir", type=Path, default=None, help="also write a NIR graph here (LIF nets)")
    p.add_argument(
        "--approximate",
        action="store_true",
        help="NIR of a QIF net: IF nodes with the QIF parameters in metadata (not exact)",
    )
    p.add_argument(
        "--fold-r",
        action="store_true",
        help="NIR: r = 1 with tau/dt folded into the weights (for norse's importer)",
    )
    p.add_argument(
        "--input-scale",
        type=float,
        default=1.0,
        help="fixed-point inputs are round(frames * S) (1 for event counts)",
    )
    p.add_argument(
        "--max-input",
        type=float,
        default=None,
        help="largest input value for the 24-bit check (default: the test set's maximum)",
    )
    p.add_argument("--check", type=int, default=0, metavar="N", help="check on N test samples")
    p.add_argument("--json", action="store_true", help="print a JSON report")
    p.set_defaults(func=_run)
