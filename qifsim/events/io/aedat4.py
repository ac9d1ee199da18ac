"""AEDAT 4.0 files (FlatBuffers + LZ4/ZSTD packets), read with the optional ``aedat`` package.

``aedat`` (MIT, ``pip install aedat``) is imported only when a file is read.
The polarity events of one event stream (``stream_id``; default: the lowest
id whose type is ``"events"``) are returned; other streams (IMU, triggers,
frames) are skipped. ``t`` is the recording's absolute timestamp in us (as
stored), ``p = 1`` for ON. Reading only: no writer.

Errors the decoder reports (corrupt or truncated packets) become
:class:`EventFormatError`; it does not report byte offsets, so ``offset`` is
None for them.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import numpy as np

from ..array import EVENT_DTYPE
from ._base import Header, PathLike, concat, format_error, sorted_by_time

FORMAT = "aedat4"
MAGIC = b"#!AER-DAT4.0"
T_MAX = np.iinfo(np.int64).max


def _import_aedat():
    try:
        import aedat
    except ImportError as err:
        raise ImportError(
            "reading AEDAT4 files needs the optional package 'aedat': pip install aedat "
            "(or pip install 'qifsim[aedat4]')"
        ) from err
    return aedat


def _open(path: PathLike) -> Any:
    """Check the magic line, then open an ``aedat.Decoder``."""
    with open(path, "rb") as f:
        head = f.read(len(MAGIC))
    if head != MAGIC:
        if head.startswith(b"#!AER-DAT"):
            version = head[9:12].decode("latin-1", "replace")
            raise format_error(FORMAT, path, f"header says AER-DAT{version}, not AER-DAT4.0", 0)
        raise format_error(FORMAT, path, "no #!AER-DAT4.0 magic line", 0)
    aedat = _import_aedat()
    try:
        return aedat.Decoder(str(path))
    except (KeyboardInterrupt, SystemExit):
        raise
    except BaseException as err:  # the Rust decoder raises RuntimeError (or a pyo3 panic)
        raise format_error(FORMAT, path, f"cannot decode: {err}") from err


def _event_stream(decoder: Any, path: PathLike, stream_id: int | None) -> tuple[int, dict]:
    streams = decoder.id_to_stream()
    if stream_id is not None:
        if stream_id not in streams or streams[stream_id].get("type") != "events":
            raise format_error(FORMAT, path, f"no event stream with id {stream_id} ({streams})")
        return stream_id, streams[stream_id]
    ids = sorted(i for i, s in streams.items() if s.get("type") == "events")
    if not ids:
        raise format_error(FORMAT, path, f"no event stream (streams: {streams})")
    return ids[0], streams[ids[0]]


def read_header(path: PathLike, stream_id: int | None = None) -> Header:
    """Sensor ``width``/``height`` and ``stream_id`` of the event stream, as ``fields``."""
    decoder = _open(path)
    sid, stream = _event_stream(decoder, path, stream_id)
    fields = {"stream_id": str(sid)}
    fields.update({k: str(stream[k]) for k in ("width", "height") if k in stream})
    return Header(FORMAT, fields=fields)


def _convert(packet_events: np.ndarray, path: PathLike) -> np.ndarray:
    out = np.empty(packet_events.shape[0], dtype=EVENT_DTYPE)
    if out.shape[0] == 0:
        return out
    t = packet_events["t"]
    if t.max() > T_MAX:
        raise format_error(FORMAT, path, "timestamp beyond int64")
    out["t"] = t
    out["x"] = packet_events["x"]
    out["y"] = packet_events["y"]
    out["p"] = packet_events["on"]
    return out


def iter_blocks(
    path: PathLike, block_events: int | None = None, stream_id: int | None = None
) -> Iterator[np.ndarray]:
    """Yield the event stream's packets as event arrays (``block_events`` is not used:
    packets are decoded whole, and :func:`qifsim.events.io.iter_events` re-cuts them).

    Raises:
        ImportError: ``aedat`` is not installed.
        EventFormatError: not an AEDAT4 file, no event stream, a decoding error.
    """
    decoder = _open(path)
    sid, _ = _event_stream(decoder, path, stream_id)
    iterator = iter(decoder)
    while True:
        try:
            packet = next(iterator)
        except StopIteration:
            return
        except (KeyboardInterrupt, SystemExit):
            raise
        except BaseException as err:
            raise format_error(FORMAT, path, f"cannot decode: {err}") from err
        if packet.get("stream_id") == sid and "events" in packet:
            yield _convert(packet["events"], path)


def read(path: PathLike, stream_id: int | None = None) -> np.ndarray:
    """All polarity events of the event stream (EVENT_DTYPE, stably sorted by ``t``)."""
    return sorted_by_time(concat(iter_blocks(path, None, stream_id)))


def write(path: PathLike, events: np.ndarray, **options: Any) -> None:
    """Not supported: AEDAT4 is read-only here."""
    raise NotImplementedError(
        "aedat4 is read-only in qifsim (the 'aedat' package only decodes); "
        "write 'aedat31' or 'aedat2' instead"
    )
