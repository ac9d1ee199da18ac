"""The DVS emulator: pixel model, mismatch, refractory, noise and recording motions."""

import math
import time

import numpy as np
import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from qifsim.events import validate_events
from qifsim.events.emulate import (
    DEFAULT_EPS,
    MIN_CONTRAST,
    draw_thresholds,
    emulate_image,
    emulate_video,
    lcd_loop_video,
    place_image,
    resize_bilinear,
    saccade_video,
)


def pixel_video(log_values, eps=DEFAULT_EPS):
    """A 1x1 video whose log intensities log(I + eps) are ``log_values`` (relative to log 0.25)."""
    intensity = 0.25 * np.exp(np.asarray(log_values, dtype=np.float64)) - eps
    return intensity.reshape(-1, 1, 1)


def exact(frames, t, contrast=0.2, refractory_us=0):
    return emulate_video(frames, t, contrast, 0.0, refractory_us, 0.0, seed=0)


def test_static_scene_emits_no_events():
    rng = np.random.default_rng(1)
    frames = np.repeat(rng.uniform(0, 1, (1, 20, 30)), 12, axis=0)
    events = emulate_video(frames, np.arange(12) * 1000, contrast=0.1, contrast_sigma=0.03)
    assert events.shape == (0,)


def test_ramp_emits_floor_delta_over_c_events_at_interpolated_times():
    # log contrast 0.7 over 1000 us, C = 0.2: crossings at 0.2, 0.4, 0.6 of 0.7
    on = exact(pixel_video([0.0, 0.7]), [0, 1000])
    assert on["t"].tolist() == [286, 571, 857]  # 1000 * k * 0.2 / 0.7 = 285.7, 571.4, 857.1
    assert on["p"].tolist() == [1, 1, 1] and on["x"].tolist() == [0, 0, 0]
    off = exact(pixel_video([0.7, 0.0]), [0, 1000])
    assert off["t"].tolist() == [286, 571, 857] and off["p"].tolist() == [0, 0, 0]


def test_memory_moves_by_c_across_frames():
    # up 0 -> 0.5 in [0, 1000]: ON at L = 0.2 (t = 400), 0.4 (t = 800), memory 0.4;
    # down 0.5 -> 0.1 in [1000, 2000]: OFF at L = 0.2 (t = 1750); L = 0.0 is not reached
    events = exact(pixel_video([0.0, 0.5, 0.1]), [0, 1000, 2000])
    assert events["t"].tolist() == [400, 800, 1750]
    assert events["p"].tolist() == [1, 1, 0]


@settings(max_examples=60, deadline=None)
@given(delta=st.floats(-3.0, 3.0), contrast=st.floats(0.05, 0.6))
def test_event_count_is_floor_of_log_change_over_c(delta, contrast):
    ratio = abs(delta) / contrast
    assume(abs(ratio - round(ratio)) > 1e-6)
    events = exact(pixel_video([0.0, delta]), [0, 10_000], contrast)
    assert len(events) == math.floor(ratio)
    assert np.all(events["p"] == (1 if delta > 0 else 0))
    assert np.all(np.diff(events["t"]) >= 0)


def test_step_change_puts_all_crossings_at_the_step_time():
    events = exact(pixel_video([0.0, 0.0, 0.9]), [0, 500, 500])
    assert events["t"].tolist() == [500] * 4


def test_refractory_suppresses_events_but_memory_still_moves():
    # log change 1.1 over 1000 us, C = 0.2: crossings at 181.8, 363.6, 545.5, 727.3, 909.1 us;
    # refractory 300 us keeps 182, 545 (364 us after the last emitted event), 909
    up = exact(pixel_video([0.0, 1.1]), [0, 1000], refractory_us=300)
    assert up["t"].tolist() == [182, 545, 909]
    # memory is at 1.0 (all five crossings consumed): a later drop to 0.75 is one OFF event,
    # at L = 0.8 (0.3 / 0.35 of the step); had the suppressed crossings kept the memory at
    # 0.6, it would be none
    later = exact(pixel_video([0.0, 1.1, 1.1, 0.75]), [0, 1000, 5000, 6000], refractory_us=300)
    assert later["t"].tolist() == [182, 545, 909, 5000 + round(1000 * 0.3 / 0.35)]
    assert later["p"].tolist() == [1, 1, 1, 0]
    assert len(exact(pixel_video([0.0, 1.1]), [0, 1000], refractory_us=0)) == 5


def test_mismatch_thresholds():
    assert np.all(draw_thresholds((7, 9), 0.3, 0.0, seed=5) == 0.3)
    c = draw_thresholds((100, 100), 0.2, 0.03, seed=1)
    assert c.shape == (2, 100, 100)
    assert abs(c.mean() - 0.2) < 0.003 and abs(c.std() - 0.03) < 0.003
    assert np.array_equal(c, draw_thresholds((100, 100), 0.2, 0.03, seed=1))
    assert not np.array_equal(c, draw_thresholds((100, 100), 0.2, 0.03, seed=2))
    assert not np.array_equal(c[0], c[1])  # ON and OFF drawn independently
    wide = draw_thresholds((50, 50), 0.05, 1.0, seed=0)
    assert wide.min() == MIN_CONTRAST


def test_mismatch_zero_gives_same_count_in_every_pixel():
    frames = np.zeros((2, 6, 8))
    frames[1] = 1.0
    events = emulate_video(frames, [0, 1000], 0.3, 0.0, 0, 0.0)
    counts = np.bincount(events["y"].astype(int) * 8 + events["x"], minlength=48)
    assert np.all(counts == counts[0]) and counts[0] == math.floor(math.log(1.01 / 0.01) / 0.3)
    varied = emulate_video(frames, [0, 1000], 0.3, 0.05, 0, 0.0)
    assert len(np.unique(np.bincount(varied["y"].astype(int) * 8 + varied["x"]))) > 1


def test_noise_rate_matches_poisson_expectation():
    frames = np.full((2, 32, 32), 0.5)
    events = emulate_video(frames, [0, 1_000_000], noise_rate_hz=10.0, seed=3)
    expected = 10.0 * 32 * 32  # events per second over the whole sensor
    assert abs(len(events) - expected) < 5 * math.sqrt(expected)
    assert 0.45 < events["p"].mean() < 0.55
    validate_events(events, (32, 32, 2))
    assert events["t"].min() >= 0 and events["t"].max() <= 1_000_000
    assert len(emulate_video(frames, [0, 1_000_000], noise_rate_hz=0.0)) == 0


def test_same_seed_same_events_other_seed_differs():
    rng = np.random.default_rng(0)
    frames = rng.uniform(0, 1, (6, 10, 12))
    t = np.arange(6) * 2000
    a = emulate_video(frames, t, noise_rate_hz=50.0, seed=11)
    b = emulate_video(frames, t, noise_rate_hz=50.0, seed=11)
    c = emulate_video(frames, t, noise_rate_hz=50.0, seed=12)
    assert a.dtype == b.dtype and np.array_equal(a, b)
    assert not np.array_equal(a, c)
    assert np.all(np.diff(a["t"]) >= 0)


def test_place_image_integer_shifts_are_exact():
    image = np.random.default_rng(2).uniform(0, 1, (28, 28))
    frames = place_image(image, (34, 34), [(0, 0), (1, -2)], background=0.1)
    assert frames.shape == (2, 34, 34)
    np.testing.assert_allclose(frames[0, 3:31, 3:31], image, atol=1e-12)
    np.testing.assert_allclose(frames[1, 1:29, 4:32], image, atol=1e-12)
    assert np.allclose(frames[0, :3], 0.1) and np.allclose(frames[1, :, :4], 0.1)
    half = place_image(image, (34, 34), [(0.5, 0)])[0]
    np.testing.assert_allclose(half[3:31, 4:31], (image[:, 1:] + image[:, :-1]) / 2, atol=1e-12)


def test_resize_bilinear():
    assert np.allclose(resize_bilinear(np.full((8, 8), 0.3), (28, 28)), 0.3)
    ramp = np.tile(np.arange(8.0), (8, 1))
    big = resize_bilinear(ramp, (16, 16))
    # output column j samples (j + 0.5) / 2 - 0.5, clamped to [0, 7]
    expected = np.clip((np.arange(16) + 0.5) / 2 - 0.5, 0, 7)
    np.testing.assert_allclose(big[5], expected, atol=1e-12)
    gray = resize_bilinear(np.ones((4, 4, 3)) * [1.0, 0.0, 0.0], (4, 4))
    assert np.allclose(gray, 0.299)


def test_saccades_make_three_time_segments():
    image = resize_bilinear(np.random.default_rng(4).uniform(0, 1, (8, 8)), (28, 28))
    frames, t = saccade_video(image)
    assert frames.shape == (301, 34, 34) and t[0] == 0 and t[-1] == 300_000
    events = emulate_video(frames, t, contrast=0.3)
    validate_events(events, (34, 34, 2))
    hist = np.histogram(events["t"], bins=30, range=(0, 300_000))[0]
    thirds = hist.reshape(3, 10).sum(1)
    assert np.all(thirds > 0.2 * len(events)), thirds
    # the saccades start and end at rest: the bins at the turns are quieter than mid-saccade
    for k in range(3):
        segment = hist[10 * k : 10 * k + 10]
        assert segment[0] < segment[3:7].mean() and segment[-1] < segment[3:7].mean()


def test_lcd_loop_events_cluster_on_the_refresh_grid():
    image = np.random.default_rng(5).uniform(0, 1, (32, 32, 3))
    frames, t = lcd_loop_video(image, sensor=(64, 48), duration_us=500_000, response_us=2000)
    assert frames.shape[1:] == (48, 64)
    events = emulate_video(frames, t, refractory_us=500)
    validate_events(events, (64, 48, 2))
    assert len(events) > 2000
    refresh = np.rint(np.arange(31) * 1e6 / 60)
    k = np.searchsorted(refresh, events["t"], side="right") - 1
    phase = events["t"] - refresh[k]
    assert np.all(phase <= 2000)  # every event within the LCD response after a refresh
    assert len(np.unique(k)) > 25  # and after most of the refreshes
    # with noise some events fall between refreshes
    noisy = emulate_video(frames, t, refractory_us=500, noise_rate_hz=20.0)
    k = np.searchsorted(refresh, noisy["t"], side="right") - 1
    assert np.any(noisy["t"] - refresh[k] > 2000)


def test_emulate_image_dispatches_motions_and_checks_arguments():
    digit = resize_bilinear(np.random.default_rng(6).uniform(0, 1, (8, 8)), (28, 28))
    a = emulate_image(digit, "saccades", seed=1)
    b = emulate_video(*saccade_video(digit), seed=1)
    assert np.array_equal(a, b) and len(a) > 0
    lcd = emulate_image(digit, "lcd-loop", sensor=(40, 40), duration_us=100_000)
    validate_events(lcd, (40, 40, 2))
    with pytest.raises(ValueError, match="motion"):
        emulate_image(digit, "shake")
    with pytest.raises(ValueError, match="non-decreasing"):
        emulate_video(np.zeros((2, 2, 2)), [10, 0])
    with pytest.raises(ValueError, match="timestamps_us"):
        emulate_video(np.zeros((2, 2, 2)), [0, 1, 2])
    with pytest.raises(ValueError, match="response_us"):
        lcd_loop_video(digit, response_us=20_000)


def test_emulation_rate_for_digits():
    from sklearn.datasets import load_digits

    images = load_digits().images[:40] / 16.0
    digits = [resize_bilinear(im, (28, 28)) for im in images]
    emulate_image(digits[0], contrast=0.5)  # compile / load the kernels
    start = time.perf_counter()
    counts = [
        len(emulate_image(d, contrast=0.5, noise_rate_hz=0.5, seed=i)) for i, d in enumerate(digits)
    ]
    rate = len(digits) / (time.perf_counter() - start)
    print(
        f"emulation rate: {rate:.0f} samples/s (28x28 digits on 34x34), "
        f"mean {np.mean(counts):.0f} events"
    )
    assert rate >= 5.0
