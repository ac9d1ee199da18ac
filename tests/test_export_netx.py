"""Optional: the exchange file of a LIF-only net loads in lava-dl's netx (keys and layouts exact).

lava-dl (``lava.lib.dl.netx``) imports torch and needs lava-nc, so it is usually
installed in neither environment; the test then skips with a message. Written
against netx's ``hdf5.Network`` (lava-dl main): the input layer without
``neuron/`` only sets the input shape, conv/dense layers with ``neuron/type
CUBA`` become LIF blocks, a dense layer without ``neuron/`` (the readout)
becomes a non-leaky integrator, ``flatten`` reorders WHC -> CHW, ``pool`` raises
``NotImplementedError``.
"""

from __future__ import annotations

import numpy as np
import pytest
from export_nets import random_net

from qifsim.export import export_lava, read_exchange

netx = pytest.importorskip(
    "lava.lib.dl.netx",
    reason="lava-dl's netx is not installed (pip install lava-dl in an environment with "
    "lava-nc and torch to run this check)",
)


def test_lif_conv_net_loads_in_netx(tmp_path):
    model = random_net("conv", "lif", depth=2, seed=3)
    path = tmp_path / "lif.h5"
    export_lava(model, path)
    ex = read_exchange(path)
    net = netx.hdf5.Network(net_config=str(path))
    synaptic = [layer for layer in ex.layers if layer.synaptic]
    assert len(net.layers) == len(synaptic)
    for block, layer in zip(net.layers, synaptic, strict=True):
        # netx blocks use Lava's (x, y, channel) order
        assert tuple(block.shape) == tuple(layer.shape[::-1])
    first = synaptic[0]
    integer = first.weight_mant * 2**first.weight_exponent  # netx reads the integer weights
    expect = integer[:, :, ::-1, ::-1].transpose(0, 3, 2, 1)
    np.testing.assert_array_equal(net.layers[0].synapse.weight.init, expect)
    assert int(np.asarray(net.layers[0].neuron.vth.init)) == first.fixed["vth_mant"]


def test_lif_dense_net_loads_in_netx(tmp_path):
    model = random_net("dense", "lif", depth=2, seed=4)
    path = tmp_path / "dense.h5"
    export_lava(model, path)
    net = netx.hdf5.Network(net_config=str(path))
    assert [tuple(b.shape) for b in net.layers] == [(24,), (24,), (5,)]


def test_pool_layers_are_not_netx(tmp_path):
    model = random_net("conv", "lif", depth=2, seed=5, pool=True)
    path = tmp_path / "pool.h5"
    export_lava(model, path)
    with pytest.raises(NotImplementedError, match="pool"):
        netx.hdf5.Network(net_config=str(path))
