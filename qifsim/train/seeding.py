"""Seeds, random-number-generator states and deterministic mode.

* :func:`seed_everything` seeds Python's ``random``, numpy's global generator
  and torch (CPU and every CUDA device).
* :func:`capture_rng_state` / :func:`restore_rng_state` save and restore all
  of them as plain tensors, ints and tuples, so a checkpoint that holds them
  loads with ``torch.load(weights_only=True)``.
* :func:`deterministic_mode` asks torch for deterministic algorithms for the
  duration of a block and restores the previous settings afterwards.
* :func:`worker_init_fn` seeds numpy and ``random`` inside DataLoader workers
  from the per-worker torch seed (which comes from the loader's generator).
"""

from __future__ import annotations

import contextlib
import os
import random
from collections.abc import Iterator
from typing import Any

import numpy as np
import torch

#: cuBLAS needs this workspace setting for deterministic results (set before its first use).
CUBLAS_WORKSPACE = ":4096:8"


def seed_everything(seed: int) -> None:
    """Seed ``random``, ``numpy.random`` (global) and torch (CPU and all CUDA devices)."""
    random.seed(seed)
    np.random.seed(seed % 2**32)  # noqa: NPY002 - the global generator user code may use
    torch.manual_seed(seed)  # also seeds every CUDA device


def _numpy_state() -> dict[str, Any]:
    name, keys, pos, has_gauss, cached = np.random.get_state()  # noqa: NPY002
    return {
        "name": str(name),
        "keys": torch.from_numpy(np.asarray(keys, dtype=np.int64)),
        "pos": int(pos),
        "has_gauss": int(has_gauss),
        "cached_gaussian": float(cached),
    }


def _set_numpy_state(state: dict[str, Any]) -> None:
    keys = state["keys"].numpy().astype(np.uint32)
    np.random.set_state(  # noqa: NPY002
        (state["name"], keys, state["pos"], state["has_gauss"], state["cached_gaussian"])
    )


def capture_rng_state() -> dict[str, Any]:
    """States of every global generator: ``{"python", "numpy", "torch", "cuda"}``.

    ``"cuda"`` is a list with one state per device, empty when CUDA is not
    initialised (then nothing has drawn from it).
    """
    cuda = []
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        cuda = [s.clone() for s in torch.cuda.get_rng_state_all()]
    return {
        "python": random.getstate(),
        "numpy": _numpy_state(),
        "torch": torch.get_rng_state().clone(),
        "cuda": cuda,
    }


def restore_rng_state(state: dict[str, Any]) -> None:
    """Restore what :func:`capture_rng_state` returned (CUDA states when both sides have them)."""
    version, internal, gauss = state["python"]
    random.setstate((version, tuple(internal), gauss))
    _set_numpy_state(state["numpy"])
    torch.set_rng_state(state["torch"].cpu())
    if state.get("cuda") and torch.cuda.is_available():
        count = torch.cuda.device_count()
        for device, cuda_state in enumerate(state["cuda"][:count]):
            torch.cuda.set_rng_state(cuda_state.cpu(), device)


def loader_generator(seed: int) -> torch.Generator:
    """A CPU generator seeded with ``seed`` (DataLoader worker seeds come from it)."""
    generator = torch.Generator()
    generator.manual_seed(seed)
    return generator


def worker_init_fn(worker_id: int) -> None:
    """Seed numpy and ``random`` in a DataLoader worker from its torch seed.

    torch gives worker ``k`` the seed ``base_seed + k``, where ``base_seed`` is
    drawn from the loader's generator; seeding the other generators from it
    makes any numpy/``random`` use in datasets reproducible too.
    """
    seed = torch.initial_seed() % 2**32
    np.random.seed(seed)  # noqa: NPY002
    random.seed(seed)


@contextlib.contextmanager
def deterministic_mode(enabled: bool = True) -> Iterator[None]:
    """Deterministic torch for the duration of the block (no-op when not ``enabled``).

    Sets ``torch.use_deterministic_algorithms(True, warn_only=True)`` (an op
    without a deterministic implementation warns instead of failing), turns
    cuDNN benchmarking off and cuDNN determinism on, and sets
    ``CUBLAS_WORKSPACE_CONFIG`` if unset (it only takes effect if cuBLAS has
    not been used yet in the process). Restores the previous settings on exit.
    """
    if not enabled:
        yield
        return
    previous = (
        torch.are_deterministic_algorithms_enabled(),
        torch.is_deterministic_algorithms_warn_only_enabled(),
        torch.backends.cudnn.benchmark,
        torch.backends.cudnn.deterministic,
    )
    os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", CUBLAS_WORKSPACE)
    torch.use_deterministic_algorithms(True, warn_only=True)
    torch.backends.cudnn.benchmark = False
    torch.backends.cudnn.deterministic = True
    try:
        yield
    finally:
        torch.use_deterministic_algorithms(previous[0], warn_only=previous[1])
        torch.backends.cudnn.benchmark = previous[2]
        torch.backends.cudnn.deterministic = previous[3]
