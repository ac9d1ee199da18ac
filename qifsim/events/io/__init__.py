"""Event file readers and writers (numpy only; ``aedat4`` needs the optional ``aedat`` package).

Formats (:data:`FORMATS`; exact layouts in each module's docstring):

===============  ===============================  =======  ======
name             used by                          read     write
===============  ===============================  =======  ======
atis-bin         N-MNIST, N-Caltech101 ``.bin``   yes      yes
prophesee-dat    N-Cars ``.dat`` (DAT v2)         yes      yes
aedat2           CIFAR10-DVS, DVS128 ``.aedat``   yes      yes
aedat31          DVS128-Gesture ``.aedat``        yes      yes
aedat4           DV / DVXplorer ``.aedat4``       yes      no
===============  ===============================  =======  ======

Events are :data:`qifsim.events.EVENT_DTYPE` arrays (x, y int16; t int64 us;
p int8, 1 = ON). Options by format: ``aedat2``: ``orientation`` ("jaer" or
"transposed"), ``on_reset`` ("continue" or "raise"); ``aedat4``:
``stream_id``. Writers: ``aedat2``: ``orientation``, ``header_lines``;
``aedat31``: ``packet_events``, ``header_lines``; ``prophesee-dat``:
``header_lines``, ``width``, ``height``.

DVS128-Gesture side files (label CSVs, trial lists, slicing into gestures)
are read by :mod:`.gesture`.
"""

from __future__ import annotations

from collections.abc import Iterator
from types import ModuleType
from typing import Any

import numpy as np

from . import aedat2, aedat4, aedat31, atis, prophesee_dat
from ._base import Header, PathLike, rebatch
from .gesture import read_gesture_labels, read_trials, slice_gesture_recording
from .sniff import FORMATS, sniff_format

_MODULES: dict[str, ModuleType] = {
    "atis-bin": atis,
    "prophesee-dat": prophesee_dat,
    "aedat2": aedat2,
    "aedat31": aedat31,
    "aedat4": aedat4,
}
WRITABLE_FORMATS = ("atis-bin", "prophesee-dat", "aedat2", "aedat31")


def _module(fmt: str | None, path: PathLike) -> ModuleType:
    name = sniff_format(path) if fmt is None else fmt
    if name not in _MODULES:
        raise ValueError(f"unknown event format {name!r}; formats are {FORMATS}")
    return _MODULES[name]


def read_events(path: PathLike, format: str | None = None, **options: Any) -> np.ndarray:
    """Read all events of a file.

    Args:
        path: the file.
        format: one of :data:`FORMATS`; None sniffs it (:func:`sniff_format`).
        **options: format options (see the module docstring).

    Returns:
        EVENT_DTYPE array ``[N]`` sorted by ``t`` (stable; files are normally
        in time order already, and then nothing is reordered).

    Raises:
        EventFormatError: a corrupt, truncated or mislabelled file (with the
            format and byte offset), or a format that cannot be sniffed.
    """
    # each reader returns its events sorted (by construction, or stably sorted
    # only when the file's timestamps decrease)
    return _module(format, path).read(path, **options)


def iter_events(
    path: PathLike,
    format: str | None = None,
    chunk_events: int = 1_000_000,
    **options: Any,
) -> Iterator[np.ndarray]:
    """Read a file chunk by chunk, for files larger than memory.

    The file is read in blocks (``np.fromfile`` with a count), never whole.
    Chunks hold exactly ``chunk_events`` events except the last; timestamps
    get the same overflow/wrap/reset repair as :func:`read_events`, but chunks
    come in file order and are not re-sorted (concatenated they equal
    :func:`read_events` for any file in time order).

    Raises:
        EventFormatError: as :func:`read_events`; errors found up front (file
            size, header) come before the first chunk, others when reached.
    """
    if not isinstance(chunk_events, (int, np.integer)) or chunk_events < 1:
        raise ValueError(f"chunk_events must be an integer >= 1, got {chunk_events!r}")
    module = _module(format, path)
    return rebatch(module.iter_blocks(path, int(chunk_events), **options), int(chunk_events))


def write_events(path: PathLike, events: np.ndarray, format: str, **options: Any) -> None:
    """Write ``events`` (sorted by ``t``) to ``path`` in ``format``, atomically.

    Reading the file back with the same options gives exactly ``events``
    (in EVENT_DTYPE). Each format's limits (coordinate ranges, timestamps) are
    in its module docstring; events beyond them raise ValueError.

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
