"""Guess an event file's format: by content first, then by file extension."""

from __future__ import annotations

from pathlib import Path

from ..errors import EventFormatError
from ._base import PathLike

FORMATS = ("atis-bin", "prophesee-dat", "aedat2", "aedat31", "aedat4")
AEDAT_VERSIONS = {b"2.0": "aedat2", b"3.1": "aedat31", b"4.0": "aedat4"}
EXTENSIONS = {".bin": "atis-bin", ".dat": "prophesee-dat"}
HEAD_BYTES = 1024


def looks_like_dat_header(head: bytes) -> bool:
    """True when ``head`` starts with a ``%`` line of printable ASCII ended by ``\\n``."""
    if not head.startswith(b"%"):
        return False
    line, newline, _ = head.partition(b"\n")
    return bool(newline) and all(32 <= c < 127 or c in (9, 13) for c in line)


def sniff_format(path: PathLike) -> str:
    """The format name of ``path`` (one of :data:`FORMATS`).

    Content first: ``#!AER-DAT2.0`` / ``3.1`` / ``4.0`` magic lines, a ``%``
    text header (Prophesee DAT); then the extension: ``.bin`` -> ``atis-bin``,
    ``.dat`` -> ``prophesee-dat``. ``.aedat`` files are recognised by header only.

    Raises:
        EventFormatError: the format cannot be told (pass ``format=``) or is an
            unsupported AEDAT version.
        OSError: the file cannot be opened.
    """
    with open(path, "rb") as f:
        head = f.read(HEAD_BYTES)
    if head.startswith(b"#!AER-DAT"):
        version = head[9:12]
        if version in AEDAT_VERSIONS:
            return AEDAT_VERSIONS[version]
        found = version.decode("latin-1", "replace")
        raise EventFormatError(
            "aedat",
            path,
            f"unsupported AEDAT version {found!r} (readable: 2.0, 3.1, 4.0)",
            9,
        )
    if looks_like_dat_header(head):
        return "prophesee-dat"
    suffix = Path(path).suffix.lower()
    if suffix in EXTENSIONS:
        return EXTENSIONS[suffix]
    raise EventFormatError(
        "unknown",
        path,
        f"cannot tell the event file format from its content or extension {suffix!r}; "
        f"pass format= one of {', '.join(FORMATS)}",
    )
