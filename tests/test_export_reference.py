"""The torch reference of the Lava semantics: float parity with the model, exact integer arithmetic.

* float: the reference's per-layer spikes equal the PyTorch model's (run in
  float64) exactly, logits to 1e-12;
* fixed: the vectorised torch integer path equals a plain per-neuron Python/numpy
  integer implementation of EXCHANGE.md bit for bit;
* fixed vs float: classification agreement on a briefly trained digits-net
  (fast), and >= 99 % on the real digits-qif preset (slow).
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
from export_nets import model_spikes, random_net, random_spikes

from qifsim.export import model_exchange, run_reference
from qifsim.export.reference import shr

NETS = [
    (kind, neuron, depth, pool)
    for kind in ("dense", "conv")
    for neuron in ("qif", "lif")
    for depth in (1, 2, 3)
    for pool in ((False, True) if kind == "conv" else (False,))
]


@pytest.mark.parametrize("kind,neuron,depth,pool", NETS)
def test_float_reference_equals_model_exactly(kind, neuron, depth, pool):
    seed = 10 * depth + int(pool)
    model = random_net(
        kind, neuron, depth, seed=seed, pool=pool, form="euler" if seed % 3 else "paper"
    )
    ex, _, _ = model_exchange(model)
    x = random_spikes(6, 16, model.input_shape, 0.3, seed + 1).double()
    expect, logits = model_spikes(model.double(), x)
    got = run_reference(ex, x, "float", record=True)
    assert len(got.spikes) == len(expect) == depth
    for e, g in zip(expect, got.spikes.values(), strict=True):
        assert 0.02 < float(e.mean()) < 0.6  # the net is not trivially silent/saturated
        assert torch.equal(e, g)
    torch.testing.assert_close(got.logits, logits, rtol=0, atol=1e-12)
    assert torch.equal(got.predictions, logits.argmax(1))


# -- plain integer implementation of EXCHANGE.md (numpy int64 / Python ints) --------------------
def _shr(x: np.ndarray, k: int) -> np.ndarray:
    return np.sign(x) * (np.abs(x) >> k)


def _conv_int(x: np.ndarray, w: np.ndarray, layer) -> np.ndarray:
    """Cross-correlation by explicit kernel offsets; x [N, C, H, W] int64, w int64."""
    (sy, sx), (py, px), (dy, dx) = layer.stride, layer.padding, layer.dilation
    assert layer.groups == 1
    n, c, h, wid = x.shape
    out_c, _, kh, kw = w.shape
    oh, ow = layer.shape[1:]
    xp = np.zeros((n, c, h + 2 * py, wid + 2 * px), dtype=np.int64)
    xp[:, :, py : py + h, px : px + wid] = x
    out = np.zeros((n, out_c, oh, ow), dtype=np.int64)
    for i in range(kh):
        for j in range(kw):
            patch = xp[
                :,
                :,
                i * dy : i * dy + sy * (oh - 1) + 1 : sy,
                j * dx : j * dx + sx * (ow - 1) + 1 : sx,
            ]
            out += np.einsum("nchw,oc->nohw", patch, w[:, :, i, j])
    return out


def plain_fixed(ex, frames: np.ndarray):
    """(acc [B, classes], {layer: spikes [T, B, ...]}) with EXCHANGE.md's integer rules."""
    T, B = frames.shape[:2]
    x = np.round(frames * ex.input_scale).astype(np.int64)
    spikes = {}
    for index, layer in enumerate(ex.layers, start=1):
        flat = x.reshape(T * B, *x.shape[2:])
        if layer.kind == "pool":
            kh, kw = layer.kernel_size
            n, c, h, w = flat.shape
            h2, w2 = h // kh, w // kw
            pooled = flat[:, :, : h2 * kh, : w2 * kw].reshape(n, c, h2, kh, w2, kw).sum((3, 5))
            x = pooled.reshape(T, B, *pooled.shape[1:])
            continue
        if layer.kind == "flatten":
            x = flat.reshape(T, B, -1)
            continue
        w = layer.weight_mant.astype(np.int64) * (2**layer.weight_exponent)
        bias = layer.bias_mant.astype(np.int64)
        if layer.kind == "dense":
            a_in = flat @ w.T
            cur = (a_in + bias) * 64
        else:
            a_in = _conv_int(flat, w, layer)
            cur = (a_in + bias[:, None, None]) * 64
        cur = cur.reshape(T, B, *cur.shape[1:])
        if layer.role == "readout":
            return cur.sum(0), spikes
        fx = layer.fixed
        vth = fx["vth_mant"] * 64
        reset = fx["u_rest_int"] if layer.neuron == "qif" else 0
        u = np.full(cur.shape[1:], reset, dtype=np.int64)
        out = np.zeros(cur.shape, dtype=np.int64)
        for t in range(T):
            if layer.neuron == "qif":
                drive = _shr(
                    (u - fx["u_rest_int"]) * (u - fx["u_c_int"]) * fx["a_mant"], fx["a_shift"]
                )
                v = drive + cur[t] + (u if layer.params["form"] == "euler" else 0)
                s = v >= vth
            else:
                v = _shr(u * (4096 - fx["dv"]), 12) + cur[t]
            v = np.clip(v, -(2**23 - 1), 2**23 - 1)
            s = v >= vth if layer.neuron == "qif" else v > vth
            u = np.where(s, reset, v)
            out[t] = s
        spikes[index] = out
        x = out
    raise AssertionError("no readout")


@pytest.mark.parametrize(
    "kind,neuron,depth,pool,form",
    [
        ("dense", "qif", 2, False, "paper"),
        ("dense", "lif", 3, False, "paper"),
        ("conv", "qif", 2, True, "euler"),
        ("conv", "lif", 2, True, "paper"),
        ("conv", "qif", 3, False, "paper"),
    ],
)
def test_fixed_reference_equals_plain_integers(kind, neuron, depth, pool, form):
    model = random_net(kind, neuron, depth, seed=7, pool=pool, form=form)
    # graded integer inputs (event counts 0..3) exercise the first layer's input path
    gen = torch.Generator().manual_seed(3)
    x = torch.randint(0, 4, (5, 6, *model.input_shape), generator=gen).float()
    ex, _, _ = model_exchange(model, max_input=3.0)
    got = run_reference(ex, x, "fixed", record=True)
    acc, spikes = plain_fixed(ex, x.numpy())
    assert got.acc.dtype == torch.int64
    np.testing.assert_array_equal(got.acc.numpy(), acc)
    assert list(got.spikes) == list(spikes)
    for i, s in spikes.items():
        np.testing.assert_array_equal(got.spikes[i].numpy(), s)
        assert 0 < s.mean() < 1
    np.testing.assert_array_equal(got.predictions.numpy(), acc.argmax(1))
    torch.testing.assert_close(
        got.logits, torch.from_numpy(acc).double() / (5 * ex.layers[-1].scale)
    )


def test_saturation_matches_plain():
    model = random_net("dense", "lif", 1, seed=1)
    ex, _, _ = model_exchange(model)
    x = torch.full((3, 2, *model.input_shape), 4000.0)  # far beyond max_input=1: saturates
    got = run_reference(ex, x, "fixed", record=True)
    acc, spikes = plain_fixed(ex, x.numpy())
    np.testing.assert_array_equal(got.acc.numpy(), acc)
    np.testing.assert_array_equal(got.spikes[2].numpy(), spikes[2])
    assert got.peak[2] > 2**23 - 1  # it did saturate
    calm = run_reference(ex, x / 4000.0, "fixed")
    assert 0 < calm.peak[2] <= 2**23 - 1


def test_shr_rounds_toward_zero():
    x = torch.tensor([-7, -5, -4, -1, 0, 1, 4, 5, 7], dtype=torch.int64)
    assert shr(x, 1).tolist() == [-3, -2, -2, 0, 0, 0, 2, 2, 3]
    assert shr(x, 2).tolist() == [-1, -1, -1, 0, 0, 0, 1, 1, 1]


@pytest.mark.parametrize("kind,neuron", [("dense", "qif"), ("conv", "lif")])
def test_fixed_close_to_float(kind, neuron):
    model = random_net(kind, neuron, 2, seed=3)
    ex, _, _ = model_exchange(model)
    x = random_spikes(6, 64, model.input_shape, 0.3, 9)
    f = run_reference(ex, x, "float", record=True)
    q = run_reference(ex, x, "fixed", record=True)
    for i in f.spikes:
        # measured 0.1-0.7 % of spikes flip (first layer least: only weight rounding)
        assert float((f.spikes[i] != q.spikes[i].double()).double().mean()) < 0.02
    # measured mean |logit difference| 0.06-0.13 logit standard deviations
    assert float((q.logits - f.logits).abs().mean()) < 0.25 * float(f.logits.std())


def test_bad_inputs_rejected():
    model = random_net("dense", "qif", 1, seed=0)
    ex, _, _ = model_exchange(model)
    with pytest.raises(ValueError, match=r"frames must be \[T, B, 2, 4, 4\]"):
        run_reference(ex, torch.zeros(4, 2, 2, 4), "float")
    with pytest.raises(ValueError, match="NaN"):
        run_reference(ex, torch.full((4, 2, 2, 4, 4), float("nan")), "float")
    with pytest.raises(ValueError, match="mode"):
        run_reference(ex, torch.zeros(4, 2, 2, 4, 4), "double")
    with pytest.raises(TypeError, match="torch.Tensor"):
        run_reference(ex, np.zeros((4, 2, 2, 4, 4)), "float")


def _trained_agreement(config, tmp_path, n: int | None):
    from qifsim.export.cli import agreement
    from qifsim.train import fit, load_trained

    fit(config, tmp_path, progress=False)
    trained = load_trained(tmp_path / "last.pt")
    model, config = trained.model, trained.config
    frames, labels = trained.frames(n)
    ex, _, _ = model_exchange(model, time_steps=config.T, max_input=float(frames.max()))
    return agreement(model, ex, frames, labels)


def test_trained_tiny_digits_agreement(tmp_path, capsys):
    """A briefly trained (tiny) digits-net: float reference = model, fixed point agrees."""
    from train_helpers import tiny_config

    config = tiny_config(epochs=3, n_samples=320, T=6, batch_size=32)
    result = _trained_agreement(config, tmp_path, None)
    with capsys.disabled():
        print(f"\n  tiny digits-net, fixed-point agreement {result}")
    assert result["acc_torch"] > 0.3  # trained: predictions are not one constant class
    assert result["agree_float"] == 1.0
    # 4/8-channel net at ~45 % accuracy: small logit margins; measured 0.925 (the trained
    # presets reach >= 0.99, see the slow test below)
    assert result["agree_fixed"] >= 0.88


@pytest.mark.slow
@pytest.mark.parametrize("neuron", ["qif", "lif"])
def test_digits_preset_fixed_point_agreement_99(neuron, tmp_path, capsys):
    """The demo's preset (5 epochs): fixed-point agreement with the float model >= 99 %."""
    from qifsim.train.presets import load_preset

    result = _trained_agreement(load_preset(f"digits-{neuron}"), tmp_path, None)
    with capsys.disabled():
        print(f"\n  digits-{neuron}: {result}")
    assert result["agree_float"] == 1.0
    assert result["agree_fixed"] >= 0.99


def test_global_average_pool_exported_as_sum_pool():
    from qifsim.models.blocks import GlobalAvgPool, Readout

    model = random_net("conv", "lif", 2, seed=6)
    model.classifier = torch.nn.Sequential(GlobalAvgPool())
    model.readout = Readout(6, 5)
    ex, _, _ = model_exchange(model.eval())
    assert [layer.kind for layer in ex.layers] == ["conv", "conv", "pool", "flatten", "dense"]
    assert ex.layers[2].kernel_size == (4, 4)
    x = random_spikes(5, 8, model.input_shape, 0.3, 4).double()
    expect, logits = model_spikes(model.double(), x)
    got = run_reference(ex, x, "float", record=True)
    for e, g in zip(expect, got.spikes.values(), strict=True):
        assert torch.equal(e, g)
    torch.testing.assert_close(got.logits, logits, rtol=0, atol=1e-12)
