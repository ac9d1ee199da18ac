"""AEDAT 2.0 files from a DVS128 (CIFAR10-DVS, DVS128 recordings made with jAER).

Layout (FORMATS.md): text header lines starting with ``#`` (CRLF or LF; the
first is ``#!AER-DAT2.0``), then big-endian pairs uint32 address, uint32
timestamp (us). DVS128 address: bit 0 polarity, bits 1-7 ``x_raw``, bits 8-14
``y_raw``, bit 15 special event (dropped); higher bits are ignored.

Orientation (option ``orientation``):

* ``"jaer"`` (default, jAER's DVS128 convention): ``x = 127 - x_raw``,
  ``y = y_raw``;
* ``"transposed"`` (another popular CIFAR10-DVS loader):
  ``x = 127 - y_raw``, ``y = 127 - x_raw``; note that a horizontal flip of
  transposed data is a vertical flip of jAER data.

In both, ON (``p = 1``) is ``bit 0 == 0`` and OFF is ``bit 0 == 1``.

Timestamp resets: jAER can restart its clock inside a recording, so a
timestamp may be smaller than the previous event's. With
``on_reset="continue"`` (default) time continues from where it was: from a
reset on, every later event is shifted by the same amount so that the first
event after the reset gets the timestamp of the last one before it (the
unknown gap is taken as 0) and the spacing of events is kept; resets are
applied cumulatively and no event is dropped. ``on_reset="raise"`` raises
:class:`EventFormatError` at the first reset instead. Special events are
dropped before this repair.

Validation: the DVS128 address fields cannot leave the 128x128 sensor (7-bit
``x``/``y``, 1-bit polarity), so every decoded event is valid. The header's
``# AEChip:`` line, when present, must name a DVS128 (e.g.
``ch.unizh.ini.jaer.chip.retina.DVS128``): other jAER chips (DAVIS240/346, ...)
pack their addresses differently, and decoding them as DVS128 would give wrong
events silently; such a file with events raises :class:`EventFormatError`
(one with a header and no events reads as 0 events).

The writer writes a ``#!AER-DAT2.0`` header (CRLF) and the events in the
chosen orientation with ``0 <= t < 2**32``, no special events, so reading
with the same orientation gives back exactly the events written.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence

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
    parse_fields,
    read_text_header,
)
from ._kernels import decode_aedat2
from ._validate import DropReport, check_on_invalid

FORMAT = "aedat2"
VERSION_LINE = "#!AER-DAT2.0"
RAW_DTYPE = np.dtype([("a", ">u4"), ("t", ">u4")])
RECORD_BYTES = 8
SPECIAL_BIT = 0x8000
SIZE = 128
ORIENTATIONS = ("jaer", "transposed")
ON_RESET = ("continue", "raise")
DEFAULT_HEADER = (
    VERSION_LINE,
    "# This is a raw AE data file - do not edit",
    "# Data format is int32 address, int32 timestamp (8 bytes total), repeated for each event",
    "# Timestamps tick is 1 us",
    "# AEChip: DVS128",
)


def _check_options(orientation: str, on_reset: str = "continue") -> None:
    if orientation not in ORIENTATIONS:
        raise ValueError(f"orientation must be one of {ORIENTATIONS}, got {orientation!r}")
    if on_reset not in ON_RESET:
        raise ValueError(f"on_reset must be one of {ON_RESET}, got {on_reset!r}")


def read_header(path: PathLike) -> Header:
    """The ``#`` header lines, their fields and the data offset.

    Raises:
        EventFormatError: the first line is not ``#!AER-DAT2.0`` (e.g. another
            AEDAT version, or no header at all).
    """
    with open(path, "rb") as f:
        return _read_header(f, path)


def _read_header(f, path: PathLike) -> Header:
    lines, offset, _ = read_text_header(f, b"#")
    first = lines[0].strip() if lines else ""
    if first != VERSION_LINE:
        if first.startswith("#!AER-DAT"):
            found = first[2:]
            raise format_error(FORMAT, path, f"header says {found}, not AER-DAT2.0", 0)
        raise format_error(FORMAT, path, f"no {VERSION_LINE} first line", 0)
    return Header(FORMAT, tuple(lines), parse_fields(lines), offset)


def decode(
    raw: np.ndarray,
    orientation: str,
    last: tuple[int, int],
    on_reset: str = "continue",
    offset: int = 0,
    path: PathLike = "",
) -> tuple[np.ndarray, tuple[int, int]]:
    """Decode raw records (uint8 bytes, whole 8-byte records).

    ``last = (raw t of the previous kept event or -1, shift added so far)``;
    ``offset`` is the byte offset of ``raw[0]`` in the file (for errors).
    Returns ``(events, new last)``.
    """
    out = np.empty(raw.shape[0] // RECORD_BYTES, dtype=EVENT_DTYPE)
    prev_t, shift = last
    stop = on_reset == "raise"
    n, prev_t, shift, reset_at = decode_aedat2(
        raw, out, orientation == "transposed", prev_t, shift, stop
    )
    if reset_at >= 0:
        raise format_error(
            FORMAT, path, "timestamp reset (on_reset='raise')", offset + RECORD_BYTES * reset_at
        )
    return (out if n == out.shape[0] else out[:n]), (int(prev_t), int(shift))


def _line_offset(f, end: int, key: bytes) -> int:
    """Byte offset of the header line holding ``key`` (within the first ``end`` bytes)."""
    f.seek(0)
    raw = f.read(end)
    return raw.rfind(b"\n", 0, max(raw.find(key), 0)) + 1


def _open_checked(f, path: PathLike) -> tuple[int, int]:
    """Read the header of an open file; return ``(data offset, record count)``."""
    header = _read_header(f, path)
    start = header.data_offset
    body = file_size(f) - start
    if body % RECORD_BYTES:
        cut = start + body - body % RECORD_BYTES
        message = f"truncated event (8-byte events; {body} bytes of events)"
        raise format_error(FORMAT, path, message, cut)
    chip = header.fields.get("AEChip")
    if body and chip is not None and "dvs128" not in chip.lower():
        at = _line_offset(f, start, b"AEChip")
        raise format_error(
            FORMAT,
            path,
            f"header says AEChip: {chip}; this reader decodes DVS128 addresses only "
            "(128x128), and this chip's addresses differ",
            at,
        )
    f.seek(start)
    return start, body // RECORD_BYTES


def iter_blocks(
    path: PathLike,
    block_events: int = 1_000_000,
    orientation: str = "jaer",
    on_reset: str = "continue",
    on_invalid: str = "raise",
    report: DropReport | None = None,
) -> Iterator[np.ndarray]:
    """Decode the file in blocks of at most ``block_events`` records (``np.fromfile``).

    Raises:
        EventFormatError: bad header, a body that is not whole 8-byte records
            (offset of the truncated record), or a reset with ``on_reset="raise"``.
    ``on_invalid``/``report`` are accepted like every reader's; DVS128 addresses
    cannot hold an invalid event, so nothing is ever dropped.
    """
    _check_options(orientation, on_reset)
    check_on_invalid(on_invalid)
    with open(path, "rb") as f:
        start, n = _open_checked(f, path)
        last = (-1, 0)
        done = 0
        while done < n:
            count = min(block_events, n - done)
            raw = np.fromfile(f, dtype=np.uint8, count=count * RECORD_BYTES)
            at = start + RECORD_BYTES * done
            events, last = decode(raw, orientation, last, on_reset, at, path)
            done += count
            yield events


def read(
    path: PathLike,
    orientation: str = "jaer",
    on_reset: str = "continue",
    on_invalid: str = "raise",
    report: DropReport | None = None,
) -> np.ndarray:
    """All events of an AEDAT 2.0 DVS128 file (EVENT_DTYPE, resets repaired, so sorted).

    The file is memory-mapped and decoded in one pass (``on_invalid``: see
    :func:`iter_blocks`).
    """
    _check_options(orientation, on_reset)
    check_on_invalid(on_invalid)
    with open(path, "rb") as f:
        start, n = _open_checked(f, path)
        with mapped_bytes(f, start, n * RECORD_BYTES) as raw:
            events, _ = decode(raw, orientation, (-1, 0), on_reset, start, path)
    return events


def encode(events: np.ndarray, orientation: str = "jaer") -> np.ndarray:
    """The big-endian records (``RAW_DTYPE``) for ``events``.

    Raises:
        ValueError: coordinates outside 0..127, ``t`` outside 0..2**32-1, unsorted.
    """
    _check_options(orientation)
    cols = columns_for_write(events, FORMAT, SIZE - 1, SIZE - 1, (1 << 32) - 1)
    if orientation == "jaer":
        x_raw, y_raw = 127 - cols.x, cols.y
    else:
        x_raw, y_raw = 127 - cols.y, 127 - cols.x
    raw = np.empty(len(cols), dtype=RAW_DTYPE)
    raw["a"] = (y_raw << 8) | (x_raw << 1) | (1 - cols.p)
    raw["t"] = cols.t
    return raw


def write(
    path: PathLike,
    events: np.ndarray,
    orientation: str = "jaer",
    header_lines: Sequence[str] | None = None,
) -> None:
    """Write an AEDAT 2.0 DVS128 file (see module docstring).

    Args:
        orientation: ``"jaer"`` or ``"transposed"``, as for reading.
        header_lines: ``#`` lines written after ``#!AER-DAT2.0`` (a leading
            ``#!AER-DAT2.0`` in them is not repeated, so ``read_header(...).lines``
            can be passed back); default: a jAER-like description.
    """
    raw = encode(events, orientation)
    if header_lines is None:
        lines = list(DEFAULT_HEADER)
    else:
        extra = list(header_lines)
        if extra and extra[0].strip() == VERSION_LINE:
            extra = extra[1:]
        lines = [VERSION_LINE, *extra]
    for line in lines:
        if not line.startswith("#") or "\n" in line or "\r" in line:
            raise ValueError(f"header line {line!r} must start with '#' and have no line break")
    with open_atomic(path) as f:
        f.write("".join(f"{line}\r\n" for line in lines).encode("latin-1"))
        raw.tofile(f)
