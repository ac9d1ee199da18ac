"""Event-camera emulation: images and videos to DVS event streams.

Pixel model (:func:`emulate_video`), per pixel:

* log intensity ``L = log(I + eps)`` with ``I`` in ``[0, 1]`` and
  ``eps = 0.01`` by default (:data:`DEFAULT_EPS`): keeps ``log`` finite on
  black and caps the contrast a pixel can see at ``log(1.01 / 0.01) ~ 4.6``,
  like a screen's black level (about 100:1);
* the pixel memorises a log intensity ``M`` (initially ``L`` of the first
  frame). Whenever ``L - M >= C_on`` it emits an ON event (``p = 1``) and
  ``M += C_on``; whenever ``L - M <= -C_off`` an OFF event (``p = 0``) and
  ``M -= C_off``: one event per threshold crossing;
* between two video frames ``L`` is assumed linear in time, so crossing
  ``k`` happens at ``t = t0 + (M_k - L0) / (L1 - L0) * (t1 - t0)`` (float
  microseconds, rounded to the nearest integer microsecond on output);
* threshold mismatch: every pixel has its own ``C_on`` and ``C_off``, drawn
  independently from ``N(contrast, contrast_sigma)`` and clipped to at least
  :data:`MIN_CONTRAST` (0.01), once per sensor from the seed
  (:func:`draw_thresholds`);
* refractory period: a crossing less than ``refractory_us`` after the pixel's
  last *emitted* event is suppressed (no event), but the memory still moves by
  ``+-C`` for it: the crossing is consumed, only the event is lost, so the
  pixel does not burst after the refractory period ends. A suppressed crossing
  does not restart the refractory period;
* noise: shot-noise events, Poisson with ``noise_rate_hz`` per pixel per
  second over ``[t_first, t_last]`` of the video, uniform in time, polarity
  ON/OFF with probability 1/2 each; they do not touch the pixel memory.

Output events are sorted by ``t`` (stable: ties keep signal events in pixel
order ``y``, ``x``, then noise events). The per-pixel loop over frames is a
numba kernel, ``prange`` over pixels (two passes: count, then fill, so the
output does not depend on the thread count); small videos run on one thread
(:data:`PARALLEL_MIN_WORK`).

Recording motions, returning ``(frames [F, H, W], timestamps_us [F])``:

* :func:`saccade_video` (N-MNIST-like): the image is centred on the sensor
  and moved by three saccades tracing a triangle with vertices
  ``amplitude * (-1, +1), (+1, +1), (0, -1)`` pixels ``(dx, dy)`` from the
  centred position (x right, y down; ``amplitude = 2`` by default, so the
  triangle is 4 px wide and 4 px tall), one saccade per third of the
  recording, with a raised-cosine (ease-in, ease-out) position profile;
  sub-pixel shifts by bilinear interpolation, background 0;
* :func:`lcd_loop_video` (CIFAR10-DVS-like): the image, upscaled to fill the
  sensor, moves along a circle of radius ``amplitude`` pixels, one turn per
  ``loop_period_us``, repeated; the LCD shows a new position only at its
  60 Hz refresh instants and each change takes ``response_us`` (a linear
  ramp of the log intensity), so event times cluster on the refresh grid.

Images are grayscale ``[h, w]`` or RGB ``[h, w, 3]`` (converted to luminance
``0.299 R + 0.587 G + 0.114 B``) with values in ``[0, 1]``. Sensor sizes are
``(W, H)`` as elsewhere in :mod:`qifsim.events`.
"""

from __future__ import annotations

import math

import numba
import numpy as np
from numba import njit, prange

from .array import EVENT_DTYPE

DEFAULT_EPS = 0.01
"""Offset in ``log(I + eps)`` (intensity units, ``I`` in ``[0, 1]``)."""

MIN_CONTRAST = 0.01
"""Smallest per-pixel contrast threshold after mismatch (log-intensity units)."""

MOTIONS = ("saccades", "lcd-loop")

LCD_REFRESH_HZ = 60.0

PARALLEL_MIN_WORK = 1_000_000
"""Pixel-frames (``H * W * F``) below which the pixel kernels run on one thread: a
34x34 sensor over 300 frames is faster serial, and much faster on a busy machine."""

_SACCADE_TRIANGLE = np.array([(-1.0, 1.0), (1.0, 1.0), (0.0, -1.0)])


# --------------------------------------------------------------------------- pixel model


@njit(inline="always", cache=True)
def _run_pixel(log_i, t, c_on, c_off, refractory, out_t, out_p, start, write):
    """Simulate one pixel over ``F`` frames; returns its number of events.

    ``log_i``, ``t``: ``[F]`` float64 (log intensity, us). Writes events at
    ``out_t[start:]``, ``out_p[start:]`` when ``write`` is true.
    """
    memory = log_i[0]
    last = -math.inf
    n = 0
    for k in range(log_i.shape[0] - 1):
        l0 = log_i[k]
        l1 = log_i[k + 1]
        d = l1 - l0
        if d == 0.0:
            continue
        t0 = t[k]
        span = t[k + 1] - t0
        if d > 0.0:
            while l1 - memory >= c_on:
                memory += c_on
                tc = t0 + (memory - l0) / d * span
                if tc - last >= refractory:
                    if write:
                        out_t[start + n] = tc
                        out_p[start + n] = 1
                    n += 1
                    last = tc
        else:
            while l1 - memory <= -c_off:
                memory -= c_off
                tc = t0 + (memory - l0) / d * span
                if tc - last >= refractory:
                    if write:
                        out_t[start + n] = tc
                        out_p[start + n] = 0
                    n += 1
                    last = tc
    return n


@njit(parallel=True, cache=True)
def _count_events(log_i, t, c_on, c_off, refractory):
    """Events per pixel (int64 ``[P]``) for ``log_i [P, F]``."""
    n_pix = log_i.shape[0]
    counts = np.zeros(n_pix, dtype=np.int64)
    dummy_t = np.zeros(0, dtype=np.float64)
    dummy_p = np.zeros(0, dtype=np.int8)
    for i in prange(n_pix):
        counts[i] = _run_pixel(
            log_i[i], t, c_on[i], c_off[i], refractory, dummy_t, dummy_p, 0, False
        )
    return counts


@njit(parallel=True, cache=True)
def _fill_events(log_i, t, c_on, c_off, refractory, starts, out_t, out_p):
    """Write every pixel's events at ``starts[i]`` (from :func:`_count_events`)."""
    for i in prange(log_i.shape[0]):
        _run_pixel(log_i[i], t, c_on[i], c_off[i], refractory, out_t, out_p, starts[i], True)


def _pixel_events(
    log_i: np.ndarray, t: np.ndarray, c_on: np.ndarray, c_off: np.ndarray, refractory_us: float
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Run the pixel model on ``log_i [P, F]``.

    Returns ``(pixel [N] int64, t [N] float64 us, p [N] int8)`` in pixel order,
    each pixel's events in time order.
    """
    threads = numba.get_num_threads()
    if log_i.size < PARALLEL_MIN_WORK:
        numba.set_num_threads(1)
    try:
        counts = _count_events(log_i, t, c_on, c_off, float(refractory_us))
        starts = np.zeros_like(counts)
        np.cumsum(counts[:-1], out=starts[1:])
        total = int(counts.sum())
        out_t = np.empty(total, dtype=np.float64)
        out_p = np.empty(total, dtype=np.int8)
        _fill_events(log_i, t, c_on, c_off, float(refractory_us), starts, out_t, out_p)
    finally:
        numba.set_num_threads(threads)
    pixel = np.repeat(np.arange(log_i.shape[0], dtype=np.int64), counts)
    return pixel, out_t, out_p


def draw_thresholds(
    shape: tuple[int, int],
    contrast: float = 0.2,
    contrast_sigma: float = 0.03,
    seed: int | np.random.SeedSequence = 0,
) -> np.ndarray:
    """Per-pixel ON and OFF contrast thresholds of one sensor.

    Args:
        shape: ``(H, W)`` pixels.
        contrast: mean threshold ``C`` (log-intensity units, > 0).
        contrast_sigma: standard deviation of the mismatch (>= 0; 0 gives
            every pixel exactly ``contrast``).
        seed: the sensor's seed (the same stream :func:`emulate_video` uses).

    Returns:
        float64 ``[2, H, W]``: ``[0]`` = ON thresholds, ``[1]`` = OFF
        thresholds, each ``>= MIN_CONTRAST``.
    """
    if not contrast > 0:
        raise ValueError(f"contrast must be > 0, got {contrast}")
    if not contrast_sigma >= 0:
        raise ValueError(f"contrast_sigma must be >= 0, got {contrast_sigma}")
    rng = np.random.default_rng(_streams(seed)[0])
    c = contrast + contrast_sigma * rng.standard_normal((2, *shape))
    return np.maximum(c, MIN_CONTRAST)


def _streams(seed: int | np.random.SeedSequence) -> list[np.random.SeedSequence]:
    """Two independent child streams of a seed, ``[thresholds, noise]`` (stateless)."""
    seq = seed if isinstance(seed, np.random.SeedSequence) else np.random.SeedSequence(seed)
    return [np.random.SeedSequence(seq.entropy, spawn_key=(*seq.spawn_key, k)) for k in (0, 1)]


def _noise_events(
    shape: tuple[int, int], t0: float, t1: float, rate_hz: float, seed
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Poisson shot noise: ``(pixel, t, p)`` with ``rate_hz`` per pixel per second."""
    rng = np.random.default_rng(seed)
    n_pix = shape[0] * shape[1]
    n = int(rng.poisson(rate_hz * n_pix * (t1 - t0) * 1e-6)) if rate_hz > 0 else 0
    pixel = rng.integers(0, n_pix, n)
    t = rng.uniform(t0, t1, n)
    p = rng.integers(0, 2, n).astype(np.int8)
    return pixel, t, p


def emulate_video(
    frames: np.ndarray,
    timestamps_us: np.ndarray,
    contrast: float = 0.2,
    contrast_sigma: float = 0.03,
    refractory_us: float = 1000,
    noise_rate_hz: float = 0.0,
    seed: int | np.random.SeedSequence = 0,
    *,
    eps: float = DEFAULT_EPS,
    thresholds: np.ndarray | None = None,
) -> np.ndarray:
    """Turn a video into DVS events (pixel model in the module docstring).

    Args:
        frames: intensities ``[F, H, W]`` in ``[0, 1]`` (F >= 1).
        timestamps_us: frame times ``[F]`` in microseconds, non-decreasing
            (two equal times make a step change, all its crossings at that time).
        contrast: mean contrast threshold ``C`` (log-intensity units).
        contrast_sigma: per-pixel threshold mismatch (standard deviation).
        refractory_us: refractory period in microseconds (>= 0).
        noise_rate_hz: shot-noise events per pixel per second (>= 0).
        seed: seeds the sensor's thresholds and, independently, the noise.
        eps: offset in ``log(I + eps)`` (> 0).
        thresholds: optional ``[2, H, W]`` ON/OFF thresholds (from
            :func:`draw_thresholds`); overrides ``contrast`` and ``contrast_sigma``.

    Returns:
        Event array (:data:`EVENT_DTYPE`) sorted by ``t`` (stable), x in ``[0, W)``,
        y in ``[0, H)``.
    """
    frames = np.asarray(frames, dtype=np.float64)
    t = np.asarray(timestamps_us, dtype=np.float64)
    if frames.ndim != 3 or frames.shape[0] < 1:
        raise ValueError(f"frames must be [F, H, W] with F >= 1, got shape {frames.shape}")
    n_frames, height, width = frames.shape
    if t.shape != (n_frames,):
        raise ValueError(f"timestamps_us must have shape ({n_frames},), got {t.shape}")
    if np.any(np.diff(t) < 0):
        raise ValueError("timestamps_us must be non-decreasing")
    if not eps > 0:
        raise ValueError(f"eps must be > 0, got {eps}")
    if refractory_us < 0 or noise_rate_hz < 0:
        raise ValueError("refractory_us and noise_rate_hz must be >= 0")
    if np.any(frames < 0):
        raise ValueError("intensities must be >= 0")
    if thresholds is None:
        thresholds = draw_thresholds((height, width), contrast, contrast_sigma, seed)
    thresholds = np.asarray(thresholds, dtype=np.float64)
    if thresholds.shape != (2, height, width) or np.any(thresholds <= 0):
        raise ValueError(f"thresholds must be positive with shape (2, {height}, {width})")
    log_i = np.ascontiguousarray(np.log(frames + eps).reshape(n_frames, -1).T)
    pixel, times, pol = _pixel_events(
        log_i, t, thresholds[0].ravel(), thresholds[1].ravel(), refractory_us
    )
    if noise_rate_hz > 0 and n_frames > 1:
        noise = _noise_events((height, width), t[0], t[-1], noise_rate_hz, _streams(seed)[1])
        pixel, times, pol = (
            np.concatenate(pair) for pair in zip((pixel, times, pol), noise, strict=True)
        )
    t_int = np.rint(times).astype(np.int64)
    order = np.argsort(t_int, kind="stable")
    events = np.empty(order.shape[0], dtype=EVENT_DTYPE)
    events["x"] = pixel[order] % width
    events["y"] = pixel[order] // width
    events["t"] = t_int[order]
    events["p"] = pol[order]
    return events


# --------------------------------------------------------------------------- images and motion


def to_gray(image: np.ndarray) -> np.ndarray:
    """Grayscale float64 ``[h, w]`` from ``[h, w]`` or RGB ``[h, w, 3]`` in ``[0, 1]``."""
    image = np.asarray(image, dtype=np.float64)
    if image.ndim == 3 and image.shape[2] == 3:
        image = image @ np.array([0.299, 0.587, 0.114])
    if image.ndim != 2:
        raise ValueError(f"image must be [h, w] or [h, w, 3], got shape {image.shape}")
    return image


def _resize_weights(n_in: int, n_out: int) -> np.ndarray:
    """Linear-interpolation matrix ``[n_out, n_in]`` with half-pixel centres, edges clamped."""
    src = np.clip((np.arange(n_out) + 0.5) * n_in / n_out - 0.5, 0, n_in - 1)
    i0 = np.floor(src).astype(np.int64)
    i1 = np.minimum(i0 + 1, n_in - 1)
    frac = src - i0
    weights = np.zeros((n_out, n_in))
    np.add.at(weights, (np.arange(n_out), i0), 1 - frac)
    np.add.at(weights, (np.arange(n_out), i1), frac)
    return weights


def resize_bilinear(image: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """Bilinear resize of ``[h, w]`` to ``size = (out_h, out_w)``.

    Pixel centres are aligned (output pixel ``i`` samples input coordinate
    ``(i + 0.5) * h / out_h - 0.5``, the OpenCV / ``align_corners=False``
    convention), clamped at the borders. Returns float64.
    """
    image = to_gray(image)
    out_h, out_w = size
    return _resize_weights(image.shape[0], out_h) @ image @ _resize_weights(image.shape[1], out_w).T


def _shift_weights(n_in: int, n_out: int, origins: np.ndarray) -> np.ndarray:
    """``[F, n_out, n_in]`` linear-interpolation (hat) weights ``max(0, 1 - |X - origin - i|)``.

    Output pixel ``X`` samples input coordinate ``X - origin``; beyond the
    input the weights fall to 0 (the background).
    """
    u = np.arange(n_out)[None, :, None] - origins[:, None, None] - np.arange(n_in)[None, None, :]
    return np.maximum(0.0, 1.0 - np.abs(u))


def place_image(
    image: np.ndarray, sensor: tuple[int, int], offsets: np.ndarray, background: float = 0.0
) -> np.ndarray:
    """Render ``image [h, w]`` centred on a ``sensor = (W, H)``, shifted per frame.

    Args:
        image: intensities ``[h, w]`` (or RGB ``[h, w, 3]``) in ``[0, 1]``.
        sensor: ``(W, H)`` pixels.
        offsets: ``[F, 2]`` sub-pixel shifts ``(dx, dy)`` from the centred
            position (pixels, x right, y down), bilinear interpolation.
        background: intensity outside the image.

    Returns:
        float64 ``[F, H, W]``.
    """
    image = to_gray(image)
    offsets = np.asarray(offsets, dtype=np.float64).reshape(-1, 2)
    width, height = sensor
    h, w = image.shape
    wx = _shift_weights(w, width, (width - w) / 2 + offsets[:, 0])
    wy = _shift_weights(h, height, (height - h) / 2 + offsets[:, 1])
    frames = wy @ image @ wx.transpose(0, 2, 1)
    if background != 0:
        frames += background * (1.0 - wy @ np.ones((h, w)) @ wx.transpose(0, 2, 1))
    return frames


def saccade_offsets(n_frames: int, amplitude: float = 2.0) -> np.ndarray:
    """Triangle-saccade shifts ``[n_frames, 2]`` (pixels) over one recording.

    Frame ``k`` is at phase ``s = 3 k / (n_frames - 1)``; saccade ``j = floor(s)``
    goes from vertex ``j`` to vertex ``j + 1`` (mod 3) of
    ``amplitude * [(-1, 1), (1, 1), (0, -1)]`` with the raised-cosine profile
    ``(1 - cos(pi u)) / 2`` of its fraction ``u``. Starts and ends at vertex 0.
    """
    vertices = amplitude * _SACCADE_TRIANGLE
    s = np.linspace(0.0, 3.0, n_frames) if n_frames > 1 else np.zeros(1)
    j = np.minimum(np.floor(s).astype(np.int64), 2)
    u = (1 - np.cos(np.pi * (s - j))) / 2
    return vertices[j] + u[:, None] * (vertices[(j + 1) % 3] - vertices[j])


def saccade_video(
    image: np.ndarray,
    sensor: tuple[int, int] = (34, 34),
    duration_us: int = 300_000,
    fps: float = 1000.0,
    amplitude: float = 2.0,
    background: float = 0.0,
) -> tuple[np.ndarray, np.ndarray]:
    """N-MNIST-like recording motion: three ~``duration_us / 3`` saccades (a triangle).

    Args:
        image: ``[h, w]`` intensities in ``[0, 1]`` (at most the sensor size
            to stay fully visible), centred on the sensor.
        sensor: ``(W, H)``.
        duration_us: recording length (us).
        fps: rendered frames per second (events are interpolated between them).
        amplitude: triangle half-size in pixels (see :func:`saccade_offsets`).
        background: intensity around the image.

    Returns:
        ``(frames [F, H, W] float64, timestamps_us [F] int64)`` from 0 to
        ``duration_us``, ``F = round(duration_us * fps / 1e6) + 1``.
    """
    n = max(1, round(duration_us * fps * 1e-6))
    timestamps = np.rint(np.arange(n + 1) * (duration_us / n)).astype(np.int64)
    offsets = saccade_offsets(n + 1, amplitude)
    return place_image(image, sensor, offsets, background), timestamps


def lcd_loop_video(
    image: np.ndarray,
    sensor: tuple[int, int] = (128, 128),
    duration_us: int = 1_000_000,
    loop_period_us: int = 250_000,
    amplitude: float = 3.0,
    refresh_hz: float = LCD_REFRESH_HZ,
    response_us: int = 2000,
    size: tuple[int, int] | None = None,
    background: float = 0.0,
) -> tuple[np.ndarray, np.ndarray]:
    """CIFAR10-DVS-like recording motion: a repeated circular loop shown on an LCD.

    The image (upscaled bilinearly to ``size``, by default the largest square
    that stays on the sensor: ``min(W, H) - 2 * ceil(amplitude) - 2``) moves
    along a circle of radius ``amplitude`` pixels, starting at angle 0 (shift
    ``(amplitude, 0)``), one counter-clockwise turn per ``loop_period_us``.
    The display updates only at refresh instants ``k * 1e6 / refresh_hz`` (us,
    rounded); each update ramps linearly over ``response_us``.

    Returns:
        ``(frames [F, H, W] float64, timestamps_us [F] int64)``: the held image
        at 0, then two frames per refresh (before/after the ramp) and a last
        frame at ``duration_us``.
    """
    period = 1e6 / refresh_hz
    if not 0 <= response_us < period:
        raise ValueError(f"response_us must be in [0, {period:.0f}) us, got {response_us}")
    width, height = sensor
    if size is None:
        side = min(width, height) - 2 * math.ceil(amplitude) - 2
        size = (side, side)
    image = resize_bilinear(image, size)
    n_refresh = int(math.floor(duration_us / period))
    refresh_t = np.rint(np.arange(n_refresh + 1) * period).astype(np.int64)
    angle = 2 * np.pi * refresh_t / loop_period_us
    shown = place_image(
        image, sensor, amplitude * np.stack([np.cos(angle), -np.sin(angle)], 1), background
    )
    index = [0] + [i for k in range(1, n_refresh + 1) for i in (k - 1, k)]
    times = [0] + [int(t) + d for t in refresh_t[1:] for d in (0, response_us)]
    if times[-1] < duration_us:
        index.append(n_refresh)
        times.append(duration_us)
    return shown[index], np.asarray(times, dtype=np.int64)


def emulate_image(
    image: np.ndarray,
    motion: str = "saccades",
    *,
    contrast: float = 0.2,
    contrast_sigma: float = 0.03,
    refractory_us: float = 1000,
    noise_rate_hz: float = 0.0,
    seed: int | np.random.SeedSequence = 0,
    eps: float = DEFAULT_EPS,
    thresholds: np.ndarray | None = None,
    **motion_kwargs,
) -> np.ndarray:
    """Record a still image: move it (``"saccades"`` or ``"lcd-loop"``) and emulate a DVS.

    ``motion_kwargs`` go to :func:`saccade_video` or :func:`lcd_loop_video`
    (``sensor``, ``duration_us``, ...); the rest to :func:`emulate_video`.
    Returns the event array (sensor size ``(*sensor, 2)``).
    """
    if motion == "saccades":
        frames, timestamps = saccade_video(image, **motion_kwargs)
    elif motion == "lcd-loop":
        frames, timestamps = lcd_loop_video(image, **motion_kwargs)
    else:
        raise ValueError(f"motion must be one of {MOTIONS}, got {motion!r}")
    return emulate_video(
        frames,
        timestamps,
        contrast,
        contrast_sigma,
        refractory_us,
        noise_rate_hz,
        seed,
        eps=eps,
        thresholds=thresholds,
    )
