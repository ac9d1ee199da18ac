"""Event arrays: numpy structured arrays with fields x, y, t (us), p.

The layout is tonic-compatible: ``x``, ``y`` int16 pixel coordinates,
``t`` int64 timestamps in microseconds, ``p`` int8 polarity (1 = ON, 0 = OFF).
``sensor_size`` is ``(W, H, 2)``.
"""

from __future__ import annotations

import numpy as np

EVENT_DTYPE = np.dtype([("x", "<i2"), ("y", "<i2"), ("t", "<i8"), ("p", "i1")])


def make_events(x, y, t, p) -> np.ndarray:
    """Build an event array from equally long 1-d sequences (converted to the event dtype).

    Raises:
        ValueError: if the lengths differ or a value does not fit its field.
    """
    columns = {"x": np.asarray(x), "y": np.asarray(y), "t": np.asarray(t), "p": np.asarray(p)}
    lengths = {k: v.shape for k, v in columns.items()}
    if len({v for v in lengths.values()}) != 1 or columns["x"].ndim != 1:
        raise ValueError(f"x, y, t, p must be 1-d and equally long, got shapes {lengths}")
    events = np.empty(columns["x"].shape[0], dtype=EVENT_DTYPE)
    for name, values in columns.items():
        info = np.iinfo(EVENT_DTYPE[name])
        if values.size and (values.min() < info.min or values.max() > info.max):
            raise ValueError(f"field {name} has values outside [{info.min}, {info.max}]")
        events[name] = values
    return events


def validate_events(events: np.ndarray, sensor_size: tuple[int, int, int]) -> None:
    """Check an event array against ``sensor_size = (W, H, 2)``.

    Raises:
        ValueError: naming the first problem found (dtype fields, unsorted
        timestamps, coordinates outside the sensor, polarity not in {0, 1}).
    """
    if not isinstance(events, np.ndarray) or events.dtype.names is None:
        raise ValueError("events must be a numpy structured array with fields x, y, t, p")
    missing = [f for f in ("x", "y", "t", "p") if f not in events.dtype.names]
    if missing:
        raise ValueError(f"event array lacks fields {missing}; expected x, y, t, p")
    width, height, polarities = sensor_size
    if polarities != 2:
        raise ValueError(f"sensor_size must be (W, H, 2), got {sensor_size}")
    if events.size == 0:
        return
    if np.any(np.diff(events["t"]) < 0):
        first = int(np.argmax(np.diff(events["t"]) < 0)) + 1
        raise ValueError(f"timestamps are not sorted (first decrease at event {first}); sort by t")
    for name, size in (("x", width), ("y", height)):
        bad = (events[name] < 0) | (events[name] >= size)
        if bad.any():
            i = int(np.argmax(bad))
            raise ValueError(
                f"event {i} has {name}={events[name][i]} outside the sensor (0..{size - 1}); "
                "check sensor_size=(W, H, 2)"
            )
    if np.any((events["p"] != 0) & (events["p"] != 1)):
        raise ValueError("polarity must be 0 (OFF) or 1 (ON)")


def slice_by_time(events: np.ndarray, t_start_us: int, t_end_us: int) -> np.ndarray:
    """Events with ``t_start_us <= t < t_end_us`` (a view; ``events`` must be sorted by ``t``).

    Uses binary search, so it costs ``O(log N)``; an empty window gives an empty view.
    """
    t = events["t"]
    lo = int(np.searchsorted(t, t_start_us, side="left"))
    hi = int(np.searchsorted(t, t_end_us, side="left"))
    return events[lo : max(lo, hi)]


def crop_events(events: np.ndarray, x0: int, y0: int, width: int, height: int) -> np.ndarray:
    """Events inside the window ``x0 <= x < x0 + width``, ``y0 <= y < y0 + height`` (a copy).

    Coordinates are shifted so the window's corner becomes ``(0, 0)``; the
    result fits ``sensor_size = (width, height, 2)``. Order and timestamps are kept.

    Raises:
        ValueError: if ``width`` or ``height`` is not positive.
    """
    if width < 1 or height < 1:
        raise ValueError(f"crop size must be positive, got width={width}, height={height}")
    x = events["x"].astype(np.int64)
    y = events["y"].astype(np.int64)
    inside = (x >= x0) & (x < x0 + width) & (y >= y0) & (y < y0 + height)
    out = events[inside]
    out["x"] = x[inside] - x0
    out["y"] = y[inside] - y0
    return out
