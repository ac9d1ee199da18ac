"""Run the Lava side (``hardware/lava``, in ``.venv-lava``) from the torch side.

lava-nc 0.10 needs Python 3.10 and numpy < 2, so it lives in its own virtual
environment; qifsim calls its ``qifsim-lava`` command as a subprocess and
reads the JSON it prints.
"""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

ENV_VAR = "QIFSIM_LAVA_PYTHON"


class LavaEnvironmentError(RuntimeError):
    """The Lava environment is missing or failed."""


def find_lava_python() -> Path:
    """Python of the Lava environment.

    Looks at ``$QIFSIM_LAVA_PYTHON``, then for ``.venv-lava/bin/python`` in the
    current directory, the source checkout qifsim runs from, and their parents.
    """
    if os.environ.get(ENV_VAR):
        path = Path(os.environ[ENV_VAR])
        if not path.exists():
            raise LavaEnvironmentError(f"{ENV_VAR}={path} does not exist")
        return path
    starts = [Path.cwd(), Path(__file__).resolve().parent]
    for start in starts:
        for folder in (start, *start.parents):
            candidate = folder / ".venv-lava" / "bin" / "python"
            if candidate.exists():
                return candidate
    raise LavaEnvironmentError(
        "no Lava environment found: run `make setup` in the qifsim checkout (it builds "
        f".venv-lava with Python 3.10 and lava-nc), or set {ENV_VAR}=/path/to/python3.10"
    )


def run_lava(args: list[str], timeout: float = 600.0) -> dict:
    """Run ``qifsim-lava ARGS`` in the Lava environment and return its JSON output."""
    python = find_lava_python()
    cmd = [str(python), "-m", "qifsim_lava.cli", *args]
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "PYTHONHOME")}
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, env=env)
    try:
        result = json.loads(proc.stdout)
    except json.JSONDecodeError:
        raise LavaEnvironmentError(
            f"`{' '.join(cmd)}` exited with {proc.returncode} without JSON output:\n"
            f"{proc.stderr[-2000:]}"
        ) from None
    result["returncode"] = proc.returncode
    return result
