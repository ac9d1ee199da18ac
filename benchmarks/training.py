"""Benchmark: time per training step and per inference step of whole spiking models.

The QIF paper's Table 2 analogue: QIF vs LIF on the same model and batch, plus
qifsim's LIF model against equivalent snntorch and spikingjelly models. All in
one process, on the same input, timed round-robin after untimed warm-up.

Models (``qifsim.models.build_model``, no dropout):

  digits-net   2x34x34, T=10, batch 64   (--quick: T=2, batch 4)
  vggsnn       2x48x48, T=10, batch 8    (--quick: 2x16x16, T=2, batch 1)

Implementations per model (``--only`` takes these names):

  qifsim_qif         build_model(name, neuron="qif"): MergeTime convs, tdBN, fused QIF op
  qifsim_lif         build_model(name, neuron="lif"): the same with the fused LIF op
  snntorch_lif       the same layers as a per-time-step network: a Python loop over T
                     calling Conv2d/BatchNorm/pooling and snntorch.Leaky(beta=0.25,
                     threshold=0.5, reset_mechanism="zero") at every step
  spikingjelly_lif   the same layers in spikingjelly's multi-step style:
                     layer.SeqToANNContainer(conv, BatchNorm) and
                     neuron.LIFNode(tau=1/(1-0.25), decay_input=False, v_threshold=0.5,
                     v_reset=0, surrogate Rect(alpha=1), step_mode="m")

The peer models are translated from qifsim's LIF model layer by layer and
take its weights (tdBN becomes BatchNorm with weight ``eta * u_th * gamma``),
so in eval mode all three compute the same logits; the benchmark checks that
(``equivalence``: max |logit difference|). In training the peers' BatchNorm
differs slightly: snntorch's per-step BatchNorm normalises each time step on
its own, tdBN (and spikingjelly's SeqToANNContainer) over all T together.
Surrogates: qifsim rect (alpha 1), spikingjelly Rect(alpha=1), snntorch a rect
window written with snntorch.surrogate.custom_surrogate.

One training step = forward, cross-entropy on the time-averaged readout,
backward and an Adam step (``zero_grad`` and the peers' state reset are
untimed). One inference step = forward under ``torch.no_grad()`` in eval mode.

Results go to ``benchmarks/results/training.json`` (written atomically).
Run from the repository root: ``python benchmarks/training.py [--quick]``.
"""

from __future__ import annotations

import argparse
import copy
import gc
import sys
import warnings
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

_HERE = Path(__file__).resolve().parent
if str(_HERE) not in sys.path:
    sys.path.insert(0, str(_HERE))

import _common  # noqa: E402

DEFAULT_OUT = _HERE / "results" / "training.json"
PEER_PACKAGES = ("snntorch", "spikingjelly")
IMPL_NAMES = ("qifsim_qif", "qifsim_lif", "snntorch_lif", "spikingjelly_lif")
MODES = ("train", "infer")
CONTENTION_WARN = 0.05

#: The QIF paper's QIF/LIF inference-time overhead on a GPU (Section 5.2).
PAPER_QIF_OVER_LIF_INFER = (1.04, 1.39)

# Per-model "repeats" (timed rounds) win over the preset's; --repeats wins over both.
FULL = {
    "models": {
        "digits-net": {"input": (2, 34, 34), "T": 10, "batch": 64},
        "vggsnn": {"input": (2, 48, 48), "T": 10, "batch": 8, "repeats": 3},
    },
    "repeats": 5,
    "warmup": 1,
}
QUICK = {
    "models": {
        "digits-net": {"input": (2, 34, 34), "T": 2, "batch": 4},
        "vggsnn": {"input": (2, 16, 16), "T": 2, "batch": 1},
    },
    "repeats": 1,
    "warmup": 1,
}
LIF_BETA, LIF_U_TH, RECT_ALPHA = 0.25, 0.5, 1.0


class PeerUnavailable(Exception):
    """A peer library is missing or a layer has no translation."""


# -- a model as a list of layer specs -------------------------------------------------


@dataclass
class Spec:
    """One layer of a sequential spiking model, library-neutral.

    ``kind``: ``conv`` / ``fc`` (synapse + BatchNorm + LIF, with the source
    modules in ``synapse`` and ``bn``), ``pool`` (a per-frame module), ``gap``,
    ``flatten``, ``dropout`` (``p``), ``readout`` (``synapse`` linear, ``voting``).
    """

    kind: str
    synapse: nn.Module | None = None
    bn: nn.Module | None = None
    module: nn.Module | None = None
    p: float = 0.0
    voting: int = 1
    extra: dict[str, Any] = field(default_factory=dict)


def model_specs(model: nn.Module) -> list[Spec]:
    """Translate a qifsim ``SpikingModel`` (features, classifier, readout) into specs."""
    from qifsim.layers import MergeTime
    from qifsim.models.blocks import (
        ConvSpike,
        GlobalAvgPool,
        LinearSpike,
        Readout,
        TimeFlatten,
        TimeSharedDropout,
    )

    specs: list[Spec] = []
    for name, layer in [*model.features.named_children(), *model.classifier.named_children()]:
        if isinstance(layer, ConvSpike):
            conv = layer.conv.module if isinstance(layer.conv, MergeTime) else layer.conv
            if not isinstance(conv, nn.Conv2d):
                raise PeerUnavailable(f"{name}: synapse {type(conv).__name__} has no peer")
            specs.append(Spec("conv", synapse=conv, bn=layer.bn))
        elif isinstance(layer, LinearSpike):
            specs.append(Spec("fc", synapse=layer.fc, bn=layer.bn))
        elif isinstance(layer, MergeTime):
            specs.append(Spec("pool", module=layer.module))
        elif isinstance(layer, GlobalAvgPool):
            specs.append(Spec("gap"))
        elif isinstance(layer, TimeFlatten):
            specs.append(Spec("flatten"))
        elif isinstance(layer, TimeSharedDropout):
            specs.append(Spec("dropout", p=layer.p))
        else:
            raise PeerUnavailable(f"{name}: {type(layer).__name__} has no peer translation")
    readout = model.readout
    if not isinstance(readout, Readout):
        raise PeerUnavailable(f"readout {type(readout).__name__} has no peer translation")
    specs.append(Spec("readout", synapse=readout.fc, voting=readout.voting))
    for spec in specs:
        if spec.kind == "dropout" and spec.p > 0:
            raise PeerUnavailable("peers are built without dropout (build the model with 0)")
    return specs


def plain_bn(td: nn.Module) -> nn.Module:
    """A torch BatchNorm computing what the tdBN ``td`` computes (weights folded in)."""
    cls = nn.BatchNorm2d if type(td).__name__ == "TDBatchNorm2d" else nn.BatchNorm1d
    bn = cls(td.num_features, eps=td.eps, momentum=td.momentum)
    with torch.no_grad():
        bn.weight.copy_(td.scale().detach())
        bn.bias.copy_(td.bias.detach())
        bn.running_mean.copy_(td.running_mean)
        bn.running_var.copy_(td.running_var)
    return bn


# -- spikingjelly ----------------------------------------------------------------------


def _spikingjelly():
    try:
        from spikingjelly.activation_based import functional, layer, neuron, surrogate
    except Exception as err:  # noqa: BLE001 - any import failure means "peer unavailable"
        raise PeerUnavailable(f"spikingjelly not importable: {err!r}") from err
    return functional, layer, neuron, surrogate


class SJNet(nn.Module):
    """spikingjelly multi-step network: ``[T, B, C, H, W] -> [B, classes]``."""

    def __init__(self, specs: list[Spec]) -> None:
        super().__init__()
        functional, layer, neuron, surrogate = _spikingjelly()
        self._functional = functional
        seq: list[nn.Module] = []
        for s in specs:
            if s.kind in ("conv", "fc"):
                seq.append(layer.SeqToANNContainer(copy.deepcopy(s.synapse), plain_bn(s.bn)))
                seq.append(
                    neuron.LIFNode(
                        tau=1.0 / (1.0 - LIF_BETA),
                        decay_input=False,
                        v_threshold=LIF_U_TH,
                        v_reset=0.0,
                        surrogate_function=surrogate.Rect(alpha=RECT_ALPHA),
                        step_mode="m",
                    )
                )
            elif s.kind == "pool":
                seq.append(layer.SeqToANNContainer(copy.deepcopy(s.module)))
            elif s.kind == "gap":
                seq.append(layer.SeqToANNContainer(nn.AdaptiveAvgPool2d(1), nn.Flatten(1)))
            elif s.kind == "flatten":
                seq.append(layer.SeqToANNContainer(nn.Flatten(1)))
            elif s.kind == "readout":
                seq.append(layer.SeqToANNContainer(copy.deepcopy(s.synapse)))
                self.voting = s.voting
        self.net = nn.Sequential(*seq)

    def reset_state(self) -> None:
        self._functional.reset_net(self.net)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.net(x)
        if self.voting > 1:
            y = y.unflatten(-1, (-1, self.voting)).mean(-1)
        return y.mean(0)


# -- snntorch ------------------------------------------------------------------------


def _rect_window(input_: torch.Tensor, grad_input: torch.Tensor, spikes) -> torch.Tensor:
    """Rect surrogate (QIF paper Eq. 5): 1/alpha inside |u - u_th| < alpha/2."""
    return grad_input * (input_.abs() < RECT_ALPHA / 2).to(grad_input.dtype) / RECT_ALPHA


class SnnTorchNet(nn.Module):
    """snntorch network stepped over T in a Python loop: ``[T, B, ...] -> [B, classes]``."""

    def __init__(self, specs: list[Spec]) -> None:
        super().__init__()
        try:
            import snntorch
            from snntorch import surrogate
        except Exception as err:  # noqa: BLE001
            raise PeerUnavailable(f"snntorch not importable: {err!r}") from err
        spike_grad = surrogate.custom_surrogate(_rect_window)
        self.layers = nn.ModuleList()
        self.kinds: list[str] = []
        for s in specs:
            if s.kind in ("conv", "fc"):
                block = nn.ModuleDict(
                    {
                        "synapse": copy.deepcopy(s.synapse),
                        "bn": plain_bn(s.bn),
                        "lif": snntorch.Leaky(
                            beta=LIF_BETA,
                            threshold=LIF_U_TH,
                            spike_grad=spike_grad,
                            reset_mechanism="zero",
                        ),
                    }
                )
                self.layers.append(block)
            elif s.kind == "pool":
                self.layers.append(copy.deepcopy(s.module))
            elif s.kind == "gap":
                self.layers.append(nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Flatten(1)))
            elif s.kind == "flatten":
                self.layers.append(nn.Flatten(1))
            elif s.kind == "readout":
                self.layers.append(copy.deepcopy(s.synapse))
                self.voting = s.voting
            else:
                continue
            self.kinds.append(s.kind)

    def reset_state(self) -> None:
        """Nothing to do: the membranes start from ``reset_mem()`` in every forward."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        mems = {
            i: layer["lif"].reset_mem()
            for i, layer in enumerate(self.layers)
            if self.kinds[i] in ("conv", "fc")
        }
        total = None
        for x_t in x:
            h = x_t
            for i, layer in enumerate(self.layers):
                if i in mems:
                    h, mems[i] = layer["lif"](layer["bn"](layer["synapse"](h)), mems[i])
                else:
                    h = layer(h)
            total = h if total is None else total + h
        y = total / x.shape[0]
        if self.voting > 1:
            y = y.unflatten(-1, (-1, self.voting)).mean(-1)
        return y


# -- building and timing ----------------------------------------------------------------


@dataclass
class Runner:
    model: nn.Module
    reset: Callable[[], None]
    optimizer: torch.optim.Optimizer
    details: dict[str, Any]


def build_runners(
    model_name: str, cfg: dict[str, Any], only: list[str], seed: int, device: torch.device
) -> tuple[dict[str, Runner], dict[str, dict[str, Any]]]:
    """The implementations of one model; peers failing to build are noted, not fatal."""
    from qifsim.models import build_model

    c, h, w = cfg["input"]
    entries: dict[str, dict[str, Any]] = {}
    models: dict[str, nn.Module] = {}
    torch.manual_seed(seed)
    lif = build_model(model_name, neuron="lif", in_channels=c, input_size=(h, w))
    torch.manual_seed(seed)
    qif = build_model(model_name, neuron="qif", in_channels=c, input_size=(h, w))
    models["qifsim_qif"], models["qifsim_lif"] = qif, lif
    for name, cls in (("snntorch_lif", SnnTorchNet), ("spikingjelly_lif", SJNet)):
        if name not in only:
            continue
        try:
            models[name] = cls(model_specs(lif))
        except PeerUnavailable as err:
            entries[name] = {"status": "skipped", "note": str(err)}
        except Exception as err:  # noqa: BLE001 - a peer that fails is reported, not fatal
            entries[name] = {"status": "error", "note": f"could not build: {err!r}"}
    runners: dict[str, Runner] = {}
    for name in only:
        if name not in models:
            continue
        model = models[name].to(device)
        reset = getattr(model, "reset_state", lambda: None)
        runners[name] = Runner(
            model=model,
            reset=reset,
            optimizer=torch.optim.Adam(model.parameters(), lr=1e-3),
            details={
                "class": type(model).__name__,
                "parameters": sum(p.numel() for p in model.parameters()),
            },
        )
        entries[name] = {"status": "ok", "details": runners[name].details}
    return runners, entries


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def train_step(r: Runner, x: torch.Tensor, y: torch.Tensor, device) -> dict[str, float]:
    """Untimed reset and zero_grad, then timed forward, backward, optimizer step."""
    r.model.train()
    r.reset()
    r.optimizer.zero_grad(set_to_none=True)
    gc.collect()
    _sync(device)
    clock = _common.PhaseClock()
    loss = F.cross_entropy(r.model(x), y)
    _sync(device)
    clock.lap("forward")
    loss.backward()
    _sync(device)
    clock.lap("backward")
    r.optimizer.step()
    _sync(device)
    clock.lap("step")
    return clock.done()


def infer_step(r: Runner, x: torch.Tensor, device) -> dict[str, float]:
    """Untimed reset, then a timed no-grad forward in eval mode."""
    r.model.eval()
    r.reset()
    gc.collect()
    _sync(device)
    clock = _common.PhaseClock()
    with torch.no_grad():
        r.model(x)
    _sync(device)
    clock.lap("forward")
    return clock.done()


def equivalence(runners: dict[str, Runner], x: torch.Tensor) -> dict[str, Any]:
    """Max |logit difference| of the peers against qifsim's LIF model (eval, same weights).

    Measured before any training step changes the weights.
    """
    if "qifsim_lif" not in runners:
        return {}
    logits = {}
    with torch.no_grad():
        for name, r in runners.items():
            r.model.eval()
            r.reset()
            logits[name] = r.model(x).float()
    ref = logits["qifsim_lif"]
    out: dict[str, Any] = {"reference": "qifsim_lif", "logit_scale": float(ref.abs().max())}
    for name in ("snntorch_lif", "spikingjelly_lif"):
        if name in logits:
            out[f"{name}_max_abs_diff"] = float((logits[name] - ref).abs().max())
    return out


def make_batch(cfg: dict[str, Any], seed: int, device) -> tuple[torch.Tensor, torch.Tensor]:
    """Event-count-like input ``Poisson(0.3)`` ``[T, B, C, H, W]`` and random labels."""
    gen = torch.Generator().manual_seed(seed)
    shape = (cfg["T"], cfg["batch"], *cfg["input"])
    x = torch.poisson(torch.full(shape, 0.3), generator=gen)
    y = torch.randint(0, 10, (cfg["batch"],), generator=gen)
    return x.to(device), y.to(device)


def median_ms(entry: dict[str, Any], mode: str, stat: str = "median") -> float | None:
    return entry.get(mode, {}).get("timings_ms", {}).get("total", {}).get(stat)


def model_ratios(impls: dict[str, dict[str, Any]], stat: str = "median") -> dict[str, Any]:
    """QIF/LIF and qifsim-LIF/peer ratios of the train and infer step times."""
    out: dict[str, Any] = {}
    for mode in MODES:

        def t(name: str, mode: str = mode) -> float | None:
            return median_ms(impls.get(name, {}), mode, stat)

        out[f"qif_over_lif_{mode}"] = _common.ratio(t("qifsim_qif"), t("qifsim_lif"))
        out[f"qifsim_lif_over_snntorch_{mode}"] = _common.ratio(t("qifsim_lif"), t("snntorch_lif"))
        out[f"qifsim_lif_over_spikingjelly_{mode}"] = _common.ratio(
            t("qifsim_lif"), t("spikingjelly_lif")
        )
    return out


# -- CLI ---------------------------------------------------------------------------------


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python benchmarks/training.py",
        description=(
            "Time per training step (forward + backward + Adam step) and per inference step "
            "(no-grad forward) of whole models: qifsim QIF vs LIF on the same model and batch "
            "(the QIF paper's Table 2 analogue), and qifsim's LIF model vs equivalent "
            "snntorch and spikingjelly models. Prints a table and writes JSON (atomically)."
        ),
        epilog="implementations (for --only): " + ", ".join(IMPL_NAMES),
    )
    parser.add_argument(
        "--models",
        default=None,
        help=f"comma-separated models (default: {','.join(FULL['models'])})",
    )
    parser.add_argument("--only", default=None, help="comma-separated implementations")
    parser.add_argument("--repeats", type=int, default=None, help="timed repeats")
    parser.add_argument("--warmup", type=int, default=None, help="untimed rounds (>= 1)")
    parser.add_argument("--device", default="cpu", help="torch device (default: %(default)s)")
    _common.add_run_args(parser, DEFAULT_OUT)
    args = parser.parse_args(argv)
    preset = QUICK if args.quick else FULL
    if (args.repeats is not None and args.repeats < 1) or (
        args.warmup is not None and args.warmup < 1
    ):
        parser.error("--repeats and --warmup must be >= 1")
    args.warmup = preset["warmup"] if args.warmup is None else args.warmup
    names = [m.strip() for m in (args.models or ",".join(preset["models"])).split(",")]
    unknown = [m for m in names if m not in preset["models"]]
    if unknown or not names:
        parser.error(f"unknown model(s) {unknown}; choose from: {', '.join(preset['models'])}")
    args.model_cfgs = {}
    for m in names:
        cfg = dict(preset["models"][m])
        cfg["repeats"] = args.repeats or cfg.get("repeats", preset["repeats"])
        args.model_cfgs[m] = cfg
    chosen = [n.strip() for n in (args.only or ",".join(IMPL_NAMES)).split(",") if n.strip()]
    bad = [n for n in chosen if n not in IMPL_NAMES]
    if bad or not chosen:
        parser.error(f"unknown implementation(s) {bad}; choose from: {', '.join(IMPL_NAMES)}")
    args.only = list(dict.fromkeys(chosen))
    return args


def run_model(model_name: str, cfg: dict[str, Any], args, device) -> dict[str, Any]:
    """Build, check and time every implementation of one model."""
    runners, impls = build_runners(model_name, cfg, args.only, args.seed, device)
    x, y = make_batch(cfg, args.seed, device)
    equiv = equivalence(runners, x)
    gc.collect()
    gc.freeze()  # long-lived objects out of the collector's way: per-step gc.collect() is cheap
    cases: dict[str, Callable[[], dict[str, float]]] = {}
    for name, r in runners.items():
        cases[f"{name}/train"] = lambda r=r: train_step(r, x, y, device)
        cases[f"{name}/infer"] = lambda r=r: infer_step(r, x, device)
    timed = _common.run_interleaved(
        cases, args.warmup, cfg["repeats"], progress=not args.no_progress, desc=model_name
    )
    for key, measured in timed.items():
        name, mode = key.split("/")
        impls[name][mode] = measured
    return {
        "config": {
            "input": list(cfg["input"]),
            "T": cfg["T"],
            "batch": cfg["batch"],
            "input_shape": list(x.shape),
            "repeats": cfg["repeats"],
            "warmup": args.warmup,
        },
        "implementations": impls,
        "equivalence": equiv,
        "ratios": model_ratios(impls),
        "ratios_from_min": model_ratios(impls, "min"),
    }


def print_model(model_name: str, result: dict[str, Any]) -> None:
    cfg = result["config"]
    print(f"\n{model_name}: input {cfg['input_shape']} (T, B, C, H, W)")
    impls = result["implementations"]
    lif_train = median_ms(impls.get("qifsim_lif", {}), "train")
    lif_infer = median_ms(impls.get("qifsim_lif", {}), "infer")
    rows = []
    for name, e in impls.items():
        if e["status"] != "ok":
            rows.append([name, None, None, None, None, None, f"{e['status']}: {e['note']}"[:60]])
            continue
        tr, inf = median_ms(e, "train"), median_ms(e, "infer")
        others = [e[m]["others_cpu_share"]["overall"] for m in MODES]
        known = [o for o in others if o is not None]
        rows.append(
            [
                name,
                _common.fmt(tr, ".1f"),
                _common.fmt(_common.ratio(tr, lif_train), ".3f"),
                _common.fmt(inf, ".1f"),
                _common.fmt(_common.ratio(inf, lif_infer), ".3f"),
                f"{e['details']['parameters']:,}",
                _common.fmt(max(known) if known else None, ".0%"),
            ]
        )
    headers = ["implementation", "train ms", "/ LIF", "infer ms", "/ LIF", "params", "others"]
    print(_common.format_table(headers, rows))
    eq = result["equivalence"]
    for key, value in eq.items():
        if key.endswith("max_abs_diff"):
            print(f"  {key}: {value:.2e} (logits up to {eq['logit_scale']:.2f})")


def main(argv=None) -> int:
    args = parse_args(argv)
    warnings.filterwarnings("ignore", message=".*torch.jit.script.*", category=FutureWarning)
    device = torch.device(args.device)
    load_before = _common.load_average()
    models = {}
    for model_name, cfg in args.model_cfgs.items():
        models[model_name] = run_model(model_name, cfg, args, device)
    load_after = _common.load_average()
    busy = [
        e[m]["others_cpu_share"]["overall"]
        for r in models.values()
        for e in r["implementations"].values()
        if e["status"] == "ok"
        for m in MODES
        if e[m]["others_cpu_share"]["overall"] is not None
    ]
    contention = max(busy) if busy else None
    env = _common.environment(PEER_PACKAGES)
    env.update(
        load_average_at_start=load_before,
        load_average_after_timing=load_after,
        others_cpu_share_max=contention,
        device=str(device),
        device_name=torch.cuda.get_device_name(device) if device.type == "cuda" else None,
    )
    targets = {}
    for model_name, r in models.items():
        value = r["ratios"]["qif_over_lif_infer"]
        targets[f"{model_name}_qif_over_lif_infer"] = {
            **_common.target_check(value, PAPER_QIF_OVER_LIF_INFER[1]),
            "value_from_min": r["ratios_from_min"]["qif_over_lif_infer"],
            "why": "the QIF paper's largest QIF/LIF inference overhead (GPU), Section 5.2",
        }
    result = {
        "benchmark": "training",
        "config": {
            "quick": args.quick,
            "repeats": {m: c["repeats"] for m, c in args.model_cfgs.items()},
            "warmup": args.warmup,
            "seed": args.seed,
            "selected": args.only,
            "input": "torch.poisson(0.3) event counts [T, B, C, H, W], float32; random labels",
            "train_step": "forward + cross-entropy + backward + Adam(lr=1e-3) step "
            "(zero_grad and state reset untimed)",
            "infer_step": "eval mode, torch.no_grad() forward",
            "schedule": "warm-up rounds, then timed repeats round-robin over all cases",
            "paper_qif_over_lif_infer_gpu": list(PAPER_QIF_OVER_LIF_INFER),
            **env,
            "git": _common.git_state(_HERE.parent),
        },
        "models": models,
        "targets": targets,
    }
    path = _common.write_json_atomic(args.out, result)

    cfg = result["config"]
    print(
        f"training/inference step per model: device {device}, torch threads {cfg['threads']}, "
        f"repeats {cfg['repeats']}, warm-up {args.warmup}; load average {load_before} -> "
        f"{load_after}, cpus {cfg['cpu_count']}"
    )
    if contention is not None and contention > CONTENTION_WARN:
        print(
            f"WARNING: other processes used up to {contention:.0%} of the CPUs during timing "
            "('others' column): ratios are skewed; re-run on a quiet machine."
        )
    for model_name, r in models.items():
        print_model(model_name, r)
    print("\nratios of median step times (QIF/LIF: the paper reports 1.04-1.39x on a GPU):")
    for model_name, r in models.items():
        for key, value in r["ratios"].items():
            shown = _common.fmt(value, ".3f") or "n/a"
            low = _common.fmt(r["ratios_from_min"][key], ".3f") or "n/a"
            print(f"  {model_name:11} {key:34} {shown:>7}  (from min {low})")
    print(f"\nwrote {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
