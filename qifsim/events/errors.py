"""Errors and warnings of the event pipeline."""

from __future__ import annotations


class EventFormatError(ValueError):
    """A file is not valid in the format it was read as.

    Carries ``format`` (e.g. ``"atis-bin"``), ``path``, the byte ``offset``
    where the problem was found (``None`` when it is not about one place) and
    ``where``, a location that is not a byte offset (AEDAT4: the packet and the
    event inside it, since its packets are compressed and a single event has no
    byte offset in the file). Both appear in the message, e.g.
    ``atis-bin file 'x.bin': truncated event at byte 21620 (5-byte events; ...)``
    or ``aedat4 file 'x.aedat4': event x=-1 outside the sensor (x 0..319) at
    byte 3308 (packet 2, event 17 of 918; ...)``.
    """

    def __init__(
        self, fmt: str, path, message: str, offset: int | None = None, where: str | None = None
    ) -> None:
        self.format = fmt
        self.path = str(path)
        self.offset = offset
        self.where = where
        loc = f" at byte {offset}" if offset is not None else ""
        if where:
            loc += f" ({where})" if offset is not None else f" at {where}"
        super().__init__(f"{fmt} file {self.path!r}: {message}{loc}")


class DroppedEventsWarning(UserWarning):
    """Invalid events were dropped because the reader was asked to (``on_invalid="drop"``).

    ``report`` is the :class:`qifsim.events.io.DropReport` (format, path, number
    dropped, count per reason, byte offset of the first one).
    """

    def __init__(self, report) -> None:
        self.report = report
        super().__init__(str(report))


class DatasetNotFoundError(FileNotFoundError):
    """A dataset root is missing or incomplete; the message lists what is expected where."""
