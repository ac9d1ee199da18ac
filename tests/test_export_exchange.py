"""The exchange file: graph walk, netx layout, round trip, checksum, rejection of bad files."""

from __future__ import annotations

import hashlib
from collections import OrderedDict

import h5py
import numpy as np
import pytest
import torch
from export_nets import random_net
from torch import nn

from qifsim.export import (
    ExchangeFormatError,
    ExportError,
    export_lava,
    model_exchange,
    read_exchange,
    walk,
)
from qifsim.export.exchange import FORMAT_VERSION
from qifsim.layers import MergeTime
from qifsim.models import build_model
from qifsim.models.blocks import Readout, TimeFlatten

NETS = [
    ("dense", "qif", 1, False),
    ("dense", "lif", 3, False),
    ("conv", "qif", 2, True),
    ("conv", "lif", 2, False),
]


def spec_checksum(path) -> str:
    """EXCHANGE.md's checksum, written from the text (independent of the exporter)."""
    with h5py.File(path, "r") as f:
        names = []

        def visit(name, obj):
            if isinstance(obj, h5py.Dataset):
                names.append("/" + name)

        f.visititems(visit)
        h = hashlib.sha256()
        for name in sorted(names):
            data = f[name][()]
            arr = np.asarray(data)
            h.update(name.encode() + b"\0" + arr.dtype.str.encode() + b"\0")
            h.update(str(tuple(arr.shape)).encode() + b"\0")
            h.update(np.ascontiguousarray(arr).tobytes())
        return h.hexdigest()


@pytest.fixture(scope="module")
def conv_file(tmp_path_factory):
    model = random_net("conv", "lif", depth=2, seed=4, pool=True)
    path = tmp_path_factory.mktemp("ex") / "conv.h5"
    export_lava(model, path)
    return model, path


@pytest.mark.parametrize("kind,neuron,depth,pool", NETS)
def test_round_trip_equals_in_memory(kind, neuron, depth, pool, tmp_path):
    model = random_net(kind, neuron, depth, seed=depth, pool=pool)
    report = export_lava(model, tmp_path / "net.h5")
    memory, _, _ = model_exchange(model)
    disk = read_exchange(tmp_path / "net.h5")
    assert disk.checksum == report.checksum == spec_checksum(tmp_path / "net.h5")
    assert disk.input_shape == model.input_shape
    assert disk.time_steps == model.default_steps and disk.num_classes == 5
    assert len(disk.layers) == len(memory.layers)
    for a, b in zip(disk.layers, memory.layers, strict=True):
        assert (a.kind, a.role, a.neuron, a.shape) == (b.kind, b.role, b.neuron, b.shape)
        for key in ("weight_float", "bias_float", "weight_mant", "bias_mant"):
            va, vb = getattr(a, key), getattr(b, key)
            assert (va is None) == (vb is None)
            if va is not None:
                np.testing.assert_array_equal(va, vb)
        assert a.fixed == b.fixed and a.params == b.params
        assert a.weight_exponent == b.weight_exponent and a.scale == b.scale
    assert not list(tmp_path.glob("*.tmp")), "atomic write left a temporary file"


def test_netx_layout(conv_file):
    model, path = conv_file
    with h5py.File(path, "r") as f:
        assert f.attrs["format"] == "qifsim-exchange"
        assert int(f.attrs["format_version"]) == FORMAT_VERSION
        layer = f["layer"]
        types = [layer[str(i)]["type"][0].decode() for i in range(len(layer))]
        assert types == ["input", "conv", "pool", "conv", "flatten", "dense"]
        assert set(layer["0"].keys()) == {"type", "shape"}
        assert layer["0"]["type"].dtype == np.dtype("S10") and layer["0"]["type"].shape == (1,)
        np.testing.assert_array_equal(layer["0"]["shape"][()], [2, 8, 8])
        conv = layer["1"]
        assert conv["weight"].shape == (6, 2, 3, 3, 1) and conv["weight"].dtype == np.float64
        for key in ("stride", "padding", "dilation"):
            assert conv[key].shape == (2,) and conv[key].dtype == np.int64
        assert conv["groups"].shape == () and int(conv["groups"][()]) == 1
        assert conv["bias"].shape == (6,)
        n = conv["neuron"]
        assert n["type"][0] == b"CUBA" and int(n["iDecay"][()]) == 4096
        assert int(n["refDelay"][()]) == 1 and not bool(n["gradedSpike"][()])
        beta = float(conv["qif/beta"][()])
        assert int(n["vDecay"][()]) == round(4096 * (1 - beta))
        assert int(n["vThMant"][()]) == int(conv["qif/vth_mant"][()])
        assert "weight" not in layer["2"] and list(layer["2/qif/kernel_size"][()]) == [2, 2]
        assert set(layer["4"].keys()) == {"type", "shape", "qif"}
        readout = layer["5"]
        assert "neuron" not in readout and readout["qif/role"][()] == b"readout"
        np.testing.assert_array_equal(readout["shape"][()], [5])
        weight = conv["weight"][()]
        assert np.array_equal(weight, np.round(weight)) and not np.any(weight % 2)


def test_qif_layers_name_a_neuron_netx_refuses(tmp_path):
    """QIF layers carry only ``neuron/type = QIF``: stock netx refuses the file instead of
    building a non-leaky integrator (EXCHANGE.md, "netx")."""
    path = tmp_path / "q.h5"
    export_lava(random_net("dense", "qif", 2, seed=1), path)
    with h5py.File(path, "r") as f:
        for i in (2, 3):
            g = f[f"layer/{i}"]
            assert set(g["neuron"].keys()) == {"type"}
            assert g["neuron/type"][()].tolist() == [b"QIF"] and g["qif/neuron"][()] == b"qif"
            assert g["qif/form"][()] == b"paper"
            for key in ("a", "u_rest", "u_c", "u_th", "u_rest_int", "u_c_int", "a_mant", "a_shift"):
                assert key in g["qif"]


def test_tdbn_folded_and_pool_scale_in_next_layer():
    model = random_net("conv", "qif", depth=2, seed=2, pool=True).double()
    layers = walk(model, model.input_shape)
    conv1 = model.features.conv1
    bn = conv1.bn
    s = bn.weight * bn.u_th / torch.sqrt(bn.running_var + bn.eps)
    expect_w = conv1.conv.module.weight * s.view(-1, 1, 1, 1)
    expect_b = bn.bias - bn.running_mean * s
    np.testing.assert_allclose(layers[0].weight, expect_w.detach().numpy(), rtol=1e-12)
    np.testing.assert_allclose(layers[0].bias, expect_b.detach().numpy(), rtol=1e-12, atol=1e-15)
    conv2 = model.features.conv2
    s2 = conv2.bn.weight * conv2.bn.u_th / torch.sqrt(conv2.bn.running_var + conv2.bn.eps)
    folded2 = conv2.conv.module.weight * s2.view(-1, 1, 1, 1) / 4.0  # AvgPool2d(2) -> 1/4
    assert layers[1].kind == "pool" and layers[1].kernel_size == (2, 2)
    np.testing.assert_allclose(layers[2].weight, folded2.detach().numpy(), rtol=1e-12)


def test_voting_folded_into_readout():
    model = random_net("dense", "lif", depth=1, seed=3, voting=3).double()
    layers = walk(model, model.input_shape)
    x = torch.rand(7, 24, dtype=torch.float64)
    expect = model.readout(x[None])[0]
    got = x @ torch.from_numpy(layers[-1].weight).T + torch.from_numpy(layers[-1].bias)
    torch.testing.assert_close(got, expect, rtol=1e-12, atol=1e-12)


def test_digits_net_and_lenet_walk():
    for name in ("digits-net", "lenet5"):
        model = build_model(name).eval()
        layers = walk(model, model.input_shape)
        assert layers[-1].role == "readout"
        assert sum(layer.role == "hidden" for layer in layers) == 3


class _Odd(nn.Module):
    def forward(self, x):
        return x


class _QuadraticConv(nn.Conv2d):
    """Stands in for a non-linear synapse: a Conv2d subclass must not pass as a plain conv."""


def test_unsupported_modules_are_named():
    with pytest.raises(ExportError, match=r"features\.block1.*BasicBlock"):
        m = build_model("resnet19").eval()
        m.features = nn.Sequential(OrderedDict(block1=m.features[1]))
        walk(m, m.input_shape)
    model = random_net("conv", "qif", 1, seed=0)
    model.features.add_module("maxpool", MergeTime(nn.MaxPool2d(2)))
    with pytest.raises(ExportError, match=r"features\.maxpool.*MergeTime wrapping MaxPool2d"):
        walk(model, model.input_shape)
    model = random_net("conv", "qif", 1, seed=0)
    model.features.add_module("odd", _Odd())
    with pytest.raises(ExportError, match=r"'features\.odd' \(_Odd\)"):
        walk(model, model.input_shape)
    model = random_net("conv", "qif", 1, seed=0)
    old = model.features.conv1.conv.module
    model.features.conv1.conv.module = _QuadraticConv(2, 6, 3, padding=1, bias=False)
    model.features.conv1.conv.module.weight.data.copy_(old.weight)
    with pytest.raises(ExportError, match=r"features\.conv1\.conv \(_QuadraticConv\)"):
        walk(model, model.input_shape)


def test_structural_errors():
    model = random_net("dense", "qif", 1, seed=0)
    with pytest.raises(ExportError, match="expects 32 input features"):
        walk(model, (3, 4, 4))
    with pytest.raises(ExportError, match="input_shape"):
        walk(model, (2, 4))
    model.readout = nn.Identity()
    with pytest.raises(ExportError, match="no qifsim Readout"):
        walk(model, model.input_shape)
    bare = nn.Sequential(TimeFlatten(), Readout(32, 3))
    with pytest.raises(ExportError, match="no spiking layer"):
        walk(bare, (2, 4, 4))


def test_per_channel_parameters_rejected():
    from qifsim.neurons import QIF, QIFParameters

    model = random_net("dense", "qif", 1, seed=0)
    model.classifier.fc1.spike = QIF(QIFParameters(a=torch.full((24,), 0.25)))
    with pytest.raises(ExportError, match=r"classifier\.fc1\.spike.*per-channel"):
        walk(model, model.input_shape)


def _rewrite(path, edit):
    with h5py.File(path, "r+") as f:
        edit(f)


def test_corrupt_files_rejected(conv_file, tmp_path):
    _, good = conv_file
    data = good.read_bytes()
    # truncated
    (tmp_path / "trunc.h5").write_bytes(data[: len(data) // 2])
    with pytest.raises(ExchangeFormatError, match="truncated or corrupt|unreadable"):
        read_exchange(tmp_path / "trunc.h5")
    # not HDF5 at all
    (tmp_path / "junk.h5").write_bytes(b"hello" * 100)
    with pytest.raises(ExchangeFormatError, match="cannot be opened as HDF5"):
        read_exchange(tmp_path / "junk.h5")
    # a weight changed after export -> checksum
    p = tmp_path / "edited.h5"
    p.write_bytes(data)

    def bump(f):
        w = f["layer/1/weight"]
        w[0, 0, 0, 0, 0] = w[0, 0, 0, 0, 0] + 2

    _rewrite(p, bump)
    with pytest.raises(ExchangeFormatError, match="checksum mismatch"):
        read_exchange(p)
    # wrong version
    p = tmp_path / "v2.h5"
    p.write_bytes(data)
    _rewrite(p, lambda f: f.attrs.__setitem__("format_version", 2))
    with pytest.raises(ExchangeFormatError, match="format_version 2 is not supported"):
        read_exchange(p)
    # some other HDF5 file
    with h5py.File(tmp_path / "other.h5", "w") as f:
        f["x"] = 1
    with pytest.raises(ExchangeFormatError, match="attribute format"):
        read_exchange(tmp_path / "other.h5")
    with pytest.raises(FileNotFoundError):
        read_exchange(tmp_path / "missing.h5")


def test_inconsistent_content_rejected_even_with_fresh_checksum(conv_file, tmp_path):
    """A file edited consistently (checksum recomputed) must still pass the key checks."""
    from qifsim.export.exchange import checksum

    _, good = conv_file

    def broken(edit, match):
        p = tmp_path / "b.h5"
        p.write_bytes(good.read_bytes())

        def apply(f):
            edit(f)
            f.attrs["checksum"] = checksum(f)

        _rewrite(p, apply)
        with pytest.raises(ExchangeFormatError, match=match):
            read_exchange(p)

    def odd_weight(f):
        f["layer/3/weight"][0, 0, 0, 0, 0] = 3.0

    broken(odd_weight, "even integers")
    broken(lambda f: f.__delitem__("layer/3/qif/vth_mant"), "missing dataset /layer/3/qif/vth_mant")

    def bad_shape(f):
        del f["layer/5/bias"]
        f["layer/5/bias"] = np.zeros(4)

    broken(bad_shape, r"/layer/5/bias has shape \(4,\)")

    def nan_weight(f):
        f["layer/5/qif/weight_float"][0, 0] = np.nan

    broken(nan_weight, "NaN")

    def bad_stride(f):
        f["layer/1/stride"][...] = [2, 2]

    broken(bad_stride, "conv geometry inconsistent")


def test_failed_export_keeps_previous_file(conv_file, tmp_path):
    _, good = conv_file
    target = tmp_path / "keep.h5"
    target.write_bytes(good.read_bytes())
    model = random_net("conv", "qif", 1, seed=0)
    model.features.add_module("maxpool", MergeTime(nn.MaxPool2d(2)))
    with pytest.raises(ExportError):
        export_lava(model, target)
    assert target.read_bytes() == good.read_bytes()
    assert not list(tmp_path.glob("*.tmp"))


@pytest.fixture(scope="module")
def tiny_checkpoint(tmp_path_factory):
    from train_helpers import tiny_config

    from qifsim.train import fit

    out = tmp_path_factory.mktemp("ckpt")
    fit(tiny_config(epochs=1, n_samples=32, neuron="lif"), out, progress=False)
    return out / "last.pt"


def test_cli_export_with_check_and_nir(tiny_checkpoint, tmp_path, capsys):
    import json

    from qifsim.cli import main

    out, nir_path = tmp_path / "net.h5", tmp_path / "net.nir"
    args = [str(tiny_checkpoint), str(out), "--nir", str(nir_path), "--check", "16", "--json"]
    assert main(["export", *args]) == 0
    report = json.loads(capsys.readouterr().out)
    ex = read_exchange(out)
    assert report["checksum"] == ex.checksum and nir_path.exists()
    assert report["check"]["n"] == 16 and report["check"]["agree_float"] == 1.0
    assert set(report["check"]["peak_over_limit"]) == {"1", "2", "4", "5"}
    assert [row["index"] for row in report["layers"]] == list(range(1, len(ex.layers) + 1))
    assert main(["export", str(tiny_checkpoint), str(out)]) == 0
    assert "w err" in capsys.readouterr().out


def test_cli_export_errors(tmp_path, capsys):
    from qifsim.cli import main

    assert main(["export", str(tmp_path / "none.pt"), str(tmp_path / "x.h5")]) == 2
    assert "no checkpoint" in capsys.readouterr().err
    assert not (tmp_path / "x.h5").exists()
