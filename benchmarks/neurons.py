"""Benchmark: forward+backward time and autograd memory of one spiking neuron layer.

All implementations run in one process, on the same input ``x: [T, B, C, H, W]``
(``randn * 0.5 + 0.3``, so the neurons fire), with the same loss
``spikes.sum()``. After untimed warm-up rounds (qifsim's numba kernels compile
on their first call), the timed repeats run round-robin over the
implementations so that a noisy machine slows them alike. Reported: median and
min of the forward+backward wall time, the forward/backward split, the mean
firing rate, and the bytes autograd saves for backward (distinct storages of
the tensors passed to a ``saved_tensors_hooks`` pack hook).

Implementations (``--only`` takes these names):

  qifsim_qif_fused        qifsim QIF(), fused custom op, numba kernel on CPU
  qifsim_qif_fused_torch  qifsim QIF(backend="torch"), fused op, torch-ops kernel
  qifsim_qif_reference    qifsim QIF(impl="reference"), step-by-step autograd
  qifsim_lif_fused        qifsim LIF(), fused custom op
  norse_lif               norse.torch.LIF() (norse default parameters)
  snntorch_leaky          snntorch.Leaky stepped over T in a Python loop
  spikingjelly_lif        spikingjelly LIFNode(step_mode="m")
  spikingjelly_qif        spikingjelly QIFNode(step_mode="m")

Peer libraries that cannot be imported are skipped (noted in the JSON).
Results go to ``benchmarks/results/neurons.json`` (written atomically).

Run from the repository root: ``python benchmarks/neurons.py [--quick]``.
"""

from __future__ import annotations

import argparse
import gc
import sys
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch.overrides import TorchFunctionMode

_HERE = Path(__file__).resolve().parent
if str(_HERE) not in sys.path:
    sys.path.insert(0, str(_HERE))

import _common  # noqa: E402

DEFAULT_OUT = _HERE / "results" / "neurons.json"
PEER_PACKAGES = ("norse", "snntorch", "spikingjelly")

# Targets of the issue that asked for this benchmark (ratios; lower is better).
TARGETS = {
    "qif_fused_over_norse_lif": 0.3,
    "qif_fused_over_spikingjelly_qif": 1.0,
    "qif_fused_saved_over_reference_saved": 0.5,
}

# Warn when other processes took more than this share of all cores in a timed iteration.
CONTENTION_WARN = 0.05

QIF_FUSED = "qifsim_qif_fused"
QIF_REFERENCE = "qifsim_qif_reference"
NORSE_LIF = "norse_lif"


# -- implementations -----------------------------------------------------------


class PeerUnavailable(Exception):
    """An optional peer library is missing or refuses to build the layer."""


@dataclass
class Runner:
    """One layer, ready to run: ``reset()`` (untimed) then ``forward(x) -> spikes``.

    ``module`` is the layer itself (``runner.module.to(device)`` moves it).
    """

    forward: Callable[[torch.Tensor], torch.Tensor]
    reset: Callable[[], None] = lambda: None
    details: dict[str, Any] | None = None
    module: torch.nn.Module | None = None


@dataclass(frozen=True)
class Impl:
    name: str
    label: str
    library: str
    build: Callable[[], Runner]
    peer: bool  # optional comparator: skip (not fail) when it cannot run


def _qifsim_runner(module_factory: Callable[[], torch.nn.Module], details) -> Runner:
    module = module_factory()
    return Runner(
        forward=lambda x: module(x)[0], details={**details, "module": repr(module)}, module=module
    )


def _build_qif_fused() -> Runner:
    from qifsim.neurons import QIF

    return _qifsim_runner(QIF, {"impl": "fused", "backend": "auto (numba on CPU float32)"})


def _build_qif_fused_torch() -> Runner:
    from qifsim.neurons import QIF

    return _qifsim_runner(lambda: QIF(backend="torch"), {"impl": "fused", "backend": "torch"})


def _build_qif_reference() -> Runner:
    from qifsim.neurons import QIF

    return _qifsim_runner(lambda: QIF(impl="reference"), {"impl": "reference"})


def _build_lif_fused() -> Runner:
    from qifsim.neurons import LIF

    return _qifsim_runner(LIF, {"impl": "fused", "backend": "auto (numba on CPU float32)"})


def _build_norse_lif() -> Runner:
    try:
        import norse.torch as norse_torch
    except Exception as err:  # noqa: BLE001 - any import failure means "peer unavailable"
        raise PeerUnavailable(f"norse not importable: {err!r}") from err
    module = norse_torch.LIF()
    return Runner(
        forward=lambda x: module(x)[0],
        details={"parameters": "norse defaults", "p": repr(module.p)},
        module=module,
    )


def _build_snntorch_leaky() -> Runner:
    try:
        import snntorch
    except Exception as err:  # noqa: BLE001
        raise PeerUnavailable(f"snntorch not importable: {err!r}") from err
    from qifsim.neurons import LIFParameters

    # qifsim's LIF defaults: snntorch's Leaky is the same Wu-2018 leaky form.
    p = LIFParameters()
    leaky = snntorch.Leaky(beta=float(p.beta), threshold=float(p.u_th))

    def forward(x: torch.Tensor) -> torch.Tensor:
        mem = leaky.reset_mem()
        spikes = []
        for x_t in x:
            spk, mem = leaky(x_t, mem)
            spikes.append(spk)
        return torch.stack(spikes)

    return Runner(
        forward=forward,
        details={
            "beta": float(p.beta),
            "threshold": float(p.u_th),
            "stepping": "python loop over T, mem from Leaky.reset_mem()",
            "reset_mechanism": leaky.reset_mechanism,
        },
        module=leaky,
    )


def _spikingjelly():
    try:
        from spikingjelly.activation_based import functional, neuron, surrogate
    except Exception as err:  # noqa: BLE001
        raise PeerUnavailable(f"spikingjelly not importable: {err!r}") from err
    return functional, neuron, surrogate


def _sj_runner(module, functional, details) -> Runner:
    return Runner(
        forward=module,
        reset=lambda: functional.reset_net(module),
        details={**details, "module": repr(module), "step_mode": module.step_mode},
        module=module,
    )


def _build_sj_lif() -> Runner:
    functional, neuron, surrogate = _spikingjelly()
    from qifsim.neurons import LIFParameters

    # decay_input=False, tau = 1 / (1 - beta): H = beta V + X, the same leak as qifsim's LIF.
    p = LIFParameters()
    beta = float(p.beta)
    module = neuron.LIFNode(
        tau=1.0 / (1.0 - beta),
        decay_input=False,
        v_threshold=float(p.u_th),
        v_reset=0.0,
        surrogate_function=surrogate.Sigmoid(),
        step_mode="m",
    )
    return _sj_runner(module, functional, {"surrogate": "Sigmoid()", "beta_equivalent": beta})


def _build_sj_qif() -> Runner:
    functional, neuron, surrogate = _spikingjelly()
    from qifsim.neurons import QIFParameters

    # SJ's QIF is H = V + (X + a0 (V - rest)(V - c)) / tau (tau > 1): not qifsim's
    # discretisation, so only the potentials (threshold, reset, rest, critical) are
    # taken from qifsim's defaults; tau and a0 keep spikingjelly's defaults.
    p = QIFParameters()
    module = neuron.QIFNode(
        v_threshold=float(p.u_th),
        v_reset=float(p.u_rest),
        v_rest=float(p.u_rest),
        v_c=float(p.u_c),
        surrogate_function=surrogate.Sigmoid(),
        step_mode="m",
    )
    return _sj_runner(module, functional, {"surrogate": "Sigmoid()"})


IMPLEMENTATIONS: dict[str, Impl] = {
    impl.name: impl
    for impl in (
        Impl(QIF_FUSED, "qifsim QIF fused (numba)", "qifsim", _build_qif_fused, False),
        Impl(
            "qifsim_qif_fused_torch",
            "qifsim QIF fused (torch ops)",
            "qifsim",
            _build_qif_fused_torch,
            False,
        ),
        Impl(QIF_REFERENCE, "qifsim QIF reference", "qifsim", _build_qif_reference, False),
        Impl("qifsim_lif_fused", "qifsim LIF fused (numba)", "qifsim", _build_lif_fused, False),
        Impl(NORSE_LIF, "norse LIF", "norse", _build_norse_lif, True),
        Impl("snntorch_leaky", "snntorch Leaky (loop)", "snntorch", _build_snntorch_leaky, True),
        Impl("spikingjelly_lif", "spikingjelly LIFNode m", "spikingjelly", _build_sj_lif, True),
        Impl("spikingjelly_qif", "spikingjelly QIFNode m", "spikingjelly", _build_sj_qif, True),
    )
}


# -- measurements ----------------------------------------------------------------


class _OpRecorder(TorchFunctionMode):
    """Records the non-aten operator overloads a forward calls (e.g. a library's custom op)."""

    def __init__(self) -> None:
        super().__init__()
        self.ops: set[str] = set()

    def __torch_function__(self, func, types, args=(), kwargs=None):
        if isinstance(func, (torch._ops.OpOverload, torch._ops.OpOverloadPacket)):
            name = str(func)
            if not name.startswith("aten."):
                self.ops.add(name)
        return func(*args, **(kwargs or {}))


def dispatch_info(runner: Runner, x: torch.Tensor) -> dict[str, Any]:
    """Which custom ops a forward went through and which autograd node made the output.

    A library's own backward shows as a generated/custom node on the output
    (e.g. ``GeneratedBackwardFor_qifsim_neuron_scan...``); ``StackBackward0``
    and the like mean autograd differentiates a chain of torch ops.
    """
    runner.reset()
    recorder = _OpRecorder()
    with recorder:
        spikes = runner.forward(x)
    grad_fn = spikes.grad_fn
    return {
        "custom_ops": sorted(recorder.ops),
        "output_grad_fn": None if grad_fn is None else grad_fn.name(),
    }


def one_iteration(runner: Runner, x: torch.Tensor) -> tuple[dict[str, float], float, int]:
    """Untimed reset, then timed forward and backward of ``spikes.sum()``.

    Returns ``(phases, firing_rate, spike_count)``.
    """
    runner.reset()
    x.grad = None
    gc.collect()
    clock = _common.PhaseClock()
    spikes = runner.forward(x)
    loss = spikes.sum()
    clock.lap("forward")
    loss.backward()
    clock.lap("backward")
    phases = clock.done()
    with torch.no_grad():
        count = int(spikes.detach().sum().item())
    rate = count / spikes.numel()
    return phases, rate, count


def saved_bytes(runner: Runner, x: torch.Tensor) -> dict[str, Any]:
    runner.reset()
    report, spikes = _common.measure_saved_tensors(lambda: runner.forward(x))
    out = {
        "bytes": report.bytes,
        "bytes_excluding_input": report.bytes_excluding([_common.storage_ptr(x)]),
        "n_packed_tensors": report.n_packed,
        "n_held_tensors": report.n_held,
        "n_storages": len(report.storages),
        "largest_storages": report.largest(6),
    }
    del spikes
    runner.reset()
    return out


def profile_ops(runner: Runner, x: torch.Tensor, top: int = 12) -> list[dict[str, Any]]:
    """Self CPU time per operator over one forward+backward (torch.profiler)."""
    from torch.profiler import ProfilerActivity, profile

    runner.reset()
    x.grad = None
    with profile(activities=[ProfilerActivity.CPU]) as prof:
        runner.forward(x).sum().backward()
    rows = sorted(prof.key_averages(), key=lambda e: -e.self_cpu_time_total)
    total = sum(e.self_cpu_time_total for e in rows) or 1.0
    return [
        {
            "op": e.key,
            "self_cpu_ms": e.self_cpu_time_total / 1e3,
            "share": e.self_cpu_time_total / total,
            "calls": e.count,
        }
        for e in rows[:top]
    ]


# -- CLI -------------------------------------------------------------------------------

QUICK = {"T": 4, "batch": 2, "shape": (4, 8, 8), "repeats": 1, "warmup": 1}
FULL = {"T": 16, "batch": 32, "shape": (64, 32, 32), "repeats": 5, "warmup": 2}


def parse_args(argv=None) -> argparse.Namespace:
    names = ", ".join(IMPLEMENTATIONS)
    parser = argparse.ArgumentParser(
        prog="python benchmarks/neurons.py",
        description=(
            "Forward+backward time (median/min of repeats, after warm-up) and autograd "
            "saved-tensor bytes of one spiking neuron layer: qifsim QIF/LIF (fused, "
            "torch-ops fused, reference) against norse LIF, snntorch Leaky and "
            "spikingjelly LIF/QIF nodes, in one run on the same input. Prints a table "
            "and writes JSON (atomically)."
        ),
        epilog="implementations (for --only):\n"
        + "\n".join(f"  {impl.name:<24} {impl.label}" for impl in IMPLEMENTATIONS.values())
        + "\n\nPeers that cannot be imported are skipped with a note in the JSON.",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument(
        "--T",
        type=int,
        default=None,
        help=f"time steps (default {FULL['T']}; --quick {QUICK['T']})",
    )
    parser.add_argument(
        "--batch",
        type=int,
        default=None,
        help=f"batch size (default {FULL['batch']}; --quick {QUICK['batch']})",
    )
    parser.add_argument(
        "--shape",
        type=int,
        nargs=3,
        metavar=("C", "H", "W"),
        default=None,
        help="feature shape per sample (default "
        f"{' '.join(map(str, FULL['shape']))}; --quick "
        f"{' '.join(map(str, QUICK['shape']))})",
    )
    parser.add_argument(
        "--only",
        type=str,
        default=None,
        metavar="NAME[,NAME]",
        help="comma-separated implementations to run (default: all)",
    )
    parser.add_argument(
        "--profile",
        action="store_true",
        help="also profile one iteration per implementation "
        "(torch.profiler, self CPU time per op) into the JSON",
    )
    _common.add_timing_args(parser, QUICK, FULL)
    _common.add_run_args(parser, DEFAULT_OUT)
    args = parser.parse_args(argv)

    _common.fill_preset(args, QUICK, FULL)
    args.shape = tuple(args.shape)
    if min(args.T, args.batch, *args.shape) < 1:
        parser.error("--T, --batch and --shape must be >= 1")
    if args.repeats < 1 or args.warmup < 1:
        parser.error("--repeats and --warmup must be >= 1")
    if args.only:
        chosen = [n.strip() for n in args.only.split(",") if n.strip()]
        unknown = [n for n in chosen if n not in IMPLEMENTATIONS]
        if unknown or not chosen:
            parser.error(f"unknown implementation(s) {unknown}; choose from: {names}")
        args.only = list(dict.fromkeys(chosen))
    else:
        args.only = list(IMPLEMENTATIONS)
    return args


# -- main ------------------------------------------------------------------------------


def make_input(T: int, batch: int, shape, seed: int) -> torch.Tensor:
    gen = torch.Generator().manual_seed(seed)
    x = torch.randn(T, batch, *shape, generator=gen) * 0.5 + 0.3
    return x.requires_grad_(True)


def derived_ratios(
    impls: dict[str, dict[str, Any]], stat: str = "median"
) -> dict[str, float | None]:
    """Time ratios from the ``stat`` ("median" or "min") of forward+backward, saved-byte ratios."""

    def median(name):
        entry = impls.get(name, {})
        return entry.get("timings_ms", {}).get("total", {}).get(stat)

    def saved(name):
        return impls.get(name, {}).get("saved", {}).get("bytes")

    qif = median(QIF_FUSED)
    return {
        "qif_fused_over_norse_lif": _common.ratio(qif, median(NORSE_LIF)),
        "qif_fused_over_spikingjelly_qif": _common.ratio(qif, median("spikingjelly_qif")),
        "qif_fused_over_snntorch_leaky": _common.ratio(qif, median("snntorch_leaky")),
        "qif_fused_over_spikingjelly_lif": _common.ratio(qif, median("spikingjelly_lif")),
        "qif_fused_over_qif_reference": _common.ratio(qif, median(QIF_REFERENCE)),
        "qif_fused_over_qif_fused_torch": _common.ratio(qif, median("qifsim_qif_fused_torch")),
        "lif_fused_over_norse_lif": _common.ratio(median("qifsim_lif_fused"), median(NORSE_LIF)),
        "qif_fused_saved_over_reference_saved": _common.ratio(
            saved(QIF_FUSED), saved(QIF_REFERENCE)
        ),
        "qif_fused_saved_over_norse_lif_saved": _common.ratio(saved(QIF_FUSED), saved(NORSE_LIF)),
    }


def print_table(impls: dict[str, dict[str, Any]]) -> None:
    def med(name):
        return impls.get(name, {}).get("timings_ms", {}).get("total", {}).get("median")

    norse, qif = med(NORSE_LIF), med(QIF_FUSED)
    rows = []
    for name, entry in impls.items():
        if entry["status"] != "ok":
            rows.append(
                [
                    name,
                    None,
                    None,
                    None,
                    None,
                    None,
                    None,
                    None,
                    None,
                    f"{entry['status']}: {entry.get('note', '')}"[:60],
                ]
            )
            continue
        t = entry["timings_ms"]
        m = t["total"]["median"]
        saved = entry.get("saved", {}).get("bytes")
        rows.append(
            [
                name,
                _common.fmt(m, ".1f"),
                _common.fmt(t["total"]["min"], ".1f"),
                _common.fmt(t["forward"]["median"], ".1f"),
                _common.fmt(t["backward"]["median"], ".1f"),
                _common.fmt(_common.ratio(m, norse), ".3f"),
                _common.fmt(_common.ratio(m, qif), ".3f"),
                _common.fmt(entry["firing_rate"], ".3f"),
                _common.fmt(None if saved is None else saved / 1e6, ".1f"),
                _common.fmt(entry["others_cpu_share"]["overall"], ".0%"),
            ]
        )
    headers = [
        "implementation",
        "median ms",
        "min ms",
        "fwd ms",
        "bwd ms",
        "/ norse LIF",
        "/ QIF fused",
        "rate",
        "saved MB",
        "others",
    ]
    print(_common.format_table(headers, rows))
    print(
        "others: share of all cores other processes used while that implementation was timed "
        "('-': too short to tell)"
    )


def main(argv=None) -> int:
    args = parse_args(argv)
    progress = not args.no_progress
    warnings.filterwarnings("ignore", message=".*torch.jit.script.*", category=FutureWarning)
    load_before = _common.load_average()
    x = make_input(args.T, args.batch, args.shape, args.seed)

    impls: dict[str, dict[str, Any]] = {}
    runners: dict[str, Runner] = {}
    for name in _common.iterate(args.only, "build", progress):
        impl = IMPLEMENTATIONS[name]
        entry: dict[str, Any] = {"label": impl.label, "library": impl.library}
        impls[name] = entry
        try:
            runner = impl.build()
            entry["details"] = runner.details
            entry["dispatch"] = dispatch_info(runner, x)
            runners[name] = runner
            entry["status"] = "ok"
        except PeerUnavailable as err:
            entry.update(status="skipped", note=str(err))
        except Exception as err:
            if not impl.peer:
                raise
            entry.update(status="error", note=f"could not build/run: {err!r}")

    def case(name: str) -> Callable[[], dict[str, float]]:
        runner = runners[name]

        def run() -> dict[str, float]:
            phases, rate, count = one_iteration(runner, x)
            impls[name]["firing_rate"] = rate
            impls[name]["spike_count"] = count
            return phases

        return run

    timings = _common.run_interleaved(
        {name: case(name) for name in runners},
        args.warmup,
        args.repeats,
        progress=progress,
        desc="fwd+bwd",
    )
    for name, measured in timings.items():
        impls[name].update(measured)
    busy = [
        e["others_cpu_share"]["overall"]
        for e in impls.values()
        if e.get("others_cpu_share", {}).get("overall") is not None
    ]
    contention = max(busy) if busy else None

    for name in _common.iterate(list(runners), "saved bytes", progress):
        impls[name]["saved"] = saved_bytes(runners[name], x)
    if args.profile:
        for name in _common.iterate(list(runners), "profile", progress):
            impls[name]["profile"] = profile_ops(runners[name], x)

    load_after = _common.load_average()
    ratios = derived_ratios(impls)
    ratios_min = derived_ratios(impls, "min")
    env = _common.environment(PEER_PACKAGES)
    env["load_average_at_start"] = load_before
    env["load_average_after_timing"] = load_after
    env["others_cpu_share_max"] = contention  # max over implementations of "overall"
    result = {
        "benchmark": "neurons",
        "config": {
            "T": args.T,
            "batch": args.batch,
            "shape": list(args.shape),
            "input_shape": list(x.shape),
            "neurons": args.batch * int(torch.Size(args.shape).numel()),
            "repeats": args.repeats,
            "warmup": args.warmup,
            "seed": args.seed,
            "quick": args.quick,
            "selected": args.only,
            "input": "randn(T, B, C, H, W) * 0.5 + 0.3, float32, requires_grad",
            "loss": "spikes.sum(), backward",
            "schedule": "warm-up rounds, then timed repeats round-robin over implementations",
            "timer": "time.perf_counter, forward+backward per iteration (reset untimed)",
            "saved_bytes": "distinct storages (by data_ptr) of the tensors passed to a "
            "saved_tensors_hooks pack hook and still held when forward returns",
            **env,
            "git": _common.git_state(_HERE.parent),
        },
        "implementations": impls,
        "skipped": {n: e["note"] for n, e in impls.items() if e["status"] != "ok"},
        "ratios": ratios,
        # The same ratios from the fastest repeat: less sensitive to a busy machine.
        "ratios_from_min": ratios_min,
        "targets": {
            k: {**_common.target_check(ratios[k], v), "value_from_min": ratios_min[k]}
            for k, v in TARGETS.items()
        },
    }
    path = _common.write_json_atomic(args.out, result)

    cfg = result["config"]
    print(
        f"neuron layer fwd+bwd: T={args.T} B={args.batch} shape={tuple(args.shape)} "
        f"torch threads={cfg['threads']} numba threads={cfg['numba_threads']} "
        f"repeats={args.repeats} warmup={args.warmup}"
    )
    print(
        f"load average (1/5/15 min) at start {load_before}, after timing {load_after}, "
        f"cpus {cfg['cpu_count']}"
    )
    if contention is not None and contention > CONTENTION_WARN:
        print(
            f"WARNING: other processes used up to {contention:.0%} of the CPUs while an "
            "implementation was timed ('others' column); they slow multi-threaded torch ops "
            "far more than qifsim's numba kernels, so ratios are skewed. Re-run on a quiet "
            "machine."
        )
    print_table(impls)
    print()
    print(f"{'ratio (from median; from min)':<40} {'median':>8} {'min':>8}")
    for key, check in result["targets"].items():
        value = _common.fmt(check["value"], ".3f") or "n/a"
        value_min = _common.fmt(check["value_from_min"], ".3f") or "n/a"
        met = {True: "met", False: "MISSED", None: "not measured"}[check["met"]]
        print(f"{key:<40} {value:>8} {value_min:>8}  (target <= {check['target']}) {met}")
    for key, value in ratios.items():
        if key not in TARGETS:
            print(
                f"{key:<40} {_common.fmt(value, '.3f') or 'n/a':>8} "
                f"{_common.fmt(ratios_min[key], '.3f') or 'n/a':>8}"
            )
    print(f"\nwrote {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
