"""AEDAT 4.0 files (FlatBuffers + LZ4/ZSTD packets): read with the optional ``aedat``
package, write uncompressed.

Layout (iniVation's DV format): the line ``#!AER-DAT4.0\\r\\n``; a uint32 (little-endian)
length and that many bytes of an ``IOHE`` FlatBuffer (compression, the byte position of
the trailing data table or -1, an XML description of the streams with each event
stream's ``sizeX``/``sizeY``); then packets: uint32 stream id, uint32 size, ``size``
bytes (compressed as the header says) holding a size-prefixed FlatBuffer, for event
streams ``EVTS``: a vector of 16-byte structs (int64 ``t`` us, int16 ``x``, int16 ``y``,
bool ``on``).

Reading: before the ``aedat`` decoder (MIT, imported only here) sees the file, qifsim
walks its structure itself (:func:`scan`): the magic line, the IOHE FlatBuffer with
every offset bounds-checked, the compression code, the data-table position, and every
packet's size against the bytes left, so a few corrupt bytes cannot make the decoder
allocate gigabytes or read outside the header. The polarity events of one event
stream (``stream_id``; default: the lowest id whose type is ``"events"``) are
returned, other streams skipped; ``t`` is the stored absolute time in us (negative
times are refused), ``p = 1`` for ON; events are stably sorted by ``t`` if packets
come out of order.

Validation: the event stream must declare a sensor of at least 1x1 pixels, and every
event must lie inside it (``0 <= x < sizeX``, ``0 <= y < sizeY``; the file stores int16,
so ``x = -1`` is possible). Errors name the byte offset of the packet and, since LZ4/ZSTD
packets are compressed, the packet index and the event's index inside it (no byte
offset exists for one compressed event); in uncompressed files the event's own byte
offset is given. ``on_invalid="drop"`` removes invalid events and counts them. The
decompressed size of a packet is not known before decoding: LZ4 expands at most about
255x, a crafted ZSTD packet can expand far more (a limit the ``aedat`` decoder does not
offer).

Writing (:func:`write`): one event stream (id 0, ``width`` x ``height``, default the
events' extent), uncompressed packets of at most ``packet_events`` events, no data
table (-1), so that ``aedat`` and DV read it and :func:`read` gives back exactly the
events written.
"""

from __future__ import annotations

import struct
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import numpy as np

from ..array import EVENT_DTYPE
from ._base import (
    Header,
    PathLike,
    columns_for_write,
    concat,
    file_size,
    format_error,
    open_atomic,
    sorted_by_time,
)
from ._validate import DropReport, Sensor, check_on_invalid, screen_events

FORMAT = "aedat4"
MAGIC = b"#!AER-DAT4.0"
MAGIC_LINE = MAGIC + b"\r\n"
T_MAX = np.iinfo(np.int64).max
COMPRESSIONS = ("NONE", "LZ4", "LZ4_HIGH", "ZSTD", "ZSTD_HIGH")
#: a stored event (FlatBuffers struct Event: int64 t, int16 x, int16 y, bool on, padding)
RECORD_DTYPE = np.dtype(
    {
        "names": ["t", "x", "y", "on"],
        "formats": ["<i8", "<i2", "<i2", "u1"],
        "offsets": [0, 8, 10, 12],
        "itemsize": 16,
    }
)
PACKET_HEAD = 8  # uint32 stream id, uint32 size
COORD_MAX = np.iinfo(np.int16).max


# -- structure walk -----------------------------------------------------------------------------
@dataclass(frozen=True)
class Packet:
    """One packet's frame: ``offset`` of its 8-byte head in the file, ``stream_id``, ``size``
    (bytes after the head)."""

    offset: int
    stream_id: int
    size: int


@dataclass(frozen=True)
class Container:
    """What :func:`scan` found: ``compression`` (one of :data:`COMPRESSIONS`), the XML
    ``description``, ``data_position`` (-1: none), ``data_offset`` (where packets start)
    and every packet in file order."""

    compression: str
    description: str
    data_position: int
    data_offset: int
    packets: tuple[Packet, ...]


class _Flat:
    """Bounds-checked reads of a FlatBuffer held in ``buf`` that starts at file byte ``base``."""

    def __init__(self, buf: bytes, base: int, path: PathLike, what: str) -> None:
        self.buf, self.base, self.path, self.what = buf, base, path, what

    def fail(self, message: str, at: int):
        return format_error(FORMAT, self.path, f"{self.what}: {message}", self.base + at)

    def unpack(self, fmt: str, at: int) -> int:
        size = struct.calcsize(fmt)
        if at < 0 or at + size > len(self.buf):
            raise self.fail(f"offset {at} outside its {len(self.buf)} bytes", max(at, 0))
        return struct.unpack_from(fmt, self.buf, at)[0]

    def table(self, at: int) -> tuple[int, list[int]]:
        """``(table position, field offsets)`` of the table at ``at`` (0 = absent field)."""
        vtable = at - self.unpack("<i", at)
        size = self.unpack("<H", vtable)
        if size < 4 or size % 2:
            raise self.fail(f"vtable of {size} bytes", vtable)
        return at, [self.unpack("<H", vtable + 4 + 2 * i) for i in range((size - 4) // 2)]

    def field(self, table: tuple[int, list[int]], index: int) -> int | None:
        at, fields = table
        return at + fields[index] if index < len(fields) and fields[index] else None

    def target(self, at: int) -> int:
        """Where the uoffset at ``at`` points."""
        return at + self.unpack("<I", at)

    def string(self, at: int) -> bytes:
        start = self.target(at)
        n = self.unpack("<I", start)
        if start + 4 + n > len(self.buf):
            raise self.fail(f"string of {n} bytes runs past the end", start)
        return self.buf[start + 4 : start + 4 + n]


def _read_ioheader(f, path: PathLike, size: int) -> tuple[str, int, str, int]:
    """``(compression, data position, description, first packet offset)`` of an open file."""
    f.seek(0)
    head = f.read(len(MAGIC_LINE) + 4)
    if not head.startswith(MAGIC):
        if head.startswith(b"#!AER-DAT"):
            version = head[9:12].decode("latin-1", "replace")
            raise format_error(FORMAT, path, f"header says AER-DAT{version}, not AER-DAT4.0", 0)
        raise format_error(FORMAT, path, "no #!AER-DAT4.0 magic line", 0)
    if head[: len(MAGIC_LINE)] != MAGIC_LINE:
        raise format_error(FORMAT, path, "the magic line does not end in \\r\\n", len(MAGIC))
    if len(head) < len(MAGIC_LINE) + 4:
        raise format_error(FORMAT, path, "file ends before the IOHeader length", len(head))
    length = struct.unpack_from("<I", head, len(MAGIC_LINE))[0]
    base = len(MAGIC_LINE) + 4
    if length > size - base:
        raise format_error(
            FORMAT,
            path,
            f"IOHeader claims {length} bytes, only {size - base} follow (truncated or corrupt)",
            len(MAGIC_LINE),
        )
    flat = _Flat(f.read(length), base, path, "IOHeader")
    root = flat.table(flat.unpack("<I", 0))
    at = flat.field(root, 0)
    code = 0 if at is None else flat.unpack("<i", at)
    if not 0 <= code < len(COMPRESSIONS):
        raise flat.fail(f"unknown compression code {code}", at)
    at = flat.field(root, 1)
    data_position = -1 if at is None else flat.unpack("<q", at)
    at = flat.field(root, 2)
    if at is None:
        raise flat.fail("no stream description", 0)
    try:
        description = flat.string(at).decode("utf-8")
    except UnicodeDecodeError as err:
        raise flat.fail(f"description is not UTF-8 ({err.reason})", at) from None
    return COMPRESSIONS[code], int(data_position), description, base + length


def scan(path: PathLike) -> Container:
    """Walk an AEDAT4 file's structure (no decompression).

    Raises:
        EventFormatError: bad magic line, IOHeader (offsets, compression code,
            description), data-table position, or a packet that runs past the end
            of the packet area (byte offset of the packet head).
    """
    with open(path, "rb") as f:
        size = file_size(f)
        compression, data_position, description, at = _read_ioheader(f, path, size)
        first = at
        end = size
        if data_position != -1:
            if not at <= data_position <= size:
                raise format_error(
                    FORMAT,
                    path,
                    f"IOHeader puts the data table at byte {data_position}, outside the "
                    f"packet area {at}..{size}",
                    len(MAGIC_LINE) + 4,
                )
            end = data_position
        packets = []
        while at < end:
            if end - at < PACKET_HEAD:
                raise format_error(
                    FORMAT, path, f"truncated packet head ({end - at} of 8 bytes)", at
                )
            f.seek(at)
            stream_id, n = struct.unpack("<II", f.read(PACKET_HEAD))
            if n > end - at - PACKET_HEAD:
                raise format_error(
                    FORMAT,
                    path,
                    f"packet {len(packets)} (stream {stream_id}) claims {n} bytes, only "
                    f"{end - at - PACKET_HEAD} left before byte {end}",
                    at,
                )
            packets.append(Packet(at, stream_id, n))
            at += PACKET_HEAD + n
    return Container(compression, description, data_position, first, tuple(packets))


# -- reading ------------------------------------------------------------------------------------
def _import_aedat():
    try:
        import aedat
    except ImportError as err:
        raise ImportError(
            "reading AEDAT4 files needs the optional package 'aedat': pip install aedat "
            "(or pip install 'qifsim[aedat4]')"
        ) from err
    return aedat


def _decoder(path: PathLike) -> Any:
    aedat = _import_aedat()
    try:
        return aedat.Decoder(str(path))
    except (KeyboardInterrupt, SystemExit):
        raise
    except BaseException as err:  # the Rust decoder raises RuntimeError (or a pyo3 panic)
        raise format_error(FORMAT, path, f"cannot decode the header: {err}", 0) from err


def _event_stream(decoder: Any, path: PathLike, stream_id: int | None) -> tuple[int, Sensor]:
    streams = decoder.id_to_stream()
    if stream_id is not None:
        if stream_id not in streams or streams[stream_id].get("type") != "events":
            raise format_error(FORMAT, path, f"no event stream with id {stream_id} ({streams})")
        sid = stream_id
    else:
        ids = sorted(i for i, s in streams.items() if s.get("type") == "events")
        if not ids:
            raise format_error(FORMAT, path, f"no event stream (streams: {streams})")
        sid = ids[0]
    width, height = int(streams[sid].get("width", 0)), int(streams[sid].get("height", 0))
    if width < 1 or height < 1:
        raise format_error(
            FORMAT, path, f"event stream {sid} declares a {width}x{height} sensor (sizeX/sizeY)"
        )
    return sid, Sensor(width, height, "header sizeX/sizeY")


def read_header(path: PathLike, stream_id: int | None = None) -> Header:
    """Sensor ``width``/``height``, ``stream_id`` and ``compression`` as ``fields``;
    ``data_offset`` is the first packet's byte offset."""
    container = scan(path)
    sid, sensor = _event_stream(_decoder(path), path, stream_id)
    fields = {
        "stream_id": str(sid),
        "width": str(sensor.width),
        "height": str(sensor.height),
        "compression": container.compression,
    }
    return Header(FORMAT, fields=fields, data_offset=container.data_offset)


def _event_vector_offset(path: PathLike, packet: Packet) -> int | None:
    """File byte offset of an uncompressed EVTS packet's first event (None if unreadable)."""
    with open(path, "rb") as f:
        f.seek(packet.offset + PACKET_HEAD)
        buf = f.read(packet.size)
    flat = _Flat(buf[4:], packet.offset + PACKET_HEAD + 4, path, "packet")
    try:
        root = flat.table(flat.unpack("<I", 0))
        at = flat.field(root, 0)
        return None if at is None else flat.base + flat.target(at) + 4
    except ValueError:
        return None


def _convert(
    packet_events: np.ndarray,
    k: int,
    packet: Packet,
    container: Container,
    sensor: Sensor,
    path: PathLike,
    drop: bool,
    report: DropReport | None,
) -> np.ndarray:
    """One decoded packet's events as EVENT_DTYPE, checked (packet ``k`` of the file)."""
    n = packet_events.shape[0]
    out = np.empty(n, dtype=EVENT_DTYPE)
    if n == 0:
        return out
    t = packet_events["t"]  # uint64 holding the file's int64
    if t.max() > T_MAX:
        i = int(np.argmax(t > T_MAX))
        raise format_error(
            FORMAT, path, "negative event timestamp", packet.offset, _where(k, i, n, container)
        )
    out["t"] = t
    out["x"] = packet_events["x"]  # uint16 holding the file's int16: -1 comes back as -1
    out["y"] = packet_events["y"]
    out["p"] = packet_events["on"]

    def locate(i: int) -> tuple[int | None, str]:
        if container.compression == "NONE":
            first = _event_vector_offset(path, packet)
            if first is not None:
                return first + 16 * i, f"packet {k}, event {i} of {n}"
        return packet.offset, _where(k, i, n, container)

    return screen_events(
        out, sensor, fmt=FORMAT, path=path, drop=drop, report=report, locate=locate
    )


def _where(k: int, i: int, n: int, container: Container) -> str:
    return (
        f"packet {k}, event {i} of {n}; the offset is the packet's: its "
        f"{container.compression} compression leaves single events without a byte offset"
    )


def iter_blocks(
    path: PathLike,
    block_events: int | None = None,
    stream_id: int | None = None,
    on_invalid: str = "raise",
    report: DropReport | None = None,
) -> Iterator[np.ndarray]:
    """Yield the event stream's packets as event arrays (``block_events`` is not used:
    packets are decoded whole, and :func:`qifsim.events.io.iter_events` re-cuts them).

    Raises:
        ImportError: ``aedat`` is not installed.
        EventFormatError: not an AEDAT4 file, a corrupt structure (:func:`scan`), no event
            stream, a decoding error (offset of the packet), a negative timestamp or an
            event outside the sensor (without ``on_invalid="drop"``).
    """
    drop = check_on_invalid(on_invalid)
    container = scan(path)
    decoder = _decoder(path)
    sid, sensor = _event_stream(decoder, path, stream_id)
    iterator = iter(decoder)
    for k, packet in enumerate(container.packets):
        try:
            decoded = next(iterator)
        except StopIteration:
            raise format_error(
                FORMAT, path, f"the decoder stopped before packet {k}", packet.offset
            ) from None
        except (KeyboardInterrupt, SystemExit):
            raise
        except BaseException as err:
            raise format_error(
                FORMAT, path, f"cannot decode packet {k}: {err}", packet.offset
            ) from err
        if decoded.get("stream_id") != packet.stream_id:
            raise format_error(
                FORMAT, path, f"packet {k} decoded out of step with the file", packet.offset
            )
        if packet.stream_id == sid and "events" in decoded:
            yield _convert(decoded["events"], k, packet, container, sensor, path, drop, report)


def read(
    path: PathLike,
    stream_id: int | None = None,
    on_invalid: str = "raise",
    report: DropReport | None = None,
) -> np.ndarray:
    """All polarity events of the event stream (EVENT_DTYPE, stably sorted by ``t``)."""
    return sorted_by_time(concat(iter_blocks(path, None, stream_id, on_invalid, report)))


# -- writing ------------------------------------------------------------------------------------
DESCRIPTION = """<dv version="2.0">
    <node name="outInfo" path="/mainloop/Recorder/outInfo/">
        <node name="0" path="/mainloop/Recorder/outInfo/0/">
            <attr key="compression" type="string">NONE</attr>
            <attr key="originalModuleName" type="string">qifsim</attr>
            <attr key="originalOutputName" type="string">events</attr>
            <attr key="typeDescription" type="string">Array of events (polarity ON/OFF).</attr>
            <attr key="typeIdentifier" type="string">EVTS</attr>
            <node name="info" path="/mainloop/Recorder/outInfo/0/info/">
                <attr key="sizeX" type="int">{width}</attr>
                <attr key="sizeY" type="int">{height}</attr>
                <attr key="source" type="string">qifsim</attr>
            </node>
        </node>
    </node>
</dv>
"""


def ioheader_bytes(width: int, height: int) -> bytes:
    """The length-prefixed IOHE FlatBuffer: no compression, no data table, one event stream."""
    text = DESCRIPTION.format(width=int(width), height=int(height)).encode("utf-8")
    # root uoffset | "IOHE" | vtable (10 B) | pad | table: soffset, compression,
    # file_data_position (8-aligned), description uoffset | string
    buf = bytearray(48)
    struct.pack_into("<I", buf, 0, 24)
    buf[4:8] = b"IOHE"
    struct.pack_into("<5H", buf, 8, 10, 20, 4, 8, 16)
    struct.pack_into("<iiqI", buf, 24, 24 - 8, 0, -1, 44 - 40)
    struct.pack_into("<I", buf, 44, len(text))
    buf += text + b"\0"
    buf += b"\0" * (-len(buf) % 4)
    return struct.pack("<I", len(buf)) + bytes(buf)


def packet_bytes(records: np.ndarray, stream_id: int = 0) -> bytes:
    """One uncompressed packet: head (stream id, size) and a size-prefixed EVTS FlatBuffer
    whose event vector starts 8-aligned (``records``: :data:`RECORD_DTYPE`)."""
    n = records.shape[0]
    buf = bytearray(32)
    struct.pack_into("<I", buf, 4, 16)  # root uoffset (relative to byte 4)
    buf[8:12] = b"EVTS"
    struct.pack_into("<3H", buf, 12, 6, 8, 4)
    struct.pack_into("<iII", buf, 20, 20 - 12, 28 - 24, n)
    buf += records.tobytes()
    struct.pack_into("<I", buf, 0, len(buf) - 4)
    return struct.pack("<II", stream_id, len(buf)) + bytes(buf)


def write(
    path: PathLike,
    events: np.ndarray,
    width: int | None = None,
    height: int | None = None,
    packet_events: int = 4096,
) -> None:
    """Write an uncompressed AEDAT4 file with one event stream (see module docstring).

    Args:
        width, height: the sensor written as ``sizeX``/``sizeY`` (default: the events'
            largest ``x``/``y`` plus one; at least 1); events must lie inside.
        packet_events: most events per packet (>= 1).

    Raises:
        ValueError: unsorted or negative ``t``, coordinates outside the sensor, polarity
            not 0/1, a bad size.
    """
    if packet_events < 1:
        raise ValueError(f"packet_events must be >= 1, got {packet_events}")
    for name, value in (("width", width), ("height", height)):
        if value is not None and not 1 <= int(value) <= COORD_MAX + 1:
            raise ValueError(f"{name} must be in 1..{COORD_MAX + 1}, got {value}")
    cols = columns_for_write(
        events,
        FORMAT,
        COORD_MAX if width is None else int(width) - 1,
        COORD_MAX if height is None else int(height) - 1,
        T_MAX,
    )
    if width is None:
        width = int(cols.x.max()) + 1 if len(cols) else 1
    if height is None:
        height = int(cols.y.max()) + 1 if len(cols) else 1
    records = np.zeros(len(cols), dtype=RECORD_DTYPE)
    records["t"], records["x"], records["y"], records["on"] = cols.t, cols.x, cols.y, cols.p
    with open_atomic(path) as f:
        f.write(MAGIC_LINE)
        f.write(ioheader_bytes(width, height))
        for lo in range(0, len(cols), packet_events):
            f.write(packet_bytes(records[lo : lo + packet_events]))
