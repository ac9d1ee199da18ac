"""Threshold-dependent batch normalization (tdBN, Zheng et al., AAAI 2021).

For a time-first pre-synaptic input ``I`` of shape ``[T, B, C, ...]`` and each
channel ``k``, the statistics are taken over batch, time and space together::

    Î_k = η · u_th · (I_k − E[I_k]) / sqrt(Var[I_k] + ε)        (tdBN, eq. 7)
    Ī_k = γ_k · Î_k + ξ_k                                        (tdBN, eq. 8)

``u_th`` is the firing threshold of the neurons the layer feeds (membrane
potential units), ``η`` is 1 normally and ``1/√2`` on the two branches that
meet at a residual addition, and ``γ`` (weight, init 1) and ``ξ`` (bias,
init 0) are learnable. In training mode ``E`` and ``Var`` (biased) are the
statistics of the current batch; in eval mode they are the running
statistics, updated like :class:`torch.nn.BatchNorm2d` (unbiased variance,
exponential moving average with ``momentum``, or a cumulative average when
``momentum is None``).

Merging ``T`` into ``B`` makes this exactly ordinary batch norm with the
effective weight ``γ · η · u_th``, which is how it is implemented. The
parameters and buffers are those of torch's batch norm, so state dicts are
interchangeable with :class:`torch.nn.BatchNorm1d` / ``BatchNorm2d``.

Also here: :func:`fold_batchnorm`, which folds an eval-mode tdBN into the
preceding ``Conv1d``/``Conv2d``/``Linear``.
"""

from __future__ import annotations

import copy
import math

import torch
import torch.nn.functional as F
from torch import nn
from torch.nn.modules.batchnorm import _BatchNorm

__all__ = ["TDBatchNorm1d", "TDBatchNorm2d", "fold_batchnorm"]

#: Layer types that :func:`fold_batchnorm` can fold a tdBN into.
FOLDABLE_TYPES: tuple[type[nn.Module], ...] = (nn.Conv1d, nn.Conv2d, nn.Linear)


def _check_positive(name: str, value: float, rule: str) -> float:
    """Return ``value`` as a float, or raise ``ValueError`` citing ``rule``."""
    v = float(value)
    if not (math.isfinite(v) and v > 0.0):
        raise ValueError(f"{name} must be {rule}, got {value!r}")
    return v


class _TDBatchNorm(_BatchNorm):
    """Shared tdBN logic; subclasses fix the accepted layouts.

    Args:
        num_features: number of channels ``C``.
        u_th: firing threshold of the following neurons (potential units);
            finite and > 0.
        eta: ``η``, 1.0 normally, ``1/√2`` on residual branches; finite and > 0.
        eps: ``ε`` added to the variance.
        momentum: running-statistics momentum; ``None`` = cumulative average.
        affine: learn ``γ`` (weight) and ``ξ`` (bias).
        track_running_stats: keep running mean/variance for eval mode.
    """

    #: Accepted numbers of dims, and the layout named in error messages.
    _ndims: tuple[int, ...] = ()
    _layout: str = ""

    def __init__(
        self,
        num_features: int,
        u_th: float = 0.5,
        eta: float = 1.0,
        eps: float = 1e-5,
        momentum: float | None = 0.1,
        affine: bool = True,
        track_running_stats: bool = True,
        device: torch.device | str | None = None,
        dtype: torch.dtype | None = None,
    ) -> None:
        super().__init__(
            num_features, eps, momentum, affine, track_running_stats, device=device, dtype=dtype
        )
        self.u_th = _check_positive("u_th", u_th, "finite and > 0")
        self.eta = _check_positive("eta", eta, "finite and > 0 (1 or 1/sqrt(2) on residuals)")

    def extra_repr(self) -> str:
        """Torch's batch-norm repr plus ``u_th`` and ``eta``."""
        return f"{super().extra_repr()}, u_th={self.u_th}, eta={self.eta}"

    def _check_input_dim(self, input: torch.Tensor) -> None:
        """Raise ``ValueError`` unless ``input`` is ``[T, B, C, ...]`` in this layout."""
        if input.dim() not in self._ndims or input.shape[2] != self.num_features:
            raise ValueError(
                f"{type(self).__name__} expects a time-first input {self._layout} "
                f"with C={self.num_features}, got shape {tuple(input.shape)}"
            )

    def scale(self, like: torch.Tensor | None = None) -> torch.Tensor:
        """Effective batch-norm weight ``γ · η · u_th``, shape ``[C]``.

        Without ``γ`` (``affine=False``) a constant vector on the device and
        dtype of ``like`` (or of the running mean, or the defaults).
        """
        gain = self.eta * self.u_th
        if self.weight is not None:
            return self.weight * gain
        ref = like if like is not None else self.running_mean
        kwargs = {} if ref is None else {"device": ref.device, "dtype": ref.dtype}
        return torch.full((self.num_features,), gain, **kwargs)

    def _average_factor(self) -> float:
        """Running-statistics update factor for this step (0 when not updating).

        Increments ``num_batches_tracked`` when training with running stats.
        """
        if not (self.training and self.track_running_stats):
            return 0.0
        assert self.num_batches_tracked is not None
        self.num_batches_tracked.add_(1)
        if self.momentum is None:
            return 1.0 / float(self.num_batches_tracked)
        return float(self.momentum)

    def forward(self, input: torch.Tensor) -> torch.Tensor:
        """Normalize ``input`` ``[T, B, C, ...]`` -> same shape (see module docstring)."""
        self._check_input_dim(input)
        factor = self._average_factor()
        use_batch_stats = self.training or self.running_mean is None
        keep_stats = not self.training or self.track_running_stats
        out = F.batch_norm(
            input.flatten(0, 1),  # [T*B, C, ...]
            self.running_mean if keep_stats else None,
            self.running_var if keep_stats else None,
            self.scale(input),
            self.bias,
            use_batch_stats,
            factor,
            self.eps,
        )
        return out.reshape(input.shape)

    def fold_into(self, layer: nn.Module) -> nn.Module:
        """Same as :func:`fold_batchnorm` ``(layer, self)``."""
        return fold_batchnorm(layer, self)


class TDBatchNorm1d(_TDBatchNorm):
    """tdBN for time-first ``[T, B, C]`` or ``[T, B, C, L]`` inputs.

    Per channel, statistics over ``T``, ``B`` (and ``L``); output same shape:
    ``γ · η · u_th · (I − E[I]) / sqrt(Var[I] + ε) + ξ``.
    """

    _ndims = (3, 4)
    _layout = "[T, B, C] or [T, B, C, L]"


class TDBatchNorm2d(_TDBatchNorm):
    """tdBN for time-first ``[T, B, C, H, W]`` inputs.

    Per channel, statistics over ``T``, ``B``, ``H`` and ``W``; output same
    shape: ``γ · η · u_th · (I − E[I]) / sqrt(Var[I] + ε) + ξ``.
    """

    _ndims = (5,)
    _layout = "[T, B, C, H, W]"


def _out_channels(layer: nn.Module) -> int:
    """Number of output channels/features of a foldable ``layer``."""
    if isinstance(layer, nn.Linear):
        return layer.out_features
    return layer.out_channels  # Conv1d / Conv2d


def _check_foldable(layer: nn.Module, bn: _TDBatchNorm) -> None:
    """Raise ``ValueError`` unless ``bn`` can be folded into ``layer``."""
    if not isinstance(layer, FOLDABLE_TYPES):
        names = ", ".join(f"torch.nn.{t.__name__}" for t in FOLDABLE_TYPES)
        raise ValueError(f"cannot fold into {type(layer).__name__}; supported types: {names}")
    if bn.running_mean is None or bn.running_var is None:
        raise ValueError(
            "cannot fold a tdBN without running statistics (track_running_stats=False)"
        )
    if _out_channels(layer) != bn.num_features:
        raise ValueError(
            f"channel mismatch: {type(layer).__name__} has {_out_channels(layer)} output "
            f"channels, the tdBN has num_features={bn.num_features}"
        )


@torch.no_grad()
def fold_batchnorm(layer: nn.Module, bn: _TDBatchNorm) -> nn.Module:
    """Fold an eval-mode tdBN into the layer before it.

    Returns a new module (deep copy of ``layer``, always with a bias) such that
    ``new(x) == bn.eval()(layer(x))`` per sample: with
    ``s = γ · η · u_th / sqrt(running_var + ε)`` (shape ``[C_out]``),
    ``W' = W · s`` per output channel and ``b' = (b − running_mean) · s + ξ``
    (``b = 0`` when ``layer`` has no bias). Computed in float64, stored in the
    layer's dtype. ``layer`` and ``bn`` are not modified.

    Args:
        layer: ``torch.nn.Conv1d``, ``torch.nn.Conv2d`` or ``torch.nn.Linear``.
        bn: a :class:`TDBatchNorm1d`/:class:`TDBatchNorm2d` with running stats
            and ``num_features`` equal to the layer's output channels.

    Raises:
        ValueError: unsupported layer type, no running statistics, or a
            channel-count mismatch.
    """
    _check_foldable(layer, bn)
    weight = layer.weight.detach().double()
    bias = torch.zeros(weight.shape[0], dtype=torch.float64, device=weight.device)
    if layer.bias is not None:
        bias = layer.bias.detach().double()
    gamma_eff = bn.scale(weight).detach().double().to(weight.device)
    s = gamma_eff / torch.sqrt(bn.running_var.double().to(weight.device) + bn.eps)
    xi = torch.zeros_like(s) if bn.bias is None else bn.bias.detach().double().to(s.device)
    new_weight = weight * s.view(-1, *([1] * (weight.dim() - 1)))
    new_bias = (bias - bn.running_mean.double().to(s.device)) * s + xi

    folded = copy.deepcopy(layer)
    dtype = layer.weight.dtype
    folded.weight = nn.Parameter(new_weight.to(dtype), layer.weight.requires_grad)
    folded.bias = nn.Parameter(new_bias.to(dtype), layer.weight.requires_grad)
    return folded
