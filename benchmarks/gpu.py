"""Benchmark: qifsim on a GPU: the Triton neuron kernels, training steps, the quadratic synapse.

One run on one GPU, with the same inputs for every implementation. It takes
a few minutes on an H100 and stays well under 8. Three sections:

layer
    Forward + backward (loss ``spikes.sum()``) of one spiking layer on
    ``x = randn * 0.5 + 0.3``, at ``[T=16, B=32, 64, 32, 32]`` and
    ``[T=32, B=64, 65536]``, in float32 and bfloat16:

    * ``qifsim_qif``, ``qifsim_lif``: ``QIF()`` / ``LIF()``. Backend ``"auto"``
      is the Triton kernels on CUDA, numba on CPU.
    * ``qifsim_qif_torch_ops``, ``qifsim_lif_torch_ops``: ``backend="torch"``,
      the torch-ops kernel (a Python loop of elementwise ops).
    * ``norse_lif``: ``norse.torch.LIF()``, norse's defaults.
    * ``snntorch_leaky``: ``snntorch.Leaky``, stepped in a Python loop over T.
    * ``spikingjelly_lif``, ``spikingjelly_qif``: multi-step ``LIFNode`` /
      ``QIFNode``, on spikingjelly's own CUDA choice. That is its native
      kernels when spikingjelly was built from source with them, else its
      Triton kernels; ``SJ_LIF_CUDA_IMPLEMENTATION`` /
      ``SJ_QIF_CUDA_IMPLEMENTATION`` override it. The custom ops each
      implementation ran are recorded, which shows what was used.

    Measured: median (and min) wall time of the timed repeats, synchronised
    with the GPU; peak CUDA memory of one step above what was allocated
    before it (``x`` itself excluded, its gradient included); firing rate.

training
    One training step (forward, cross-entropy on the time-averaged readout,
    backward, Adam step) of VGGSNN (2x48x48, T=10, batch 32) and ResNet-19
    (3x32x32, T=2, batch 64), with QIF and with LIF. Compared: qifsim's model,
    and the same model with every qifsim neuron replaced by the spikingjelly
    node. Convs, tdBN, pooling and readout are the very same modules.

    * ``LIFNode(tau=1/(1-beta), decay_input=False, v_reset=0)`` is qifsim's LIF.
    * ``QIFNode(tau=2, a0=2a)`` is ``H = V + X/2 + a (V - u_rest)(V - u_c)``:
      qifsim's QIF in its Euler form on half the input (spikingjelly requires
      ``tau > 1``). qifsim's model keeps its default paper form, at the same
      cost per update.

quadratic
    ``benchmarks/quadratic.py`` on the same device in float32 and bfloat16
    (fused vs einsum vs the outer product: time and peak memory). Its JSON is
    folded in.

Targets (issue 11; reported, met or not), at every shape and dtype:

* qifsim QIF (Triton) forward+backward <= 1.0x spikingjelly's LIF;
* it is >= 5x faster than the torch-ops kernel;
* its peak memory is <= spikingjelly LIF's;
* qifsim's QIF/LIF training-step time is <= 1.1 (the QIF paper: 1.04-1.39x).

``--quick`` shrinks every size, so the script runs anywhere (the CPU smoke
test). On CPU, ``qifsim_qif`` runs numba, or Triton's interpreter with
``--backend triton`` and ``TRITON_INTERPRET=1``. The JSON records which
backend ran.

Results go to ``benchmarks/results/gpu.json`` (atomically). Run from the
repository root: ``python benchmarks/gpu.py``. On a device machine without
the peers installed, see ``benchmarks/gpu_device.sh``.
"""

from __future__ import annotations

import argparse
import copy
import gc
import json
import os
import subprocess
import sys
import tempfile
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
from torch import nn

_HERE = Path(__file__).resolve().parent
if str(_HERE) not in sys.path:
    sys.path.insert(0, str(_HERE))

import _common  # noqa: E402
import neurons as neuron_bench  # noqa: E402
import training as training_bench  # noqa: E402

DEFAULT_OUT = _HERE / "results" / "gpu.json"
PEER_PACKAGES = ("triton", "norse", "snntorch", "spikingjelly")
SJ_ENV = ("SJ_LIF_CUDA_IMPLEMENTATION", "SJ_QIF_CUDA_IMPLEMENTATION")

FULL: dict[str, Any] = {
    "layer_shapes": {"conv": (16, 32, 64, 32, 32), "flat": (32, 64, 65536)},
    "dtypes": ("float32", "bfloat16"),
    "train_models": {
        "vggsnn": {"input": (2, 48, 48), "T": 10, "batch": 32},
        "resnet19": {"input": (3, 32, 32), "T": 2, "batch": 64},
    },
    "repeats": 20,
    "warmup": 3,
    "train_repeats": 10,
    "quadratic_args": [],
}
QUICK: dict[str, Any] = {
    "layer_shapes": {"conv": (3, 2, 4, 5, 5), "flat": (4, 2, 37)},
    "dtypes": ("float32", "bfloat16"),
    "train_models": {
        "vggsnn": {"input": (2, 16, 16), "T": 2, "batch": 2},
        "resnet19": {"input": (3, 8, 8), "T": 1, "batch": 2},
    },
    "repeats": 1,
    "warmup": 1,
    "train_repeats": 1,
    "quadratic_args": ["--quick"],
}
TARGETS = {
    "qif_over_spikingjelly_lif_time": 1.0,
    "torch_ops_over_qif_time": 5.0,  # at least: a speed-up
    "qif_over_spikingjelly_lif_peak_memory": 1.0,
    "qif_over_lif_training_step": 1.1,
}


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


# -- layer section -------------------------------------------------------------------------


def _qifsim_builder(cls_name: str, backend: str) -> Callable[[], neuron_bench.Runner]:
    def build() -> neuron_bench.Runner:
        from qifsim import neurons

        cls = getattr(neurons, cls_name)
        return neuron_bench._qifsim_runner(
            lambda: cls(backend=backend), {"impl": "fused", "backend": backend}
        )

    return build


def layer_implementations(qifsim_backend: str) -> dict[str, neuron_bench.Impl]:
    """qifsim at ``qifsim_backend`` and on its torch-ops kernel, plus the peers of neurons.py."""
    impls = [
        neuron_bench.Impl(
            "qifsim_qif", "qifsim QIF", "qifsim", _qifsim_builder("QIF", qifsim_backend), False
        ),
        neuron_bench.Impl(
            "qifsim_qif_torch_ops",
            "qifsim QIF (torch ops)",
            "qifsim",
            _qifsim_builder("QIF", "torch"),
            False,
        ),
        neuron_bench.Impl(
            "qifsim_lif", "qifsim LIF", "qifsim", _qifsim_builder("LIF", qifsim_backend), False
        ),
        neuron_bench.Impl(
            "qifsim_lif_torch_ops",
            "qifsim LIF (torch ops)",
            "qifsim",
            _qifsim_builder("LIF", "torch"),
            False,
        ),
    ]
    peers = ("norse_lif", "snntorch_leaky", "spikingjelly_lif", "spikingjelly_qif")
    impls += [neuron_bench.IMPLEMENTATIONS[name] for name in peers]
    return {impl.name: impl for impl in impls}


def make_layer_input(shape, dtype: torch.dtype, device: torch.device, seed: int) -> torch.Tensor:
    gen = torch.Generator().manual_seed(seed)
    x = torch.randn(*shape, generator=gen) * 0.5 + 0.3
    return x.to(device, dtype).requires_grad_(True)


def layer_step(runner: neuron_bench.Runner, x: torch.Tensor, device: torch.device):
    """One timed forward + backward of ``spikes.sum()`` (reset and grad clearing untimed)."""
    runner.reset()
    x.grad = None
    sync(device)
    clock = _common.PhaseClock()
    spikes = runner.forward(x)
    sync(device)
    clock.lap("forward")
    spikes.sum().backward()
    sync(device)
    clock.lap("backward")
    return clock.done()


def _firing_rate(runner: neuron_bench.Runner, x: torch.Tensor) -> float:
    runner.reset()
    with torch.no_grad():
        spikes = runner.forward(x.detach())
        return float(spikes.float().mean().item())


def bench_layer_group(
    impls: dict[str, neuron_bench.Impl],
    shape,
    dtype: torch.dtype,
    device: torch.device,
    args: argparse.Namespace,
) -> dict[str, Any]:
    """Every implementation at one shape and dtype, timed round-robin."""
    x = make_layer_input(shape, dtype, device, args.seed)
    entries: dict[str, dict[str, Any]] = {}
    runners: dict[str, neuron_bench.Runner] = {}
    for name, impl in impls.items():
        entry: dict[str, Any] = {"label": impl.label, "library": impl.library}
        entries[name] = entry
        try:
            runner = impl.build()
            if runner.module is not None:
                runner.module.to(device)
            layer_step(runner, x, device)  # fails here, not mid-timing, if it cannot run
            entry.update(
                status="ok",
                details=runner.details,
                dispatch=neuron_bench.dispatch_info(runner, x),
                firing_rate=_firing_rate(runner, x),
                peak_bytes=_common.peak_bytes(
                    lambda r=runner, x=x: layer_step(r, x, device), device
                ),
            )
            runners[name] = runner
        except neuron_bench.PeerUnavailable as err:
            entry.update(status="skipped", note=str(err))
        except Exception as err:  # noqa: BLE001 - a failing implementation is reported, not fatal
            entry.update(status="error", note=repr(err)[:500])
        gc.collect()
    timed = _common.run_interleaved(
        {name: (lambda r=r, x=x: layer_step(r, x, device)) for name, r in runners.items()},
        args.warmup,
        args.repeats,
        progress=not args.no_progress,
        desc=f"layer {'x'.join(map(str, shape))} {str(dtype).removeprefix('torch.')}",
    )
    for name, measured in timed.items():
        entries[name].update(measured)
    del x, runners
    gc.collect()
    if device.type == "cuda":
        torch.cuda.empty_cache()
    return entries


def _ms(entry: dict[str, Any] | None, stat: str = "median") -> float | None:
    if not entry or entry.get("status") != "ok":
        return None
    return entry["timings_ms"]["total"][stat]


def _peak(entry: dict[str, Any] | None) -> int | None:
    return entry.get("peak_bytes") if entry and entry.get("status") == "ok" else None


def layer_ratios(group: dict[str, dict[str, Any]]) -> dict[str, float | None]:
    qif = _ms(group.get("qifsim_qif"))
    return {
        "qif_over_spikingjelly_lif_time": _common.ratio(qif, _ms(group.get("spikingjelly_lif"))),
        "qif_over_spikingjelly_qif_time": _common.ratio(qif, _ms(group.get("spikingjelly_qif"))),
        "torch_ops_over_qif_time": _common.ratio(_ms(group.get("qifsim_qif_torch_ops")), qif),
        "qif_over_norse_lif_time": _common.ratio(qif, _ms(group.get("norse_lif"))),
        "qif_over_snntorch_leaky_time": _common.ratio(qif, _ms(group.get("snntorch_leaky"))),
        "qif_over_lif_time": _common.ratio(qif, _ms(group.get("qifsim_lif"))),
        "lif_over_spikingjelly_lif_time": _common.ratio(
            _ms(group.get("qifsim_lif")), _ms(group.get("spikingjelly_lif"))
        ),
        "qif_over_spikingjelly_lif_peak_memory": _common.ratio(
            _peak(group.get("qifsim_qif")), _peak(group.get("spikingjelly_lif"))
        ),
        "qif_over_torch_ops_peak_memory": _common.ratio(
            _peak(group.get("qifsim_qif")), _peak(group.get("qifsim_qif_torch_ops"))
        ),
    }


# -- training section ----------------------------------------------------------------------


class SpikingJellyNeuron(nn.Module):
    """A spikingjelly multi-step node behind qifsim's neuron interface.

    ``forward(x [T, B, ...], state=None) -> (spikes [T, B, ...], None)``; the node's
    own state is cleared by ``spikingjelly.activation_based.functional.reset_net``.
    """

    def __init__(self, node: nn.Module) -> None:
        super().__init__()
        self.node = node

    def forward(self, input: torch.Tensor, state=None):  # noqa: A002 - norse's signature
        return self.node(input), None


def spikingjelly_node(module: nn.Module) -> nn.Module:
    """The spikingjelly node with the dynamics of a qifsim QIF/LIF module (see the docstring)."""
    from qifsim.neurons import LIFParameters

    _, _, neuron, surrogate = training_bench._spikingjelly()
    p = module.current_parameters()
    if isinstance(p, LIFParameters):
        return neuron.LIFNode(
            tau=1.0 / (1.0 - float(p.beta)),
            decay_input=False,
            v_threshold=float(p.u_th),
            v_reset=0.0,
            surrogate_function=surrogate.Rect(alpha=float(p.alpha)),
            step_mode="m",
        )
    return neuron.QIFNode(
        tau=2.0,
        v_c=float(p.u_c),
        a0=2.0 * float(p.a),
        v_threshold=float(p.u_th),
        v_rest=float(p.u_rest),
        v_reset=float(p.u_rest),
        surrogate_function=surrogate.Rect(alpha=1.0),
        step_mode="m",
    )


def with_spikingjelly_neurons(model: nn.Module) -> tuple[nn.Module, Callable[[], None]]:
    """A copy of a qifsim model whose every QIF/LIF is the spikingjelly node; and its reset."""
    functional, _, _, _ = training_bench._spikingjelly()
    sj = copy.deepcopy(model)
    for name, module in list(sj.spiking_layers().items()):
        parent_name, _, child = name.rpartition(".")
        parent = sj.get_submodule(parent_name) if parent_name else sj
        setattr(parent, child, SpikingJellyNeuron(spikingjelly_node(module)))
    return sj, lambda: functional.reset_net(sj)


def training_runners(
    model_name: str, cfg: dict[str, Any], seed: int, device: torch.device
) -> tuple[dict[str, training_bench.Runner], dict[str, dict[str, Any]]]:
    from qifsim.models import build_model

    c, h, w = cfg["input"]
    runners: dict[str, training_bench.Runner] = {}
    entries: dict[str, dict[str, Any]] = {}
    for neuron in ("qif", "lif"):
        torch.manual_seed(seed)
        model = build_model(model_name, neuron=neuron, in_channels=c, input_size=(h, w))
        models = {f"qifsim_{neuron}": (model, lambda: None)}
        try:
            models[f"spikingjelly_{neuron}"] = with_spikingjelly_neurons(model)
        except training_bench.PeerUnavailable as err:
            entries[f"spikingjelly_{neuron}"] = {"status": "skipped", "note": str(err)}
        for name, (m, reset) in models.items():
            m = m.to(device)
            runners[name] = training_bench.Runner(
                model=m,
                reset=reset,
                optimizer=torch.optim.Adam(m.parameters(), lr=1e-3),
                details={"parameters": sum(p.numel() for p in m.parameters())},
            )
    return runners, entries


def bench_training_model(
    model_name: str, cfg: dict[str, Any], device: torch.device, args: argparse.Namespace
) -> dict[str, Any]:
    runners, entries = training_runners(model_name, cfg, args.seed, device)
    x, y = training_bench.make_batch(cfg, args.seed, device)
    ok: dict[str, training_bench.Runner] = {}
    for name, r in runners.items():
        try:
            training_bench.train_step(r, x, y, device)
            entries[name] = {
                "status": "ok",
                "details": r.details,
                "peak_bytes": _common.peak_bytes(
                    lambda r=r, x=x, y=y: training_bench.train_step(r, x, y, device), device
                ),
            }
            ok[name] = r
        except Exception as err:  # noqa: BLE001 - reported, not fatal
            entries[name] = {"status": "error", "note": repr(err)[:500]}
    timed = _common.run_interleaved(
        {
            name: (lambda r=r, x=x, y=y: training_bench.train_step(r, x, y, device))
            for name, r in ok.items()
        },
        args.warmup,
        args.train_repeats,
        progress=not args.no_progress,
        desc=f"train {model_name}",
    )
    for name, measured in timed.items():
        entries[name].update(measured)

    def ms(name):
        return _ms(entries.get(name))

    ratios = {
        "qif_over_lif_training_step": _common.ratio(ms("qifsim_qif"), ms("qifsim_lif")),
        "qif_over_spikingjelly_qif_training_step": _common.ratio(
            ms("qifsim_qif"), ms("spikingjelly_qif")
        ),
        "lif_over_spikingjelly_lif_training_step": _common.ratio(
            ms("qifsim_lif"), ms("spikingjelly_lif")
        ),
        "spikingjelly_qif_over_lif_training_step": _common.ratio(
            ms("spikingjelly_qif"), ms("spikingjelly_lif")
        ),
    }
    del runners, ok, x, y
    gc.collect()
    if device.type == "cuda":
        torch.cuda.empty_cache()
    return {
        "config": {k: list(v) if isinstance(v, tuple) else v for k, v in cfg.items()},
        "implementations": entries,
        "ratios": ratios,
    }


# -- quadratic section ---------------------------------------------------------------------


def bench_quadratic(device: torch.device, dtypes, args: argparse.Namespace) -> dict[str, Any]:
    """``benchmarks/quadratic.py`` per dtype in a child process; its JSON is folded in."""
    out: dict[str, Any] = {}
    for dtype in dtypes:
        if device.type != "cuda" and dtype != "float32":
            out[dtype] = {"status": "skipped", "note": "half dtypes run on CUDA only"}
            continue
        with tempfile.TemporaryDirectory() as tmp:
            path = Path(tmp) / "quadratic.json"
            cmd = [
                sys.executable,
                str(_HERE / "quadratic.py"),
                "--device",
                str(device),
                "--dtype",
                dtype,
                "--out",
                str(path),
                "--no-progress",
                *args.quadratic_args,
            ]
            proc = subprocess.run(cmd, capture_output=True, text=True, timeout=args.child_timeout)
            if proc.returncode != 0:
                out[dtype] = {"status": "error", "note": (proc.stdout + proc.stderr)[-2000:]}
                continue
            out[dtype] = {"status": "ok", "command": cmd[1:], **json.loads(path.read_text())}
    return out


# -- report --------------------------------------------------------------------------------


def collect_targets(layer: dict[str, Any], training: dict[str, Any]) -> dict[str, Any]:
    """Each target at every shape/dtype (layer) or model (training): value and met."""
    targets: dict[str, Any] = {}
    for key, group in layer.items():
        r = group["ratios"]
        targets[f"layer {key}"] = {
            "qif_over_spikingjelly_lif_time": _common.target_check(
                r["qif_over_spikingjelly_lif_time"], TARGETS["qif_over_spikingjelly_lif_time"]
            ),
            "torch_ops_over_qif_time": _common.target_check(
                r["torch_ops_over_qif_time"], TARGETS["torch_ops_over_qif_time"], op=">="
            ),
            "qif_over_spikingjelly_lif_peak_memory": _common.target_check(
                r["qif_over_spikingjelly_lif_peak_memory"],
                TARGETS["qif_over_spikingjelly_lif_peak_memory"],
            ),
        }
    for model, result in training.items():
        targets[f"training {model}"] = {
            "qif_over_lif_training_step": _common.target_check(
                result["ratios"]["qif_over_lif_training_step"],
                TARGETS["qif_over_lif_training_step"],
            )
        }
    return targets


def print_report(layer: dict, training: dict, quadratic: dict, targets: dict) -> None:
    for key, group in layer.items():
        print(f"\nlayer {key} (forward+backward)")
        qif = _ms(group["implementations"].get("qifsim_qif"))
        rows = []
        for name, e in group["implementations"].items():
            if e.get("status") != "ok":
                note = f"{e['status']}: {e.get('note', '')}"[:60]
                rows.append([name, None, None, None, None, note])
                continue
            ops = ",".join(e["dispatch"]["custom_ops"])[:40]
            rows.append(
                [
                    name,
                    _common.fmt(_ms(e), ".2f"),
                    _common.fmt(_common.ratio(_ms(e), qif), ".2f"),
                    _common.fmt(e["peak_bytes"] / 2**20, ".0f"),
                    _common.fmt(e["firing_rate"], ".3f"),
                    ops,
                ]
            )
        headers = ["implementation", "median ms", "/ qifsim QIF", "peak MiB", "rate", "custom ops"]
        print(_common.format_table(headers, rows))
    for model, result in training.items():
        print(f"\ntraining step {model}: " + ", ".join(
            f"{k} {_common.fmt(v, '.3f')}" for k, v in result["ratios"].items()
        ))  # fmt: skip
    for dtype, q in quadratic.items():
        if q.get("status") == "ok":
            impls = q["implementations"]
            times = ", ".join(
                f"{name} {impls[name]['timings_ms']['total']['median']:.2f} ms"
                for name in ("fused", "einsum", "outer", "lowrank_r8")
            )
            print(
                f"\nquadratic {dtype}: {times}; peak MiB fused / outer "
                f"{impls['fused']['peak_bytes'] / 2**20:.1f} / "
                f"{impls['outer']['peak_bytes'] / 2**20:.1f}"
            )
        else:
            print(f"\nquadratic {dtype}: {q.get('status')}: {q.get('note', '')[:200]}")
    print("\ntargets:")
    for scope, checks in targets.items():
        for name, check in checks.items():
            print(f"  {scope:28} {name:42} {check}")


# -- CLI -------------------------------------------------------------------------------


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python benchmarks/gpu.py",
        description=(
            "qifsim on a GPU: forward+backward time and peak memory of one spiking layer "
            "(qifsim QIF/LIF Triton and torch-ops kernels vs norse, snntorch, spikingjelly), "
            "training steps of VGGSNN and ResNet-19 (qifsim vs the same model on spikingjelly "
            "nodes), and the quadratic synapse (fused vs einsum vs outer product). One run, "
            "same inputs; JSON written atomically."
        ),
    )
    parser.add_argument(
        "--device", default=None, help="cuda (default when available) or cpu (--quick smoke)"
    )
    parser.add_argument(
        "--backend",
        default="auto",
        choices=["auto", "triton"],
        help="qifsim's backend for the qifsim_qif/qifsim_lif rows (default: %(default)s, "
        "i.e. Triton on CUDA; 'triton' on CPU needs TRITON_INTERPRET=1)",
    )
    parser.add_argument(
        "--sections",
        default="layer,training,quadratic",
        help="comma-separated subset of layer,training,quadratic (default: %(default)s)",
    )
    parser.add_argument(
        "--train-models",
        default=None,
        help="comma-separated subset of the training models (default: all of "
        f"{','.join(FULL['train_models'])})",
    )
    parser.add_argument(
        "--child-timeout",
        type=float,
        default=300.0,
        help="seconds allowed to each quadratic.py child run (default: %(default)s)",
    )
    _common.add_timing_args(parser, QUICK, FULL)
    _common.add_run_args(parser, DEFAULT_OUT)
    args = parser.parse_args(argv)
    args.sections = [s.strip() for s in args.sections.split(",") if s.strip()]
    unknown = set(args.sections) - {"layer", "training", "quadratic"}
    if unknown or not args.sections:
        parser.error(f"unknown --sections {sorted(unknown)}; choose from layer,training,quadratic")
    if args.train_models is not None:
        preset = (QUICK if args.quick else FULL)["train_models"]
        chosen = [m.strip() for m in args.train_models.split(",") if m.strip()]
        if not chosen or set(chosen) - set(preset):
            parser.error(f"--train-models takes names from {','.join(preset)}, got {chosen}")
        args.train_models = {m: preset[m] for m in chosen}
    _common.fill_preset(args, QUICK, FULL)
    if args.repeats < 1 or args.warmup < 1:
        parser.error("--repeats and --warmup must be >= 1")
    if args.device is None:
        args.device = "cuda" if torch.cuda.is_available() else "cpu"
    if args.device.startswith("cuda") and not torch.cuda.is_available():
        parser.error("--device cuda requested but torch.cuda.is_available() is False")
    if args.device == "cpu" and not args.quick:
        parser.error(
            "the full run needs a GPU (--device cuda); on CPU use --quick (a smoke run), and "
            "benchmarks/neurons.py and training.py for CPU timings"
        )
    return args


def main(argv=None) -> int:
    args = parse_args(argv)
    warnings.filterwarnings("ignore", message=".*torch.jit.script.*", category=FutureWarning)
    device = torch.device(args.device)
    from qifsim.neurons.fused import resolve_backend

    probe = torch.zeros(1, device=device)
    result: dict[str, Any] = {
        "benchmark": "gpu",
        "device": torch.cuda.get_device_name(device) if device.type == "cuda" else "cpu",
        "qifsim_backend": {
            "requested": args.backend,
            # the state is float32 for every input dtype, so one kernel runs them all
            "resolved": resolve_backend(args.backend, probe, torch.float32),
        },
        "spikingjelly_env": {k: os.environ.get(k) for k in SJ_ENV},
        "environment": _common.environment(PEER_PACKAGES),
        "git": _common.git_state(_HERE.parent),
        "quick": args.quick,
        "seed": args.seed,
        "repeats": args.repeats,
        "warmup": args.warmup,
        "targets_definition": TARGETS,
    }
    layer: dict[str, Any] = {}
    if "layer" in args.sections:
        impls = layer_implementations(args.backend)
        for shape_name, shape in args.layer_shapes.items():
            for dtype_name in args.dtypes:
                dtype = getattr(torch, dtype_name)
                group = bench_layer_group(impls, shape, dtype, device, args)
                layer[f"{shape_name} {dtype_name}"] = {
                    "shape": list(shape),
                    "dtype": dtype_name,
                    "implementations": group,
                    "ratios": layer_ratios(group),
                }
    training: dict[str, Any] = {}
    if "training" in args.sections:
        for model_name, cfg in args.train_models.items():
            training[model_name] = bench_training_model(model_name, cfg, device, args)
    quadratic = bench_quadratic(device, args.dtypes, args) if "quadratic" in args.sections else {}
    targets = collect_targets(layer, training)
    result.update(layer=layer, training=training, quadratic=quadratic, targets=targets)
    print_report(layer, training, quadratic, targets)
    path = _common.write_json_atomic(args.out, result)
    print(f"\nwrote {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
