"""The chunked pairwise-quadratic autograd op: equality with dense references, gradients,
memory bounds, dtypes, errors, and the ``benchmarks/quadratic.py`` smoke run."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
import torch
from conftest import quick_benchmark

from qifsim.layers import ChannelQuadratic
from qifsim.quadratic import functional as QF
from qifsim.quadratic.fused import (
    apply_plan,
    chunk_plan,
    lowrank_quadratic,
    pair_segments,
    pairwise_quadratic,
)

ROOT = Path(__file__).resolve().parents[1]


def _dense_pairs(x, coef, a, b):
    """Plain reference: sum_p coef[o, p] x[m, a_p] x[m, b_p] via explicit products."""
    return (x[:, a] * x[:, b]) @ coef.t()


@pytest.mark.parametrize("chunk", [None, 1, 3, 7, 10, 1000])
@pytest.mark.parametrize("spiking", [False, True])
def test_equals_dense_for_any_chunk(chunk, spiking):
    g = torch.Generator().manual_seed(0)
    x = torch.randn(37, 6, generator=g, dtype=torch.double)
    a, b = QF.pair_indices(6, spiking)
    coef = torch.randn(4, a.numel(), generator=g, dtype=torch.double)
    y = pairwise_quadratic(x, coef, a, b, chunk)
    torch.testing.assert_close(y, _dense_pairs(x, coef, a, b), rtol=1e-12, atol=1e-12)
    # and the symmetric-matrix view of the same coefficients
    tri = coef / QF.pair_scale(a, b, coef.dtype)
    dense = QF.dense_from_packed(tri, 6, spiking)
    torch.testing.assert_close(y, QF.linear_quadratic_reference(x, dense))


def test_arbitrary_pair_lists():
    """Unsorted, repeated and cross-block pairs all give the explicit-product result."""
    g = torch.Generator().manual_seed(1)
    x = torch.randn(11, 5, generator=g, dtype=torch.double)
    a = torch.tensor([4, 0, 0, 2, 2, 2, 1, 3, 0])
    b = torch.tensor([4, 1, 1, 0, 1, 3, 4, 3, 2])
    coef = torch.randn(3, a.numel(), generator=g, dtype=torch.double)
    for chunk in (1, 2, 4, 9):
        y = pairwise_quadratic(x, coef, a, b, chunk)
        torch.testing.assert_close(y, _dense_pairs(x, coef, a, b))


@pytest.mark.parametrize("spiking", [False, True])
def test_gradcheck_float64(spiking):
    g = torch.Generator().manual_seed(2)
    x = torch.randn(9, 5, generator=g, dtype=torch.double, requires_grad=True)
    a, b = QF.pair_indices(5, spiking)
    coef = torch.randn(3, a.numel(), generator=g, dtype=torch.double, requires_grad=True)
    assert torch.autograd.gradcheck(lambda x, c: pairwise_quadratic(x, c, a, b, 4), (x, coef))
    # only one of the inputs requiring a gradient
    assert torch.autograd.gradcheck(lambda x: pairwise_quadratic(x, coef.detach(), a, b, 2), (x,))
    assert torch.autograd.gradcheck(lambda c: pairwise_quadratic(x.detach(), c, a, b, 2), (coef,))


@pytest.mark.parametrize("spiking", [False, True])
def test_lowrank_gradcheck_float64(spiking):
    g = torch.Generator().manual_seed(3)
    x = torch.randn(7, 5, generator=g, dtype=torch.double, requires_grad=True)
    u = torch.randn(3, 5, 2, generator=g, dtype=torch.double, requires_grad=True)
    v = torch.randn(3, 5, 2, generator=g, dtype=torch.double, requires_grad=True)
    assert torch.autograd.gradcheck(lambda *t: lowrank_quadratic(*t, spiking=spiking), (x, u, v))
    a = QF.lowrank_matrices(u, v, spiking)
    torch.testing.assert_close(
        lowrank_quadratic(x, u, v, spiking), QF.linear_quadratic_reference(x, a)
    )


def test_chunk_plan_covers_every_pair_once():
    a, b = QF.pair_indices(9)
    segments = pair_segments(a, b)
    assert len(segments) == 9  # one run per row of the upper triangle
    for chunk in (1, 4, 9, 13, 45, 100):
        plan = chunk_plan(segments, chunk)
        seen = []
        for p0, p1, runs in plan:
            assert 0 < p1 - p0 <= chunk
            covered = p0
            for ai, b0, b1, q0 in runs:
                assert q0 == covered
                seen += [(ai, bi) for bi in range(b0, b1)]
                covered += b1 - b0
            assert covered == p1
        assert seen == list(zip(a.tolist(), b.tolist(), strict=True))


def test_graph_stores_only_inputs():
    """Backward recomputes the products: the autograd graph saves x and coef, nothing else."""
    saved = []

    def pack(t):
        saved.append(t.numel())
        return t

    x = torch.randn(200, 16, requires_grad=True)
    a, b = QF.pair_indices(16)
    coef = torch.randn(8, a.numel(), requires_grad=True)
    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        y = pairwise_quadratic(x, coef, a, b, chunk_size=8)
    # x (transposed copy) and coef: no [M, P] product tensor
    assert sorted(saved) == sorted([x.numel(), coef.numel()])
    y.sum().backward()


def _ledger():
    sys.path.insert(0, str(ROOT / "benchmarks"))
    try:
        import _common
    finally:
        sys.path.pop(0)
    return _common.AllocationLedger


def test_peak_memory_bounded_by_chunk():
    ledger_cls = _ledger()
    x = torch.randn(4, 32, 16, 16, requires_grad=True)
    peaks = {}
    for chunk in (16, 528):
        q = ChannelQuadratic(32, 32, chunk_size=chunk)
        with ledger_cls() as ledger:
            q(x).sum().backward()
        peaks[chunk] = ledger.peak
    m = 4 * 16 * 16
    # 528 pairs at once: at least one [528, M] product buffer; chunks of 16: far less
    assert peaks[528] >= 528 * m * 4
    assert peaks[16] < peaks[528] / 4
    # the small chunk's peak: input copies, output, gradients and a few [16, M] buffers
    assert peaks[16] < (8 * 32 * m + 6 * 16 * (m + 32)) * 4 + 4 * 32 * 528 * 4


def test_bfloat16_preserves_dtype_and_accumulates():
    g = torch.Generator().manual_seed(4)
    x = torch.randn(64, 24, generator=g)
    a, b = QF.pair_indices(24)
    coef = torch.randn(5, a.numel(), generator=g) / 10
    ref = pairwise_quadratic(x, coef, a, b, 16)
    xb = x.bfloat16().requires_grad_()
    cb = coef.bfloat16().requires_grad_()
    y = pairwise_quadratic(xb, cb, a, b, 16)
    assert y.dtype == torch.bfloat16
    scale = ref.abs().max()
    assert ((y.float() - ref).abs().max() / scale) < 3e-2
    y.float().sum().backward()
    assert xb.grad.dtype == torch.bfloat16 and cb.grad.dtype == torch.bfloat16
    xf = x.clone().requires_grad_()
    pairwise_quadratic(xf, coef, a, b).sum().backward()
    assert ((xb.grad.float() - xf.grad).abs().max() / xf.grad.abs().max()) < 3e-2


@pytest.mark.cuda
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16, torch.float16])
def test_cuda_matches_reference(dtype):
    q = ChannelQuadratic(16, 8, 3, 2, 1).cuda()
    with torch.no_grad():
        q.weight.normal_(0, 0.1)
    x = torch.randn(4, 16, 7, 13, device="cuda")
    ref = q(x.clone())  # float32 fused
    q.impl = "reference"
    torch.testing.assert_close(q(x), ref, rtol=1e-4, atol=1e-4)
    q.impl = "fused"
    qh = q.to(dtype)
    y = qh(x.to(dtype))
    assert y.dtype == dtype
    assert ((y.float() - ref).abs().max() / ref.abs().max()) < 3e-2


def test_errors():
    a, b = QF.pair_indices(4)
    x = torch.randn(3, 4)
    coef = torch.randn(2, a.numel())
    with pytest.raises(ValueError, match="dtype"):
        pairwise_quadratic(x.double(), coef, a, b)
    with pytest.raises(ValueError, match="length P"):
        pairwise_quadratic(x, coef[:, :3], a, b)
    with pytest.raises(ValueError, match=r"x \[M, D\]"):
        pairwise_quadratic(x[None], coef, a, b)
    with pytest.raises(ValueError, match="chunk_size"):
        pairwise_quadratic(x, coef, a, b, chunk_size=0)
    with pytest.raises(ValueError, match="floating-point"):
        pairwise_quadratic(x.long(), coef.long(), a, b)
    with pytest.raises(ValueError, match="cover"):
        apply_plan(x.t(), torch.randn(2, a.numel() + 1), pair_segments(a, b))
    with pytest.raises(ValueError, match="u, v"):
        lowrank_quadratic(x, torch.randn(2, 5, 1), torch.randn(2, 5, 1))


def test_benchmark_quick(tmp_path):
    result, stdout = quick_benchmark("quadratic", tmp_path / "q.json")
    assert "fused" in stdout and "targets" in stdout
    impls = result["implementations"]
    assert set(impls) == {"fused", "einsum", "outer", "lowrank_r8", "lowrank_r4"}
    for entry in impls.values():
        assert entry["timings_ms"]["total"]["median"] > 0
        assert entry["peak_bytes"] > 0
    assert impls["fused"]["max_rel_error_vs_einsum"] < 1e-5
    assert impls["outer"]["max_rel_error_vs_einsum"] < 1e-5
    # the outer product materialises [N*H*W, Cin^2]: its peak holds at least that
    cfg = result["config"]
    rows = cfg["batch"] * cfg["size"] ** 2
    assert impls["outer"]["peak_bytes"] >= rows * cfg["channels"] ** 2 * 4
    assert set(result["targets"]) == {
        "fused_time_over_einsum",
        "fused_peak_over_outer_peak",
        "lowrank_r8_time_over_full_rank",
        "lowrank_r8_time_over_full_rank_einsum",
    }
    spikes = result["spikes"]
    assert 0 < spikes["firing_rate_measured"] < 0.3
    assert spikes["event_per_sample"]["accumulates"] < spikes["dense_per_sample"]["mac"]


@pytest.mark.parametrize(("blocks", "size", "spiking"), [(1, 7, False), (1, 7, True), (3, 4, True)])
def test_layer_segments_equal_generic_segments(blocks, size, spiking):
    from qifsim.layers.quadratic import _triangle_segments

    a, b = QF.block_pair_indices(blocks, size, spiking)
    assert _triangle_segments(blocks, size, spiking) == pair_segments(a, b)
