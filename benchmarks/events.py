"""Benchmark: event framing and decoding throughput against tonic; the HDF5 frame cache.

In one run, on the same data:

(a) framing: random events (x, y uniform on 128x128, p in {0, 1}, sorted
    timestamps, 1 event per 1.5 us on average) of each size (default 1M and
    10M) into ``T = 10`` frames ``[T, 2, 128, 128]``, split by count and by
    time, with

      qifsim          ``qifsim.events.to_frames`` (whatever it is today)
      qifsim_1thread  the same with numba limited to one thread (per-core figure)
      tonic           ``tonic.transforms.ToFrame(n_event_bins=T / n_time_bins=T)``
      numpy           a plain numpy ``bincount`` of ``frame * 2 * H * W + ...``

(b) decoding: files written by qifsim's writers (default 5M events) read by
    qifsim's ``read_events`` and by tonic's readers: ``.bin`` (ATIS, N-MNIST)
    with ``tonic.io.read_mnist_file``; AEDAT 2.0 (DVS128) with
    ``tonic.io.read_dvs_128`` (in tonic 1.7 that function fails on unpacking
    the header parser's three values; then its parts run instead: tonic's
    ``read_aedat_header_from_file`` and ``get_aer_events_from_file`` plus the
    same address arithmetic as ``read_dvs_128``), and AEDAT 3.1 (polarity
    packets) with ``get_aer_events_from_file`` (information only, no target).

(c) frame cache: a synthetic CIFAR10-DVS root in a temporary folder (the
    catalogue's layout ``<class>/cifar10_<class>_<i>.aedat``, AEDAT 2.0;
    default 10 classes x 20 recordings of 50k random events on 128x128) is
    read as ``qifsim.events.datasets.CIFAR10DVS(root, "train", strict=False)``
    (default ``train_ratio`` 0.9: 180 samples) with the catalogue's paper
    preprocessing (``n_frames=10``, ``split_by="count"``, bilinear
    ``resize=(48, 48)``) and, for information, without a resize (128x128,
    cached as uint16 counts). One epoch is every sample once in a shuffled
    order (a new order each epoch, the same for every implementation), in one
    process with ``torch.set_num_threads(1)`` as in a DataLoader worker:

      frame_again  no cache: read + decode + frame (+ resize) every sample
      cache        ``cache=<dir>``: the HDF5 cache, uncompressed (the default)
      cache_gzip   the same with ``cache_options={"compression": "gzip"}``

    Each cache is built once first (its build time, the time to open the
    finished file again and its size are reported), so every timed epoch is
    a second (or later) epoch. Every implementation's frames are checked
    equal to framing again. Raw files and cache files are read from the page
    cache.

Files are read from the page cache (each reader reads each file several
times). After untimed warm-up (numba compiles), the timed repeats run
round-robin over the implementations. Reported: median and min wall time,
throughput in M events/s (from the median) and ratios to tonic. Whether
each implementation's frames equal qifsim's is recorded (tonic's time
binning drops events at the end of the recording, a convention difference).

Targets (reported, met or not): framing >= 20x tonic and >= 200 M events/s
on one core; decoding >= 3x tonic; an epoch from the (uncompressed) cache
>= 5x faster than framing again, in the paper setup (48x48). Results go to
``benchmarks/results/events.json`` (atomically). tonic (GPL) is only
imported here, as a comparator; without it its rows are skipped.

Run from the repository root: ``python benchmarks/events.py [--quick]``.
"""

from __future__ import annotations

import argparse
import itertools
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

_HERE = Path(__file__).resolve().parent
if str(_HERE) not in sys.path:
    sys.path.insert(0, str(_HERE))

import _common  # noqa: E402

from qifsim.events import EVENT_DTYPE, to_frames  # noqa: E402
from qifsim.events.io import read_events, write_events  # noqa: E402

DEFAULT_OUT = _HERE / "results" / "events.json"
SENSOR = (128, 128, 2)
N_FRAMES = 10
SPLITS = ("count", "time")
TARGETS = {
    "framing_over_tonic": 20.0,  # qifsim throughput / tonic throughput, at least
    "framing_meps_per_core": 200.0,  # M events/s with one numba thread, at least
    "decoding_over_tonic": 3.0,  # qifsim throughput / tonic throughput, at least
    "cache_over_frame_again": 5.0,  # epoch framing again / epoch from the cache, at least
}
QUICK = {
    "sizes": [20_000],
    "decode_events": 20_000,
    "repeats": 1,
    "warmup": 1,
    "cache_per_class": 2,
    "cache_events": 2_000,
    "cache_epochs": 1,
}
FULL = {
    "sizes": [1_000_000, 10_000_000],
    "decode_events": 5_000_000,
    "repeats": 3,
    "warmup": 1,
    "cache_per_class": 20,
    "cache_events": 50_000,
    "cache_epochs": 5,
}


def target_min(value: float | None, limit: float) -> dict[str, Any]:
    """``{"value", "target", "op": ">=", "met"}``; ``met`` is None when not measured."""
    return {
        "value": value,
        "target": limit,
        "op": ">=",
        "met": None if value is None else bool(value >= limit),
    }


def random_events(n: int, seed: int) -> np.ndarray:
    """``n`` sorted random events on the 128x128 sensor (about 1 event per 1.5 us)."""
    rng = np.random.default_rng(seed)
    events = np.empty(n, dtype=EVENT_DTYPE)
    events["x"] = rng.integers(0, SENSOR[0], n)
    events["y"] = rng.integers(0, SENSOR[1], n)
    events["t"] = np.cumsum(rng.integers(0, 4, n))
    events["p"] = rng.integers(0, 2, n)
    return events


def numpy_frames(events: np.ndarray, split_by: str) -> np.ndarray:
    """Plain numpy framing with ``bincount`` (FORMATS.md conventions)."""
    n = events.shape[0]
    width, height, _ = SENSOR
    if split_by == "count":
        per = n // N_FRAMES
        frame = np.minimum(np.arange(n) // per, N_FRAMES - 1) if per else np.full(n, N_FRAMES - 1)
    else:
        t = events["t"]
        t0, t1 = int(t[0]), int(t[-1])
        frame = (t - t0) * N_FRAMES // (t1 - t0 + 1)
    flat = ((frame * 2 + events["p"]) * height + events["y"]) * width + events["x"]
    counts = np.bincount(flat, minlength=N_FRAMES * 2 * height * width)
    return counts.astype(np.float32).reshape(N_FRAMES, 2, height, width)


def _tonic_to_frame(split_by: str) -> Callable[[np.ndarray], np.ndarray] | None:
    try:
        from tonic.transforms import ToFrame
    except Exception:  # noqa: BLE001 - tonic missing or broken: skip its rows
        return None
    key = "n_event_bins" if split_by == "count" else "n_time_bins"
    return ToFrame(sensor_size=SENSOR, **{key: N_FRAMES})


def _one_thread(fn: Callable[[], Any]) -> Callable[[], Any]:
    import numba

    def run():
        before = numba.get_num_threads()
        numba.set_num_threads(1)
        try:
            return fn()
        finally:
            numba.set_num_threads(before)

    return run


def _timed(fn: Callable[[], Any], sink: dict[str, Any], name: str) -> Callable[[], dict]:
    def case() -> dict[str, float]:
        clock = _common.PhaseClock()
        sink[name] = fn()
        clock.lap("run")
        return clock.done()

    return case


def _summarize(timings: dict[str, dict], n: int) -> dict[str, dict[str, Any]]:
    out = {}
    for name, measured in timings.items():
        total = measured["timings_ms"].get("total", {})
        median = total.get("median")
        out[name] = {
            **measured,
            "median_ms": median,
            "min_ms": total.get("min"),
            "meps": None if not median else n / (median / 1e3) / 1e6,
        }
    return out


def framing_functions(events: np.ndarray, split_by: str) -> dict[str, Callable[[], Any]]:
    """The framing implementations, each a call on ``events`` (tonic only when importable)."""
    fns: dict[str, Callable[[], Any]] = {
        "qifsim": lambda: to_frames(events, SENSOR, N_FRAMES, split_by=split_by),
        "numpy": lambda: numpy_frames(events, split_by),
    }
    fns["qifsim_1thread"] = _one_thread(fns["qifsim"])
    tonic = _tonic_to_frame(split_by)
    if tonic is not None:
        fns["tonic"] = lambda: tonic(events)
    return fns


def bench_framing(sizes: list[int], seed: int, warmup: int, repeats: int, progress: bool):
    results: dict[str, Any] = {}
    for n in sizes:
        events = random_events(n, seed)
        for split_by in SPLITS:
            outputs: dict[str, Any] = {}
            fns = framing_functions(events, split_by)
            cases = {name: _timed(fn, outputs, name) for name, fn in fns.items()}
            timings = _common.run_interleaved(
                cases, warmup, repeats, progress=progress, desc=f"frames {split_by} {n}"
            )
            impls = _summarize(timings, n)
            ref = outputs["qifsim"]
            for name, frames in outputs.items():
                impls[name]["equal_to_qifsim"] = bool(np.array_equal(np.asarray(frames), ref))
                impls[name]["events_counted"] = int(np.asarray(frames).sum())
            results[f"{split_by}_{n}"] = {
                "events": n,
                "split_by": split_by,
                "implementations": impls,
                "qifsim_over_tonic": _ratio_meps(impls, "qifsim", "tonic"),
                "qifsim_over_numpy": _ratio_meps(impls, "qifsim", "numpy"),
            }
    return results


def _ratio_meps(impls: dict[str, dict], a: str, b: str) -> float | None:
    if a not in impls or b not in impls:
        return None
    return _common.ratio(impls[a]["meps"], impls[b]["meps"])


# -- decoding --------------------------------------------------------------------


def _tonic_readers() -> dict[str, Callable[[Path], np.ndarray]] | None:
    try:
        import tonic.io as tio
    except Exception:  # noqa: BLE001
        return None

    def records(path: Path) -> np.ndarray:
        header = tio.read_aedat_header_from_file(str(path))
        return tio.get_aer_events_from_file(str(path), header[0], header[1])

    def dvs128(path: Path) -> np.ndarray:
        try:
            return tio.read_dvs_128(str(path))[1]
        except ValueError:  # tonic 1.7: unpacks 2 of the header parser's 3 values
            pass
        raw = records(path)
        address, t = raw["address"], raw["timeStamp"]
        x, y, p = (address >> 8) & 0x7F, (address >> 1) & 0x7F, address & 1
        return tio.make_structured_array(x, y, t, p)

    def ibm(path: Path) -> np.ndarray:
        raw = records(path)
        address, t = raw["address"], raw["timeStamp"]
        x, y, p = (address >> 17) & 0x1FFF, (address >> 2) & 0x1FFF, (address >> 1) & 1
        return tio.make_structured_array(x, y, t, p)

    return {
        "atis-bin": lambda p: tio.read_mnist_file(str(p), dtype=tio.events_struct),
        "aedat2": dvs128,
        "aedat31": ibm,
    }


def bench_decoding(n: int, seed: int, warmup: int, repeats: int, progress: bool):
    rng = np.random.default_rng(seed + 1)
    events = random_events(n, seed + 1)
    atis = events.copy()
    atis["x"] = rng.integers(0, 34, n)  # N-MNIST sensor
    atis["y"] = rng.integers(0, 34, n)
    data = {"atis-bin": atis, "aedat2": events, "aedat31": events}
    tonic = _tonic_readers()
    results: dict[str, Any] = {}
    with tempfile.TemporaryDirectory(prefix="qifsim-bench-events-") as tmp:
        for fmt, ev in data.items():
            path = Path(tmp) / f"events.{fmt}"
            write_events(path, ev, fmt)
            outputs: dict[str, Any] = {}
            fns = {"qifsim": lambda p=path, f=fmt: read_events(p, format=f)}
            if tonic is not None:
                fns["tonic"] = lambda p=path, f=fmt: tonic[f](p)
            cases = {name: _timed(fn, outputs, name) for name, fn in fns.items()}
            timings = _common.run_interleaved(
                cases, warmup, repeats, progress=progress, desc=f"decode {fmt}"
            )
            impls = _summarize(timings, n)
            impls["qifsim"]["equal_to_written"] = bool(np.array_equal(outputs["qifsim"], ev))
            if "tonic" in outputs:
                impls["tonic"]["events_decoded"] = int(len(outputs["tonic"]))
                impls["tonic"]["t_equal"] = bool(
                    np.array_equal(outputs["tonic"]["t"].astype(np.int64), ev["t"])
                )
            results[fmt] = {
                "events": n,
                "file_bytes": path.stat().st_size,
                "implementations": impls,
                "qifsim_over_tonic": _ratio_meps(impls, "qifsim", "tonic"),
            }
    return results


# -- frame cache -------------------------------------------------------------------

CACHE_DATASET = "cifar10-dvs"


def write_cifar10dvs_root(root: Path, per_class: int, n_events: int, seed: int) -> dict[str, Any]:
    """A synthetic CIFAR10-DVS root: ``<class>/cifar10_<class>_<i>.aedat`` (AEDAT 2.0).

    The catalogue's layout (``datasets/cifar10-dvs.json``), ``per_class``
    recordings of ``n_events`` random events on the 128x128 sensor per class.
    """
    from qifsim.events.catalogue import dataset_info

    n_bytes = 0
    for ci, name in enumerate(dataset_info(CACHE_DATASET).classes):
        (root / name).mkdir(parents=True, exist_ok=True)
        for i in range(per_class):
            path = root / name / f"cifar10_{name}_{i}.aedat"
            write_events(path, random_events(n_events, seed + 1000 * ci + i), "aedat2")
            n_bytes += path.stat().st_size
    return {"files": per_class * len(dataset_info(CACHE_DATASET).classes), "bytes": n_bytes}


def cache_setups() -> dict[str, dict[str, Any]]:
    """Dataset arguments of each setup, from the catalogue's paper preprocessing."""
    from qifsim.events.catalogue import dataset_info

    paper = dataset_info(CACHE_DATASET).paper
    base = {"n_frames": int(paper["n_frames"]), "split_by": paper["split_by"]}
    setups: dict[str, dict[str, Any]] = {}
    if paper.get("resize"):
        resize = tuple(int(v) for v in paper["resize"])
        setups["x".join(map(str, resize))] = {
            **base,
            "resize": resize,
            "resize_mode": paper["resize_mode"],
            "target": True,
        }
    width, height, _ = dataset_info(CACHE_DATASET).sensor_size
    setups[f"{height}x{width}"] = {**base, "resize": None, "target": False}
    return setups


def _epoch(dataset, n: int, seed: int) -> Callable[[], dict[str, float]]:
    """One timed pass over ``dataset`` per call, each in a new shuffled order.

    Every implementation gets the same sequence of orders (a counter seeds them).
    """
    calls = itertools.count()

    def case() -> dict[str, float]:
        order = np.random.default_rng((seed, next(calls))).permutation(n).tolist()
        clock = _common.PhaseClock()
        for i in order:
            dataset[i]
        clock.lap("epoch")
        return clock.done()

    return case


def bench_cache(
    per_class: int, n_events: int, seed: int, warmup: int, epochs: int, progress: bool
) -> dict[str, Any]:
    """Epoch time framing again vs reading the HDF5 frame cache (see the module docstring)."""
    import torch

    from qifsim.events.datasets import CIFAR10DVS

    results: dict[str, Any] = {}
    with tempfile.TemporaryDirectory(prefix="qifsim-bench-cache-") as tmp:
        root = Path(tmp) / "root"
        raw = write_cifar10dvs_root(root, per_class, n_events, seed + 2)
        for setup, spec in cache_setups().items():
            kwargs = {k: v for k, v in spec.items() if k != "target"}

            def make(cache=None, compression=None, kwargs=kwargs):
                options = {"progress": False, "compression": compression}
                return CIFAR10DVS(
                    root, "train", strict=False, cache=cache, cache_options=options, **kwargs
                )

            plain = make()
            datasets = {"frame_again": plain}
            built: dict[str, dict[str, Any]] = {}
            for name, compression in (("cache", None), ("cache_gzip", "gzip")):
                directory = Path(tmp) / f"cache-{setup}-{name}"
                start = time.perf_counter()
                datasets[name] = make(directory, compression)  # builds the file
                build_s = time.perf_counter() - start
                start = time.perf_counter()
                make(directory, compression)  # opens and verifies the existing file
                open_s = time.perf_counter() - start
                cache = datasets[name].cache
                built[name] = {
                    "compression": compression,
                    "dtype": cache.dtype,
                    "build_ms": build_s * 1e3,
                    "open_ms": open_s * 1e3,
                    "file_bytes": cache.path.stat().st_size,
                }
            n = len(plain)
            reference = [plain[i][0] for i in range(n)]
            threads = torch.get_num_threads()
            torch.set_num_threads(1)  # as in a DataLoader worker
            try:
                cases = {name: _epoch(ds, n, seed) for name, ds in datasets.items()}
                timings = _common.run_interleaved(
                    cases, warmup, epochs, progress=progress, desc=f"cache {setup}"
                )
            finally:
                torch.set_num_threads(threads)
            impls = _summarize(timings, n * n_events)
            base = impls["frame_again"]["median_ms"]
            for name, impl in impls.items():
                impl.update(built.get(name, {}))
                impl["ms_per_sample"] = _common.ratio(impl["median_ms"], n)
                impl["over_frame_again"] = _common.ratio(base, impl["median_ms"])
                impl["equal_to_frame_again"] = all(
                    torch.equal(datasets[name][i][0], reference[i]) for i in range(n)
                )
            results[setup] = {
                "samples": n,
                "events_per_sample": n_events,
                "dataset_args": {
                    k: list(v) if isinstance(v, tuple) else v for k, v in kwargs.items()
                },
                "has_target": spec["target"],
                "raw_files": raw,
                "torch_threads": 1,
                "implementations": impls,
                "cache_over_frame_again": impls["cache"]["over_frame_again"],
                "cache_gzip_over_frame_again": impls["cache_gzip"]["over_frame_again"],
            }
    return results


# -- report ----------------------------------------------------------------------


def collect_targets(framing: dict, decoding: dict, cache: dict) -> dict[str, Any]:
    targets: dict[str, Any] = {}
    for key, entry in framing.items():
        targets[f"framing_over_tonic[{key}]"] = target_min(
            entry["qifsim_over_tonic"], TARGETS["framing_over_tonic"]
        )
        one = entry["implementations"].get("qifsim_1thread", {}).get("meps")
        targets[f"framing_meps_per_core[{key}]"] = target_min(one, TARGETS["framing_meps_per_core"])
    for fmt in ("atis-bin", "aedat2"):
        if fmt in decoding:
            targets[f"decoding_over_tonic[{fmt}]"] = target_min(
                decoding[fmt]["qifsim_over_tonic"], TARGETS["decoding_over_tonic"]
            )
    for setup, entry in cache.items():
        if entry["has_target"]:
            targets[f"cache_over_frame_again[{setup}]"] = target_min(
                entry["cache_over_frame_again"], TARGETS["cache_over_frame_again"]
            )
    return targets


def print_report(framing: dict, decoding: dict, cache: dict, targets: dict) -> None:
    rows = []
    for section, entries in (("frames", framing), ("decode", decoding)):
        for key, entry in entries.items():
            tonic = entry["implementations"].get("tonic", {}).get("meps")
            for name, impl in entry["implementations"].items():
                rows.append(
                    [
                        f"{section} {key}",
                        name,
                        _common.fmt(impl["median_ms"], ".1f"),
                        _common.fmt(impl["min_ms"], ".1f"),
                        _common.fmt(impl["meps"], ".1f"),
                        _common.fmt(_common.ratio(impl["meps"], tonic), ".1f"),
                        _common.fmt(impl["others_cpu_share"]["overall"], ".0%"),
                    ]
                )
    headers = ["case", "implementation", "median ms", "min ms", "M ev/s", "x tonic", "others"]
    print(_common.format_table(headers, rows))
    if cache:
        print()
        print_cache_table(cache)
    print("\ntargets")
    for key, target in targets.items():
        met = {True: "met", False: "NOT met", None: "not measured"}[target["met"]]
        value = _common.fmt(target["value"], ".1f") or "n/a"
        print(f"  {key:<44} {value:>8} {target['op']} {target['target']:<6g} {met}")


def print_cache_table(cache: dict) -> None:
    """Epoch times per implementation (median/min over the timed epochs) and cache facts."""
    rows = []
    for setup, entry in cache.items():
        for name, impl in entry["implementations"].items():
            size = impl.get("file_bytes")
            rows.append(
                [
                    f"cache {setup}",
                    name,
                    _common.fmt(impl["median_ms"], ".1f"),
                    _common.fmt(impl["min_ms"], ".1f"),
                    _common.fmt(impl["ms_per_sample"], ".3f"),
                    _common.fmt(impl["over_frame_again"], ".1f"),
                    _common.fmt(impl.get("build_ms"), ".0f"),
                    _common.fmt(impl.get("open_ms"), ".1f"),
                    _common.fmt(None if size is None else size / 2**20, ".1f"),
                    _common.fmt(impl["others_cpu_share"]["overall"], ".0%"),
                ]
            )
    headers = [
        "case",
        "implementation",
        "epoch ms",
        "min ms",
        "ms/sample",
        "x again",
        "build ms",
        "open ms",
        "file MiB",
        "others",
    ]
    print(_common.format_table(headers, rows))


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python benchmarks/events.py",
        description=(
            "Event framing (qifsim to_frames vs tonic ToFrame vs numpy bincount) and "
            "event-file decoding (qifsim read_events vs tonic readers) throughput, in one "
            "run on the same data, and the epoch time of a synthetic CIFAR10-DVS dataset "
            "framed again vs read from the HDF5 frame cache. Prints tables with ratios "
            "to tonic and to framing again and writes JSON (atomically)."
        ),
    )
    parser.add_argument(
        "--sizes",
        type=int,
        nargs="+",
        default=None,
        help=f"event counts for framing (default {FULL['sizes']}; --quick {QUICK['sizes']})",
    )
    parser.add_argument(
        "--decode-events",
        type=int,
        default=None,
        help=f"events per decoded file (default {FULL['decode_events']}; "
        f"--quick {QUICK['decode_events']})",
    )
    parser.add_argument(
        "--cache-per-class",
        type=int,
        default=None,
        help=f"recordings per class of the synthetic CIFAR10-DVS root, at least 2 "
        f"(default {FULL['cache_per_class']}; --quick {QUICK['cache_per_class']})",
    )
    parser.add_argument(
        "--cache-events",
        type=int,
        default=None,
        help=f"events per recording (default {FULL['cache_events']}; "
        f"--quick {QUICK['cache_events']})",
    )
    parser.add_argument(
        "--cache-epochs",
        type=int,
        default=None,
        help=f"timed epochs per cache implementation (default {FULL['cache_epochs']}; "
        f"--quick {QUICK['cache_epochs']})",
    )
    _common.add_timing_args(parser, QUICK, FULL)
    _common.add_run_args(parser, DEFAULT_OUT)
    args = parser.parse_args(argv)
    _common.fill_preset(args, QUICK, FULL)
    if min(args.sizes) < N_FRAMES or args.decode_events < 1:
        parser.error(f"--sizes must be >= {N_FRAMES} and --decode-events >= 1")
    if args.repeats < 1 or args.warmup < 1 or args.cache_epochs < 1:
        parser.error("--repeats, --warmup and --cache-epochs must be >= 1")
    if args.cache_per_class < 2 or args.cache_events < N_FRAMES:
        parser.error(f"--cache-per-class must be >= 2 and --cache-events >= {N_FRAMES}")
    return args


def main(argv=None) -> int:
    args = parse_args(argv)
    progress = not args.no_progress
    load_before = _common.load_average()
    framing = bench_framing(args.sizes, args.seed, args.warmup, args.repeats, progress)
    decoding = bench_decoding(args.decode_events, args.seed, args.warmup, args.repeats, progress)
    cache = bench_cache(
        args.cache_per_class, args.cache_events, args.seed, args.warmup, args.cache_epochs, progress
    )
    targets = collect_targets(framing, decoding, cache)
    env = _common.environment(["tonic", "aedat", "h5py"])
    env["load_average_at_start"] = load_before
    env["load_average_after_timing"] = _common.load_average()
    result = {
        "benchmark": "events",
        "config": {
            "quick": args.quick,
            "sizes": args.sizes,
            "decode_events": args.decode_events,
            "n_frames": N_FRAMES,
            "sensor_size": list(SENSOR),
            "repeats": args.repeats,
            "warmup": args.warmup,
            "cache_dataset": CACHE_DATASET,
            "cache_per_class": args.cache_per_class,
            "cache_events": args.cache_events,
            "cache_epochs": args.cache_epochs,
            "seed": args.seed,
            "git": _common.git_state(_HERE.parent),
            **env,
        },
        "framing": framing,
        "decoding": decoding,
        "cache": cache,
        "targets": targets,
    }
    print(
        f"events: framing T={N_FRAMES} sensor {SENSOR}, sizes {args.sizes}; decoding "
        f"{args.decode_events} events; repeats={args.repeats}; cpus {env['cpu_count']}; "
        f"numba threads {env['numba_threads']}"
    )
    first = next(iter(cache.values()))
    print(
        f"cache: synthetic {CACHE_DATASET} root, {args.cache_per_class} recordings/class of "
        f"{args.cache_events} events, train split {first['samples']} samples; epochs in a "
        f"shuffled order, torch threads 1; median of {args.cache_epochs} epochs"
    )
    print_report(framing, decoding, cache, targets)
    path = _common.write_json_atomic(args.out, result)
    print(f"\nwrote {path}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
