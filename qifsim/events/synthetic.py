"""A deterministic synthetic DVS-like data set: moving squares seen by a simple DVS pixel.

Each recording shows a bright square crossing a dark ``W x H`` sensor in one
of four directions (the label: 0 right, 1 left, 2 down, 3 up). A simple DVS
pixel model turns the rendered video into events: each pixel remembers the
log intensity at its last event and fires one event per contrast step ``C``
the current log intensity has moved away from it (ON for brighter, OFF for
darker), at times spread uniformly inside the frame interval; a few
uniformly random noise events are added. Everything is drawn from one seed.

This is the demo's built-in stream; real datasets and a full emulator live
in the event pipeline.
"""

from __future__ import annotations

import numpy as np

from .array import make_events

DIRECTIONS = ("right", "left", "down", "up")


def _render(width: int, height: int, centre: tuple[float, float], side: float) -> np.ndarray:
    """Intensity image ``[H, W]`` in (0, 1]: a soft-edged square on a dark background."""
    ys, xs = np.mgrid[0:height, 0:width].astype(np.float64)
    dx = np.abs(xs - centre[0]) - side / 2
    dy = np.abs(ys - centre[1]) - side / 2
    inside = 1.0 / (1.0 + np.exp(4.0 * np.maximum(dx, dy)))
    return 0.05 + 0.95 * inside


def moving_square_recording(
    label: int,
    rng: np.random.Generator,
    sensor: tuple[int, int] = (34, 34),
    duration_us: int = 300_000,
    n_render: int = 60,
    contrast: float = 0.2,
    noise_events: int = 50,
) -> np.ndarray:
    """One recording of a square moving in direction ``DIRECTIONS[label]``.

    Returns a time-sorted event array (x, y, t in us, p).
    """
    width, height = sensor
    side = rng.uniform(6, 10)
    lateral = rng.uniform(side, (height if label < 2 else width) - side)
    span = (width if label < 2 else height) + side
    path = np.linspace(-side / 2, span - side / 2, n_render)
    if label in (1, 3):
        path = path[::-1]
    memory = np.log(_render(width, height, (-100.0, -100.0), side))
    dt = duration_us / n_render
    xs, ys, ts, ps = [], [], [], []
    for k, pos in enumerate(path):
        centre = (pos, lateral) if label < 2 else (lateral, pos)
        log_i = np.log(_render(width, height, centre, side))
        steps = np.trunc((log_i - memory) / contrast).astype(np.int64)
        memory += steps * contrast
        yy, xx = np.nonzero(steps)
        counts = np.abs(steps[yy, xx])
        xs.append(np.repeat(xx, counts))
        ys.append(np.repeat(yy, counts))
        ps.append(np.repeat(steps[yy, xx] > 0, counts))
        ts.append(k * dt + rng.uniform(0, dt, counts.sum()))
    xs.append(rng.integers(0, width, noise_events))
    ys.append(rng.integers(0, height, noise_events))
    ps.append(rng.integers(0, 2, noise_events).astype(bool))
    ts.append(rng.uniform(0, duration_us, noise_events))
    t = np.concatenate(ts).astype(np.int64)
    order = np.argsort(t, kind="stable")
    return make_events(
        np.concatenate(xs)[order],
        np.concatenate(ys)[order],
        t[order],
        np.concatenate(ps)[order].astype(np.int8),
    )


def moving_squares(
    n_samples: int = 32, sensor: tuple[int, int] = (34, 34), seed: int = 0
) -> tuple[list[np.ndarray], np.ndarray]:
    """``n_samples`` recordings, labels cycling through the four directions.

    Returns ``(recordings, labels)``; the sensor size is ``(W, H, 2)`` with
    ``(W, H) = sensor``.
    """
    rng = np.random.default_rng(seed)
    labels = np.arange(n_samples) % len(DIRECTIONS)
    return [moving_square_recording(int(k), rng, sensor) for k in labels], labels
