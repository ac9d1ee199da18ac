"""ATIS ``.bin`` files (N-MNIST, N-Caltech101): 5 bytes per event, no header.

Layout (FORMATS.md): byte 0 = x, byte 1 = y, byte 2 bit 7 = polarity (1 = ON),
byte 2 bits 6..0, byte 3, byte 4 = a 23-bit big-endian timestamp in
microseconds.

Timestamp overflow: a record with ``y == 240`` is an overflow marker, not an
event. Like the reference reader, each marker adds ``2**13`` us to the
timestamps of every record after it (cumulatively), and markers are dropped.

The writer stores any sorted ``t >= 0``: before an event whose time does not
fit in 23 bits after the markers written so far, it writes just enough markers
(``x = 0, y = 240``, timestamp 0) that it does, so reading gives back exactly
the events written. Writable coordinates: ``x`` in 0..255, ``y`` in 0..239
(``y = 240`` is the marker); N-MNIST is 34x34, N-Caltech101 up to 240x180.

Validation: a record with ``y > 240`` lies outside the ATIS sensor (rows
0..239; ``x`` is one byte and the polarity one bit, so both are always
valid): it raises :class:`EventFormatError` at its byte offset, or with
``on_invalid="drop"`` it is skipped and counted.

Reading a whole file returns the events in file order, stably sorted by
``t`` only if the file's timestamps decrease somewhere.
"""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np

from ..array import EVENT_DTYPE
from ._base import (
    Header,
    PathLike,
    columns_for_write,
    file_size,
    format_error,
    mapped_bytes,
    open_atomic,
    sorted_by_time,
)
from ._kernels import decode_atis
from ._validate import DropReport, Sensor, check_on_invalid, describe
from .sniff import HEAD_BYTES, looks_like_dat_header

FORMAT = "atis-bin"
RECORD_BYTES = 5
MARKER_Y = 240
OVERFLOW_STEP = 1 << 13  # us added per overflow marker
RAW_T_MAX = (1 << 23) - 1
X_MAX, Y_MAX = 255, MARKER_Y - 1
SENSOR = Sensor(None, MARKER_Y, "ATIS rows; y = 240 is the overflow marker")


def read_header(path: PathLike) -> Header:
    """ATIS files have no header: data starts at byte 0."""
    return Header(format=FORMAT)


def check_not_other_format(head: bytes, path: PathLike) -> None:
    """Raise when the first bytes are another format's signature (a mislabelled file)."""
    if head.startswith(b"#!AER-DAT"):
        version = head[9:12].decode("latin-1", "replace")
        raise format_error(FORMAT, path, f"this is an AEDAT {version} file, not ATIS .bin", 0)
    if looks_like_dat_header(head):
        raise format_error(FORMAT, path, "starts with a '%' text header: a Prophesee .dat?", 0)


def decode(
    raw: np.ndarray,
    markers_before: int = 0,
    *,
    drop: bool = False,
    offset: int = 0,
    path: PathLike = "",
    report: DropReport | None = None,
) -> tuple[np.ndarray, int, bool]:
    """Decode whole records.

    Args:
        raw: uint8 array, length a multiple of 5.
        markers_before: overflow markers seen earlier in the file.
        drop: skip records outside the sensor (counted in ``report``) instead of raising.
        offset: byte offset of ``raw[0]`` in the file (for errors).

    Returns:
        ``(events, markers, ordered)``: the events (markers dropped, overflow
        applied), the marker count including this block's, and whether the
        events' timestamps are sorted.

    Raises:
        EventFormatError: a record with ``y > 240`` (without ``drop``).
    """
    out = np.empty(raw.shape[0] // RECORD_BYTES, dtype=EVENT_DTYPE)
    n, markers, ordered, n_bad, first_bad = decode_atis(raw, out, markers_before, drop)
    if n_bad:
        at = offset + RECORD_BYTES * int(first_bad)
        if not drop:
            bad = np.zeros(1, dtype=EVENT_DTYPE)
            bad["y"] = raw[RECORD_BYTES * int(first_bad) + 1]
            raise format_error(FORMAT, path, describe(bad[0], SENSOR), at)
        if report is not None:
            report.add(SENSOR.reason("y"), int(n_bad), at)
    return (out if n == out.shape[0] else out[:n]), int(markers), bool(ordered)


def _open_checked(f, path: PathLike) -> int:
    """Check an open file is plausibly ATIS; return its record count."""
    size = file_size(f)
    check_not_other_format(f.read(HEAD_BYTES), path)
    if size % RECORD_BYTES:
        start = size - size % RECORD_BYTES
        message = f"truncated event ({RECORD_BYTES}-byte events; file has {size} bytes)"
        raise format_error(FORMAT, path, message, start)
    f.seek(0)
    return size // RECORD_BYTES


def iter_blocks(
    path: PathLike,
    block_events: int = 1_000_000,
    on_invalid: str = "raise",
    report: DropReport | None = None,
) -> Iterator[np.ndarray]:
    """Decode the file in blocks of at most ``block_events`` records (``np.fromfile``).

    Raises:
        EventFormatError: if the size is not a multiple of 5 (offset of the
            truncated record), the file is another format, or a record lies
            outside the sensor (without ``on_invalid="drop"``).
    """
    drop = check_on_invalid(on_invalid)
    with open(path, "rb") as f:
        n_records = _open_checked(f, path)
        markers = 0
        done = 0
        while done < n_records:
            count = min(block_events, n_records - done)
            raw = np.fromfile(f, dtype=np.uint8, count=count * RECORD_BYTES)
            events, markers, _ = decode(
                raw, markers, drop=drop, offset=RECORD_BYTES * done, path=path, report=report
            )
            done += count
            yield events


def read(path: PathLike, on_invalid: str = "raise", report: DropReport | None = None) -> np.ndarray:
    """All events of an ATIS ``.bin`` file (EVENT_DTYPE, sorted by ``t``).

    The file is memory-mapped and decoded in one pass; events come in file
    order unless their timestamps decrease, then they are stably sorted.
    ``on_invalid="drop"`` skips records outside the sensor and counts them in ``report``.
    """
    drop = check_on_invalid(on_invalid)
    with open(path, "rb") as f:
        n_records = _open_checked(f, path)
        with mapped_bytes(f, 0, n_records * RECORD_BYTES) as raw:
            events, _, ordered = decode(raw, drop=drop, path=path, report=report)
    return events if ordered else sorted_by_time(events)


def encode(events: np.ndarray) -> np.ndarray:
    """The file bytes (uint8) for ``events``, overflow markers included.

    Raises:
        ValueError: unsorted ``t``, ``t < 0``, or coordinates outside 0..255 x 0..239.
    """
    cols = columns_for_write(events, FORMAT, X_MAX, Y_MAX)
    t = cols.t
    # markers needed so that t - k * 2**13 fits in 23 bits; non-decreasing for sorted t
    markers = np.maximum(0, -((RAW_T_MAX - t) // OVERFLOW_STEP))
    raw_t = t - markers * OVERFLOW_STEP
    total = t.shape[0] + (int(markers[-1]) if t.shape[0] else 0)
    rec = np.zeros((total, RECORD_BYTES), dtype=np.uint8)
    rec[:, 1] = MARKER_Y
    rows = np.arange(t.shape[0], dtype=np.int64) + markers
    rec[rows, 0] = cols.x
    rec[rows, 1] = cols.y
    rec[rows, 2] = (cols.p << 7) | (raw_t >> 16)
    rec[rows, 3] = (raw_t >> 8) & 0xFF
    rec[rows, 4] = raw_t & 0xFF
    return rec.reshape(-1)


def write(path: PathLike, events: np.ndarray) -> None:
    """Write ``events`` as an ATIS ``.bin`` file (see module docstring)."""
    data = encode(events)
    with open_atomic(path) as f:
        data.tofile(f)
