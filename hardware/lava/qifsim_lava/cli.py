"""``qifsim-lava``: command line of the Lava side (runs inside .venv-lava)."""

from __future__ import annotations

import argparse
import json
import sys

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
    args = parser.parse_args(argv)
    if args.command == "doctor":
        report = environment_report()
        print(json.dumps(report, indent=2))
        return 0 if report["lava_run_ok"] else 1
    return 2


if __name__ == "__main__":
    sys.exit(main())
