"""Errors of the event pipeline."""

from __future__ import annotations


class EventFormatError(ValueError):
    """A file is not valid in the format it was read as.

    Carries ``format`` (e.g. ``"atis-bin"``), ``path`` and the byte ``offset``
    where the problem was found (``None`` when it is not about one place), and
    says so in its message, e.g.
    ``atis-bin file 'x.bin': truncated event at byte 21620 (5-byte events; file has 21623 bytes)``.
    """

    def __init__(self, fmt: str, path, message: str, offset: int | None = None) -> None:
        self.format = fmt
        self.path = str(path)
        self.offset = offset
        where = f" at byte {offset}" if offset is not None else ""
        super().__init__(f"{fmt} file {self.path!r}: {message}{where}")


class DatasetNotFoundError(FileNotFoundError):
    """A dataset root is missing or incomplete; the message lists what is expected where."""
