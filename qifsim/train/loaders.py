"""DataLoaders, samplers and the batch layout the models take.

Shuffling comes from :class:`torch.utils.data.DistributedSampler` in every
case (one replica in a single process): its order depends only on
``(seed, epoch)``, so a resumed run draws the same batches, and under
``torchrun`` the processes split each epoch's permutation between them.
Test sets are split without padding (:class:`ShardSampler`), so the reduced
counts cover every test sample exactly once.

``batch_size`` in the config is the global batch: each of ``W`` processes
loads ``batch_size / W`` samples per step.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch.utils.data import DataLoader, Dataset, DistributedSampler, Sampler

from .config import TrainConfig
from .data import DataInfo, build_datasets
from .distributed import DistContext, main_first
from .seeding import loader_generator, worker_init_fn


class ShardSampler(Sampler[int]):
    """Indices ``rank, rank + world, rank + 2 world, ...`` of ``range(n)`` (no padding)."""

    def __init__(self, n: int, rank: int = 0, world_size: int = 1) -> None:
        if not 0 <= rank < world_size:
            raise ValueError(f"rank must be in 0..{world_size - 1}, got {rank}")
        self.n, self.rank, self.world_size = int(n), int(rank), int(world_size)

    def __iter__(self):
        return iter(range(self.rank, self.n, self.world_size))

    def __len__(self) -> int:
        return len(range(self.rank, self.n, self.world_size))


@dataclass
class Loaders:
    """The loaders of one run.

    Attributes:
        train: shuffled training loader (its sampler a ``DistributedSampler``).
        test: test loader (this process's shard, in order).
        info: the data's :class:`~qifsim.train.data.DataInfo`.
        generator: the training loader's generator (worker seeds are drawn from
            it; its state goes into checkpoints).
    """

    train: DataLoader
    test: DataLoader
    info: DataInfo
    generator: torch.Generator

    def set_epoch(self, epoch: int) -> None:
        """Select ``epoch``'s shuffle order and augmentation draws (call before each epoch)."""
        sampler = self.train.sampler
        if isinstance(sampler, DistributedSampler):
            sampler.set_epoch(epoch)
        dataset = self.train.dataset
        if hasattr(dataset, "set_epoch"):
            dataset.set_epoch(epoch)


def local_batch_size(batch_size: int, world_size: int) -> int:
    """Per-process batch size; raise unless ``world_size`` divides ``batch_size``."""
    if batch_size % world_size:
        raise ValueError(
            f"batch_size {batch_size} is the global batch and must be divisible by the "
            f"number of processes ({world_size})"
        )
    return batch_size // world_size


def _context(distributed: bool, ctx: DistContext | None) -> DistContext:
    if ctx is not None:
        return ctx
    if not distributed:
        return DistContext()
    import torch.distributed as dist

    if not dist.is_initialized():
        raise RuntimeError("distributed=True needs an initialised process group (torchrun)")
    return DistContext(dist.get_rank(), dist.get_world_size(), 0, torch.device("cpu"))


def build_loaders(
    config: TrainConfig,
    distributed: bool = False,
    ctx: DistContext | None = None,
    datasets: tuple[Dataset, Dataset, DataInfo] | None = None,
) -> Loaders:
    """Training and test loaders for ``config``.

    Args:
        config: the run's configuration.
        distributed: shard over the initialised process group (ignored when
            ``ctx`` is given, which says it).
        ctx: this process's :class:`~qifsim.train.distributed.DistContext`.
        datasets: ``(train_ds, test_ds, info)`` if already built; else
            :func:`~qifsim.train.data.build_datasets` (rank 0 first, so that a
            shared cache is built once).
    """
    ctx = _context(distributed, ctx)
    if datasets is None:
        with main_first(ctx):
            datasets = build_datasets(config)
    train_ds, test_ds, info = datasets
    batch = local_batch_size(config.batch_size, ctx.world_size)
    sampler = DistributedSampler(
        train_ds,
        num_replicas=ctx.world_size,
        rank=ctx.rank,
        shuffle=True,
        seed=config.seed,
        drop_last=False,
    )
    generator = loader_generator(config.seed)
    common = {
        "num_workers": config.num_workers,
        "worker_init_fn": worker_init_fn if config.num_workers else None,
        "pin_memory": ctx.device.type == "cuda",
        "persistent_workers": False,  # workers must see set_epoch's new epoch
    }
    train = DataLoader(train_ds, batch_size=batch, sampler=sampler, generator=generator, **common)
    test_sampler = ShardSampler(len(test_ds), ctx.rank, ctx.world_size)  # type: ignore[arg-type]
    test = DataLoader(test_ds, batch_size=batch, sampler=test_sampler, **common)
    return Loaders(train, test, info, generator)


def stack_time_first(
    dataset, T: int, static: bool, n: int | None = None
) -> tuple[torch.Tensor, torch.Tensor]:
    """The first ``n`` items of ``dataset`` (all by default) as one time-first batch.

    Returns ``(x [T, N, C, H, W] float32, labels [N] int64)``, the layout the models take.
    """
    count = len(dataset) if n is None else min(int(n), len(dataset))
    if count < 1:
        raise ValueError(f"no samples to stack (dataset of {len(dataset)} items, n={n})")
    xs, ys = zip(*(dataset[i] for i in range(count)), strict=True)
    x = torch.stack([torch.as_tensor(v) for v in xs]).float()
    return to_time_first(x, T, static), torch.as_tensor(ys, dtype=torch.int64)


def to_time_first(x: torch.Tensor, T: int, static: bool) -> torch.Tensor:
    """A batch as the models take it: ``[T, B, C, H, W]``.

    Event frames ``[B, T, C, H, W]`` are transposed (and made contiguous);
    static images ``[B, C, H, W]`` are repeated ``T`` times by
    :func:`qifsim.models.direct_encode`.
    """
    if static:
        if x.dim() != 4:
            raise ValueError(f"expected static images [B, C, H, W], got shape {tuple(x.shape)}")
        from ..models import direct_encode

        return direct_encode(x, T)
    if x.dim() != 5 or x.shape[1] != T:
        raise ValueError(f"expected event frames [B, T={T}, C, H, W], got shape {tuple(x.shape)}")
    return x.transpose(0, 1).contiguous()
