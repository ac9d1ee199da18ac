"""What stock lava-dl netx (0.6.0) cannot run the way ``qifsim_lava`` runs an exchange file.

netx (``lava.lib.dl.netx.hdf5.Network``) reads the file's netx keys only (EXCHANGE.md,
"netx"). :func:`netx_differences` lists, for a loaded :class:`~qifsim_lava.exchange.Network`,
every layer netx refuses or would run differently, so a user learns it before (or instead
of) netx's own message. numpy only: it never imports netx, except :func:`load_netx`, which
checks the file first and then hands it to stock netx. ``tests/test_export_netx.py`` checks
each rule against netx itself.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from .exchange import Network, load_exchange


class NetxUnsupportedError(ValueError):
    """Stock netx would refuse the exchange file, or run it differently from ``qifsim_lava``."""


#: netx's ``optimize_weight_bits`` clips dense weights to this range (8-bit synapses)
NETX_DENSE_WEIGHT_RANGE = (-256, 254)


def netx_differences(network: Network) -> list[str]:
    """One sentence per layer that stock netx refuses or runs differently; ``[]``: netx
    builds the same network and its fixed-point run matches ``qifsim_lava`` bit for bit
    (readout read as ``u + 64 T bias``, EXCHANGE.md "netx").

    Rules (lava-dl 0.6.0):

    * a QIF layer: netx has no QIF neuron; its ``neuron/type`` is ``QIF``, which netx's
      ``get_neuron_params`` does not know, so loading raises ``AttributeError: 'NoneType'
      object has no attribute 'pop'``;
    * a ``pool`` layer: netx raises ``NotImplementedError: pool is not implemented.``;
    * a dense layer whose integer weights ``m * 2**e`` leave [-256, 254] (``e > 0`` with
      large mantissas): netx clips them to that range (printing a warning) and the run
      differs; conv weights pass through unclipped.
    """
    low, high = NETX_DENSE_WEIGHT_RANGE
    out = []
    for layer in network.layers:
        where = f"layer {layer.index} ({layer.kind})"
        if layer.neuron == "qif":
            out.append(
                f"{where}: QIF neuron; netx has no QIF neuron and refuses the file at load "
                "(AttributeError: 'NoneType' object has no attribute 'pop'); run it with "
                "qifsim_lava instead"
            )
        elif layer.kind == "pool":
            out.append(f"{where}: netx does not implement pool layers (NotImplementedError)")
        if layer.kind == "dense" and layer.weight_mant is not None and layer.weight_mant.size:
            weight = layer.weight_mant.astype(np.int64) * 2**layer.weight_exponent
            if weight.min() < low or weight.max() > high:
                out.append(
                    f"{where}: integer weights span [{int(weight.min())}, {int(weight.max())}] "
                    f"(weight exponent {layer.weight_exponent}); netx clips dense weights to "
                    f"[{low}, {high}], so its run differs"
                )
    return out


def load_netx(path: str | Path, **kwargs: Any):
    """Stock ``lava.lib.dl.netx.hdf5.Network(net_config=path, **kwargs)``, after checking the
    file: raises :class:`NetxUnsupportedError` naming every layer of :func:`netx_differences`
    (a QIF layer, a pool layer, dense weights netx would clip) instead of netx's own message
    (for QIF: ``AttributeError: 'NoneType' object has no attribute 'pop'``) or a run that
    differs. Needs lava-dl (``make setup-netx``)."""
    differences = netx_differences(load_exchange(path))
    if differences:
        raise NetxUnsupportedError(
            f"{path}: stock lava-dl netx cannot run this exchange file as qifsim_lava does: "
            + "; ".join(differences)
        )
    from lava.lib.dl import netx

    return netx.hdf5.Network(net_config=str(path), **kwargs)
