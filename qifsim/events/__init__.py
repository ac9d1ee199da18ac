"""Event data: arrays, file readers/writers, framing, transforms, emulator, datasets, cache.

Decoding and framing need numpy/numba only; the torch ``Dataset`` classes
(``DigitsDVS``, ``NMNIST``, ...) load torch when first used.
"""

from __future__ import annotations

import importlib

from .array import EVENT_DTYPE, crop_events, make_events, slice_by_time, validate_events
from .errors import DatasetNotFoundError, EventFormatError
from .frames import frames_batch, normalize_frames, to_frames, to_frames_reference
from .io import FORMATS, iter_events, read_events, sniff_format, write_events
from .synthetic import moving_squares

_LAZY = {
    # torch-based datasets
    "DigitsDVS": "qifsim.events.digits_dvs",
    "load_digits_dvs": "qifsim.events.digits_dvs",
    "export_digits_dvs": "qifsim.events.digits_dvs",
    "load_dataset": "qifsim.events.datasets",
    "NMNIST": "qifsim.events.datasets",
    "NCaltech101": "qifsim.events.datasets",
    "NCars": "qifsim.events.datasets",
    "CIFAR10DVS": "qifsim.events.datasets",
    "DVS128Gesture": "qifsim.events.datasets",
    # emulator, transforms, catalogue, cache
    "emulate_video": "qifsim.events.emulate",
    "emulate_image": "qifsim.events.emulate",
    "saccade_video": "qifsim.events.emulate",
    "lcd_loop_video": "qifsim.events.emulate",
    "preset": "qifsim.events.transforms",
    "Compose": "qifsim.events.transforms",
    "dataset_info": "qifsim.events.catalogue",
    "load_catalogue": "qifsim.events.catalogue",
    "cached_frames": "qifsim.events.cache",
}

__all__ = [
    "EVENT_DTYPE",
    "FORMATS",
    "DatasetNotFoundError",
    "EventFormatError",
    "crop_events",
    "frames_batch",
    "iter_events",
    "make_events",
    "moving_squares",
    "normalize_frames",
    "read_events",
    "slice_by_time",
    "sniff_format",
    "to_frames",
    "to_frames_reference",
    "validate_events",
    "write_events",
    *_LAZY,
]


def __getattr__(name: str):
    if name in _LAZY:
        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'qifsim.events' has no attribute {name!r}")
