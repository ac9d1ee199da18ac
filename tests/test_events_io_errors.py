"""Truncated, corrupt and mislabelled event files raise EventFormatError (format + byte offset);
fuzzed bytes raise nothing else."""

from __future__ import annotations

import struct
import time
from pathlib import Path

import numpy as np
import pytest
from conftest import REAL_EVENTS
from events_io_reference import (
    AEDAT31_HEADER,
    aedat2_address,
    aedat2_bytes,
    aedat31_packet,
    aedat31_polarity,
    atis_record,
    dat_bytes,
    dat_word,
)

from qifsim.events import EVENT_DTYPE, make_events
from qifsim.events.errors import EventFormatError
from qifsim.events.io import iter_events, read_events, write_events

REAL = REAL_EVENTS
DAT_LINES = ["% Data file containing Event2D events.", "% Version 2"]
DAT_HEAD = len("".join(f"{x}\n" for x in DAT_LINES))
AEDAT2_HEAD = len(aedat2_bytes([]))


def expect_error(path: Path, fmt: str, offset: int | None, match: str = "") -> EventFormatError:
    with pytest.raises(EventFormatError, match=match) as info:
        read_events(path, format=fmt)
    err = info.value
    assert err.format == fmt and err.offset == offset, (err.format, err.offset, str(err))
    assert fmt in str(err) and str(path) in str(err)
    if offset is not None:
        assert f"at byte {offset}" in str(err)
    return err


# -- truncation ----------------------------------------------------------------


def test_atis_truncated(tmp_path):
    path = tmp_path / "t.bin"
    path.write_bytes(atis_record(1, 2, 1, 3) * 3 + b"\x01\x02")
    err = expect_error(path, "atis-bin", 15, "truncated")
    assert "17 bytes" in str(err)


def test_dat_truncated(tmp_path):
    path = tmp_path / "t.dat"
    path.write_bytes(dat_bytes(DAT_LINES, [(1, dat_word(1, 1, 0))] * 2) + b"\x00" * 3)
    expect_error(path, "prophesee-dat", DAT_HEAD + 2 + 16, "truncated")
    path.write_bytes(dat_bytes(DAT_LINES, [])[:-1])  # the event size byte is missing
    expect_error(path, "prophesee-dat", DAT_HEAD + 1, "after the event type")


def test_aedat2_truncated(tmp_path):
    path = tmp_path / "t.aedat"
    path.write_bytes(aedat2_bytes([(aedat2_address(1, 1, 1), 5)] * 2) + b"\x00" * 5)
    expect_error(path, "aedat2", AEDAT2_HEAD + 16, "truncated")


def test_aedat31_truncated(tmp_path):
    pol = aedat31_polarity(1, 1, 1)
    first = aedat31_packet(1, 0, [(pol, 1)] * 2)
    path = tmp_path / "t.aedat"
    path.write_bytes(AEDAT31_HEADER + first + b"\x01\x00" * 5)
    expect_error(path, "aedat31", len(AEDAT31_HEADER) + len(first), "packet header")
    second = aedat31_packet(1, 0, [(pol, 1)] * 10)[: 28 + 8 * 3]
    path.write_bytes(AEDAT31_HEADER + first + second)
    expect_error(path, "aedat31", len(AEDAT31_HEADER) + len(first), "truncated packet")


# -- corrupt content -----------------------------------------------------------


def test_dat_bad_type_size_and_polarity(tmp_path):
    path = tmp_path / "c.dat"
    path.write_bytes(dat_bytes(DAT_LINES, [(1, 0)], type_size=(1, 8)))
    expect_error(path, "prophesee-dat", DAT_HEAD, "event type")
    path.write_bytes(dat_bytes(DAT_LINES, [(1, 0)], type_size=(0, 16)))
    expect_error(path, "prophesee-dat", DAT_HEAD + 1, "event size")
    path.write_bytes(dat_bytes(DAT_LINES, [(1, dat_word(1, 1, 1)), (2, dat_word(1, 1, 2))]))
    expect_error(path, "prophesee-dat", DAT_HEAD + 2 + 8, "polarity 2")


@pytest.mark.parametrize(
    ("packet", "match"),
    [
        (aedat31_packet(1, 0, [(3, 1)], event_size=12), "eventSize 12"),
        (aedat31_packet(1, 0, [(3, 1)], ts_offset=0), "tsOffset 0"),
        (aedat31_packet(1, 0, [(3, 1)], number=2), "number 2 > capacity 1"),
        (aedat31_packet(1, -1, [(3, 1)]), "negative tsOverflow"),
        (aedat31_packet(7, 0, [], event_size=-4, capacity=0), "negative eventSize"),
    ],
)
def test_aedat31_bad_packet_header(packet, match, tmp_path):
    path = tmp_path / "c.aedat"
    good = aedat31_packet(1, 0, [(aedat31_polarity(1, 1, 1), 1)])
    path.write_bytes(AEDAT31_HEADER + good + packet)
    expect_error(path, "aedat31", len(AEDAT31_HEADER) + len(good), match)


def test_aedat31_negative_timestamp_and_missing_end(tmp_path):
    path = tmp_path / "c.aedat"
    pol = aedat31_polarity(1, 1, 1)
    path.write_bytes(AEDAT31_HEADER + aedat31_packet(1, 0, [(pol, 1), (pol, -5)]))
    expect_error(path, "aedat31", len(AEDAT31_HEADER) + 28 + 8, "negative event timestamp")
    header = b"#!AER-DAT3.1\r\n#Format: RAW\r\n"
    path.write_bytes(header + aedat31_packet(1, 0, [(pol, 1)]))
    expect_error(path, "aedat31", len(header), "END-HEADER")


def test_aedat2_without_header(tmp_path):
    path = tmp_path / "c.aedat"
    path.write_bytes(struct.pack(">II", 0, 1))
    expect_error(path, "aedat2", 0, "no #!AER-DAT2.0")
    path.write_bytes(b"")
    expect_error(path, "aedat2", 0, "no #!AER-DAT2.0")


# -- mislabelled ---------------------------------------------------------------


def _write_samples(tmp_path: Path) -> dict[str, Path]:
    events = make_events([5, 6], [7, 8], [10, 20], [1, 0])
    paths = {}
    for fmt, name in [
        ("atis-bin", "s.bin"),
        ("prophesee-dat", "s.dat"),
        ("aedat2", "s2.aedat"),
        ("aedat31", "s31.aedat"),
    ]:
        paths[fmt] = tmp_path / name
        write_events(paths[fmt], events, fmt)
    return paths


@pytest.mark.parametrize(
    ("actual", "read_as", "match"),
    [
        ("aedat2", "atis-bin", "AEDAT 2.0 file, not ATIS"),
        ("aedat31", "atis-bin", "AEDAT 3.1 file, not ATIS"),
        ("prophesee-dat", "atis-bin", "Prophesee"),
        ("aedat2", "prophesee-dat", "AEDAT 2.0 file, not Prophesee"),
        ("atis-bin", "prophesee-dat", "event type"),
        ("prophesee-dat", "aedat2", "no #!AER-DAT2.0"),
        ("aedat31", "aedat2", "AER-DAT3.1, not AER-DAT2.0"),
        ("atis-bin", "aedat2", "no #!AER-DAT2.0"),
        ("aedat2", "aedat31", "AER-DAT2.0, not AER-DAT3.1"),
        ("prophesee-dat", "aedat31", "no #!AER-DAT3.1"),
        ("aedat31", "aedat4", "AER-DAT3.1, not AER-DAT4.0"),
        ("atis-bin", "aedat4", "no #!AER-DAT4.0"),
    ],
)
def test_mislabelled_files(actual, read_as, match, tmp_path):
    paths = _write_samples(tmp_path)
    err = expect_error(paths[actual], read_as, 0, match)
    assert err.offset == 0


def test_aedat4_file_read_as_others():
    sample = REAL / "sample.aedat4"
    if not sample.is_file():
        pytest.skip(f"{sample} not present")
    for fmt, match in [("aedat2", "AER-DAT4.0"), ("aedat31", "AER-DAT4.0"), ("atis-bin", "4.0")]:
        expect_error(sample, fmt, 0, match)


# -- fuzzing -------------------------------------------------------------------

FUZZ_CASES = 300


def _valid_files() -> dict[str, bytes]:
    """One small valid file per format, built with the reference byte builders."""
    pol = aedat31_polarity
    return {
        "atis-bin": b"".join(atis_record(i, i + 1, i % 2, 100 * i) for i in range(6))
        + atis_record(0, 240, 0, 0)
        + atis_record(3, 3, 1, 5),
        "prophesee-dat": dat_bytes(DAT_LINES, [(10 * i, dat_word(i, i, i % 2)) for i in range(6)]),
        "aedat2": aedat2_bytes([(aedat2_address(i, i, i % 2), 7 * i) for i in range(6)]),
        "aedat31": AEDAT31_HEADER
        + aedat31_packet(1, 0, [(pol(i, i, 1), i) for i in range(4)])
        + aedat31_packet(2, 0, [(1, 1)] * 2, event_size=12)
        + aedat31_packet(1, 1, [(pol(2, 3, 0), 9)], capacity=3),
    }


def _fuzz_bytes(rng: np.random.Generator, valid: bytes, header: bytes) -> bytes:
    kind = rng.integers(0, 3)
    if kind == 0:  # random bytes
        return rng.integers(0, 256, rng.integers(0, 200), dtype=np.uint8).tobytes()
    if kind == 1:  # a valid header, then random bytes
        return header + rng.integers(0, 256, rng.integers(0, 200), dtype=np.uint8).tobytes()
    # a valid file, mutated, half of the time also cut short
    cut = rng.integers(0, len(valid) + 1) if rng.random() < 0.5 else len(valid)
    data = bytearray(valid[:cut])
    for _ in range(rng.integers(0, 6)):
        if data:
            data[rng.integers(0, len(data))] = rng.integers(0, 256)
    return bytes(data)


HEADERS = {
    "atis-bin": b"",
    "prophesee-dat": dat_bytes(DAT_LINES, []),
    "aedat2": aedat2_bytes([]),
    "aedat31": AEDAT31_HEADER,
}


@pytest.mark.parametrize("fmt", sorted(HEADERS))
def test_fuzz_only_event_format_errors(fmt, tmp_path):
    rng = np.random.default_rng(1234)
    valid = _valid_files()[fmt]
    path = tmp_path / "fuzz"
    outcomes = {"ok": 0, "error": 0}
    start = time.perf_counter()
    for _ in range(FUZZ_CASES):
        path.write_bytes(_fuzz_bytes(rng, valid, HEADERS[fmt]))
        try:
            events = read_events(path, format=fmt)
            chunks = list(iter_events(path, format=fmt, chunk_events=3))
        except EventFormatError as err:
            assert err.format == fmt
            outcomes["error"] += 1
            continue
        assert events.dtype == EVENT_DTYPE
        assert not np.any(np.diff(events["t"]) < 0)
        joined = np.concatenate(chunks) if chunks else np.empty(0, EVENT_DTYPE)
        joined = joined[np.argsort(joined["t"], kind="stable")]
        np.testing.assert_array_equal(events, joined)  # one-pass read == chunked read
        outcomes["ok"] += 1
    assert outcomes["ok"] > 0 and outcomes["error"] > 0, outcomes
    assert time.perf_counter() - start < 30


def test_fuzz_aedat4(tmp_path):
    pytest.importorskip("aedat")
    sample = REAL / "sample.aedat4"
    if not sample.is_file():
        pytest.skip(f"{sample} not present")
    valid = sample.read_bytes()[:40_000]
    rng = np.random.default_rng(99)
    path = tmp_path / "fuzz.aedat4"
    errors = 0
    for _ in range(100):
        path.write_bytes(_fuzz_bytes(rng, valid, b"#!AER-DAT4.0\r\n"))
        try:
            read_events(path, format="aedat4")
        except EventFormatError as err:
            assert err.format == "aedat4"
            errors += 1
    assert errors > 0
