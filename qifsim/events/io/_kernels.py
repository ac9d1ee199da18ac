"""Numba decoding loops for the large formats (ATIS ``.bin``, AEDAT 2.0, AEDAT 3.1).

One pass over the raw bytes, writing EVENT_DTYPE records directly; several
times faster than the equivalent chain of numpy operations (each of which
makes a full pass and a temporary). Layouts and conventions are documented
in :mod:`.atis`, :mod:`.aedat2` and :mod:`.aedat31`; these loops implement
exactly those rules. Serial on purpose: safe to call from several threads at
once (``nogil``). Compiled on first use and cached on disk (``cache=True``).
"""

from __future__ import annotations

import numba
import numpy as np

ATIS_MARKER_Y = 240
ATIS_OVERFLOW_STEP = 1 << 13


@numba.njit(cache=True, nogil=True)
def decode_atis(
    raw: np.ndarray, out: np.ndarray, markers: int, drop: bool
) -> tuple[int, int, bool, int, int]:
    """Decode 5-byte ATIS records ``raw`` (uint8, length a multiple of 5) into ``out``.

    ``markers`` is the overflow-marker count before ``raw``. A record with
    ``y > 240`` lies outside the ATIS sensor (rows 0..239; 240 is the marker):
    with ``drop`` it is skipped and counted, else decoding stops there.

    Returns:
        ``(events written, marker count after raw, whether the written t are
        sorted, invalid records met, record index of the first one or -1)``;
        markers are not written.
    """
    n = raw.shape[0] // 5
    j = 0
    prev = np.int64(-1)
    ordered = True
    n_bad = 0
    first_bad = -1
    for i in range(n):
        b = 5 * i
        y = raw[b + 1]
        if y == ATIS_MARKER_Y:
            markers += 1
            continue
        if y > ATIS_MARKER_Y:
            if first_bad < 0:
                first_bad = i
            n_bad += 1
            if not drop:
                break
            continue
        b2 = raw[b + 2]
        t = ((np.int64(b2) & 0x7F) << 16) | (np.int64(raw[b + 3]) << 8) | np.int64(raw[b + 4])
        t += markers * ATIS_OVERFLOW_STEP
        if t < prev:
            ordered = False
        prev = t
        rec = out[j]
        rec.x = raw[b]
        rec.y = y
        rec.t = t
        rec.p = b2 >> 7
        j += 1
    return j, markers, ordered, n_bad, first_bad


@numba.njit(cache=True, nogil=True)
def decode_aedat2(
    raw: np.ndarray,
    out: np.ndarray,
    transposed: bool,
    prev_t: int,
    shift: int,
    stop_on_reset: bool,
) -> tuple[int, int, int, int]:
    """Decode big-endian (address, timestamp) uint32 pairs ``raw`` (uint8) into ``out``.

    Drops special events (address bit 15); repairs timestamp resets by
    shifting later events so time continues from the last timestamp
    (``shift`` carries the total shift, ``prev_t`` the previous kept raw
    timestamp or -1). With ``stop_on_reset`` it stops at the first reset.

    Returns:
        ``(events written, prev_t, shift, record index of the reset that
        stopped it or -1)``.
    """
    n = raw.shape[0] // 8
    j = 0
    for i in range(n):
        b = 8 * i
        a = (np.int64(raw[b + 2]) << 8) | np.int64(raw[b + 3])
        if a & 0x8000:
            continue
        t = (
            (np.int64(raw[b + 4]) << 24)
            | (np.int64(raw[b + 5]) << 16)
            | (np.int64(raw[b + 6]) << 8)
            | np.int64(raw[b + 7])
        )
        if t < prev_t:
            if stop_on_reset:
                return j, prev_t, shift, i
            shift += prev_t - t
        prev_t = t
        x_raw = (a >> 1) & 0x7F
        y_raw = (a >> 8) & 0x7F
        rec = out[j]
        if transposed:
            rec.x = 127 - y_raw
            rec.y = 127 - x_raw
        else:
            rec.x = 127 - x_raw
            rec.y = y_raw
        rec.t = t + shift
        rec.p = 1 - (a & 1)
        j += 1
    return j, prev_t, shift, -1


@numba.njit(cache=True, nogil=True)
def _le_i32(raw: np.ndarray, at: int) -> int:
    value = (
        np.int64(raw[at])
        | (np.int64(raw[at + 1]) << 8)
        | (np.int64(raw[at + 2]) << 16)
        | (np.int64(raw[at + 3]) << 24)
    )
    return value - (np.int64(1) << 32) if value >= (np.int64(1) << 31) else value


@numba.njit(cache=True, nogil=True)
def decode_aedat31(
    raw: np.ndarray, out: np.ndarray, width: int, height: int, drop: bool
) -> tuple[int, bool, bool, int, int, int]:
    """Decode the packets of an AEDAT 3.1 body ``raw`` (uint8, after the header) into ``out``.

    Keeps valid events of polarity packets (type 1), skips other types. Stops
    at the first problem the Python reader in :mod:`.aedat31` reports
    (truncated or inconsistent packet, negative timestamp, and, without
    ``drop``, an event outside ``width`` x ``height``; 0 means no limit) and
    returns ``(events written, False, ...)``; the caller then re-reads with that
    reader to raise the detailed error. With ``drop`` events outside the sensor
    are skipped and counted. ``out`` needs ``len(raw) // 8`` records.

    Returns:
        ``(events written, ok, whether the written t are sorted, events dropped for x,
        for y, byte index in raw of the first dropped event or -1)``.
    """
    size = raw.shape[0]
    at = 0
    j = 0
    prev = np.int64(-1)
    ordered = True
    bad_x = 0
    bad_y = 0
    first_bad = -1
    while at < size:
        if size - at < 28:
            return j, False, ordered, bad_x, bad_y, first_bad
        ptype = np.int64(raw[at]) | (np.int64(raw[at + 1]) << 8)
        event_size = _le_i32(raw, at + 4)
        ts_offset = _le_i32(raw, at + 8)
        overflow = _le_i32(raw, at + 12)
        capacity = _le_i32(raw, at + 16)
        number = _le_i32(raw, at + 20)
        if event_size < 0 or capacity < 0:
            return j, False, ordered, bad_x, bad_y, first_bad
        data = event_size * capacity
        start = at + 28
        if data > size - start:
            return j, False, ordered, bad_x, bad_y, first_bad
        if ptype == 1:
            if event_size != 8 or ts_offset != 4 or number > capacity or number < 0:
                return j, False, ordered, bad_x, bad_y, first_bad
            if overflow < 0:
                return j, False, ordered, bad_x, bad_y, first_bad
            high = overflow << 31
            for k in range(number):
                b = start + 8 * k
                d = (
                    np.int64(raw[b])
                    | (np.int64(raw[b + 1]) << 8)
                    | (np.int64(raw[b + 2]) << 16)
                    | (np.int64(raw[b + 3]) << 24)
                )
                if not d & 1:
                    continue
                ts = _le_i32(raw, b + 4)
                if ts < 0:
                    return j, False, ordered, bad_x, bad_y, first_bad
                x = d >> 17
                y = (d >> 2) & 0x7FFF
                if (width > 0 and x >= width) or (height > 0 and y >= height):
                    if not drop:
                        return j, False, ordered, bad_x, bad_y, first_bad
                    if first_bad < 0:
                        first_bad = b
                    if width > 0 and x >= width:
                        bad_x += 1
                    else:
                        bad_y += 1
                    continue
                t = ts | high
                if t < prev:
                    ordered = False
                prev = t
                rec = out[j]
                rec.x = x
                rec.y = y
                rec.t = t
                rec.p = (d >> 1) & 1
                j += 1
        at = start + data
    return j, True, ordered, bad_x, bad_y, first_bad
