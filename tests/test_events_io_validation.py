"""Readers fail closed: header fields, coordinates vs the sensor, polarity, counts vs file size.

Regression tests for issue 13's two defects come first: an AEDAT4 event outside the
header's 320x240 sensor was returned silently, and a 51-byte input sniffed as Prophesee
DAT crashed with IndexError instead of raising EventFormatError.
"""

from __future__ import annotations

import struct
import tracemalloc
import warnings

import numpy as np
import pytest
from conftest import REAL_EVENTS
from events_io_reference import (
    AEDAT31_HEADER,
    aedat2_address,
    aedat2_bytes,
    aedat31_packet,
    aedat31_polarity,
    as_tuples,
    atis_record,
    dat_bytes,
    dat_word,
    ref_aedat31,
)

from qifsim.events import make_events
from qifsim.events.errors import DroppedEventsWarning, EventFormatError
from qifsim.events.io import aedat4, iter_events, read_events, sniff_format, write_events

pytest.importorskip("aedat")  # the AEDAT4 cases need the decoder; every other case too is cheap


def aedat4_with(tmp_path, x=(1, 2, 3), y=(3, 4, 5), name="e.aedat4"):
    """A 320x240 AEDAT4 file whose events have the given (possibly invalid) coordinates.

    Written valid, then the int16 fields patched in place (the file is uncompressed)."""
    n = len(x)
    events = make_events(np.arange(n) % 320, np.arange(n) % 240, 10 * np.arange(n), np.ones(n))
    path = tmp_path / name
    write_events(path, events, "aedat4", width=320, height=240)
    first = aedat4._event_vector_offset(path, aedat4.scan(path).packets[0])
    data = bytearray(path.read_bytes())
    for i, (xi, yi) in enumerate(zip(x, y, strict=True)):
        struct.pack_into("<hh", data, first + 16 * i + 8, xi, yi)
    path.write_bytes(bytes(data))
    return path, first


# -- defect 1: AEDAT4 coordinates outside the header's sensor ------------------------------------


@pytest.mark.parametrize(("x", "y", "bad", "match"), [(-1, 4, 1, "x=-1"), (2, 240, 1, "y=240")])
def test_aedat4_event_outside_sensor_raises_with_offset(tmp_path, x, y, bad, match):
    path, first = aedat4_with(tmp_path, x=(1, x, 3), y=(3, y, 5))
    with pytest.raises(EventFormatError, match=match) as info:
        read_events(path)
    err = info.value
    assert err.format == "aedat4" and err.offset == first + 16 * bad
    assert "packet 0, event 1 of 3" in str(err) and "0..319" in str(err) or "0..239" in str(err)
    with pytest.raises(EventFormatError, match=match):
        list(iter_events(path, chunk_events=2))


def test_aedat4_drop_reports_the_count(tmp_path):
    path, first = aedat4_with(tmp_path, x=(1, -1, 3, 400), y=(3, 4, 300, 5))
    with pytest.warns(DroppedEventsWarning, match="dropped 3 invalid") as record:
        events, report = read_events(path, on_invalid="drop", return_report=True)
    assert events["x"].tolist() == [1]
    assert report.dropped == 3 and sum(report.reasons.values()) == 3
    assert report.first_offset == first + 16 and record[0].message.report.dropped == 3
    with pytest.warns(DroppedEventsWarning):
        chunks = list(iter_events(path, chunk_events=1, on_invalid="drop"))
    np.testing.assert_array_equal(np.concatenate(chunks), events)


def test_aedat4_compressed_packets_name_packet_and_event(monkeypatch):
    """LZ4 packets: the offset is the packet's, the message says which event of which packet."""
    sample = REAL_EVENTS / "sample.aedat4"
    if not sample.is_file():
        pytest.skip(f"{sample} not present")
    real = aedat4._event_stream

    def smaller(decoder, path, stream_id):  # the real file's events checked against 100x100
        sid, _ = real(decoder, path, stream_id)
        return sid, aedat4.Sensor(100, 100, "test sensor")

    monkeypatch.setattr(aedat4, "_event_stream", smaller)
    with pytest.raises(EventFormatError, match="LZ4 compression") as info:
        read_events(sample)
    packets = {p.offset for p in aedat4.scan(sample).packets}
    assert info.value.offset in packets and "packet " in info.value.where


def test_aedat4_structure_is_checked_before_the_decoder(tmp_path, monkeypatch):
    """Counts that exceed the file raise before the decoder could allocate them."""
    path, _ = aedat4_with(tmp_path)
    good = path.read_bytes()
    monkeypatch.setattr(aedat4, "_decoder", lambda p: pytest.fail("decoder reached"))
    cases = {
        "IOHeader claims": good[:14] + struct.pack("<I", 2**32 - 1) + good[18:],
        "claims 4294967295 bytes": good[: 18 + struct.unpack_from("<I", good, 14)[0] + 4]
        + struct.pack("<I", 2**32 - 1)
        + good[-16:],
        "truncated packet head": good + b"\x00\x00\x00",
        "no #!AER-DAT4.0": b"#!XER-DAT" + good[9:],
        "compression code 9": good.replace(
            struct.pack("<iiq", 16, 0, -1), struct.pack("<iiq", 16, 9, -1)
        ),
        "data table at byte 99999": good.replace(
            struct.pack("<iiq", 16, 0, -1), struct.pack("<iiq", 16, 0, 99999)
        ),
    }
    for match, data in cases.items():
        path.write_bytes(data)
        with pytest.raises(EventFormatError, match=match):
            read_events(path, format="aedat4")


def test_aedat4_round_trip_and_reference(tmp_path):
    rng = np.random.default_rng(4)
    t = np.cumsum(rng.integers(0, 1000, 5000))
    events = make_events(
        rng.integers(0, 640, 5000), rng.integers(0, 480, 5000), t, rng.integers(0, 2, 5000)
    )
    path = tmp_path / "w.aedat4"
    write_events(path, events, "aedat4", width=640, height=480, packet_events=777)
    np.testing.assert_array_equal(read_events(path), events)
    header = aedat4.read_header(path)
    assert (header.fields["width"], header.fields["height"]) == ("640", "480")
    assert len(aedat4.scan(path).packets) == -(-5000 // 777)


# -- defect 2: a 51-byte input sniffed as Prophesee DAT -------------------------------------------

#: found by fuzzing: its third line is '%%%\r ' (comment characters and whitespace only),
#: which made the header parser index an empty split
FUZZ_51 = (
    b"%b\x08a\x08%\n%%%\r \n\x00\x08%%%\n\x08%\x08%ab\r\n\r  \x00\x08\rb \x00b\n\x00\n%\x00"
    b" \rb%\x00%\n\r "
)


def test_51_byte_dat_input_raises_event_format_error(tmp_path):
    assert len(FUZZ_51) == 51
    path = tmp_path / "fuzz.dat"  # sniffed by its extension: the first line is not text
    path.write_bytes(FUZZ_51)
    assert sniff_format(path) == "prophesee-dat"
    with pytest.raises(EventFormatError) as info:
        read_events(path)
    assert info.value.format == "prophesee-dat" and info.value.offset is not None
    with pytest.raises(EventFormatError):
        list(iter_events(path))


def test_dat_whitespace_header_line_is_skipped(tmp_path):
    path = tmp_path / "w.dat"
    path.write_bytes(dat_bytes(["% Version 2", "%\r ", "%"], [(5, dat_word(1, 2, 1))]))
    assert read_events(path).tolist() == [(1, 2, 5, 1)]


# -- the whole class, per format ------------------------------------------------------------------


def test_atis_rows_beyond_the_marker(tmp_path):
    path = tmp_path / "a.bin"
    path.write_bytes(atis_record(1, 2, 1, 3) + atis_record(4, 245, 0, 5) + atis_record(7, 8, 1, 9))
    with pytest.raises(EventFormatError, match="y=245 outside the sensor") as info:
        read_events(path)
    assert info.value.offset == 5
    with pytest.raises(EventFormatError, match="y=245"):
        list(iter_events(path, chunk_events=1))
    with pytest.warns(DroppedEventsWarning, match="dropped 1"):
        events = read_events(path, on_invalid="drop")
    assert events["x"].tolist() == [1, 7]


def test_dat_header_size_and_fields(tmp_path):
    path = tmp_path / "d.dat"
    lines = ["% Version 2", "% Width 10", "% Height 5"]
    path.write_bytes(dat_bytes(lines, [(1, dat_word(9, 4, 1)), (2, dat_word(10, 0, 0))]))
    head = len("".join(f"{x}\n" for x in lines)) + 2
    with pytest.raises(EventFormatError, match="x=10 outside the sensor: x outside 0..9") as info:
        read_events(path)
    assert info.value.offset == head + 8
    with pytest.warns(DroppedEventsWarning):
        events, report = read_events(path, on_invalid="drop", return_report=True)
    assert len(events) == 1 and report.dropped == 1 and report.first_offset == head + 8
    for bad, match in [(["% Version 3"], "Version 3"), (["% Width ten"], "Width ten")]:
        path.write_bytes(dat_bytes(bad, []))
        with pytest.raises(EventFormatError, match=match):
            read_events(path)
    with pytest.raises(ValueError, match="x in 0..9"):  # the writer keeps to its header's size
        write_events(
            tmp_path / "o.dat",
            make_events([10], [0], [0], [0]),
            "prophesee-dat",
            width=10,
            height=5,
        )


def test_dat_bad_polarity_can_be_dropped(tmp_path):
    path = tmp_path / "p.dat"
    path.write_bytes(dat_bytes(["% Version 2"], [(1, dat_word(1, 1, 3)), (2, dat_word(1, 1, 1))]))
    with pytest.raises(EventFormatError, match="polarity 3"):
        read_events(path)
    with pytest.warns(DroppedEventsWarning):
        events, report = read_events(path, on_invalid="drop", return_report=True)
    assert events["t"].tolist() == [2] and report.reasons == {"polarity not 0 or 1": 1}


@pytest.mark.parametrize("reader", ["read", "iter"])
def test_aedat31_dvs128_sensor(tmp_path, reader):
    pol = aedat31_polarity
    body = aedat31_packet(1, 0, [(pol(5, 5, 1), 1), (pol(200, 3, 0), 2), (pol(3, 128, 1), 3)])
    path = tmp_path / "g.aedat"
    path.write_bytes(AEDAT31_HEADER + body)

    def run(**kw):
        if reader == "read":
            return read_events(path, return_report=True, **kw)
        with warnings.catch_warnings(record=True) as seen:
            warnings.simplefilter("always")
            events = np.concatenate(list(iter_events(path, chunk_events=1, **kw)))
        return events, seen[0].message.report if seen else None

    with pytest.raises(EventFormatError, match="x=200 outside the sensor: x outside 0..127") as e:
        run()
    assert e.value.offset == len(AEDAT31_HEADER) + 28 + 8
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DroppedEventsWarning)
        events, report = run(on_invalid="drop")
    assert events["x"].tolist() == [5] and report.dropped == 2
    assert report.first_offset == len(AEDAT31_HEADER) + 28 + 8
    assert sorted(report.reasons.values()) == [1, 1]


def test_aedat31_unknown_camera_keeps_the_format_range(tmp_path):
    header = AEDAT31_HEADER.replace(b"DVS128", b"SomeCam")
    path = tmp_path / "u.aedat"
    path.write_bytes(header + aedat31_packet(1, 0, [(aedat31_polarity(9000, 7000, 1), 4)]))
    assert read_events(path).tolist() == [(9000, 7000, 4, 1)]


@pytest.mark.parametrize(("end", "events"), [(b"\n", 1), (b"\r", 0), (b"", 0)])
def test_aedat31_end_header_terminators(tmp_path, end, events):
    """Fuzz finding: ``#!END-HEADER`` ended by LF (then packets), or by CR or nothing at the
    end of the file, ends the header for the reader; the reference decoder (the fuzz
    oracle) raised ValueError there, and now follows the same rule."""
    header = AEDAT31_HEADER[: -len(b"\r\n")] + end
    body = aedat31_packet(1, 0, [(aedat31_polarity(5, 6, 1), 7)]) if events else b""
    path = tmp_path / "t.aedat"
    path.write_bytes(header + body)
    expected = [(5, 6, 7, 1)] if events else []
    assert as_tuples(read_events(path)) == expected == ref_aedat31(path.read_bytes())


def test_aedat2_other_chip_is_refused(tmp_path):
    lines = ["#!AER-DAT2.0", "# AEChip: eu.seebetter.ini.chips.davis.Davis346red"]
    path = tmp_path / "c.aedat"
    path.write_bytes(aedat2_bytes([(aedat2_address(1, 1, 1), 5)], lines))
    with pytest.raises(EventFormatError, match="DVS128 addresses only") as info:
        read_events(path)
    assert info.value.offset == len(lines[0]) + 2
    path.write_bytes(aedat2_bytes([], lines))  # header only: nothing is decoded wrongly
    assert read_events(path).shape == (0,)
    lines[1] = "# AEChip: ch.unizh.ini.jaer.chip.retina.DVS128"
    path.write_bytes(aedat2_bytes([(aedat2_address(1, 1, 1), 5)], lines))
    assert read_events(path).tolist() == [(1, 1, 5, 1)]


def test_on_invalid_is_checked(tmp_path):
    path = tmp_path / "a.bin"
    path.write_bytes(atis_record(1, 2, 1, 3))
    with pytest.raises(ValueError, match="on_invalid"):
        read_events(path, on_invalid="clip")
    events, report = read_events(path, return_report=True)
    assert len(events) == 1 and report.dropped == 0


def test_tiny_files_claiming_huge_counts_allocate_little(tmp_path):
    """No reader allocates for a count a small file cannot hold."""
    pol = aedat31_polarity(1, 1, 1)
    huge_packet = struct.pack("<hhiiiiii", 1, 1, 8, 4, 0, 2**31 - 1, 2**31 - 1, 1) + struct.pack(
        "<Ii", pol, 1
    )
    cases = {
        "aedat31": AEDAT31_HEADER + huge_packet,
        "prophesee-dat": dat_bytes(["% Width 16384", "% Height 16384"], [(1, 5)]),
        "atis-bin": atis_record(1, 1, 1, 1) * 3,
        "aedat2": aedat2_bytes([(aedat2_address(1, 1, 1), 5)]),
    }
    path = tmp_path / "huge"
    for fmt, data in cases.items():
        path.write_bytes(data)
        tracemalloc.start()
        try:
            read_events(path, format=fmt)
        except EventFormatError:
            pass
        peak = tracemalloc.get_traced_memory()[1]
        tracemalloc.stop()
        assert peak < 1 << 20, (fmt, peak)
