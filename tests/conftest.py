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
