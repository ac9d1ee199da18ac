"""Pure functions of quadratic (dendritic) synapses: pair indexing, centre pixels, references.

Conventions (shared by the fused op and the layers):

* A quadratic form ``x^T A x`` with symmetric ``A`` is stored as its **packed upper triangle**
  ``tri[..., p] = A[a_p, b_p]`` over the pairs ``(a_p, b_p)`` of :func:`pair_indices`
  (row-major, ``a <= b``; ``a < b`` when ``spiking``: the diagonal is zero because ``s^2 = s``
  for binary spikes would repeat the linear term).
* The fused op consumes **pair coefficients** ``coef = tri * pair_scale`` (1 on the diagonal,
  2 off it), so that ``x^T A x = sum_p coef[p] * x[a_p] * x[b_p]``.
* The references below are the plain einsum paths the fast paths are tested against.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

__all__ = [
    "block_pair_indices",
    "centre_pixels",
    "channel_quadratic_reference",
    "conv_output_size",
    "dense_from_packed",
    "linear_quadratic_reference",
    "lowrank_matrices",
    "num_pairs",
    "pair_indices",
    "pair_scale",
    "pixel_patches",
    "pixel_quadratic_reference",
]


def num_pairs(n: int, spiking: bool = False) -> int:
    """Number of distinct products of ``n`` inputs: ``n(n+1)/2`` (``n(n-1)/2`` when spiking)."""
    if n < 1:
        raise ValueError(f"need at least one input, got n={n}")
    return n * (n - 1) // 2 if spiking else n * (n + 1) // 2


def pair_indices(
    n: int, spiking: bool = False, device: torch.device | str | None = None
) -> tuple[torch.Tensor, torch.Tensor]:
    """Row-major upper-triangle pairs ``(a, b)``, ``a <= b`` (``a < b`` when ``spiking``).

    Returns two int64 tensors of length :func:`num_pairs`.
    """
    num_pairs(n, spiking)
    a, b = torch.triu_indices(n, n, offset=1 if spiking else 0, device=device)
    return a, b


def block_pair_indices(
    blocks: int, size: int, spiking: bool = False, device: torch.device | str | None = None
) -> tuple[torch.Tensor, torch.Tensor]:
    """Pairs inside each of ``blocks`` consecutive blocks of ``size`` inputs (pixel mode).

    Block-major: block ``c`` owns flat inputs ``c*size .. c*size+size-1`` and its pairs come
    after those of block ``c-1``. Length ``blocks * num_pairs(size, spiking)``.
    """
    a, b = pair_indices(size, spiking, device)
    offset = (torch.arange(blocks, device=a.device) * size)[:, None]
    return (offset + a).reshape(-1), (offset + b).reshape(-1)


def pair_scale(a: torch.Tensor, b: torch.Tensor, dtype: torch.dtype) -> torch.Tensor:
    """``1`` where ``a == b`` (squares), ``2`` elsewhere (``A_ab x_a x_b + A_ba x_b x_a``)."""
    return torch.where(a == b, 1.0, 2.0).to(dtype)


def dense_from_packed(tri: torch.Tensor, n: int, spiking: bool = False) -> torch.Tensor:
    """Packed upper triangle ``[..., P]`` -> dense symmetric ``[..., n, n]`` (spiking: 0 diag)."""
    p = num_pairs(n, spiking)
    if tri.shape[-1] != p:
        raise ValueError(f"packed triangle has {tri.shape[-1]} entries, expected {p} for n={n}")
    a, b = pair_indices(n, spiking, tri.device)
    dense = tri.new_zeros(*tri.shape[:-1], n, n)
    dense[..., a, b] = tri
    dense[..., b, a] = tri
    return dense


def lowrank_matrices(u: torch.Tensor, v: torch.Tensor, spiking: bool = False) -> torch.Tensor:
    """``A_i = U_i U_i^T - V_i V_i^T`` from ``u, v: [..., n, r]`` -> ``[..., n, n]``.

    ``spiking``: the diagonal is zeroed (the term the low-rank spiking path subtracts).
    """
    a = u @ u.transpose(-1, -2) - v @ v.transpose(-1, -2)
    if spiking:
        a = a - torch.diag_embed(torch.diagonal(a, dim1=-2, dim2=-1))
    return a


def _pair(value: int | tuple[int, int], name: str) -> tuple[int, int]:
    if isinstance(value, int):
        value = (value, value)
    value = tuple(int(v) for v in value)
    if len(value) != 2:
        raise ValueError(f"{name} must be an int or a pair of ints, got {value!r}")
    return value  # type: ignore[return-value]


def conv_output_size(
    size: tuple[int, int],
    kernel_size: tuple[int, int],
    stride: tuple[int, int],
    padding: tuple[int, int],
    dilation: tuple[int, int],
) -> tuple[int, int]:
    """Output ``(H_out, W_out)`` of ``nn.Conv2d`` with the same geometry (raises if empty)."""
    out = tuple(
        (s + 2 * p - d * (k - 1) - 1) // st + 1
        for s, k, st, p, d in zip(size, kernel_size, stride, padding, dilation, strict=True)
    )
    if min(out) < 1:
        raise ValueError(
            f"input {tuple(size)} is too small for kernel {kernel_size}, padding {padding}, "
            f"dilation {dilation}: the output would be {out}; use a larger input or more padding"
        )
    return out  # type: ignore[return-value]


def centre_pixels(
    x: torch.Tensor,
    kernel_size: int | tuple[int, int] = 1,
    stride: int | tuple[int, int] = 1,
    padding: int | tuple[int, int] = 0,
    dilation: int | tuple[int, int] = 1,
) -> torch.Tensor:
    """The input pixel at the centre of each output's receptive field.

    ``x: [N, C, H, W] -> [N, C, H_out, W_out]`` with ``H_out, W_out`` those of the conv. Output
    ``(i, j)`` reads input row ``i*stride - padding + dilation*((k-1)//2)`` (the upper-left
    centre for even ``k``), zero where that falls into padding. A stride-1 "same" conv maps each
    pixel to itself.
    """
    if x.dim() != 4:
        raise ValueError(f"centre_pixels expects [N, C, H, W], got shape {tuple(x.shape)}")
    k, s = _pair(kernel_size, "kernel_size"), _pair(stride, "stride")
    p, d = _pair(padding, "padding"), _pair(dilation, "dilation")
    h_out, w_out = conv_output_size(tuple(x.shape[-2:]), k, s, p, d)
    xp = F.pad(x, (p[1], p[1], p[0], p[0])) if p != (0, 0) else x
    oh, ow = d[0] * ((k[0] - 1) // 2), d[1] * ((k[1] - 1) // 2)
    return xp[
        :,
        :,
        oh : oh + s[0] * (h_out - 1) + 1 : s[0],
        ow : ow + s[1] * (w_out - 1) + 1 : s[1],
    ]


def channel_quadratic_reference(x: torch.Tensor, a: torch.Tensor) -> torch.Tensor:
    """``einsum('nihw,oij,njhw->nohw')``: ``x: [N, Cin, H, W]``, ``a: [Cout, Cin, Cin]``."""
    return torch.einsum("nihw,oij,njhw->nohw", x, a, x)


def linear_quadratic_reference(x: torch.Tensor, a: torch.Tensor) -> torch.Tensor:
    """``x_m^T A_o x_m``: ``x: [..., in]``, ``a: [out, in, in]`` -> ``[..., out]``."""
    return torch.einsum("...i,oij,...j->...o", x, a, x)


def pixel_patches(
    x: torch.Tensor,
    kernel_size: tuple[int, int],
    stride: tuple[int, int],
    padding: tuple[int, int],
    dilation: tuple[int, int],
) -> tuple[torch.Tensor, tuple[int, int]]:
    """``x: [N, C, H, W]`` -> patches ``[N, C, k*k, H_out*W_out]`` and ``(H_out, W_out)``."""
    h_out, w_out = conv_output_size(tuple(x.shape[-2:]), kernel_size, stride, padding, dilation)
    cols = F.unfold(x, kernel_size, dilation=dilation, padding=padding, stride=stride)
    n, c = x.shape[:2]
    return cols.reshape(n, c, kernel_size[0] * kernel_size[1], h_out * w_out), (h_out, w_out)


def pixel_quadratic_reference(
    x: torch.Tensor,
    a: torch.Tensor,
    kernel_size: tuple[int, int],
    stride: tuple[int, int],
    padding: tuple[int, int],
    dilation: tuple[int, int],
) -> torch.Tensor:
    """Pixel-mode term: ``sum_c p_c^T A[o, c] p_c`` over each channel's ``k x k`` patch ``p_c``.

    ``x: [N, Cin, H, W]``, ``a: [Cout, Cin, k*k, k*k]`` -> ``[N, Cout, H_out, W_out]``.
    """
    patches, (h_out, w_out) = pixel_patches(x, kernel_size, stride, padding, dilation)
    y = torch.einsum("ncpl,ocpq,ncql->nol", patches, a, patches)
    return y.reshape(x.shape[0], a.shape[0], h_out, w_out)
