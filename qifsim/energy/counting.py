"""Operation counts of synaptic layers: dense counts, fan-out maps, event-driven counts.

Pure functions on layer geometry, per frame (one sample at one time step):

* :func:`conv_dense_ops`: ``C_out * C_in/groups * kh * kw * H_out * W_out``, every
  multiply-accumulate of a dense conv, taps on padding included (the QIF paper's
  ``OP`` for a conv);
* :func:`conv_fanout_map`: ``[C_in, H, W]``, how many (output, weight) pairs each input
  pixel feeds, padding and stride included (a transposed conv of ones);
  :func:`conv_fanout_map_reference` is the same by plain loops;
* :func:`event_ops`: the exact event-driven count ``sum(spikes * fanout)``;
* :func:`pool_dense_ops`, :func:`pool_fanout_map`: the same for average/max pooling
  (additions or comparisons per window);
* :func:`quadratic_event_ops`: co-active channel pairs at each centre pixel.

How the event-driven count relates to the paper's estimate ``fr * dense``: summed over the
fan-out map, ``sum(fanout) = dense - (taps that fall on padding)``; so for spatially
uniform spikes the event count is ``fr * (dense - padded taps)``, equal to the estimate
without padding and smaller with it. For non-uniform spikes the two differ by how the
spikes sit on the fan-out map: border pixels feed fewer outputs (fewer still with
padding), and with ``stride > kernel`` some pixels feed none.
"""

from __future__ import annotations

import itertools

import torch
from torch import nn


def _pair(v) -> tuple[int, int]:
    return (int(v), int(v)) if isinstance(v, int) else (int(v[0]), int(v[1]))


def conv_out_size(n: int, k: int, stride: int, padding: int, dilation: int = 1) -> int:
    """Output length of a conv or pooling along one axis (floor mode)."""
    return (n + 2 * padding - dilation * (k - 1) - 1) // stride + 1


def conv_geometry(conv: nn.Conv2d) -> dict[str, tuple[int, int] | int]:
    """``kernel, stride, padding, dilation`` (pairs), ``groups``, ``in``/``out`` channels.

    Raises:
        ValueError: string padding other than ``"valid"``/``"same"`` resolved by torch, or a
            padding mode other than zeros (the fan-out of reflect/circular padding differs).
    """
    if conv.padding_mode != "zeros":
        raise ValueError(
            f"operation counts support zero padding only, this Conv2d has "
            f"padding_mode={conv.padding_mode!r}"
        )
    kernel = _pair(conv.kernel_size)
    dilation = _pair(conv.dilation)
    padding = conv.padding
    if isinstance(padding, str):
        if padding == "valid":
            padding = (0, 0)
        else:  # "same" at stride 1
            padding = tuple(d * (k - 1) // 2 for d, k in zip(dilation, kernel, strict=True))
            if any(d * (k - 1) % 2 for d, k in zip(dilation, kernel, strict=True)):
                raise ValueError("padding='same' with an even effective kernel is not supported")
    return {
        "kernel": kernel,
        "stride": _pair(conv.stride),
        "padding": _pair(padding),
        "dilation": dilation,
        "groups": int(conv.groups),
        "in_channels": int(conv.in_channels),
        "out_channels": int(conv.out_channels),
    }


def conv_output_hw(geom: dict, in_hw: tuple[int, int]) -> tuple[int, int]:
    """``(H_out, W_out)`` of a conv geometry on an ``in_hw`` input."""
    return tuple(  # type: ignore[return-value]
        conv_out_size(n, k, s, p, d)
        for n, k, s, p, d in zip(
            in_hw, geom["kernel"], geom["stride"], geom["padding"], geom["dilation"], strict=True
        )
    )


def conv_dense_ops(geom: dict, in_hw: tuple[int, int]) -> int:
    """Dense MACs of one frame: ``C_out * C_in/groups * kh * kw * H_out * W_out``."""
    h, w = conv_output_hw(geom, in_hw)
    kh, kw = geom["kernel"]
    return geom["out_channels"] * (geom["in_channels"] // geom["groups"]) * kh * kw * h * w


def conv_fanout_map(
    geom: dict, in_hw: tuple[int, int], device: torch.device | str | None = None
) -> torch.Tensor:
    """Fan-out of every input pixel, ``[C_in, H, W]`` float64 (exact small integers).

    The gradient of ``sum(conv(x; W = 1))`` with respect to ``x``: the number of
    (output pixel, output channel) pairs whose receptive field holds the pixel, with the
    conv's stride, padding, dilation and groups.
    """
    h_out, w_out = conv_output_hw(geom, in_hw)
    c_in, c_out, groups = geom["in_channels"], geom["out_channels"], geom["groups"]
    weight = torch.ones(c_out, c_in // groups, *geom["kernel"], dtype=torch.float64, device=device)
    grad = torch.ones(1, c_out, h_out, w_out, dtype=torch.float64, device=device)
    fan = torch.nn.grad.conv2d_input(
        (1, c_in, *in_hw),
        weight,
        grad,
        stride=geom["stride"],
        padding=geom["padding"],
        dilation=geom["dilation"],
        groups=groups,
    )
    return fan[0]


def conv_fanout_map_reference(geom: dict, in_hw: tuple[int, int]) -> torch.Tensor:
    """:func:`conv_fanout_map` by plain loops over outputs and kernel taps (slow; for tests)."""
    h_in, w_in = in_hw
    h_out, w_out = conv_output_hw(geom, in_hw)
    (kh, kw), (sh, sw) = geom["kernel"], geom["stride"]
    (ph, pw), (dh, dw) = geom["padding"], geom["dilation"]
    c_in, c_out, groups = geom["in_channels"], geom["out_channels"], geom["groups"]
    per_group_out = c_out // groups
    fan = torch.zeros(c_in, h_in, w_in, dtype=torch.float64)
    for i, j, a, b in itertools.product(range(h_out), range(w_out), range(kh), range(kw)):
        y, x = i * sh - ph + a * dh, j * sw - pw + b * dw
        if 0 <= y < h_in and 0 <= x < w_in:
            fan[:, y, x] += per_group_out  # each input channel feeds its group's outputs
    return fan


def pool_geometry(pool: nn.Module) -> dict:
    """Geometry of ``nn.AvgPool2d``/``nn.MaxPool2d`` (kernel, stride, padding, dilation).

    Raises:
        ValueError: ``ceil_mode=True`` (windows past the border) or padding with
            ``count_include_pad=False`` (border windows with other divisors) is not supported.
    """
    if getattr(pool, "ceil_mode", False):
        raise ValueError(f"{type(pool).__name__} with ceil_mode=True is not supported")
    if not getattr(pool, "count_include_pad", True) and any(_pair(pool.padding)):
        raise ValueError(
            f"{type(pool).__name__} with padding and count_include_pad=False is not supported "
            "(border windows divide by fewer taps)"
        )
    kernel = _pair(pool.kernel_size)
    stride = _pair(pool.stride if pool.stride is not None else pool.kernel_size)
    return {
        "kernel": kernel,
        "stride": stride,
        "padding": _pair(pool.padding),
        "dilation": _pair(getattr(pool, "dilation", 1)),
    }


def pool_output_hw(geom: dict, in_hw: tuple[int, int]) -> tuple[int, int]:
    """``(H_out, W_out)`` of a pooling geometry."""
    return conv_output_hw({**geom}, in_hw)


def pool_dense_ops(geom: dict, channels: int, in_hw: tuple[int, int]) -> int:
    """Additions (average) or comparisons (max) of one frame: ``C * H_out * W_out * kh * kw``."""
    h, w = pool_output_hw(geom, in_hw)
    kh, kw = geom["kernel"]
    return channels * h * w * kh * kw


def pool_fanout_map(
    geom: dict, in_hw: tuple[int, int], device: torch.device | str | None = None
) -> torch.Tensor:
    """Windows covering each input pixel, ``[1, H, W]`` float64 (the same for every channel)."""
    one = {**geom, "groups": 1, "in_channels": 1, "out_channels": 1}
    return conv_fanout_map(one, in_hw, device)


def is_binary(x: torch.Tensor) -> bool:
    """Whether every element of ``x`` is 0 or 1 (:func:`is_binary_reference`, faster).

    Float reductions only (torch's elementwise comparisons into bool tensors are several
    times slower on CPU): values outside ``[0, 1]`` (``aminmax``) are rejected at once;
    inside, ``x`` is binary iff ``max(min(x, 1 - x)) == 0`` (``1 - x`` is exact for
    ``x >= 0.5`` and positive below, so every ``0 < x < 1`` gives a positive term). A NaN
    makes it False, as in the reference.
    """
    if x.dtype == torch.bool:
        return True
    if x.numel() == 0:
        return True
    lo, hi = torch.aminmax(x)
    if not bool((lo >= 0) & (hi <= 1)):  # False for a NaN too
        return False
    if not x.is_floating_point():
        return True  # integers in [0, 1]
    return bool(torch.minimum(x, 1 - x).max() == 0)


def is_binary_reference(x: torch.Tensor) -> bool:
    """:func:`is_binary` by elementwise comparison (the definition; for tests)."""
    if x.dtype == torch.bool:
        return True
    return bool(((x == 0) | (x == 1)).all())


def nonzero_sums(x: torch.Tensor, frames: int) -> torch.Tensor:
    """Per-position counts of non-zero values over ``frames`` leading frames, ``[P]`` float.

    ``|sign(x)|`` is 1 exactly where ``x != 0`` (a float pass; faster than a bool
    comparison); :func:`frame_sums` of it (exact below ``2**24`` frames). Same as
    ``frame_sums(x != 0, frames)`` for inputs without NaN.
    """
    if x.dtype == torch.bool:
        return frame_sums(x, frames)
    return frame_sums(torch.sign(x).abs_(), frames)


def frame_sums(x: torch.Tensor, frames: int) -> torch.Tensor:
    """Per-position sums over ``frames`` leading frames: ``[frames, P...] -> [P]`` float.

    Exact for spike counts while ``frames < 2**24`` (half types are widened first).
    """
    v = x if x.dtype in (torch.float32, torch.float64) else x.float()
    return v.reshape(frames, -1).sum(0)


def event_ops_from_sums(pixel: torch.Tensor, fanout: torch.Tensor, scale: float = 1.0) -> int:
    """``scale * sum(pixel * fanout)`` in float64.

    ``pixel``: per-position spike sums ``[C, H, W]`` (any shape with that many elements);
    ``fanout``: ``[C, H, W]`` or ``[1, H, W]`` (the same for every channel).
    """
    fan = fanout.reshape(-1)
    total = (pixel.reshape(-1, fan.numel()).double() * fan).sum().item()
    return int(round(float(total) * scale))


def event_ops(spikes: torch.Tensor, fanout: torch.Tensor, scale: float = 1.0) -> int:
    """Exact event-driven operations: ``scale * sum(spikes * fanout)`` over all frames.

    ``spikes``: ``[N, C, H, W]`` (spike counts per pixel, usually 0/1; pooled spikes with
    ``scale`` = the pooling area turn pooled values back into spike counts); ``fanout``:
    ``[C or 1, H, W]`` float64. The sum over frames runs in the input's dtype (float32
    counts are exact up to 2**24 per pixel; half types are widened first), the product
    with the fan-out in float64 (exact up to 2**53).
    """
    return event_ops_from_sums(frame_sums(spikes, spikes.shape[0]), fanout, scale)


def quadratic_event_ops(centre: torch.Tensor, out_channels: int, diagonal: bool = False) -> int:
    """Event-driven ACs of a quadratic term on binary spikes: co-active channel pairs per output.

    ``centre``: ``[N, C_in, H_out, W_out]`` binary spikes each output's quadratic term
    reads (:meth:`centre_pixels`). With ``n`` active channels at a position, ``n (n - 1) / 2``
    distinct pairs each add one coefficient ``2 A[i, m, n]`` to every output channel ``i``;
    ``diagonal=True`` (a non-spiking layer fed by spikes: ``A_mm s_m^2 = A_mm s_m``) adds the
    ``n`` diagonal terms, ``n (n + 1) / 2`` in all. Spiking mode has a zero diagonal.
    """
    n = centre.sum(1, dtype=torch.float64)
    pairs = (n * (n + (1.0 if diagonal else -1.0)) / 2.0).sum().item()
    return int(round(pairs)) * int(out_channels)


def quadratic_event_ops_reference(
    centre: torch.Tensor, out_channels: int, diagonal: bool = False
) -> int:
    """:func:`quadratic_event_ops` by enumerating channel pairs (slow; for tests)."""
    c = centre.shape[1]
    total = 0
    for m in range(c):
        for k in range(m if diagonal else m + 1, c):
            total += int((centre[:, m] * centre[:, k]).sum().item())
    return total * int(out_channels)
