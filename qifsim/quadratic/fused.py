"""Chunked, recomputing autograd op for quadratic forms over distinct input pairs.

``pairwise_quadratic(x, coef, a, b)`` computes ``y[m, o] = sum_p coef[o, p] x[m, a_p] x[m, b_p]``
for ``x: [M, D]`` (rows = pixels or samples), ``coef: [O, P]`` and ``P`` pairs. It forms the
pair products of ``chunk_size`` pairs at a time (``[M, chunk]``), does one GEMM per chunk and
accumulates. Backward recomputes each chunk's products instead of storing them, so the
autograd graph keeps only ``x`` and ``coef`` and peak extra memory is a few ``[M, chunk]``
buffers, whatever ``P``. Device-agnostic and dtype-preserving; half/bfloat16 inputs accumulate
the output and the coefficient gradient in float32 across chunks.

Low rank (``A_o = U_o U_o^T - V_o V_o^T``) needs no pair products at all:
:func:`lowrank_quadratic` evaluates ``|U_o^T x|^2 - |V_o^T x|^2`` with two GEMMs.
"""

from __future__ import annotations

import torch

__all__ = [
    "DEFAULT_CHUNK_ELEMENTS",
    "apply_plan",
    "auto_chunk_size",
    "chunk_plan",
    "lowrank_quadratic",
    "lowrank_quadratic_fm",
    "pairwise_quadratic",
    "pairwise_quadratic_fm",
    "pair_segments",
]

#: Default bound on one ``[M, chunk]`` buffer (elements): 2**20 (4 MiB in float32).
DEFAULT_CHUNK_ELEMENTS = 1 << 20


def auto_chunk_size(rows: int, pairs: int, elements: int = DEFAULT_CHUNK_ELEMENTS) -> int:
    """Pairs per chunk so that one ``[chunk, rows]`` buffer holds at most ``elements`` (>= 32)."""
    return max(1, min(pairs, max(32, elements // max(rows, 1))))


def _acc_dtype(dtype: torch.dtype) -> torch.dtype:
    return torch.float32 if dtype in (torch.float16, torch.bfloat16) else dtype


Segment = tuple[int, int, int, int]  # (a, b0, b1, first pair): pairs (a, b) for b0 <= b < b1


def pair_segments(a: torch.Tensor, b: torch.Tensor) -> list[Segment]:
    """Group the pair list into runs ``(a, b0, b1, p0)`` of one ``a`` and consecutive ``b``.

    Upper-triangle pair lists (channel, pixel and spiking modes) have one run per row ``a``;
    any pair list works (at worst one run per pair). Host-side (one ``tolist`` per plan).
    """
    runs: list[Segment] = []
    for p, (ai, bi) in enumerate(zip(a.tolist(), b.tolist(), strict=True)):
        if runs and runs[-1][0] == ai and runs[-1][2] == bi:
            runs[-1] = (ai, runs[-1][1], bi + 1, runs[-1][3])
        else:
            runs.append((ai, bi, bi + 1, p))
    return runs


def chunk_plan(segments: list[Segment], chunk: int) -> list[tuple[int, int, list[Segment]]]:
    """Split the runs into chunks of at most ``chunk`` pairs: ``[(p0, p1, runs), ...]``.

    Runs are cut where a chunk boundary falls inside them; each run's ``p0`` is kept global.
    """
    if chunk < 1:
        raise ValueError(f"chunk_size must be >= 1, got {chunk}")
    plan: list[tuple[int, int, list[Segment]]] = []
    current: list[Segment] = []
    start = filled = 0
    for a, b0, b1, p0 in segments:
        while b0 < b1:
            take = min(b1 - b0, chunk - filled)
            current.append((a, b0, b0 + take, p0))
            b0, p0, filled = b0 + take, p0 + take, filled + take
            if filled == chunk:
                plan.append((start, start + filled, current))
                start, filled, current = start + filled, 0, []
    if current:
        plan.append((start, start + filled, current))
    return plan


def _buffer(like: torch.Tensor, rows: int, m: int) -> torch.Tensor:
    """``[rows, m]`` scratch rows with a padded stride (``m + 32``).

    Rows a power-of-two bytes apart (``M = N*H*W`` often is) alias the rows of ``x`` in the
    L1 cache (4K aliasing) and slow the streaming multiplies several-fold; the pad shifts
    every row by 128 bytes.
    """
    return like.new_empty(rows, m + _PAD)[:, :m]


_PAD = 32


def _add(dst: torch.Tensor, src: torch.Tensor) -> None:
    dst.add_(src if src.dtype == dst.dtype else src.to(dst.dtype))


class _PairwiseQuadratic(torch.autograd.Function):
    """Feature-major core: ``xt: [D, M]``, ``coef: [O, P]`` -> ``[O, M]``.

    Each run ``(a, b0..b1)`` of a chunk writes its products with one broadcast multiply,
    ``xt[b0:b1] * xt[a]`` (no gathers); one GEMM per chunk against ``coef[:, p0:p1]``. The
    backward recomputes the products, and applies the product rule run by run:
    ``grad[b0:b1] += gp * x_a`` and ``grad[a] += sum_b gp_b * x_b``.
    """

    @staticmethod
    def forward(ctx, xt, coef, plan, rows):  # type: ignore[override]
        ctx.save_for_backward(xt, coef)
        ctx.plan, ctx.rows = plan, rows
        acc = _acc_dtype(xt.dtype)
        m = xt.shape[1]
        out = torch.zeros(coef.shape[0], m, dtype=acc, device=xt.device)
        buf = _buffer(xt, rows, m)
        for p0, p1, runs in plan:
            prod = _products(xt, runs, p0, buf)
            if acc == xt.dtype:
                out.addmm_(coef[:, p0:p1], prod)
            else:
                out += (coef[:, p0:p1] @ prod).to(acc)
        return out.to(xt.dtype)

    @staticmethod
    def backward(ctx, grad_out):  # type: ignore[override]
        xt, coef = ctx.saved_tensors
        need_x, need_coef = ctx.needs_input_grad[0], ctx.needs_input_grad[1]
        acc = _acc_dtype(xt.dtype)
        g = grad_out.contiguous()
        m = xt.shape[1]
        grad_xt = torch.zeros(xt.shape, dtype=acc, device=xt.device) if need_x else None
        grad_coef_t = xt.new_empty(coef.shape[1], coef.shape[0]) if need_coef else None
        buf, buf_g, tmp = (_buffer(xt, ctx.rows, m) for _ in range(3))
        for p0, p1, runs in ctx.plan:
            if need_coef:  # dL/dcoef_p = sum_m g[:, m] x_a x_b, products recomputed
                torch.mm(_products(xt, runs, p0, buf), g.t(), out=grad_coef_t[p0:p1])
            if need_x:  # gp = dL/d(x_a x_b) = coef^T g, then the product rule per run
                gp = buf_g[: p1 - p0]
                torch.mm(coef[:, p0:p1].t(), g, out=gp)
                for a, b0, b1, q0 in runs:
                    seg = gp[q0 - p0 : q0 - p0 + b1 - b0]
                    t = tmp[: b1 - b0]
                    torch.mul(seg, xt[a], out=t)
                    _add(grad_xt[b0:b1], t)
                    torch.mul(seg, xt[b0:b1], out=t)
                    _add(grad_xt[a], t.sum(0))
        return (
            grad_xt.to(xt.dtype) if need_x else None,
            grad_coef_t.t() if need_coef else None,
            None,
            None,
        )


def _products(xt: torch.Tensor, runs: list[Segment], p0: int, buf: torch.Tensor) -> torch.Tensor:
    """The chunk's pair products ``[p1 - p0, M]`` written into ``buf``."""
    end = p0
    for a, b0, b1, q0 in runs:
        torch.mul(xt[b0:b1], xt[a], out=buf[q0 - p0 : q0 - p0 + b1 - b0])
        end = q0 + b1 - b0
    return buf[: end - p0]


def _check(xt: torch.Tensor, coef: torch.Tensor, a: torch.Tensor, b: torch.Tensor) -> None:
    if xt.dim() != 2 or coef.dim() != 2:
        raise ValueError(
            f"expected 2-D inputs and coef [O, P], got {tuple(xt.shape)} and {tuple(coef.shape)}"
        )
    if a.shape != b.shape or a.dim() != 1 or a.numel() != coef.shape[1]:
        raise ValueError(
            f"pair indices must be 1-D of length P={coef.shape[1]}, got {tuple(a.shape)} and "
            f"{tuple(b.shape)}"
        )
    if xt.dtype != coef.dtype or xt.device != coef.device:
        raise ValueError(
            f"x ({xt.dtype}, {xt.device}) and coef ({coef.dtype}, {coef.device}) must share "
            "dtype and device; cast one of them"
        )
    if not xt.is_floating_point():
        raise ValueError(f"the quadratic op needs floating-point input, got {xt.dtype}")


def pairwise_quadratic_fm(
    xt: torch.Tensor,
    coef: torch.Tensor,
    a: torch.Tensor,
    b: torch.Tensor,
    chunk_size: int | None = None,
) -> torch.Tensor:
    """Feature-major form of :func:`pairwise_quadratic`: ``xt: [D, M]`` -> ``[O, M]``.

    ``y[o, m] = sum_p coef[o, p] * xt[a[p], m] * xt[b[p], m]``; the layers call this directly
    (their inputs are channel-major already).
    """
    _check(xt, coef, a, b)
    return apply_plan(xt, coef, pair_segments(a, b), chunk_size)


def apply_plan(
    xt: torch.Tensor,
    coef: torch.Tensor,
    segments: list[Segment],
    chunk_size: int | None = None,
) -> torch.Tensor:
    """Run the fused op from precomputed :func:`pair_segments` (the layers cache them).

    ``xt: [D, M]``, ``coef: [O, P]`` -> ``[O, M]``.
    """
    pairs = coef.shape[1]
    if pairs == 0:
        return xt.new_zeros(coef.shape[0], xt.shape[1])
    chunk = auto_chunk_size(xt.shape[1], pairs) if chunk_size is None else int(chunk_size)
    plan = chunk_plan(segments, chunk)
    if plan[-1][1] != pairs:
        raise ValueError(f"the pair segments cover {plan[-1][1]} pairs, coef has {pairs}")
    rows = max(p1 - p0 for p0, p1, _ in plan)
    return _PairwiseQuadratic.apply(xt.contiguous(), coef.contiguous(), plan, rows)


def pairwise_quadratic(
    x: torch.Tensor,
    coef: torch.Tensor,
    a: torch.Tensor,
    b: torch.Tensor,
    chunk_size: int | None = None,
) -> torch.Tensor:
    """``y[m, o] = sum_p coef[o, p] * x[m, a[p]] * x[m, b[p]]``, chunked with recomputation.

    Args:
        x: ``[M, D]`` inputs (any float dtype; half/bfloat16 meant for CUDA).
        coef: ``[O, P]`` pair coefficients, same dtype and device as ``x``.
        a, b: ``[P]`` int64 input indices of each pair (on ``x``'s device).
        chunk_size: pairs per chunk (bounds peak memory at a few ``[chunk, M]`` buffers);
            ``None`` picks :func:`auto_chunk_size`.

    Returns:
        ``[M, O]`` in ``x``'s dtype.
    """
    if x.dim() != 2:
        raise ValueError(f"pairwise_quadratic expects x [M, D], got shape {tuple(x.shape)}")
    return pairwise_quadratic_fm(x.t(), coef, a, b, chunk_size).t()


class _LowRankQuadratic(torch.autograd.Function):
    """``w: [O, 2, r, D]`` (U then V columns), ``xt: [D, M]`` -> ``[O, M]``.

    ``z = w @ xt``; ``y_o = sum_r z[o, 0, r]^2 - z[o, 1, r]^2``. The backward recomputes ``z``
    (one GEMM) instead of storing ``[O * 2r, M]`` and works in place on it.
    """

    @staticmethod
    def forward(ctx, w, xt):  # type: ignore[override]
        ctx.save_for_backward(w, xt)
        o, _, r, d = w.shape
        z = (w.reshape(o * 2 * r, d) @ xt).view(o, 2, r, -1)
        z.square_()
        z = z.sum(2)
        return z[:, 0] - z[:, 1]

    @staticmethod
    def backward(ctx, grad_out):  # type: ignore[override]
        w, xt = ctx.saved_tensors
        o, _, r, d = w.shape
        w2 = w.reshape(o * 2 * r, d)
        z = (w2 @ xt).view(o, 2, r, -1)
        z.mul_(grad_out.view(o, 1, 1, -1)).mul_(2.0)  # dL/dz = +-2 z g
        z[:, 1].neg_()
        gz = z.view(o * 2 * r, -1)
        grad_w = (gz @ xt.t()).view(o, 2, r, d) if ctx.needs_input_grad[0] else None
        grad_x = w2.t() @ gz if ctx.needs_input_grad[1] else None
        return grad_w, grad_x


def lowrank_quadratic_fm(
    xt: torch.Tensor, u: torch.Tensor, v: torch.Tensor, spiking: bool = False
) -> torch.Tensor:
    """Feature-major :func:`lowrank_quadratic`: ``xt: [D, M]`` -> ``[O, M]``."""
    o, d, r = u.shape
    if xt.dim() != 2 or xt.shape[0] != d or v.shape != u.shape:
        raise ValueError(
            f"low-rank quadratic expects inputs with {d} features and u, v [O, D, r] of equal "
            f"shape, got {tuple(xt.shape)}, {tuple(u.shape)}, {tuple(v.shape)}"
        )
    w = torch.stack([u, v], dim=1).transpose(2, 3)  # [O, 2, r, D]
    y = _LowRankQuadratic.apply(w.contiguous(), xt.contiguous())
    if spiking:
        diag = (u.square() - v.square()).sum(-1)  # [O, D]: A_o[d, d]
        y = y - diag @ xt.square()
    return y


def lowrank_quadratic(
    x: torch.Tensor, u: torch.Tensor, v: torch.Tensor, spiking: bool = False
) -> torch.Tensor:
    """``y[m, o] = |U_o^T x_m|^2 - |V_o^T x_m|^2`` (``A_o = U_o U_o^T - V_o V_o^T``).

    Args:
        x: ``[M, D]``; u, v: ``[O, D, r]``.
        spiking: drop the diagonal, ``- sum_d A_o[d, d] x_d^2`` (binary inputs: ``s^2 = s``).

    Returns:
        ``[M, O]``. Cost ``2 M D O r`` multiply-adds forward (the projections, one GEMM);
        the backward recomputes them (the graph stores only ``x``, ``u``, ``v``).
    """
    if x.dim() != 2:
        raise ValueError(f"lowrank_quadratic expects x [M, D], got shape {tuple(x.shape)}")
    return lowrank_quadratic_fm(x.t(), u, v, spiking).t()
