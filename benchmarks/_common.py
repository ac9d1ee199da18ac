"""Shared helpers for the qifsim benchmarks (timing, saved-tensor accounting, JSON output).

Imported by the benchmark scripts in this folder as a sibling module
(``import _common``); the scripts put their own folder on ``sys.path`` so they
work when run as ``python benchmarks/<name>.py`` from the repository root.

Nothing here hardcodes a result: every number a benchmark reports is measured
in the run that writes it.
"""

from __future__ import annotations

import argparse
import importlib.metadata
import math
import os
import platform
import statistics
import subprocess
import sys
import time
import weakref
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch.utils._python_dispatch import TorchDispatchMode
from torch.utils._pytree import tree_flatten

# -- timing -------------------------------------------------------------------


class PhaseClock:
    """Wall-clock laps of one iteration: ``clock.lap("forward")`` ... ``clock.done()``.

    ``done()`` returns ``{phase: seconds, ..., "total": seconds}`` where
    ``total`` spans from construction to the last lap.
    """

    def __init__(self) -> None:
        self._start = time.perf_counter()
        self._last = self._start
        self.phases: dict[str, float] = {}

    def lap(self, name: str) -> None:
        now = time.perf_counter()
        self.phases[name] = now - self._last
        self._last = now

    def done(self) -> dict[str, float]:
        return {**self.phases, "total": self._last - self._start}


def summarize_ms(samples_s: Sequence[float]) -> dict[str, Any]:
    """All samples (ms), their median, min and mean, from samples in seconds."""
    ms = [s * 1e3 for s in samples_s]
    if not ms:
        return {"samples": [], "median": None, "min": None, "mean": None}
    return {
        "samples": ms,
        "median": statistics.median(ms),
        "min": min(ms),
        "mean": statistics.fmean(ms),
    }


class CpuUse:
    """CPU time the *other* processes used over a span, as a share of all cores.

    Competing processes distort timings (torch's multi-threaded ops most of
    all). Linux only: system-wide busy time from ``/proc/stat`` (steal
    included: time the hypervisor gave to other guests) minus this process's
    own CPU time (``os.times``), divided by ``wall time * cores``. ``None``
    where ``/proc/stat`` is unavailable. Resolution is one clock tick
    (usually 10 ms), so short spans are coarse.
    """

    def __init__(self) -> None:
        self.available = Path("/proc/stat").is_file()
        self._tick = os.sysconf("SC_CLK_TCK") if self.available else 100
        self._cores = os.cpu_count() or 1

    def _system_busy_s(self) -> float:
        with open("/proc/stat", encoding="ascii") as f:
            fields = [int(v) for v in f.readline().split()[1:9]]
        user, nice, system, _idle, _iowait, irq, softirq, steal = fields
        return (user + nice + system + irq + softirq + steal) / self._tick

    def snapshot(self) -> tuple[float, float, float] | None:
        if not self.available:
            return None
        t = os.times()
        return time.perf_counter(), self._system_busy_s(), t.user + t.system

    def others(self, start, end) -> tuple[float, float] | None:
        """``(CPU seconds of other processes, wall seconds * cores)`` between snapshots."""
        if start is None or end is None:
            return None
        others = (end[1] - start[1]) - (end[2] - start[2])
        return max(0.0, others), max(0.0, end[0] - start[0]) * self._cores

    def share(self, spans: Iterable[tuple[float, float] | None]) -> float | None:
        """Others' share of the summed capacity of ``spans``; None if too short to resolve.

        Needs at least 20 clock ticks of capacity (one tick is then <= 5 %).
        """
        known = [s for s in spans if s is not None]
        capacity = sum(c for _, c in known)
        if not known or capacity * self._tick < 20:
            return None
        return round(min(1.0, sum(o for o, _ in known) / capacity), 4)


def run_interleaved(
    cases: Mapping[str, Callable[[], Mapping[str, float]]],
    warmup: int,
    repeats: int,
    progress: bool = True,
    desc: str = "timing",
) -> dict[str, dict[str, Any]]:
    """Time several cases round-robin (so drift of a noisy machine hits them alike).

    The order rotates by one case every round, so no case always runs first (the
    first call of a round pays for waking threads and the allocator more often).

    Each case is a callable doing one untimed preparation plus one timed
    iteration and returning its phase durations in seconds (a
    :class:`PhaseClock` ``done()`` dict, ``"total"`` included). ``warmup``
    untimed rounds run first (JIT compilation, allocator warm-up).

    Returns ``{case: {"timings_ms": {phase: summarize_ms(...)},
    "others_cpu_share": {"samples", "overall"}}}``: the :class:`CpuUse` share
    of each timed call and of all of them together (None where unknown or
    too short to resolve).
    """
    names = list(cases)
    samples: dict[str, dict[str, list[float]]] = {n: {} for n in names}
    spans: dict[str, list[tuple[float, float] | None]] = {n: [] for n in names}
    cpu = CpuUse()
    rounds = [(False, i) for i in range(warmup)] + [(True, i) for i in range(repeats)]
    bar = _progress(total=len(rounds) * len(names), desc=desc, enabled=progress)
    try:
        for k, (timed, _) in enumerate(rounds):
            shift = k % len(names)
            for name in names[shift:] + names[:shift]:
                if bar is not None:
                    bar.set_postfix_str(f"{'run' if timed else 'warm-up'} {name}", refresh=False)
                before = cpu.snapshot()
                phases = cases[name]()
                after = cpu.snapshot()
                if timed:
                    for phase, seconds in phases.items():
                        samples[name].setdefault(phase, []).append(seconds)
                    spans[name].append(cpu.others(before, after))
                if bar is not None:
                    bar.update(1)
    finally:
        if bar is not None:
            bar.close()
    out: dict[str, dict[str, Any]] = {}
    for n in names:
        out[n] = {
            "timings_ms": {p: summarize_ms(s) for p, s in samples[n].items()},
            "others_cpu_share": {
                "samples": [cpu.share([span]) for span in spans[n]],
                "overall": cpu.share(spans[n]),
            },
        }
    return out


def _progress(total: int, desc: str, enabled: bool):
    if not enabled:
        return None
    try:
        from tqdm.auto import tqdm
    except ImportError:  # pragma: no cover - tqdm is a dependency, but stay optional here
        return None
    return tqdm(total=total, desc=desc, leave=False, file=sys.stderr)


def iterate(items: Iterable, desc: str, enabled: bool = True):
    """``items`` wrapped in a tqdm bar on stderr when enabled and available."""
    if enabled:
        try:
            from tqdm.auto import tqdm
        except ImportError:  # pragma: no cover
            return items
        return tqdm(items, desc=desc, leave=False, file=sys.stderr)
    return items


# -- autograd memory ----------------------------------------------------------


class AllocationLedger(TorchDispatchMode):
    """Peak of live tensor bytes created under this mode (CPU peak-memory accounting).

    Every op output whose storage is new adds ``storage.nbytes()``; the bytes are released
    when the last tensor seen on that storage is garbage collected (``weakref.finalize``).
    Backward ops run under the mode too. ``peak`` and ``live`` are in bytes.
    """

    def __init__(self) -> None:
        super().__init__()
        self._refs: dict[int, int] = {}
        self._bytes: dict[int, int] = {}
        self.live = 0
        self.peak = 0

    def _release(self, key: int) -> None:
        self._refs[key] -= 1
        if self._refs[key] == 0:
            del self._refs[key]
            self.live -= self._bytes.pop(key)

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        out = func(*args, **(kwargs or {}))
        for t in tree_flatten(out)[0]:
            if not isinstance(t, torch.Tensor):
                continue
            storage = t.untyped_storage()
            key = storage.data_ptr()
            if key == 0:
                continue
            if key not in self._refs:
                self._refs[key] = 0
                self._bytes[key] = storage.nbytes()
                self.live += storage.nbytes()
                self.peak = max(self.peak, self.live)
            self._refs[key] += 1
            weakref.finalize(t, self._release, key)
        return out


def peak_bytes(step: Callable[[], Any], device: torch.device) -> int:
    """Peak bytes one call of ``step`` allocates above what was live before it.

    CUDA: ``torch.cuda.max_memory_allocated`` above the memory held before the
    step. CPU: the :class:`AllocationLedger` peak (live tensor-storage bytes the
    step creates; allocator overhead excluded).
    """
    if device.type == "cuda":
        torch.cuda.synchronize(device)
        base = torch.cuda.memory_allocated(device)
        torch.cuda.reset_peak_memory_stats(device)
        step()
        torch.cuda.synchronize(device)
        return int(torch.cuda.max_memory_allocated(device) - base)
    with AllocationLedger() as ledger:
        step()
    return int(ledger.peak)


@dataclass
class SavedTensors:
    """Tensors autograd holds for backward after one forward, per distinct storage."""

    bytes: int = 0
    n_packed: int = 0  # tensors passed to the pack hook during the forward
    n_held: int = 0  # of those, still referenced by the graph when the forward returned
    storages: dict[int, dict[str, Any]] = field(default_factory=dict)

    def bytes_excluding(self, data_ptrs: Iterable[int]) -> int:
        skip = set(data_ptrs)
        return sum(s["nbytes"] for ptr, s in self.storages.items() if ptr not in skip)

    def largest(self, k: int = 8) -> list[dict[str, Any]]:
        return sorted(self.storages.values(), key=lambda s: -s["nbytes"])[:k]


def measure_saved_tensors(forward: Callable[[], Any]) -> tuple[SavedTensors, Any]:
    """Run ``forward()`` and account the tensors autograd saved for backward.

    A ``torch.autograd.graph.saved_tensors_hooks`` pack hook sees each saved
    tensor and keeps a weak reference to it (the graph holds the tensor
    itself). When ``forward()`` returns, the tensors still alive are what the
    graph holds for backward (nodes a forward built and dropped again, e.g. for
    a discarded intermediate, released theirs); their storages are
    de-duplicated by ``untyped_storage().data_ptr()`` and
    ``untyped_storage().nbytes()`` summed, so a saved view counts its whole
    storage, which it keeps alive. Being alive together, no two of them can
    share an address by reuse.

    Returns ``(SavedTensors, forward's result)``; keep the result alive only
    as long as needed (it holds the graph).
    """
    refs: list[weakref.ref] = []

    def pack(t: torch.Tensor) -> torch.Tensor:
        refs.append(weakref.ref(t))
        return t

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        result = forward()
    report = SavedTensors(n_packed=len(refs))
    for ref in refs:
        t = ref()
        if t is None:
            continue
        report.n_held += 1
        storage = t.untyped_storage()
        ptr = storage.data_ptr()
        if ptr not in report.storages:
            nbytes = storage.nbytes()
            report.storages[ptr] = {
                "nbytes": nbytes,
                "shape": list(t.shape),
                "dtype": str(t.dtype).removeprefix("torch."),
            }
            report.bytes += nbytes
    return report, result


def storage_ptr(t: torch.Tensor) -> int:
    return t.untyped_storage().data_ptr()


# -- output -------------------------------------------------------------------


def write_json_atomic(path: str | os.PathLike, data: Any) -> Path:
    """Write ``data`` as strict JSON to ``path`` atomically (non-finite floats become null)."""
    from qifsim.atomic import write_json_atomic as write

    return write(path, _finite(data))


def _finite(obj: Any) -> Any:
    if isinstance(obj, float):
        return obj if math.isfinite(obj) else None
    if isinstance(obj, Mapping):
        return {str(k): _finite(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_finite(v) for v in obj]
    return obj


def ratio(numerator: float | None, denominator: float | None) -> float | None:
    """``numerator / denominator``, or None when either is missing or the denominator is 0."""
    if numerator is None or denominator is None or denominator == 0:
        return None
    return numerator / denominator


def target_check(value: float | None, limit: float, op: str = "<=") -> dict[str, Any]:
    """``{"value", "target", "op", "met"}`` for ``value <= limit`` (or ``>=``).

    ``met`` is None when not measured.
    """
    if op not in ("<=", ">="):
        raise ValueError(f"op must be '<=' or '>=', got {op!r}")
    met = None if value is None else bool(value <= limit if op == "<=" else value >= limit)
    return {"value": value, "target": limit, "op": op, "met": met}


def package_versions(names: Iterable[str]) -> dict[str, str | None]:
    out: dict[str, str | None] = {}
    for name in names:
        try:
            out[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            out[name] = None
    return out


def environment(packages: Iterable[str] = ()) -> dict[str, Any]:
    """Machine and library facts that a timing depends on."""
    info: dict[str, Any] = {
        "threads": torch.get_num_threads(),
        "torch_version": torch.__version__,
        "python": platform.python_version(),
        "platform": platform.platform(),
        "machine": platform.machine(),
        "cpu_count": os.cpu_count(),
        "load_average_at_start": load_average(),
    }
    try:
        import numba

        info["numba_threads"] = numba.get_num_threads()
    except ImportError:  # pragma: no cover
        info["numba_threads"] = None
    info["versions"] = package_versions(["torch", "numpy", "numba", "qifsim", *packages])
    return info


def load_average() -> list[float] | None:
    """1, 5 and 15 minute load averages (None where the OS has none).

    Other processes competing for the cores distort timings, torch's
    multi-threaded small ops most of all; recording the load makes that visible.
    """
    try:
        return [round(v, 2) for v in os.getloadavg()]
    except (AttributeError, OSError):  # pragma: no cover - not on every OS
        return None


def git_state(repo: str | os.PathLike) -> dict[str, Any]:
    """Commit and uncommitted changes of the checkout a benchmark ran on (best effort)."""

    def git(*args: str) -> str | None:
        try:
            proc = subprocess.run(
                ["git", *args], cwd=repo, capture_output=True, text=True, timeout=10, check=True
            )
        except (OSError, subprocess.SubprocessError):
            return None
        return proc.stdout.rstrip("\n")

    status = git("status", "--porcelain", "--untracked-files=no")
    return {
        "commit": git("rev-parse", "HEAD"),
        "modified": None if status is None else [ln[3:] for ln in status.splitlines() if ln],
    }


def format_table(headers: Sequence[str], rows: Sequence[Sequence[Any]]) -> str:
    """A plain-text table; numbers are pre-formatted by the caller (None shows as '-')."""
    cells = [[("-" if c is None else str(c)) for c in row] for row in rows]
    widths = [
        max(len(h), *(len(r[i]) for r in cells)) if cells else len(h) for i, h in enumerate(headers)
    ]

    def line(values):
        pairs = enumerate(zip(values, widths, strict=True))
        return "  ".join(v.ljust(w) if i == 0 else v.rjust(w) for i, (v, w) in pairs)

    sep = "  ".join("-" * w for w in widths)
    return "\n".join([line(headers), sep, *(line(r) for r in cells)])


def fmt(value: float | None, spec: str) -> str | None:
    return None if value is None else format(value, spec)


def add_run_args(
    parser: argparse.ArgumentParser,
    default_out: Path,
    quick_help: str = "tiny sizes, for smoke tests",
    seed_help: str = "data seed",
) -> None:
    """The flags every benchmark takes: ``--quick``, ``--out``, ``--seed``, ``--no-progress``."""
    parser.add_argument("--quick", action="store_true", help=quick_help)
    parser.add_argument(
        "--out", type=Path, default=default_out, help="JSON output path (default: %(default)s)"
    )
    parser.add_argument("--seed", type=int, default=0, help=f"{seed_help} (default: %(default)s)")
    parser.add_argument("--no-progress", action="store_true", help="no tqdm progress bars")


def add_timing_args(
    parser: argparse.ArgumentParser, quick: dict[str, Any], full: dict[str, Any]
) -> None:
    """``--repeats`` and ``--warmup`` (default ``None``: the preset's, see :func:`fill_preset`)."""
    parser.add_argument(
        "--repeats",
        type=int,
        default=None,
        help=f"timed repeats (default {full['repeats']}; --quick {quick['repeats']})",
    )
    parser.add_argument(
        "--warmup",
        type=int,
        default=None,
        help=f"untimed warm-up rounds, at least 1 (default {full['warmup']}; "
        f"--quick {quick['warmup']})",
    )


def fill_preset(args: argparse.Namespace, quick: dict[str, Any], full: dict[str, Any]) -> None:
    """Set every option still ``None`` in ``args`` from ``quick`` (``--quick``) or ``full``."""
    for key, value in (quick if args.quick else full).items():
        if getattr(args, key, None) is None:
            setattr(args, key, value)
