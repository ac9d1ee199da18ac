"""Event framing: per-polarity event counts in ``[T, 2, H, W]`` float32 frames.

Two conventions (FORMATS.md):

* ``split_by="count"``: N events into ``n_frames`` frames of ``N // n_frames``
  events each, the remainder goes to the last frame;
* ``split_by="time"``: equal time bins over ``[t_first, t_last]`` (the last
  bin is closed); empty bins are zeros.

No event is dropped: each frame stack sums to the number of events, per
polarity. This is the plain numpy reference implementation (``bincount``).
"""

from __future__ import annotations

import numpy as np

from .array import validate_events

SPLITS = ("count", "time")


def frame_index(events: np.ndarray, n_frames: int, split_by: str) -> np.ndarray:
    """Frame number ``0 .. n_frames-1`` of every event (int64, shape ``[N]``)."""
    n = events.shape[0]
    if split_by == "count":
        per_frame = n // n_frames
        if per_frame == 0:
            return np.full(n, n_frames - 1, dtype=np.int64)
        return np.minimum(np.arange(n, dtype=np.int64) // per_frame, n_frames - 1)
    if split_by == "time":
        t = events["t"]
        t0, t1 = int(t[0]), int(t[-1])
        if t1 == t0:
            return np.zeros(n, dtype=np.int64)
        index = ((t - t0) * n_frames) // (t1 - t0 + 1)
        return index.astype(np.int64)
    raise ValueError(f"split_by must be one of {SPLITS}, got {split_by!r}")


def to_frames(
    events: np.ndarray,
    sensor_size: tuple[int, int, int],
    n_frames: int = 10,
    split_by: str = "count",
) -> np.ndarray:
    """Bin events into frames.

    Args:
        events: structured event array (x, y, t in us, p), sorted by ``t``.
        sensor_size: ``(W, H, 2)``.
        n_frames: number of frames ``T`` (>= 1).
        split_by: ``"count"`` or ``"time"`` (see module docstring).

    Returns:
        float32 array ``[T, 2, H, W]``; channel 0 = OFF, 1 = ON.
    """
    if not isinstance(n_frames, (int, np.integer)) or n_frames < 1:
        raise ValueError(f"n_frames must be an integer >= 1, got {n_frames!r}")
    if split_by not in SPLITS:
        raise ValueError(f"split_by must be one of {SPLITS}, got {split_by!r}")
    validate_events(events, sensor_size)
    width, height, _ = sensor_size
    frames = np.zeros((n_frames, 2, height, width), dtype=np.float32)
    if events.size == 0:
        return frames
    frame = frame_index(events, n_frames, split_by)
    flat = ((frame * 2 + events["p"].astype(np.int64)) * height + events["y"]) * width + events["x"]
    counts = np.bincount(flat, minlength=frames.size)
    frames.reshape(-1)[:] = counts
    return frames
