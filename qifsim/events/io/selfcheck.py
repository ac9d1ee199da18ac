"""A quick, visible check that the event readers fail closed (the demo's hardening section).

:func:`hardening_section` writes a small recording in every writable format, makes three
corrupt copies of each (cut short, an event outside the sensor, a bad header), reads them
all back and shows that each copy is refused with an
:class:`~qifsim.events.EventFormatError` naming the byte offset, while the intact file reads
back exactly. It also says whether the optional netx environment (``.venv-netx``) exists;
the netx parity itself is measured by ``make test-all`` (``tests/test_export_netx.py``).
Takes well under 5 s.
"""

from __future__ import annotations

import struct
from collections.abc import Callable
from pathlib import Path

import numpy as np

from ..array import make_events
from ..errors import EventFormatError
from . import aedat4, read_events, write_events

#: per format: (file suffix, sensor (W, H), write options)
FORMATS = {
    "atis-bin": (".bin", (34, 34), {}),
    "prophesee-dat": (".dat", (120, 100), {"width": 120, "height": 100}),
    "aedat2": (".aedat", (128, 128), {}),
    "aedat31": (".aedat", (128, 128), {}),
    "aedat4": (".aedat4", (320, 240), {"width": 320, "height": 240}),
}
N_EVENTS = 200


def _recording(width: int, height: int) -> np.ndarray:
    rng = np.random.default_rng(0)
    t = np.cumsum(rng.integers(1, 500, N_EVENTS))
    return make_events(
        rng.integers(0, width, N_EVENTS),
        rng.integers(0, height, N_EVENTS),
        t,
        rng.integers(0, 2, N_EVENTS),
    )


def _event_at(fmt: str, data: bytes, path: Path, i: int) -> int:
    """Byte offset of event ``i``'s record in a file qifsim wrote."""
    if fmt == "atis-bin":
        return 5 * i  # the writer adds no overflow markers for t < 2**23
    if fmt == "prophesee-dat":
        return data.index(b"\n% Height 100\n") + len(b"\n% Height 100\n") + 2 + 8 * i
    if fmt == "aedat31":
        return data.index(b"#!END-HEADER\r\n") + len(b"#!END-HEADER\r\n") + 28 + 8 * i
    first = aedat4._event_vector_offset(path, aedat4.scan(path).packets[0])
    assert first is not None
    return first + 16 * i


def _outside(fmt: str, data: bytes, path: Path) -> bytes | None:
    """The file with event 7 moved outside the sensor (None: the format cannot store that)."""
    out = bytearray(data)
    at = _event_at(fmt, data, path, 7) if fmt != "aedat2" else 0
    if fmt == "atis-bin":
        out[at + 1] = 250  # y = 250: rows are 0..239 (240 is the overflow marker)
    elif fmt == "prophesee-dat":
        word = struct.unpack_from("<I", out, at + 4)[0]
        struct.pack_into("<I", out, at + 4, (word & ~0x3FFF) | 130)  # x = 130 >= Width 120
    elif fmt == "aedat31":
        word = struct.unpack_from("<I", out, at)[0]
        struct.pack_into("<I", out, at, (word & 0x1FFFF) | (200 << 17))  # x = 200 on a DVS128
    elif fmt == "aedat4":
        struct.pack_into("<h", out, at + 8, -1)  # x = -1 (int16 in the file)
    else:
        return None  # AEDAT 2.0 DVS128: 7-bit x and y cannot leave 128x128
    return bytes(out)


def _bad_header(fmt: str, data: bytes) -> bytes:
    if fmt == "atis-bin":  # no header: a file that starts with another format's magic
        return b"#!AER-DAT2.0\r\n" + data
    if fmt == "prophesee-dat":
        return data.replace(b"% Version 2", b"% Version 3", 1)
    if fmt == "aedat2":
        return data.replace(b"# AEChip: DVS128", b"# AEChip: Davis346red", 1)
    if fmt == "aedat31":
        return data.replace(b"#!END-HEADER\r\n", b"#!END-HEADEX\r\n", 1)
    return data[:14] + struct.pack("<I", 0x7FFFFFFF) + data[18:]  # IOHeader claims 2 GiB


def _refusal(path: Path, fmt: str) -> str:
    try:
        read_events(path, format=fmt)
    except EventFormatError as err:
        return str(err).replace(str(path), path.name)
    return "NOT REFUSED"


def find_netx_env(start: Path | None = None) -> Path | None:
    """``.venv-netx`` in the current directory, qifsim's checkout, or a parent of either."""
    starts = [Path.cwd() if start is None else start, Path(__file__).resolve().parent]
    for base in starts:
        for folder in (base, *base.parents):
            if (folder / ".venv-netx" / "bin" / "python").exists():
                return folder / ".venv-netx"
    return None


def hardening_section(out_dir, echo: Callable[[str], None] = print) -> dict:
    """Write, corrupt and re-read one recording per format; print a compact table.

    Args:
        out_dir: folder for the files (created).
        echo: where the table lines go.

    Returns:
        ``{"formats": {fmt: {"intact": bool, "truncated": msg, "outside": msg | None,
        "header": msg}}, "all_refused": bool, "netx_env": path | None, "netx": text}``;
        each ``msg`` is the one-line EventFormatError message (``"NOT REFUSED"`` would be a bug).
    """
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    formats: dict[str, dict] = {}
    echo("Hardening: each corrupt copy must be refused with EventFormatError (byte offset)")
    for fmt, (suffix, (width, height), options) in FORMATS.items():
        events = _recording(width, height)
        stem = fmt.replace("-", "_")
        path = out / f"{stem}{suffix}"
        write_events(path, events, fmt, **options)
        data = path.read_bytes()
        intact = bool(np.array_equal(read_events(path, format=fmt), events))
        row: dict = {"intact": intact}
        cases = {
            "truncated": data[: len(data) - 3],
            "outside": _outside(fmt, data, path),
            "header": _bad_header(fmt, data),
        }
        for case, corrupt in cases.items():
            if corrupt is None:
                row[case] = None
                continue
            bad = out / f"{stem}_{case}{suffix}"
            bad.write_bytes(corrupt)
            row[case] = _refusal(bad, fmt)
        formats[fmt] = row
        echo(f"  {fmt:14s} intact file reads back exactly: {'yes' if intact else 'NO'}")
        for case in cases:
            text = row[case] if row[case] is not None else "n/a: the format cannot store it"
            echo(f"    {case:9s} {text}")
    refused = all(
        v != "NOT REFUSED" for row in formats.values() for k, v in row.items() if k != "intact"
    )
    intact = all(row["intact"] for row in formats.values())
    netx = find_netx_env()
    netx_text = (
        f"{netx} exists: stock lava-dl netx parity is measured by `make test-all`"
        if netx is not None
        else ".venv-netx not built (`make setup-netx`): the netx parity test is skipped"
    )
    echo(f"  every corrupt copy refused: {'yes' if refused else 'NO'}; netx: {netx_text}")
    return {
        "formats": formats,
        "all_refused": refused and intact,
        "netx_env": None if netx is None else str(netx),
        "netx": netx_text,
    }
