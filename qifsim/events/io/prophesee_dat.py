"""Prophesee DAT v2 files with Event2D (CD) events: N-Cars ``.dat``.

Layout (FORMATS.md): ASCII header lines starting with ``%`` (each ending in
``\\n``), then one byte event type (``0x00``: Event2D) and one byte event size
(``0x08``), then 8-byte little-endian events: uint32 ``t`` (us), uint32 ``w``
with ``x = w & 0x3FFF``, ``y = (w >> 14) & 0x3FFF``, ``p = (w >> 28) & 0xF``
(must be 0 or 1 here).

Timestamps are 32-bit: each time ``t`` is smaller than the previous event's
raw ``t`` the counter wrapped, and ``2**32`` us are added to it and every later
event (cumulatively).

The writer writes the header lines (default: ``% Data file containing
Event2D events.`` and ``% Version 2``, plus ``% Width``/``% Height`` when
given), the type/size bytes and the events with ``t mod 2**32``. Exact round
trips need the first timestamp below ``2**32`` us and consecutive timestamps
less than ``2**32`` us (71.6 min) apart, else a wrap cannot be told from none;
the writer refuses such input.
A file with a header and nothing after it holds 0 events.

Validation: header lines must be text (printable ASCII, tab, CR) ended by
``\\n``; a ``% Version`` line must say 2 and ``% Width``/``% Height`` (when
present) must be integers in 1..16384; events must lie inside them (without
them, the 14-bit fields cannot leave the format's range) and have polarity 0
or 1. An invalid event raises :class:`EventFormatError` at its byte offset,
or with ``on_invalid="drop"`` is removed and counted.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence

import numpy as np

from ..array import EVENT_DTYPE
from ._base import (
    Header,
    PathLike,
    columns_for_write,
    concat,
    file_size,
    format_error,
    open_atomic,
    parse_fields,
    read_text_header,
)
from ._validate import UNBOUNDED, DropReport, Sensor, check_on_invalid, screen_events

FORMAT = "prophesee-dat"
EVENT_TYPE_2D = 0x00
EVENT_SIZE = 8
RAW_DTYPE = np.dtype([("t", "<u4"), ("w", "<u4")])
WRAP = 1 << 32
COORD_MAX = 0x3FFF
DEFAULT_HEADER = ("% Data file containing Event2D events.", "% Version 2")


def read_header(path: PathLike) -> Header:
    """The ``%`` header lines, their fields, the event type/size bytes and the data offset.

    ``data_offset`` is where the events start (after the two type/size bytes);
    ``extra`` holds ``event_type`` and ``event_size`` (absent for a header-only file).

    Raises:
        EventFormatError: unknown event type or size byte, a lone type byte, or
            a file that is another format.
    """
    with open(path, "rb") as f:
        return _read_header(f, path)


def _header_int(fields: dict[str, str], key: str, path: PathLike) -> int | None:
    """``% Width``/``% Height`` as an int in 1..16384, or None when absent."""
    if key not in fields:
        return None
    text = fields[key]
    if not text.isdigit() or not 1 <= int(text) <= COORD_MAX + 1:
        raise format_error(
            FORMAT, path, f"header line '% {key} {text}' is not a size in 1..{COORD_MAX + 1}", 0
        )
    return int(text)


def sensor_of(header: Header, path: PathLike) -> Sensor:
    """The sensor the header states (``% Width``/``% Height``), unbounded when absent."""
    width = _header_int(header.fields, "Width", path)
    height = _header_int(header.fields, "Height", path)
    return Sensor(width, height, "header % Width/% Height")


def _check_header_text(f, end: int, size: int, path: PathLike) -> None:
    """The ``%`` lines (bytes ``0..end``) are text, each ended by ``\n``."""
    if end == 0:
        return
    f.seek(0)
    raw = np.frombuffer(f.read(end), dtype=np.uint8)
    text = ((raw >= 32) & (raw < 127)) | (raw == 9) | (raw == 10) | (raw == 13)
    if not text.all():
        at = int(np.argmin(text))
        message = f"header line holds the non-text byte 0x{int(raw[at]):02x}"
        raise format_error(FORMAT, path, message, at)
    if raw[-1] != 10:
        message = "the file ends inside a header line (no \\n): truncated or not a DAT file"
        raise format_error(FORMAT, path, message, size)
    f.seek(end)


def _read_header(f, path: PathLike) -> Header:
    head = f.read(16)
    if head.startswith(b"#!AER-DAT"):
        version = head[9:12].decode("latin-1", "replace")
        raise format_error(FORMAT, path, f"this is an AEDAT {version} file, not Prophesee DAT", 0)
    lines, offset, _ = read_text_header(f, b"%")
    size = file_size(f)
    _check_header_text(f, offset, size, path)
    extra: dict[str, int] = {}
    if size - offset >= 1:
        type_size = f.read(2)
        if type_size[0] != EVENT_TYPE_2D:
            raise format_error(
                FORMAT,
                path,
                f"unsupported event type byte 0x{type_size[0]:02x} (only 0x00, Event2D, is read)",
                offset,
            )
        if len(type_size) < 2:
            raise format_error(FORMAT, path, "file ends after the event type byte", offset + 1)
        if type_size[1] != EVENT_SIZE:
            raise format_error(
                FORMAT,
                path,
                f"unsupported event size byte {type_size[1]} (Event2D events are 8 bytes)",
                offset + 1,
            )
        extra = {"event_type": type_size[0], "event_size": type_size[1]}
        offset += 2
    header = Header(FORMAT, tuple(lines), parse_fields(lines, " "), offset, extra)
    version = header.fields.get("Version")
    if version is not None and version != "2":
        raise format_error(
            FORMAT, path, f"header says '% Version {version}'; only DAT version 2 is read", 0
        )
    sensor_of(header, path)  # the size lines must be valid
    return header


def decode(
    raw: np.ndarray,
    offset: int,
    path: PathLike,
    last: tuple[int, int],
    sensor: Sensor = UNBOUNDED,
    drop: bool = False,
    report: DropReport | None = None,
):
    """Decode raw records (``RAW_DTYPE``) starting at byte ``offset`` of the file.

    ``last = (raw t of the previous event or -1, wraps so far)``; returns
    ``(events, new last)``. Wraps are counted over every record, kept or dropped.

    Raises:
        EventFormatError: a polarity other than 0/1 or an event outside ``sensor``
            (offset of that event), unless ``drop``.
    """
    prev_t, wraps = last
    n = raw.shape[0]
    events = np.empty(n, dtype=EVENT_DTYPE)
    if n == 0:
        return events, last
    t_raw = raw["t"]
    w = raw["w"]
    t = t_raw.astype(np.int64)
    dec = np.empty(n, dtype=bool)
    dec[0] = prev_t >= 0 and int(t_raw[0]) < prev_t
    np.less(t_raw[1:], t_raw[:-1], out=dec[1:])
    if dec.any():
        t += (np.cumsum(dec, dtype=np.int64) + wraps) << 32
        wraps += int(np.count_nonzero(dec))
    elif wraps:
        t += wraps << 32
    events["t"] = t
    events["x"] = w & COORD_MAX
    events["y"] = (w >> 14) & COORD_MAX
    events["p"] = w >> 28
    events = screen_events(
        events,
        sensor,
        fmt=FORMAT,
        path=path,
        drop=drop,
        report=report,
        locate=lambda i: (offset + EVENT_SIZE * i, None),
    )
    return events, (int(t_raw[-1]), wraps)


def iter_blocks(
    path: PathLike,
    block_events: int | None = None,
    on_invalid: str = "raise",
    report: DropReport | None = None,
) -> Iterator[np.ndarray]:
    """Decode the file in blocks of at most ``block_events`` events (None: all at once).

    Raises:
        EventFormatError: bad header bytes or fields, a body that is not whole
            8-byte events (offset of the truncated event), a bad polarity or an
            event outside the header's size (without ``on_invalid="drop"``).
    """
    drop = check_on_invalid(on_invalid)
    with open(path, "rb") as f:
        header = _read_header(f, path)
        sensor = sensor_of(header, path)
        start = header.data_offset
        body = file_size(f) - start
        if body % EVENT_SIZE:
            cut = start + body - body % EVENT_SIZE
            raise format_error(
                FORMAT, path, f"truncated event (8-byte events; {body} bytes of events)", cut
            )
        n = body // EVENT_SIZE
        f.seek(start)
        step = n if block_events is None else block_events
        last = (-1, 0)
        done = 0
        while done < n:
            count = min(step, n - done)
            raw = np.fromfile(f, dtype=RAW_DTYPE, count=count)
            events, last = decode(raw, start + EVENT_SIZE * done, path, last, sensor, drop, report)
            done += count
            yield events


def read(path: PathLike, on_invalid: str = "raise", report: DropReport | None = None) -> np.ndarray:
    """All events of a DAT file (EVENT_DTYPE, wraps unrolled).

    Sorted by construction: a raw ``t`` below its predecessor's is a wrap and
    gets ``2**32`` more, so the unrolled timestamps never decrease.
    """
    return concat(iter_blocks(path, None, on_invalid, report))


def header_bytes(
    header_lines: Sequence[str] | None, width: int | None, height: int | None
) -> bytes:
    """The ``%`` header text; lines lacking a leading ``%`` get ``"% "``."""
    lines = list(DEFAULT_HEADER if header_lines is None else header_lines)
    if width is not None:
        lines.append(f"% Width {int(width)}")
    if height is not None:
        lines.append(f"% Height {int(height)}")
    out = []
    for line in lines:
        if "\n" in line or "\r" in line:
            raise ValueError(f"header line {line!r} must not contain a line break")
        out.append(line if line.startswith("%") else f"% {line}")
    return "".join(f"{line}\n" for line in out).encode("latin-1")


def encode(events: np.ndarray, x_max: int = COORD_MAX, y_max: int = COORD_MAX) -> np.ndarray:
    """The 8-byte event records (``RAW_DTYPE``) for ``events`` (``x <= x_max``, ``y <= y_max``).

    Raises:
        ValueError: bad coordinates/polarity/order, or two consecutive events
            ``2**32`` us or more apart (a wrap the reader could not see).
    """
    cols = columns_for_write(events, FORMAT, x_max, y_max)
    t = cols.t
    if t.size and t[0] >= WRAP:
        raise ValueError(f"{FORMAT} cannot store a first timestamp >= 2**32 us (got {t[0]})")
    if t.size > 1 and np.any(np.diff(t) >= WRAP):
        i = int(np.argmax(np.diff(t) >= WRAP)) + 1
        raise ValueError(
            f"{FORMAT} cannot store event {i}: it follows the previous one by 2**32 us or more, "
            "so the 32-bit timestamp wrap would be invisible"
        )
    raw = np.empty(t.shape[0], dtype=RAW_DTYPE)
    raw["t"] = t & (WRAP - 1)
    raw["w"] = cols.x | (cols.y << 14) | (cols.p << 28)
    return raw


def write(
    path: PathLike,
    events: np.ndarray,
    header_lines: Sequence[str] | None = None,
    width: int | None = None,
    height: int | None = None,
) -> None:
    """Write a DAT v2 file (see module docstring).

    Args:
        header_lines: ``%`` lines to write (default ``DEFAULT_HEADER``).
        width, height: sensor size in pixels, written as ``% Width``/``% Height``;
            events must lie inside the size the header states (so the file reads back).
    """
    head = header_bytes(header_lines, width, height)
    header = Header(FORMAT, fields=parse_fields(head.decode("latin-1").splitlines(), " "))
    sensor = sensor_of(header, path)
    raw = encode(
        events,
        COORD_MAX if sensor.width is None else sensor.width - 1,
        COORD_MAX if sensor.height is None else sensor.height - 1,
    )
    with open_atomic(path) as f:
        f.write(head)
        f.write(bytes([EVENT_TYPE_2D, EVENT_SIZE]))
        raw.tofile(f)
