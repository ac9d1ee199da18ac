"""Command-line entry point: ``python -m qifsim.train.run CONFIG.json OUT_DIR [options]``.

Trains the run described by a JSON :class:`~qifsim.train.config.TrainConfig`
(such as a run's ``config.json``) into ``OUT_DIR``. The same command runs on
several processes under ``torchrun``::

    torchrun --standalone --nproc_per_node=2 -m qifsim.train.run config.json runs/x

On rank 0 it prints the final metrics as one JSON line on stdout.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Sequence

from .config import ConfigError, TrainConfig


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    """The command line (see the module docstring)."""
    parser = argparse.ArgumentParser(
        prog="python -m qifsim.train.run", description="Train one qifsim run."
    )
    parser.add_argument("config", help="JSON file with the TrainConfig fields")
    parser.add_argument("out_dir", help="folder for config.json, metrics.jsonl, last.pt, best.pt")
    parser.add_argument("--resume", action="store_true", help="continue from OUT_DIR/last.pt")
    parser.add_argument(
        "--overwrite", action="store_true", help="start afresh even if OUT_DIR holds a run"
    )
    parser.add_argument("--device", default=None, help="cpu, cuda, cuda:1 (default: auto)")
    parser.add_argument("--data-root", default=None, help="replace the config's data_root")
    parser.add_argument("--no-progress", action="store_true", help="no progress bars")
    parser.add_argument("--no-tensorboard", action="store_true", help="no TensorBoard events")
    parser.add_argument(
        "--stop-after", type=int, default=None, help="return after this many epochs in total"
    )
    return parser.parse_args(argv)


def load_config(path: str | os.PathLike) -> TrainConfig:
    """Read a :class:`TrainConfig` from a JSON file."""
    with open(path, encoding="utf-8") as f:
        return TrainConfig.from_dict(json.load(f))


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command; returns the exit status (2 for a bad configuration)."""
    from .loop import fit

    args = parse_args(argv)
    try:
        config = load_config(args.config)
        if args.data_root is not None:
            config = config.replace(data_root=args.data_root)
    except (ConfigError, OSError, json.JSONDecodeError) as err:
        print(f"error: {args.config}: {err}", file=sys.stderr)
        return 2
    result = fit(
        config,
        args.out_dir,
        resume=args.resume,
        progress=not args.no_progress,
        device=args.device,
        overwrite=args.overwrite,
        tensorboard=not args.no_tensorboard,
        stop_after=args.stop_after,
    )
    if os.environ.get("RANK", "0") == "0":
        print(json.dumps(result, allow_nan=False))
    return 0


if __name__ == "__main__":
    sys.exit(main())
