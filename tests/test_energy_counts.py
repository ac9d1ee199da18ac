"""Operation counts: hand-computed nets, fan-out maps, encoding switch, unsupported layers."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from qifsim.energy import (
    OpCounter,
    UnsupportedLayerError,
    check_supported,
    counting,
    estimate_energy,
    load_profile,
    measure_energy,
    register_layer_kind,
)
from qifsim.energy.report import build_report
from qifsim.layers import MergeTime
from qifsim.models import LayerFactory, build_model
from qifsim.models.blocks import TimeFlatten
from qifsim.models.resnet import BasicBlock
from qifsim.neurons import LIF

E_MAC, E_AC = 4.6e-12, 0.9e-12
PROFILE = load_profile("cmos45nm-fp32")


class LinearLIF(nn.Module):
    """``[T, B, F] -> Linear -> LIF -> spikes``."""

    def __init__(self, n_in: int, n_out: int) -> None:
        super().__init__()
        self.fc = nn.Linear(n_in, n_out, bias=False)
        self.spike = LIF()

    def forward(self, x):
        return self.spike(self.fc(x))[0]


register_layer_kind(LinearLIF, "container")


def count(model: nn.Module, *inputs: torch.Tensor, **kwargs) -> OpCounter:
    model.eval()
    with OpCounter(model, **kwargs) as counter, torch.no_grad():
        for x in inputs:
            model(x)
    return counter


def test_linear_layer_hand_counts():
    model = LinearLIF(4, 3)
    x = torch.tensor([[[1.0, 0, 1, 0]], [[1.0, 1, 1, 0]]])  # [T=2, B=1, 4]: 5 spikes of 8
    counter = count(model, x)
    row = counter.rows["fc"]
    assert row.dense_ops == 2 * 4 * 3
    assert row.macs == 0
    assert row.acs == 5 / 8 * 24 == 15  # fr x dense ops
    assert row.event_acs == 5 * 3  # each spike reaches 3 outputs
    report = build_report(counter, PROFILE)
    assert report.energy_J == pytest.approx(15 * E_AC, rel=1e-12)
    assert report.energy_event_J == pytest.approx(15 * E_AC, rel=1e-12)
    # graded input: every dense op is a MAC
    graded = count(LinearLIF(4, 3), torch.full((2, 1, 4), 0.5))
    g = build_report(graded, PROFILE)
    assert graded.rows["fc"].macs == 24 and graded.rows["fc"].acs == 0
    assert g.energy_J == pytest.approx(24 * E_MAC, rel=1e-12)


def _conv_net(conv: nn.Conv2d) -> nn.Sequential:
    return nn.Sequential(MergeTime(conv))


def test_padded_strided_conv_hand_counts():
    conv = nn.Conv2d(1, 2, 3, stride=2, padding=1, bias=False)
    # rows/cols of a 5-wide input reach 1, 2, 1, 2, 1 outputs (stride 2, padding 1)
    r = [1, 2, 1, 2, 1]
    x = torch.zeros(1, 1, 1, 5, 5)
    for y, xx in ((0, 0), (1, 1), (2, 3)):
        x[0, 0, 0, y, xx] = 1.0
    counter = count(_conv_net(conv), x)
    row = counter.rows["0.module"]
    dense = 2 * 1 * 9 * 3 * 3
    assert row.dense_ops == dense == 162
    assert row.event_acs == 2 * (r[0] * r[0] + r[1] * r[1] + r[2] * r[3]) == 14
    assert row.acs == pytest.approx(3 / 25 * dense, rel=1e-12)
    report = build_report(counter, PROFILE)
    assert report.energy_J == pytest.approx(3 / 25 * dense * E_AC, rel=1e-12)
    assert report.energy_event_J == pytest.approx(14 * E_AC, rel=1e-12)
    # uniform (all-ones) input: event count = dense ops minus the taps on padding
    ones = count(_conv_net(conv), torch.ones(1, 1, 1, 5, 5)).rows["0.module"]
    assert ones.acs == dense
    assert ones.event_acs == 2 * sum(r) ** 2 == 98  # 64 of the 162 taps fall on padding


def test_event_count_equals_estimate_on_uniform_input_without_padding():
    conv = nn.Conv2d(3, 4, 3, stride=2, padding=0, bias=False)
    row = count(_conv_net(conv), torch.ones(2, 2, 3, 9, 9)).rows["0.module"]
    assert row.event_acs == row.acs == row.dense_ops
    # a linear layer has a uniform fan-out: equal for any spike pattern
    x = (torch.rand(3, 5, 7, generator=torch.Generator().manual_seed(1)) < 0.3).float()
    lin = count(LinearLIF(7, 5), x).rows["fc"]
    assert lin.event_acs == pytest.approx(lin.acs, rel=1e-12)


@pytest.mark.parametrize(
    "geom",
    [
        dict(c_in=2, c_out=3, k=3, s=1, p=1, d=1, g=1, hw=(6, 5)),
        dict(c_in=1, c_out=2, k=3, s=2, p=1, d=1, g=1, hw=(5, 5)),
        dict(c_in=4, c_out=4, k=3, s=2, p=2, d=2, g=2, hw=(9, 7)),
        dict(c_in=2, c_out=2, k=2, s=3, p=0, d=1, g=1, hw=(8, 8)),  # stride > kernel
        dict(c_in=3, c_out=6, k=5, s=2, p=2, d=1, g=3, hw=(7, 6)),
    ],
)
def test_fanout_map_equals_reference(geom):
    conv = nn.Conv2d(geom["c_in"], geom["c_out"], geom["k"], geom["s"], geom["p"], geom["d"],
                     groups=geom["g"], bias=False)  # fmt: skip
    g = counting.conv_geometry(conv)
    fast = counting.conv_fanout_map(g, geom["hw"])
    ref = counting.conv_fanout_map_reference(g, geom["hw"])
    assert torch.equal(fast, ref)
    # summed fan-out = dense ops minus padding taps; exact event count of random spikes
    assert fast.sum() <= counting.conv_dense_ops(g, geom["hw"])
    x = (torch.rand(3, geom["c_in"], *geom["hw"]) < 0.4).float()
    with torch.no_grad():
        direct = nn.functional.conv2d(
            x.double(), torch.ones_like(conv.weight, dtype=torch.float64), None, conv.stride,
            conv.padding, conv.dilation, conv.groups,
        ).sum()  # fmt: skip
    # sum of conv(spikes; W = 1) counts every (spike, weight, output) triple once
    assert counting.event_ops(x, fast) == int(direct.item())


def test_residual_block_hand_counts():
    block = BasicBlock(LayerFactory("lif"), 2, 2, stride=1)  # identity shortcut
    x = torch.zeros(1, 1, 2, 4, 4)
    spikes = [(0, 0, 0), (1, 1, 1), (0, 3, 2), (1, 2, 3), (0, 1, 2)]
    for c, y, xx in spikes:
        x[0, 0, c, y, xx] = 1.0
    r = [2, 3, 3, 2]  # 3x3, padding 1, stride 1 on a 4-wide map

    def override(name, s):  # spike1 fires everywhere: conv2 sees all-ones input
        return torch.ones_like(s) if name == "spike1" else s

    counter = count(block, x, spike_override=override)
    dense = 2 * 2 * 9 * 16
    conv1, conv2, res = (counter.rows[n] for n in ("conv1.module", "conv2.module", ""))
    assert conv1.dense_ops == conv2.dense_ops == dense
    assert conv1.acs == pytest.approx(5 / 32 * dense, rel=1e-12)
    assert conv1.event_acs == 2 * sum(r[y] * r[xx] for _, y, xx in spikes) == 68
    assert conv2.acs == dense and conv2.event_acs == 2 * 2 * sum(r) ** 2 == 400
    assert res.kind == "residual" and res.dense_ops == 32
    assert res.acs == res.event_acs == 5  # one add per shortcut spike
    report = build_report(counter, PROFILE)
    assert report.energy_J == pytest.approx((90 + 576 + 5) * E_AC, rel=1e-12)
    assert report.energy_event_J == pytest.approx((68 + 400 + 5) * E_AC, rel=1e-12)
    # projection shortcut: the two currents meet with one add per neuron and step
    proj = BasicBlock(LayerFactory("lif"), 2, 4, stride=2)
    c2 = count(proj, x)
    assert c2.rows[""].acs == c2.rows[""].event_acs == c2.rows[""].dense_ops == 4 * 2 * 2
    assert "shortcut.conv.module" in c2.rows


def test_average_pooling_of_spikes_folds_into_the_next_layer():
    net = nn.Sequential(MergeTime(nn.AvgPool2d(2)), TimeFlatten(), nn.Linear(1, 3, bias=False))
    x = torch.tensor([[[[[1.0, 1.0], [1.0, 0.0]]]]])  # [T=1, B=1, 1, 2, 2]: 3 spikes
    counter = count(net, x)
    pool, fc = counter.rows["0.module"], counter.rows["2"]
    assert pool.kind == "pool" and pool.dense_ops == 4 and pool.acs == 3 and pool.event_acs == 3
    assert fc.macs == 0  # pooled spikes are not graded input
    assert fc.acs == pytest.approx(0.75 * 3)  # estimate: mean pooled value x dense ops
    assert fc.event_acs == 3 * 3  # each of the 3 spikes drives the 3 outputs


def test_encoding_macs_switch():
    conv = nn.Conv2d(1, 2, 3, padding=1, bias=False)
    image = torch.rand(1, 2, 1, 4, 4)
    static = image.expand(3, 2, 1, 4, 4).contiguous()  # direct encoding, T=3
    dense = 2 * 9 * 16
    per_step = count(_conv_net(conv), static).rows["0.module"]
    once = count(_conv_net(conv), static, encoding_macs="once").rows["0.module"]
    assert per_step.macs == dense * 3 * 2 and once.macs == dense * 2
    with pytest.raises(ValueError, match="changes over time"):
        count(_conv_net(conv), torch.rand(3, 2, 1, 4, 4), encoding_macs="once")
    with pytest.raises(ValueError, match="encoding_macs"):
        OpCounter(_conv_net(conv), encoding_macs="twice")


def test_unsupported_layers_raise_naming_the_layer():
    # torch's other pooling modules add or compare: not silently free
    bad = nn.Sequential(MergeTime(nn.Conv2d(1, 2, 3)), MergeTime(nn.AvgPool1d(2)))
    with pytest.raises(UnsupportedLayerError, match=r"'1\.module'.*AvgPool1d.*torch operation"):
        OpCounter(bad)
    # an elementwise activation computes no synaptic operation: free
    assert check_supported(nn.Sequential(nn.Linear(2, 2), nn.ReLU()))["1"] == "free"

    class Custom(nn.Module):
        def __init__(self):
            super().__init__()
            self.w = nn.Parameter(torch.ones(3))

        def forward(self, x):
            return x * self.w

    with pytest.raises(UnsupportedLayerError, match=r"<the model itself>.*parameters or buffers"):
        OpCounter(Custom())
    with pytest.raises(UnsupportedLayerError, match="Conv1d"):
        measure_energy(nn.Sequential(nn.Conv1d(1, 1, 3)), [torch.zeros(1, 1, 1, 5)])


def test_paper_model_counts_match_the_architecture():
    model = build_model("vggsnn", input_size=(16, 16))
    report = estimate_energy(model, T=2, firing_rate=0.2, batch=2)
    rows = {r.name: r for r in report.rows}
    # conv2 of VGGSNN: 64 -> 128 channels, 3x3, on 16x16 at stride 1 "same"
    assert rows["features.conv2.conv.module"].dense_ops == 2 * 64 * 128 * 9 * 16 * 16
    assert rows["features.conv1.conv.module"].macs == 2 * 2 * 64 * 9 * 16 * 16
    rates = report.layer_rates()
    assert all(abs(r - 0.2) < 0.02 for r in rates.values())
    assert report.energy_J == pytest.approx(
        sum(r.macs for r in report.rows) * E_MAC + sum(r.acs for r in report.rows) * E_AC,
        rel=1e-12,
    )


class ContractQuadratic(nn.Module):
    """A stand-in following the quadratic-layer contract (kernel 1, stride 1, full rank).

    ``x: [N, C_in, H, W] -> [N, C_out, H, W]``, ``y[:, i] = x^T A_i x`` per pixel, ``A``
    symmetric with a zero diagonal in spiking mode.
    """

    def __init__(self, c_in: int, c_out: int, spiking: bool = True, rank=None) -> None:
        super().__init__()
        self.in_channels, self.out_channels = c_in, c_out
        self.spiking, self.rank = spiking, rank
        a = torch.randn(c_out, c_in, c_in)
        a = a + a.transpose(1, 2)
        if spiking:
            a = a * (1 - torch.eye(c_in))
        self.A = nn.Parameter(a)

    def centre_pixels(self, x):
        return x

    def quadratic_op_counts(self, out_hw=None):
        positions = 1 if out_hw is None else out_hw[0] * out_hw[1]
        c = self.in_channels
        pairs = c * (c - 1) // 2 if self.spiking else c * (c + 1) // 2
        return {"mul": pairs * positions, "mac": pairs * self.out_channels * positions}

    def forward(self, x):
        return torch.einsum("nihw,oij,njhw->nohw", x, self.A, x)


register_layer_kind(ContractQuadratic, "quadratic")


def test_quadratic_synapse_hand_counts():
    quad = ContractQuadratic(3, 2)
    x = torch.zeros(1, 1, 3, 2, 2)
    x[0, 0, :, 0, 0] = 1.0  # 3 active channels: 3 pairs
    x[0, 0, :2, 0, 1] = 1.0  # 2 active: 1 pair
    x[0, 0, 2, 1, 0] = 1.0  # 1 active: no pair
    counter = count(nn.Sequential(MergeTime(quad)), x)
    row = counter.rows["0.module"]
    assert row.kind == "quadratic"
    assert row.dense_ops == 3 * 4 + 3 * 2 * 4  # pair products + coefficient MACs, 4 pixels
    assert row.event_acs == 4 * 2  # 4 co-active pairs, each adds to 2 output channels
    assert row.acs == pytest.approx(0.5**2 * 24)  # fr**2 x dense pair accumulations, fr 6/12
    assert row.macs == 0
    assert counting.quadratic_event_ops(x[0], 2) == counting.quadratic_event_ops_reference(x[0], 2)
    report = build_report(counter, PROFILE)
    assert report.energy_J == pytest.approx(6 * E_AC, rel=1e-12)
    assert report.energy_event_J == pytest.approx(8 * E_AC, rel=1e-12)
    graded = count(nn.Sequential(MergeTime(ContractQuadratic(3, 2, spiking=False))), x * 0.5)
    assert graded.rows["0.module"].macs == (6 + 12) * 4  # full-rank graded: all dense as MACs


def test_quadratic_event_count_reference_on_random_spikes():
    g = torch.Generator().manual_seed(2)
    centre = (torch.rand(4, 5, 3, 3, generator=g) < 0.5).float()
    assert counting.quadratic_event_ops(centre, 3) == counting.quadratic_event_ops_reference(
        centre, 3
    )


def test_pool_fanout_and_event_counts_by_hand():
    pool = nn.AvgPool2d(3, stride=2, padding=1)  # overlapping windows
    g = counting.pool_geometry(pool)
    fan = counting.pool_fanout_map(g, (5, 5))
    r = [1, 2, 1, 2, 1]  # windows covering each row/col (as the strided conv above)
    assert fan[0].tolist() == [[float(a * b) for b in r] for a in r]
    x = torch.zeros(2, 3, 5, 5)
    x[0, 1, 1, 1] = x[1, 2, 0, 3] = 1.0
    assert counting.event_ops(x, fan) == 4 + 2
    counter = count(nn.Sequential(MergeTime(pool)), x.unsqueeze(1))
    assert counter.rows["0.module"].event_acs == 6
    assert counter.rows["0.module"].dense_ops == 2 * 3 * 9 * 9


def test_real_quadratic_layers_counted_against_their_own_geometry():
    quadratic = pytest.importorskip("qifsim.layers.quadratic")
    q = quadratic.QuadraticConv2d(3, 4, 3, stride=2, padding=1, bias=False, spiking=True)
    g = torch.Generator().manual_seed(5)
    x = (torch.rand(2, 3, 3, 7, 7, generator=g) < 0.5).float()  # [T, B, C, H, W]
    counter = count(nn.Sequential(MergeTime(q)), x)
    row = counter.rows["0.module.quadratic"]
    flat = x.flatten(0, 1)
    dense = q.quadratic_op_counts((4, 4))
    assert row.dense_ops == (dense["mul"] + dense["mac"]) * 6
    pairs = counting.quadratic_event_ops_reference(q.centre_pixels(flat), 4)
    assert row.event_acs == pairs
    fr = flat.sum().item() / flat.numel()
    assert row.acs == pytest.approx(fr * fr * dense["mac"] * 6, rel=1e-9)
    assert counter.rows["0.module.conv"].kind == "conv"  # the linear part beside it
    lin = quadratic.QuadraticLinear(5, 3, bias=False, spiking=True)
    xs = (torch.rand(2, 4, 5, generator=g) < 0.5).float()
    c2 = count(nn.Sequential(lin), xs)
    n = xs.sum(-1)
    assert c2.rows["0"].kind == "quadratic_linear"
    assert c2.rows["0"].event_acs == int((n * (n - 1) / 2).sum().item()) * 3
    assert c2.rows["0.linear"].event_acs == int(xs.sum().item()) * 3
    with pytest.raises(UnsupportedLayerError, match="PixelQuadratic"):
        OpCounter(nn.Sequential(MergeTime(quadratic.QuadraticConv2d(2, 2, 3, mode="pixel"))))


def test_non_spiking_quadratic_on_spikes_counts_its_diagonal():
    """A_mm s_m^2 = A_mm s_m: a non-spiking layer fed by spikes has n(n+1)/2 terms per pixel."""
    quadratic = pytest.importorskip("qifsim.layers.quadratic")
    q = quadratic.QuadraticConv2d(4, 3, 3, padding=1, bias=False, spiking=False)
    g = torch.Generator().manual_seed(7)
    x = (torch.rand(1, 2, 4, 5, 5, generator=g) < 0.4).float()
    row = count(nn.Sequential(MergeTime(q)), x).rows["0.module.quadratic"]
    flat = x.flatten(0, 1)
    centre = q.centre_pixels(flat)
    assert row.event_acs == counting.quadratic_event_ops_reference(centre, 3, diagonal=True)
    n = centre.sum(1)
    assert row.event_acs == int((n * (n + 1) / 2).sum().item()) * 3
    fr = flat.sum().item() / flat.numel()
    diag = 4 * 3 * 25
    mac = q.quadratic_op_counts((5, 5))["mac"]
    assert row.acs == pytest.approx((fr * fr * (mac - diag) + fr * diag) * 2, rel=1e-9)


def test_average_pooling_without_padded_divisor_is_refused():
    with pytest.raises(ValueError, match="count_include_pad"):
        counting.pool_geometry(nn.AvgPool2d(3, stride=1, padding=1, count_include_pad=False))
    counting.pool_geometry(nn.AvgPool2d(2, count_include_pad=False))  # no padding: fine


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64, torch.float16, torch.bfloat16])
def test_fast_binary_check_and_nonzero_sums_equal_their_definitions(dtype):
    g = torch.Generator().manual_seed(3)
    spikes = (torch.rand(6, 3, 5, 5, generator=g) < 0.3).to(dtype)
    tiny = torch.finfo(dtype).tiny / 4 if dtype != torch.bfloat16 else 1e-40  # subnormal
    near_one = 1 - torch.finfo(dtype).eps / 2
    cases = [spikes, torch.zeros(4, dtype=dtype), torch.ones(4, dtype=dtype), spikes.neg()]
    for bad in (2.0, -1.0, 0.5, near_one, tiny, float("nan"), float("inf"), -float("inf")):
        x = spikes.clone()
        x[3, 1, 2, 4] = bad
        cases.append(x)
    cases.append(spikes * 0 - 0.0)  # negative zeros are zeros
    for x in cases:
        assert counting.is_binary(x) == counting.is_binary_reference(x), x.flatten()[:8]
        if not torch.isnan(x).any():
            frames = x.shape[0] if x.dim() > 1 else 1
            ref = counting.frame_sums(x != 0, frames)
            assert torch.equal(counting.nonzero_sums(x, frames), ref)
    for ints in (torch.tensor([0, 1, 1]), torch.tensor([0, 2]), torch.tensor([-1, 0])):
        for dt in (torch.int64, torch.int32):
            x = ints.to(dt)
            assert counting.is_binary(x) == counting.is_binary_reference(x)
    assert counting.is_binary(torch.tensor([True, False]))
    assert counting.is_binary(torch.zeros(0))
    u8 = torch.tensor([0, 3, 0, 1], dtype=torch.uint8)
    assert torch.equal(counting.nonzero_sums(u8, 2), counting.frame_sums(u8 != 0, 2))
