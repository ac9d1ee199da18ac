"""Loihi quantisation: mantissa/exponent ranges, exact thresholds, error choice, 24-bit bound."""

from __future__ import annotations

import numpy as np
import pytest
from export_nets import random_net
from hypothesis import given, settings
from hypothesis import strategies as st

from qifsim.export import ExportError, model_exchange, walk
from qifsim.export.quantize import (
    STATE_MAX,
    best_ratio,
    quantize_layers,
    quantize_weights,
    weight_error,
)


@pytest.mark.parametrize(
    "kind,neuron,depth,pool",
    [("dense", "qif", 3, False), ("conv", "lif", 3, True), ("conv", "qif", 2, False)],
)
def test_loihi_constraints_hold(kind, neuron, depth, pool):
    model = random_net(kind, neuron, depth, seed=5, pool=pool, form="euler")
    ex, quant, layers = model_exchange(model)
    for layer, q in zip(ex.layers, quant, strict=True):
        if not layer.synaptic:
            assert q is None
            continue
        m = layer.weight_mant
        assert m.min() >= -256 and m.max() <= 254 and not np.any(m % 2)
        assert np.array_equal(m, np.round(m)) and np.array_equal(
            layer.bias_mant, np.round(layer.bias_mant)
        )
        assert np.abs(layer.bias_mant).max() <= 4095  # 13-bit signed (bias_mant * 2**6)
        assert 0 <= layer.weight_exponent <= 7
        # the recorded error is the formula's, recomputed from the stored arrays
        w_hat = m * 2.0**layer.weight_exponent * 64.0 * q.input_scale / layer.scale
        err = np.linalg.norm(layer.weight_float - w_hat) / np.linalg.norm(layer.weight_float)
        assert layer.quant_error == pytest.approx(err, rel=1e-12)
        assert layer.quant_error < 0.02
        if layer.role != "hidden":
            continue
        fx, p = layer.fixed, layer.params
        assert 1 <= fx["vth_mant"] <= 8191
        # the threshold is exact: lambda = 64 vth_mant / u_th
        assert layer.scale == pytest.approx(64.0 * fx["vth_mant"] / p["u_th"], rel=1e-15)
        if neuron == "qif":
            assert 1 <= fx["a_mant"] <= 4095 and fx["a_shift"] >= 0
            a_q = fx["a_mant"] / 2.0 ** fx["a_shift"]
            assert a_q == pytest.approx(p["a"] / layer.scale, rel=1 / 2048)
            assert fx["u_rest_int"] == round(layer.scale * p["u_rest"])
            assert fx["u_c_int"] == round(layer.scale * p["u_c"])
        else:
            assert fx["dv"] == round(4096 * (1 - p["beta"]))
        if not q.saturation_possible:
            fan = np.abs(m).reshape(m.shape[0], -1).sum(1) * 2.0**layer.weight_exponent
            worst = (fan + np.abs(layer.bias_mant)).max() * 64
            assert worst + fx["vth_mant"] * 64 <= STATE_MAX


@settings(max_examples=30, deadline=None)
@given(
    st.integers(0, 2**31 - 1),
    st.floats(1e-4, 1e3),
    st.integers(1, 200),
)
def test_best_ratio_is_at_least_as_good_as_no_clipping(seed, magnitude, n):
    w = np.random.default_rng(seed).standard_t(3, size=n) * magnitude
    r = best_ratio(w)
    r0 = 255.0 / np.abs(w).max() * (1 - 1e-12)
    assert weight_error(w, r) <= weight_error(w, r0) + 1e-15
    assert weight_error(w, r) <= weight_error(w, r0 / 2) + 1e-15
    m = quantize_weights(w, r)
    assert m.min() >= -256 and m.max() <= 254 and not np.any(m % 2)


def test_quantize_weights_plain():
    w = np.array([0.0, 1.0, -1.0, 0.3, 10.0, -10.0])
    np.testing.assert_array_equal(quantize_weights(w, 100.0), [0, 100, -100, 30, 254, -256])
    np.testing.assert_array_equal(quantize_weights(w, 1.5), [0, 2, -2, 0, 16, -16])


def test_saturation_bound_drives_exponent_and_flag():
    model = random_net("conv", "qif", 1, seed=2)
    layers = walk(model, model.input_shape)
    small = quantize_layers(layers, max_input=1.0, time_steps=4)[0]
    big = quantize_layers(layers, max_input=50.0, time_steps=4)[0]
    huge = quantize_layers(layers, max_input=1e6, time_steps=4)[0]
    assert big.weight_exponent < small.weight_exponent
    assert not small.saturation_possible and not big.saturation_possible
    assert huge.saturation_possible and huge.weight_exponent == 0
    assert big.worst_current + big.fixed["vth_mant"] * 64 <= STATE_MAX


def test_input_scale_enters_the_first_layer_only():
    model = random_net("dense", "lif", 2, seed=1)
    layers = walk(model, model.input_shape)
    q1 = quantize_layers(layers, input_scale=1.0)
    q4 = quantize_layers(layers, input_scale=4.0)
    assert q4[1].input_scale == 4.0 and q4[2].input_scale == 1.0
    # scaled inputs are 4x larger integers: the first layer's mantissas x 2^e shrink 4x
    eff1 = q1[1].weight_mant * 2.0 ** q1[1].weight_exponent / q1[1].scale
    eff4 = q4[1].weight_mant * 2.0 ** q4[1].weight_exponent / q4[1].scale * 4.0
    np.testing.assert_allclose(eff4, eff1, rtol=0.05, atol=np.abs(eff1).max() * 0.02)


def test_bad_arguments_rejected():
    model = random_net("dense", "qif", 1, seed=0)
    layers = walk(model, model.input_shape)
    with pytest.raises(ExportError, match="input_scale"):
        quantize_layers(layers, input_scale=0.0)
    with pytest.raises(ExportError, match="max_input"):
        quantize_layers(layers, max_input=float("nan"))
    layers[1].weight[0, 0] = np.nan
    with pytest.raises(ExportError, match="NaN"):
        quantize_layers(layers)


@pytest.mark.parametrize(("neuron", "seed"), [("lif", 1), ("qif", 2), ("qif", 5), ("lif", 8)])
def test_bias_mantissas_fit_13_bits_on_the_test_nets(neuron, seed):
    """Large folded tdBN biases pick a smaller exponent rather than leave 13 bits."""
    ex, _, _ = model_exchange(random_net("dense", neuron, 3, seed=seed))
    for layer in ex.layers:
        if layer.synaptic and layer.bias_mant.size:
            assert -4096 <= layer.bias_mant.min() and layer.bias_mant.max() <= 4095
