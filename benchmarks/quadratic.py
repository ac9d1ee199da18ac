"""Benchmark: the channel-wise quadratic synapse term, fused op vs einsum vs outer product.

In one run, on the same input ``x: [N, Cin, H, W]`` (default ``Cin = Cout = 64``, 16x16 maps,
batch 32, float32; ``--device cuda`` and ``--dtype bfloat16/float16`` on a GPU), the quadratic
term ``y[n, i, h, w] = X^T A_i X`` (``X = x[n, :, h, w]``) is run forward and backward (gradients
for ``x`` and ``A``) by

  fused         ``qifsim.layers.ChannelQuadratic`` (the chunked pairwise op: distinct pairs,
                one GEMM per chunk, products recomputed in backward)
  einsum        ``torch.einsum('nihw,oij,njhw->nohw', x, A, x)`` on a dense ``A`` parameter
  outer         the official Dit code's approach (re-implemented from the paper's description):
                the materialised outer product ``[N*H*W, Cin*Cin]`` times ``A`` as a matrix
  lowrank_r8    ``ChannelQuadratic(rank=8)``: ``A_i = U_i U_i^T - V_i V_i^T``, ``U, V`` with
                8 columns each (rank(A) <= 16)
  lowrank_r4    the same with 4 columns each (rank(A) <= 8), for information

and timed round-robin (``_common.run_interleaved``: median of the repeats). Outputs of fused and
outer are checked against einsum in the same run.

Peak memory of one forward+backward: on CUDA ``torch.cuda.max_memory_allocated`` above the
memory held before the step; on CPU an allocation ledger (a ``TorchDispatchMode`` that adds
the bytes of every new tensor storage an op creates and subtracts them when the last tensor
on it is freed; inputs and parameters made before the step are not counted), i.e. the peak of
live tensor bytes allocated by the step, allocator overhead excluded.

Spikes: on binary inputs at 10 % firing rate, the spiking (zero-diagonal) term's dense cost
(``quadratic_op_counts``: pair products and coefficient MACs) is reported next to its
event-driven cost, measured on the sample: a pair contributes only when both channels fire at
the same pixel, so the accumulations are ``sum over pixels n(n-1)/2 * Cout`` (``n`` active
channels) and the products are free ANDs.

Threads: torch's default unless ``--threads``; the count is recorded. On a machine shared
with other busy processes, multi-threaded runs of the fused op (a few hundred mid-sized ops per
step, each an OpenMP fork/join) can stall badly while the einsum (a few big ops) suffers less;
``--threads 1`` gives the per-core comparison.

Targets (reported, met or not): fused time <= einsum time; fused peak memory <= 1/4 of the
outer-product path's; low rank (r = 8) time <= 1/4 of full rank (fused). Results go to
``benchmarks/results/quadratic.json`` (atomically).

Run from the repository root: ``python benchmarks/quadratic.py [--quick] [--device cuda]``.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch

_HERE = Path(__file__).resolve().parent
if str(_HERE) not in sys.path:
    sys.path.insert(0, str(_HERE))

import _common  # noqa: E402

from qifsim.layers import ChannelQuadratic  # noqa: E402

DEFAULT_OUT = _HERE / "results" / "quadratic.json"
FULL = {"channels": 64, "size": 16, "batch": 32, "repeats": 7, "warmup": 2}
QUICK = {"channels": 8, "size": 6, "batch": 2, "repeats": 1, "warmup": 1}
FIRING_RATE = 0.1


def make_cases(
    n: int, c: int, size: int, device: torch.device, dtype: torch.dtype, seed: int
) -> tuple[dict[str, Callable[[], torch.Tensor]], dict[str, list[torch.Tensor]], torch.Tensor]:
    """Forward callables over the same ``x`` and ``A`` and the leaves whose grads they need."""
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(n, c, size, size, generator=g).to(device, dtype).requires_grad_()
    fused = ChannelQuadratic(c, c).to(device, dtype)
    with torch.no_grad():
        fused.weight.copy_(0.1 * torch.randn(fused.weight.shape, generator=g))
    a_dense = fused.matrices().detach().clone().requires_grad_()
    low = {}
    for r in (8, 4):
        low[r] = ChannelQuadratic(c, c, rank=r).to(device, dtype)
        with torch.no_grad():
            low[r].u.add_(0.1 * torch.randn(low[r].u.shape, generator=g).to(device, dtype))

    def outer() -> torch.Tensor:
        rows = x.permute(0, 2, 3, 1).reshape(-1, c)
        prod = (rows[:, :, None] * rows[:, None, :]).reshape(-1, c * c)
        y = prod @ a_dense.reshape(c, c * c).t()
        return y.reshape(n, size, size, c).permute(0, 3, 1, 2)

    cases = {
        "fused": lambda: fused(x),
        "einsum": lambda: torch.einsum("nihw,oij,njhw->nohw", x, a_dense, x),
        "outer": outer,
        "lowrank_r8": lambda: low[8](x),
        "lowrank_r4": lambda: low[4](x),
    }
    leaves = {
        "fused": [x, fused.weight],
        "einsum": [x, a_dense],
        "outer": [x, a_dense],
        "lowrank_r8": [x, low[8].u, low[8].v],
        "lowrank_r4": [x, low[4].u, low[4].v],
    }
    return cases, leaves, x


def bench_dense(args: argparse.Namespace, device: torch.device, dtype: torch.dtype) -> dict:
    n, c, size = args.batch, args.channels, args.size
    cases, leaves, x = make_cases(n, c, size, device, dtype, args.seed)
    grad_out = torch.randn(n, c, size, size, generator=torch.Generator().manual_seed(1))
    grad_out = grad_out.to(device, dtype)

    def sync() -> None:
        if device.type == "cuda":
            torch.cuda.synchronize(device)

    def timed(name: str) -> Callable[[], dict[str, float]]:
        def run() -> dict[str, float]:
            for leaf in leaves[name]:
                leaf.grad = None
            sync()
            clock = _common.PhaseClock()
            y = cases[name]()
            sync()
            clock.lap("forward")
            y.backward(grad_out)
            sync()
            clock.lap("backward")
            return clock.done()

        return run

    def step(name: str) -> Callable[[], None]:
        def run() -> None:
            for leaf in leaves[name]:
                leaf.grad = None
            cases[name]().backward(grad_out)

        return run

    with torch.no_grad():
        ref = cases["einsum"]().float()
        scale = ref.abs().max().item()
        errors = {
            name: (cases[name]().float() - ref).abs().max().item() / max(scale, 1e-30)
            for name in ("fused", "outer")
        }
    timings = _common.run_interleaved(
        {name: timed(name) for name in cases},
        args.warmup,
        args.repeats,
        progress=not args.no_progress,
        desc="quadratic",
    )
    out: dict[str, Any] = {}
    for name in cases:
        out[name] = {
            **timings[name],
            "peak_bytes": _common.peak_bytes(step(name), device),
            "max_rel_error_vs_einsum": errors.get(name),
        }
    del x
    return out


def bench_spikes(args: argparse.Namespace) -> dict:
    """Dense vs event-driven cost of the spiking term on binary inputs at 10 % firing."""
    c, size, n = args.channels, args.size, args.batch
    g = torch.Generator().manual_seed(args.seed + 2)
    spikes = (torch.rand(n, c, size, size, generator=g) < FIRING_RATE).float()
    q = ChannelQuadratic(c, c, spiking=True)
    dense = q.quadratic_op_counts((size, size))
    active = spikes.sum(1)  # [N, H, W] active channels per pixel
    pairs = (active * (active - 1) / 2).sum().item() / n  # co-active pairs per sample
    rate = spikes.mean().item()
    event_acs = pairs * c
    return {
        "firing_rate_target": FIRING_RATE,
        "firing_rate_measured": rate,
        "dense_per_sample": {**dense, "total": dense["mul"] + dense["mac"]},
        "event_per_sample": {
            "coactive_pairs": pairs,
            "and_ops": pairs,
            "accumulates": event_acs,
            "estimate_fr2_times_dense_mac": rate**2 * dense["mac"],
        },
        "event_over_dense_accumulates": _common.ratio(event_acs, dense["mac"]),
    }


def collect_targets(dense: dict) -> dict:
    def med(name: str) -> float | None:
        return dense[name]["timings_ms"]["total"]["median"]

    return {
        "fused_time_over_einsum": _common.target_check(
            _common.ratio(med("fused"), med("einsum")), 1.0
        ),
        "fused_peak_over_outer_peak": _common.target_check(
            _common.ratio(dense["fused"]["peak_bytes"], dense["outer"]["peak_bytes"]), 0.25
        ),
        # Against qifsim's own fused full-rank op (distinct pairs only: Cin(Cin+1)/2 products
        # per pixel, half the Cin^2 of a dense quadratic form), r = 8 costs Cin*2r = 1,024
        # multiply-adds per output against 2,080: op count bounds the gain near 2x.
        "lowrank_r8_time_over_full_rank": _common.target_check(
            _common.ratio(med("lowrank_r8"), med("fused")), 0.25
        ),
        # Against the dense full-rank reference (einsum over all Cin^2 entries of A).
        "lowrank_r8_time_over_full_rank_einsum": _common.target_check(
            _common.ratio(med("lowrank_r8"), med("einsum")), 0.25
        ),
    }


def print_report(dense: dict, spikes: dict, targets: dict) -> None:
    rows = []
    for name, entry in dense.items():
        t = entry["timings_ms"]
        rows.append(
            [
                name,
                _common.fmt(t["forward"]["median"], ".2f"),
                _common.fmt(t["backward"]["median"], ".2f"),
                _common.fmt(t["total"]["median"], ".2f"),
                _common.fmt(
                    _common.ratio(
                        t["total"]["median"], dense["einsum"]["timings_ms"]["total"]["median"]
                    ),
                    ".2f",
                ),  # fmt: skip
                _common.fmt(entry["peak_bytes"] / 2**20, ".1f"),
                _common.fmt(entry["max_rel_error_vs_einsum"], ".1e"),
            ]
        )
    headers = ["impl", "fwd ms", "bwd ms", "total ms", "x einsum", "peak MiB", "rel err"]
    print(_common.format_table(headers, rows))
    d, e = spikes["dense_per_sample"], spikes["event_per_sample"]
    print(
        f"\nspiking term on binary input, firing rate {spikes['firing_rate_measured']:.3f}: "
        f"dense {d['mul']} ANDs/products + {d['mac']} MACs per sample; event-driven "
        f"{e['coactive_pairs']:.0f} co-active pairs, {e['accumulates']:.0f} ACs "
        f"({spikes['event_over_dense_accumulates']:.4f} of dense; fr^2 estimate "
        f"{e['estimate_fr2_times_dense_mac']:.0f})"
    )
    print("\ntargets:")
    for name, check in targets.items():
        value = "-" if check["value"] is None else f"{check['value']:.3f}"
        print(f"  {name}: {value} {check['op']} {check['target']} -> met={check['met']}")


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python benchmarks/quadratic.py",
        description=(
            "Forward+backward time and peak memory of the channel-wise quadratic synapse term: "
            "qifsim's fused op vs torch.einsum vs the materialised outer-product path, plus low "
            "rank, and the event-driven vs dense cost on 10%-rate spikes. Writes JSON atomically."
        ),
    )
    for key in ("channels", "size", "batch"):
        parser.add_argument(
            f"--{key}", type=int, default=None,
            help=f"(default {FULL[key]}; --quick {QUICK[key]})",
        )  # fmt: skip
    _common.add_timing_args(parser, QUICK, FULL)
    parser.add_argument(
        "--threads",
        type=int,
        default=None,
        help="torch intra-op threads (default: torch's own; on a busy shared machine 1 thread "
        "avoids OpenMP stalls that hit many-op paths hardest)",
    )
    parser.add_argument("--device", default="cpu", help="cpu or cuda (default: %(default)s)")
    parser.add_argument(
        "--dtype",
        default="float32",
        choices=["float32", "float64", "bfloat16", "float16"],
        help="dtype of x and A (half types on CUDA; default: %(default)s)",
    )
    _common.add_run_args(parser, DEFAULT_OUT)
    args = parser.parse_args(argv)
    _common.fill_preset(args, QUICK, FULL)
    if min(args.channels, args.size, args.batch, args.repeats, args.warmup) < 1:
        parser.error("--channels, --size, --batch, --repeats and --warmup must be >= 1")
    if args.threads is not None and args.threads < 1:
        parser.error("--threads must be >= 1")
    if args.channels < 2:
        parser.error("--channels must be >= 2 (the spiking term needs a pair)")
    if args.device.startswith("cuda") and not torch.cuda.is_available():
        parser.error("--device cuda requested but torch.cuda.is_available() is False")
    if args.dtype in ("bfloat16", "float16") and not args.device.startswith("cuda"):
        parser.error(f"--dtype {args.dtype} is meant for CUDA; use --device cuda or float32")
    return args


def main(argv=None) -> int:
    args = parse_args(argv)
    if args.threads is not None:
        torch.set_num_threads(args.threads)
    device, dtype = torch.device(args.device), getattr(torch, args.dtype)
    load_before = _common.load_average()
    dense = bench_dense(args, device, dtype)
    spikes = bench_spikes(args)
    targets = collect_targets(dense)
    env = _common.environment()
    env["load_average_at_start"] = load_before
    env["load_average_after_timing"] = _common.load_average()
    if device.type == "cuda":
        env["cuda_device"] = torch.cuda.get_device_name(device)
    result = {
        "benchmark": "quadratic",
        "config": {
            "quick": args.quick,
            "channels": args.channels,
            "size": args.size,
            "batch": args.batch,
            "repeats": args.repeats,
            "warmup": args.warmup,
            "device": str(device),
            "dtype": args.dtype,
            "seed": args.seed,
            "memory_method": (
                "torch.cuda.max_memory_allocated above the pre-step allocation"
                if device.type == "cuda"
                else "TorchDispatchMode ledger of live tensor-storage bytes created by the step"
            ),
            "git": _common.git_state(_HERE.parent),
            **env,
        },
        "implementations": dense,
        "spikes": spikes,
        "targets": targets,
    }
    print(
        f"quadratic: Cin = Cout = {args.channels}, {args.size}x{args.size}, batch {args.batch}, "
        f"{args.dtype} on {device}; forward+backward, median of {args.repeats}; "
        f"threads {env['threads']}"
    )
    print_report(dense, spikes, targets)
    path = _common.write_json_atomic(args.out, result)
    print(f"\nwrote {path}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
