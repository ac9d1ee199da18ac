"""Event readers on the real recordings in ../shared/fixtures/real-events, and against tonic.

The fixtures are not part of the repository (tonic's test data, GPL-3.0):
these tests skip when they are absent. tonic (GPL) is imported lazily, only
here, for cross-checks.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from conftest import REAL_EVENTS
from events_io_reference import as_tuples, random_events, ref_atis, ref_dat

from qifsim.events import EVENT_DTYPE
from qifsim.events.io import iter_events, read_events, read_header, sniff_format, write_events

REAL = REAL_EVENTS


def fixture(name: str) -> Path:
    path = REAL / name
    if not path.is_file():
        pytest.skip(f"real fixture {path} not present")
    return path


# -- real recordings -----------------------------------------------------------


def test_nmnist_sample():
    path = fixture("sample_nmnist.bin")
    assert sniff_format(path) == "atis-bin"
    events = read_events(path)
    assert events.dtype == EVENT_DTYPE and len(events) == 4325
    assert (int(events["t"].min()), int(events["t"].max())) == (654, 311_175)
    assert events["x"].min() >= 0 and events["y"].min() >= 0
    assert events["x"].max() <= 33 and events["y"].max() <= 33
    assert (int((events["p"] == 1).sum()), int((events["p"] == 0).sum())) == (2145, 2180)
    assert as_tuples(events) == ref_atis(path.read_bytes())


def test_ncars_sample():
    path = fixture("sample_ncars.dat")
    assert sniff_format(path) == "prophesee-dat"
    events = read_events(path)
    assert len(events) == 2009
    assert (int(events["t"].min()), int(events["t"].max())) == (0, 99_952)
    assert events["x"].max() <= 77 and events["y"].max() <= 41
    assert set(np.unique(events["p"]).tolist()) == {0, 1}
    assert as_tuples(events) == ref_dat(path.read_bytes())
    header = read_header(path)
    assert header.fields["Version"] == "2" and header.extra["event_size"] == 8


def test_ncars_sample_rewritten_is_identical(tmp_path):
    path = fixture("sample_ncars.dat")
    header = read_header(path)
    out = tmp_path / "copy.dat"
    write_events(out, read_events(path), "prophesee-dat", header_lines=header.lines)
    assert out.read_bytes() == path.read_bytes()


def test_nmnist_sample_rewritten_is_identical(tmp_path):
    path = fixture("sample_nmnist.bin")
    out = tmp_path / "copy.bin"
    write_events(out, read_events(path), "atis-bin")
    assert out.read_bytes() == path.read_bytes()


def test_aedat2_header_only_sample():
    path = fixture("sample_aedat_header.aedat")
    assert sniff_format(path) == "aedat2"
    events = read_events(path)
    assert events.dtype == EVENT_DTYPE and events.shape == (0,)
    assert list(iter_events(path)) == []
    header = read_header(path)
    assert header.data_offset == path.stat().st_size
    assert header.fields["AEChip"] == "eu.seebetter.ini.chips.davis.Davis346red"


def test_aedat4_sample():
    pytest.importorskip("aedat")
    path = fixture("sample.aedat4")
    assert sniff_format(path) == "aedat4"
    events = read_events(path)
    header = read_header(path)
    width, height = int(header.fields["width"]), int(header.fields["height"])
    assert (width, height) == (320, 240)
    assert 10_000 < len(events) < 10_000_000
    assert events["x"].min() >= 0 and events["x"].max() < width
    assert events["y"].min() >= 0 and events["y"].max() < height
    assert not np.any(np.diff(events["t"]) < 0)
    duration = int(events["t"][-1] - events["t"][0])
    assert 0 < duration < 3_600_000_000  # under an hour, in us
    assert set(np.unique(events["p"]).tolist()) == {0, 1}
    chunks = list(iter_events(path, chunk_events=10_000))
    assert all(len(c) == 10_000 for c in chunks[:-1])
    np.testing.assert_array_equal(np.concatenate(chunks), events)


def test_aedat4_missing_package_message(monkeypatch):
    import builtins

    path = fixture("sample.aedat4")
    real_import = builtins.__import__

    def no_aedat(name, *args, **kwargs):
        if name == "aedat":
            raise ImportError("No module named 'aedat'")
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", no_aedat)
    with pytest.raises(ImportError, match="pip install aedat"):
        read_events(path)


# -- tonic cross-checks ----------------------------------------------------------


def tonic_io():
    return pytest.importorskip("tonic.io")


def tonic_aer_records(path: Path, tio) -> np.ndarray:
    """tonic's AEDAT header parser and record reader (``read_dvs_128``/``read_dvs_ibm``
    in tonic 1.7 fail: they unpack two of the three values the header parser returns)."""
    header = tio.read_aedat_header_from_file(str(path))
    return tio.get_aer_events_from_file(str(path), header[0], header[1])


def test_tonic_nmnist_sample():
    tio = tonic_io()
    path = fixture("sample_nmnist.bin")
    theirs = tio.read_mnist_file(str(path), dtype=tio.events_struct)
    ours = read_events(path)
    for name in ("x", "y", "t"):
        np.testing.assert_array_equal(ours[name], theirs[name])
    np.testing.assert_array_equal(ours["p"], theirs["p"].astype(np.int8))


def test_tonic_reads_our_atis_files_with_overflow(tmp_path):
    tio = tonic_io()
    events = random_events("atis-bin", np.random.default_rng(4), 3000, start_index=2)
    assert events["t"].max() >= 2**23  # the file holds overflow markers
    path = tmp_path / "e.bin"
    write_events(path, events, "atis-bin")
    theirs = tio.read_mnist_file(str(path), dtype=tio.events_struct)
    for name in ("x", "y", "t"):
        np.testing.assert_array_equal(theirs[name], events[name])
    np.testing.assert_array_equal(theirs["p"].astype(np.int8), events["p"])


@pytest.mark.parametrize("orientation", ["jaer", "transposed"])
def test_tonic_reads_our_aedat2_files(orientation, tmp_path):
    """tonic's DVS128 layout is x = y_raw, y = x_raw, p = bit 0; ours is documented."""
    tio = tonic_io()
    events = random_events("aedat2", np.random.default_rng(6), 2000, start_index=1)
    path = tmp_path / "e.aedat"
    write_events(path, events, "aedat2", orientation=orientation)
    records = tonic_aer_records(path, tio)
    np.testing.assert_array_equal(records["timeStamp"].astype(np.int64), events["t"])
    address = records["address"].astype(np.int64)
    x_raw, y_raw, bit0 = (address >> 1) & 0x7F, (address >> 8) & 0x7F, address & 1
    np.testing.assert_array_equal(1 - bit0, events["p"])
    if orientation == "jaer":
        np.testing.assert_array_equal(127 - x_raw, events["x"])
        np.testing.assert_array_equal(y_raw, events["y"])
    else:
        np.testing.assert_array_equal(127 - y_raw, events["x"])
        np.testing.assert_array_equal(127 - x_raw, events["y"])


def test_tonic_reads_our_aedat31_files(tmp_path):
    tio = tonic_io()
    events = random_events("aedat2", np.random.default_rng(8), 2000)  # t < 2**31: no overflow
    events = events[events["t"] < 2**31]
    path = tmp_path / "g.aedat"
    write_events(path, events, "aedat31", packet_events=300)
    records = tonic_aer_records(path, tio)
    address = records["address"].astype(np.int64)
    np.testing.assert_array_equal(records["timeStamp"].astype(np.int64), events["t"])
    np.testing.assert_array_equal((address >> 17) & 0x1FFF, events["x"])  # tonic's read_dvs_ibm
    np.testing.assert_array_equal((address >> 2) & 0x1FFF, events["y"])
    np.testing.assert_array_equal((address >> 1) & 1, events["p"])


def test_tonic_aedat4_sample():
    tio = tonic_io()
    pytest.importorskip("aedat")
    path = fixture("sample.aedat4")
    theirs = tio.read_aedat4(str(path))
    ours = read_events(path)
    assert len(ours) == len(theirs)
    np.testing.assert_array_equal(ours["t"], theirs["t"].astype(np.int64))
    np.testing.assert_array_equal(ours["x"], theirs["x"])
    np.testing.assert_array_equal(ours["y"], theirs["y"])
    np.testing.assert_array_equal(ours["p"], theirs["on"].astype(np.int8))
