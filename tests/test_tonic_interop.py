"""tonic interop (optional extra, GPL-3.0: imported only here, lazily).

Our transforms and framing accept tonic's event arrays, and tonic's dataset
wrappers accept our datasets.
"""

import numpy as np
import pytest

from qifsim.events import moving_squares, to_frames
from qifsim.events.transforms import Denoise, Downsample

tonic = pytest.importorskip("tonic")


def as_tonic_array(events):
    """The same events in tonic's N-MNIST dtype (its field order and types)."""
    out = np.empty(len(events), dtype=tonic.datasets.NMNIST.dtype)
    for name in ("x", "y", "t", "p"):
        out[name] = events[name]
    return out


def test_transforms_and_framing_take_tonic_event_arrays():
    ours = moving_squares(1, seed=2)[0][0]
    theirs = as_tonic_array(ours)
    assert theirs.dtype != ours.dtype
    np.testing.assert_array_equal(
        to_frames(theirs, (34, 34, 2), 10), to_frames(ours, (34, 34, 2), 10)
    )
    for transform in (Denoise(5000, (34, 34, 2)), Downsample(2)):
        a, b = transform(ours), transform(theirs)
        assert b.dtype == theirs.dtype
        for name in ("x", "y", "t", "p"):
            np.testing.assert_array_equal(a[name], b[name].astype(a[name].dtype))


def test_our_dataset_inside_tonic_disk_cache(tmp_path):
    from qifsim.events.digits_dvs import DigitsDVS

    ours = DigitsDVS("test", n_samples=3, progress=False)
    wrapped = tonic.DiskCachedDataset(ours, cache_path=str(tmp_path / "tonic-cache"))
    for i in range(3):
        frames, label = wrapped[i]
        expected, expected_label = ours[i]
        np.testing.assert_array_equal(np.asarray(frames), expected.numpy())
        assert int(label) == expected_label
