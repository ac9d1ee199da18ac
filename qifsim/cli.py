"""``qifsim``: the command line.

Subcommands:
  demo      the main job: QIF vs LIF spiking networks on an event stream
  window    Theorem-1 surrogate window vs Monte Carlo vs the full QIF dynamics
  events    look at a recording: `qifsim events info FILE`, `qifsim events frames FILE --plot P`
  lava      the Lava side (runs in .venv-lava): `qifsim lava doctor`, `qifsim lava run OUT.h5`
  export    a checkpoint to a Lava exchange file (and NIR): `qifsim export CKPT OUT.h5`
  energy    per-layer spike rates, ops and energy: `qifsim energy CKPT` or `MODULE:FUNCTION`
  compare   LIF vs QIF energy table and plots: `qifsim compare LIF_CKPT QIF_CKPT --out DIR`
  train     train a model from a preset: `qifsim train --preset digits-qif`
  eval      evaluate a training checkpoint on its test set
  sweep     a neuron-parameter sweep preset (QIF paper, Appendix F), resumable
  models    the model zoo: input, parameters, spiking layers
  presets   the training presets (QIF paper Table 5, Appendix F, quick CPU checks)
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np


def _cmd_demo(args: argparse.Namespace) -> int:
    from .demo import run_demo

    run_demo(
        out_dir=args.out,
        epochs=args.epochs,
        n_samples=args.samples,
        seed=args.seed,
        lava_samples=args.lava_samples,
    )
    return 0


def _cmd_window(args: argparse.Namespace) -> int:
    from .neurons import QIFParameters
    from .neurons.window_stats import membrane_statistics

    p = QIFParameters(a=args.a, u_rest=args.u_rest, u_c=args.u_c, u_th=args.u_th, form=args.form)
    stats = membrane_statistics(p, n_samples=args.samples, seed=args.seed)
    if args.json:
        print(json.dumps(stats, indent=2))
        return 0
    print(
        f"QIF a={p.a} u_rest={p.u_rest} u_c={p.u_c} u_th={p.u_th} form={p.form}, "
        f"inputs I ~ N(0, u_th^2)"
    )
    print(f"{'':28} {'mu':>8} {'sigma':>8}")
    print(f"{'Theorem 1 (formula)':28} {stats['formula_mu']:8.4f} {stats['formula_sigma']:8.4f}")
    print(f"{'approximated model (MC)':28} {stats['approx_mu']:8.4f} {stats['approx_sigma']:8.4f}")
    print(f"{'full QIF dynamics (sim)':28} {stats['full_mu']:8.4f} {stats['full_sigma']:8.4f}")
    print(
        f"surrogate window [mu - sigma, mu + sigma] = "
        f"[{stats['formula_mu'] - stats['formula_sigma']:.4f}, "
        f"{stats['formula_mu'] + stats['formula_sigma']:.4f}]; "
        f"full-dynamics firing rate {stats['full_rate']:.3f} per step"
    )
    return 0


def _read_for_cli(args: argparse.Namespace):
    from .events.io import read_events, sniff_format

    fmt = args.format or sniff_format(args.file)
    options = {"orientation": args.orientation} if fmt == "aedat2" else {}
    return fmt, read_events(args.file, format=fmt, **options)


def _cmd_events_info(args: argparse.Namespace) -> int:
    from .events.plot import summarize_events

    fmt, events = _read_for_cli(args)
    info = {"file": str(args.file), "format": fmt, **summarize_events(events)}
    if args.json:
        print(json.dumps(info, indent=2))
        return 0
    for key, value in info.items():
        shown = f"{value:,.0f}" if isinstance(value, float) else value
        print(f"{key:16} {shown}")
    return 0


def _cmd_events_frames(args: argparse.Namespace) -> int:
    from .events.frames import to_frames
    from .events.plot import plot_frames, summarize_events

    fmt, events = _read_for_cli(args)
    if args.sensor:
        sensor = (args.sensor[0], args.sensor[1], 2)
    else:
        sensor = tuple(summarize_events(events).get("sensor_size_min", (1, 1, 2)))
    frames = to_frames(events, sensor, args.frames, split_by=args.split_by)
    per_frame = frames.sum(axis=(1, 2, 3)).astype(int).tolist()
    print(
        f"{args.file}: {len(events)} events ({fmt}) -> frames {tuple(frames.shape)} "
        f"[T, 2, H, W], events per frame {per_frame}"
    )
    if args.plot:
        path = plot_frames(
            frames,
            args.plot,
            title=f"{Path(args.file).name}: {fmt}, {len(events)} events, split by {args.split_by}",
        )
        print(f"plot written to {path}")
    if args.out:
        from .atomic import atomic_path

        with atomic_path(args.out) as tmp, open(tmp, "wb") as fh:
            np.save(fh, frames)
        print(f"frames written to {args.out}")
    return 0


def _cmd_lava(args: argparse.Namespace) -> int:
    from .lava_bridge import LavaEnvironmentError, run_lava

    if args.lava_command == "run":
        return _cmd_lava_run(args)
    try:
        report = run_lava([args.lava_command])
    except LavaEnvironmentError as err:
        print(f"error: {err}", file=sys.stderr)
        return 1
    print(json.dumps(report, indent=2))
    return 0 if report.get("returncode") == 0 else 1


def _cmd_lava_run(args: argparse.Namespace) -> int:
    from .lava_bridge import LavaEnvironmentError, LavaRunError, lava_run_report

    modes = ("float", "fixed") if args.mode == "both" else (args.mode,)
    try:
        report = lava_run_report(args.file, args.data, args.samples, modes, args.checkpoint)
    except (LavaEnvironmentError, LavaRunError, ValueError, FileNotFoundError) as err:
        print(f"qifsim lava run: error: {err}", file=sys.stderr)
        return 1
    if args.json:
        print(json.dumps(report, indent=2))
        return 0
    print(
        f"{report['samples']} samples; PyTorch ({report['torch_source']}): "
        f"accuracy {report['acc_torch']:.1%}"
    )
    for mode, r in report["modes"].items():
        line = (
            f"Lava {mode:5s}: accuracy {r['accuracy']:.1%}, agreement with PyTorch "
            f"{r['agreement']:.1%}, {r['steps_per_second']:.0f} steps/s"
        )
        if "fixed_matches_reference" in r:
            line += f", bit-exact vs torch integer reference: {r['fixed_matches_reference']}"
        print(line)
    return 0


def _training_overrides(args: argparse.Namespace) -> list[str]:
    """``--set`` assignments, then the dedicated flags (which win)."""
    overrides = list(args.set or [])
    if getattr(args, "neuron", None):
        overrides.append(f"neuron={args.neuron}")
    if getattr(args, "epochs", None) is not None:
        overrides.append(f"epochs={args.epochs}")
    if getattr(args, "data_root", None):
        overrides.append(f"data_root={args.data_root}")
    return overrides


def _note_sibling(preset_name: str, neuron: str | None) -> None:
    from .train.presets import sibling_preset

    if not neuron or preset_name.endswith(f"-{neuron}"):
        return
    sibling = sibling_preset(preset_name, neuron)
    if sibling:
        print(
            f"note: --neuron {neuron} only swaps the neuron (paper parameters); the paper's "
            f"{neuron.upper()} setup of this row is preset {sibling!r}"
        )


def _print_config(config) -> None:
    values = config.to_dict()
    shown = ", ".join(f"{k}={v}" for k, v in values.items() if v is not None)
    print(f"config: {shown}")


def _cmd_train(args: argparse.Namespace) -> int:
    from .train.presets import config_from_preset, read_preset

    preset = read_preset(args.preset)
    if preset.kind != "train":
        raise ValueError(f"preset {preset.name!r} is a {preset.kind}: run `qifsim sweep --preset`")
    config = config_from_preset(preset, _training_overrides(args))
    _note_sibling(preset.name, args.neuron)
    out = Path(args.out) if args.out else Path("runs") / config.name
    if args.nproc is not None and args.nproc < 1:
        raise ValueError(f"--nproc must be >= 1, got {args.nproc}")
    if args.nproc and args.nproc > 1:
        return _launch_torchrun(args, config, out)
    from .train import fit

    print(f"preset {preset.name}: {preset.description}\n  source: {preset.source}")
    _print_config(config)
    try:
        result = fit(
            config,
            out,
            resume=args.resume,
            progress=not args.no_progress,
            overwrite=args.overwrite,
        )
    except FileExistsError as err:
        raise ValueError(f"{err} (flags: --resume, --overwrite, --out)") from err
    _print_result(result, out)
    return 0


def _launch_torchrun(args: argparse.Namespace, config, out: Path) -> int:
    """Run the trainer under torchrun, one process per device: the same as

    ``torchrun --standalone --nproc_per_node=N -m qifsim.train.run OUT/launch-config.json OUT``.
    """
    import subprocess

    from .atomic import write_json_atomic

    config_path = write_json_atomic(out / "launch-config.json", config.to_dict())
    command = [
        sys.executable,
        "-m",
        "torch.distributed.run",
        "--standalone",
        f"--nproc_per_node={args.nproc}",
        "-m",
        "qifsim.train.run",
        str(config_path),
        str(out),
    ]
    command += [
        flag
        for flag, wanted in (
            ("--resume", args.resume),
            ("--overwrite", args.overwrite),
            ("--no-progress", args.no_progress),
        )
        if wanted
    ]
    print("running: torchrun " + " ".join(command[3:]), flush=True)
    return subprocess.call(command)


def _print_result(result: dict, out: Path | None = None) -> None:
    shown = {k: v for k, v in result.items() if isinstance(v, (int, float, str, bool)) or v is None}
    for key, value in shown.items():
        text = f"{value:.4f}" if isinstance(value, float) else value
        print(f"{key:24} {text}")
    if out is not None:
        print(f"outputs in {out}")


def _cmd_eval(args: argparse.Namespace) -> int:
    from .train import evaluate_checkpoint

    result = evaluate_checkpoint(args.checkpoint, data_root=args.data_root)
    if args.json:
        print(json.dumps(result, indent=2, default=str))
        return 0
    _print_result(result)
    return 0


def _cmd_sweep(args: argparse.Namespace) -> int:
    from .train.presets import read_preset
    from .train.sweep import run_sweep

    preset = read_preset(args.preset)
    if preset.kind != "sweep":
        raise ValueError(
            f"preset {preset.name!r} is not a sweep; sweep presets: "
            + ", ".join(_preset_names_of_kind("sweep"))
        )
    out = Path(args.out) if args.out else Path("runs") / f"{preset.name}-{args.neuron}"
    overrides = list(args.set or [])
    if args.epochs is not None:
        overrides.append(f"epochs={args.epochs}")
    if args.data_root:
        overrides.append(f"data_root={args.data_root}")
    summary = run_sweep(
        preset,
        out,
        neuron=args.neuron,
        limit=args.limit,
        resume=not args.restart,
        overrides=overrides,
        progress=not args.no_progress,
    )
    stats = summary["statistics"]
    n_ex = stats["n_excluded"]
    print(
        f"{summary['n_run']} of {summary['n_grid_points']} points "
        f"({summary['n_reused']} reused from an earlier run), {n_ex} excluded from statistics"
    )
    for key in ("mean", "std", "min", "max"):
        value = stats[key]
        print(f"  accuracy {key:4} {'-' if value is None else f'{value:.4f}'}")
    print("files in " + str(out) + ": " + ", ".join(summary["files"].values()))
    return 0


def _preset_names_of_kind(kind: str) -> list[str]:
    from .train.presets import describe_presets

    return [row["name"] for row in describe_presets() if row["kind"] == kind]


def _cmd_models(args: argparse.Namespace) -> int:
    from .models import model_table

    rows = model_table()
    if args.json:
        print(json.dumps(rows, indent=2, default=str))
        return 0
    columns = (
        ("name", "name"),
        ("dataset", "dataset"),
        ("input", "input"),
        ("num_classes", "classes"),
        ("parameters", "parameters"),
        ("spiking_layers", "spiking layers"),
    )
    columns = tuple(c for c in columns if any(c[0] in r for r in rows))
    cells = [
        [f"{r.get(k):,}" if k == "parameters" else str(r.get(k, "-")) for k, _ in columns]
        for r in rows
    ]
    headers = [h for _, h in columns]
    widths = [max(len(h), *(len(c[i]) for c in cells)) for i, h in enumerate(headers)]
    numeric = [k in ("num_classes", "parameters", "spiking_layers") for k, _ in columns]

    def line(values) -> str:
        parts = zip(values, widths, numeric, strict=True)
        return "  ".join(v.rjust(w) if num else v.ljust(w) for v, w, num in parts).rstrip()

    print(line(headers))
    print(line(["-" * w for w in widths]))
    for c in cells:
        print(line(c))
    return 0


def _cmd_presets(args: argparse.Namespace) -> int:
    from .train.presets import describe_presets

    rows = describe_presets()
    if args.json:
        print(json.dumps(rows, indent=2))
        return 0
    width = max(len(r["name"]) for r in rows)
    for r in rows:
        kind = " [sweep]" if r["kind"] == "sweep" else ""
        print(f"{r['name']:{width}}  {r['description']}{kind}")
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="qifsim",
        description="qifsim: discretized Quadratic Integrate-and-Fire (QIF) spiking networks "
        "with tdBN and the analytic surrogate window; LIF side by side.",
    )
    from . import __version__

    parser.add_argument("--version", action="version", version=f"qifsim {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")

    demo = sub.add_parser(
        "demo",
        help="the main job: train QIF and LIF networks on event data and compare them",
        description="Train the small digits-net with LIF, QIF, and QIF with a quadratic "
        "dendritic synapse (presets digits-lif, digits-qif, digits-qif-quadratic) on the "
        "embedded digits-dvs recordings; print test accuracy, per-layer spike rates, training "
        "time and energy per inference (LIF vs QIF in the QIF paper's Table 1 layout); export "
        "the QIF net and run it in Lava (float and fixed point) next to PyTorch. Writes "
        "OUT/demo.json, PNGs (training curves, firing rates, membrane distributions, one "
        "recording's frames), energy tables and the Lava exchange file OUT/qif.h5.",
    )
    demo.add_argument("--out", default="qifsim-demo", help="output folder (default: %(default)s)")
    demo.add_argument(
        "--epochs", type=int, default=None, help="training epochs (default: the presets')"
    )
    demo.add_argument(
        "--samples",
        type=int,
        default=None,
        help="training recordings (default: all 1,442 of digits-dvs' training split)",
    )
    demo.add_argument("--seed", type=int, default=0, help="random seed (default: %(default)s)")
    demo.add_argument(
        "--lava-samples",
        type=int,
        default=355,
        help="test recordings to run in Lava, float and fixed point (0 skips Lava; "
        "default: all %(default)s, about 1.5 minutes)",
    )
    demo.set_defaults(func=_cmd_demo)

    window = sub.add_parser(
        "window",
        help="Theorem-1 surrogate window vs Monte Carlo vs full QIF dynamics",
        description="Compare the analytic window (mu_u, sigma_u) of Theorem 1 with a Monte "
        "Carlo of the theorem's approximated model and with the full recurrent QIF dynamics.",
    )
    window.add_argument("--a", type=float, default=0.25)
    window.add_argument("--u-rest", type=float, default=0.0)
    window.add_argument("--u-c", type=float, default=0.5)
    window.add_argument("--u-th", type=float, default=0.5)
    window.add_argument("--form", choices=("paper", "euler"), default="paper")
    window.add_argument("--samples", type=int, default=1_000_000, help="Monte Carlo samples")
    window.add_argument("--seed", type=int, default=0)
    window.add_argument("--json", action="store_true", help="print JSON instead of a table")
    window.set_defaults(func=_cmd_window)

    events = sub.add_parser(
        "events",
        help="look at an event recording (any supported format)",
        description="Read an event file (N-MNIST/N-Caltech101 .bin, N-Cars .dat, AEDAT 2.0, "
        "AEDAT 3.1, AEDAT4) and summarise it or frame it.",
    )
    events_sub = events.add_subparsers(dest="events_command", metavar="ACTION", required=True)
    for name, helptext in (
        ("info", "counts, time span, coordinate ranges, event rate"),
        ("frames", "bin into [T, 2, H, W] frames; --plot writes a PNG"),
    ):
        action = events_sub.add_parser(name, help=helptext, description=helptext)
        action.add_argument("file", help="the recording")
        action.add_argument(
            "--format",
            default=None,
            help="atis-bin | prophesee-dat | aedat2 | aedat31 | aedat4 "
            "(default: detected from the content and extension)",
        )
        action.add_argument(
            "--orientation",
            default="jaer",
            choices=("jaer", "transposed"),
            help="AEDAT 2.0 pixel convention (default: %(default)s)",
        )
        if name == "info":
            action.add_argument("--json", action="store_true", help="print JSON")
            action.set_defaults(func=_cmd_events_info)
        else:
            action.add_argument("--frames", type=int, default=10, help="T (default: 10)")
            action.add_argument("--split-by", choices=("count", "time"), default="count")
            action.add_argument(
                "--sensor",
                type=int,
                nargs=2,
                metavar=("W", "H"),
                help="sensor width and height (default: from the events)",
            )
            action.add_argument("--plot", help="write a PNG of the frames here")
            action.add_argument("--out", help="write the frames as .npy here")
            action.set_defaults(func=_cmd_events_frames)

    lava = sub.add_parser(
        "lava",
        help="run the Lava side (in .venv-lava)",
        description="Commands that run in the Lava environment (.venv-lava, Python 3.10).",
    )
    lava_sub = lava.add_subparsers(dest="lava_command", required=True)
    lava_sub.add_parser("doctor", help="versions and a 3-step Dense network run in Lava")
    lava_run = lava_sub.add_parser(
        "run",
        help="run an exchange file in Lava on test samples; accuracy, agreement, steps/s",
    )
    lava_run.add_argument("file", help="exchange file (.h5) from `qifsim export`")
    lava_run.add_argument("--data", default="digits-dvs", choices=("digits-dvs",))
    lava_run.add_argument("--samples", type=int, default=50, help="test samples (default 50)")
    lava_run.add_argument("--mode", choices=("float", "fixed", "both"), default="both")
    lava_run.add_argument(
        "--checkpoint", default=None, help="compare with this checkpoint's PyTorch model"
    )
    lava_run.add_argument("--json", action="store_true", help="print the report as JSON")
    lava.set_defaults(func=_cmd_lava)
    _add_training_parsers(sub)
    from .export.cli import register_cli as _register_export

    _register_export(sub)
    from .energy.cli import register_cli as _register_energy

    _register_energy(sub)
    return parser


def _add_training_parsers(sub) -> None:
    """Subcommands train, eval, sweep, models, presets."""
    train = sub.add_parser(
        "train",
        help="train a model from a preset (QIF paper Table 5 setups, quick digits-dvs runs)",
        description="Train with a preset's configuration (see `qifsim presets`), changed by "
        "--set key=value and the flags below. Writes metrics and checkpoints to --out. "
        "Several devices: --nproc N runs the same under torchrun (one process per device).",
    )
    train.add_argument("--preset", required=True, help="preset name or path to a preset .json")
    _add_config_flags(train)
    train.add_argument("--out", default=None, help="output folder (default: runs/<config name>)")
    train.add_argument(
        "--resume", action="store_true", help="continue from the last checkpoint in --out"
    )
    train.add_argument(
        "--overwrite", action="store_true", help="start afresh even if --out holds a run"
    )
    train.add_argument(
        "--nproc",
        type=int,
        default=None,
        help="processes (devices) for distributed training: runs torchrun --standalone "
        "--nproc_per_node=N -m qifsim.train.run (default: 1, no torchrun)",
    )
    train.add_argument("--no-progress", action="store_true", help="no progress bars")
    train.set_defaults(func=_cmd_train)

    evaluate = sub.add_parser(
        "eval",
        help="evaluate a training checkpoint on its test set",
        description="Load a checkpoint written by `qifsim train`, rebuild its model and "
        "report test loss and accuracy (the configuration comes from the checkpoint).",
    )
    evaluate.add_argument("checkpoint", help="checkpoint file")
    evaluate.add_argument("--data-root", default=None, help="dataset root (default: as trained)")
    evaluate.add_argument("--json", action="store_true", help="print JSON")
    evaluate.set_defaults(func=_cmd_eval)

    sweep = sub.add_parser(
        "sweep",
        help="neuron-parameter sweep (QIF paper, Appendix F), resumable",
        description="Train every grid point of a sweep preset (one sub-folder each; finished "
        "points are skipped on a rerun) and write summary-<neuron>.csv/.json and "
        "sweep-<neuron>.png. "
        "Points with a > 0.4 are trained and recorded but excluded from the statistics.",
    )
    sweep.add_argument("--preset", default="robustness-lenet5", help="(default: %(default)s)")
    sweep.add_argument("--neuron", choices=("qif", "lif"), default="qif", help="which grid")
    sweep.add_argument("--limit", type=int, default=None, help="run only the first N points")
    sweep.add_argument("--data-root", default=None, help="dataset root folder")
    sweep.add_argument("--epochs", type=int, default=None, help="epochs per point")
    sweep.add_argument(
        "--set",
        action="append",
        metavar="KEY=VALUE",
        help="change a training field for every point (repeatable)",
    )
    sweep.add_argument(
        "--out", default=None, help="output folder (default: runs/<preset>-<neuron>)"
    )
    sweep.add_argument("--restart", action="store_true", help="retrain finished points too")
    sweep.add_argument("--no-progress", action="store_true", help="no progress output")
    sweep.set_defaults(func=_cmd_sweep)

    models = sub.add_parser(
        "models",
        help="the model zoo: input shape, parameters, spiking layers",
        description="List the models build_model() knows with their default input, "
        "parameter count and number of spiking layers.",
    )
    models.add_argument("--json", action="store_true", help="print JSON")
    models.set_defaults(func=_cmd_models)

    presets = sub.add_parser(
        "presets",
        help="list the training presets",
        description="The shipped training presets with one-line descriptions "
        "(files in qifsim/train/presets/).",
    )
    presets.add_argument("--json", action="store_true", help="print JSON (with sources)")
    presets.set_defaults(func=_cmd_presets)


def _add_config_flags(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--neuron",
        choices=("qif", "lif"),
        default=None,
        help="swap the neuron (paper parameters of that neuron; other values stay the "
        "preset's: use the -lif/-qif preset for the paper's per-neuron setup)",
    )
    parser.add_argument("--data-root", default=None, help="dataset root folder")
    parser.add_argument("--epochs", type=int, default=None, help="number of epochs")
    parser.add_argument(
        "--set",
        action="append",
        metavar="KEY=VALUE",
        help="change any training field, e.g. --set lr=1e-3 --set betas=0.9,0.99 "
        "--set neuron_params.a=0.3 (repeatable)",
    )


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command is None:
        parser.print_help()
        return 2
    try:
        return args.func(args)
    except (ValueError, FileNotFoundError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
