"""The training loop: STBP/BPTT with cross-entropy on the time-averaged readout.

:func:`fit` trains the model a :class:`~qifsim.train.config.TrainConfig`
describes. Each step feeds a time-first batch ``[T, B, C, H, W]`` through the
model (whose non-firing output layer averages over ``T``), takes the
cross-entropy of the logits, and backpropagates through all time steps
(BPTT, with the neurons' surrogate gradients: STBP). Then, in order:
optional gradient-norm clipping, the optimiser step, the per-step LR
schedule (:mod:`qifsim.train.optim`).

Files in ``out_dir`` (rank 0 only, all written atomically):

* ``config.json``: the configuration (feed it back to ``python -m qifsim.train.run``);
* ``metrics.jsonl``: one line per epoch: ``epoch`` (1-based), ``train_loss``,
  ``train_acc``, ``test_loss``, ``test_acc``, ``spike_rates`` ``{layer: rate}``,
  ``mean_spike_rate``, ``lr`` (the rate of the epoch's first step), ``seconds``
  (training plus evaluation time of the epoch); the test fields are ``null``
  in epochs without evaluation (see ``eval_every``); accuracies in [0, 1],
  losses in nats;
* ``last.pt`` after every epoch and ``best.pt`` whenever the test accuracy
  improves (:mod:`qifsim.train.checkpoint`);
* ``tensorboard/``: TensorBoard events, when tensorboard is installed.

``fit(..., resume=True)`` continues from ``last.pt``: model, optimiser,
schedule, every random generator and the metrics history are restored, and
the shuffling and augmentation depend only on ``(seed, epoch, index)``, so an
interrupted run that resumes ends with the same weights and the same metrics
lines (``seconds`` aside) as one that was never interrupted.
"""

from __future__ import annotations

import os
import time
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from ..atomic import write_json_atomic
from .checkpoint import (
    BEST,
    FORMAT,
    FORMAT_VERSION,
    LAST,
    check_resumable,
    copy_checkpoint,
    load_checkpoint,
    load_model_state,
    qifsim_version,
    save_checkpoint,
)
from .config import TrainConfig
from .distributed import (
    DistContext,
    all_reduce_sum,
    barrier,
    broadcast_buffers,
    gather_objects,
    setup,
    teardown,
)
from .evaluation import amp_context, evaluate
from .factory import build_model_from_config
from .loaders import Loaders, build_loaders, to_time_first
from .metrics import METRICS_FILE, MetricsLog
from .optim import make_optimizer, make_scheduler
from .seeding import capture_rng_state, deterministic_mode, restore_rng_state, seed_everything

CONFIG_FILE = "config.json"
#: Called after each epoch's files are written: ``callback(epoch (1-based), metrics row)``.
EpochCallback = Callable[[int, dict[str, Any]], None]


class TrainingDiverged(FloatingPointError):
    """The training loss became NaN or infinite."""


def _train_epoch(
    model: nn.Module,
    loaders: Loaders,
    optimizer: torch.optim.Optimizer,
    scheduler: torch.optim.lr_scheduler.LRScheduler,
    config: TrainConfig,
    ctx: DistContext,
    epoch: int,
    progress: bool,
) -> dict[str, float]:
    """One pass over the training loader; returns the epoch's mean loss and accuracy."""
    from tqdm.auto import tqdm

    model.train()
    device = ctx.device
    static = loaders.info.static
    params = [p for p in model.parameters() if p.requires_grad]
    sums = torch.zeros(3, dtype=torch.float64, device=device)  # loss * n, correct, n
    bar = tqdm(
        loaders.train,
        desc=f"epoch {epoch + 1}/{config.epochs}",
        leave=False,
        disable=not progress,
        dynamic_ncols=True,
    )
    every = max(1, len(loaders.train) // 50)
    for step, (x, y) in enumerate(bar):
        x = to_time_first(x.to(device, non_blocking=True), config.T, static)
        y = y.to(device, non_blocking=True)
        with amp_context(device, config.amp):
            logits = model(x)
        loss = F.cross_entropy(logits.float(), y)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        if config.grad_clip is not None:
            torch.nn.utils.clip_grad_norm_(params, config.grad_clip)
        optimizer.step()
        scheduler.step()
        n = y.shape[0]
        sums[0] += loss.detach().double() * n
        sums[1] += (logits.detach().argmax(dim=1) == y).sum()
        sums[2] += n
        if progress and (step % every == 0 or step == len(loaders.train) - 1):
            loss_sum, correct, count = sums.tolist()
            bar.set_postfix(loss=f"{loss_sum / count:.4f}", acc=f"{correct / count:.3f}")
    bar.close()
    loss_sum, correct, count = all_reduce_sum(sums, ctx).tolist()
    train_loss = loss_sum / count
    if not torch.isfinite(torch.tensor(train_loss)):
        raise TrainingDiverged(
            f"training diverged in epoch {epoch + 1}: the loss is {train_loss}; "
            "lower lr or set grad_clip"
        )
    return {"train_loss": train_loss, "train_acc": correct / count}


def _prepare_out_dir(out_dir: Path, resume: bool, overwrite: bool, ctx: DistContext) -> None:
    """Refuse to clobber an earlier run unless asked; clear its files when ``overwrite``.

    Every process checks (so that all raise together); rank 0 deletes.
    """
    if resume:
        return
    earlier = [out_dir / name for name in (LAST, BEST, METRICS_FILE) if (out_dir / name).exists()]
    if earlier and not overwrite:
        raise FileExistsError(
            f"{str(out_dir)!r} already holds a run ({', '.join(p.name for p in earlier)}); "
            "pass resume=True to continue it, overwrite=True to start again, or use another folder"
        )
    if ctx.is_main:
        for path in earlier:
            path.unlink()
    barrier(ctx)


def _rng_snapshot(loaders: Loaders) -> dict[str, Any]:
    state = capture_rng_state()
    state["loader"] = loaders.generator.get_state()
    return state


def _restore_rngs(saved: list[dict[str, Any]], loaders: Loaders, ctx: DistContext) -> None:
    if len(saved) != ctx.world_size:
        warnings.warn(
            f"the checkpoint was written by {len(saved)} process(es), this run has "
            f"{ctx.world_size}: random streams continue from rank 0's state, so the run "
            "will not repeat the original bit for bit",
            RuntimeWarning,
            stacklevel=3,
        )
    mine = saved[ctx.rank] if ctx.rank < len(saved) else saved[0]
    restore_rng_state(mine)
    loaders.generator.set_state(mine["loader"])


def _summary(history: list[dict[str, Any]], best: dict[str, Any], out_dir: Path) -> dict[str, Any]:
    final = dict(history[-1]) if history else {}
    final.update(
        best_test_acc=best["test_acc"],
        best_epoch=best["epoch"],
        epochs_completed=len(history),
        out_dir=str(out_dir),
    )
    return final


def fit(
    config: TrainConfig,
    out_dir: str | os.PathLike,
    resume: bool = False,
    progress: bool = True,
    device: str | torch.device | None = None,
    *,
    overwrite: bool = False,
    tensorboard: bool = True,
    on_epoch_end: EpochCallback | None = None,
    stop_after: int | None = None,
) -> dict[str, Any]:
    """Train ``config``'s model on its dataset; write metrics and checkpoints to ``out_dir``.

    Runs single-process, or under ``torchrun`` with DistributedDataParallel
    (detected from ``RANK``/``WORLD_SIZE``; see :mod:`qifsim.train.distributed`).

    Args:
        config: the run.
        out_dir: folder for ``config.json``, ``metrics.jsonl``, ``last.pt``,
            ``best.pt`` and ``tensorboard/``.
        resume: continue from ``out_dir/last.pt`` (start afresh if there is none).
            The config must match the checkpoint's except ``name``, ``data_root``
            and ``num_workers``.
        progress: tqdm bars (rank 0 only).
        device: ``"cpu"``, ``"cuda"``, ``"cuda:1"``...; default: ``cuda:LOCAL_RANK``
            if CUDA is available, else CPU.
        overwrite: allow starting afresh in a folder holding an earlier run
            (its checkpoints and metrics are deleted first).
        tensorboard: write TensorBoard events when tensorboard is installed.
        on_epoch_end: ``callback(epoch, row)`` after each epoch's files are written
            (on every rank); raising from it stops training (tests use this to
            simulate a crash).
        stop_after: return after this many epochs have been completed in total
            (a later ``resume=True`` call continues); ``None``: train to ``epochs``.

    Returns:
        The last metrics row plus ``best_test_acc``, ``best_epoch``,
        ``epochs_completed`` and ``out_dir``.

    Raises:
        FileExistsError: ``out_dir`` holds a run and neither ``resume`` nor ``overwrite``.
        CheckpointMismatchError: resuming with a config or model that does not match.
        TrainingDiverged: the training loss became NaN or infinite.
    """
    out = Path(out_dir)
    ctx = setup(device)
    log: MetricsLog | None = None
    finished = False
    try:
        with deterministic_mode(config.deterministic):
            _prepare_out_dir(out, resume, overwrite, ctx)
            checkpoint = load_checkpoint(out / LAST) if resume and (out / LAST).exists() else None
            if checkpoint is not None:
                # from_dict fills fields added since the checkpoint with their defaults
                saved = TrainConfig.from_dict(checkpoint["config"]).to_dict()
                check_resumable(saved, config.to_dict())
            if ctx.is_main:
                write_json_atomic(out / CONFIG_FILE, config.to_dict())
            log = MetricsLog(out, enabled=ctx.is_main, tensorboard=tensorboard)
            result = _run(config, out, ctx, checkpoint, log, progress, on_epoch_end, stop_after)
            finished = True
            return result
    finally:
        if log is not None:
            log.close()
        teardown(ctx, wait=finished)  # after a failure, do not wait for the other processes


def _run(
    config: TrainConfig,
    out: Path,
    ctx: DistContext,
    checkpoint: dict[str, Any] | None,
    log: MetricsLog,
    progress: bool,
    on_epoch_end: EpochCallback | None,
    stop_after: int | None,
) -> dict[str, Any]:
    """The body of :func:`fit` once the folder, context and checkpoint are settled."""
    from tqdm.auto import tqdm

    progress = progress and ctx.is_main
    seed_everything(config.seed)
    loaders = build_loaders(config, ctx=ctx)
    model = build_model_from_config(config, loaders.info)
    if ctx.distributed:  # weights are equal everywhere; dropout should differ per process
        seed_everything(config.seed + 7919 * ctx.rank)
    model.to(ctx.device)
    optimizer = make_optimizer(config, model)
    scheduler = make_scheduler(config, optimizer, len(loaders.train))
    history: list[dict[str, Any]] = []
    best: dict[str, Any] = {"test_acc": None, "epoch": None}
    start = 0
    if checkpoint is not None:
        load_model_state(model, checkpoint["model"])
        optimizer.load_state_dict(checkpoint["optimizer"])
        scheduler.load_state_dict(checkpoint["scheduler"])
        history = list(checkpoint["history"])
        best = dict(checkpoint["best"])
        start = int(checkpoint["epoch"])
        _restore_rngs(checkpoint["rng"], loaders, ctx)
        log.write(history, new_row=False)  # the file may lag the checkpoint after a crash
    train_model: nn.Module = model
    if ctx.distributed:
        from torch.nn.parallel import DistributedDataParallel

        ids = [ctx.device.index] if ctx.device.type == "cuda" else None
        train_model = DistributedDataParallel(model, device_ids=ids)
    end = config.epochs if stop_after is None else min(config.epochs, max(stop_after, start))
    epochs_bar = tqdm(
        total=config.epochs, initial=start, desc=config.name, disable=not progress, unit="epoch"
    )
    try:
        for epoch in range(start, end):
            began = time.perf_counter()
            loaders.set_epoch(epoch)
            row: dict[str, Any] = {"epoch": epoch + 1}
            lr = optimizer.param_groups[0]["lr"]
            row.update(
                _train_epoch(
                    train_model, loaders, optimizer, scheduler, config, ctx, epoch, progress
                )
            )
            row.update(test_loss=None, test_acc=None, spike_rates=None, mean_spike_rate=None)
            # Each process updated its batch-norm statistics on its own batches: use rank 0's.
            broadcast_buffers(model, ctx)
            if (epoch + 1) % config.eval_every == 0 or epoch + 1 == config.epochs:
                result = evaluate(
                    model,
                    loaders.test,
                    T=config.T,
                    static=loaders.info.static,
                    device=ctx.device,
                    amp=config.amp,
                    ctx=ctx,
                    progress=progress,
                    desc="test",
                )
                row.update(
                    test_loss=result["loss"],
                    test_acc=result["acc"],
                    spike_rates=result["spike_rates"],
                    mean_spike_rate=result["mean_spike_rate"],
                )
            row["lr"] = lr
            row["seconds"] = time.perf_counter() - began
            history.append(row)
            improved = row["test_acc"] is not None and (
                best["test_acc"] is None or row["test_acc"] > best["test_acc"]
            )
            if improved:
                best = {"test_acc": row["test_acc"], "epoch": epoch + 1}
            rngs = gather_objects(_rng_snapshot(loaders), ctx)
            if ctx.is_main:
                state = {
                    "format": FORMAT,
                    "format_version": FORMAT_VERSION,
                    "qifsim_version": qifsim_version(),
                    "epoch": epoch + 1,
                    "config": config.to_dict(),
                    "model": model.state_dict(),
                    "optimizer": optimizer.state_dict(),
                    "scheduler": scheduler.state_dict(),
                    "rng": rngs,
                    "history": history,
                    "best": best,
                    "world_size": ctx.world_size,
                }
                save_checkpoint(out / LAST, state)
                if improved:
                    copy_checkpoint(out / LAST, out / BEST)
                log.write(history)
                epochs_bar.set_postfix(_bar_fields(row), refresh=False)
                epochs_bar.update(1)
            if on_epoch_end is not None:
                on_epoch_end(epoch + 1, row)
    finally:
        epochs_bar.close()
    return _summary(history, best, out)


def _bar_fields(row: dict[str, Any]) -> dict[str, str]:
    fields = {"loss": f"{row['train_loss']:.4f}", "acc": f"{row['train_acc']:.3f}"}
    if row["test_acc"] is not None:
        fields["test_acc"] = f"{row['test_acc']:.3f}"
    if row["mean_spike_rate"] is not None:
        fields["rate"] = f"{row['mean_spike_rate']:.4f}"
    return fields
