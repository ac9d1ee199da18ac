"""Benchmark: cost of spike-rate and energy accounting during inference, and its memory.

Inference (eval mode, ``torch.no_grad()``) of whole models with and without monitoring,
timed round-robin after untimed warm-up, all in one process on the same input:

  plain                  the model alone
  qifsim_counter         qifsim.energy.OpCounter (spike rates, dense ops, MACs, ACs, exact
                         event-driven ACs for every layer; what measure_energy runs)
  qifsim_counter_hist    the same plus pre-reset membrane histograms of every neuron layer
  qifsim_spike_monitor   qifsim.energy.SpikeMonitor (spike counts only)
  spikingjelly_monitor   spikingjelly.activation_based.monitor.OutputMonitor on the neuron
                         layers with function_on_output = spike count per call (the peer a
                         user would otherwise pick); it appends one value per layer and batch
  naive_store_all        forward hooks that keep every spike tensor (counted afterwards)

Models (``qifsim.models.build_model``, QIF neurons, tdBN calibrated on one batch; and a
norse model):

  digits-net   2x34x34, T=10, batch 32   (--quick: T=2, batch 2)
  vggsnn       2x48x48, T=10, batch 4    (--quick: 2x16x16, T=2, batch 1)
  norse-net    2x34x34, T=10, batch 32   (--quick: T=2, batch 2): norse SequentialState of
               Lift(conv5x5 16, stride 2) -> norse LIF -> Lift(conv3x3 32, stride 2) ->
               norse LIF -> Flatten -> Linear 2592->128 -> qifsim QIF -> Linear 128->10
               (untrained; thresholds set so every layer fires)

Memory: bytes the monitor holds (tensor storage plus Python containers reachable from
it, the model excluded) after N1 and N2 batches of digits-net (10 and 50; --quick 2 and
6); constant for qifsim, growing for the peers that keep per-batch records.

Times: the process's CPU time per forward (``time.process_time``, one torch and one numba
thread by default), cases interleaved round-robin. The ratios and the target use the
*minimum* CPU time over the repeats (the least-disturbed run, as ``timeit`` advises: on a
shared machine the plain model's runs were bimodal, 0.89 s and 1.1-1.3 s for VGGSNN, which
made medians swing by 30% between runs); median ratios and wall-clock ratios are reported
beside them (``median_ratios``, ``wall_ratios``).

Target: qifsim_counter / plain <= 1.3 (minimum CPU time per inference) on every model.
Results go to ``benchmarks/results/energy.json`` (atomic).
Run from the repository root: ``python benchmarks/energy.py [--quick]``.
"""

from __future__ import annotations

import argparse
import contextlib
import copy
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
from torch import nn

_HERE = Path(__file__).resolve().parent
if str(_HERE) not in sys.path:
    sys.path.insert(0, str(_HERE))

import _common  # noqa: E402

DEFAULT_OUT = _HERE / "results" / "energy.json"
CASES = (
    "plain",
    "qifsim_counter",
    "qifsim_counter_hist",
    "qifsim_spike_monitor",
    "spikingjelly_monitor",
    "naive_store_all",
)
FULL = {
    "models": {
        "digits-net": {"input": (2, 34, 34), "T": 10, "batch": 32, "repeats": 10},
        "vggsnn": {"input": (2, 48, 48), "T": 10, "batch": 4, "repeats": 5},
        "norse-net": {"input": (2, 34, 34), "T": 10, "batch": 32, "repeats": 10},
    },
    "warmup": 2,
    "memory_batches": (10, 50),
}
QUICK = {
    "models": {
        "digits-net": {"input": (2, 34, 34), "T": 2, "batch": 2, "repeats": 3},
        "vggsnn": {"input": (2, 16, 16), "T": 2, "batch": 1, "repeats": 3},
        "norse-net": {"input": (2, 34, 34), "T": 2, "batch": 2, "repeats": 3},
    },
    "warmup": 1,
    "memory_batches": (2, 6),
}
TARGET = 1.3


def retained_bytes(obj: Any, seen: set[int] | None = None) -> int:
    """Tensor storage plus ``sys.getsizeof`` of containers reachable from ``obj``.

    Modules are skipped (the model is not the monitor's state); storages are counted once;
    a number counts 8 bytes whatever its value (a running sum does not grow the state).
    """
    seen = set() if seen is None else seen
    if id(obj) in seen or isinstance(obj, (nn.Module, type)) or callable(obj):
        return 0
    if isinstance(obj, (bool, int, float, complex)) or obj is None:
        return 8  # a number's size, not the digits of its current value
    seen.add(id(obj))
    if isinstance(obj, torch.Tensor):
        key = obj.untyped_storage().data_ptr()
        if ("storage", key) in seen:
            return 0
        seen.add(("storage", key))  # type: ignore[arg-type]
        return obj.untyped_storage().nbytes()
    size = sys.getsizeof(obj)
    if isinstance(obj, dict):
        return size + sum(retained_bytes(k, seen) + retained_bytes(v, seen) for k, v in obj.items())
    if isinstance(obj, (list, tuple, set)):
        return size + sum(retained_bytes(v, seen) for v in obj)
    if hasattr(obj, "__dict__") and not isinstance(obj, (str, bytes, int, float)):
        return size + retained_bytes(vars(obj), seen)
    return size


class StoreAll:
    """The naive approach: keep every spike tensor, count after the loop."""

    def __init__(self, model: nn.Module) -> None:
        from qifsim.energy import neuron_layers

        self.layers = {n: m for n, (m, _) in neuron_layers(model).items()}
        self.records: dict[str, list[torch.Tensor]] = {n: [] for n in self.layers}
        self.handles: list = []

    def __enter__(self) -> StoreAll:
        from qifsim.energy.peers import spikes_of

        for name, m in self.layers.items():
            self.handles.append(
                m.register_forward_hook(
                    lambda mod, i, o, n=name: self.records[n].append(spikes_of(o).detach().clone())
                )
            )
        return self

    def __exit__(self, *exc) -> None:
        for h in self.handles:
            h.remove()

    def rates(self) -> dict[str, float]:
        return {
            n: float(torch.stack([s.mean() for s in r]).mean()) for n, r in self.records.items()
        }


def monitor_factory(case: str, model: nn.Module) -> Callable[[], Any] | None:
    """A callable returning a fresh context manager for ``case`` (None: unavailable)."""
    from qifsim.energy import MembraneHistograms, OpCounter, SpikeMonitor

    if case == "plain":
        return contextlib.nullcontext
    if case == "qifsim_counter":
        return lambda: OpCounter(model)
    if case == "qifsim_counter_hist":

        @contextlib.contextmanager
        def both():
            with OpCounter(model) as c, MembraneHistograms(model) as h:
                yield (c, h)

        return both
    if case == "qifsim_spike_monitor":
        return lambda: SpikeMonitor(model)
    if case == "naive_store_all":
        return lambda: StoreAll(model)
    if case == "spikingjelly_monitor":
        try:
            from spikingjelly.activation_based.monitor import OutputMonitor
        except ImportError:
            return None
        from qifsim.energy import neuron_layers

        classes = tuple({type(m) for m, _ in neuron_layers(model).values()})

        @contextlib.contextmanager
        def sj():
            mon = OutputMonitor(model, classes, lambda out: out[0].sum().item())
            try:
                yield mon
            finally:
                mon.remove_hooks()

        return sj
    raise ValueError(case)


def norse_net(in_channels: int, hw: tuple[int, int]) -> nn.Module:
    """The norse model of the benchmark (module docstring): norse LIF and qifsim QIF."""
    from norse.torch import LIF, LIFParameters, Lift, SequentialState

    from qifsim.models.blocks import conv_size
    from qifsim.neurons import QIF

    h, w = (conv_size(conv_size(s, 5, 2), 3, 2) for s in hw)
    model = SequentialState(
        Lift(nn.Conv2d(in_channels, 16, 5, stride=2, padding=2, bias=False)),
        LIF(LIFParameters(v_th=torch.tensor(0.05))),
        Lift(nn.Conv2d(16, 32, 3, stride=2, padding=1, bias=False)),
        LIF(LIFParameters(v_th=torch.tensor(0.05))),
        nn.Flatten(2),
        nn.Linear(32 * h * w, 128),
        QIF(),
        nn.Linear(128, 10),
    )
    with torch.no_grad():
        model[2].lifted_module.weight.mul_(4.0)
        model[5].weight.mul_(4.0)
    return model


def build(name: str, cfg: dict, seed: int) -> tuple[nn.Module, torch.Tensor]:
    from qifsim.energy.demo import calibrate_batch_norms
    from qifsim.models import build_model

    torch.manual_seed(seed)
    c, h, w = cfg["input"]
    g = torch.Generator().manual_seed(seed)
    x = torch.poisson(torch.full((cfg["T"], cfg["batch"], c, h, w), 0.3), generator=g)
    if name == "norse-net":
        return norse_net(c, (h, w)).eval(), x
    model = build_model(name, neuron="qif", in_channels=c, input_size=(h, w))
    # tdBN running statistics of this input (one cumulative pass), so the neurons fire
    return calibrate_batch_norms(model, x), x


def _over_plain(stat: dict[str, float]) -> dict[str, float | None]:
    """``{case}_over_plain`` ratios of a per-case statistic."""
    return {
        f"{c}_over_plain": _common.ratio(v, stat["plain"]) for c, v in stat.items() if c != "plain"
    }


def time_model(name: str, cfg: dict, warmup: int, seed: int, progress: bool) -> dict[str, Any]:
    """Each case runs on its own copy of the model with its monitor open for all its batches
    (as in an evaluation loop: the monitor is set up once, the batches are timed)."""
    model, x = build(name, cfg, seed)
    cases: dict[str, Callable[[], dict[str, float]]] = {}
    skipped: dict[str, str] = {}
    stack = contextlib.ExitStack()
    for case in CASES:
        copy_ = copy.deepcopy(model)
        factory = monitor_factory(case, copy_)
        if factory is None:
            skipped[case] = "spikingjelly is not installed"
            continue
        stack.enter_context(factory())

        def run(m=copy_) -> dict[str, float]:
            clock = _common.PhaseClock()
            cpu = time.process_time()
            with torch.no_grad():
                m(x)
            clock.lap("forward")
            return {**clock.done(), "cpu": time.process_time() - cpu}

        cases[case] = run
    with stack:
        timings = _common.run_interleaved(cases, warmup, cfg["repeats"], progress, desc=name)
    with torch.no_grad():
        from qifsim.energy import OpCounter

        with OpCounter(model) as counter:
            model(x)
    rates = [r.out_rate for r in counter.rows.values() if r.kind == "neuron"]

    best = {c: t["timings_ms"]["cpu"]["min"] for c, t in timings.items()}
    med = {c: t["timings_ms"]["cpu"]["median"] for c, t in timings.items()}
    wall = {c: t["timings_ms"]["total"]["median"] for c, t in timings.items()}
    ratios = _over_plain(best)
    wall_ratios = _over_plain(wall)
    return {
        "config": {**cfg, "input": list(cfg["input"])},
        "mean_firing_rate": sum(rates) / len(rates) if rates else None,
        "cases": timings,
        "skipped": skipped,
        "ratios": ratios,
        "median_ratios": _over_plain(med),
        "wall_ratios": wall_ratios,
    }


def memory(cfg: dict, batches: tuple[int, int], seed: int) -> dict[str, Any]:
    model, x = build("digits-net", cfg, seed)
    out: dict[str, Any] = {}
    for case in CASES:
        if case == "plain":
            continue
        factory = monitor_factory(case, model)
        if factory is None:
            continue
        sizes = []
        with torch.no_grad(), factory() as mon:
            for i in range(max(batches)):
                model(x)
                if i + 1 in batches:
                    sizes.append(retained_bytes(mon))
        out[case] = {
            f"after_{batches[0]}_batches_bytes": sizes[0],
            f"after_{batches[1]}_batches_bytes": sizes[1],
            "growth_bytes": sizes[1] - sizes[0],
            "constant": sizes[0] == sizes[1],
        }
    return out


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python benchmarks/energy.py",
        description="Inference time with and without qifsim's energy accounting (target "
        f"<= {TARGET}x), against spikingjelly's OutputMonitor and a store-everything "
        "monitor, and the memory each holds after N1 vs N2 batches.",
    )
    parser.add_argument("--repeats", type=int, default=None, help="timed repeats")
    parser.add_argument(
        "--threads", type=int, default=1, help="torch and numba threads (default: %(default)s)"
    )
    _common.add_run_args(parser, DEFAULT_OUT)
    args = parser.parse_args(argv)
    if args.repeats is not None and args.repeats < 1:
        parser.error("--repeats must be >= 1")
    if args.threads < 1:
        parser.error("--threads must be >= 1")
    return args


def main(argv=None) -> int:
    args = parse_args(argv)
    torch.set_num_threads(args.threads)
    try:  # the fused neuron kernels run on numba's thread pool
        import numba

        numba.set_num_threads(min(args.threads, numba.config.NUMBA_NUM_THREADS))
    except ImportError:  # pragma: no cover - numba is a dependency
        pass
    preset = QUICK if args.quick else FULL
    models = {}
    for name, cfg in preset["models"].items():
        cfg = {**cfg, "repeats": args.repeats or cfg["repeats"]}
        models[name] = time_model(name, cfg, preset["warmup"], args.seed, not args.no_progress)
    mem = memory(preset["models"]["digits-net"], preset["memory_batches"], args.seed)
    targets = {
        f"{name}_counter_over_plain": _common.target_check(
            m["ratios"]["qifsim_counter_over_plain"], TARGET
        )
        for name, m in models.items()
    }
    result = {
        "config": {
            "quick": args.quick,
            "memory_batches": list(preset["memory_batches"]),
            **_common.environment(["spikingjelly", "norse"]),
        },
        "git": _common.git_state(_HERE.parent),
        "models": models,
        "memory": mem,
        "targets": targets,
    }
    _common.write_json_atomic(args.out, result)
    rows = []
    for name, m in models.items():
        for case, t in m["cases"].items():
            key = f"{case}_over_plain"
            rows.append([f"{name} {case}", _common.fmt(t["timings_ms"]["cpu"]["min"], ".2f"),
                         _common.fmt(m["ratios"].get(key), ".3f"),
                         _common.fmt(t["timings_ms"]["total"]["median"], ".2f"),
                         _common.fmt(m["wall_ratios"].get(key), ".3f")])  # fmt: skip
    headers = ["model / case", "min CPU ms", "x plain", "median wall ms", "x plain (wall)"]
    print(_common.format_table(headers, rows))
    n1, n2 = preset["memory_batches"]
    print()
    print(
        _common.format_table(
            ["monitor (digits-net)", f"bytes after {n1}", f"bytes after {n2}", "constant"],
            [
                [c, v[f"after_{n1}_batches_bytes"], v[f"after_{n2}_batches_bytes"], v["constant"]]
                for c, v in mem.items()
            ],
        )
    )
    for key, check in targets.items():
        print(f"target {key} <= {TARGET}: {_common.fmt(check['value'], '.3f')} met={check['met']}")
    print(f"written: {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
