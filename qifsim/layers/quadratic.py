"""Quadratic (dendritic) synapses: channel-wise and pixel-wise quadratic terms, conv and linear.

The Dit paper's synaptic mode (see ``shared/SCIENCE.md``): each output adds a quadratic form of
its input, ``x^T A_i x``, to the usual linear synapse. ``A_i`` is symmetric by construction (its
packed upper triangle is the parameter ``weight``, zero-initialised) or low rank
(``A_i = U_i U_i^T - V_i V_i^T``, parameters ``u, v`` initialised equal so ``A = 0`` at start but
gradients flow). ``spiking=True`` drops the diagonal: for binary spikes ``s^2 = s`` repeats the
linear term, so only same-pixel, same-step pairs of distinct channels remain; no LayerNorm may
sit in front (it would make the inputs non-binary).

Modules and shapes:

* :class:`ChannelQuadratic`: ``[N, Cin, H, W] -> [N, Cout, Hout, Wout]``, the quadratic term of
  the input pixel at the centre of each output's receptive field (conv geometry).
* :class:`PixelQuadratic`: the ablation (paper Table 5), a quadratic form over each input
  channel's ``k x k`` patch, ``A: [Cout, Cin, k*k, k*k]``.
* :class:`QuadraticConv2d` = ``conv(x) + quadratic(x)``; :class:`QuadraticLinear` =
  ``x^T A_i x + W x + b`` on ``[..., in] -> [..., out]``.

``impl="fused"`` runs :func:`qifsim.quadratic.fused.pairwise_quadratic_fm` (chunked, recomputing
backward) or, for low rank, :func:`~qifsim.quadratic.fused.lowrank_quadratic_fm`;
``impl="reference"`` runs the plain einsum on the dense ``matrices()``.
"""

from __future__ import annotations

import math
from collections.abc import Iterator

import torch
from torch import nn

from ..quadratic import functional as QF
from ..quadratic.fused import Segment, apply_plan, lowrank_quadratic_fm

__all__ = ["ChannelQuadratic", "PixelQuadratic", "QuadraticConv2d", "QuadraticLinear"]

_IMPLS = ("fused", "reference")


def _pair(value: int | tuple[int, int], name: str) -> tuple[int, int]:
    if isinstance(value, int):
        value = (value, value)
    out = tuple(int(v) for v in value)
    if len(out) != 2 or min(out) < 0:
        raise ValueError(f"{name} must be a non-negative int or pair of ints, got {value!r}")
    return out  # type: ignore[return-value]


def _triangle_segments(blocks: int, size: int, spiking: bool) -> list[Segment]:
    """Runs ``(a, b0, b1, p0)`` of :func:`~qifsim.quadratic.functional.block_pair_indices`.

    The same as ``pair_segments(*block_pair_indices(...))``, built without a per-pair loop.
    """
    runs, p0, off = [], 0, 1 if spiking else 0
    for c in range(blocks):
        end = (c + 1) * size
        for a in range(c * size, end - off):
            runs.append((a, a + off, end, p0))
            p0 += end - a - off
    return runs


class _QuadraticForm(nn.Module):
    """Shared core: ``sum over blocks of x_blk^T A_{o, blk} x_blk`` for rows ``x: [M, D]``.

    ``blocks * size = D`` inputs; channel/linear modes use one block of ``size = D``, pixel mode
    ``Cin`` blocks of ``k*k``. Parameters: ``weight [O, blocks * P]`` (packed upper triangles,
    block-major) or, for ``rank=r`` (one block only), ``u, v [O, D, r]``.
    """

    def _init_form(
        self,
        size: int,
        out: int,
        blocks: int,
        spiking: bool,
        rank: int | None,
        chunk_size: int | None,
        impl: str,
    ) -> None:
        if size < 1 or out < 1 or blocks < 1:
            raise ValueError(f"sizes must be positive, got inputs={size * blocks}, outputs={out}")
        if spiking and size < 2:
            raise ValueError(
                "spiking=True drops the diagonal (s^2 = s), so a single input per form leaves no "
                "quadratic term; use at least 2 inputs or spiking=False"
            )
        if impl not in _IMPLS:
            raise ValueError(f"impl must be one of {_IMPLS}, got {impl!r}")
        if chunk_size is not None and int(chunk_size) < 1:
            raise ValueError(f"chunk_size must be a positive int or None, got {chunk_size!r}")
        if rank is not None:
            rank = int(rank)
            if rank < 1:
                raise ValueError(f"rank must be a positive int or None (full rank), got {rank}")
            if blocks != 1:
                raise ValueError("rank is only supported for mode='channel' and linear layers")
        self.spiking = bool(spiking)
        self.rank = rank
        self.chunk_size = None if chunk_size is None else int(chunk_size)
        self.impl = impl
        self._size, self._blocks, self._out = size, blocks, out
        if rank is None:
            self.weight = nn.Parameter(torch.zeros(out, blocks * QF.num_pairs(size, spiking)))
            a, b = QF.block_pair_indices(blocks, size, spiking)
            self.register_buffer("pair_a", a, persistent=False)
            self.register_buffer("pair_b", b, persistent=False)
            self._segments = _triangle_segments(blocks, size, spiking)  # the fused op's plan
        else:
            init = torch.randn(out, size, rank) / math.sqrt(size * rank)
            self.u = nn.Parameter(init.clone())
            self.v = nn.Parameter(init.clone())

    def quadratic_parameters(self) -> Iterator[nn.Parameter]:
        """The parameters of the quadratic term (``weight``, or ``u`` and ``v`` for low rank)."""
        if self.rank is None:
            yield self.weight
        else:
            yield self.u
            yield self.v

    def matrices(self) -> torch.Tensor:
        """Dense symmetric ``A``: ``[O, size, size]`` (one block) or ``[O, blocks, size, size]``."""
        if self.rank is not None:
            return QF.lowrank_matrices(self.u, self.v, self.spiking)
        tri = self.weight.reshape(self._out, self._blocks, -1)
        dense = QF.dense_from_packed(tri, self._size, self.spiking)
        return dense[:, 0] if self._blocks == 1 else dense

    def _pair_coefficients(self) -> torch.Tensor:
        return self.weight * QF.pair_scale(self.pair_a, self.pair_b, self.weight.dtype)

    def _features(self, xt: torch.Tensor) -> torch.Tensor:
        """Fused evaluation, feature-major: ``xt: [blocks * size, M] -> [O, M]``."""
        param = self.weight if self.rank is None else self.u
        dtype = param.dtype
        if torch.is_autocast_enabled(xt.device.type):  # mixed precision: the autocast type
            dtype = torch.get_autocast_dtype(xt.device.type)
            xt = xt.to(dtype)
        if xt.dtype != dtype or xt.device != param.device:
            raise ValueError(
                f"input is {xt.dtype} on {xt.device} but the quadratic parameters are "
                f"{param.dtype} on {param.device}; move the module or the input (module.to(...))"
            )
        if self.rank is not None:
            return lowrank_quadratic_fm(xt, self.u.to(dtype), self.v.to(dtype), self.spiking)
        coefficients = self._pair_coefficients().to(dtype)
        return apply_plan(xt, coefficients, self._segments, self.chunk_size)

    def _form_counts(self, positions: int) -> dict[str, int]:
        """Dense ops per sample and step over ``positions`` output positions (see module doc)."""
        o, d = self._out, self._size * self._blocks
        if self.rank is None:
            pairs = self._blocks * QF.num_pairs(self._size, self.spiking)
            mul, mac = pairs, pairs * o
        else:
            r2 = 2 * self.rank
            mul, mac = r2 * o, d * r2 * o
            if self.spiking:  # the diagonal correction: x_d^2 and sum_d A_dd x_d^2
                mul, mac = mul + d, mac + d * o
        return {"mul": int(mul * positions), "mac": int(mac * positions)}

    def _extra(self) -> str:
        parts = [f"spiking={self.spiking}"]
        if self.rank is not None:
            parts.append(f"rank={self.rank}")
        if self.impl != "fused":
            parts.append(f"impl={self.impl!r}")
        return ", ".join(parts)


class _ConvGeometry:
    in_channels: int
    out_channels: int
    kernel_size: tuple[int, int]
    stride: tuple[int, int]
    padding: tuple[int, int]
    dilation: tuple[int, int]

    def _init_geometry(self, cin, cout, kernel_size, stride, padding, dilation) -> None:
        self.in_channels, self.out_channels = int(cin), int(cout)
        self.kernel_size = _pair(kernel_size, "kernel_size")
        self.stride = _pair(stride, "stride")
        self.padding = _pair(padding, "padding")
        self.dilation = _pair(dilation, "dilation")
        if min(self.kernel_size) < 1 or min(self.stride) < 1 or min(self.dilation) < 1:
            raise ValueError(
                f"kernel_size, stride and dilation must be >= 1, got {self.kernel_size}, "
                f"{self.stride}, {self.dilation}"
            )

    def _check_input(self, x: torch.Tensor) -> None:
        if x.dim() != 4 or x.shape[1] != self.in_channels:
            raise ValueError(
                f"{type(self).__name__} expects [N, {self.in_channels}, H, W], got shape "
                f"{tuple(x.shape)}; wrap it in MergeTime for time-first [T, B, C, H, W] input"
            )
        if not x.is_floating_point():
            raise ValueError(f"{type(self).__name__} needs a floating-point input, got {x.dtype}")

    def output_size(self, hw: tuple[int, int]) -> tuple[int, int]:
        """``(Hout, Wout)`` for an input ``(H, W)``, equal to the conv's."""
        return QF.conv_output_size(
            tuple(hw), self.kernel_size, self.stride, self.padding, self.dilation
        )

    def quadratic_op_counts(self, out_hw: tuple[int, int] | None = None) -> dict[str, int]:
        """Dense ``{"mul", "mac"}`` per sample and step over ``out_hw`` (``None``: one pixel).

        Full rank: ``mul`` = distinct pair products per pixel (channel mode: ``Cin(Cin±1)/2``;
        pixel mode: ``Cin k²(k²±1)/2``), ``mac = mul * Cout``; low rank:
        ``mac = Cin * 2r * Cout`` projections, ``mul = 2r * Cout`` squares (spiking adds the
        diagonal correction ``Cin`` squares and ``Cin * Cout`` MACs).
        """
        positions = 1 if out_hw is None else int(out_hw[0]) * int(out_hw[1])
        return self._form_counts(positions)  # type: ignore[attr-defined]

    def extra_repr(self) -> str:
        return (
            f"{self.in_channels}, {self.out_channels}, kernel_size={self.kernel_size}, "
            f"stride={self.stride}, padding={self.padding}, dilation={self.dilation}, "
            + self._extra()  # type: ignore[attr-defined]
        )


class ChannelQuadratic(_ConvGeometry, _QuadraticForm):
    """Channel-wise quadratic term: ``y[n, i, h, w] = X^T A_i X`` with ``X = x[n, :, ch, cw]``.

    ``(ch, cw)`` is the centre of output ``(h, w)``'s receptive field under the given conv
    geometry (zero where it falls into padding), so ``[N, Cin, H, W] -> [N, Cout, Hout, Wout]``
    matches ``nn.Conv2d(Cin, Cout, kernel_size, stride, padding, dilation)``.

    Args:
        in_channels, out_channels: ``Cin``, ``Cout``.
        kernel_size, stride, padding, dilation: the geometry of the conv this term sits beside.
        spiking: zero diagonal (binary inputs).
        rank: ``None`` for full (symmetric) ``A``; ``r`` for ``A_i = U_i U_i^T - V_i V_i^T``.
        chunk_size: pairs per chunk of the fused op (``None``: automatic, ~4 MiB buffers).
        impl: ``"fused"`` or ``"reference"`` (einsum over dense ``A``).
    """

    mode = "channel"

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        kernel_size: int | tuple[int, int] = 1,
        stride: int | tuple[int, int] = 1,
        padding: int | tuple[int, int] = 0,
        dilation: int | tuple[int, int] = 1,
        spiking: bool = False,
        rank: int | None = None,
        chunk_size: int | None = None,
        impl: str = "fused",
    ) -> None:
        super().__init__()
        self._init_geometry(in_channels, out_channels, kernel_size, stride, padding, dilation)
        self._init_form(in_channels, out_channels, 1, spiking, rank, chunk_size, impl)

    def centre_pixels(self, x: torch.Tensor) -> torch.Tensor:
        """``[N, Cin, H, W] -> [N, Cin, Hout, Wout]``: the input each output's term reads."""
        self._check_input(x)
        return QF.centre_pixels(x, self.kernel_size, self.stride, self.padding, self.dilation)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``x: [N, Cin, H, W]`` -> ``[N, Cout, Hout, Wout]``."""
        xc = self.centre_pixels(x)
        if self.impl == "reference":
            return QF.channel_quadratic_reference(xc, self.matrices())
        n, c, h, w = xc.shape
        y = self._features(xc.transpose(0, 1).reshape(c, n * h * w))  # [Cout, N*H*W]
        return y.reshape(self.out_channels, n, h, w).transpose(0, 1)


class PixelQuadratic(_ConvGeometry, _QuadraticForm):
    """Pixel-wise ablation: ``y[n, i, h, w] = sum_c p_c^T A[i, c] p_c`` over ``k x k`` patches.

    ``p_c`` is channel ``c``'s receptive-field patch of output ``(h, w)`` (the conv's geometry,
    zero padding); ``A: [Cout, Cin, k*k, k*k]`` symmetric per ``(i, c)``. Full rank only.
    """

    mode = "pixel"

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        kernel_size: int | tuple[int, int] = 3,
        stride: int | tuple[int, int] = 1,
        padding: int | tuple[int, int] = 0,
        dilation: int | tuple[int, int] = 1,
        spiking: bool = False,
        rank: int | None = None,
        chunk_size: int | None = None,
        impl: str = "fused",
    ) -> None:
        super().__init__()
        self._init_geometry(in_channels, out_channels, kernel_size, stride, padding, dilation)
        if rank is not None:
            raise ValueError("mode='pixel' supports only full rank; pass rank=None")
        k2 = self.kernel_size[0] * self.kernel_size[1]
        self._init_form(k2, out_channels, in_channels, spiking, None, chunk_size, impl)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``x: [N, Cin, H, W]`` -> ``[N, Cout, Hout, Wout]``."""
        self._check_input(x)
        geometry = (self.kernel_size, self.stride, self.padding, self.dilation)
        if self.impl == "reference":
            return QF.pixel_quadratic_reference(x, self.matrices(), *geometry)
        patches, (h, w) = QF.pixel_patches(x, *geometry)  # [N, C, k2, L]
        n = x.shape[0]
        xt = patches.permute(1, 2, 0, 3).reshape(-1, n * h * w)  # [Cin*k2, N*L]
        y = self._features(xt)
        return y.reshape(self.out_channels, n, h, w).transpose(0, 1)


class QuadraticConv2d(nn.Module):
    """``conv(x) + quadratic(x)``: a convolution with a quadratic dendritic term.

    Children: ``.conv`` (``nn.Conv2d``) and ``.quadratic`` (:class:`ChannelQuadratic` for
    ``mode="channel"``, :class:`PixelQuadratic` for ``mode="pixel"``), sharing the geometry.
    ``[N, Cin, H, W] -> [N, Cout, Hout, Wout]``.
    """

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        kernel_size: int | tuple[int, int],
        stride: int | tuple[int, int] = 1,
        padding: int | tuple[int, int] = 0,
        dilation: int | tuple[int, int] = 1,
        bias: bool = True,
        mode: str = "channel",
        spiking: bool = False,
        rank: int | None = None,
        chunk_size: int | None = None,
        impl: str = "fused",
    ) -> None:
        super().__init__()
        if mode not in ("channel", "pixel"):
            raise ValueError(f"mode must be 'channel' or 'pixel', got {mode!r}")
        cls = ChannelQuadratic if mode == "channel" else PixelQuadratic
        self.quadratic = cls(
            in_channels, out_channels, kernel_size, stride, padding, dilation,
            spiking=spiking, rank=rank, chunk_size=chunk_size, impl=impl,
        )  # fmt: skip
        q = self.quadratic
        self.conv = nn.Conv2d(
            in_channels, out_channels, q.kernel_size, q.stride, q.padding, q.dilation, bias=bias
        )
        self.in_channels, self.out_channels = q.in_channels, q.out_channels
        self.kernel_size, self.stride = q.kernel_size, q.stride
        self.padding, self.dilation = q.padding, q.dilation
        self.mode, self.spiking, self.rank = mode, q.spiking, q.rank

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``x: [N, Cin, H, W]`` -> ``[N, Cout, Hout, Wout]``."""
        quadratic = self.quadratic(x)  # validates the input first
        return self.conv(x) + quadratic

    def quadratic_parameters(self) -> Iterator[nn.Parameter]:
        """The quadratic term's parameters (for a separate learning rate)."""
        return self.quadratic.quadratic_parameters()

    def matrices(self) -> torch.Tensor:
        """Dense symmetric ``A`` (``[Cout, Cin, Cin]``; pixel mode ``[Cout, Cin, k*k, k*k]``)."""
        return self.quadratic.matrices()

    def centre_pixels(self, x: torch.Tensor) -> torch.Tensor:
        """Channel mode: ``[N, Cin, Hout, Wout]``, the input each output's term reads."""
        if self.mode != "channel":
            raise ValueError("centre_pixels is defined for mode='channel' only")
        return self.quadratic.centre_pixels(x)

    def quadratic_op_counts(self, out_hw: tuple[int, int] | None = None) -> dict[str, int]:
        """Dense ops of the quadratic term (see ``ChannelQuadratic.quadratic_op_counts``)."""
        return self.quadratic.quadratic_op_counts(out_hw)


class QuadraticLinear(_QuadraticForm):
    """``y_i = x^T A_i x + W x + b`` on ``[..., in_features] -> [..., out_features]``.

    Child ``.linear`` (``nn.Linear``); the quadratic parameters live on this module
    (``weight`` packed triangle, or ``u, v`` for ``rank=r``). ``spiking``: zero diagonal.
    """

    mode = "channel"

    def __init__(
        self,
        in_features: int,
        out_features: int,
        bias: bool = True,
        spiking: bool = False,
        rank: int | None = None,
        chunk_size: int | None = None,
        impl: str = "fused",
    ) -> None:
        super().__init__()
        self.in_features, self.out_features = int(in_features), int(out_features)
        self._init_form(self.in_features, self.out_features, 1, spiking, rank, chunk_size, impl)
        self.linear = nn.Linear(self.in_features, self.out_features, bias=bias)

    def quadratic_term(self, x: torch.Tensor) -> torch.Tensor:
        """The quadratic part alone, ``[..., in] -> [..., out]``."""
        if x.dim() < 1 or x.shape[-1] != self.in_features:
            raise ValueError(
                f"QuadraticLinear expects [..., {self.in_features}], got shape {tuple(x.shape)}"
            )
        if not x.is_floating_point():
            raise ValueError(f"QuadraticLinear needs a floating-point input, got {x.dtype}")
        if self.impl == "reference":
            return QF.linear_quadratic_reference(x, self.matrices())
        rows = x.reshape(-1, self.in_features)
        return self._features(rows.t()).t().reshape(*x.shape[:-1], self.out_features)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``x: [..., in]`` -> ``[..., out]``."""
        quadratic = self.quadratic_term(x)  # validates the input first
        return self.linear(x) + quadratic

    def quadratic_op_counts(self, out_hw: tuple[int, int] | None = None) -> dict[str, int]:
        """Dense ``{"mul", "mac"}`` of the quadratic term per sample and step (no ``out_hw``)."""
        return self._form_counts(1)

    def extra_repr(self) -> str:
        return f"{self.in_features}, {self.out_features}, " + self._extra()
