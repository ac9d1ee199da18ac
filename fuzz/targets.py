"""Fuzz targets: one function per reader that takes the fuzzer's bytes and fails only on a finding.

A finding is any exception other than the reader's own error type
(:class:`~qifsim.events.EventFormatError` for event files, ``ExchangeFormatError`` /
``ExchangeError`` for exchange files), an event outside the sensor the file states (or its
format allows), unsorted or negative timestamps, a one-pass read that differs from the
chunked read, or a ``on_invalid="drop"`` read that disagrees with the strict one. Hangs and
memory blow-ups are the fuzzer's to catch (``-timeout``, ``-rss_limit_mb``; see ``run.py``).

This module imports nothing heavy at import time: :func:`make_target` imports what a target
needs, so the ``lava-exchange`` target runs in ``.venv-lava`` (numpy, h5py, qifsim_lava; no
torch) and the others in ``.venv``.

Targets: ``atis-bin``, ``prophesee-dat``, ``aedat2``, ``aedat31``, ``aedat4`` (the readers
with the format given), ``sniff`` (format sniffed from content and an extension chosen by
the first byte), ``exchange`` (``qifsim.export.read_exchange``) and ``lava-exchange``
(``qifsim_lava.exchange.load_exchange``).
"""

from __future__ import annotations

import shutil
import struct
import tempfile
import warnings
from collections.abc import Callable
from pathlib import Path

EVENT_TARGETS = ("atis-bin", "prophesee-dat", "aedat2", "aedat31", "aedat4", "sniff")
EXCHANGE_TARGETS = ("exchange", "lava-exchange")
TARGETS = EVENT_TARGETS + EXCHANGE_TARGETS
#: modules never instrumented: numba compiles these from their bytecode
NOT_INSTRUMENTED = ("qifsim.events.io._kernels", "qifsim.events.kernels", "qifsim.events.frames")
#: modules whose Python code the fuzzer instruments for coverage, per target
INSTRUMENT = {
    **dict.fromkeys(EVENT_TARGETS, ("qifsim.events.io", "qifsim.events.errors")),
    "exchange": ("qifsim.export.exchange",),
    "lava-exchange": ("qifsim_lava.exchange",),
}
SUFFIXES = (".bin", ".dat", ".aedat", ".aedat4", "")
FORMAT_RANGE = 1 << 15  # int16 coordinates
#: the folder scratch files go in (``run.py`` makes one per target and removes it after)
SCRATCH_ENV = "QIFSIM_FUZZ_SCRATCH"
TESTS = Path(__file__).resolve().parents[1] / "tests"


class Finding(AssertionError):
    """The reader did something it must not (the message says what)."""


_FOLDERS: list[Path] = []


def _scratch(suffix: str = "") -> Path:
    """A file path in a fresh scratch folder of this process (see :func:`cleanup_scratch`)."""
    import os

    shm = Path("/dev/shm")  # memory-backed where available: the fuzzer writes every input
    parent = os.environ.get(SCRATCH_ENV) or (shm if shm.is_dir() else None)
    folder = Path(tempfile.mkdtemp(prefix="qifsim-fuzz-", dir=parent))
    _FOLDERS.append(folder)
    return folder / f"input{suffix}"


# -- event files ----------------------------------------------------------------------------------
def _sensor(path: Path, fmt: str) -> tuple[int, int]:
    """``(W, H)`` every event of a file must lie in: the header's size, else the format's."""
    from qifsim.events.io import aedat31, prophesee_dat, read_header

    if fmt == "atis-bin":
        return 256, 240
    if fmt == "aedat2":
        return 128, 128
    header = read_header(path, format=fmt)
    if fmt == "prophesee-dat":
        sensor = prophesee_dat.sensor_of(header, path)
    elif fmt == "aedat31":
        sensor = aedat31.sensor_of(header)
    else:
        return int(header.fields["width"]), int(header.fields["height"])
    return sensor.width or FORMAT_RANGE, sensor.height or FORMAT_RANGE


def _check_events(events, path: Path, fmt: str, what: str) -> None:
    import numpy as np

    from qifsim.events import EVENT_DTYPE

    if events.dtype != EVENT_DTYPE or events.ndim != 1:
        raise Finding(f"{what}: dtype {events.dtype}, shape {events.shape}")
    if not events.size:
        return
    width, height = _sensor(path, fmt)
    x, y, t, p = (events[k].astype(np.int64) for k in ("x", "y", "t", "p"))
    if x.min() < 0 or x.max() >= width or y.min() < 0 or y.max() >= height:
        raise Finding(
            f"{what}: event outside the {width}x{height} sensor "
            f"(x {x.min()}..{x.max()}, y {y.min()}..{y.max()})"
        )
    if not np.isin(p, (0, 1)).all():
        raise Finding(f"{what}: polarity outside {{0, 1}}: {np.unique(p)}")
    if t.min() < 0 or np.any(np.diff(t) < 0):
        raise Finding(f"{what}: timestamps negative or not sorted")


def _check_reference(events, path: Path, fmt: str) -> None:
    """An accepted file decodes exactly as the per-record reference decoder of the tests does
    (stably sorted by ``t``, as the readers return it); AEDAT4 needs the package's decoder."""
    import sys

    if fmt == "aedat4":
        return
    if str(TESTS) not in sys.path:
        sys.path.insert(0, str(TESTS))
    import events_io_reference as ref

    decode = {
        "atis-bin": ref.ref_atis,
        "prophesee-dat": ref.ref_dat,
        "aedat2": ref.ref_aedat2,
        "aedat31": ref.ref_aedat31,
    }[fmt]
    rows = sorted(decode(path.read_bytes()), key=lambda r: r[2])  # stable
    if ref.as_tuples(events) != rows:
        raise Finding(f"{fmt}: the reader and the reference decoder disagree")


def check_event_file(path: Path, fmt: str | None) -> str:
    """Read ``path`` every way the readers offer; return ``"ok"`` or ``"refused"``.

    Raises:
        Finding: see the module docstring (any other exception escapes as itself).
    """
    import numpy as np

    from qifsim.events import EventFormatError
    from qifsim.events.io import iter_events, read_events, sniff_format

    try:
        name = sniff_format(path) if fmt is None else fmt
        events = read_events(path, format=name)
    except EventFormatError as err:
        if fmt is not None and err.format != fmt:
            raise Finding(f"error names format {err.format!r}, read as {fmt!r}") from err
        strict = None
    else:
        _check_events(events, path, name, "read_events")
        chunks = list(iter_events(path, format=name, chunk_events=7))
        joined = np.concatenate(chunks) if chunks else events[:0]
        joined = joined[np.argsort(joined["t"], kind="stable")]
        if not np.array_equal(joined, events):
            raise Finding("iter_events (chunks of 7) differs from read_events")
        _check_reference(events, path, name)
        strict = events
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            dropped, report = read_events(path, format=fmt, on_invalid="drop", return_report=True)
    except EventFormatError:
        return "refused"
    _check_events(dropped, path, name, "read_events(on_invalid='drop')")
    if strict is not None and (report.dropped or not np.array_equal(dropped, strict)):
        raise Finding("on_invalid='drop' changed a file the strict read accepted")
    if strict is None and not report.dropped:
        raise Finding("strict read refused, drop read accepted without dropping anything")
    return "ok" if strict is not None else "refused"


def _event_target(fmt: str) -> Callable[[bytes], str]:
    import numba  # noqa: F401  (compile the kernels before the first timed input)

    suffix = {"atis-bin": ".bin", "prophesee-dat": ".dat", "aedat4": ".aedat4"}.get(fmt, ".aedat")
    scratch = {s: _scratch(s) for s in SUFFIXES}

    def one(data: bytes) -> str:
        if fmt == "sniff":
            path = scratch[SUFFIXES[data[0] % len(SUFFIXES)] if data else ""]
            path.write_bytes(data[1:])
            return check_event_file(path, None)
        path = scratch[suffix] if suffix in scratch else _scratch(suffix)
        path.write_bytes(data)
        return check_event_file(path, fmt)

    return one


# -- exchange files -------------------------------------------------------------------------------
class _Bytes:
    """Reads small integers from the fuzzer's bytes (zeros once they run out)."""

    def __init__(self, data: bytes) -> None:
        self.data, self.at = data, 0

    def take(self, n: int) -> bytes:
        out = self.data[self.at : self.at + n]
        self.at += n
        return out + bytes(n - len(out))

    def int(self, low: int, high: int) -> int:
        return low + int.from_bytes(self.take(2), "little") % (high - low + 1)

    def value(self):
        """A scalar or small array of a fuzzer-chosen dtype and shape."""
        import numpy as np

        kind = self.int(0, 5)
        if kind == 0:
            return np.int64(struct.unpack("<q", self.take(8))[0])
        if kind == 1:
            return np.float64(struct.unpack("<d", self.take(8))[0])  # NaN/inf included
        if kind == 2:
            return np.bytes_(self.take(self.int(0, 12)))
        if kind == 3:
            return np.array([self.take(self.int(0, 10))], dtype="S10")
        shape = tuple(self.int(0, 4) for _ in range(self.int(1, 5)))
        n = int(np.prod(shape))
        raw = np.frombuffer(self.take(8 * n), dtype="<i8" if kind == 4 else "<f8")
        return raw.reshape(shape) if kind == 4 else np.where(np.isfinite(raw), raw, 0.5)


def edit_exchange(base: Path, out: Path, data: bytes, checksum: Callable) -> None:
    """Copy ``base`` to ``out`` and apply the edits ``data`` chooses (replace, delete or retype
    datasets, change root attributes); the stored checksum is recomputed unless the first
    byte says otherwise, so the reader's checks beyond the checksum are exercised."""
    import h5py

    shutil.copyfile(base, out)
    ops = _Bytes(data)
    keep_checksum = ops.int(0, 7) == 0
    with h5py.File(out, "r+") as f:
        names: list[str] = []
        f.visititems(lambda n, o: names.append(n) if isinstance(o, h5py.Dataset) else None)
        names.sort()
        for _ in range(ops.int(1, 4)):
            op = ops.int(0, 3)
            if op == 3:
                key = ("format", "format_version", "checksum")[ops.int(0, 2)]
                f.attrs[key] = ops.value()
                continue
            if not names:
                break
            name = names[ops.int(0, len(names) - 1)]
            if name not in f:
                continue
            if op == 0:
                del f[name]
            else:
                value = ops.value()
                del f[name]
                f[name] = value
        if not keep_checksum:
            f.attrs["checksum"] = checksum(f)


def _exchange_target(side: str, bases: list[Path]) -> Callable[[bytes], str]:
    if side == "exchange":
        from qifsim.export.exchange import ExchangeFormatError as Refusal
        from qifsim.export.exchange import checksum
        from qifsim.export.exchange import read_exchange as load
    else:
        from qifsim_lava.exchange import ExchangeError as Refusal
        from qifsim_lava.exchange import file_checksum as checksum
        from qifsim_lava.exchange import load_exchange as load
    if not bases:
        raise ValueError(f"{side}: no base exchange files (seed directory empty)")
    path = _scratch(".h5")

    def one(data: bytes) -> str:
        mode = data[0] % 2 if data else 0
        if mode == 0:  # raw bytes: HDF5 structure, truncation, checksum
            path.write_bytes(data[1:])
        else:  # structured edits of a valid file
            base = bases[data[1] % len(bases)] if len(data) > 1 else bases[0]
            edit_exchange(base, path, data[2:], checksum)
        try:
            load(path)
        except Refusal:
            return "refused"
        return "ok"

    return one


def make_target(name: str, bases: list[Path] | None = None) -> Callable[[bytes], str]:
    """The one-input function of target ``name`` (imports what it needs now)."""
    if name in EVENT_TARGETS:
        return _event_target(name)
    if name in EXCHANGE_TARGETS:
        return _exchange_target(name, sorted(bases or []))
    raise ValueError(f"unknown fuzz target {name!r}; targets: {', '.join(TARGETS)}")


def cleanup_scratch() -> None:
    """Remove the scratch folders this process made."""
    while _FOLDERS:
        shutil.rmtree(_FOLDERS.pop(), ignore_errors=True)
