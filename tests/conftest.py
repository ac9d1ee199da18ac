"""Test-session setup: generated data (digits-dvs, frame caches) goes to a temporary cache root."""

import os
from pathlib import Path

import pytest


@pytest.fixture(autouse=True, scope="session")
def _isolated_cache_root(tmp_path_factory):
    """Point ``$QIFSIM_CACHE`` at a session temp folder unless the caller set it."""
    if "QIFSIM_CACHE" in os.environ:
        yield
        return
    os.environ["QIFSIM_CACHE"] = str(tmp_path_factory.mktemp("qifsim-cache"))
    yield
    del os.environ["QIFSIM_CACHE"]


#: Real recordings shared beside the repository (read in place, never copied; tests skip
#: when absent). Import as ``from conftest import REAL_EVENTS``.
REAL_EVENTS = Path(__file__).resolve().parents[2] / "shared" / "fixtures" / "real-events"


REPO_ROOT = Path(__file__).resolve().parents[1]


def run_benchmark(name: str, *args: str, timeout: float = 120):
    """Run ``benchmarks/<name>.py ARGS`` with this interpreter from the repository root."""
    import subprocess
    import sys

    script = REPO_ROOT / "benchmarks" / f"{name}.py"
    return subprocess.run(
        [sys.executable, str(script), *args],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def quick_benchmark(name: str, out: Path) -> tuple[dict, str]:
    """``--quick`` run of a benchmark: checks success and the atomic write; (JSON, stdout)."""
    import json

    proc = run_benchmark(name, "--quick", "--no-progress", "--out", str(out))
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert not list(out.parent.glob("*.tmp")), "atomic write left a temp file behind"
    return json.loads(out.read_text()), proc.stdout
