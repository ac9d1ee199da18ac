"""Independent per-record decoders and byte builders for the event file tests.

Written from FORMATS.md, record by record with ``struct``: slow, but obvious.
The tests compare qifsim's vectorised/numba readers and its writers against
these. Decoders return a list of ``(x, y, t, p)`` tuples in file order.
"""

from __future__ import annotations

import struct

import numpy as np

from qifsim.events import make_events


def as_tuples(events: np.ndarray) -> list[tuple[int, int, int, int]]:
    return [(int(e["x"]), int(e["y"]), int(e["t"]), int(e["p"])) for e in events]


# -- random events within a format's limits ----------------------------------

# per format: (x_max, y_max, start times, largest step between events, t limit or None)
LIMITS = {
    "atis-bin": (255, 239, (0, 2**23 - 300, 3 * 2**23 + 5), 2**14, None),
    "prophesee-dat": (2**14 - 1, 2**14 - 1, (0, 2**32 - 2000, 2**31), 2**32 - 1, None),
    "aedat2": (127, 127, (0, 2**32 - 10**6, 2**31), 2**25, 2**32 - 1),
    "aedat31": (2**15 - 1, 2**15 - 1, (0, 2**31 - 500, 5 * 2**31 - 7, 2**40), 2**31 + 3, None),
    "aedat4": (2**15 - 1, 2**15 - 1, (0, 1_605_507_430_438_338, 2**62), 2**33, None),
}


def random_events(fmt: str, rng: np.random.Generator, n: int, start_index: int = 0) -> np.ndarray:
    """Sorted random events within ``fmt``'s limits, timestamps crossing its overflow points."""
    x_max, y_max, starts, max_step, t_limit = LIMITS[fmt]
    start = starts[start_index % len(starts)]
    small = rng.integers(0, 50, n)
    large = rng.integers(0, max_step + 1, n)
    steps = np.where(rng.random(n) < 0.1, large, small)
    if n:
        steps[0] = 0
    t = start + np.cumsum(steps)
    if t_limit is not None:
        t = np.minimum(t, t_limit)
    return make_events(
        rng.integers(0, x_max + 1, n), rng.integers(0, y_max + 1, n), t, rng.integers(0, 2, n)
    )


# -- ATIS .bin -----------------------------------------------------------------


def atis_record(x: int, y: int, p: int, t_raw: int) -> bytes:
    return bytes([x, y, (p << 7) | (t_raw >> 16), (t_raw >> 8) & 0xFF, t_raw & 0xFF])


def ref_atis(data: bytes) -> list[tuple[int, int, int, int]]:
    rows, overflow = [], 0
    for i in range(0, len(data) - len(data) % 5, 5):
        x, y, b2, b3, b4 = data[i : i + 5]
        if y == 240:
            overflow += 1 << 13
            continue
        rows.append((x, y, (((b2 & 0x7F) << 16) | (b3 << 8) | b4) + overflow, b2 >> 7))
    return rows


# -- Prophesee DAT -------------------------------------------------------------


def dat_bytes(lines: list[str], records: list[tuple[int, int]], type_size=(0, 8)) -> bytes:
    """Header lines, the type/size bytes, and raw ``(t, w)`` records."""
    head = "".join(f"{line}\n" for line in lines).encode()
    body = b"".join(struct.pack("<II", t, w) for t, w in records)
    return head + bytes(type_size) + body


def dat_word(x: int, y: int, p: int) -> int:
    return x | (y << 14) | (p << 28)


def ref_dat(data: bytes) -> list[tuple[int, int, int, int]]:
    pos = 0
    while pos < len(data) and data[pos : pos + 1] == b"%":
        pos = data.index(b"\n", pos) + 1
    assert data[pos : pos + 2] in (b"", b"\x00\x08")
    pos += 2
    rows, wraps, prev = [], 0, -1
    for i in range(pos, len(data), 8):
        t, w = struct.unpack_from("<II", data, i)
        if t < prev:
            wraps += 1
        prev = t
        rows.append((w & 0x3FFF, (w >> 14) & 0x3FFF, t + (wraps << 32), (w >> 28) & 0xF))
    return rows


# -- AEDAT 2.0 -----------------------------------------------------------------

AEDAT2_HEADER = ["#!AER-DAT2.0", "# a test file"]


def aedat2_address(x: int, y: int, p: int, orientation: str = "jaer") -> int:
    """Address of an event (inverse of the documented decoding)."""
    if orientation == "jaer":
        x_raw, y_raw = 127 - x, y
    else:
        x_raw, y_raw = 127 - y, 127 - x
    return (y_raw << 8) | (x_raw << 1) | (1 - p)


def aedat2_bytes(records: list[tuple[int, int]], lines=AEDAT2_HEADER, eol="\r\n") -> bytes:
    head = "".join(f"{line}{eol}" for line in lines).encode()
    return head + b"".join(struct.pack(">II", a, t) for a, t in records)


def ref_aedat2(data: bytes, orientation: str = "jaer") -> list[tuple[int, int, int, int]]:
    pos = 0
    while pos < len(data) and data[pos : pos + 1] == b"#":
        end = data.find(b"\n", pos)
        pos = len(data) if end < 0 else end + 1
    rows, prev, shift = [], -1, 0
    for i in range(pos, len(data), 8):
        a, t = struct.unpack_from(">II", data, i)
        if a & 0x8000:
            continue
        if t < prev:
            shift += prev - t
        prev = t
        x_raw, y_raw, p = (a >> 1) & 0x7F, (a >> 8) & 0x7F, 1 - (a & 1)
        if orientation == "jaer":
            rows.append((127 - x_raw, y_raw, t + shift, p))
        else:
            rows.append((127 - y_raw, 127 - x_raw, t + shift, p))
    return rows


# -- AEDAT 3.1 -----------------------------------------------------------------

AEDAT31_HEADER = b"#!AER-DAT3.1\r\n#Format: RAW\r\n#Source 1: DVS128\r\n#!END-HEADER\r\n"


def aedat31_polarity(x: int, y: int, p: int, valid: int = 1) -> int:
    return (x << 17) | (y << 2) | (p << 1) | valid


def aedat31_packet(
    ptype: int,
    overflow: int,
    events: list[tuple[int, int]],
    event_size: int = 8,
    capacity: int | None = None,
    number: int | None = None,
    ts_offset: int = 4,
) -> bytes:
    """A packet of ``(data, ts)`` events; extra capacity slots are zero bytes."""
    capacity = len(events) if capacity is None else capacity
    number = len(events) if number is None else number
    head = struct.pack(
        "<hhiiiiii", ptype, 1, event_size, ts_offset, overflow, capacity, number, number
    )
    body = b"".join(struct.pack("<Ii", d, ts) for d, ts in events)
    return head + body + bytes(event_size * capacity - len(body))


def ref_aedat31(data: bytes) -> list[tuple[int, int, int, int]]:
    # header: ``#`` lines, each through its ``\n`` (or the end of the file), up to the first
    # that reads ``#!END-HEADER`` once its ``\r``/``\n`` are stripped (the readers' rule)
    pos, rows = 0, []
    while data[pos : pos + 1] == b"#":
        nl = data.find(b"\n", pos)
        line_end = len(data) if nl < 0 else nl + 1
        line, pos = data[pos:line_end], line_end
        if line.rstrip(b"\r\n") == b"#!END-HEADER":
            break
    else:
        raise ValueError("no #!END-HEADER line")
    while pos < len(data):
        ptype, _src, size, _off, overflow, capacity, number, _valid = struct.unpack_from(
            "<hhiiiiii", data, pos
        )
        pos += 28
        if ptype == 1:
            for k in range(number):
                d, ts = struct.unpack_from("<Ii", data, pos + 8 * k)
                if d & 1:
                    rows.append((d >> 17, (d >> 2) & 0x7FFF, ts | (overflow << 31), (d >> 1) & 1))
        pos += size * capacity
    return rows


# -- AEDAT 4.0 (uncompressed) --------------------------------------------------


def ref_aedat4(data: bytes) -> list[tuple[int, int, int, int]]:
    """Events of every EVTS packet of an uncompressed AEDAT4 file, in file order."""
    assert data.startswith(b"#!AER-DAT4.0\r\n")
    (length,) = struct.unpack_from("<I", data, 14)
    pos, rows = 18 + length, []
    while pos < len(data):
        _stream, size = struct.unpack_from("<II", data, pos)
        buf = data[pos + 8 : pos + 8 + size]
        assert buf[8:12] == b"EVTS"
        root = 4 + struct.unpack_from("<I", buf, 4)[0]  # table, relative to the packet data
        vtable = root - struct.unpack_from("<i", buf, root)[0]
        field = root + struct.unpack_from("<H", buf, vtable + 4)[0]
        vector = field + struct.unpack_from("<I", buf, field)[0]
        (n,) = struct.unpack_from("<I", buf, vector)
        for k in range(n):
            t, x, y, on = struct.unpack_from("<qhhB", buf, vector + 4 + 16 * k)
            rows.append((x, y, t, on))
        pos += 8 + size
    return rows
