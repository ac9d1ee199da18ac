"""``qifsim energy`` and ``qifsim compare``: energy reports from checkpoints or your models.

``qifsim energy CHECKPOINT [--profile NAME] [--data DATASET] [--samples N] [--out DIR]``
prints the per-layer table and writes ``energy.{json,csv,md}`` to ``--out``;
``qifsim energy MODULE:FUNCTION --input-shape T,B,... [--input-rate R] [--step-loop]``
builds your model by calling ``FUNCTION()`` (``MODULE`` importable, or a ``file.py``
path) and measures it on random input of that time-first shape (``--input-rate R``:
binary spikes with probability ``R``; otherwise uniform in [0, 1), graded), or on a
dataset's test split (``--data DATASET --T T``);
``qifsim energy --list-profiles`` lists the hardware profiles.
``qifsim compare LIF_CKPT QIF_CKPT --out DIR`` writes the Table 1 comparison
(``compare.{json,csv,md}``) and the plots (``firing_rates.png``, ``membrane_*.png``).
"""

from __future__ import annotations

import argparse
import importlib
import importlib.util
import json
import os
import sys
from pathlib import Path
from typing import Any


def _load(args: argparse.Namespace, path: str):
    """The checkpoint's model and test split, as the command-line options ask."""
    from ..train.evaluation import load_trained

    return load_trained(
        path, dataset=args.data, data_root=args.data_root, samples=args.samples, device=args.device
    )


def load_entry_point(spec: str):
    """The model ``FUNCTION()`` of ``"MODULE:FUNCTION"`` builds (``MODULE``: a dotted
    importable name or the path of a ``.py`` file).

    Raises:
        ValueError: a malformed spec, a module that cannot be imported, a missing
            function, or a result that is not an ``nn.Module``.
    """
    from torch import nn

    module_name, sep, func_name = spec.rpartition(":")
    if not sep or not module_name or not func_name:
        raise ValueError(f"expected MODULE:FUNCTION (or path/to/file.py:FUNCTION), got {spec!r}")
    if module_name.endswith(".py") or os.sep in module_name:
        path = Path(module_name)
        if not path.is_file():
            raise ValueError(f"no Python file {module_name!r} (from the entry point {spec!r})")
        loaded = importlib.util.spec_from_file_location(f"_qifsim_entry_{path.stem}", path)
        if loaded is None or loaded.loader is None:  # pragma: no cover - a .py file loads
            raise ImportError(f"cannot load {module_name!r}")
        module = importlib.util.module_from_spec(loaded)
        loaded.loader.exec_module(module)
    else:
        # as `python -m` and other MODULE:FUNCTION tools do: the current folder is importable
        sys.path.insert(0, os.getcwd())
        try:
            module = importlib.import_module(module_name)
        except ImportError as err:
            raise ValueError(
                f"cannot import {module_name!r} (from the entry point {spec!r}): {err}; run "
                "from the folder that holds it or give path/to/file.py:FUNCTION"
            ) from err
        finally:
            sys.path.remove(os.getcwd())
    func = getattr(module, func_name, None)
    if not callable(func):
        raise ValueError(f"{module_name!r} has no function {func_name!r}")
    model = func()
    if not isinstance(model, nn.Module):
        raise ValueError(
            f"{spec} returned {type(model).__name__}, not a torch.nn.Module: the entry point "
            "must build and return the model"
        )
    return model


def parse_shape(text: str) -> tuple[int, ...]:
    """``"T,B,C,H,W"`` -> ints >= 1 (at least two: time and batch)."""
    try:
        shape = tuple(int(v) for v in text.replace("x", ",").split(","))
    except ValueError:
        raise ValueError(
            f"--input-shape must be integers like 10,8,2,34,34, got {text!r}"
        ) from None
    if len(shape) < 2 or min(shape) < 1:
        raise ValueError(
            f"--input-shape must be time-first T,B,... with every size >= 1, got {text!r}"
        )
    return shape


def random_batches(shape: tuple[int, ...], batches: int, rate: float | None, seed: int) -> list:
    """``batches`` random time-first inputs: Bernoulli(``rate``) spikes, or uniform [0, 1)."""
    import torch

    if batches < 1:
        raise ValueError(f"--batches must be >= 1, got {batches}")
    if rate is not None and not 0.0 <= rate <= 1.0:
        raise ValueError(f"--input-rate must be in [0, 1], got {rate}")
    gen = torch.Generator().manual_seed(seed)
    out = []
    for _ in range(batches):
        x = torch.rand(shape, generator=gen)
        out.append((x < rate).float() if rate is not None else x)
    return out


def _entry_point_inputs(args: argparse.Namespace) -> dict[str, Any]:
    """``measure_energy`` keywords for an entry-point model: the loader, T, static, note."""
    if args.data is not None:
        from torch.utils.data import DataLoader

        from ..train.config import TrainConfig
        from ..train.data import build_dataset

        config = TrainConfig(
            dataset=args.data, data_root=args.data_root, T=args.T, n_test_samples=args.samples
        )
        test, info = build_dataset(config, "test")
        loader = DataLoader(test, batch_size=args.batch_size or 32)
        note = f"Input: the {args.data} test split ({len(test)} samples, T={args.T})."
        return {"loader": loader, "T": config.T, "static": info.static, "note": note}
    if args.input_shape is None:
        raise ValueError(
            "a MODULE:FUNCTION model needs its input: --input-shape T,B,... (random input) "
            "or --data DATASET"
        )
    shape = parse_shape(args.input_shape)
    batches = random_batches(shape, args.batches, args.input_rate, args.seed)
    what = (
        f"Bernoulli({args.input_rate}) spikes"
        if args.input_rate is not None
        else "uniform [0, 1) (graded)"
    )
    note = (
        f"Input: {args.batches} random batch(es) of shape {list(shape)}, {what}, seed {args.seed}."
    )
    return {"loader": batches, "T": None, "static": False, "note": note}


def _cmd_energy(args: argparse.Namespace) -> int:
    from .profiles import describe_profiles
    from .report import measure_energy

    if args.list_profiles:
        rows = describe_profiles()
        if args.json:
            print(json.dumps(rows, indent=2))
            return 0
        for r in rows:
            nu = r["neuron_update_J"]
            print(
                f"{r['name']:22} MAC {r['mac_J'] * 1e12:6.2f} pJ  AC {r['ac_J'] * 1e12:6.2f} pJ  "
                f"neuron update QIF {nu['qif'] * 1e12:5.1f} pJ / LIF {nu['lif'] * 1e12:5.1f} pJ"
                f"{'  +memory' if r['memory'] else ''}"
            )
            print(f"{'':22} {r['description']}")
        return 0
    if not args.checkpoint:
        raise ValueError("give a CHECKPOINT or MODULE:FUNCTION (or --list-profiles)")
    target = args.checkpoint
    forward = "steps" if args.step_loop else None
    if not os.path.exists(target) and ":" in target:
        model = load_entry_point(target)
        if args.device is not None:
            model.to(args.device)
        inputs = _entry_point_inputs(args)
        report = measure_energy(
            model,
            inputs["loader"],
            args.profile,
            T=inputs["T"],
            static=inputs["static"],
            encoding_macs=args.encoding_macs,
            device=args.device,
            progress=not args.no_progress,
            strict=not args.no_strict,
            forward=forward,
            label=target,
        )
        report.note = " ".join(p for p in (report.note, inputs["note"]) if p)
    else:
        if args.input_shape is not None:
            raise ValueError("--input-shape is for MODULE:FUNCTION models; a checkpoint "
                             "brings its test data (choose another with --data)")  # fmt: skip
        if not os.path.exists(target):
            raise ValueError(
                f"no checkpoint file {target!r} (a model entry point is written MODULE:FUNCTION)"
            )
        loaded = _load(args, target)
        report = measure_energy(
            loaded.model,
            loaded.loader(args.batch_size),
            args.profile,
            T=loaded.config.T,
            static=loaded.info.static,
            encoding_macs=args.encoding_macs,
            progress=not args.no_progress,
            strict=not args.no_strict,
            forward=forward,
        )
    if args.json:
        print(report.to_json())
    else:
        print(report.to_markdown(), end="")
    if args.out:
        paths = report.write(args.out)
        print("written: " + ", ".join(str(p) for p in paths.values()), file=sys.stderr)
    return 0


def _cmd_compare(args: argparse.Namespace) -> int:
    from .demo import compare_models

    lif, qif = (_load(args, path) for path in (args.lif_checkpoint, args.qif_checkpoint))
    for which, item, want in (("LIF_CKPT", lif, "lif"), ("QIF_CKPT", qif, "qif")):
        neuron = getattr(item.config, "neuron", None)
        if neuron != want:
            raise ValueError(f"{which} {item.path!r} holds a {neuron!r} model, expected {want!r}")
    T = lif.config.T
    if T != qif.config.T or lif.config.dataset != qif.config.dataset:
        raise ValueError(
            "the two checkpoints were trained on different data or T "
            f"({lif.config.dataset}, T={T} vs {qif.config.dataset}, T={qif.config.T})"
        )
    result = compare_models(
        lif.model,
        qif.model,
        lif.loader(args.batch_size),
        args.out,
        T=T,
        static=lif.info.static,
        profile=args.profile,
        layer=args.layer,
        encoding_macs=args.encoding_macs,
        label=f"{lif.config.model} on {lif.config.dataset}",
        progress=not args.no_progress,
    )
    print(result["text"], end="")
    print("written: " + ", ".join(str(p) for p in result["files"].values()), file=sys.stderr)
    return 0


def _common(p: argparse.ArgumentParser) -> None:
    p.add_argument("--profile", default="cmos45nm-fp32", help="profile name or .json path "
                   "(default: %(default)s; see `qifsim energy --list-profiles`)")  # fmt: skip
    p.add_argument(
        "--data", default=None, help="evaluate on this dataset (default: the trained one)"
    )
    p.add_argument("--data-root", default=None, help="dataset folder (default: as trained)")
    p.add_argument("--samples", type=int, default=None, help="first N test samples (default: all)")
    p.add_argument("--batch-size", type=int, default=None, help="(default: the config's)")
    p.add_argument("--device", default=None, help="torch device (default: cuda if available)")
    p.add_argument(
        "--encoding-macs",
        choices=("per_step", "once"),
        default="per_step",
        help="count the encoding layer's MACs at every step (Eq. 17) or once per sample "
        "(direct encoding of static images)",
    )
    p.add_argument("--no-progress", action="store_true", help="no progress bar")


def register_cli(sub) -> None:
    """Add ``energy`` and ``compare`` to the ``qifsim`` subcommands ``sub``."""
    energy = sub.add_parser(
        "energy",
        help="per-layer spike rates, operation counts and energy of a checkpoint or a model",
        description="Rebuild a `qifsim train` checkpoint's model and run it on its test set, "
        "or build your own model (qifsim, norse, snntorch, spikingjelly or plain torch) from "
        "a MODULE:FUNCTION entry point and run it on random input of --input-shape (or a "
        "dataset), and count per layer: firing rates, MACs, ACs (firing rate x dense ops, the "
        "QIF paper's Eq. 17), exact event-driven ACs and energy in joules under a hardware "
        "profile.",
        epilog="examples: qifsim energy runs/digits/last.pt --samples 64; "
        "qifsim energy mypkg.nets:build --input-shape 10,8,2,34,34 --input-rate 0.1; "
        "qifsim energy my_snn.py:make_net --input-shape 25,16,784 --step-loop",
    )
    energy.add_argument(
        "checkpoint",
        nargs="?",
        metavar="CHECKPOINT | MODULE:FUNCTION",
        help="a checkpoint file (last.pt / best.pt), or MODULE:FUNCTION (MODULE importable "
        "or a path/to/file.py) whose FUNCTION() returns the model",
    )
    energy.add_argument("--list-profiles", action="store_true", help="list hardware profiles")
    _common(energy)
    energy.add_argument(
        "--input-shape",
        default=None,
        metavar="T,B,...",
        help="MODULE:FUNCTION models: time-first shape of one random input batch, e.g. "
        "10,8,2,34,34 (T=10 steps, 8 samples, 2x34x34 frames)",
    )
    energy.add_argument(
        "--input-rate",
        type=float,
        default=None,
        metavar="R",
        help="random input as binary spikes with probability R (default: uniform in [0, 1), "
        "graded, so the first layer costs MACs)",
    )
    energy.add_argument("--batches", type=int, default=1, help="random batches (default: 1)")
    energy.add_argument("--seed", type=int, default=0, help="seed of the random input")
    energy.add_argument(
        "--T", type=int, default=10, help="time steps with --data for MODULE:FUNCTION models"
    )
    energy.add_argument(
        "--step-loop",
        action="store_true",
        help="call the model once per time step with [B, ...] (snntorch style), resetting "
        "snntorch/spikingjelly states per batch; T is counted from the calls",
    )
    energy.add_argument(
        "--no-strict",
        action="store_true",
        help="list layers qifsim cannot count as 'not counted' instead of failing",
    )
    energy.add_argument("--out", type=Path, default=None, help="write energy.json/.csv/.md here")
    energy.add_argument("--json", action="store_true", help="print JSON")
    energy.set_defaults(func=_cmd_energy)

    cmp_ = sub.add_parser(
        "compare",
        help="LIF vs QIF energy table (QIF paper Table 1) and plots from two checkpoints",
        description="Measure a LIF and a QIF checkpoint of the same architecture on the same "
        "test data; write compare.json/.csv/.md (LIF mJ, QIF mJ, improvement, spike-rate "
        "reduction, per-layer rates), firing_rates.png and membrane_{lif,qif}.png.",
    )
    cmp_.add_argument("lif_checkpoint", help="checkpoint of the LIF model")
    cmp_.add_argument("qif_checkpoint", help="checkpoint of the QIF model")
    cmp_.add_argument("--out", type=Path, required=True, help="output folder")
    cmp_.add_argument("--layer", default=None, help="neuron layer of the membrane plots")
    _common(cmp_)
    cmp_.set_defaults(func=_cmd_compare)
