"""Event data: event arrays, framing, and the built-in synthetic stream (numpy only, no torch)."""

from .array import EVENT_DTYPE, make_events, validate_events
from .frames import to_frames
from .synthetic import moving_squares

__all__ = ["EVENT_DTYPE", "make_events", "moving_squares", "to_frames", "validate_events"]
