"""The fuzz smoke run of ``make test-all``: 2,000 deterministic atheris executions per target.

Each target (``fuzz/targets.py``: the five event readers, the sniffer, and both exchange-file
readers) is seeded with the corpora ``fuzz/seeds.py`` generates and fuzzed by
``fuzz/run.py`` in its own process. A target fails on any exception other than the reader's
own error type, an input that runs longer than 5 s, events outside the sensor, unsorted
timestamps, or a one-pass read that differs from the chunked read or the reference decoder.
Slow (about a minute per target on 2 CPU cores); skipped where the ``fuzz`` extra
(``make setup-fuzz``) is not installed.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "fuzz"))
from targets import TARGETS  # noqa: E402

RUNS = 2000
SEED = 1
HANG_SECONDS = 5


def _lava_has_atheris() -> bool:
    from qifsim.lava_bridge import LavaEnvironmentError, find_lava_python

    try:
        python = find_lava_python()
    except LavaEnvironmentError:  # no .venv-lava: the target cannot run here
        return False
    proc = subprocess.run([str(python), "-c", "import atheris, coverage"], capture_output=True)
    return proc.returncode == 0


@pytest.mark.slow
@pytest.mark.parametrize("target", TARGETS)
def test_fuzz_smoke(target, tmp_path):
    pytest.importorskip("atheris", reason="the fuzz extra is not installed: make setup-fuzz")
    if target == "lava-exchange" and not _lava_has_atheris():
        pytest.skip(".venv-lava has no atheris/coverage: make setup-fuzz installs them")
    out = tmp_path / "fuzz.json"
    cmd = [sys.executable, str(REPO / "fuzz" / "run.py"), target, "--runs", str(RUNS)]
    cmd += ["--seed", str(SEED), "--timeout", str(HANG_SECONDS), "--work", str(tmp_path)]
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "PYTHONHOME")}
    proc = subprocess.run(
        [*cmd, "--json", str(out)], capture_output=True, text=True, cwd=REPO, env=env, timeout=1200
    )
    assert out.is_file(), proc.stdout[-3000:] + proc.stderr[-3000:]
    (result,) = json.loads(out.read_text())["results"]
    assert result["ok"], result.get("log_tail", proc.stderr[-3000:])
    assert result["executions"] >= RUNS, result
    assert proc.returncode == 0, proc.stderr[-3000:]
