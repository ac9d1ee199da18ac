"""Every kernel of the fused neuron scan against the step-by-step reference, measured now.

A user-facing check (``qifsim demo`` prints it): one small QIF and one LIF layer
run forward and backward on each backend that can run here, and the spikes, the
membrane potentials and the input gradients are compared with
``impl="reference"``. On a machine without a GPU the Triton kernels run in
Triton's CPU interpreter (``TRITON_INTERPRET=1`` is set for the duration of the
call), so the same source that runs on CUDA is checked.
"""

from __future__ import annotations

import os
from contextlib import contextmanager
from typing import Any

import torch

from .fused import resolve_backend, triton_available
from .modules import LIF, QIF


@contextmanager
def _triton_interpreter(enabled: bool):
    """Set ``TRITON_INTERPRET=1`` inside the block when ``enabled`` (restored afterwards)."""
    if not enabled:
        yield
        return
    before = os.environ.get("TRITON_INTERPRET")
    os.environ["TRITON_INTERPRET"] = "1"
    try:
        yield
    finally:
        if before is None:
            os.environ.pop("TRITON_INTERPRET", None)
        else:
            os.environ["TRITON_INTERPRET"] = before


def _forward_backward(module: torch.nn.Module, x: torch.Tensor):
    """(spikes, v, dL/dx) of ``module`` on ``x`` with the loss ``(spikes * w).sum() + v.sum()``."""
    xi = x.clone().requires_grad_(True)
    module.record_states = True
    spikes, state = module(xi)
    v = state.v  # [T, B, ...]: the potential of every step
    weights = torch.linspace(0.5, 1.5, spikes.numel(), dtype=x.dtype).view_as(spikes)
    ((spikes * weights).sum() + v.sum()).backward()
    return spikes.detach(), v.detach(), xi.grad


def backend_parity(
    shape: tuple[int, ...] = (7, 3, 37), device: str | torch.device = "cpu", seed: int = 0
) -> dict[str, Any]:
    """Compare each available backend with the reference on a QIF and a LIF layer.

    Args:
        shape: input ``[T, B, ...]`` (small: the Triton interpreter is slow).
        device: where the layers run; on CPU the Triton kernels are interpreted.
        seed: of the input ``randn * 0.5 + 0.3``.

    Returns:
        ``{"auto": the backend ``"auto"`` picks, "neurons": {"qif"|"lif":
        {"reference_firing_rate": float, "backends": {backend: {"spikes_equal",
        "max_abs_v", "max_abs_grad"}}}}}``; backends that cannot run here are absent.
    """
    device = torch.device(device)
    gen = torch.Generator().manual_seed(seed)
    x = (torch.randn(*shape, generator=gen) * 0.5 + 0.3).to(device)
    backends = ["torch"]
    if device.type == "cpu":
        backends.insert(0, "numba")
    if triton_available():
        backends.append("triton")
    result: dict[str, Any] = {
        "auto": resolve_backend("auto", x, torch.float32),
        "shape": list(shape),
        "device": str(device),
        "triton_interpreted": device.type != "cuda" and "triton" in backends,
        "neurons": {},
    }
    for name, cls in (("qif", QIF), ("lif", LIF)):
        ref_s, ref_v, ref_g = _forward_backward(cls(impl="reference").to(device), x)
        rows: dict[str, dict[str, Any]] = {}
        for backend in backends:
            with _triton_interpreter(backend == "triton" and device.type != "cuda"):
                s, v, g = _forward_backward(cls(backend=backend).to(device), x)
            rows[backend] = {
                "spikes_equal": bool(torch.equal(s, ref_s)),
                "max_abs_v": float((v - ref_v).abs().max()),
                "max_abs_grad": float((g - ref_g).abs().max()),
            }
        result["neurons"][name] = {
            "reference_firing_rate": float(ref_s.mean()),
            "backends": rows,
        }
    return result
