"""``qifsim-lava``: command line of the Lava side (runs inside .venv-lava)."""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
from pathlib import Path

import numpy as np

from .doctor import environment_report


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="qifsim-lava",
        description="qifsim's Lava side. Runs in the Python 3.10 environment .venv-lava.",
    )
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser(
        "doctor",
        help="check the Lava environment: versions, and a 3-step Dense network run in Lava; "
        "prints JSON",
    )
    run = sub.add_parser(
        "run",
        help="run an exchange file in Lava on frames from an .npz; writes outputs, prints JSON",
        description="Run FILE (a qifsim exchange file) in Lava on IN.npz's `frames` "
        "[T, B, *input_shape]; write logits/predictions (and spikes) to OUT.npz.",
    )
    run.add_argument("file", type=Path, help="exchange file (.h5) written by `qifsim export`")
    run.add_argument("--inputs", type=Path, required=True, help="npz with `frames`")
    run.add_argument("--outputs", type=Path, required=True, help="npz to write")
    run.add_argument("--mode", choices=("float", "fixed", "both"), default="float")
    run.add_argument("--record-spikes", action="store_true", help="also write hidden spikes")
    args = parser.parse_args(argv)
    if args.command == "run":
        return _run(args)
    if args.command == "doctor":
        report = environment_report()
        print(json.dumps(report, indent=2))
        return 0 if report["lava_run_ok"] else 1
    return 2


def _save_npz(path: Path, arrays: dict[str, np.ndarray]) -> None:
    """Write ``arrays`` to ``path`` atomically (temp file in the same folder, then rename)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            np.savez(f, **arrays)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def _run(args: argparse.Namespace) -> int:
    """``run``: every failure becomes ``{"ok": false, "error_type", "error"}`` JSON and exit 1."""
    from .exchange import ExchangeError, load_exchange

    try:
        net = load_exchange(args.file)
        from .runner import run_network  # imports Lava: after the file checks

        try:
            with np.load(args.inputs) as data:
                frames = data["frames"]
        except (OSError, KeyError, ValueError) as err:
            raise ValueError(f"{args.inputs}: cannot read `frames` from the npz ({err})") from err
        modes = ("float", "fixed") if args.mode == "both" else (args.mode,)
        arrays: dict[str, np.ndarray] = {}
        report: dict = {
            "ok": True,
            "file": str(args.file),
            "checksum": net.checksum,
            "model_name": net.model_name,
            "delay": net.delay,
            "time_steps": int(frames.shape[0]),
            "samples": int(frames.shape[1]),
            "modes": {},
        }
        for mode in modes:
            res = run_network(net, frames, mode, args.record_spikes)
            arrays[f"{mode}_logits"] = res.logits
            arrays[f"{mode}_predictions"] = res.predictions
            if res.acc is not None:
                arrays[f"{mode}_acc"] = res.acc
            for index, spikes in res.spikes.items():
                arrays[f"{mode}_spikes_{index}"] = spikes
            report["modes"][mode] = {
                "steps": res.steps,
                "seconds": res.seconds,
                "compile_seconds": res.compile_seconds,
                "steps_per_second": res.steps_per_second,
            }
        _save_npz(args.outputs, arrays)
    except (ExchangeError, FileNotFoundError, ValueError) as err:
        print(json.dumps({"ok": False, "error_type": type(err).__name__, "error": str(err)}))
        return 1
    print(json.dumps(report, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
