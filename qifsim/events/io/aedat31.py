"""AEDAT 3.1 files (DVS128-Gesture): polarity packets only.

Layout (FORMATS.md): ``#`` header lines, the first ``#!AER-DAT3.1``, up to
and including ``#!END-HEADER\\r\\n``; then packets, each a 28-byte
little-endian header (int16 type, int16 source, int32 eventSize, int32
tsOffset, int32 tsOverflow, int32 capacity, int32 number, int32 valid)
followed by ``eventSize * capacity`` bytes of events.

Only type 1 (polarity) packets are decoded; other packet types are skipped
whole. A polarity event is 8 bytes: uint32 data (bit 0 valid, bit 1
polarity, 1 = ON; bits 2-16 ``y``; bits 17-31 ``x``) and int32 ``ts``; the
time in us is ``ts | (tsOverflow << 31)``. Of a packet's ``capacity`` slots
the first ``number`` hold events; events whose valid bit is 0 are dropped.

Validation: the header's ``#Source N: NAME`` lines name the cameras; for a
known one (``DVS128`` 128x128, ``DAVIS240*`` 240x180, ``DAVIS346*`` 346x260)
events must lie inside its sensor, else (unknown names, several sizes) only
the format's 15-bit range holds. An event outside raises
:class:`EventFormatError` at its byte offset, or with ``on_invalid="drop"``
is removed and counted. Timestamps: read whole, events are stably sorted by
``t`` when packets come out of order.

The writer writes a 3.1 header and polarity packets (source 1, at most
``packet_events`` events each, a new packet wherever ``t >> 31`` changes), so
any sorted ``0 <= t < 2**62`` round-trips exactly; ``x``, ``y`` in 0..32767,
or inside the sensor its header names (the default header names a DVS128:
pass ``header_lines=["#Source 1: NAME"]`` with another name for larger arrays).
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
    mapped_bytes,
    open_atomic,
    parse_fields,
    read_text_header,
    sorted_by_time,
)
from ._kernels import decode_aedat31
from ._validate import UNBOUNDED, DropReport, Sensor, check_on_invalid, screen_events

FORMAT = "aedat31"
VERSION_LINE = "#!AER-DAT3.1"
END_LINE = b"#!END-HEADER"
PACKET_HEADER = np.dtype(
    [
        ("type", "<i2"),
        ("source", "<i2"),
        ("event_size", "<i4"),
        ("ts_offset", "<i4"),
        ("ts_overflow", "<i4"),
        ("capacity", "<i4"),
        ("number", "<i4"),
        ("valid", "<i4"),
    ]
)
HEADER_BYTES = PACKET_HEADER.itemsize  # 28
POLARITY_TYPE = 1
POLARITY_DTYPE = np.dtype([("data", "<u4"), ("ts", "<i4")])
COORD_MAX = 0x7FFF
OVERFLOW_SHIFT = 31
DEFAULT_HEADER = (VERSION_LINE, "#Format: RAW", "#Source 1: DVS128")
#: sensor sizes of the cameras a ``#Source`` line may name (prefix, case-insensitive)
KNOWN_SENSORS = {"DVS128": (128, 128), "DAVIS240": (240, 180), "DAVIS346": (346, 260)}


def sensor_of(header: Header) -> Sensor:
    """The sensor of the ``#Source`` lines' cameras when all are known and equal in size."""
    names = [v for k, v in header.fields.items() if k.split(" ")[0] == "Source"]
    sizes = set()
    for name in names:
        size = next(
            (wh for prefix, wh in KNOWN_SENSORS.items() if name.upper().startswith(prefix)), None
        )
        if size is None:
            return UNBOUNDED
        sizes.add(size)
    if len(sizes) != 1:
        return UNBOUNDED
    ((width, height),) = sizes
    return Sensor(width, height, f"header #Source: {names[0]}")


def read_header(path: PathLike) -> Header:
    """The header lines (through ``#!END-HEADER``), their fields and the data offset.

    Raises:
        EventFormatError: first line not ``#!AER-DAT3.1``, or no ``#!END-HEADER``.
    """
    with open(path, "rb") as f:
        return _read_header(f, path)


def _read_header(f, path: PathLike) -> Header:
    lines, offset, ended = read_text_header(f, b"#", END_LINE)
    first = lines[0].strip() if lines else ""
    if first != VERSION_LINE:
        if first.startswith("#!AER-DAT"):
            raise format_error(FORMAT, path, f"header says {first[2:]}, not AER-DAT3.1", 0)
        raise format_error(FORMAT, path, f"no {VERSION_LINE} first line", 0)
    if not ended:
        raise format_error(FORMAT, path, "header has no #!END-HEADER line", offset)
    return Header(FORMAT, tuple(lines), parse_fields(lines), offset)


def _check_packet(h: np.void, at: int, remaining: int, path: PathLike) -> int:
    """Validate one packet header at byte ``at``; return its data size in bytes."""
    size, capacity, number = int(h["event_size"]), int(h["capacity"]), int(h["number"])
    if size < 0 or capacity < 0:
        raise format_error(
            FORMAT, path, f"packet with negative eventSize {size} or capacity {capacity}", at
        )
    data = size * capacity
    if data > remaining:
        raise format_error(
            FORMAT,
            path,
            f"truncated packet (type {int(h['type'])}: {data} bytes of events, "
            f"{remaining} left in the file)",
            at,
        )
    if int(h["type"]) == POLARITY_TYPE:
        if size != POLARITY_DTYPE.itemsize or int(h["ts_offset"]) != 4:
            raise format_error(
                FORMAT,
                path,
                f"polarity packet with eventSize {size}, tsOffset {int(h['ts_offset'])} "
                "(expected 8 and 4)",
                at,
            )
        if not 0 <= number <= capacity:
            raise format_error(
                FORMAT, path, f"polarity packet with number {number} > capacity {capacity}", at
            )
        if int(h["ts_overflow"]) < 0:
            raise format_error(FORMAT, path, "polarity packet with negative tsOverflow", at)
    return data


def decode(
    raw: np.ndarray,
    overflow: int,
    offset: int,
    path: PathLike,
    sensor: Sensor = UNBOUNDED,
    drop: bool = False,
    report: DropReport | None = None,
) -> np.ndarray:
    """Decode polarity events (``POLARITY_DTYPE``) of a packet, ``raw[0]`` at byte ``offset``.

    Raises:
        EventFormatError: a valid event with a negative ``ts``, or (without ``drop``)
            outside ``sensor``.
    """
    data = raw["data"]
    ts = raw["ts"]
    valid = (data & 1).astype(bool)
    index = np.flatnonzero(valid) if not valid.all() else None
    if index is not None:
        data, ts = data[valid], ts[valid]
    if ts.size and ts.min() < 0:
        i = int(np.argmax(ts < 0))
        i = i if index is None else int(index[i])
        raise format_error(FORMAT, path, "negative event timestamp", offset + 8 * i)
    events = np.empty(ts.shape[0], dtype=EVENT_DTYPE)
    events["x"] = data >> 17
    events["y"] = (data >> 2) & COORD_MAX
    events["t"] = ts.astype(np.int64) | (overflow << OVERFLOW_SHIFT)
    events["p"] = (data >> 1) & 1

    def locate(i: int) -> tuple[int, None]:
        return offset + 8 * (i if index is None else int(index[i])), None

    return screen_events(
        events, sensor, fmt=FORMAT, path=path, drop=drop, report=report, locate=locate
    )


def iter_blocks(
    path: PathLike,
    block_events: int | None = None,
    on_invalid: str = "raise",
    report: DropReport | None = None,
) -> Iterator[np.ndarray]:
    """Decode polarity packets, yielding blocks of at most ``block_events`` events.

    Raises:
        EventFormatError: bad header, truncated or inconsistent packets (offset
            of the packet header), negative timestamps or (without
            ``on_invalid="drop"``) events outside the sensor (offset of the event).
    """
    drop = check_on_invalid(on_invalid)
    with open(path, "rb") as f:
        header = _read_header(f, path)
        sensor = sensor_of(header)
        size = file_size(f)
        at = header.data_offset
        while at < size:
            if size - at < HEADER_BYTES:
                raise format_error(
                    FORMAT, path, f"truncated packet header ({size - at} of 28 bytes)", at
                )
            f.seek(at)
            h = np.frombuffer(f.read(HEADER_BYTES), dtype=PACKET_HEADER)[0]
            data_bytes = _check_packet(h, at, size - at - HEADER_BYTES, path)
            start = at + HEADER_BYTES
            if int(h["type"]) == POLARITY_TYPE:
                number = int(h["number"])
                step = number if block_events is None else block_events
                done = 0
                while done < number:
                    count = min(step, number - done)
                    raw = np.fromfile(f, dtype=POLARITY_DTYPE, count=count)
                    yield decode(
                        raw, int(h["ts_overflow"]), start + 8 * done, path, sensor, drop, report
                    )
                    done += count
            at = start + data_bytes


def read(path: PathLike, on_invalid: str = "raise", report: DropReport | None = None) -> np.ndarray:
    """All polarity events of an AEDAT 3.1 file (EVENT_DTYPE, stably sorted by ``t``).

    The file is memory-mapped and its packets decoded in one numba pass; if
    that pass meets a problem, the file is re-read packet by packet with
    :func:`iter_blocks`, which raises the detailed error.
    """
    drop = check_on_invalid(on_invalid)
    with open(path, "rb") as f:
        header = _read_header(f, path)
        sensor = sensor_of(header)
        body = file_size(f) - header.data_offset
        out = np.empty(max(body, 0) // POLARITY_DTYPE.itemsize, dtype=EVENT_DTYPE)
        with mapped_bytes(f, header.data_offset, body) as raw:
            n, ok, ordered, bad_x, bad_y, first_bad = decode_aedat31(
                raw, out, sensor.width or 0, sensor.height or 0, drop
            )
    if not ok:  # raises the detailed error
        return sorted_by_time(concat(iter_blocks(path, None, on_invalid, report)))
    if report is not None and first_bad >= 0:
        at = header.data_offset + int(first_bad)
        for axis, count in (("x", bad_x), ("y", bad_y)):
            if count:
                report.add(sensor.reason(axis), int(count), at)
    events = out[:n] if 2 * n >= out.shape[0] else out[:n].copy()
    return events if ordered else sorted_by_time(events)


def write(
    path: PathLike,
    events: np.ndarray,
    packet_events: int = 4096,
    header_lines: Sequence[str] | None = None,
) -> None:
    """Write an AEDAT 3.1 file of polarity packets (see module docstring).

    Args:
        packet_events: most events per packet (>= 1).
        header_lines: ``#`` lines between ``#!AER-DAT3.1`` and ``#!END-HEADER``
            (default ``#Format: RAW``, ``#Source 1: DVS128``); a leading
            version line and a trailing end line in them are not repeated.
    """
    if packet_events < 1:
        raise ValueError(f"packet_events must be >= 1, got {packet_events}")
    lines = list(DEFAULT_HEADER[1:] if header_lines is None else header_lines)
    if lines and lines[0].strip() == VERSION_LINE:
        lines = lines[1:]
    if lines and lines[-1].strip() == END_LINE.decode():
        lines = lines[:-1]
    for line in lines:
        if not line.startswith("#") or "\n" in line or "\r" in line:
            raise ValueError(f"header line {line!r} must start with '#' and have no line break")
    sensor = sensor_of(Header(FORMAT, fields=parse_fields(lines)))
    x_max = COORD_MAX if sensor.width is None else sensor.width - 1
    y_max = COORD_MAX if sensor.height is None else sensor.height - 1
    fmt = FORMAT if sensor.width is None else f"{FORMAT} with {sensor.source}"
    cols = columns_for_write(events, fmt, x_max, y_max, (1 << 62) - 1)
    text = "".join(f"{line}\r\n" for line in [VERSION_LINE, *lines, END_LINE.decode()])
    records = np.empty(len(cols), dtype=POLARITY_DTYPE)
    records["data"] = (cols.x << 17) | (cols.y << 2) | (cols.p << 1) | 1
    records["ts"] = cols.t & ((1 << OVERFLOW_SHIFT) - 1)
    overflow = cols.t >> OVERFLOW_SHIFT
    # packet boundaries: every change of the overflow counter, and every packet_events
    changes = np.flatnonzero(np.diff(overflow)) + 1
    bounds = [0]
    for end in [*changes.tolist(), len(cols)]:
        while end - bounds[-1] > packet_events:
            bounds.append(bounds[-1] + packet_events)
        if end > bounds[-1]:
            bounds.append(end)
    with open_atomic(path) as f:
        f.write(text.encode("latin-1"))
        for lo, hi in zip(bounds[:-1], bounds[1:], strict=True):
            h = np.zeros(1, dtype=PACKET_HEADER)
            h["type"], h["source"] = POLARITY_TYPE, 1
            h["event_size"], h["ts_offset"] = POLARITY_DTYPE.itemsize, 4
            h["ts_overflow"] = overflow[lo]
            h["capacity"] = h["number"] = h["valid"] = hi - lo
            h.tofile(f)
            records[lo:hi].tofile(f)
