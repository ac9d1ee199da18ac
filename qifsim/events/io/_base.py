"""Shared pieces of the event file readers and writers.

Header records, text-header parsing, block re-batching, write-side checks of
event arrays and atomic file writes. Nothing here knows a particular format.
"""

from __future__ import annotations

import mmap
import os
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import BinaryIO

import numpy as np

from ...atomic import open_atomic  # noqa: F401  (re-exported for the format modules)
from ..array import EVENT_DTYPE
from ..errors import EventFormatError

PathLike = str | os.PathLike


@dataclass(frozen=True)
class Header:
    """What a file says before (or about) its events.

    Attributes:
        format: format name, e.g. ``"prophesee-dat"``.
        lines: the header text lines, without line terminators, in file order
            (empty for formats without a text header).
        fields: ``key -> value`` parsed from ``lines`` (``"% Height 100"`` gives
            ``{"Height": "100"}``, ``"# AEChip: DVS128"`` gives ``{"AEChip": "DVS128"}``)
            or facts a binary header states (e.g. AEDAT4 ``width``/``height``);
            see :func:`parse_fields`.
        data_offset: byte offset where the binary event data starts.
        extra: format-specific values (e.g. the DAT event type and size bytes).
    """

    format: str
    lines: tuple[str, ...] = ()
    fields: dict[str, str] = field(default_factory=dict)
    data_offset: int = 0
    extra: dict[str, int] = field(default_factory=dict)


def parse_fields(lines: Iterable[str], split_at: str = ":") -> dict[str, str]:
    """``key -> value`` of header lines; the first occurrence of a key wins.

    The comment characters (``#``, ``%``, ``!``) and spaces are stripped from the
    front. With ``split_at=":"`` (AEDAT, ``# AEChip: DVS128``) a line splits at
    its first colon, a line without one is a key with value ``""``; with
    ``split_at=" "`` (Prophesee, ``% Date 2017-10-31 11:29:21``) it splits at
    its first whitespace.
    """
    fields: dict[str, str] = {}
    for line in lines:
        text = line.lstrip("#%! \t").strip()
        if not text:  # nothing but comment characters and whitespace (\r, \f, ...)
            continue
        if split_at == " ":
            parts = text.split(None, 1)
            key, value = parts[0], (parts[1] if len(parts) > 1 else "")
        else:
            key, _, value = text.partition(split_at)
        fields.setdefault(key.strip(), value.strip())
    return fields


def read_text_header(
    f: BinaryIO, comment: bytes, end_line: bytes | None = None
) -> tuple[list[str], int, bool]:
    """Read the comment lines at the start of an open binary file.

    Lines are read while the next byte is ``comment`` (one byte, e.g. ``b"#"``);
    with ``end_line`` given the header also ends right after the first line that
    equals it (terminators stripped), wherever the next byte points.

    Returns:
        ``(lines, data_offset, ended)``: the lines decoded as latin-1 without
        ``\\r\\n``, the byte offset after the header, and whether ``end_line`` was
        seen (always False without one). The file is left positioned at
        ``data_offset``.
    """
    lines: list[str] = []
    f.seek(0)
    offset = 0
    while True:
        first = f.read(1)
        if first != comment:
            break
        raw = first + f.readline()
        offset += len(raw)
        text = raw.rstrip(b"\r\n").decode("latin-1")
        lines.append(text)
        if end_line is not None and raw.rstrip(b"\r\n") == end_line:
            f.seek(offset)
            return lines, offset, True
    f.seek(offset)
    return lines, offset, False


def file_size(f: BinaryIO) -> int:
    """Size in bytes of an open file."""
    return os.fstat(f.fileno()).st_size


@contextmanager
def mapped_bytes(f: BinaryIO, offset: int, length: int) -> Iterator[np.ndarray]:
    """A read-only uint8 view of ``length`` bytes of an open file from ``offset`` (mmap).

    Reading a whole file this way skips the copy into a fresh buffer that
    ``np.fromfile`` makes. Do not keep the view (or views of it) beyond the block.
    """
    if length <= 0:
        yield np.empty(0, dtype=np.uint8)
        return
    m = mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ)
    try:
        view = np.frombuffer(m, dtype=np.uint8, count=length, offset=offset)
        yield view
        del view
    finally:
        try:
            m.close()
        except BufferError:  # a view escaped (e.g. in an exception's traceback): GC closes it
            pass


def empty_events() -> np.ndarray:
    """A 0-length event array."""
    return np.empty(0, dtype=EVENT_DTYPE)


def rebatch(blocks: Iterable[np.ndarray], size: int) -> Iterator[np.ndarray]:
    """Re-cut a stream of event blocks into chunks of exactly ``size`` (the last may be shorter).

    Empty blocks are skipped; an empty stream yields nothing.
    """
    pending: list[np.ndarray] = []
    n_pending = 0
    for block in blocks:
        start = 0
        while start < block.shape[0]:
            take = min(size - n_pending, block.shape[0] - start)
            pending.append(block[start : start + take])
            n_pending += take
            start += take
            if n_pending == size:
                yield pending[0].copy() if len(pending) == 1 else np.concatenate(pending)
                pending, n_pending = [], 0
    if n_pending:
        yield np.concatenate(pending)


def concat(blocks: Iterable[np.ndarray]) -> np.ndarray:
    """All blocks in one event array (no copy for a single block)."""
    parts = [b for b in blocks if b.shape[0]]
    if not parts:
        return empty_events()
    return parts[0] if len(parts) == 1 else np.concatenate(parts)


def sorted_by_time(events: np.ndarray) -> np.ndarray:
    """``events`` if already sorted by ``t``, else a stably sorted copy."""
    t = events["t"]
    if t.shape[0] < 2 or not np.any(t[1:] < t[:-1]):
        return events
    return events[np.argsort(t, kind="stable")]


@dataclass(frozen=True)
class Columns:
    """Event columns as int64 arrays, checked for writing (see :func:`columns_for_write`)."""

    x: np.ndarray
    y: np.ndarray
    t: np.ndarray
    p: np.ndarray

    def __len__(self) -> int:
        return int(self.t.shape[0])


def columns_for_write(
    events: np.ndarray, fmt: str, x_max: int, y_max: int, t_max: int | None = None
) -> Columns:
    """Check ``events`` can be stored in ``fmt`` and return its columns as int64.

    Requires fields x, y, t, p; ``0 <= x <= x_max``, ``0 <= y <= y_max``;
    ``0 <= t`` (and ``t <= t_max`` when given), sorted by ``t``; ``p`` in {0, 1}
    (bool accepted).

    Raises:
        ValueError: naming the first offending event and the limit.
    """
    if not isinstance(events, np.ndarray) or events.dtype.names is None:
        raise ValueError("events must be a numpy structured array with fields x, y, t, p")
    missing = [name for name in ("x", "y", "t", "p") if name not in events.dtype.names]
    if missing:
        raise ValueError(f"event array lacks fields {missing}; expected x, y, t, p")
    if events.ndim != 1:
        raise ValueError(f"events must be 1-d, got shape {events.shape}")
    cols = {name: np.asarray(events[name]).astype(np.int64) for name in ("x", "y", "t", "p")}
    limits = {"x": (0, x_max), "y": (0, y_max), "t": (0, t_max), "p": (0, 1)}
    for name, (low, high) in limits.items():
        values = cols[name]
        bad = values < low if high is None else (values < low) | (values > high)
        if values.size and bad.any():
            i = int(np.argmax(bad))
            span = f">= {low}" if high is None else f"in {low}..{high}"
            raise ValueError(f"{fmt} stores {name} {span}; event {i} has {name}={values[i]}")
    t = cols["t"]
    if t.size > 1 and np.any(t[1:] < t[:-1]):
        i = int(np.argmax(t[1:] < t[:-1])) + 1
        raise ValueError(f"events must be sorted by t to be written (first decrease at event {i})")
    return Columns(**cols)


def format_error(
    fmt: str, path: PathLike, message: str, offset: int | None = None, where: str | None = None
):
    """An :class:`EventFormatError` (shorthand used by the format modules)."""
    return EventFormatError(fmt, path, message, offset, where)
