"""``qifsim``: the command line.

Subcommands:
  demo      the main job: QIF vs LIF spiking networks on an event stream
  window    Theorem-1 surrogate window vs Monte Carlo vs the full QIF dynamics
  events    look at a recording: `qifsim events info FILE`, `qifsim events frames FILE --plot P`
  lava      the Lava side (runs in .venv-lava): `qifsim lava doctor`
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np


def _cmd_demo(args: argparse.Namespace) -> int:
    from .demo import run_demo

    run_demo(out_dir=args.out, n_samples=args.samples, n_frames=args.frames, seed=args.seed)
    try:
        from .lava_bridge import LavaEnvironmentError, run_lava

        report = run_lava(["doctor"], timeout=120)
        status = "ok" if report.get("lava_run_ok") else "FAILED"
        print(
            f"Lava environment: {status} (lava-nc {report.get('lava_nc')}, "
            f"Python {report.get('python')})"
        )
    except (LavaEnvironmentError, OSError) as err:
        print(f"Lava environment: not available ({err})")
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

    try:
        report = run_lava([args.lava_command])
    except LavaEnvironmentError as err:
        print(f"error: {err}", file=sys.stderr)
        return 1
    print(json.dumps(report, indent=2))
    return 0 if report.get("returncode") == 0 else 1


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
        help="the main job: simulate QIF and LIF networks on an event stream, per-layer spikes",
        description="Simulate the same small conv SNN with QIF and with LIF neurons on the "
        "embedded digits-dvs recordings; print per-layer spike counts and firing rates; "
        "write OUT/demo.json.",
    )
    demo.add_argument("--out", default="qifsim-demo", help="output folder (default: %(default)s)")
    demo.add_argument(
        "--samples", type=int, default=128, help="digits-dvs test recordings (default: %(default)s)"
    )
    demo.add_argument("--frames", type=int, default=10, help="time steps T (default: %(default)s)")
    demo.add_argument("--seed", type=int, default=0, help="random seed (default: %(default)s)")
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
    lava.add_argument(
        "lava_command",
        choices=("doctor",),
        help="doctor: versions and a 3-step Dense network run in Lava",
    )
    lava.set_defaults(func=_cmd_lava)
    return parser


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
