"""Analysis of trained models with quadratic synapses (the Dit paper's Table 4 and Section 4.3).

For Gaussian inputs ``E[x^T A x] = mu^T A mu + tr(A Sigma)``: the trace term is
what the quadratic neuron reads from the input's correlations. Table 4 removes
it from every quadratic term of a trained network ("minus tr(A Sigma)": each
output ``i`` of a quadratic layer loses the constant ``tr(A_i Sigma)``, with
``Sigma`` the covariance of that layer's input vectors estimated on training
samples), or removes the quadratic term altogether ("minus x^T A x"), and
reports the test accuracy of each.

Which vectors ``x`` a layer reads: for a :class:`~qifsim.layers.QuadraticLinear`
its input rows ``[..., in]``; for conv/channel layers
(:class:`~qifsim.layers.ChannelQuadratic`, :class:`~qifsim.layers.QuadraticConv2d`
in channel mode) the channel vector at the centre of each output pixel
(``centre_pixels(x)``). ``Sigma`` is pooled over samples and pixels (A is shared
by all pixels), estimated in float64 with running sums of ``x`` and ``x x^T``.
"Pixel" mode layers are not supported (their A acts on k x k patches).

The hooks work on the *leaf* quadratic modules (those without quadratic
sub-modules), so a ``QuadraticConv2d``'s ``.quadratic`` child is the one changed.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterable, Iterator
from typing import Any

import torch
from torch import nn

ABLATIONS = ("none", "minus_trace", "minus_quadratic")

Prepare = Callable[[torch.Tensor], torch.Tensor]


def quadratic_leaves(model: nn.Module) -> dict[str, nn.Module]:
    """Quadratic modules of ``model`` without quadratic sub-modules, by qualified name.

    Raises:
        ValueError: the model has none, or one is in "pixel" mode (not supported).
    """

    def quadratic(m: nn.Module) -> bool:
        return callable(getattr(m, "quadratic_parameters", None))

    leaves = {
        name: m
        for name, m in model.named_modules()
        if quadratic(m) and not any(quadratic(c) for c in m.modules() if c is not m)
    }
    if not leaves:
        raise ValueError("the model has no quadratic layers (modules with quadratic_parameters())")
    for name, m in leaves.items():
        if getattr(m, "mode", "channel") == "pixel":
            raise ValueError(
                f"quadratic layer {name!r} is in 'pixel' mode: the tr(A Sigma) ablation is defined "
                "for channel-wise and linear quadratic layers only"
            )
    return leaves


def _is_linear(module: nn.Module) -> bool:
    return hasattr(module, "in_features")


def layer_vectors(module: nn.Module, x: torch.Tensor) -> torch.Tensor:
    """The vectors a quadratic layer's A acts on, ``[M, Cin]`` (rows: samples x pixels)."""
    if _is_linear(module):
        return x.reshape(-1, x.shape[-1])
    centre = module.centre_pixels(x)  # [N, Cin, H, W]
    return centre.permute(0, 2, 3, 1).reshape(-1, centre.shape[1])


def quadratic_term(module: nn.Module, x: torch.Tensor) -> torch.Tensor:
    """Reference ``x^T A_i x`` of a leaf layer for its input ``x`` (the shape of its output)."""
    a = module.matrices().to(x.dtype)
    if _is_linear(module):
        return torch.einsum("...i,oij,...j->...o", x, a, x)
    centre = module.centre_pixels(x)
    return torch.einsum("nihw,oij,njhw->nohw", centre, a, centre)


def _only_quadratic(module: nn.Module) -> bool:
    """True when the module's output is the quadratic term alone (no linear/conv part)."""
    return not isinstance(getattr(module, "linear", None), nn.Module) and not isinstance(
        getattr(module, "conv", None), nn.Module
    )


def default_prepare(model: nn.Module) -> Prepare:
    """Input preparation for ``model``: static images ``[B, C, H, W]`` become ``[1, B, C, H, W]``
    for the time-first qifsim models (T = 1, the ANN Dit models); other input passes unchanged."""
    from ..models.base import SpikingModel

    def prepare(x: torch.Tensor) -> torch.Tensor:
        if isinstance(model, SpikingModel) and x.dim() == 4:
            return x.unsqueeze(0)
        return x

    return prepare


class _Moments:
    """Running float64 sums of ``x``, ``x x^T`` and the count, per class when labels are given."""

    def __init__(self, dim: int, classes: int | None = None) -> None:
        groups = 1 if classes is None else classes
        self.n = torch.zeros(groups, dtype=torch.float64)
        self.s = torch.zeros(groups, dim, dtype=torch.float64)
        self.ss = torch.zeros(groups, dim, dim, dtype=torch.float64)

    def add(self, v: torch.Tensor, group: torch.Tensor | None = None) -> None:
        v = v.detach().to("cpu", torch.float64)
        if group is None:
            group = torch.zeros(v.shape[0], dtype=torch.long)
        one_hot = torch.nn.functional.one_hot(group, self.n.shape[0]).to(torch.float64)
        self.n += one_hot.sum(0)
        self.s += one_hot.T @ v
        self.ss += torch.einsum("mg,mi,mj->gij", one_hot, v, v)

    def covariance(self) -> torch.Tensor:
        """``[groups, d, d]`` (biased, ``E[x x^T] - mu mu^T``)."""
        if (self.n == 0).any():
            raise ValueError("no samples reached a quadratic layer (an empty loader or class?)")
        mu = self.s / self.n[:, None]
        return self.ss / self.n[:, None, None] - mu[:, :, None] * mu[:, None, :]


def _batches(loader: Iterable, max_batches: int | None) -> Iterator[tuple[Any, Any]]:
    for i, batch in enumerate(loader):
        if max_batches is not None and i >= max_batches:
            return
        yield batch


def _row_labels(
    name: str, module: nn.Module, x: torch.Tensor, rows: int, y: torch.Tensor
) -> torch.Tensor:
    """The label of each of the ``rows`` vectors :func:`layer_vectors` took from input ``x``.

    Inputs are time-first: the leading ``N`` vectors (conv: ``x.shape[0]``; linear: every
    dimension but the features) are ``T x B`` in time-major order (``MergeTime``, ``[T, B, F]``)
    or just ``B``, each repeated over its pixels; so row ``r`` belongs to sample
    ``(r // pixels) % B``.
    """
    batch = y.numel()
    lead = int(x.shape[0]) if not _is_linear(module) else rows
    if lead % batch or rows % lead:
        raise ValueError(
            f"layer {name!r} sees {lead} leading vectors for {batch} labels; per-class "
            "covariances need time-first input [T, B, ...] or [B, ...]"
        )
    pixels = rows // lead
    sample = (torch.arange(rows) // pixels) % batch
    return y[sample]


@torch.no_grad()
def input_covariances(
    model: nn.Module,
    loader: Iterable,
    *,
    per_class: int | None = None,
    prepare: Prepare | None = None,
    device: torch.device | str = "cpu",
    max_batches: int | None = None,
) -> dict[str, torch.Tensor]:
    """Covariance of each leaf quadratic layer's input vectors over ``loader`` (eval mode).

    Args:
        model: the trained model.
        loader: yields ``(x, labels)``.
        per_class: number of classes to split by (then ``labels`` pick the class
            of all of a sample's vectors); ``None``: one pooled covariance.
        prepare: maps a loader batch to the model's input (default
            :func:`default_prepare`).
        device: where to run the model.
        max_batches: stop after this many batches.

    Returns:
        ``{layer name: Sigma [Cin, Cin]}`` (float64), or ``[classes, Cin, Cin]`` per class.
    """
    leaves = quadratic_leaves(model)
    prepare = prepare or default_prepare(model)
    moments: dict[str, _Moments] = {}
    labels: dict[str, torch.Tensor] = {}

    def hook(name: str):
        def fn(module, inputs, output):
            v = layer_vectors(module, inputs[0])
            if name not in moments:
                moments[name] = _Moments(v.shape[1], per_class)
            group = None
            if per_class is not None:
                group = _row_labels(name, module, inputs[0], v.shape[0], labels["y"])
            moments[name].add(v, group)

        return fn

    was_training = model.training
    model.eval()
    handles = [m.register_forward_hook(hook(n)) for n, m in leaves.items()]
    try:
        for x, y in _batches(loader, max_batches):
            y = torch.as_tensor(y).long().cpu()
            if per_class is not None and (y.min() < 0 or y.max() >= per_class):
                raise ValueError(f"labels must lie in [0, {per_class}), got {y.min()}..{y.max()}")
            labels["y"] = y
            model(prepare(x.to(device)))
    finally:
        for h in handles:
            h.remove()
        model.train(was_training)
    missing = sorted(set(leaves) - set(moments))
    if missing:
        raise ValueError(f"no input reached quadratic layers {missing} (an empty loader?)")
    return {
        name: (cov[0] if per_class is None else cov)
        for name, cov in ((n, moments[n].covariance()) for n in leaves)
    }


def trace_terms(module: nn.Module, sigma: torch.Tensor) -> torch.Tensor:
    """``tr(A_i Sigma)`` for each output ``i`` of a leaf layer: ``[Cout]`` (float64)."""
    a = module.matrices().detach().to("cpu", torch.float64)
    if sigma.shape != a.shape[1:]:
        raise ValueError(
            f"Sigma {tuple(sigma.shape)} does not match the layer's A {tuple(a.shape)}"
        )
    return torch.einsum("oij,ji->o", a, sigma.to(torch.float64))


@contextlib.contextmanager
def quadratic_ablation(
    model: nn.Module, mode: str, sigmas: dict[str, torch.Tensor] | None = None
) -> Iterator[nn.Module]:
    """Within the block, every leaf quadratic layer of ``model`` is ablated.

    Args:
        model: the model (changed in place by forward hooks, restored on exit).
        mode: ``"none"``; ``"minus_trace"``: output ``i`` minus ``tr(A_i Sigma)``
            (needs ``sigmas`` from :func:`input_covariances`); ``"minus_quadratic"``:
            the quadratic term ``x^T A_i x`` dropped.
        sigmas: ``{layer name: Sigma}``.
    """
    if mode not in ABLATIONS:
        raise ValueError(f"mode must be one of {ABLATIONS}, got {mode!r}")
    leaves = quadratic_leaves(model)
    handles = []
    if mode == "minus_trace":
        if sigmas is None or set(sigmas) != set(leaves):
            raise ValueError(
                f"minus_trace needs a Sigma for each quadratic layer {sorted(leaves)}; "
                "estimate them with input_covariances(model, train_loader)"
            )
    for name, module in leaves.items():
        if mode == "minus_trace":
            trace = trace_terms(module, sigmas[name])

            def hook(m, inputs, output, trace=trace):
                shift = trace.to(output.device, output.dtype)
                if not _is_linear(m):
                    shift = shift[:, None, None]
                return output - shift

        elif mode == "minus_quadratic":

            def hook(m, inputs, output):
                if _only_quadratic(m):
                    return torch.zeros_like(output)
                return output - quadratic_term(m, inputs[0]).to(output.dtype)

        else:
            continue
        handles.append(module.register_forward_hook(hook))
    try:
        yield model
    finally:
        for h in handles:
            h.remove()


@torch.no_grad()
def accuracy(
    model: nn.Module,
    loader: Iterable,
    *,
    prepare: Prepare | None = None,
    device: torch.device | str = "cpu",
    max_batches: int | None = None,
) -> float:
    """Top-1 accuracy of ``model`` (eval mode) on ``loader`` (``(x, labels)`` batches)."""
    prepare = prepare or default_prepare(model)
    was_training = model.training
    model.eval()
    correct = total = 0
    try:
        for x, y in _batches(loader, max_batches):
            y = torch.as_tensor(y).to(device)
            logits = model(prepare(x.to(device)))
            correct += int((logits.argmax(-1) == y).sum())
            total += int(y.numel())
    finally:
        model.train(was_training)
    if total == 0:
        raise ValueError("the loader yielded no samples")
    return correct / total


def table4_ablation(
    model: nn.Module,
    train_loader: Iterable,
    test_loader: Iterable,
    *,
    prepare: Prepare | None = None,
    device: torch.device | str = "cpu",
    max_batches: int | None = None,
) -> dict[str, Any]:
    """The Dit paper's Table 4 for a trained model: accuracy as is, minus ``tr(A Sigma)``,
    minus ``x^T A x``.

    ``Sigma`` of each quadratic layer is estimated on ``train_loader`` (pass
    one without random augmentation for a clean estimate); accuracies on ``test_loader``.

    Returns:
        ``{"original", "minus_trace", "minus_quadratic"}`` (accuracies in [0, 1])
        and ``"trace_terms": {layer: [tr(A_i Sigma) per output]}``.
    """
    kw = {"prepare": prepare, "device": device, "max_batches": max_batches}
    sigmas = input_covariances(model, train_loader, **kw)
    out: dict[str, Any] = {}
    for mode, key in (
        ("none", "original"),
        ("minus_trace", "minus_trace"),
        ("minus_quadratic", "minus_quadratic"),
    ):
        with quadratic_ablation(model, mode, sigmas):
            out[key] = accuracy(model, test_loader, **kw)
    leaves = quadratic_leaves(model)
    out["trace_terms"] = {n: trace_terms(leaves[n], s).tolist() for n, s in sigmas.items()}
    return out


def leading_eigenvector(matrix: torch.Tensor) -> torch.Tensor:
    """Unit eigenvector of the eigenvalue of largest magnitude of a symmetric matrix ``[d, d]``."""
    values, vectors = torch.linalg.eigh(matrix.to(torch.float64))
    return vectors[:, values.abs().argmax()]


def eigen_alignment(matrices: torch.Tensor, covariances: torch.Tensor) -> torch.Tensor:
    """``|cos|`` between the leading eigenvector of each ``A_i`` and of each class covariance.

    Args:
        matrices: ``[Cout, d, d]`` symmetric (e.g. a layer's ``matrices()``).
        covariances: ``[classes, d, d]`` (e.g. :func:`input_covariances` with ``per_class``).

    Returns:
        ``[Cout, classes]`` in [0, 1] (eigenvectors have no sign).
    """
    if matrices.dim() != 3 or covariances.dim() != 3:
        raise ValueError(
            f"expected matrices [Cout, d, d] and covariances [classes, d, d], got "
            f"{tuple(matrices.shape)} and {tuple(covariances.shape)}"
        )
    if matrices.shape[1:] != covariances.shape[1:]:
        raise ValueError(
            f"dimension mismatch: A {tuple(matrices.shape)} vs Sigma {tuple(covariances.shape)}"
        )
    a = torch.stack([leading_eigenvector(m) for m in matrices.detach()])
    s = torch.stack([leading_eigenvector(c) for c in covariances.detach()])
    return (a @ s.T).abs()
