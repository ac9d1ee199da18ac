"""Where qifsim keeps generated data (caches)."""

from __future__ import annotations

import os
from pathlib import Path

CACHE_ENV = "QIFSIM_CACHE"


def cache_root() -> Path:
    """Root of qifsim's caches: ``$QIFSIM_CACHE``, else ``$XDG_CACHE_HOME/qifsim``,
    else ``~/.cache/qifsim``. Each cache uses its own sub-folder."""
    if os.environ.get(CACHE_ENV):
        return Path(os.environ[CACHE_ENV]).expanduser()
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "qifsim"
