"""Event file readers and writers: exact round trips, format semantics, sniffing, chunked reads."""

from __future__ import annotations

import tempfile
from pathlib import Path

import numpy as np
import pytest
from events_io_reference import (
    AEDAT2_HEADER,
    AEDAT31_HEADER,
    aedat2_address,
    aedat2_bytes,
    aedat31_packet,
    aedat31_polarity,
    as_tuples,
    atis_record,
    dat_bytes,
    dat_word,
    random_events,
    ref_aedat2,
    ref_aedat4,
    ref_aedat31,
    ref_atis,
    ref_dat,
)
from hypothesis import given, settings
from hypothesis import strategies as st

from qifsim.events import EVENT_DTYPE, make_events
from qifsim.events.errors import EventFormatError
from qifsim.events.io import (
    FORMATS,
    WRITABLE_FORMATS,
    iter_events,
    read_events,
    read_header,
    sniff_format,
    write_events,
)

REFERENCE = {
    "atis-bin": ref_atis,
    "prophesee-dat": ref_dat,
    "aedat2": ref_aedat2,
    "aedat31": ref_aedat31,
    "aedat4": ref_aedat4,
}
SUFFIX = {
    "atis-bin": ".bin",
    "prophesee-dat": ".dat",
    "aedat2": ".aedat",
    "aedat31": ".aedat",
    "aedat4": ".aedat4",
}
#: write options for the random round trips: the default AEDAT 3.1 header names a DVS128
#: (128x128), the random events use the format's whole 15-bit range
WIDE = {"aedat31": {"header_lines": ["#Source 1: a 32768x32768 test camera"]}}


def write_read(fmt: str, events: np.ndarray, directory: Path, **options) -> tuple[np.ndarray, Path]:
    path = directory / f"events{SUFFIX[fmt]}"
    write_events(path, events, fmt, **{**WIDE.get(fmt, {}), **options})
    return read_events(path, format=fmt, **options), path


# -- round trips ---------------------------------------------------------------


@pytest.mark.parametrize("fmt", WRITABLE_FORMATS)
@pytest.mark.parametrize("n", [0, 1, 2000])
@pytest.mark.parametrize("start_index", [0, 1, 2])
def test_round_trip_exact(fmt, n, start_index, tmp_path):
    events = random_events(fmt, np.random.default_rng(n + 7 * start_index), n, start_index)
    back, path = write_read(fmt, events, tmp_path)
    assert back.dtype == EVENT_DTYPE
    np.testing.assert_array_equal(back, events)
    # the bytes decode the same way with the independent per-record reference
    assert as_tuples(back) == REFERENCE[fmt](path.read_bytes())


@settings(max_examples=40, deadline=None)
@given(
    fmt=st.sampled_from(WRITABLE_FORMATS),
    n=st.integers(0, 300),
    seed=st.integers(0, 2**32 - 1),
    start_index=st.integers(0, 3),
)
def test_round_trip_property(fmt, n, seed, start_index):
    events = random_events(fmt, np.random.default_rng(seed), n, start_index)
    with tempfile.TemporaryDirectory() as tmp:
        back, path = write_read(fmt, events, Path(tmp))
        np.testing.assert_array_equal(back, events)
        assert as_tuples(back) == REFERENCE[fmt](path.read_bytes())
        chunks = list(iter_events(path, format=fmt, chunk_events=17))
    assert all(len(c) == 17 for c in chunks[:-1]) and all(0 < len(c) <= 17 for c in chunks)
    joined = np.concatenate(chunks) if chunks else np.empty(0, EVENT_DTYPE)
    np.testing.assert_array_equal(joined, events)


def test_round_trip_aedat2_transposed(tmp_path):
    events = random_events("aedat2", np.random.default_rng(3), 500)
    back, path = write_read("aedat2", events, tmp_path, orientation="transposed")
    np.testing.assert_array_equal(back, events)
    assert as_tuples(back) == ref_aedat2(path.read_bytes(), "transposed")
    # the jAER reading of the same file: x_jaer = 127 - x_raw = y, y_jaer = y_raw = 127 - x
    jaer = read_events(path, format="aedat2")
    np.testing.assert_array_equal(jaer["x"], events["y"])
    np.testing.assert_array_equal(jaer["y"], 127 - events["x"])


def test_tonic_dtype_with_bool_polarity_is_written(tmp_path):
    dtype = np.dtype([("x", np.int16), ("y", np.int16), ("t", np.int64), ("p", bool)])
    events = np.zeros(3, dtype=dtype)
    events["x"], events["y"], events["t"], events["p"] = [1, 2, 3], [4, 5, 6], [7, 8, 9], [1, 0, 1]
    back, _ = write_read("atis-bin", events, tmp_path)
    assert back["p"].tolist() == [1, 0, 1] and back["t"].tolist() == [7, 8, 9]


# -- ATIS overflow markers -----------------------------------------------------


def test_atis_overflow_markers_follow_reference_reader(tmp_path):
    marker = atis_record(0, 240, 0, 0)
    data = (
        atis_record(1, 2, 1, 100)
        + marker
        + atis_record(3, 4, 0, 50)
        + marker
        + marker
        + atis_record(5, 6, 1, 2**23 - 1)
    )
    path = tmp_path / "m.bin"
    path.write_bytes(data)
    events = read_events(path)
    assert as_tuples(events) == [
        (1, 2, 100, 1),
        (3, 4, 50 + 2**13, 0),
        (5, 6, 2**23 - 1 + 3 * 2**13, 1),
    ]


def test_atis_writer_emits_just_enough_markers(tmp_path):
    t = np.array([0, 2**23 - 1, 2**23, 2**23 + 2**13, 2**25 + 17])
    events = make_events(np.zeros(5), np.ones(5), t, np.ones(5))
    path = tmp_path / "m.bin"
    write_events(path, events, "atis-bin")
    markers = -((2**23 - 1 - int(t[-1])) // 2**13)  # ceil((t_max - (2**23 - 1)) / 2**13)
    assert path.stat().st_size == 5 * (len(t) + markers)
    np.testing.assert_array_equal(read_events(path), events)


# -- Prophesee DAT -------------------------------------------------------------


def test_dat_wraps_are_unrolled(tmp_path):
    w = dat_word(3, 4, 1)
    times = [10, 2**32 - 5, 3, 7, 2]
    path = tmp_path / "w.dat"
    path.write_bytes(dat_bytes(["% Version 2"], [(t, w) for t in times]))
    events = read_events(path)
    assert events["t"].tolist() == [10, 2**32 - 5, 2**32 + 3, 2**32 + 7, 2**33 + 2]
    assert (events["x"] == 3).all() and (events["y"] == 4).all() and (events["p"] == 1).all()


def test_dat_header_is_kept_and_written(tmp_path):
    events = random_events("prophesee-dat", np.random.default_rng(1), 10)
    events["x"] %= 120  # inside the header's 120x100
    events["y"] %= 100
    path = tmp_path / "h.dat"
    lines = ["% Data file containing Event2D events.", "% Version 2", "% Date 2017-10-31 11:29:21"]
    write_events(path, events, "prophesee-dat", header_lines=lines, width=120, height=100)
    header = read_header(path)
    assert header.lines == (*lines, "% Width 120", "% Height 100")
    assert header.fields["Date"] == "2017-10-31 11:29:21"
    assert (header.fields["Width"], header.fields["Height"], header.fields["Version"]) == (
        "120",
        "100",
        "2",
    )
    assert header.extra == {"event_type": 0, "event_size": 8}
    assert header.data_offset == len("".join(f"{x}\n" for x in header.lines)) + 2
    np.testing.assert_array_equal(read_events(path), events)


def test_dat_header_only_and_no_header(tmp_path):
    path = tmp_path / "only.dat"
    path.write_bytes(b"% Version 2\n")
    assert read_events(path).shape == (0,)
    write_events(
        path,
        random_events("prophesee-dat", np.random.default_rng(2), 5),
        "prophesee-dat",
        header_lines=[],
    )
    assert read_header(path).lines == ()
    assert sniff_format(path) == "prophesee-dat"  # by extension: no '%' header
    assert read_events(path).shape == (5,)


# -- AEDAT 2.0 -----------------------------------------------------------------


def test_aedat2_resets_continue_time_and_special_events_are_dropped(tmp_path):
    a = aedat2_address(10, 20, 1)
    records = [(a, 100), (a, 200), (a | 0x8000, 5), (a, 50), (a, 70), (a, 10), (a, 15)]
    path = tmp_path / "r.aedat"
    path.write_bytes(aedat2_bytes(records))
    events = read_events(path)
    # reset at 50: shift 150 (time continues at 200); at 10: shift + 60
    assert events["t"].tolist() == [100, 200, 200, 220, 220, 225]
    assert (events["x"] == 10).all() and (events["y"] == 20).all() and (events["p"] == 1).all()
    assert as_tuples(events) == ref_aedat2(path.read_bytes())
    with pytest.raises(EventFormatError, match="reset") as info:
        read_events(path, on_reset="raise")
    header_bytes = len(aedat2_bytes([]))
    assert info.value.offset == header_bytes + 3 * 8 and info.value.format == "aedat2"
    with pytest.raises(EventFormatError, match="reset") as info:
        list(iter_events(path, chunk_events=2, on_reset="raise"))
    assert info.value.offset == header_bytes + 3 * 8
    # repaired events write back and read back unchanged
    back, _ = write_read("aedat2", events, tmp_path)
    np.testing.assert_array_equal(back, events)


def test_aedat2_orientations_decode_one_address():
    """x_raw = 5, y_raw = 9, bit 0 = 0 (ON): jAER (122, 9); transposed (118, 122)."""
    address = (9 << 8) | (5 << 1) | 0
    data = aedat2_bytes([(address, 42)])
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "o.aedat"
        path.write_bytes(data)
        assert as_tuples(read_events(path)) == [(122, 9, 42, 1)]
        assert as_tuples(read_events(path, orientation="transposed")) == [(118, 122, 42, 1)]
        with pytest.raises(ValueError, match="orientation"):
            read_events(path, orientation="flipped")


def test_aedat2_header_lines(tmp_path):
    path = tmp_path / "h.aedat"
    path.write_bytes(aedat2_bytes([], lines=[*AEDAT2_HEADER, "# AEChip: DVS128"], eol="\n"))
    header = read_header(path)
    assert header.lines[0] == "#!AER-DAT2.0" and header.fields["AEChip"] == "DVS128"
    assert read_events(path).shape == (0,)
    events = random_events("aedat2", np.random.default_rng(0), 4)
    write_events(path, events, "aedat2", header_lines=header.lines)
    assert read_header(path).lines == header.lines
    assert path.read_bytes().startswith(b"#!AER-DAT2.0\r\n# a test file\r\n")


# -- AEDAT 3.1 -----------------------------------------------------------------


def test_aedat31_packets_types_validity_and_overflow(tmp_path):
    pol = aedat31_polarity
    data = (
        AEDAT31_HEADER
        + aedat31_packet(1, 0, [(pol(1, 2, 1), 10), (pol(3, 4, 0), 20)])
        + aedat31_packet(2, 0, [(0xFFFFFFFF, -1)] * 3, event_size=12)  # another type: skipped
        + aedat31_packet(1, 2, [(pol(5, 6, 1), 5), (pol(7, 8, 1, valid=0), 6), (pol(9, 9, 0), 7)])
        + aedat31_packet(1, 2, [(pol(11, 12, 1), 9), (pol(1, 1, 1), 99)], capacity=5, number=1)
    )
    path = tmp_path / "g.aedat"
    path.write_bytes(data)
    expected = [
        (1, 2, 10, 1),
        (3, 4, 20, 0),
        (5, 6, 5 | (2 << 31), 1),
        (9, 9, 7 | (2 << 31), 0),
        (11, 12, 9 | (2 << 31), 1),
    ]
    assert as_tuples(read_events(path)) == expected == ref_aedat31(data)
    assert read_header(path).fields["Source 1"] == "DVS128"


def test_aedat31_writer_packets(tmp_path):
    events = random_events("aedat31", np.random.default_rng(5), 1000, start_index=1)
    path = tmp_path / "p.aedat"
    write_events(path, events, "aedat31", packet_events=64, **WIDE["aedat31"])
    np.testing.assert_array_equal(read_events(path), events)
    overflows = np.unique(events["t"] >> 31)
    data = path.read_bytes()
    head = data.index(b"#!END-HEADER\r\n") + len(b"#!END-HEADER\r\n")
    n_packets = (len(data) - head - 8 * len(events)) // 28
    assert n_packets >= max(len(overflows), -(-len(events) // 64))
    with pytest.raises(ValueError, match="packet_events"):
        write_events(path, events, "aedat31", packet_events=0)


# -- writer limits -------------------------------------------------------------


def _one(x=0, y=0, t=0, p=0):
    return make_events([x], [y], [t], [p])


@pytest.mark.parametrize(
    ("fmt", "events", "match"),
    [
        ("atis-bin", _one(y=240), "y in 0..239"),
        ("atis-bin", _one(x=256), "x in 0..255"),
        ("atis-bin", _one(t=-1), "t >= 0"),
        ("atis-bin", make_events([0, 0], [0, 0], [5, 4], [0, 0]), "sorted"),
        ("prophesee-dat", _one(t=2**32), "first timestamp"),
        ("prophesee-dat", make_events([0, 0], [0, 0], [0, 2**32], [0, 0]), "2\\*\\*32"),
        ("prophesee-dat", _one(x=16384), "x in 0..16383"),
        ("aedat2", _one(x=128), "x in 0..127"),
        ("aedat2", _one(t=2**32), "t in 0..4294967295"),
        ("aedat31", _one(t=2**62), "t in 0.."),
        ("aedat31", _one(p=2), "p in 0..1"),
        ("aedat31", _one(x=128), "DVS128 stores x in 0..127"),
        ("aedat4", _one(x=-1), "x in 0..32767"),
        ("aedat4", _one(t=-1), "t in 0.."),
    ],
)
def test_writer_refuses_what_the_format_cannot_store(fmt, events, match, tmp_path):
    path = tmp_path / "x"
    with pytest.raises(ValueError, match=match):
        write_events(path, events, fmt)
    assert not path.exists() and not list(tmp_path.iterdir())


def test_write_events_rejects_unknown_formats(tmp_path):
    with pytest.raises(ValueError, match="writable"):
        write_events(tmp_path / "a.x", _one(), "nope")
    with pytest.raises(ValueError, match="structured"):
        write_events(tmp_path / "a.bin", np.zeros(3), "atis-bin")
    (tmp_path / "a.bin").write_bytes(b"")
    with pytest.raises(ValueError, match="unknown event format"):
        read_events(tmp_path / "a.bin", format="nope")


# -- sniffing ------------------------------------------------------------------


@pytest.mark.parametrize("fmt", ["prophesee-dat", "aedat2", "aedat31", "aedat4"])
def test_sniff_by_content_ignores_extension(fmt, tmp_path):
    path = tmp_path / "file.bin"  # a misleading extension
    write_events(path, random_events(fmt, np.random.default_rng(0), 3), fmt, **WIDE.get(fmt, {}))
    assert sniff_format(path) == fmt
    assert read_events(path).shape == (3,)


def test_sniff_by_extension_and_unknown(tmp_path):
    events = random_events("atis-bin", np.random.default_rng(0), 3)
    write_events(tmp_path / "a.bin", events, "atis-bin")
    write_events(tmp_path / "a.BIN", events, "atis-bin")
    write_events(tmp_path / "a.raw", events, "atis-bin")
    assert sniff_format(tmp_path / "a.bin") == "atis-bin" == sniff_format(tmp_path / "a.BIN")
    with pytest.raises(EventFormatError, match="format=") as info:
        read_events(tmp_path / "a.raw")
    assert all(name in str(info.value) for name in FORMATS)
    np.testing.assert_array_equal(read_events(tmp_path / "a.raw", format="atis-bin"), events)
    (tmp_path / "b.aedat").write_bytes(b"\x00" * 16)
    with pytest.raises(EventFormatError, match="format="):
        sniff_format(tmp_path / "b.aedat")
    (tmp_path / "c.aedat").write_bytes(b"#!AER-DAT1.0\r\n")
    with pytest.raises(EventFormatError, match="unsupported AEDAT version"):
        sniff_format(tmp_path / "c.aedat")
    with pytest.raises(FileNotFoundError):
        sniff_format(tmp_path / "missing.bin")


# -- chunked reading -----------------------------------------------------------


@pytest.mark.parametrize("fmt", WRITABLE_FORMATS)
@pytest.mark.parametrize("chunk", [1, 3, 1000, 10**6])
def test_iter_events_matches_read_events(fmt, chunk, tmp_path):
    events = random_events(fmt, np.random.default_rng(11), 777, start_index=1)
    path = tmp_path / f"e{SUFFIX[fmt]}"
    options = {"packet_events": 100} if fmt in ("aedat31", "aedat4") else {}
    write_events(path, events, fmt, **options, **WIDE.get(fmt, {}))
    chunks = list(iter_events(path, chunk_events=chunk))
    assert [len(c) for c in chunks[:-1]] == [chunk] * (len(chunks) - 1)
    assert 0 < len(chunks[-1]) <= chunk
    np.testing.assert_array_equal(np.concatenate(chunks), read_events(path))


def test_iter_events_reads_in_blocks(tmp_path, monkeypatch):
    """iter_events never asks np.fromfile for more than one chunk's bytes."""
    events = random_events("atis-bin", np.random.default_rng(0), 1000)
    path = tmp_path / "e.bin"
    write_events(path, events, "atis-bin")
    counts = []
    real = np.fromfile

    def spy(*args, **kwargs):
        counts.append(kwargs.get("count", -1))
        return real(*args, **kwargs)

    monkeypatch.setattr(np, "fromfile", spy)
    assert sum(len(c) for c in iter_events(path, chunk_events=100)) == 1000
    assert counts and all(0 < c <= 5 * 100 for c in counts)


def test_iter_events_rejects_bad_chunk_size(tmp_path):
    with pytest.raises(ValueError, match="chunk_events"):
        iter_events(tmp_path / "x.bin", chunk_events=0)


def test_read_events_sorts_out_of_order_packets(tmp_path):
    pol = aedat31_polarity(1, 1, 1)
    data = AEDAT31_HEADER + aedat31_packet(1, 0, [(pol, 50)]) + aedat31_packet(1, 0, [(pol, 10)])
    path = tmp_path / "u.aedat"
    path.write_bytes(data)
    assert read_events(path)["t"].tolist() == [10, 50]
    assert [int(c["t"][0]) for c in iter_events(path, chunk_events=1)] == [50, 10]


def test_read_events_sorts_decreasing_atis_timestamps(tmp_path):
    data = atis_record(1, 1, 1, 300) + atis_record(2, 2, 0, 100) + atis_record(3, 3, 1, 200)
    path = tmp_path / "u.bin"
    path.write_bytes(data)
    assert read_events(path)["x"].tolist() == [2, 3, 1]
    assert np.concatenate(list(iter_events(path)))["x"].tolist() == [1, 2, 3]
