"""Seed corpora for the fuzz targets, generated at run time (nothing binary is committed).

Event formats: small recordings written with :func:`qifsim.events.io.write_events` (empty,
a few events, timestamps across each format's overflow points, a recording with header
size lines) and the real recordings in ``../shared/fixtures/real-events`` when present,
read in place (the AEDAT4 sample cut to its first packets, the header's data-table position
set to "none" so the cut file is valid). Exchange files: small digits-net exports (LIF
and QIF) as ``bases`` (valid files the structured mode edits) and seeds for both modes.

Runs in ``.venv`` (torch side). Usage: ``python fuzz/seeds.py TARGET CORPUS_DIR [--bases DIR]``.
"""

from __future__ import annotations

import argparse
import hashlib
import struct
import sys
import tempfile
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from targets import EVENT_TARGETS, EXCHANGE_TARGETS, TARGETS  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
REAL_EVENTS = REPO.parent / "shared" / "fixtures" / "real-events"
REAL = {
    "atis-bin": ("sample_nmnist.bin",),
    "prophesee-dat": ("sample_ncars.dat",),
    "aedat2": ("sample_aedat_header.aedat",),
    "aedat31": (),
    "aedat4": ("sample.aedat4",),
}
#: keep seeds small: libFuzzer runs slower on large inputs
MAX_SEED = 48_000
AEDAT4_PACKETS = 3


def _recordings(fmt: str) -> list[tuple[np.ndarray, dict]]:
    """``(events, write options)`` for the synthetic seeds of ``fmt``."""
    from qifsim.events import make_events

    rng = np.random.default_rng(13)
    width, height, t_step, options = {
        "atis-bin": (34, 34, 3000, {}),
        "prophesee-dat": (120, 100, 2**30, {"width": 120, "height": 100}),
        "aedat2": (128, 128, 2**27, {}),
        "aedat31": (128, 128, 2**29, {"packet_events": 5}),
        "aedat4": (320, 240, 1000, {"width": 320, "height": 240, "packet_events": 6}),
    }[fmt]
    out = [(make_events([], [], [], []), dict(options))]
    for n in (1, 3, 17):
        t = np.cumsum(rng.integers(0, t_step, n))
        events = make_events(
            rng.integers(0, width, n), rng.integers(0, height, n), t, rng.integers(0, 2, n)
        )
        out.append((events, dict(options)))
    if fmt == "prophesee-dat":  # no size lines: only the polarity is checked
        out.append((out[-1][0], {}))
    return out


def _aedat4_prefix(data: bytes, packets: int) -> bytes:
    """The first ``packets`` packets of an AEDAT4 file, with the IOHeader's data-table position
    set to -1 (none), so the cut file is valid."""
    (length,) = struct.unpack_from("<I", data, 14)
    header = bytearray(data[18 : 18 + length])
    root = struct.unpack_from("<I", header, 0)[0]
    vtable = root - struct.unpack_from("<i", header, root)[0]
    field = struct.unpack_from("<H", header, vtable + 6)[0]  # field 1: file_data_position
    if field:
        struct.pack_into("<q", header, root + field, -1)
    at = 18 + length
    for _ in range(packets):
        at += 8 + struct.unpack_from("<I", data, at + 4)[0]
    return data[:18] + bytes(header) + data[18 + length : at]


def event_seeds(fmt: str) -> list[bytes]:
    """Seed files of an event format (bytes)."""
    from qifsim.events.io import write_events

    seeds = []
    with tempfile.TemporaryDirectory() as tmp:
        for i, (events, options) in enumerate(_recordings(fmt)):
            path = Path(tmp) / f"s{i}"
            write_events(path, events, fmt, **options)
            seeds.append(path.read_bytes())
    for name in REAL[fmt]:
        path = REAL_EVENTS / name
        if path.is_file():
            data = path.read_bytes()
            seeds.append(_aedat4_prefix(data, AEDAT4_PACKETS) if fmt == "aedat4" else data)
    return [s[:MAX_SEED] if fmt != "aedat4" else s for s in seeds]


def exchange_bases(directory: Path) -> list[Path]:
    """Valid exchange files of small digits-net models (LIF and QIF), written to ``directory``."""
    import torch

    from qifsim.export import export_lava
    from qifsim.models import build_model

    directory.mkdir(parents=True, exist_ok=True)
    paths = []
    for i, neuron in enumerate(("lif", "qif")):
        torch.manual_seed(i)
        model = build_model("digits-net", neuron, num_classes=3, channels=(2, 2), hidden=4)
        model.eval()
        path = directory / f"base-{neuron}.h5"
        export_lava(model, path, time_steps=4)
        paths.append(path)
    return paths


def exchange_seeds(bases: list[Path]) -> list[bytes]:
    """Raw-mode seeds (``b"\\0" + file``) and structured-mode seeds (``b"\\1"``, base index,
    a few edit bytes) for the exchange targets."""
    rng = np.random.default_rng(7)
    seeds = [b"\0" + p.read_bytes() for p in bases]
    for i in range(len(bases)):
        for _ in range(3):
            seeds.append(b"\1" + bytes([i]) + rng.integers(0, 256, 24, dtype=np.uint8).tobytes())
    return seeds


def write_seeds(target: str, corpus: Path, bases_dir: Path | None = None) -> int:
    """Write ``target``'s seeds into ``corpus`` (files named by content hash); return the count.

    Exchange targets also write their base files into ``bases_dir`` (required for them).
    """
    corpus.mkdir(parents=True, exist_ok=True)
    if target in EXCHANGE_TARGETS:
        if bases_dir is None:
            raise ValueError(f"{target}: pass bases_dir for the base exchange files")
        seeds = exchange_seeds(exchange_bases(bases_dir))
    elif target == "sniff":
        seeds = [
            bytes([k]) + seed
            for k, fmt in enumerate(f for f in EVENT_TARGETS if f != "sniff")
            for seed in event_seeds(fmt)
        ]  # the first byte picks the file's extension (SUFFIXES): content decides
    else:
        seeds = event_seeds(target)
    for seed in seeds:
        (corpus / hashlib.sha1(seed).hexdigest()).write_bytes(seed)
    return len(seeds)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("target", choices=TARGETS)
    parser.add_argument("corpus", type=Path)
    parser.add_argument("--bases", type=Path, default=None, help="exchange targets: base files")
    args = parser.parse_args(argv)
    n = write_seeds(args.target, args.corpus, args.bases)
    print(f"{args.target}: {n} seeds in {args.corpus}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
