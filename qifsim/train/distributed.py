"""Multi-process training under ``torchrun``: detection, set-up, reductions.

``torchrun --nproc_per_node=N`` starts N copies of the same command and sets
``RANK``, ``WORLD_SIZE`` and ``LOCAL_RANK`` (plus ``MASTER_ADDR``/``MASTER_PORT``)
in each. :func:`setup` reads them, joins the process group (``gloo`` on CPU,
``nccl`` on CUDA, one GPU per process: ``cuda:LOCAL_RANK``) and returns a
:class:`DistContext`. Without those variables (or with ``WORLD_SIZE=1``) it
returns a single-process context and touches nothing, so the same training
code runs either way.

The helpers (:func:`all_reduce_sum`, :func:`barrier`, :func:`main_first`,
:func:`gather_objects`, :func:`broadcast_buffers`) are no-ops or identities in a single process.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import torch
import torch.distributed as dist

ENV_VARS = ("RANK", "WORLD_SIZE", "LOCAL_RANK")


@dataclass(frozen=True)
class DistContext:
    """Where this process stands.

    Attributes:
        rank: global rank (0 in a single process).
        world_size: number of processes (1 in a single process).
        local_rank: rank on this machine (selects the GPU).
        device: the device this process computes on.
        initialized: whether this context joined a process group (and must leave it).
    """

    rank: int = 0
    world_size: int = 1
    local_rank: int = 0
    device: torch.device = torch.device("cpu")
    initialized: bool = False

    @property
    def distributed(self) -> bool:
        """True when more than one process trains together."""
        return self.world_size > 1

    @property
    def is_main(self) -> bool:
        """True on rank 0 (the process that writes files and shows progress)."""
        return self.rank == 0


def env_world() -> tuple[int, int, int] | None:
    """``(rank, world_size, local_rank)`` from the torchrun variables, or ``None`` if unset."""
    if not all(name in os.environ for name in ("RANK", "WORLD_SIZE")):
        return None
    rank, world = int(os.environ["RANK"]), int(os.environ["WORLD_SIZE"])
    local = int(os.environ.get("LOCAL_RANK", rank))
    if not 0 <= rank < world:
        raise RuntimeError(f"RANK={rank} is outside 0..WORLD_SIZE-1 (WORLD_SIZE={world})")
    return rank, world, local


def resolve_device(device: str | torch.device | None, local_rank: int = 0) -> torch.device:
    """``device``, or ``cuda:local_rank`` when CUDA is available, else CPU.

    A bare ``"cuda"`` also becomes ``cuda:local_rank`` (one GPU per process).
    """
    if device is not None:
        dev = torch.device(device)
        if dev.type == "cuda" and dev.index is None:
            dev = torch.device("cuda", local_rank % max(1, torch.cuda.device_count()))
        return dev
    if torch.cuda.is_available():
        return torch.device("cuda", local_rank % torch.cuda.device_count())
    return torch.device("cpu")


def match_numba_threads() -> int:
    """Limit numba's threads to torch's intra-op threads; return the number now in use.

    torchrun sets ``OMP_NUM_THREADS=1`` for each of several processes, which
    limits torch but not numba (the neurons' CPU kernels), whose default is one
    thread per core in every process; worse, numba's OpenMP threading layer
    resets the shared OpenMP thread count (torch's too) to that default when it
    starts. N processes then oversubscribe the cores (measured on 2 cores, 2
    processes: 3-7x slower epochs). This starts numba's threads now, limits
    them, and puts torch's count back. Returns 0 when numba is not installed.
    """
    try:
        import numba
    except ImportError:
        return 0
    torch_threads = torch.get_num_threads()
    threads = max(1, min(torch_threads, numba.config.NUMBA_NUM_THREADS))
    numba.set_num_threads(threads)  # starts numba's thread pool
    torch.set_num_threads(torch_threads)
    return threads


def setup(device: str | torch.device | None = None) -> DistContext:
    """Join the torchrun process group if there is one; see the module docstring.

    A process group that is already initialised (by the caller) is used as is.
    """
    world = env_world()
    if world is None or world[1] == 1:
        return DistContext(device=resolve_device(device))
    rank, world_size, local_rank = world
    dev = resolve_device(device, local_rank)
    if dev.type == "cuda":
        torch.cuda.set_device(dev)
    if dist.is_initialized():
        return DistContext(rank, world_size, local_rank, dev, initialized=False)
    if dev.type == "cpu":
        match_numba_threads()
    backend = "nccl" if dev.type == "cuda" else "gloo"
    kwargs = {"device_id": dev} if dev.type == "cuda" else {}
    dist.init_process_group(backend=backend, rank=rank, world_size=world_size, **kwargs)
    return DistContext(rank, world_size, local_rank, dev, initialized=True)


def teardown(ctx: DistContext, wait: bool = True) -> None:
    """Leave the process group if :func:`setup` joined it (after a barrier when ``wait``).

    Pass ``wait=False`` on an error path: the other processes may never reach the
    barrier (torchrun stops them once this one exits with an error).
    """
    if ctx.initialized and dist.is_initialized():
        if wait:
            dist.barrier()
        dist.destroy_process_group()


def barrier(ctx: DistContext) -> None:
    """Wait for every process (no-op in a single process)."""
    if ctx.distributed:
        dist.barrier()


def all_reduce_sum(values: torch.Tensor | Sequence[float], ctx: DistContext) -> torch.Tensor:
    """Sum ``values`` over all processes, in float64 (exact for counts below 2**53).

    Returns a float64 tensor on the CPU (the input is not modified).
    """
    tensor = torch.as_tensor(values, dtype=torch.float64).detach().clone()
    if not ctx.distributed:
        return tensor.cpu()
    on = ctx.device if ctx.device.type == "cuda" else torch.device("cpu")
    tensor = tensor.to(on)
    dist.all_reduce(tensor, op=dist.ReduceOp.SUM)
    return tensor.cpu()


def gather_objects(obj: Any, ctx: DistContext) -> list[Any]:
    """``[obj of rank 0, obj of rank 1, ...]`` on every process (``[obj]`` in a single one)."""
    if not ctx.distributed:
        return [obj]
    out: list[Any] = [None] * ctx.world_size
    dist.all_gather_object(out, obj)
    return out


def broadcast_buffers(module: torch.nn.Module, ctx: DistContext) -> None:
    """Copy rank 0's buffers (e.g. batch-norm running statistics) to every process."""
    if not ctx.distributed:
        return
    with torch.no_grad():
        for buffer in module.buffers():
            dist.broadcast(buffer, src=0)


@contextlib.contextmanager
def main_first(ctx: DistContext) -> Iterator[None]:
    """Run the block on rank 0 first, then on the other ranks (e.g. to build a shared cache)."""
    if ctx.distributed and not ctx.is_main:
        dist.barrier()
    yield
    if ctx.distributed and ctx.is_main:
        dist.barrier()
