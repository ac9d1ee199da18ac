"""Checking decoded events against the sensor: coordinates and polarity.

Every reader knows a sensor size: from its header (Prophesee DAT ``% Width``/``% Height``,
AEDAT 3.1 ``#Source`` of a known camera, AEDAT4 ``sizeX``/``sizeY``) or from its format
(ATIS ``y`` 0..239, since 240 is the overflow marker). An event outside it, or with a
polarity other than 0/1, is refused (:class:`EventFormatError` naming the byte offset) or,
only when the caller asks with ``on_invalid="drop"``, removed and counted in a
:class:`DropReport` (the top-level readers then warn with :class:`DroppedEventsWarning`).

The fast decoders (numba kernels of ATIS and AEDAT 3.1) do the same checks inline;
:func:`screen_events` is the vectorised form used by the numpy decoders and by the
readers' reference paths.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

from ..errors import EventFormatError

ON_INVALID = ("raise", "drop")


def check_on_invalid(on_invalid: str) -> bool:
    """Validate the option; True for ``"drop"``."""
    if on_invalid not in ON_INVALID:
        raise ValueError(f"on_invalid must be one of {ON_INVALID}, got {on_invalid!r}")
    return on_invalid == "drop"


@dataclass(frozen=True)
class Sensor:
    """The pixel array events must lie in.

    Attributes:
        width, height: ``x`` must be in ``0..width-1``, ``y`` in ``0..height-1``;
            ``None``: no limit beyond what the format can store.
        source: where the size comes from (for messages), e.g. ``"header % Width/% Height"``.
    """

    width: int | None
    height: int | None
    source: str

    def limit(self, axis: str) -> int | None:
        """``width`` for ``"x"``, ``height`` for ``"y"``."""
        return self.width if axis == "x" else self.height

    def reason(self, axis: str) -> str:
        """Text of one reason, e.g. ``"x outside 0..319 (header sizeX/sizeY)"``."""
        if axis == "p":
            return "polarity not 0 or 1"
        limit = self.limit(axis)
        if limit is None:
            return f"{axis} outside {self.source}"
        return f"{axis} outside 0..{limit - 1} ({self.source})"


@dataclass
class DropReport:
    """What a read with ``on_invalid="drop"`` removed.

    Attributes:
        format, path: the file.
        dropped: number of events removed.
        reasons: events removed per reason (the first failing check of each event:
            ``x``, then ``y``, then polarity), e.g. ``{"x outside 0..319 (...)": 2}``.
        first_offset: byte offset of the first removed event (AEDAT4: of its packet).
        first_where: AEDAT4: packet and event index of the first removed event.
    """

    format: str
    path: str
    dropped: int = 0
    reasons: dict[str, int] = field(default_factory=dict)
    first_offset: int | None = None
    first_where: str | None = None

    def add(self, reason: str, count: int, offset: int | None, where: str | None = None) -> None:
        """Count ``count`` events removed for ``reason``; the first offset seen is kept."""
        if count <= 0:
            return
        if self.dropped == 0:
            self.first_offset, self.first_where = offset, where
        self.dropped += int(count)
        self.reasons[reason] = self.reasons.get(reason, 0) + int(count)

    def __str__(self) -> str:
        parts = ", ".join(f"{reason}: {n}" for reason, n in self.reasons.items())
        first = ""
        if self.first_offset is not None:
            first = f"; first at byte {self.first_offset}"
        if self.first_where:
            first += f" ({self.first_where})" if first else f"; first at {self.first_where}"
        return (
            f"{self.format} file {self.path!r}: dropped {self.dropped} invalid event(s) "
            f"(on_invalid='drop'; {parts}){first}"
        )


#: no sensor size known: only the polarity is checked
UNBOUNDED = Sensor(None, None, "the format's range")


def invalid_mask(events: np.ndarray, sensor: Sensor) -> np.ndarray | None:
    """Boolean ``[N]`` mask of events outside ``sensor`` or with ``p`` not in {0, 1}; None if
    every event is valid (the common case costs one comparison pass per checked field)."""
    bad: np.ndarray | None = None
    for axis in ("x", "y"):
        m = _outside(events, axis, sensor)
        if m is not None:
            bad = m if bad is None else bad | m
    p = events["p"]
    m = (p != 0) & (p != 1)
    bad = m if bad is None else bad | m
    return bad if bad.any() else None


def _outside(events: np.ndarray, axis: str, sensor: Sensor) -> np.ndarray | None:
    limit = sensor.limit(axis)
    if limit is None:
        return None
    values = events[axis]
    return (values < 0) | (values >= limit)


def axis_counts(events: np.ndarray, bad: np.ndarray, sensor: Sensor) -> dict[str, int]:
    """Invalid events per first failing check (``x``, then ``y``, then ``p``)."""
    left = bad.copy()
    counts = {}
    for axis in ("x", "y"):
        m = _outside(events, axis, sensor)
        if m is not None:
            m &= left
            counts[axis] = int(np.count_nonzero(m))
            left &= ~m
    counts["p"] = int(np.count_nonzero(left))
    return counts


def _reason_of(event: np.void, sensor: Sensor) -> str:
    for axis in ("x", "y"):
        limit = sensor.limit(axis)
        if limit is not None and not 0 <= int(event[axis]) < limit:
            return axis
    return "p"


def describe(event: np.void, sensor: Sensor) -> str:
    """Message for one invalid event, e.g. ``"event x=-1 outside the sensor: x outside ..."``."""
    axis = _reason_of(event, sensor)
    value = int(event[axis])
    if axis == "p":
        return f"event polarity {value} is not 0 or 1"
    return f"event {axis}={value} outside the sensor: {sensor.reason(axis)}"


Locate = Callable[[int], tuple[int | None, str | None]]


def screen_events(
    events: np.ndarray,
    sensor: Sensor,
    *,
    fmt: str,
    path,
    drop: bool,
    report: DropReport | None,
    locate: Locate,
) -> np.ndarray:
    """``events`` checked against ``sensor``.

    Args:
        events: decoded EVENT_DTYPE block.
        drop: remove invalid events (and count them in ``report``) instead of raising.
        locate: ``i -> (byte offset, where)`` of the block's event ``i`` in the file.

    Raises:
        EventFormatError: the first invalid event (``drop`` False).
    """
    bad = invalid_mask(events, sensor)
    if bad is None:
        return events
    first = int(np.argmax(bad))
    offset, where = locate(first)
    if not drop:
        raise EventFormatError(fmt, path, describe(events[first], sensor), offset, where)
    if report is not None:
        for axis, n in axis_counts(events, bad, sensor).items():
            report.add(sensor.reason(axis), n, offset, where)
    return events[~bad]
