"""Event file readers and writers (numpy only; ``aedat4`` needs the optional ``aedat`` package).

Formats (:data:`FORMATS`; exact layouts in each module's docstring):

===============  ===============================  =======  ======
name             used by                          read     write
===============  ===============================  =======  ======
atis-bin         N-MNIST, N-Caltech101 ``.bin``   yes      yes
prophesee-dat    N-Cars ``.dat`` (DAT v2)         yes      yes
aedat2           CIFAR10-DVS, DVS128 ``.aedat``   yes      yes
aedat31          DVS128-Gesture ``.aedat``        yes      yes
aedat4           DV / DVXplorer ``.aedat4``       yes      yes (uncompressed)
===============  ===============================  =======  ======

Events are :data:`qifsim.events.EVENT_DTYPE` arrays (x, y int16; t int64 us;
p int8, 1 = ON). Options by format: ``aedat2``: ``orientation`` ("jaer" or
"transposed"), ``on_reset`` ("continue" or "raise"); ``aedat4``:
``stream_id``. Writers: ``aedat2``: ``orientation``, ``header_lines``;
``aedat31``: ``packet_events``, ``header_lines``; ``prophesee-dat``:
``header_lines``, ``width``, ``height``; ``aedat4``: ``width``, ``height``,
``packet_events``.

Every reader fails closed: malformed headers, truncated or inconsistent
structures, counts that exceed the file, and events outside the sensor the
header (or the format) states or with a polarity other than 0/1 raise
:class:`~qifsim.events.EventFormatError` naming the byte offset (AEDAT4: of the
packet, plus the packet and event index). Only when asked, ``on_invalid="drop"``
removes invalid events instead; the readers then warn with
:class:`~qifsim.events.errors.DroppedEventsWarning` (its ``report`` is a
:class:`DropReport`), and ``read_events(..., return_report=True)`` also returns
the report. Structural errors always raise.

DVS128-Gesture side files (label CSVs, trial lists, slicing into gestures)
are read by :mod:`.gesture`.
"""

from __future__ import annotations

import warnings
from collections.abc import Iterator
from types import ModuleType
from typing import Any

import numpy as np

from ..errors import DroppedEventsWarning
from . import aedat2, aedat4, aedat31, atis, prophesee_dat
from ._base import Header, PathLike, rebatch
from ._validate import ON_INVALID, DropReport, check_on_invalid
from .gesture import read_gesture_labels, read_trials, slice_gesture_recording
from .sniff import FORMATS, sniff_format

_MODULES: dict[str, ModuleType] = {
    "atis-bin": atis,
    "prophesee-dat": prophesee_dat,
    "aedat2": aedat2,
    "aedat31": aedat31,
    "aedat4": aedat4,
}
WRITABLE_FORMATS = ("atis-bin", "prophesee-dat", "aedat2", "aedat31", "aedat4")


def _module(fmt: str | None, path: PathLike) -> ModuleType:
    name = sniff_format(path) if fmt is None else fmt
    if name not in _MODULES:
        raise ValueError(f"unknown event format {name!r}; formats are {FORMATS}")
    return _MODULES[name]


def _report(name: str, path: PathLike, on_invalid: str) -> DropReport | None:
    return DropReport(name, str(path)) if check_on_invalid(on_invalid) else None


def _warn(report: DropReport | None) -> None:
    if report is not None and report.dropped:
        warnings.warn(DroppedEventsWarning(report), stacklevel=3)


def read_events(
    path: PathLike,
    format: str | None = None,
    on_invalid: str = "raise",
    return_report: bool = False,
    **options: Any,
) -> np.ndarray | tuple[np.ndarray, DropReport]:
    """Read all events of a file.

    Args:
        path: the file.
        format: one of :data:`FORMATS`; None sniffs it (:func:`sniff_format`).
        on_invalid: ``"raise"`` (default): an event outside the sensor or with a
            polarity other than 0/1 raises; ``"drop"``: such events are removed,
            counted, and a :class:`~qifsim.events.errors.DroppedEventsWarning` is
            issued when any were.
        return_report: also return the :class:`DropReport` (``dropped``,
            ``reasons``, ``first_offset``; all zero unless ``on_invalid="drop"``).
        **options: format options (see the module docstring).

    Returns:
        EVENT_DTYPE array ``[N]`` sorted by ``t`` (stable; files are normally
        in time order already, and then nothing is reordered); with
        ``return_report``, ``(events, report)``.

    Raises:
        EventFormatError: a corrupt, truncated or mislabelled file, or an invalid
            event (with the format and byte offset), or a format that cannot be sniffed.
    """
    module = _module(format, path)
    report = _report(module.FORMAT, path, on_invalid)
    # each reader returns its events sorted (by construction, or stably sorted
    # only when the file's timestamps decrease)
    events = module.read(path, on_invalid=on_invalid, report=report, **options)
    _warn(report)
    if return_report:
        return events, report if report is not None else DropReport(module.FORMAT, str(path))
    return events


def iter_events(
    path: PathLike,
    format: str | None = None,
    chunk_events: int = 1_000_000,
    on_invalid: str = "raise",
    **options: Any,
) -> Iterator[np.ndarray]:
    """Read a file chunk by chunk, for files larger than memory.

    The file is read in blocks (``np.fromfile`` with a count), never whole.
    Chunks hold exactly ``chunk_events`` events except the last; timestamps
    get the same overflow/wrap/reset repair as :func:`read_events`, but chunks
    come in file order and are not re-sorted (concatenated they equal
    :func:`read_events` for any file in time order). ``on_invalid`` as for
    :func:`read_events`; with ``"drop"`` one warning with the totals comes when
    the last chunk has been read.

    Raises:
        EventFormatError: as :func:`read_events`; errors found up front (file
            size, header) come before the first chunk, others when reached.
    """
    if not isinstance(chunk_events, (int, np.integer)) or chunk_events < 1:
        raise ValueError(f"chunk_events must be an integer >= 1, got {chunk_events!r}")
    module = _module(format, path)
    report = _report(module.FORMAT, path, on_invalid)
    blocks = module.iter_blocks(
        path, int(chunk_events), on_invalid=on_invalid, report=report, **options
    )
    return _warn_at_end(rebatch(blocks, int(chunk_events)), report)


def _warn_at_end(chunks: Iterator[np.ndarray], report: DropReport | None) -> Iterator[np.ndarray]:
    yield from chunks
    _warn(report)


def write_events(path: PathLike, events: np.ndarray, format: str, **options: Any) -> None:
    """Write ``events`` (sorted by ``t``) to ``path`` in ``format``, atomically.

    Reading the file back with the same options gives exactly ``events``
    (in EVENT_DTYPE); writers refuse events outside the sensor their header
    states, so what they write always reads back. Each format's limits
    (coordinate ranges, timestamps) are in its module docstring; events beyond
    them raise ValueError.

    Raises:
        ValueError: unknown or read-only format, events the format cannot store.
    """
    if format not in WRITABLE_FORMATS:
        raise ValueError(f"cannot write format {format!r}; writable: {WRITABLE_FORMATS}")
    _MODULES[format].write(path, events, **options)


def read_header(path: PathLike, format: str | None = None, **options: Any) -> Header:
    """The file's header (text lines, parsed fields, data offset) without its events."""
    return _module(format, path).read_header(path, **options)


__all__ = [
    "FORMATS",
    "ON_INVALID",
    "DropReport",
    "WRITABLE_FORMATS",
    "Header",
    "iter_events",
    "read_events",
    "read_gesture_labels",
    "read_header",
    "read_trials",
    "slice_gesture_recording",
    "sniff_format",
    "write_events",
]
