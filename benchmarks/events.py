"""Benchmark: event framing and event-file decoding throughput, qifsim against tonic.

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

Files are read from the page cache (each reader reads each file several
times). After untimed warm-up (numba compiles), the timed repeats run
round-robin over the implementations. Reported: median and min wall time,
throughput in M events/s (from the median) and ratios to tonic. Whether
each implementation's frames equal qifsim's is recorded (tonic's time
binning drops events at the end of the recording, a convention difference).

Targets (reported, met or not): framing >= 20x tonic and >= 200 M events/s
on one core; decoding >= 3x tonic. Results go to
``benchmarks/results/events.json`` (atomically). tonic (GPL) is only
imported here, as a comparator; without it its rows are skipped.

Run from the repository root: ``python benchmarks/events.py [--quick]``.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
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
}
QUICK = {"sizes": [20_000], "decode_events": 20_000, "repeats": 1, "warmup": 1}
FULL = {"sizes": [1_000_000, 10_000_000], "decode_events": 5_000_000, "repeats": 3, "warmup": 1}


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


# -- report ----------------------------------------------------------------------


def collect_targets(framing: dict, decoding: dict) -> dict[str, Any]:
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
    return targets


def print_report(framing: dict, decoding: dict, targets: dict) -> None:
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
    print("\ntargets")
    for key, target in targets.items():
        met = {True: "met", False: "NOT met", None: "not measured"}[target["met"]]
        value = _common.fmt(target["value"], ".1f") or "n/a"
        print(f"  {key:<44} {value:>8} {target['op']} {target['target']:<6g} {met}")


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python benchmarks/events.py",
        description=(
            "Event framing (qifsim to_frames vs tonic ToFrame vs numpy bincount) and "
            "event-file decoding (qifsim read_events vs tonic readers) throughput, in one "
            "run on the same data. Prints a table with ratios to tonic and writes JSON "
            "(atomically)."
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
        "--repeats",
        type=int,
        default=None,
        help=f"timed repeats (default {FULL['repeats']}; --quick {QUICK['repeats']})",
    )
    parser.add_argument(
        "--warmup",
        type=int,
        default=None,
        help=f"untimed warm-up rounds, at least 1 (default {FULL['warmup']})",
    )
    parser.add_argument("--quick", action="store_true", help="tiny sizes, for smoke tests")
    parser.add_argument(
        "--out", type=Path, default=DEFAULT_OUT, help="JSON output path (default: %(default)s)"
    )
    parser.add_argument("--seed", type=int, default=0, help="data seed (default: %(default)s)")
    parser.add_argument("--no-progress", action="store_true", help="no tqdm progress bars")
    args = parser.parse_args(argv)
    preset = QUICK if args.quick else FULL
    for key, value in preset.items():
        if getattr(args, key) is None:
            setattr(args, key, value)
    if min(args.sizes) < N_FRAMES or args.decode_events < 1:
        parser.error(f"--sizes must be >= {N_FRAMES} and --decode-events >= 1")
    if args.repeats < 1 or args.warmup < 1:
        parser.error("--repeats and --warmup must be >= 1")
    return args


def main(argv=None) -> int:
    args = parse_args(argv)
    progress = not args.no_progress
    load_before = _common.load_average()
    framing = bench_framing(args.sizes, args.seed, args.warmup, args.repeats, progress)
    decoding = bench_decoding(args.decode_events, args.seed, args.warmup, args.repeats, progress)
    targets = collect_targets(framing, decoding)
    env = _common.environment(["tonic", "aedat"])
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
            "seed": args.seed,
            "git": _common.git_state(_HERE.parent),
            **env,
        },
        "framing": framing,
        "decoding": decoding,
        "targets": targets,
    }
    print(
        f"events: framing T={N_FRAMES} sensor {SENSOR}, sizes {args.sizes}; decoding "
        f"{args.decode_events} events; repeats={args.repeats}; cpus {env['cpu_count']}; "
        f"numba threads {env['numba_threads']}"
    )
    print_report(framing, decoding, targets)
    path = _common.write_json_atomic(args.out, result)
    print(f"\nwrote {path}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
