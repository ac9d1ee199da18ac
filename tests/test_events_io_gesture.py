"""DVS128-Gesture label CSVs, trial lists and slicing a recording into gestures."""

from __future__ import annotations

import numpy as np
import pytest

from qifsim.events import make_events
from qifsim.events.errors import EventFormatError
from qifsim.events.io import read_events, write_events
from qifsim.events.io.gesture import (
    LABEL_DTYPE,
    read_gesture_labels,
    read_trials,
    slice_gesture_recording,
)

CSV = "class,startTime_usec,endTime_usec\n1,100,200\n11,200,450\r\n\n3,2147483700,2147483800\n"


def test_read_gesture_labels(tmp_path):
    path = tmp_path / "user01_fluorescent_labels.csv"
    path.write_text(CSV)
    labels = read_gesture_labels(path)
    assert labels.dtype == LABEL_DTYPE
    assert labels["class"].tolist() == [1, 11, 3]
    assert labels["start_us"].tolist() == [100, 200, 2147483700]
    assert labels["end_us"].tolist() == [200, 450, 2147483800]


@pytest.mark.parametrize(
    ("text", "line", "match"),
    [
        ("", 1, "no header"),
        ("label,start,end\n1,2,3\n", 1, "expected header"),
        ("class,startTime_usec,endTime_usec\n1,2\n", 2, "3 integers"),
        ("class,startTime_usec,endTime_usec\n1,100,200\n1,a,3\n", 3, "3 integers"),
        ("class,startTime_usec,endTime_usec\n12,1,3\n", 2, "class 12 outside 1..11"),
        ("class,startTime_usec,endTime_usec\n0,1,3\n", 2, "class 0"),
        ("class,startTime_usec,endTime_usec\n\n2,5,5\n", 3, "startTime_usec < endTime_usec"),
    ],
)
def test_malformed_label_csv_names_file_and_line(text, line, match, tmp_path):
    path = tmp_path / "user02_led_labels.csv"
    path.write_text(text)
    with pytest.raises(EventFormatError, match=match) as info:
        read_gesture_labels(path)
    assert f"line {line}:" in str(info.value) and "user02_led_labels.csv" in str(info.value)


def test_read_trials(tmp_path):
    path = tmp_path / "trials_to_train.txt"
    path.write_text("user01_fluorescent.aedat\nuser01_lab.aedat\r\n\n")
    assert read_trials(path) == ["user01_fluorescent.aedat", "user01_lab.aedat"]
    path.write_text("user01_fluorescent.aedat\nuser01_labels.csv\n")
    with pytest.raises(EventFormatError, match="line 2:"):
        read_trials(path)


def test_slice_gesture_recording_boundaries(tmp_path):
    t = np.array([99, 100, 150, 199, 200, 449, 450, 2147483750])
    events = make_events(np.arange(8), np.zeros(8), t, np.ones(8))
    path = tmp_path / "user01_fluorescent.aedat"
    write_events(path, events, "aedat31")
    (tmp_path / "labels.csv").write_text(CSV)
    labels = read_gesture_labels(tmp_path / "labels.csv")
    pieces = slice_gesture_recording(read_events(path), labels)
    assert [c for _, c in pieces] == [0, 10, 2]
    assert [p["t"].tolist() for p, _ in pieces] == [
        [100, 150, 199],
        [200, 449],
        [2147483750],
    ]
    with pytest.raises(ValueError, match="sorted"):
        slice_gesture_recording(events[::-1], labels)
