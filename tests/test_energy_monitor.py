"""Firing rates equal direct counts; membrane histograms; memory constant in the batches."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from numpy_neurons import lif_numpy, qif_numpy

from qifsim.energy import MembraneHistograms, OpCounter, SpikeMonitor, measure_energy
from qifsim.energy.histogram import histogram_counts
from qifsim.models import build_model
from qifsim.neurons import LIF, QIF, LIFParameters, QIFParameters


def _digits_net(neuron: str = "qif"):
    torch.manual_seed(0)
    model = build_model("digits-net", neuron=neuron, channels=(4, 8), hidden=16)
    with torch.no_grad():
        model(torch.rand(4, 8, 2, 34, 34) * 3)  # calibrate tdBN's running statistics
    return model.eval()


def _batches(n: int, T: int = 4, B: int = 3, seed: int = 0) -> list[torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    return [(torch.rand(T, B, 2, 34, 34, generator=g) < 0.2).float() * 2 for _ in range(n)]


@pytest.mark.parametrize("neuron", ["qif", "lif"])
def test_report_rates_equal_spikes_counted_from_the_outputs(neuron):
    model = _digits_net(neuron)
    batches = _batches(3)
    report = measure_energy(model, batches)
    direct = {"features.conv1.spike": 0.0, "features.conv2.spike": 0.0, "classifier.fc1.spike": 0.0}
    sizes = {}
    with torch.no_grad():  # run the blocks by hand: each returns its spikes
        for x in batches:
            s1 = model.features.conv1(x)
            s2 = model.features.conv2(s1)
            s3 = model.classifier.fc1(s2.flatten(2))
            for name, s in zip(direct, (s1, s2, s3), strict=True):
                direct[name] += s.sum().item()
                sizes[name] = s[0, 0].numel()
    rates = report.layer_rates()
    for name, spikes in direct.items():
        assert rates[name] == spikes / (sizes[name] * 4 * 3 * len(batches))
    assert sum(direct.values()) > 0
    assert report.samples == 9 and report.steps == 4
    # the same numbers as the SpikeMonitor
    with SpikeMonitor(model) as monitor, torch.no_grad():
        for x in batches:
            model(x)
    assert monitor.rates() == pytest.approx(rates, rel=0, abs=0)
    # the input firing rate of the next layer is the rate of the spikes it receives
    rows = {r.name: r for r in report.rows}
    assert rows["features.conv2.conv.module"].in_rate == rates["features.conv1.spike"]
    assert rows["features.conv1.conv.module"].in_rate is None  # graded event counts: MACs


def _tensor_bytes(obj, seen=None) -> int:
    """Bytes of tensor storage reachable from ``obj`` through dicts, lists, tuples, dataclasses."""
    seen = set() if seen is None else seen
    if id(obj) in seen:
        return 0
    seen.add(id(obj))
    if isinstance(obj, torch.Tensor):
        return obj.untyped_storage().nbytes()
    if isinstance(obj, torch.nn.Module):
        return 0  # the model itself is not the monitor's state
    if isinstance(obj, dict):
        return sum(_tensor_bytes(k, seen) + _tensor_bytes(v, seen) for k, v in obj.items())
    if isinstance(obj, (list, tuple, set)):
        return sum(_tensor_bytes(v, seen) for v in obj)
    if hasattr(obj, "__dict__"):
        return _tensor_bytes(vars(obj), seen)
    return 0


def test_memory_is_constant_in_the_number_of_batches():
    model = _digits_net()
    batches = _batches(8)
    counter = OpCounter(model)
    hist = MembraneHistograms(model, bins=50)
    sizes = []
    with counter, hist, torch.no_grad():
        for i, x in enumerate(batches):
            model(x)
            if i in (1, 7):
                sizes.append((_tensor_bytes(counter), _tensor_bytes(hist), len(counter.rows)))
    assert sizes[0] == sizes[1]
    assert counter._pooled == {}  # per-forward marks are dropped after every batch


@pytest.mark.parametrize("neuron", ["qif", "lif"])
def test_membrane_histogram_counts_pre_reset_potentials(neuron):
    g = torch.Generator().manual_seed(3)
    x = torch.randn(6, 4, 5, generator=g, dtype=torch.float64) * 0.6 + 0.2
    if neuron == "qif":
        p = QIFParameters()
        layer = QIF(p)
        _, _, v = qif_numpy(x.numpy(), p.a, p.u_rest, p.u_c, p.u_th)
    else:
        p = LIFParameters()
        layer = LIF(p)
        _, _, v = lif_numpy(x.numpy(), p.beta, p.u_th)
    net = torch.nn.Sequential()
    net.add_module("spike", layer)
    with MembraneHistograms(net, ["spike"], bins=30, value_range=(-0.5, 1.0)) as rec:
        layer(x)
        layer(x)
    hist = rec.histograms["spike"]
    expected, _ = np.histogram(v, bins=30, range=(-0.5, 1.0))
    inside = ((v >= -0.5) & (v <= 1.0)).sum()
    assert hist.counts == (2 * expected).tolist()
    assert hist.below == 2 * int((v < -0.5).sum()) and hist.above == 2 * int((v > 1.0).sum())
    assert hist.total == 2 * v.size and sum(hist.counts) == 2 * inside
    assert hist.u_th == pytest.approx(p.u_th)
    assert "_run" not in vars(layer)  # the wrapper is removed on exit


def test_histogram_helper_and_bad_arguments():
    counts, below, above = histogram_counts(torch.tensor([-2.0, 0.0, 0.5, 1.0, 3.0]), 2, 0.0, 1.0)
    assert counts.tolist() == [1, 2] and (below, above) == (1, 1)
    model = _digits_net()
    with pytest.raises(ValueError, match="no neuron layer named"):
        MembraneHistograms(model, ["features.conv1"])
    with pytest.raises(ValueError, match="lo < hi"):
        MembraneHistograms(model, value_range=(1.0, 0.0))


def test_histogram_counts_stay_exact_past_float32_range():
    """float32 bins stop counting at 2**24; the counts are chunked into int64 totals."""
    n = 2**24 + 3
    counts, below, above = histogram_counts(torch.zeros(n), 4, -1.0, 1.0)
    assert int(counts.sum()) == n and int(counts.max()) == n and below == above == 0
