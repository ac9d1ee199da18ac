"""Event arrays, the numpy framing reference and the synthetic stream."""

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from qifsim.events import EVENT_DTYPE, make_events, moving_squares, to_frames, validate_events


def random_events(rng, n, width=34, height=34, t_max=100_000):
    t = np.sort(rng.integers(0, t_max, n))
    return make_events(
        rng.integers(0, width, n), rng.integers(0, height, n), t, rng.integers(0, 2, n)
    )


def loop_frames(events, sensor_size, n_frames, split_by):
    """Independent per-event loop following FORMATS.md's wording."""
    width, height, _ = sensor_size
    frames = np.zeros((n_frames, 2, height, width), dtype=np.float32)
    n = len(events)
    for i, ev in enumerate(events):
        if split_by == "count":
            per = n // n_frames
            k = min(i // per, n_frames - 1) if per else n_frames - 1
        else:
            t0, t1 = events["t"][0], events["t"][-1]
            k = 0 if t1 == t0 else int((ev["t"] - t0) * n_frames // (t1 - t0 + 1))
        frames[k, ev["p"], ev["y"], ev["x"]] += 1
    return frames


@settings(max_examples=40, deadline=None)
@given(
    n=st.integers(0, 300),
    n_frames=st.integers(1, 12),
    seed=st.integers(0, 2**31),
    split_by=st.sampled_from(["count", "time"]),
)
def test_to_frames_matches_per_event_loop_and_drops_nothing(n, n_frames, seed, split_by):
    rng = np.random.default_rng(seed)
    events = random_events(rng, n, width=7, height=5, t_max=rng.integers(1, 1000))
    frames = to_frames(events, (7, 5, 2), n_frames, split_by)
    assert frames.shape == (n_frames, 2, 5, 7) and frames.dtype == np.float32
    np.testing.assert_array_equal(frames, loop_frames(events, (7, 5, 2), n_frames, split_by))
    for pol in (0, 1):
        assert frames[:, pol].sum() == (events["p"] == pol).sum()


def test_count_split_puts_the_remainder_in_the_last_frame():
    events = random_events(np.random.default_rng(0), 23)
    frames = to_frames(events, (34, 34, 2), 5, "count")
    assert frames.sum(axis=(1, 2, 3)).tolist() == [4, 4, 4, 4, 7]


def test_time_split_allows_empty_bins():
    events = make_events([1, 2], [1, 1], [0, 1000], [1, 0])
    frames = to_frames(events, (4, 4, 2), 4, "time")
    assert frames.sum(axis=(1, 2, 3)).tolist() == [1, 0, 0, 1]


def test_bad_events_raise_clear_errors():
    events = make_events([1, 40], [1, 1], [0, 5], [1, 0])
    with pytest.raises(ValueError, match="x=40 outside the sensor"):
        validate_events(events, (34, 34, 2))
    with pytest.raises(ValueError, match="not sorted"):
        validate_events(make_events([1, 1], [1, 1], [5, 0], [1, 0]), (34, 34, 2))
    with pytest.raises(ValueError, match="polarity must be 0"):
        validate_events(make_events([1], [1], [0], [3]), (34, 34, 2))
    with pytest.raises(ValueError, match="split_by must be one of"):
        to_frames(make_events([1], [1], [0], [1]), (34, 34, 2), 3, "space")
    with pytest.raises(ValueError, match="equally long"):
        make_events([1, 2], [1], [0], [1])
    with pytest.raises(ValueError, match="outside"):
        make_events([70000], [1], [0], [1])


def test_synthetic_stream_is_deterministic_and_valid():
    recordings, labels = moving_squares(8, seed=3)
    again, _ = moving_squares(8, seed=3)
    assert labels.tolist() == [0, 1, 2, 3, 0, 1, 2, 3]
    for a, b in zip(recordings, again, strict=True):
        assert a.dtype == EVENT_DTYPE
        np.testing.assert_array_equal(a, b)
        validate_events(a, (34, 34, 2))
        assert 1000 < len(a) < 50_000
        assert 0.3 < a["p"].mean() < 0.7  # ON and OFF edges
    other, _ = moving_squares(8, seed=4)
    assert len(other[0]) != len(recordings[0]) or not np.array_equal(other[0], recordings[0])


def test_decoding_and_framing_do_not_import_torch():
    import subprocess
    import sys

    code = (
        "import sys, qifsim.events as e; "
        "ev = e.moving_squares(1)[0][0]; e.to_frames(ev, (34, 34, 2), 4); "
        "print('torch' in sys.modules)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"
