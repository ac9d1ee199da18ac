"""Fast framing (numba) vs the numpy reference; fixed windows, normalisation, batches, tonic."""

import numpy as np
import pytest
from conftest import REAL_EVENTS
from hypothesis import given, settings
from hypothesis import strategies as st

from qifsim.events.array import EVENT_DTYPE, make_events
from qifsim.events.frames import frames_batch, to_frames, to_frames_reference

REAL = REAL_EVENTS


def random_events(rng, n, width, height, t_max, p_dtype=np.int8):
    t = np.sort(rng.integers(0, t_max, n))
    events = make_events(
        rng.integers(0, width, n), rng.integers(0, height, n), t, rng.integers(0, 2, n)
    )
    if p_dtype is np.bool_:
        as_bool = np.empty(n, dtype=[("x", "<i2"), ("y", "<i2"), ("t", "<i8"), ("p", "?")])
        for name in ("x", "y", "t"):
            as_bool[name] = events[name]
        as_bool["p"] = events["p"].astype(bool)
        return as_bool
    return events


def read_nmnist(path):
    """5-byte ATIS events (FORMATS.md); the fixture has no timestamp overflow."""
    raw = np.frombuffer(path.read_bytes(), dtype=np.uint8).reshape(-1, 5).astype(np.int64)
    t = ((raw[:, 2] & 0x7F) << 16) | (raw[:, 3] << 8) | raw[:, 4]
    return make_events(raw[:, 0], raw[:, 1], t, raw[:, 2] >> 7)


def read_ncars(path):
    """Prophesee DAT v2: '%' header lines, 2 type/size bytes, then 8-byte events."""
    data = path.read_bytes()
    pos = 0
    while data[pos : pos + 1] == b"%":
        pos = data.index(b"\n", pos) + 1
    raw = np.frombuffer(data[pos + 2 :], dtype="<u4").reshape(-1, 2)
    w = raw[:, 1]
    order = np.argsort(raw[:, 0], kind="stable")
    return make_events(w & 0x3FFF, (w >> 14) & 0x3FFF, raw[:, 0].astype(np.int64), (w >> 28) & 0xF)[
        order
    ]


@settings(max_examples=60, deadline=None)
@given(
    n=st.integers(0, 400),
    n_frames=st.integers(1, 13),
    seed=st.integers(0, 2**31),
    split_by=st.sampled_from(["count", "time"]),
    normalize=st.sampled_from([None, "max"]),
    bool_p=st.booleans(),
)
def test_numba_equals_reference_exactly(n, n_frames, seed, split_by, normalize, bool_p):
    rng = np.random.default_rng(seed)
    t_max = int(rng.choice([1, 7, 1000, 10**12]))
    events = random_events(rng, n, 9, 4, t_max, np.bool_ if bool_p else np.int8)
    sensor = (9, 4, 2)
    fast = to_frames(events, sensor, n_frames, split_by, impl="numba", normalize=normalize)
    ref = to_frames_reference(events, sensor, n_frames, split_by, normalize=normalize)
    assert fast.dtype == ref.dtype == np.float32 and fast.shape == (n_frames, 2, 4, 9)
    np.testing.assert_array_equal(fast, ref)
    if normalize is None:
        for pol in (0, 1):
            assert fast[:, pol].sum() == (events["p"] == pol).sum()


@settings(max_examples=40, deadline=None)
@given(n=st.integers(0, 300), window=st.integers(1, 500), seed=st.integers(0, 2**31))
def test_fixed_window_numba_equals_reference_and_loop(n, window, seed):
    rng = np.random.default_rng(seed)
    events = random_events(rng, n, 5, 6, 3000)
    fast = to_frames(events, (5, 6, 2), time_window_us=window)
    ref = to_frames(events, (5, 6, 2), time_window_us=window, impl="numpy")
    np.testing.assert_array_equal(fast, ref)
    expected_t = 0 if n == 0 else -(-(int(events["t"][-1]) - int(events["t"][0]) + 1) // window)
    assert fast.shape == (expected_t, 2, 6, 5)
    loop = np.zeros_like(fast)
    for ev in events:
        loop[(ev["t"] - events["t"][0]) // window, ev["p"], ev["y"], ev["x"]] += 1
    np.testing.assert_array_equal(fast, loop)


def test_large_random_streams_match_reference_in_both_splits():
    rng = np.random.default_rng(7)
    events = random_events(rng, 300_000, 128, 128, 5_000_000)
    for split_by in ("count", "time"):
        fast = to_frames(events, (128, 128, 2), 10, split_by)
        np.testing.assert_array_equal(
            fast, to_frames_reference(events, (128, 128, 2), 10, split_by)
        )
        sums = fast.sum(axis=(0, 2, 3))
        assert sums.tolist() == [(events["p"] == 0).sum(), (events["p"] == 1).sum()]


@pytest.mark.parametrize(
    "name, reader, sensor",
    [
        ("sample_nmnist.bin", read_nmnist, (34, 34, 2)),
        ("sample_ncars.dat", read_ncars, (120, 100, 2)),
    ],
)
def test_real_recordings_match_reference(name, reader, sensor):
    path = REAL / name
    if not path.exists():
        pytest.skip(f"real fixture {path} not present")
    events = reader(path)
    assert len(events) in (4325, 2009)
    for kwargs in (
        {"n_frames": 10, "split_by": "count"},
        {"n_frames": 10, "split_by": "time"},
        {"n_frames": 7, "split_by": "time", "normalize": "max"},
        {"time_window_us": 10_000},
    ):
        fast = to_frames(events, sensor, **kwargs)
        np.testing.assert_array_equal(fast, to_frames(events, sensor, impl="numpy", **kwargs))
        if "normalize" not in kwargs:
            assert fast.sum() == len(events)


def test_fixed_window_keeps_the_last_partial_window():
    events = make_events([0, 1, 2, 3], [0, 0, 0, 0], [1000, 1099, 1100, 1250], [1, 1, 0, 1])
    frames = to_frames(events, (4, 1, 2), time_window_us=100)
    assert frames.shape == (3, 2, 1, 4)
    assert frames.sum(axis=(1, 2, 3)).tolist() == [2, 1, 1]
    assert frames[2, 1, 0, 3] == 1
    exact = make_events([0, 0], [0, 0], [0, 200], [0, 0])  # span 201 us -> 3 windows
    assert to_frames(exact, (1, 1, 2), time_window_us=100).sum(axis=(1, 2, 3)).tolist() == [1, 0, 1]
    assert to_frames(events[:0], (4, 1, 2), time_window_us=100).shape == (0, 2, 1, 4)


def test_fixed_window_argument_conflicts_raise():
    events = make_events([0], [0], [0], [1])
    with pytest.raises(ValueError, match="leave n_frames unset"):
        to_frames(events, (1, 1, 2), 10, time_window_us=5)
    with pytest.raises(ValueError, match="slices by time"):
        to_frames(events, (1, 1, 2), split_by="count", time_window_us=5)
    with pytest.raises(ValueError, match="time_window_us must be"):
        to_frames(events, (1, 1, 2), time_window_us=0)
    assert to_frames(events, (1, 1, 2), split_by="time", time_window_us=5).shape[0] == 1


def test_max_normalisation_divides_each_frame_by_its_peak():
    rng = np.random.default_rng(1)
    events = random_events(rng, 500, 6, 6, 1000)
    events = np.concatenate([events, make_events([1], [1], [5000], [0])])  # leaves empty bins
    counts = to_frames(events, (6, 6, 2), 8, "time")
    normed = to_frames(events, (6, 6, 2), 8, "time", normalize="max")
    for k in range(8):
        peak = counts[k].max()
        if peak == 0:
            assert not normed[k].any()
        else:
            assert normed[k].max() == 1.0
            np.testing.assert_array_equal(normed[k], counts[k] / peak)
    assert (counts.max(axis=(1, 2, 3)) == 0).any()
    with pytest.raises(ValueError, match="normalize must be"):
        to_frames(events, (6, 6, 2), normalize="sum")


@pytest.mark.parametrize("split_by", ["count", "time"])
def test_batch_equals_a_loop_of_singles(split_by):
    rng = np.random.default_rng(2)
    recordings = [random_events(rng, n, 10, 8, 10_000) for n in (0, 1, 5, 9, 300, 2000, 3)]
    batch = frames_batch(recordings, (10, 8, 2), 6, split_by, normalize="max")
    assert batch.shape == (7, 6, 2, 8, 10) and batch.dtype == np.float32
    for i, events in enumerate(recordings):
        single = to_frames(events, (10, 8, 2), 6, split_by, normalize="max")
        np.testing.assert_array_equal(batch[i], single)
    np.testing.assert_array_equal(
        batch, frames_batch(recordings, (10, 8, 2), 6, split_by, impl="numpy", normalize="max")
    )
    assert frames_batch([], (10, 8, 2), 6, split_by).shape == (0, 6, 2, 8, 10)


def test_nothing_is_clipped_bad_events_raise():
    sensor = (34, 34, 2)
    good = make_events([1, 2, 3], [1, 1, 1], [0, 5, 9], [1, 0, 1])
    cases = {
        "x=40 outside the sensor": make_events([1, 40, 3], [1, 1, 1], [0, 5, 9], [1, 0, 1]),
        "y=-1 outside the sensor": make_events([1, 2, 3], [1, -1, 1], [0, 5, 9], [1, 0, 1]),
        "y=34 outside the sensor": make_events([1, 2, 3], [1, 1, 34], [0, 5, 9], [1, 0, 1]),
        "not sorted": make_events([1, 2, 3], [1, 1, 1], [0, 9, 5], [1, 0, 1]),
        "polarity must be 0": make_events([1, 2, 3], [1, 1, 1], [0, 5, 9], [1, 2, 1]),
    }
    for message, events in cases.items():
        for kwargs in ({"split_by": "count"}, {"split_by": "time"}, {"time_window_us": 3}):
            for impl in ("numba", "numpy"):
                with pytest.raises(ValueError, match=message):
                    to_frames(events, sensor, impl=impl, **kwargs)
        with pytest.raises(ValueError, match=f"recording 1: .*{message}"):
            frames_batch([good, events, good], sensor, 3)
    with pytest.raises(ValueError, match="must be a numpy structured array"):
        to_frames(np.zeros(3), sensor)
    with pytest.raises(ValueError, match="impl must be"):
        to_frames(good, sensor, impl="cuda")
    with pytest.raises(ValueError, match="n_frames must be"):
        to_frames(good, sensor, 0)


def test_unsorted_across_a_frame_boundary_is_caught():
    t = np.arange(100)
    t[50], t[49] = 48, 60  # the decrease sits between two count frames of 10
    events = make_events(np.zeros(100), np.zeros(100), t, np.zeros(100))
    with pytest.raises(ValueError, match="not sorted"):
        to_frames(events, (1, 1, 2), 10, "count")


# -- tonic (GPL, optional): conventions compared where they coincide -------------------------


def _tonic_frames(events, sensor, **kwargs):
    tonic = pytest.importorskip("tonic")
    as_tonic = np.empty(len(events), dtype=[("x", "<i8"), ("y", "<i8"), ("t", "<i8"), ("p", "<i8")])
    for name in EVENT_DTYPE.names:
        as_tonic[name] = events[name]
    return tonic.transforms.ToFrame(sensor_size=sensor, **kwargs)(as_tonic).astype(np.float32)


def test_count_split_equals_tonic_event_bins_when_n_divides():
    """tonic n_event_bins: N // T events per frame, the remainder dropped (ours: last frame)."""
    rng = np.random.default_rng(3)
    sensor = (20, 16, 2)
    ragged = random_events(rng, 1007, *sensor[:2], 50_000)
    events = ragged[:1000]
    np.testing.assert_array_equal(
        to_frames(events, sensor, 10, "count"), _tonic_frames(events, sensor, n_event_bins=10)
    )
    ours = to_frames(ragged, sensor, 10, "count")
    theirs = _tonic_frames(ragged, sensor, n_event_bins=10)
    assert theirs.sum() == 1000 and ours.sum() == 1007  # tonic drops the 7 left over
    np.testing.assert_array_equal(ours[:9], theirs[:9])


def test_time_split_equals_tonic_time_bins_away_from_bin_edges():
    """tonic n_time_bins: bins [t0 + k w, t0 + (k+1) w) with w = (t_last - t0) // T, so events
    at t >= t0 + T w (always the last one) are dropped, and an event exactly on an inner edge
    goes to the later bin (ours: edges at t0 + ceil(k (t_last - t0 + 1) / T)). Away from edges
    they agree."""
    rng = np.random.default_rng(4)
    sensor = (12, 12, 2)
    n_frames, width_us = 10, 1000
    inner = rng.integers(0, n_frames * width_us, 3000)
    inner = np.sort(inner[inner % width_us != 0])
    t = np.concatenate([[0], inner, [n_frames * width_us]])
    events = make_events(
        rng.integers(0, 12, t.size), rng.integers(0, 12, t.size), t, rng.integers(0, 2, t.size)
    )
    ours = to_frames(events, sensor, n_frames, "time")
    theirs = _tonic_frames(events, sensor, n_time_bins=n_frames)
    last = events[-1]
    theirs[n_frames - 1, last["p"], last["y"], last["x"]] += 1  # the event tonic drops
    np.testing.assert_array_equal(ours, theirs)


def test_fixed_window_equals_tonic_time_window_with_incomplete():
    """tonic time_window + include_incomplete: ceil((t_last - t0) / W) windows, so it drops the
    events at t_last when (t_last - t0) is a multiple of W; otherwise identical to ours."""
    rng = np.random.default_rng(5)
    sensor = (8, 8, 2)
    events = random_events(rng, 2000, 8, 8, 123_457)
    window = 10_000
    assert (int(events["t"][-1]) - int(events["t"][0])) % window != 0
    np.testing.assert_array_equal(
        to_frames(events, sensor, time_window_us=window),
        _tonic_frames(events, sensor, time_window=window, include_incomplete=True),
    )


@pytest.mark.slow
def test_counts_beyond_float32_integers_stay_exact():
    """A frame with more than 2**24 events at one pixel: float32 += 1 would stall at 2**24."""
    n = 2**24 + 3
    events = np.zeros(n, dtype=EVENT_DTYPE)
    events["p"] = 1
    fast = to_frames(events, (1, 1, 2), 1, "count")
    assert (
        fast[0, 1, 0, 0] == np.float32(n) == to_frames_reference(events, (1, 1, 2), 1)[0, 1, 0, 0]
    )
    assert fast[0, 1, 0, 0] != np.float32(2**24)
