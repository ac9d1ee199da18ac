"""numba kernels of the event pipeline: frame boundaries, framing with fused checks, denoising.

Framing runs in two steps. :func:`frame_bounds` turns each recording into
``T + 1`` event indices ``bounds[s, 0] <= ... <= bounds[s, T]``: frame ``k``
of recording ``s`` holds events ``bounds[s, k]:bounds[s, k + 1]``. Count
splits are arithmetic; time splits and fixed windows binary-search the sorted
timestamps for each frame's first event, so no event needs a 64-bit division.
:func:`accumulate_frames` then walks each frame's event range (in parallel
over all frames of all recordings; frames never share output) and adds one to
a float32 counter per event (exact; see :func:`accumulate_frames`), checking
every event on the way (coordinates inside the sensor, polarity 0/1,
timestamps non-decreasing). Bad events are never written: the kernel reports
the first one and the caller raises. :func:`accumulate_frames_serial` is the
same on the calling thread, for inputs too small to pay for thread start-up.

Event fields arrive as (possibly strided) 1-d views of a structured event
array; numba compiles one specialisation per field dtype and caches it on disk.
"""

from __future__ import annotations

import numpy as np
from numba import njit, prange

MODE_COUNT = 0  # N // T events per frame, the remainder in the last frame
MODE_TIME = 1  # T equal time bins over [t_first, t_last], the last one closed
MODE_WINDOW = 2  # frames of fixed duration from t_first

# Timestamp memory value meaning "this pixel never fired" (far enough from any
# real timestamp that subtracting it from one cannot overflow int64).
_NEVER = -(2**62)


@njit(cache=True, nogil=True, inline="always")
def _lower_bound(t, lo, hi, value):
    """First index ``i`` in ``[lo, hi)`` with ``t[i] >= value`` (``hi`` if none); ``t`` sorted."""
    while lo < hi:
        mid = (lo + hi) >> 1
        if t[mid] < value:
            lo = mid + 1
        else:
            hi = mid
    return lo


@njit(cache=True, nogil=True)
def frame_bounds(t, offsets, n_frames, mode, window, bounds):
    """Fill ``bounds[s, 0..n_frames]`` (int64, shape ``[S, n_frames + 1]``) for each recording.

    Recording ``s`` is events ``offsets[s]:offsets[s + 1]`` (``offsets`` int64,
    shape ``[S + 1]``). Frame ``k`` starts at the first event with

    * ``MODE_COUNT``: index ``start + k * (n // n_frames)`` (the last frame also
      takes the remainder);
    * ``MODE_TIME``: ``(t - t0) * n_frames // (t1 - t0 + 1) >= k``, i.e.
      ``t >= t0 + ceil(k * (t1 - t0 + 1) / n_frames)``;
    * ``MODE_WINDOW``: ``t >= t0 + k * window`` (``window`` in us).

    ``t0, t1`` are the recording's first and last timestamps. Each search
    starts at the previous frame's start, so ``bounds`` is non-decreasing and
    ends at ``offsets[s + 1]`` even for unsorted input (which the framing
    kernel then reports).
    """
    for s in range(offsets.shape[0] - 1):
        start = offsets[s]
        end = offsets[s + 1]
        n = end - start
        bounds[s, 0] = start
        bounds[s, n_frames] = end
        if mode == MODE_COUNT:
            per_frame = n // n_frames
            for k in range(1, n_frames):
                bounds[s, k] = start + k * per_frame
        elif n == 0:
            for k in range(1, n_frames):
                bounds[s, k] = start
        else:
            t0 = t[start]
            span = t[end - 1] - t0 + 1
            lo = start
            for k in range(1, n_frames):
                if mode == MODE_TIME:
                    edge = t0 + (k * span + n_frames - 1) // n_frames
                else:
                    edge = t0 + k * window
                lo = _lower_bound(t, lo, end, edge)
                bounds[s, k] = lo


# Below this many events a frame counts straight into its float32 output row:
# float32 holds every integer count up to 2**24 exactly.
_FLOAT_EXACT = 2**24


@njit(cache=True, nogil=True, inline="always")
def _count_range(x, y, t, p, lo, hi, prev, width, height, row):
    """Add 1 to ``row[(p * H + y) * W + x]`` per good event in ``lo:hi``; first bad index or -1."""
    w = np.uint64(width)
    h = np.uint64(height)
    one = np.uint64(1)
    bad = -1
    for i in range(lo, hi):
        # unsigned views: a negative coordinate becomes huge and fails "< size"
        xi = np.uint64(np.int64(x[i]))
        yi = np.uint64(np.int64(y[i]))
        pi = np.uint64(np.int64(p[i]))
        ti = t[i]
        ok = (xi < w) & (yi < h) & (pi <= one) & (ti >= prev)
        prev = ti
        if ok:
            row[(pi * h + yi) * w + xi] += 1
        elif bad < 0:
            bad = i
    return bad


@njit(cache=True, nogil=True, inline="always")
def _frame_job(x, y, t, p, bounds, width, height, out, job):
    """Count frame ``job`` (= recording * T + frame) into ``out[job]``; first bad index or -1."""
    n_frames = bounds.shape[1] - 1
    s = job // n_frames
    k = job - s * n_frames
    lo = bounds[s, k]
    hi = bounds[s, k + 1]
    prev = t[lo - 1] if lo > bounds[s, 0] else t[lo] if lo < hi else 0
    row = out[job]
    row[:] = 0.0
    if hi - lo < _FLOAT_EXACT:
        return _count_range(x, y, t, p, lo, hi, prev, width, height, row)
    exact = np.zeros(row.shape[0], dtype=np.int64)
    bad = _count_range(x, y, t, p, lo, hi, prev, width, height, exact)
    row[:] = exact
    return bad


@njit(cache=True, nogil=True, inline="always")
def _first(first_bad):
    result = -1
    for job in range(first_bad.shape[0]):
        if first_bad[job] >= 0 and (result < 0 or first_bad[job] < result):
            result = first_bad[job]
    return result


@njit(cache=True, nogil=True, parallel=True)
def accumulate_frames(x, y, t, p, bounds, width, height, out):
    """Count events per (frame, polarity, pixel); return the index of the first bad event or -1.

    Args:
        x, y, t, p: event fields, 1-d, length N (t in us).
        bounds: int64 ``[S, T + 1]`` from :func:`frame_bounds`.
        width, height: sensor size in pixels.
        out: float32 ``[S * T, 2 * H * W]`` (any content; every row is
            overwritten); row ``s * T + k`` is frame ``k`` of recording ``s``
            laid out as ``[2, H, W]``.

    Runs in parallel over the ``S * T`` frames. An event is bad when ``x`` or
    ``y`` lies outside the sensor, ``p`` is not 0 or 1, or its timestamp is
    smaller than its predecessor's within the same recording. Bad events are
    skipped, never written. Counts are exact: a frame with ``2**24`` events or
    more counts in int64 first.
    """
    n_jobs = bounds.shape[0] * (bounds.shape[1] - 1)
    first_bad = np.empty(n_jobs, dtype=np.int64)
    for job in prange(n_jobs):
        first_bad[job] = _frame_job(x, y, t, p, bounds, width, height, out, job)
    return _first(first_bad)


@njit(cache=True, nogil=True)
def accumulate_frames_serial(x, y, t, p, bounds, width, height, out):
    """:func:`accumulate_frames` on the calling thread (no thread start-up: small inputs)."""
    n_jobs = bounds.shape[0] * (bounds.shape[1] - 1)
    first_bad = np.empty(n_jobs, dtype=np.int64)
    for job in range(n_jobs):
        first_bad[job] = _frame_job(x, y, t, p, bounds, width, height, out, job)
    return _first(first_bad)


@njit(cache=True, nogil=True)
def first_bad_event(x, y, t, p, width, height):
    """Index of the first event that fails the framing checks (see above), or -1; one pass."""
    prev = t[0] if t.shape[0] else 0
    for i in range(t.shape[0]):
        xi = np.int64(x[i])
        yi = np.int64(y[i])
        pi = np.int64(p[i])
        ti = t[i]
        if not (
            (xi >= 0)
            & (xi < width)
            & (yi >= 0)
            & (yi < height)
            & (pi >= 0)
            & (pi <= 1)
            & (ti >= prev)
        ):
            return i
        prev = ti
    return -1


@njit(cache=True, nogil=True)
def denoise_mask(x, y, t, width, height, filter_time):
    """Background-activity filter: ``keep[i]`` is True when an 8-neighbour fired recently.

    Event ``i`` at ``(x, y, t)`` is kept iff some earlier event ``j < i`` (stream
    order) at one of the 8 pixels with ``max(|dx|, |dy|) == 1`` has
    ``t[i] - t[j] < filter_time``. Every event, kept or not, updates its own
    pixel's last timestamp; the event's own pixel never counts. Coordinates
    must lie inside ``width x height`` (checked by the caller).
    """
    last = np.full((height + 2, width + 2), _NEVER, dtype=np.int64)
    keep = np.zeros(t.shape[0], dtype=np.bool_)
    for i in range(t.shape[0]):
        xi = np.int64(x[i]) + 1
        yi = np.int64(y[i]) + 1
        ti = t[i]
        newest = max(
            max(
                max(last[yi - 1, xi - 1], last[yi - 1, xi]),
                max(last[yi - 1, xi + 1], last[yi, xi - 1]),
            ),
            max(
                max(last[yi, xi + 1], last[yi + 1, xi - 1]),
                max(last[yi + 1, xi], last[yi + 1, xi + 1]),
            ),
        )
        keep[i] = ti - newest < filter_time
        last[yi, xi] = ti
    return keep
