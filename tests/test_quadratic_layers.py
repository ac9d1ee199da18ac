"""Quadratic synapse layers: geometry, references, spiking mode, low rank, op counts, errors."""

from __future__ import annotations

import itertools

import pytest
import torch
import torch.nn.functional as F

from qifsim.layers import ChannelQuadratic, PixelQuadratic, QuadraticConv2d, QuadraticLinear
from qifsim.quadratic import functional as QF

GEOMETRIES = [  # kernel, stride, padding, dilation
    (3, 1, 1, 1),
    (3, 2, 1, 1),
    (2, 2, 0, 1),
    (5, 1, 2, 2),
    (3, 3, 0, 1),
    (4, 1, 3, 1),
    ((3, 1), (2, 1), (0, 2), (1, 1)),
]


def _randomise(module: torch.nn.Module, seed: int = 0) -> None:
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in module.parameters():
            p.copy_(torch.randn(p.shape, generator=g, dtype=p.dtype))


def _centre_loop(x, k, s, p, d):
    """Independent centre-pixel gather by explicit index arithmetic."""
    k, s, p, d = (QF._pair(v, "v") for v in (k, s, p, d))
    h_out, w_out = QF.conv_output_size(tuple(x.shape[-2:]), k, s, p, d)
    out = x.new_zeros(x.shape[0], x.shape[1], h_out, w_out)
    for i, j in itertools.product(range(h_out), range(w_out)):
        r = i * s[0] - p[0] + d[0] * ((k[0] - 1) // 2)
        c = j * s[1] - p[1] + d[1] * ((k[1] - 1) // 2)
        if 0 <= r < x.shape[2] and 0 <= c < x.shape[3]:
            out[:, :, i, j] = x[:, :, r, c]
    return out


@pytest.mark.parametrize("geometry", GEOMETRIES)
def test_conv_equals_conv_plus_einsum_non_square(geometry):
    k, s, p, d = geometry
    m = QuadraticConv2d(5, 4, k, s, p, d).double()
    _randomise(m)
    x = torch.randn(3, 5, 7, 13, dtype=torch.double, requires_grad=True)
    y = m(x)
    xc = _centre_loop(x, k, s, p, d)
    a = m.matrices()
    ref = m.conv(x) + torch.einsum("nihw,oij,njhw->nohw", xc, a, xc)
    assert y.shape == m.conv(x).shape == ref.shape
    torch.testing.assert_close(y, ref, rtol=1e-12, atol=1e-12)
    g = torch.randn_like(y)
    gx, gw = torch.autograd.grad((y * g).sum(), (x, m.quadratic.weight))
    rx, rw = torch.autograd.grad((ref * g).sum(), (x, m.quadratic.weight))
    torch.testing.assert_close(gx, rx, rtol=1e-10, atol=1e-10)
    torch.testing.assert_close(gw, rw, rtol=1e-10, atol=1e-10)


@pytest.mark.parametrize("geometry", GEOMETRIES[:4])
def test_channel_gradcheck_float64(geometry):
    k, s, p, d = geometry
    q = ChannelQuadratic(3, 2, k, s, p, d, chunk_size=2).double()
    _randomise(q, 1)
    x = torch.randn(2, 3, 5, 6, dtype=torch.double, requires_grad=True)
    w = q.weight.detach().clone().requires_grad_()
    assert torch.autograd.gradcheck(lambda x: q(x), (x,))
    assert torch.autograd.gradcheck(lambda t: _channel_with_weight(q, x.detach(), t), (w,))


def _channel_with_weight(q, x, w):
    xc = q.centre_pixels(x)
    rows = xc.permute(0, 2, 3, 1).reshape(-1, q.in_channels)
    from qifsim.quadratic.fused import pairwise_quadratic

    coef = w * QF.pair_scale(q.pair_a, q.pair_b, w.dtype)
    return pairwise_quadratic(rows, coef, q.pair_a, q.pair_b, chunk_size=2)


def test_centre_pixels_same_conv_is_identity():
    q = ChannelQuadratic(3, 2, kernel_size=3, padding=1)
    x = torch.randn(2, 3, 7, 13)
    torch.testing.assert_close(q.centre_pixels(x), x, rtol=0, atol=0)
    q = ChannelQuadratic(3, 2, kernel_size=5, padding=4, dilation=2)
    torch.testing.assert_close(q.centre_pixels(x), x, rtol=0, atol=0)


@pytest.mark.parametrize("geometry", GEOMETRIES)
def test_centre_pixels_match_index_arithmetic(geometry):
    k, s, p, d = geometry
    x = torch.randn(2, 3, 7, 13)
    torch.testing.assert_close(QF.centre_pixels(x, k, s, p, d), _centre_loop(x, k, s, p, d))


def test_transposed_maps_are_not_equivalent():
    """Guard against the W/H flattening bug: a transposed input gives the transposed term."""
    q = ChannelQuadratic(4, 3).double()
    _randomise(q)
    x = torch.randn(2, 4, 7, 13, dtype=torch.double)
    y = q(x)
    yt = q(x.transpose(-1, -2).contiguous())
    torch.testing.assert_close(yt, y.transpose(-1, -2))
    ref = torch.einsum("nihw,oij,njhw->nohw", x, q.matrices(), x)
    torch.testing.assert_close(y, ref)


@pytest.mark.parametrize("geometry", [(3, 1, 1, 1), (3, 2, 0, 1), (2, 1, 1, 2)])
@pytest.mark.parametrize("spiking", [False, True])
def test_pixel_mode_equals_reference_and_loop(geometry, spiking):
    k, s, p, d = geometry
    m = QuadraticConv2d(3, 2, k, s, p, d, mode="pixel", spiking=spiking).double()
    _randomise(m, 2)
    x = torch.randn(2, 3, 7, 9, dtype=torch.double, requires_grad=True)
    q = m.quadratic
    y = q(x)
    q.impl = "reference"
    ref = q(x)
    q.impl = "fused"
    torch.testing.assert_close(y, ref, rtol=1e-12, atol=1e-12)
    # independent loop over channels with unfold
    a = m.matrices()
    assert a.shape == (2, 3, k * k, k * k)
    torch.testing.assert_close(a, a.transpose(-1, -2))
    cols = F.unfold(x, k, dilation=d, padding=p, stride=s).reshape(2, 3, k * k, -1)
    loop = sum(torch.einsum("npl,opq,nql->nol", cols[:, c], a[:, c], cols[:, c]) for c in range(3))
    torch.testing.assert_close(y.flatten(2), loop)
    assert torch.autograd.gradcheck(lambda t: q(t), (x[:1, :, :5, :5].detach().requires_grad_(),))
    if spiking:
        assert torch.count_nonzero(torch.diagonal(a, dim1=-2, dim2=-1)) == 0


def test_spiking_mode_has_no_diagonal_on_binary_inputs():
    torch.manual_seed(0)
    q = ChannelQuadratic(6, 3, spiking=True).double()
    _randomise(q)
    a = q.matrices()
    assert torch.count_nonzero(torch.diagonal(a, dim1=-2, dim2=-1)) == 0
    s = (torch.rand(4, 6, 5, 7) < 0.3).double()
    # exactly the pair AND count weighted by 2 A_ab, a < b
    i, j = torch.triu_indices(6, 6, 1)
    expected = torch.einsum("nphw,op->nohw", s[:, i] * s[:, j], 2 * a[:, i, j])
    torch.testing.assert_close(q(s), expected)
    # a purely diagonal A in a non-spiking layer equals the linear term on spikes (s^2 = s)
    dense = ChannelQuadratic(6, 3).double()
    with torch.no_grad():
        dense.weight.zero_()
        diag = torch.randn(3, 6, dtype=torch.double)
        dense.weight[:, i.new_tensor(_diag_positions(6))] = diag
    torch.testing.assert_close(dense(s), torch.einsum("nchw,oc->nohw", s, diag))
    # spiking = non-spiking with the diagonal removed
    full = ChannelQuadratic(6, 3).double()
    with torch.no_grad():
        full.weight.copy_(torch.randn_like(full.weight))
    spk = ChannelQuadratic(6, 3, spiking=True).double()
    off = torch.triu_indices(6, 6, 0)
    keep = off[0] != off[1]
    with torch.no_grad():
        spk.weight.copy_(full.weight[:, keep])
    diag_part = torch.einsum("nchw,oc->nohw", s, torch.diagonal(full.matrices(), dim1=1, dim2=2))
    torch.testing.assert_close(spk(s), full(s) - diag_part)


def _diag_positions(n: int) -> list[int]:
    a, b = QF.pair_indices(n)
    return [int(p) for p in torch.nonzero(a == b).flatten()]


@pytest.mark.parametrize("spiking", [False, True])
def test_lowrank_equals_dense_matrices_and_starts_at_zero(spiking):
    q = ChannelQuadratic(6, 4, kernel_size=3, stride=2, padding=1, rank=2, spiking=spiking)
    q = q.double()
    assert torch.count_nonzero(q.matrices()) == 0  # A = U U^T - V V^T = 0 at init
    x = torch.randn(2, 6, 7, 13, dtype=torch.double, requires_grad=True)
    y = q(x)
    assert torch.count_nonzero(y) == 0
    (y * torch.randn_like(y)).sum().backward()
    assert q.u.grad.abs().sum() > 0 and q.v.grad.abs().sum() > 0  # A = 0, yet it learns
    with torch.no_grad():
        q.u.add_(0.3 * torch.randn_like(q.u))
    x.grad = None
    y = q(x)
    q.impl = "reference"
    ref = q(x)
    q.impl = "fused"
    torch.testing.assert_close(y, ref, rtol=1e-12, atol=1e-12)
    a = q.matrices()
    torch.testing.assert_close(a, a.transpose(-1, -2))
    if spiking:
        assert torch.count_nonzero(torch.diagonal(a, dim1=-2, dim2=-1)) == 0
    xs = x[:1, :, :4, :4].detach().requires_grad_()
    assert torch.autograd.gradcheck(lambda t, u, v: _lowrank_call(q, t, u, v),
                                    (xs, q.u.detach().requires_grad_(),
                                     q.v.detach().requires_grad_()))  # fmt: skip


def _lowrank_call(q, x, u, v):
    from qifsim.quadratic.fused import lowrank_quadratic

    xc = q.centre_pixels(x)
    rows = xc.permute(0, 2, 3, 1).reshape(-1, q.in_channels)
    return lowrank_quadratic(rows, u, v, q.spiking)


def test_lowrank_gets_gradient_at_init():
    """U = V at init gives A = 0 but a non-zero gradient through the loss of the full layer."""
    torch.manual_seed(0)
    m = QuadraticLinear(5, 3, rank=2).double()
    x = torch.randn(8, 5, dtype=torch.double)
    target = torch.randn(8, 3, dtype=torch.double)
    ((m(x) - target) ** 2).sum().backward()
    assert m.u.grad.abs().sum() > 0 and m.v.grad.abs().sum() > 0


@pytest.mark.parametrize("rank", [None, 3])
@pytest.mark.parametrize("spiking", [False, True])
def test_linear_equals_linear_plus_einsum(rank, spiking):
    m = QuadraticLinear(7, 4, rank=rank, spiking=spiking, chunk_size=5).double()
    _randomise(m, 3)
    x = torch.randn(2, 3, 7, dtype=torch.double, requires_grad=True)
    a = m.matrices()
    ref = m.linear(x) + torch.einsum("tbi,oij,tbj->tbo", x, a, x)
    torch.testing.assert_close(m(x), ref, rtol=1e-12, atol=1e-12)
    assert torch.autograd.gradcheck(lambda t: m(t), (x[:1, :2].detach().requires_grad_(),))


def test_symmetric_zero_initialised_and_parameters():
    m = QuadraticConv2d(4, 3, 3, padding=1)
    a = m.matrices()
    assert a.shape == (3, 4, 4) and torch.count_nonzero(a) == 0
    assert [p is m.quadratic.weight for p in m.quadratic_parameters()] == [True]
    quad = {id(p) for p in m.quadratic_parameters()}
    assert quad.isdisjoint({id(p) for p in m.conv.parameters()})
    assert (m.kernel_size, m.stride, m.padding, m.dilation) == ((3, 3), (1, 1), (1, 1), (1, 1))
    assert (m.mode, m.spiking, m.rank) == ("channel", False, None)
    lr = QuadraticLinear(4, 2, rank=2)
    assert len(list(lr.quadratic_parameters())) == 2


def test_op_counts():
    q = ChannelQuadratic(64, 64)
    assert q.quadratic_op_counts() == {"mul": 2080, "mac": 2080 * 64}
    assert q.quadratic_op_counts((16, 16)) == {"mul": 2080 * 256, "mac": 2080 * 64 * 256}
    s = ChannelQuadratic(64, 64, spiking=True)
    assert s.quadratic_op_counts() == {"mul": 2016, "mac": 2016 * 64}
    r = ChannelQuadratic(64, 64, rank=8)
    assert r.quadratic_op_counts() == {"mul": 16 * 64, "mac": 64 * 16 * 64}
    rs = ChannelQuadratic(64, 64, rank=8, spiking=True)
    assert rs.quadratic_op_counts() == {"mul": 16 * 64 + 64, "mac": 64 * 16 * 64 + 64 * 64}
    p = PixelQuadratic(4, 2, 3)
    assert p.quadratic_op_counts((2, 3)) == {"mul": 4 * 45 * 6, "mac": 4 * 45 * 2 * 6}
    lin = QuadraticLinear(10, 3, spiking=True)
    assert lin.quadratic_op_counts() == {"mul": 45, "mac": 135}
    # the counted pairs are exactly the parameters of the packed form
    assert q.weight.shape[1] == q.quadratic_op_counts()["mul"]


def test_bad_input_raises_clear_errors():
    q = QuadraticConv2d(3, 2, 3, padding=1)
    with pytest.raises(ValueError, match=r"\[N, 3, H, W\]"):
        q.quadratic(torch.randn(2, 4, 5, 5))
    with pytest.raises(ValueError, match="MergeTime"):
        q.quadratic(torch.randn(1, 2, 3, 5, 5))
    with pytest.raises(ValueError, match="floating-point"):
        q.quadratic(torch.ones(1, 3, 5, 5, dtype=torch.int64))
    with pytest.raises(ValueError, match="too small"):
        ChannelQuadratic(3, 2, kernel_size=5)(torch.randn(1, 3, 3, 3))
    with pytest.raises(ValueError, match="mode"):
        QuadraticConv2d(3, 2, 3, mode="patch")
    with pytest.raises(ValueError, match="full rank"):
        QuadraticConv2d(3, 2, 3, mode="pixel", rank=2)
    with pytest.raises(ValueError, match="rank"):
        QuadraticLinear(3, 2, rank=0)
    with pytest.raises(ValueError, match="impl"):
        QuadraticLinear(3, 2, impl="cuda")
    with pytest.raises(ValueError, match="spiking"):
        QuadraticLinear(1, 2, spiking=True)
    with pytest.raises(ValueError, match="float64"):
        QuadraticLinear(3, 2)(torch.randn(2, 3, dtype=torch.double))
    with pytest.raises(ValueError, match=r"\[\.\.\., 3\]"):
        QuadraticLinear(3, 2)(torch.randn(2, 4))
