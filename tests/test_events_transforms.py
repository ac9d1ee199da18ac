"""Frame and event transforms: exact geometry, seeding, the NDA policy, denoise, presets."""

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from hypothesis import given, settings
from hypothesis import strategies as st

from qifsim.events.array import crop_events, make_events, slice_by_time
from qifsim.events.frames import to_frames
from qifsim.events.transforms import (
    PRESETS,
    CenterCrop,
    Compose,
    Crop,
    Denoise,
    Downsample,
    NDAOneOf,
    RandomHorizontalFlip,
    RandomRoll,
    RandomRotation,
    RandomShear,
    Resize,
    preset,
)


def frames(seed=0, shape=(4, 2, 20, 20)):
    return np.random.default_rng(seed).poisson(1.5, shape).astype(np.float32)


def test_flip_is_exact_and_follows_p():
    x = frames()
    flipped = RandomHorizontalFlip(1.0, seed=0)(x)
    np.testing.assert_array_equal(flipped, x[..., ::-1])
    np.testing.assert_array_equal(RandomHorizontalFlip(0.0, seed=0)(x), x)
    t = torch.from_numpy(x)
    assert torch.equal(RandomHorizontalFlip(1.0)(t), torch.from_numpy(flipped))
    draws = [
        RandomHorizontalFlip(0.3).sample_params(np.random.default_rng(s))["flip"]
        for s in range(2000)
    ]
    assert 0.26 < np.mean(draws) < 0.34


def test_roll_is_exact_and_one_axis_at_a_time():
    x = frames(1)
    roll = RandomRoll(5, axes=("x", "y"), one_axis=True)
    rng = np.random.default_rng(3)
    seen = set()
    for _ in range(300):
        params = roll.sample_params(rng)
        assert params["x"] == 0 or params["y"] == 0
        assert max(abs(params["x"]), abs(params["y"])) <= 5
        seen.add((params["x"], params["y"]))
        out = roll.apply(x, params)
        np.testing.assert_array_equal(out, np.roll(x, (params["y"], params["x"]), axis=(-2, -1)))
    assert {(5, 0), (-5, 0), (0, 5), (0, -5)} <= seen
    both = RandomRoll(3, one_axis=False).sample_params(np.random.default_rng(0))
    t = torch.from_numpy(x)
    assert torch.equal(
        RandomRoll(3, one_axis=False).apply(t, both),
        torch.from_numpy(np.roll(x, (both["y"], both["x"]), (-2, -1))),
    )


def test_rotation_by_90_degrees_is_rot90_and_shares_the_angle_over_time():
    x = frames(2, (3, 2, 16, 16))
    rot = RandomRotation(90)
    out = rot.apply(x, {"degrees": 90.0})
    assert out.shape == x.shape and out.dtype == np.float32
    np.testing.assert_array_equal(out, np.rot90(x, 1, axes=(-2, -1)))
    np.testing.assert_array_equal(rot.apply(x, {"degrees": -90.0}), np.rot90(x, -1, axes=(-2, -1)))
    bilinear = RandomRotation(90, interpolation="bilinear").apply(x, {"degrees": 90.0})
    np.testing.assert_allclose(bilinear, np.rot90(x, 1, axes=(-2, -1)), atol=1e-4)
    np.testing.assert_array_equal(rot.apply(x, {"degrees": 0.0}), x)
    params = rot.sample_params(np.random.default_rng(5))
    whole = rot.apply(x, params)
    for k in range(3):
        np.testing.assert_array_equal(whole[k], rot.apply(x[k], params))
    assert torch.equal(rot.apply(torch.from_numpy(x), params), torch.from_numpy(whole))


def test_shear_moves_rows_by_tan_times_distance_from_centre():
    x = np.zeros((1, 9, 9), dtype=np.float32)
    x[0, :, 4] = 1.0  # a vertical line through the centre
    out = RandomShear(45).apply(x, {"degrees": 45.0})
    cols = [int(np.argmax(out[0, r])) for r in range(9)]
    assert cols == [4 + (r - 4) for r in range(9)]  # tan 45 = 1 px per row
    np.testing.assert_array_equal(RandomShear(10).apply(x, {"degrees": 0.0}), x)


@pytest.mark.parametrize("mode", ["bilinear", "nearest"])
def test_resize_matches_torch_interpolate(mode):
    x = frames(3, (5, 2, 34, 30))
    out = Resize(48, mode)(x)
    assert out.shape == (5, 2, 48, 48) and out.dtype == np.float32
    kwargs = {"align_corners": False} if mode == "bilinear" else {}
    expected = F.interpolate(torch.from_numpy(x), size=(48, 48), mode=mode, **kwargs).numpy()
    np.testing.assert_array_equal(out, expected)
    t = Resize((12, 17), mode)(torch.from_numpy(x))
    assert isinstance(t, torch.Tensor) and t.shape == (5, 2, 12, 17)


def test_crops_are_exact_slices():
    x = frames(4, (2, 2, 10, 12))
    np.testing.assert_array_equal(Crop(3, 1, 5, 4)(x), x[..., 1:5, 3:8])
    np.testing.assert_array_equal(CenterCrop((4, 6))(x), x[..., 3:7, 3:9])
    with pytest.raises(ValueError, match="exceeds"):
        Crop(8, 0, 5, 4)(x)
    with pytest.raises(ValueError, match="exceeds"):
        CenterCrop(11)(x)


def test_nda_picks_each_op_a_third_of_the_time_within_its_ranges():
    nda = NDAOneOf(roll=3, degrees=15, shear=15)
    counts = {"roll": 0, "rotate": 0, "shear": 0}
    for seed in range(3000):
        params = nda.sample_params(np.random.default_rng(seed))
        counts[params["op"]] += 1
        if params["op"] == "roll":
            assert abs(params["x"]) <= 3 and abs(params["y"]) <= 3
        else:
            assert abs(params["degrees"]) <= 15
    assert all(0.30 < c / 3000 < 0.37 for c in counts.values()), counts
    x = frames(5)
    np.testing.assert_array_equal(
        nda.apply(x, {"op": "roll", "x": 2, "y": -1}), np.roll(x, (-1, 2), axis=(-2, -1))
    )
    np.testing.assert_array_equal(
        nda.apply(x, {"op": "rotate", "degrees": 90.0}), np.rot90(x, 1, axes=(-2, -1))
    )


def test_seeded_pipelines_are_deterministic():
    x = frames(6, (10, 2, 34, 34))
    for name in PRESETS:
        outs = [preset(name, seed=11)(x) for _ in range(2)]
        np.testing.assert_array_equal(outs[0], outs[1])
        pipeline = preset(name, seed=11)
        series = [pipeline(x) for _ in range(6)]
        if name != "n-cars":
            assert any(not np.array_equal(series[0], s) for s in series[1:]), name
    composed = Compose([RandomHorizontalFlip(0.5), RandomRotation(20)])
    a = composed(x, np.random.default_rng(4))
    b = composed(x, np.random.default_rng(4))
    np.testing.assert_array_equal(a, b)


def test_presets_shapes_and_eval_is_resize_only():
    x = frames(7, (10, 2, 34, 34))
    for name in ("cifar10-dvs", "n-caltech101", "n-cars"):
        out = preset(name, train=True, seed=0)(x)
        assert out.shape == (10, 2, 48, 48) and out.dtype == np.float32
        ev = preset(name, train=False)(x)
        np.testing.assert_array_equal(ev, Resize(48, "bilinear")(x))
    np.testing.assert_array_equal(
        preset("cifar10-dvs-nda", train=False)(x), Resize(48, "nearest")(x)
    )
    np.testing.assert_array_equal(preset("dvs128-gesture", train=False)(x), x)
    assert preset("dvs128-gesture", train=False, size=32)(x).shape == (10, 2, 32, 32)
    gesture = preset("dvs128-gesture", seed=1)(x)
    assert gesture.shape == x.shape and gesture.sum() == x.sum()  # a roll moves, never loses
    with pytest.raises(ValueError, match="unknown preset"):
        preset("mnist")


def denoise_reference(events, filter_time):
    """Literal definition: keep i iff an earlier 8-neighbour event is < filter_time older."""
    keep = []
    for i, ev in enumerate(events):
        ok = False
        for j in range(i):
            other = events[j]
            dx, dy = abs(int(other["x"]) - int(ev["x"])), abs(int(other["y"]) - int(ev["y"]))
            if max(dx, dy) == 1 and int(ev["t"]) - int(other["t"]) < filter_time:
                ok = True
        keep.append(ok)
    return events[np.array(keep, dtype=bool)]


@settings(max_examples=40, deadline=None)
@given(n=st.integers(0, 80), seed=st.integers(0, 2**31), filter_time=st.integers(0, 300))
def test_denoise_matches_the_definition(n, seed, filter_time):
    rng = np.random.default_rng(seed)
    t = np.sort(rng.integers(0, 1000, n))
    events = make_events(rng.integers(0, 5, n), rng.integers(0, 4, n), t, rng.integers(0, 2, n))
    out = Denoise(filter_time, (5, 4, 2))(events)
    np.testing.assert_array_equal(out, denoise_reference(events, filter_time))


def test_denoise_keeps_correlated_and_drops_isolated_events():
    events = make_events([5, 6, 20, 7], [5, 5, 20, 6], [0, 100, 150, 5000], [1, 1, 0, 1])
    out = Denoise(1000, (32, 32, 2))(events)
    assert out["t"].tolist() == [100]  # (6,5) follows (5,5); (20,20) alone; (7,6) too late
    with pytest.raises(ValueError, match="outside the sensor"):
        Denoise(1000, (8, 8, 2))(events)


def test_downsample_is_exact_and_updates_the_sensor():
    rng = np.random.default_rng(8)
    events = make_events(
        rng.integers(0, 34, 500), rng.integers(0, 34, 500), np.arange(500), rng.integers(0, 2, 500)
    )
    down = Downsample(4)
    out = down(events)
    assert down.output_size((34, 34, 2)) == (9, 9, 2)
    np.testing.assert_array_equal(out["x"], events["x"] // 4)
    np.testing.assert_array_equal(out["y"], events["y"] // 4)
    np.testing.assert_array_equal(out["t"], events["t"])
    np.testing.assert_array_equal(out["p"], events["p"])
    framed = to_frames(out, down.output_size((34, 34, 2)), 5)
    assert framed.sum() == 500
    with pytest.raises(ValueError, match="factor"):
        Downsample(0)


def test_slice_by_time_and_crop_events():
    events = make_events([0, 3, 5, 9, 2], [1, 2, 3, 4, 0], [10, 20, 20, 30, 40], [1, 0, 1, 0, 1])
    assert slice_by_time(events, 20, 40)["t"].tolist() == [20, 20, 30]
    assert slice_by_time(events, 0, 10).size == 0
    assert slice_by_time(events, 41, 30).size == 0
    cropped = crop_events(events, 2, 1, 4, 3)
    assert cropped["x"].tolist() == [1, 3] and cropped["y"].tolist() == [1, 2]
    assert cropped["t"].tolist() == [20, 20]
    with pytest.raises(ValueError, match="crop size"):
        crop_events(events, 0, 0, 0, 3)
