"""Stock lava-dl netx (``lava.lib.dl.netx.hdf5.Network``) loads and runs qifsim's exchange file.

Runs in ``.venv-netx`` (``make setup-netx``: Python 3.10, lava-nc 0.10.0, lava-dl 0.6.0 with
its torch 2.3.1, and qifsim_lava); ``make test-all`` runs it there. Elsewhere it skips.

The environment has no torch-side qifsim (qifsim needs torch >= 2.4), so the work is split:

* torch side: this file run by ``.venv``'s Python, ``python tests/test_export_netx.py
  --prepare DIR`` (:func:`prepare`): finds or trains the LIF digits-net (preset
  ``digits-lif``), exports it with :func:`qifsim.export.export_lava`, frames 50 digits-dvs
  test recordings, runs qifsim's own Lava runner (``qifsim_lava`` in ``.venv-lava``, fixed
  point) on them and checks it against the torch integer reference; writes the exchange
  files (also a QIF digits-net, a dense QIF net and small random LIF nets), the frames and the
  expected readout accumulators;
* netx side (the tests below): netx builds the network from the file alone, runs it in Lava
  fixed point (``reset_interval = T + D``: each sample's step 0 reaches block ``j`` at Lava
  step ``k (T + D) + 2 + j``), and its readout after each sample must equal qifsim's bit for
  bit. netx's readout is a CUBA integrator (EXCHANGE.md, "netx"): its current ``u`` sums
  ``64 a_in`` over the sample and its voltage adds the bias once, so qifsim's accumulator is
  ``u + 64 T bias``.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

REPO = Path(__file__).resolve().parents[1]
SAMPLES = 50
CHECKPOINT_ENV = "QIFSIM_NETX_CHECKPOINT"
TORCH_PYTHON_ENV = "QIFSIM_TORCH_PYTHON"


# -- torch side (.venv) -------------------------------------------------------------------------
def _checkpoint(directory: Path) -> Path:
    """``$QIFSIM_NETX_CHECKPOINT``, else the demo's LIF run, else a fresh ``digits-lif`` run."""
    if os.environ.get(CHECKPOINT_ENV):
        return Path(os.environ[CHECKPOINT_ENV])
    demo = REPO / "qifsim-demo" / "lif" / "last.pt"
    if demo.is_file():
        return demo
    from qifsim.train import fit, load_preset

    out = directory / "digits-lif"
    fit(load_preset("digits-lif"), out, progress=False, tensorboard=False)
    return out / "last.pt"


def prepare(directory: Path) -> dict:
    """Write everything the netx side compares against into ``directory`` (see module doc)."""
    import torch
    from export_nets import random_net

    from qifsim.export import export_lava, read_exchange, run_reference
    from qifsim.lava_bridge import digits_test_frames, run_exchange
    from qifsim.models import build_model
    from qifsim.train import load_trained

    directory.mkdir(parents=True, exist_ok=True)
    checkpoint = _checkpoint(directory)
    trained = load_trained(checkpoint)
    model = trained.model
    if model.name != "digits-net" or trained.config.neuron != "lif":
        raise ValueError(f"{checkpoint}: expected a LIF digits-net, got {model.name}")
    lif = directory / "lif.h5"
    export_lava(model, lif)
    exchange = read_exchange(lif)
    frames, labels = digits_test_frames(exchange.time_steps, SAMPLES)
    lava = run_exchange(lif, frames, mode="fixed")
    reference = run_reference(exchange, frames, "fixed")
    if not np.array_equal(lava.acc, reference.acc.numpy()):
        raise AssertionError("qifsim's Lava runner and the torch integer reference disagree")
    with torch.no_grad():
        torch_pred = model(frames).argmax(1).numpy()
    np.savez(
        directory / "digits.npz",
        frames=frames.numpy(),
        acc=lava.acc,
        predictions=lava.predictions,
        labels=labels.numpy(),
        torch_predictions=torch_pred,
    )
    torch.manual_seed(0)
    export_lava(build_model("digits-net", "qif").eval(), directory / "qif.h5")
    export_lava(random_net("dense", "qif", depth=2, seed=4), directory / "qif-dense.h5")
    export_lava(random_net("conv", "lif", depth=2, seed=3), directory / "lif-conv.h5")
    export_lava(random_net("dense", "lif", depth=2, seed=4), directory / "lif-dense.h5")
    export_lava(random_net("conv", "lif", depth=2, seed=5, pool=True), directory / "lif-pool.h5")
    info = {
        "checkpoint": str(checkpoint),
        "samples": int(frames.shape[1]),
        "time_steps": exchange.time_steps,
        "delay": sum(layer.synaptic for layer in exchange.layers),
        "max_abs_acc": int(np.abs(lava.acc).max()),
    }
    (directory / "prepare.json").write_text(json.dumps(info, indent=2))
    return info


# -- netx side (.venv-netx) ---------------------------------------------------------------------
def _torch_python() -> Path:
    if os.environ.get(TORCH_PYTHON_ENV):
        return Path(os.environ[TORCH_PYTHON_ENV])
    return REPO / ".venv" / "bin" / "python"


@pytest.fixture(scope="module")
def prepared(tmp_path_factory) -> Path:
    pytest.importorskip(
        "lava.lib.dl.netx",
        reason="lava-dl's netx is not installed here: `make setup-netx` builds .venv-netx, "
        "and `make test-all` runs this file there",
    )
    python = _torch_python()
    if not python.exists():
        pytest.fail(f"the torch side ({python}) is missing: run `make setup`")
    directory = tmp_path_factory.mktemp("netx")
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "PYTHONHOME")}
    proc = subprocess.run(
        [str(python), __file__, "--prepare", str(directory)],
        capture_output=True,
        text=True,
        timeout=1800,
        env=env,
        cwd=REPO,
    )
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    return directory


def _netx():
    from lava.lib.dl import netx

    return netx


def run_netx(path: Path, frames: np.ndarray, delay: int) -> tuple[np.ndarray, np.ndarray]:
    """Run stock netx on ``frames [T, B, C, H, W]`` in Lava fixed point, one sample per
    ``T + D`` steps; return the readout neurons' ``(u, v)`` after each sample ``[B, classes]``."""
    from lava.magma.core.run_conditions import RunSteps
    from lava.magma.core.run_configs import Loihi2SimCfg
    from lava.proc.io.source import RingBuffer

    T, B = frames.shape[:2]
    period = T + delay
    net = _netx().hdf5.Network(
        net_config=str(path), reset_interval=period, reset_offset=1, input_message_bits=24
    )
    x = frames.transpose(4, 3, 2, 1, 0)  # Lava's (W, H, C) order, then B, T
    data = np.zeros((*x.shape[:3], B, period), dtype=np.int32)
    data[..., :T] = x
    source = RingBuffer(data=data.reshape(*x.shape[:3], B * period))
    source.s_out.connect(net.inp)
    readout = net.layers[-1].neuron
    us, vs = [], []
    config = Loihi2SimCfg(select_tag="fixed_pt")
    try:
        for _ in range(B):
            net.run(condition=RunSteps(num_steps=period), run_cfg=config)
            us.append(np.asarray(readout.u.get(), dtype=np.int64).copy())
            vs.append(np.asarray(readout.v.get(), dtype=np.int64).copy())
    finally:
        net.stop()
    return np.array(us), np.array(vs)


@pytest.mark.slow
def test_netx_runs_the_lif_digits_net_bit_exact(prepared):
    info = json.loads((prepared / "prepare.json").read_text())
    data = np.load(prepared / "digits.npz")
    frames, acc = data["frames"], data["acc"]
    assert frames.shape[1] == SAMPLES == info["samples"]
    assert np.array_equal(frames, np.round(frames))  # event counts: exact integers
    u, v = run_netx(prepared / "lif.h5", frames.astype(np.int32), info["delay"])
    from qifsim_lava.exchange import load_exchange
    from qifsim_lava.netx import netx_differences

    network = load_exchange(prepared / "lif.h5")
    assert netx_differences(network) == []
    bias = network.layers[-1].bias_mant.astype(np.int64)
    T = info["time_steps"]
    netx_acc = u + 64 * T * bias
    mismatched = int(np.count_nonzero(np.any(netx_acc != acc, axis=1)))
    assert mismatched == 0, f"{mismatched} of {SAMPLES} recordings differ from qifsim's Lava runner"
    np.testing.assert_array_equal(v + 64 * (T - 1) * bias, acc)
    np.testing.assert_array_equal(netx_acc.argmax(1), data["predictions"])
    result = {
        "samples": SAMPLES,
        "bit_exact_recordings": SAMPLES - mismatched,
        "netx_accuracy": float((netx_acc.argmax(1) == data["labels"]).mean()),
        "agreement_with_pytorch": float((netx_acc.argmax(1) == data["torch_predictions"]).mean()),
        "max_abs_acc": info["max_abs_acc"],
    }
    print("netx parity:", json.dumps(result))


@pytest.mark.parametrize("name", ["qif.h5", "qif-dense.h5"])
def test_netx_refuses_qif_files(prepared, name):
    """netx has no QIF neuron: QIF layers carry neuron/type QIF, which netx refuses at load
    (before the file's change a dense QIF net loaded silently as non-leaky integrators)."""
    from qifsim_lava.exchange import load_exchange
    from qifsim_lava.netx import netx_differences

    network = load_exchange(prepared / name)
    qif = [layer.index for layer in network.layers if layer.neuron == "qif"]
    assert qif and [d for d in netx_differences(network) if "QIF neuron" in d] == [
        f"layer {i} ({network.layers[i - 1].kind}): QIF neuron; netx has no QIF neuron and "
        "refuses the file at load (AttributeError: 'NoneType' object has no attribute 'pop'); "
        "run it with qifsim_lava instead"
        for i in qif
    ]
    with pytest.raises(AttributeError, match="'NoneType' object has no attribute 'pop'"):
        _netx().hdf5.Network(net_config=str(prepared / name))
    from qifsim_lava.netx import NetxUnsupportedError, load_netx

    with pytest.raises(NetxUnsupportedError, match="QIF neuron; netx has no QIF neuron"):
        load_netx(prepared / name)


def test_load_netx_checks_the_file_then_builds_stock_netx(prepared):
    """:func:`qifsim_lava.netx.load_netx`: the clear error for anything netx would refuse or
    run differently; stock netx's Network for a file it runs bit for bit."""
    from qifsim_lava.netx import NetxUnsupportedError, load_netx

    for name, match in [("lif-pool.h5", "pool layers"), ("lif-dense.h5", "netx clips")]:
        with pytest.raises(NetxUnsupportedError, match=match):
            load_netx(prepared / name)
    from qifsim_lava.exchange import load_exchange

    net = load_netx(prepared / "lif.h5", reset_interval=14, reset_offset=1)
    assert isinstance(net, _netx().hdf5.Network)
    layers = load_exchange(prepared / "lif.h5").layers
    assert len(net.layers) == sum(layer.kind in ("dense", "conv") for layer in layers)


def test_netx_clips_dense_weights_beyond_8_bits(prepared):
    """The one thing netx reads differently from a LIF file: dense integer weights outside
    [-256, 254] (weight exponent > 0) are clipped by netx's ``optimize_weight_bits``;
    :func:`qifsim_lava.netx.netx_differences` names exactly those layers."""
    from qifsim_lava.exchange import load_exchange
    from qifsim_lava.netx import netx_differences

    path = prepared / "lif-dense.h5"
    network = load_exchange(path)
    net = _netx().hdf5.Network(net_config=str(path))
    flagged = {int(d.split()[1]) for d in netx_differences(network)}
    assert flagged, "the random dense net was expected to need weight exponents > 0"
    dense = [layer for layer in network.layers if layer.kind == "dense"]
    for block, layer in zip(net.layers, dense, strict=True):
        weight = layer.weight_mant.astype(np.int64) * 2**layer.weight_exponent
        exp = int(np.asarray(block.synapse.proc_params["weight_exp"]))
        netx_weight = np.asarray(block.synapse.weights.init, dtype=np.int64) * 2**exp
        same = np.array_equal(netx_weight, weight)
        assert same == (layer.index not in flagged), (layer.index, layer.weight_exponent)
        if not same:
            np.testing.assert_array_equal(netx_weight, np.clip(weight, -256, 254))


def test_lif_conv_net_layout_in_netx(prepared):
    from qifsim_lava.builder import lava_conv_weight
    from qifsim_lava.exchange import load_exchange

    path = prepared / "lif-conv.h5"
    ex = load_exchange(path)
    net = _netx().hdf5.Network(net_config=str(path))
    synaptic = [layer for layer in ex.layers if layer.kind in ("dense", "conv")]
    assert len(net.layers) == len(synaptic)
    for block, layer in zip(net.layers, synaptic, strict=True):
        assert tuple(block.shape) == tuple(layer.shape[::-1])  # netx blocks are (x, y, c)
    first = synaptic[0]
    integer = lava_conv_weight(first.weight_mant * 2**first.weight_exponent)
    np.testing.assert_array_equal(net.layers[0].synapse.weight.init, integer)
    assert int(np.asarray(net.layers[0].neuron.vth.init)) == first.fixed["vth_mant"]


def test_lif_dense_net_shapes_in_netx(prepared):
    net = _netx().hdf5.Network(net_config=str(prepared / "lif-dense.h5"))
    assert [tuple(b.shape) for b in net.layers] == [(24,), (24,), (5,)]


def test_pool_layers_are_not_netx(prepared):
    from qifsim_lava.exchange import load_exchange
    from qifsim_lava.netx import netx_differences

    assert any("pool" in d for d in netx_differences(load_exchange(prepared / "lif-pool.h5")))
    with pytest.raises(NotImplementedError, match="pool"):
        _netx().hdf5.Network(net_config=str(prepared / "lif-pool.h5"))


if __name__ == "__main__":
    if sys.argv[1:2] != ["--prepare"] or len(sys.argv) != 3:
        raise SystemExit("usage: python tests/test_export_netx.py --prepare DIR")
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    print(json.dumps(prepare(Path(sys.argv[2]))))
