"""Acceptance (issue 6): Lava runs of exported nets equal the PyTorch side.

* float: random nets (dense/conv, QIF/LIF, depths 1-3, pooling) on random spike inputs:
  Lava's per-layer spikes, delay-shifted back, equal the PyTorch model's (float64) exactly;
  the readout logits match to 1e-5;
* fixed: Lava's fixed_pt readout accumulators and spikes equal the torch integer reference
  (:func:`qifsim.export.run_reference`) bit for bit.

Each net runs in one ``.venv-lava`` subprocess (both modes); tests skip when the Lava
environment is absent.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
from conftest import quick_benchmark
from export_nets import model_spikes, random_net, random_spikes

from qifsim.export import export_lava, read_exchange, run_reference
from qifsim.lava_bridge import LavaEnvironmentError, find_lava_python, run_exchange_modes

try:
    find_lava_python()
except LavaEnvironmentError as err:  # pragma: no cover - depends on the checkout
    pytest.skip(f"Lava environment not available: {err}", allow_module_level=True)

T, B = 4, 3

#: (kind, neuron, depth, pool, form, seed); the default suite, one Lava subprocess each.
FAST_CASES = [
    ("dense", "qif", 1, False, "paper", 0),
    ("dense", "lif", 2, False, "paper", 1),
    ("dense", "qif", 3, False, "euler", 2),
    ("conv", "qif", 2, True, "paper", 3),
    ("conv", "lif", 1, False, "paper", 4),
]
SLOW_CASES = [
    ("dense", "lif", 1, False, "paper", 10),
    ("dense", "lif", 3, False, "paper", 11),
    ("dense", "qif", 2, False, "paper", 12),
    ("conv", "qif", 1, False, "euler", 13),
    ("conv", "qif", 3, False, "paper", 14),
    ("conv", "lif", 2, True, "paper", 15),
    ("conv", "lif", 3, False, "paper", 16),
]


def _case_id(case: tuple) -> str:
    kind, neuron, depth, pool, form, seed = case
    return f"{kind}-{neuron}-d{depth}{'-pool' if pool else ''}-{form}-s{seed}"


def _run_case(case: tuple, tmp_path):
    kind, neuron, depth, pool, form, seed = case
    model = random_net(kind=kind, neuron=neuron, depth=depth, seed=seed, pool=pool, form=form, T=T)
    path = tmp_path / f"{_case_id(case)}.h5"
    export_lava(model, path)
    exchange = read_exchange(path)
    x = random_spikes(T, B, tuple(exchange.input_shape), 0.3, seed=seed + 500)
    lava = run_exchange_modes(path, x, ("float", "fixed"), record_spikes=True)
    return model, exchange, x, lava


def _check_case(case: tuple, tmp_path) -> None:
    model, exchange, x, lava = _run_case(case, tmp_path)
    torch_spikes, torch_logits = model_spikes(model.double(), x.double())
    hidden = sorted(lava["float"].spikes)
    assert len(hidden) == len(torch_spikes) == case[2]

    # float: exact spikes after the delay shift, readout to 1e-5
    fl = lava["float"]
    for index, expected in zip(hidden, torch_spikes, strict=True):
        got = fl.spikes[index]
        assert got.shape == tuple(expected.shape), (index, got.shape, expected.shape)
        assert 0 < got.mean() < 1, f"layer {index}: degenerate spikes, the check would be empty"
        mismatch = int((got != expected.numpy()).sum())
        assert mismatch == 0, f"layer {index}: {mismatch} float spikes differ from PyTorch"
    # not vacuous: one step more or less of delay would not match
    first = fl.spikes[hidden[0]]
    late = np.concatenate([np.zeros_like(first[:1]), first[:-1]])
    assert not np.array_equal(late, torch_spikes[0].numpy()), "spikes too sparse to check delays"
    np.testing.assert_allclose(fl.logits, torch_logits.numpy(), rtol=0, atol=1e-5)
    assert np.array_equal(fl.predictions, torch_logits.argmax(1).numpy())

    # fixed: bit for bit against the torch integer reference
    ref = run_reference(exchange, x, "fixed", record=True)
    fx = lava["fixed"]
    assert np.array_equal(fx.acc, ref.acc.numpy()), "fixed readout accumulators differ"
    assert np.array_equal(fx.predictions, ref.predictions.numpy())
    np.testing.assert_allclose(fx.logits, ref.logits.numpy(), rtol=0, atol=1e-12)
    for index in hidden:
        assert np.array_equal(fx.spikes[index], ref.spikes[index].numpy()), index


@pytest.mark.parametrize("case", FAST_CASES, ids=_case_id)
def test_lava_matches_torch(case, tmp_path):
    _check_case(case, tmp_path)


@pytest.mark.slow
@pytest.mark.parametrize("case", SLOW_CASES, ids=_case_id)
def test_lava_matches_torch_more_nets(case, tmp_path):
    _check_case(case, tmp_path)


def test_run_exchange_single_mode_and_bad_frames(tmp_path):
    from qifsim.lava_bridge import LavaRunError, run_exchange

    model = random_net(kind="dense", neuron="lif", depth=1, seed=7)
    path = tmp_path / "n.h5"
    export_lava(model, path)
    x = random_spikes(T, 2, (2, 4, 4), 0.3, seed=7)
    res = run_exchange(path, x, mode="fixed")
    assert res.mode == "fixed" and res.acc.shape == (2, 5) and res.spikes == {}
    assert res.steps == 2 * (T + 2) and res.steps_per_second > 0
    with pytest.raises(LavaRunError, match=r"frames must be \[T, B, 2, 4, 4\]"):
        run_exchange(path, torch.zeros(T, 2, 3, 4, 4), mode="float")
    with pytest.raises(ValueError, match="mode must be"):
        run_exchange(path, x, mode="double")


def test_benchmark_quick(tmp_path):
    """``benchmarks/lava.py --quick`` runs and writes measured, well-formed JSON."""
    result, stdout = quick_benchmark("lava", tmp_path / "lava.json")
    assert "lava_float" in stdout and "lava_fixed" in stdout
    assert result["config"]["quick"] is True and result["config"]["samples"] == 2
    assert result["config"]["delay"] == 4  # digits-net: conv, conv, dense, readout
    assert result["export"]["median_seconds"] > 0
    for mode in ("float", "fixed"):
        entry = result[f"lava_{mode}"]
        assert entry["lava_steps"] == 2 * (result["config"]["T"] + 4)
        assert entry["steps_per_second"] > 0 and 0 <= entry["agreement_with_torch"] <= 1
        assert result["ratios"][f"lava_{mode}_over_torch"] > 0
    assert result["lava_fixed"]["bit_exact_vs_reference"] is True


def test_cli_lava_run_rejects_bad_file(tmp_path, capsys):
    from qifsim.cli import main

    bad = tmp_path / "bad.h5"
    bad.write_bytes(b"not hdf5")
    assert main(["lava", "run", str(bad), "--samples", "2"]) == 1
    assert "truncated or corrupt" in capsys.readouterr().err


@pytest.mark.slow
def test_cli_lava_run_digits(tmp_path, capsys):
    """``qifsim lava run`` on an (untrained, calibrated) digits-net: both modes, JSON report."""
    import json

    from qifsim.cli import main
    from qifsim.lava_bridge import digits_test_frames
    from qifsim.models import build_model

    torch.manual_seed(0)
    model = build_model("digits-net", neuron="qif", in_channels=2, input_size=(34, 34))
    frames, _ = digits_test_frames(10, 4)
    with torch.no_grad():
        model.train()(frames)
    path = tmp_path / "digits.h5"
    export_lava(model.eval(), path, max_input=float(frames.max()))
    assert main(["lava", "run", str(path), "--samples", "4", "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["samples"] == 4
    assert report["modes"]["float"]["agreement"] == 1.0
    assert report["modes"]["fixed"]["fixed_matches_reference"] is True


def test_fixed_point_layer_without_positive_weights_keeps_minus_256(tmp_path):
    """Lava's Dense would treat a layer with no positive weight as inhibitory and clip its
    -256 mantissas to -255; the builder forces mixed sign, so Lava still equals the reference."""
    import h5py

    from qifsim.export.exchange import checksum

    model = random_net(kind="dense", neuron="lif", depth=1, seed=21, T=T)
    path = tmp_path / "negative.h5"
    export_lava(model, path)
    with h5py.File(path, "r+") as f:
        readout = max(int(k) for k in f["layer"])
        w = f[f"layer/{readout}/weight"]
        e = int(f[f"layer/{readout}/qif/weight_exponent"][()])
        values = -np.abs(w[()])
        values.flat[0] = -256 * 2**e
        w[...] = values
        f.attrs["checksum"] = checksum(f)
    exchange = read_exchange(path)
    x = random_spikes(T, B, tuple(exchange.input_shape), 0.3, seed=521)
    lava = run_exchange_modes(path, x, ("fixed",))["fixed"]
    reference = run_reference(exchange, x, "fixed")
    (out,) = [layer for layer in exchange.layers if layer.role == "readout"]
    assert int(out.weight_mant.min()) == -256 and int(out.weight_mant.max()) <= 0
    np.testing.assert_array_equal(lava.acc, reference.acc.numpy())
