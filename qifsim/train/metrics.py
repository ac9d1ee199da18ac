"""Metrics files of a run: ``metrics.jsonl`` (always) and TensorBoard events (when available).

``metrics.jsonl`` holds one JSON object per completed epoch. It is rewritten
atomically from the whole history after every epoch (a few hundred short
lines at most), so after a crash it always agrees with ``last.pt``, whose
history it mirrors.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from ..atomic import open_atomic

METRICS_FILE = "metrics.jsonl"
TENSORBOARD_DIR = "tensorboard"
#: Scalars sent to TensorBoard (when present and not None).
SCALARS = ("train_loss", "train_acc", "test_loss", "test_acc", "mean_spike_rate", "lr", "seconds")


def write_jsonl(path: str | os.PathLike, rows: Sequence[Mapping[str, Any]]) -> Path:
    """Write ``rows`` as JSON lines to ``path`` atomically (strict JSON: no NaN/inf)."""
    with open_atomic(path) as f:
        for row in rows:
            f.write(json.dumps(dict(row), allow_nan=False).encode() + b"\n")
    return Path(path)


def read_jsonl(path: str | os.PathLike) -> list[dict[str, Any]]:
    """The rows of a JSON-lines file (blank lines skipped)."""
    with open(path, encoding="utf-8") as f:
        return [json.loads(line) for line in f if line.strip()]


def _summary_writer(log_dir: Path):
    """A TensorBoard ``SummaryWriter``, or ``None`` when tensorboard is not installed."""
    try:
        from torch.utils.tensorboard import SummaryWriter
    except Exception:  # tensorboard missing or broken: TensorBoard output is optional
        return None
    return SummaryWriter(log_dir=str(log_dir))


class MetricsLog:
    """Writes a run's metrics (only where ``enabled``: rank 0).

    Args:
        out_dir: the run folder.
        enabled: write anything at all.
        tensorboard: also write TensorBoard events under ``out_dir/tensorboard``
            if ``torch.utils.tensorboard`` imports (silently skipped otherwise).
    """

    def __init__(self, out_dir: str | os.PathLike, enabled: bool = True, tensorboard: bool = True):
        self.path = Path(out_dir) / METRICS_FILE
        self.enabled = enabled
        self._writer = (
            _summary_writer(Path(out_dir) / TENSORBOARD_DIR) if (enabled and tensorboard) else None
        )

    def write(self, history: Sequence[Mapping[str, Any]], new_row: bool = True) -> None:
        """Rewrite ``metrics.jsonl`` with ``history``; send its last row to TensorBoard
        when it is ``new_row`` (not when restoring the file of a resumed run)."""
        if not self.enabled:
            return
        write_jsonl(self.path, history)
        if self._writer is not None and history and new_row:
            row = history[-1]
            step = int(row["epoch"])
            for name in SCALARS:
                if row.get(name) is not None:
                    self._writer.add_scalar(name, row[name], step)
            for layer, rate in (row.get("spike_rates") or {}).items():
                self._writer.add_scalar(f"spike_rate/{layer}", rate, step)
            self._writer.flush()

    def close(self) -> None:
        """Close the TensorBoard writer (if any)."""
        if self._writer is not None:
            self._writer.close()
            self._writer = None
