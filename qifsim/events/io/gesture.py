"""DVS128-Gesture side files: label CSVs, trial lists, and slicing recordings into gestures.

* ``userXX_<lighting>_labels.csv``: header ``class,startTime_usec,endTime_usec``,
  then one gesture per line, classes 1..11, times in us on the recording's clock;
* ``trials_to_train.txt`` / ``trials_to_test.txt``: one ``.aedat`` file name per line.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from ..errors import EventFormatError
from ._base import PathLike

LABEL_DTYPE = np.dtype([("class", "<i2"), ("start_us", "<i8"), ("end_us", "<i8")])
LABEL_HEADER = ("class", "startTime_usec", "endTime_usec")
N_CLASSES = 11
LABELS_FORMAT = "gesture-labels"
TRIALS_FORMAT = "gesture-trials"


def read_gesture_labels(csv_path: PathLike) -> np.ndarray:
    """Read a gesture label CSV.

    Returns:
        ``LABEL_DTYPE`` array ``[G]``: ``class`` (1..11 as in the file),
        ``start_us``, ``end_us``. Blank lines are skipped.

    Raises:
        EventFormatError: a missing or wrong header, a line without three
            integers, a class outside 1..11 or ``end_us <= start_us``; the
            message names the file and the 1-based line number.
    """
    text = Path(csv_path).read_bytes().decode("utf-8", errors="replace").lstrip("\ufeff")
    rows: list[tuple[int, int, int]] = []
    header_seen = False
    for number, line in enumerate(text.splitlines(), start=1):
        line = line.strip()
        if not line:
            continue
        cells = [c.strip() for c in line.split(",")]
        if not header_seen:
            if tuple(cells) != LABEL_HEADER:
                raise EventFormatError(
                    LABELS_FORMAT,
                    csv_path,
                    f"line {number}: expected header {','.join(LABEL_HEADER)!r}, got {line!r}",
                )
            header_seen = True
            continue
        try:
            if len(cells) != 3:
                raise ValueError
            label, start, end = (int(c) for c in cells)
        except ValueError:
            raise EventFormatError(
                LABELS_FORMAT, csv_path, f"line {number}: expected 3 integers, got {line!r}"
            ) from None
        if not 1 <= label <= N_CLASSES:
            raise EventFormatError(
                LABELS_FORMAT, csv_path, f"line {number}: class {label} outside 1..{N_CLASSES}"
            )
        if start < 0 or end <= start:
            raise EventFormatError(
                LABELS_FORMAT,
                csv_path,
                f"line {number}: need 0 <= startTime_usec < endTime_usec, got {start}, {end}",
            )
        rows.append((label, start, end))
    if not header_seen:
        raise EventFormatError(LABELS_FORMAT, csv_path, "line 1: empty file, no header")
    return np.array(rows, dtype=LABEL_DTYPE)


def read_trials(txt_path: PathLike) -> list[str]:
    """The ``.aedat`` file names listed in a trials file, in order (blank lines skipped).

    Raises:
        EventFormatError: a line that is not a ``.aedat`` file name (names file and line).
    """
    text = Path(txt_path).read_bytes().decode("utf-8", errors="replace").lstrip("\ufeff")
    names: list[str] = []
    for number, line in enumerate(text.splitlines(), start=1):
        name = line.strip()
        if not name:
            continue
        if not name.endswith(".aedat") or any(c in name for c in ",\t"):
            message = f"line {number}: expected an .aedat file name, got {name!r}"
            raise EventFormatError(TRIALS_FORMAT, txt_path, message)
        names.append(name)
    return names


def slice_gesture_recording(events: np.ndarray, labels: np.ndarray) -> list[tuple[np.ndarray, int]]:
    """Cut a recording into its labelled gestures.

    Args:
        events: event array sorted by ``t`` (us).
        labels: ``LABEL_DTYPE`` rows (see :func:`read_gesture_labels`).

    Returns:
        One ``(events with start_us <= t < end_us, class index 0..10)`` per
        label row, in row order (the event arrays are copies).

    Raises:
        ValueError: unsorted events.
    """
    t = events["t"]
    if t.shape[0] > 1 and np.any(t[1:] < t[:-1]):
        raise ValueError("events must be sorted by t")
    out = []
    for row in labels:
        lo, hi = np.searchsorted(t, [row["start_us"], row["end_us"]], side="left")
        out.append((events[lo:hi].copy(), int(row["class"]) - 1))
    return out
