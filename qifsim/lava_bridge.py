"""Run the Lava side (``hardware/lava``, in ``.venv-lava``) from the torch side.

lava-nc 0.10 needs Python 3.10 and numpy < 2, so it lives in its own virtual
environment; qifsim calls its ``qifsim-lava`` command as a subprocess and
reads the JSON it prints.
"""

from __future__ import annotations

import json
import os
import subprocess
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

ENV_VAR = "QIFSIM_LAVA_PYTHON"


class LavaEnvironmentError(RuntimeError):
    """The Lava environment is missing or failed."""


def find_lava_python() -> Path:
    """Python of the Lava environment.

    Looks at ``$QIFSIM_LAVA_PYTHON``, then for ``.venv-lava/bin/python`` in the
    current directory, the source checkout qifsim runs from, and their parents.
    """
    if os.environ.get(ENV_VAR):
        path = Path(os.environ[ENV_VAR])
        if not path.exists():
            raise LavaEnvironmentError(f"{ENV_VAR}={path} does not exist")
        return path
    starts = [Path.cwd(), Path(__file__).resolve().parent]
    for start in starts:
        for folder in (start, *start.parents):
            candidate = folder / ".venv-lava" / "bin" / "python"
            if candidate.exists():
                return candidate
    raise LavaEnvironmentError(
        "no Lava environment found: run `make setup` in the qifsim checkout (it builds "
        f".venv-lava with Python 3.10 and lava-nc), or set {ENV_VAR}=/path/to/python3.10"
    )


def run_lava(args: list[str], timeout: float = 600.0) -> dict:
    """Run ``qifsim-lava ARGS`` in the Lava environment and return its JSON output."""
    python = find_lava_python()
    cmd = [str(python), "-m", "qifsim_lava.cli", *args]
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "PYTHONHOME")}
    try:
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, env=env)
    except subprocess.TimeoutExpired:
        raise LavaEnvironmentError(
            f"`{' '.join(cmd)}` did not finish within {timeout:.0f} s; run fewer samples or "
            "raise the timeout"
        ) from None
    try:
        result = json.loads(proc.stdout)
    except json.JSONDecodeError:
        how = (
            f"was killed by signal {-proc.returncode} (a crash in Lava or reading the file)"
            if proc.returncode < 0
            else f"exited with {proc.returncode}"
        )
        raise LavaEnvironmentError(
            f"`{' '.join(cmd)}` {how} without JSON output:\n{proc.stderr[-2000:]}"
        ) from None
    result["returncode"] = proc.returncode
    return result


class LavaRunError(RuntimeError):
    """The Lava side rejected the run (e.g. a corrupt, truncated or wrong-version exchange
    file, or frames of the wrong shape); the message is the Lava side's."""


@dataclass
class LavaRunResult:
    """One mode's output of :func:`run_exchange`.

    Attributes:
        mode: ``"float"`` or ``"fixed"``.
        logits: ``[B, num_classes]`` float64 (fixed: ``acc / (T * lambda)``).
        predictions: ``[B]`` int64.
        acc: fixed mode: integer readout accumulators ``[B, num_classes]``; else ``None``.
        spikes: with ``record_spikes``: ``{layer index: [T, B, *shape]}``, delay-shifted back
            so step ``t`` lines up with the torch model's step ``t``.
        steps, seconds, steps_per_second: Lava steps run and the wall time of the run
            (without compilation); compile_seconds: build + compile time.
    """

    mode: str
    logits: np.ndarray
    predictions: np.ndarray
    acc: np.ndarray | None
    spikes: dict[int, np.ndarray] = field(default_factory=dict)
    steps: int = 0
    seconds: float = 0.0
    steps_per_second: float = 0.0
    compile_seconds: float = 0.0


def _as_numpy(frames) -> np.ndarray:
    if hasattr(frames, "detach"):  # torch.Tensor without importing torch here
        frames = frames.detach().cpu().numpy()
    return np.asarray(frames)


def run_exchange_modes(
    path: str | Path,
    frames,
    modes: tuple[str, ...] = ("float", "fixed"),
    record_spikes: bool = False,
    timeout: float = 600.0,
) -> dict[str, LavaRunResult]:
    """Run an exchange file in Lava (subprocess in ``.venv-lava``) in one or both modes.

    Args:
        path: exchange file written by :func:`qifsim.export.export_lava`.
        frames: ``[T, B, *input_shape]`` numpy array or torch tensor (event counts or spikes).
        modes: subset of ``("float", "fixed")``.
        record_spikes: also return every hidden layer's spikes.

    Raises:
        LavaRunError: the Lava side rejected the file or the inputs (message says why).
        LavaEnvironmentError: no Lava environment, or it crashed.
    """
    modes = tuple(modes)
    valid = all(m in ("float", "fixed") for m in modes)
    if not modes or not valid or len(set(modes)) != len(modes):
        raise ValueError(f"modes must be a non-empty subset of ('float', 'fixed'), got {modes}")
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"exchange file {path} does not exist")
    frames = _as_numpy(frames)
    mode_arg = modes[0] if len(modes) == 1 else "both"
    with tempfile.TemporaryDirectory(prefix="qifsim-lava-") as tmp:
        inputs, outputs = Path(tmp) / "inputs.npz", Path(tmp) / "outputs.npz"
        np.savez(inputs, frames=frames)
        args = [
            "run",
            str(path.resolve()),
            "--inputs",
            str(inputs),
            "--outputs",
            str(outputs),
            "--mode",
            mode_arg,
        ]
        if record_spikes:
            args.append("--record-spikes")
        report = run_lava(args, timeout=timeout)
        if not report.get("ok"):
            raise LavaRunError(
                f"Lava run of {path} failed: {report.get('error_type')}: {report.get('error')}"
            )
        with np.load(outputs) as out:
            arrays = {key: out[key] for key in out.files}
    results: dict[str, LavaRunResult] = {}
    for mode in modes:
        stats = report["modes"][mode]
        prefix = f"{mode}_spikes_"
        results[mode] = LavaRunResult(
            mode=mode,
            logits=arrays[f"{mode}_logits"],
            predictions=arrays[f"{mode}_predictions"],
            acc=arrays.get(f"{mode}_acc"),
            spikes={int(k[len(prefix) :]): v for k, v in arrays.items() if k.startswith(prefix)},
            steps=int(stats["steps"]),
            seconds=float(stats["seconds"]),
            steps_per_second=float(stats["steps_per_second"]),
            compile_seconds=float(stats["compile_seconds"]),
        )
    return results


def run_exchange(
    path: str | Path,
    frames,
    mode: str = "float",
    record_spikes: bool = False,
    timeout: float = 600.0,
) -> LavaRunResult:
    """Run an exchange file in Lava in one mode (``"float"`` or ``"fixed"``); see
    :func:`run_exchange_modes`."""
    if mode not in ("float", "fixed"):
        raise ValueError(f"mode must be 'float' or 'fixed', got {mode!r}")
    return run_exchange_modes(path, frames, (mode,), record_spikes, timeout)[mode]


def digits_test_frames(time_steps: int, samples: int | None = None):
    """digits-dvs test frames ``[T, N, 2, 34, 34]`` (float32 event counts) and labels ``[N]``,
    framed as the ``digits-*`` presets do (``split_by="count"``)."""
    from .events.digits_dvs import DigitsDVS
    from .train.loaders import stack_time_first

    dataset = DigitsDVS("test", n_frames=time_steps, progress=False, n_samples=samples)
    return stack_time_first(dataset, time_steps, static=False)


def lava_run_report(
    path: str | Path,
    data: str = "digits-dvs",
    samples: int = 50,
    modes: tuple[str, ...] = ("float", "fixed"),
    checkpoint: str | Path | None = None,
) -> dict:
    """Run an exchange file in Lava on test samples; compare with PyTorch.

    The PyTorch predictions come from the checkpoint's model (float32, as trained) when
    ``checkpoint`` is given, else from the exchange file's torch float reference
    (:func:`qifsim.export.run_reference`, the exported net without Lava).

    Returns:
        ``{"file", "samples", "torch_source", "acc_torch", "modes": {mode: {"accuracy",
        "agreement", "steps_per_second", "compile_seconds", "fixed_matches_reference"}}}``
        (fractions; ``fixed_matches_reference``: fixed mode's accumulators equal the torch
        integer reference bit for bit).
    """
    import torch

    from .export import read_exchange, run_reference

    if data != "digits-dvs":
        raise ValueError(f"--data {data!r} is not supported; use 'digits-dvs'")
    if samples < 1:
        raise ValueError(f"samples must be >= 1, got {samples}")
    exchange = read_exchange(path)
    frames, labels = digits_test_frames(exchange.time_steps, samples)
    if tuple(frames.shape[2:]) != tuple(exchange.input_shape):
        raise ValueError(
            f"{path}: input shape {tuple(exchange.input_shape)} does not match digits-dvs frames "
            f"{tuple(frames.shape[2:])}"
        )
    if checkpoint is not None:
        from .train.evaluation import load_trained

        model = load_trained(checkpoint).model
        with torch.no_grad():
            torch_pred = model(frames).argmax(1).numpy()
        source = f"checkpoint {checkpoint}"
    else:
        torch_pred = run_reference(exchange, frames, "float").predictions.numpy()
        source = "torch float reference of the exchange file"
    labels_np = labels.numpy()
    results = run_exchange_modes(path, frames, modes)
    report: dict = {
        "file": str(path),
        "samples": int(frames.shape[1]),
        "torch_source": source,
        "acc_torch": float((torch_pred == labels_np).mean()),
        "modes": {},
    }
    for mode, res in results.items():
        entry = {
            "accuracy": float((res.predictions == labels_np).mean()),
            "agreement": float((res.predictions == torch_pred).mean()),
            "steps_per_second": res.steps_per_second,
            "compile_seconds": res.compile_seconds,
        }
        if mode == "fixed":
            ref = run_reference(exchange, frames, "fixed")
            entry["fixed_matches_reference"] = bool(np.array_equal(res.acc, ref.acc.numpy()))
        report["modes"][mode] = entry
    return report
