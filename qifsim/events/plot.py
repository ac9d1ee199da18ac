"""Look at recordings: a text summary and a PNG of the frames."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from ..atomic import atomic_path


def summarize_events(events: np.ndarray) -> dict:
    """Counts and ranges of an event array (times in microseconds)."""
    n = int(events.shape[0])
    if n == 0:
        return {"events": 0}
    t0, t1 = int(events["t"][0]), int(events["t"][-1])
    duration = t1 - t0
    return {
        "events": n,
        "on": int((events["p"] == 1).sum()),
        "off": int((events["p"] == 0).sum()),
        "t_first_us": t0,
        "t_last_us": t1,
        "duration_us": duration,
        "rate_ev_per_s": n / (duration * 1e-6) if duration > 0 else None,
        "x_range": [int(events["x"].min()), int(events["x"].max())],
        "y_range": [int(events["y"].min()), int(events["y"].max())],
        "sensor_size_min": [int(events["x"].max()) + 1, int(events["y"].max()) + 1, 2],
    }


def plot_frames(frames: np.ndarray, path: str | Path, title: str = "") -> Path:
    """Save frames ``[T, 2, H, W]`` as one PNG: a row per time bin, ON - OFF in red/blue.

    Written atomically (temp file + rename). Returns the path.
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    frames = np.asarray(frames)
    if frames.ndim != 4 or frames.shape[1] != 2:
        raise ValueError(f"frames must be [T, 2, H, W], got shape {frames.shape}")
    n = frames.shape[0]
    cols = min(n, 10)
    rows = (n + cols - 1) // cols
    diff = frames[:, 1] - frames[:, 0]
    lim = max(float(np.abs(diff).max()), 1e-9)
    fig, axes = plt.subplots(rows, cols, figsize=(1.6 * cols, 1.7 * rows + 0.4), squeeze=False)
    for i, ax in enumerate(axes.flat):
        ax.axis("off")
        if i < n:
            ax.imshow(diff[i], cmap="bwr", vmin=-lim, vmax=lim, interpolation="nearest")
            ax.set_title(f"t{i}: {int(frames[i].sum())} ev", fontsize=7)
    fig.suptitle(title or "ON (red) minus OFF (blue) per time bin", fontsize=9)
    fig.tight_layout()
    with atomic_path(path) as tmp:
        fig.savefig(tmp, dpi=110, format="png")
    plt.close(fig)
    return Path(path)
