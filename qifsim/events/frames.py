"""Event framing: per-polarity event counts in ``[T, 2, H, W]`` float32 frames.

Three ways to cut a recording into frames (FORMATS.md):

* ``split_by="count"``: N events into ``n_frames`` frames of ``N // n_frames``
  events each, the remainder goes to the last frame;
* ``split_by="time"``: ``n_frames`` equal time bins over ``[t_first, t_last]``
  (the last bin is closed): event ``t`` goes to frame
  ``(t - t_first) * n_frames // (t_last - t_first + 1)``; empty bins are zeros;
* ``time_window_us=W``: frames of fixed duration ``W`` us starting at
  ``t_first``: event ``t`` goes to frame ``(t - t_first) // W``. The number of
  frames is derived, ``ceil((t_last - t_first + 1) / W)`` (the recording spans
  ``t_last - t_first + 1`` microseconds, both ends included); the last window
  may be partial and is kept. An empty recording gives zero frames.

No event is dropped: each frame stack sums to the number of events, per
polarity, and an event outside the sensor (or with polarity not 0/1, or out
of time order) raises ``ValueError`` instead of being clipped.

``normalize="max"`` (TET-style) divides each frame ``[2, H, W]`` by its
largest count, so every non-empty frame peaks at 1.0; empty frames stay zero.

Two implementations give bit-identical results: :func:`to_frames_reference`
(plain numpy ``bincount``, the reference) and the numba kernels of
:mod:`qifsim.events.kernels` (``impl="numba"``, the default), which fuse the
event checks into the counting pass and run in parallel over frames from
``PARALLEL_MIN_EVENTS`` events on, on numba's threads (``numba.set_num_threads``;
with 1 thread, or on a machine whose cores are busy with other work, the serial
kernel is the faster choice: a parallel region waits for its slowest thread).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from .array import validate_events

SPLITS = ("count", "time")
IMPLS = ("auto", "numba", "numpy")
NORMALIZATIONS = (None, "max")
DEFAULT_N_FRAMES = 10
# Fewer events than this are framed on the calling thread: starting numba's
# worker threads costs more than the counting itself.
PARALLEL_MIN_EVENTS = 1 << 17


def _resolve(
    n_frames: int | None, split_by: str | None, time_window_us: int | None
) -> tuple[str, int | None]:
    """Check the framing arguments; return ``(mode, n_frames)`` with mode count/time/window."""
    if time_window_us is not None:
        if isinstance(time_window_us, bool) or not isinstance(time_window_us, (int, np.integer)):
            raise ValueError(f"time_window_us must be an integer >= 1, got {time_window_us!r}")
        if time_window_us < 1:
            raise ValueError(f"time_window_us must be an integer >= 1, got {time_window_us!r}")
        if n_frames is not None:
            raise ValueError("time_window_us derives the number of frames; leave n_frames unset")
        if split_by not in (None, "time"):
            raise ValueError(f"time_window_us slices by time; got split_by={split_by!r}")
        return "window", None
    n_frames = DEFAULT_N_FRAMES if n_frames is None else n_frames
    split_by = "count" if split_by is None else split_by
    if isinstance(n_frames, bool) or not isinstance(n_frames, (int, np.integer)) or n_frames < 1:
        raise ValueError(f"n_frames must be an integer >= 1, got {n_frames!r}")
    if split_by not in SPLITS:
        raise ValueError(f"split_by must be one of {SPLITS}, got {split_by!r}")
    return split_by, int(n_frames)


def _check_options(normalize: str | None, impl: str) -> None:
    if normalize not in NORMALIZATIONS:
        raise ValueError(f"normalize must be one of {NORMALIZATIONS}, got {normalize!r}")
    if impl not in IMPLS:
        raise ValueError(f"impl must be one of {IMPLS}, got {impl!r}")


def window_count(events: np.ndarray, time_window_us: int) -> int:
    """Number of fixed windows of ``time_window_us`` us covering a sorted recording (0 if empty)."""
    if events.size == 0:
        return 0
    return (int(events["t"][-1]) - int(events["t"][0])) // int(time_window_us) + 1


def frame_index(
    events: np.ndarray,
    n_frames: int | None,
    split_by: str | None,
    time_window_us: int | None = None,
) -> np.ndarray:
    """Frame number of every event (int64, shape ``[N]``) under the module's conventions."""
    mode, n_frames = _resolve(n_frames, split_by, time_window_us)
    n = events.shape[0]
    if mode == "window":
        if n == 0:
            return np.zeros(0, dtype=np.int64)
        t = events["t"].astype(np.int64)
        return (t - t[0]) // int(time_window_us)
    if mode == "count":
        per_frame = n // n_frames
        if per_frame == 0:
            return np.full(n, n_frames - 1, dtype=np.int64)
        return np.minimum(np.arange(n, dtype=np.int64) // per_frame, n_frames - 1)
    t = events["t"]
    t0, t1 = int(t[0]), int(t[-1])
    if t1 == t0:
        return np.zeros(n, dtype=np.int64)
    index = ((t - t0) * n_frames) // (t1 - t0 + 1)
    return index.astype(np.int64)


def normalize_frames(frames: np.ndarray, normalize: str | None) -> np.ndarray:
    """Apply ``normalize`` in place to float32 frames ``[..., T, 2, H, W]``; return them."""
    if normalize == "max" and frames.size:
        per_frame = frames.reshape(*frames.shape[:-3], -1)
        peak = per_frame.max(axis=-1, keepdims=True)
        np.divide(per_frame, peak, out=per_frame, where=peak > 0)
    return frames


def to_frames_reference(
    events: np.ndarray,
    sensor_size: tuple[int, int, int],
    n_frames: int | None = None,
    split_by: str | None = None,
    *,
    time_window_us: int | None = None,
    normalize: str | None = None,
) -> np.ndarray:
    """numpy ``bincount`` reference of :func:`to_frames` (same arguments, same result)."""
    mode, n_frames = _resolve(n_frames, split_by, time_window_us)
    _check_options(normalize, "numpy")
    validate_events(events, sensor_size)
    if mode == "window":
        n_frames = window_count(events, time_window_us)
    width, height, _ = sensor_size
    frames = np.zeros((n_frames, 2, height, width), dtype=np.float32)
    if events.size == 0:
        return frames
    frame = frame_index(events, n_frames if mode != "window" else None, split_by, time_window_us)
    flat = ((frame * 2 + events["p"].astype(np.int64)) * height + events["y"]) * width + events["x"]
    counts = np.bincount(flat, minlength=frames.size)
    frames.reshape(-1)[:] = counts
    return normalize_frames(frames, normalize)


def _fields(events: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """The x, y, t, p views the kernels read (bool polarity viewed as int8, t as int64)."""
    p = events["p"]
    if p.dtype == np.bool_:
        p = p.view(np.int8)
    t = events["t"]
    if t.dtype != np.int64:
        t = t.astype(np.int64)
    return events["x"], events["y"], t, p


def _count_numba(
    events: np.ndarray,
    offsets: np.ndarray,
    sensor_size: tuple[int, int, int],
    mode: str,
    n_frames: int,
    time_window_us: int | None,
    on_bad,
) -> np.ndarray:
    """Frames ``[S, T, 2, H, W]`` float32 of the recordings ``events[offsets[s]:offsets[s+1]]``."""
    import numba

    from . import kernels

    width, height, _ = sensor_size
    x, y, t, p = _fields(events)
    code = {"count": kernels.MODE_COUNT, "time": kernels.MODE_TIME, "window": kernels.MODE_WINDOW}
    n_rec = offsets.shape[0] - 1
    bounds = np.empty((n_rec, n_frames + 1), dtype=np.int64)
    kernels.frame_bounds(t, offsets, n_frames, code[mode], int(time_window_us or 0), bounds)
    frames = np.empty((n_rec * n_frames, 2 * height * width), dtype=np.float32)
    serial = events.shape[0] < PARALLEL_MIN_EVENTS or numba.get_num_threads() == 1
    accumulate = kernels.accumulate_frames_serial if serial else kernels.accumulate_frames
    bad = accumulate(x, y, t, p, bounds, width, height, frames)
    if bad >= 0:
        on_bad(int(bad))
    return frames.reshape(n_rec, n_frames, 2, height, width)


def _concatenate(recordings: Sequence[np.ndarray]) -> np.ndarray:
    """One event array from many of one dtype (contiguous ones joined as raw bytes: numpy copies
    structured arrays field by field, several times slower)."""
    if all(r.flags.c_contiguous and r.ndim == 1 for r in recordings):
        joined = np.concatenate([r.view(np.uint8) for r in recordings])
        return joined.view(recordings[0].dtype)
    return np.concatenate(recordings)


def _raise_for(events: np.ndarray, sensor_size: tuple[int, int, int], index: int) -> None:
    """Raise the reference validator's message for a recording with a bad event."""
    validate_events(events, sensor_size)
    raise ValueError(f"event {index} fails the framing checks")  # pragma: no cover


def to_frames(
    events: np.ndarray,
    sensor_size: tuple[int, int, int],
    n_frames: int | None = None,
    split_by: str | None = None,
    impl: str = "auto",
    *,
    time_window_us: int | None = None,
    normalize: str | None = None,
) -> np.ndarray:
    """Bin events into frames of per-polarity counts.

    Args:
        events: structured event array (x, y, t in us, p), sorted by ``t``.
        sensor_size: ``(W, H, 2)``.
        n_frames: number of frames ``T`` (>= 1); default 10. Must be left
            unset with ``time_window_us``.
        split_by: ``"count"`` (default) or ``"time"`` (see module docstring).
        impl: ``"numba"`` (fused kernel), ``"numpy"`` (the reference) or
            ``"auto"`` (numba). Results are bit-identical.
        time_window_us: fixed frame duration in us; the number of frames is
            ``ceil((t_last - t_first + 1) / time_window_us)``.
        normalize: ``None`` (counts) or ``"max"`` (each frame divided by its max).

    Returns:
        float32 array ``[T, 2, H, W]``; channel 0 = OFF, 1 = ON.

    Raises:
        ValueError: on bad arguments or an invalid event array (fields,
            unsorted timestamps, coordinates outside the sensor, polarity).
    """
    mode, n_frames = _resolve(n_frames, split_by, time_window_us)
    _check_options(normalize, impl)
    if impl == "numpy":
        return to_frames_reference(
            events,
            sensor_size,
            n_frames,
            split_by,
            time_window_us=time_window_us,
            normalize=normalize,
        )
    validate_events(events[:0] if isinstance(events, np.ndarray) else events, sensor_size)
    n = events.shape[0]
    if mode == "window":
        from . import kernels

        x, y, t, p = _fields(events)
        if n and kernels.first_bad_event(x, y, t, p, sensor_size[0], sensor_size[1]) >= 0:
            _raise_for(events, sensor_size, -1)
        n_frames = window_count(events, time_window_us)
    offsets = np.array([0, n], dtype=np.int64)
    frames = _count_numba(
        events,
        offsets,
        sensor_size,
        mode,
        n_frames,
        time_window_us,
        lambda i: _raise_for(events, sensor_size, i),
    )[0]
    return normalize_frames(frames, normalize)


def frames_batch(
    recordings: Sequence[np.ndarray],
    sensor_size: tuple[int, int, int],
    n_frames: int | None = None,
    split_by: str | None = None,
    impl: str = "auto",
    *,
    normalize: str | None = None,
) -> np.ndarray:
    """Frame many recordings at once: float32 ``[N, T, 2, H, W]``.

    Same conventions as :func:`to_frames` applied to each recording on its
    own (``frames_batch(r, ...)[i] == to_frames(r[i], ...)`` exactly). The
    numba path concatenates the recordings and counts all ``N * T`` frames in
    one parallel kernel call. Fixed time windows are not offered here (their
    frame count differs per recording).

    Raises:
        ValueError: as :func:`to_frames`, naming the recording at fault.
    """
    mode, n_frames = _resolve(n_frames, split_by, None)
    _check_options(normalize, impl)
    width, height, _ = sensor_size
    if impl == "numpy" or len(recordings) == 0:
        out = np.zeros((len(recordings), n_frames, 2, height, width), dtype=np.float32)
        for i, events in enumerate(recordings):
            out[i] = to_frames_reference(events, sensor_size, n_frames, mode)
        return normalize_frames(out, normalize)
    for events in recordings:
        validate_events(events[:0] if isinstance(events, np.ndarray) else events, sensor_size)
    lengths = np.array([r.shape[0] for r in recordings], dtype=np.int64)
    offsets = np.concatenate([[0], np.cumsum(lengths)]).astype(np.int64)
    dtypes = {r.dtype for r in recordings}
    if len(dtypes) != 1:
        raise ValueError(
            f"all recordings must share one event dtype, got {sorted(map(str, dtypes))}"
        )
    events = _concatenate(recordings)

    def on_bad(index: int) -> None:
        which = int(np.searchsorted(offsets, index, side="right")) - 1
        try:
            validate_events(recordings[which], sensor_size)
        except ValueError as err:
            raise ValueError(f"recording {which}: {err}") from None
        raise ValueError(f"recording {which} fails the framing checks")  # pragma: no cover

    out = _count_numba(events, offsets, sensor_size, mode, n_frames, None, on_bad)
    return normalize_frames(out, normalize)
