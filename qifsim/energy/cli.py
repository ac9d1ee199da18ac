"""``qifsim energy`` and ``qifsim compare``: energy reports from training checkpoints.

``qifsim energy CHECKPOINT [--profile NAME] [--data DATASET] [--samples N] [--out DIR]``
prints the per-layer table and writes ``energy.{json,csv,md}`` to ``--out``;
``qifsim energy --list-profiles`` lists the hardware profiles.
``qifsim compare LIF_CKPT QIF_CKPT --out DIR`` writes the Table 1 comparison
(``compare.{json,csv,md}``) and the plots (``firing_rates.png``, ``membrane_*.png``).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path


def _load(args: argparse.Namespace, path: str):
    """The checkpoint's model and test split, as the command-line options ask."""
    from ..train.evaluation import load_trained

    return load_trained(
        path, dataset=args.data, data_root=args.data_root, samples=args.samples, device=args.device
    )


def _cmd_energy(args: argparse.Namespace) -> int:
    from .profiles import describe_profiles
    from .report import measure_energy

    if args.list_profiles:
        rows = describe_profiles()
        if args.json:
            print(json.dumps(rows, indent=2))
            return 0
        for r in rows:
            nu = r["neuron_update_J"]
            print(
                f"{r['name']:22} MAC {r['mac_J'] * 1e12:6.2f} pJ  AC {r['ac_J'] * 1e12:6.2f} pJ  "
                f"neuron update QIF {nu['qif'] * 1e12:5.1f} pJ / LIF {nu['lif'] * 1e12:5.1f} pJ"
                f"{'  +memory' if r['memory'] else ''}"
            )
            print(f"{'':22} {r['description']}")
        return 0
    if not args.checkpoint:
        raise ValueError("give a CHECKPOINT (or --list-profiles)")
    loaded = _load(args, args.checkpoint)
    report = measure_energy(
        loaded.model,
        loaded.loader(args.batch_size),
        args.profile,
        T=loaded.config.T,
        static=loaded.info.static,
        encoding_macs=args.encoding_macs,
        progress=not args.no_progress,
    )
    if args.json:
        print(report.to_json())
    else:
        print(report.to_markdown(), end="")
    if args.out:
        paths = report.write(args.out)
        print("written: " + ", ".join(str(p) for p in paths.values()), file=sys.stderr)
    return 0


def _cmd_compare(args: argparse.Namespace) -> int:
    from .demo import compare_models

    lif, qif = (_load(args, path) for path in (args.lif_checkpoint, args.qif_checkpoint))
    for which, item, want in (("LIF_CKPT", lif, "lif"), ("QIF_CKPT", qif, "qif")):
        neuron = getattr(item.config, "neuron", None)
        if neuron != want:
            raise ValueError(f"{which} {item.path!r} holds a {neuron!r} model, expected {want!r}")
    T = lif.config.T
    if T != qif.config.T or lif.config.dataset != qif.config.dataset:
        raise ValueError(
            "the two checkpoints were trained on different data or T "
            f"({lif.config.dataset}, T={T} vs {qif.config.dataset}, T={qif.config.T})"
        )
    result = compare_models(
        lif.model,
        qif.model,
        lif.loader(args.batch_size),
        args.out,
        T=T,
        static=lif.info.static,
        profile=args.profile,
        layer=args.layer,
        encoding_macs=args.encoding_macs,
        label=f"{lif.config.model} on {lif.config.dataset}",
        progress=not args.no_progress,
    )
    print(result["text"], end="")
    print("written: " + ", ".join(str(p) for p in result["files"].values()), file=sys.stderr)
    return 0


def _common(p: argparse.ArgumentParser) -> None:
    p.add_argument("--profile", default="cmos45nm-fp32", help="profile name or .json path "
                   "(default: %(default)s; see `qifsim energy --list-profiles`)")  # fmt: skip
    p.add_argument(
        "--data", default=None, help="evaluate on this dataset (default: the trained one)"
    )
    p.add_argument("--data-root", default=None, help="dataset folder (default: as trained)")
    p.add_argument("--samples", type=int, default=None, help="first N test samples (default: all)")
    p.add_argument("--batch-size", type=int, default=None, help="(default: the config's)")
    p.add_argument("--device", default=None, help="torch device (default: cuda if available)")
    p.add_argument(
        "--encoding-macs",
        choices=("per_step", "once"),
        default="per_step",
        help="count the encoding layer's MACs at every step (Eq. 17) or once per sample "
        "(direct encoding of static images)",
    )
    p.add_argument("--no-progress", action="store_true", help="no progress bar")


def register_cli(sub) -> None:
    """Add ``energy`` and ``compare`` to the ``qifsim`` subcommands ``sub``."""
    energy = sub.add_parser(
        "energy",
        help="per-layer spike rates, operation counts and energy of a checkpoint",
        description="Rebuild a `qifsim train` checkpoint's model, run it on its test set and "
        "count per layer: firing rates, MACs, ACs (firing rate x dense ops, the QIF paper's "
        "Eq. 17), exact event-driven ACs and energy in joules under a hardware profile.",
    )
    energy.add_argument("checkpoint", nargs="?", help="checkpoint file (last.pt / best.pt)")
    energy.add_argument("--list-profiles", action="store_true", help="list hardware profiles")
    _common(energy)
    energy.add_argument("--out", type=Path, default=None, help="write energy.json/.csv/.md here")
    energy.add_argument("--json", action="store_true", help="print JSON")
    energy.set_defaults(func=_cmd_energy)

    cmp_ = sub.add_parser(
        "compare",
        help="LIF vs QIF energy table (QIF paper Table 1) and plots from two checkpoints",
        description="Measure a LIF and a QIF checkpoint of the same architecture on the same "
        "test data; write compare.json/.csv/.md (LIF mJ, QIF mJ, improvement, spike-rate "
        "reduction, per-layer rates), firing_rates.png and membrane_{lif,qif}.png.",
    )
    cmp_.add_argument("lif_checkpoint", help="checkpoint of the LIF model")
    cmp_.add_argument("qif_checkpoint", help="checkpoint of the QIF model")
    cmp_.add_argument("--out", type=Path, required=True, help="output folder")
    cmp_.add_argument("--layer", default=None, help="neuron layer of the membrane plots")
    _common(cmp_)
    cmp_.set_defaults(func=_cmd_compare)
