"""NIR (Neuromorphic Intermediate Representation) export and import of qifsim networks.

:func:`to_nir` writes one NIR node per operation of :func:`~qifsim.export.graph.walk`'s
layers, per time step (``Input -> Conv2d/Affine -> LIF -> ... -> Affine -> Output``):

* synaptic layers: ``Conv2d``/``Affine`` with tdBN folded into weight and bias;
* LIF (``u <- beta u (1 - o) + I``, hard reset to 0): ``nir.LIF`` with
  ``tau = dt / (1 - beta)``, ``r = tau / dt``, ``v_leak = 0``, ``v_reset = 0``,
  ``v_threshold = u_th`` (LAVA.md). NIR's ODE ``tau dv/dt = (v_leak - v) + r I``
  stepped by Euler with ``dt`` is exactly ``v <- beta v + I``. ``dt`` defaults to
  ``1e-4``, the step snntorch's importer assumes; norse's importer takes it as
  ``from_nir(graph, dt=1e-4)`` and ignores ``r`` (it warns), so for norse export
  with ``fold_r=True``: ``r = 1`` and the synaptic weight and bias before every
  LIF multiplied by ``tau / dt`` (the same NIR dynamics; snntorch then rescales
  its threshold instead);
* average pooling: ``AvgPool2d`` (stride = kernel); ``TimeFlatten``: ``Flatten``
  over the unbatched ``(C, H, W)`` (``start_dim=0``);
* the non-firing readout: ``Affine`` to the ``Output`` (per-step logits: the
  model's output is their mean over ``T``, taken outside the graph; voting folded).

QIF has no NIR primitive (no quadratic term): :func:`to_nir` raises
:class:`NIRExportError` for QIF nets; with ``approximate=True`` it writes
``nir.IF`` nodes (``r = 1``, threshold ``u_th``, reset ``u_rest``) carrying the
QIF parameters in their metadata and warns that the IF dynamics differ.

Every node's ``metadata`` also holds the unfolded qifsim tensors (conv/linear
weight, tdBN affine parameters and running statistics, neuron parameters), so
:func:`from_nir` rebuilds the original qifsim model exactly (same float32
tensors, same outputs) from graphs written by :func:`to_nir`.
"""

from __future__ import annotations

import warnings
from collections import OrderedDict
from pathlib import Path

import numpy as np
import torch
from torch import nn

from ..atomic import atomic_path
from ..layers import MergeTime
from ..models.base import SpikingModel
from ..models.blocks import ConvSpike, LinearSpike, Readout, TimeFlatten
from ..models.factory import LayerFactory
from ..neurons import LIFParameters, QIFParameters
from .graph import ExportError, walk

__all__ = ["NIRExportError", "NIRRestoredNet", "from_nir", "read_nir", "to_nir", "write_nir"]

META_KEY = "qifsim_format"
META_VERSION = 1


class NIRExportError(ExportError):
    """The model cannot be written faithfully as NIR (e.g. QIF neurons without ``approximate``)."""


def _np(t: torch.Tensor) -> np.ndarray:
    return t.detach().cpu().numpy().copy()


def _neuron_meta(module: nn.Module) -> dict:
    p = module.p
    meta = {"qifsim_surrogate": p.surrogate}
    if p.alpha is not None:
        meta["qifsim_alpha"] = float(p.alpha)
    return meta


def _synapse_meta(block: nn.Module) -> dict:
    """Unfolded tensors of a ConvSpike/LinearSpike (exact float32 copies)."""
    syn = block.conv.module if isinstance(block, ConvSpike) else block.fc
    bn = block.bn
    meta = {
        "qifsim_weight": _np(syn.weight),
        "qifsim_bn_weight": _np(bn.weight),
        "qifsim_bn_bias": _np(bn.bias),
        "qifsim_bn_running_mean": _np(bn.running_mean),
        "qifsim_bn_running_var": _np(bn.running_var),
        "qifsim_bn_eps": float(bn.eps),
        "qifsim_bn_u_th": float(bn.u_th),
        "qifsim_bn_eta": float(bn.eta),
    }
    if isinstance(block, ConvSpike):
        meta["qifsim_kernel"] = int(syn.kernel_size[0])
    return meta


def to_nir(
    model: nn.Module,
    input_shape: tuple[int, ...] | None = None,
    *,
    approximate: bool = False,
    dt: float = 1e-4,
    fold_r: bool = False,
):
    """The NIR graph (``nir.NIRGraph``) of a qifsim LIF network (QIF: see module docstring).

    Args:
        model: an eval-mode qifsim model (the blocks :func:`~qifsim.export.graph.walk` accepts).
        input_shape: one frame ``(C, H, W)``; default ``model.input_shape``.
        approximate: QIF nets only: write IF nodes with the QIF parameters in
            metadata (the dynamics are *not* QIF's) and warn.
        dt: the time step NIR's continuous parameters refer to (``1e-4``: snntorch's).
        fold_r: write ``r = 1`` and scale the synaptic weights by ``tau / dt`` (for
            norse, whose importer ignores ``r``).

    Raises:
        NIRExportError: QIF neurons without ``approximate=True``.
        ExportError: modules the exporter cannot represent.
    """
    import nir

    if input_shape is None:
        input_shape = getattr(model, "input_shape", None)
        if input_shape is None:
            raise ExportError("pass input_shape=(C, H, W): the model has no input_shape")
    if not (np.isfinite(dt) and dt > 0):
        raise ValueError(f"dt must be finite and > 0, got {dt}")
    layers = walk(model, tuple(input_shape))
    if any(layer.neuron == "qif" for layer in layers) and not approximate:
        raise NIRExportError(
            "NIR has no QIF primitive (no node with a quadratic membrane term), so a QIF "
            "network cannot be exported faithfully. Use a LIF network, or "
            "to_nir(model, approximate=True) to write IF nodes carrying the QIF parameters "
            "in their metadata (the IF dynamics differ from QIF's: spikes will not match)."
        )
    modules = dict(model.named_modules())
    nodes: dict = {"input": nir.Input(input_type={"input": np.asarray(input_shape)})}
    edges: list[tuple[str, str]] = []
    prev, shape = "input", tuple(input_shape)
    warned = False
    for i, layer in enumerate(layers):
        block = modules[layer.name]
        meta = {"qifsim_name": layer.name, "qifsim_role": layer.role}
        if layer.kind == "flatten":
            node = nir.Flatten(
                input_type={"input": np.asarray(shape)}, start_dim=0, end_dim=-1, metadata=meta
            )
            key = f"{i}_flatten"
        elif layer.kind == "pool":
            k = np.asarray(layer.kernel_size)
            node = nir.AvgPool2d(kernel_size=k, stride=k, padding=np.zeros(2, dtype=np.int64),
                                 metadata=meta)  # fmt: skip
            key = f"{i}_pool"
        else:
            # NIR keeps AvgPool2d nodes: the weights without the walk's folded 1/k^2
            weight, bias = layer.unpooled_weight, layer.bias
            gain = 1.0
            if layer.role == "hidden" and layer.neuron == "lif" and fold_r:
                gain = 1.0 / (1.0 - layer.params["beta"])
            if layer.role == "readout":
                meta.update(
                    qifsim_weight=_np(block.fc.weight),
                    qifsim_bias=_np(block.fc.bias),
                    qifsim_voting=int(block.voting),
                    qifsim_num_classes=int(block.num_classes),
                )
            else:
                meta.update(_synapse_meta(block))
            if layer.kind == "conv":
                node = nir.Conv2d(
                    input_shape=np.asarray(shape[1:]), weight=weight * gain,
                    stride=np.asarray(layer.stride), padding=np.asarray(layer.padding),
                    dilation=np.asarray(layer.dilation), groups=layer.groups, bias=bias * gain,
                    metadata=meta,
                )  # fmt: skip
            else:
                node = nir.Affine(weight=weight * gain, bias=bias * gain, metadata=meta)
            key = f"{i}_{layer.kind}"
        nodes[key] = node
        edges.append((prev, key))
        prev, shape = key, tuple(layer.shape)
        if layer.role != "hidden":
            continue
        ones = np.ones(layer.shape)
        spike = modules[f"{layer.name}.spike"]
        nmeta = {"qifsim_neuron": layer.neuron, **_neuron_meta(spike)}
        if layer.neuron == "lif":
            beta = layer.params["beta"]
            if not 0.0 <= beta < 1.0:
                raise NIRExportError(
                    f"layer {layer.name!r}: beta={beta} has no finite NIR time constant "
                    "(tau = dt / (1 - beta) needs beta < 1)"
                )
            tau = dt / (1.0 - beta)
            nmeta.update(qifsim_beta=beta, qifsim_u_th=layer.params["u_th"], qifsim_dt=dt)
            neuron = nir.LIF(
                tau=ones * tau, r=ones * (1.0 if fold_r else tau / dt), v_leak=ones * 0.0,
                v_threshold=ones * layer.params["u_th"], v_reset=ones * 0.0, metadata=nmeta,
            )  # fmt: skip
        else:
            p = layer.params
            nmeta.update({f"qifsim_{k}": v for k, v in p.items()})
            neuron = nir.IF(
                r=ones, v_threshold=ones * p["u_th"], v_reset=ones * p["u_rest"], metadata=nmeta
            )
            if not warned:
                warnings.warn(
                    "to_nir(approximate=True): QIF layers are written as NIR IF nodes with the "
                    "QIF parameters (a, u_rest, u_c, u_th, form) in their metadata; NIR "
                    "simulators will run IF dynamics, not QIF (spikes will differ). qifsim's "
                    "from_nir restores the QIF model exactly.",
                    stacklevel=2,
                )
                warned = True
        key = f"{i}_{layer.neuron}"
        nodes[key] = neuron
        edges.append((prev, key))
        prev = key
    nodes["output"] = nir.Output(output_type={"output": np.asarray(shape)})
    edges.append((prev, "output"))
    graph_meta = {
        META_KEY: META_VERSION,
        "qifsim_model": str(getattr(model, "name", type(model).__name__)),
        "qifsim_input_shape": np.asarray(input_shape),
        "qifsim_time_steps": int(getattr(model, "default_steps", 1)),
        "qifsim_dt": float(dt),
        "qifsim_fold_r": int(bool(fold_r)),
        "qifsim_readout": "per-step logits; the model output is their mean over T",
    }
    return nir.NIRGraph(nodes=nodes, edges=edges, metadata=graph_meta)


# -- import ----------------------------------------------------------------------------------------
class NIRRestoredNet(SpikingModel):
    """A qifsim model rebuilt by :func:`from_nir` (same blocks and tensors as the original).

    ``features``: the conv/pool blocks; ``classifier``: ``TimeFlatten`` and the
    linear spiking blocks; ``readout``: the :class:`~qifsim.models.Readout`.
    """

    name = "nir-restored"

    def __init__(self, factory, num_classes, input_shape, features, classifier, readout, steps):
        c, *hw = input_shape
        size = tuple(hw) if len(hw) == 2 else (1, 1)
        super().__init__(factory, num_classes, c, size)
        self.features = features
        self.classifier = classifier
        self.readout = readout
        self.default_steps = steps


def _meta(node) -> dict:
    return dict(getattr(node, "metadata", {}) or {})


def _scalar(v) -> float:
    return float(np.asarray(v).reshape(()))


def _text(v) -> str:
    return v.decode() if isinstance(v, bytes) else str(v)


def _neuron_factory(meta: dict) -> LayerFactory:
    kind = _text(meta["qifsim_neuron"])
    extra = {"surrogate": _text(meta["qifsim_surrogate"])}
    if "qifsim_alpha" in meta:
        extra["alpha"] = _scalar(meta["qifsim_alpha"])
    if kind == "lif":
        params = LIFParameters(
            beta=_scalar(meta["qifsim_beta"]), u_th=_scalar(meta["qifsim_u_th"]), **extra
        )
    else:
        params = QIFParameters(
            a=_scalar(meta["qifsim_a"]), u_rest=_scalar(meta["qifsim_u_rest"]),
            u_c=_scalar(meta["qifsim_u_c"]), u_th=_scalar(meta["qifsim_u_th"]),
            form=_text(meta["qifsim_form"]), **extra,
        )  # fmt: skip
    return LayerFactory(kind, params)


def _restore_block(syn_node, neuron_node):
    meta = _meta(syn_node)
    factory = _neuron_factory(_meta(neuron_node))
    weight = torch.from_numpy(np.asarray(meta["qifsim_weight"]))
    if weight.dim() == 4:
        out_c, in_c, k, _ = weight.shape
        stride = int(np.asarray(syn_node.stride).reshape(-1)[0])
        padding = int(np.asarray(syn_node.padding).reshape(-1)[0])
        block = ConvSpike(factory, in_c, out_c, k, stride=stride, padding=padding)
        block.conv.module.weight.data.copy_(weight)
    else:
        block = LinearSpike(factory, weight.shape[1], weight.shape[0])
        block.fc.weight.data.copy_(weight)
    bn = block.bn
    bn.u_th = _scalar(meta["qifsim_bn_u_th"])
    bn.eta = _scalar(meta["qifsim_bn_eta"])
    bn.eps = _scalar(meta["qifsim_bn_eps"])
    for key in ("weight", "bias", "running_mean", "running_var"):
        getattr(bn, key).data.copy_(torch.from_numpy(np.asarray(meta[f"qifsim_bn_{key}"])))
    return block, factory


def from_nir(graph) -> NIRRestoredNet:
    """Rebuild the qifsim model of a NIR graph written by :func:`to_nir` (eval mode).

    The restored model holds the original (unfolded) tensors, so its outputs equal
    the exported model's exactly. Accepts a ``nir.NIRGraph`` or a path to a ``.nir`` file.

    Raises:
        ValueError: the graph was not written by qifsim's :func:`to_nir` (no
        ``qifsim_*`` metadata), or is not a chain of the supported nodes.
    """
    import nir

    if isinstance(graph, (str, Path)):
        graph = read_nir(graph)
    gmeta = dict(getattr(graph, "metadata", {}) or {})
    if META_KEY not in gmeta:
        raise ValueError(
            "from_nir restores graphs written by qifsim.export.to_nir only (the graph has no "
            f"{META_KEY!r} metadata); import foreign NIR graphs with norse/snntorch instead"
        )
    if int(_scalar(gmeta[META_KEY])) != META_VERSION:
        raise ValueError(f"unsupported qifsim NIR metadata version {gmeta[META_KEY]!r}")
    succ = {}
    for a, b in graph.edges:
        if a in succ:
            raise ValueError(f"node {a!r} has several successors; qifsim graphs are chains")
        succ[a] = b
    order, key = [], "input"
    while key in succ:
        key = succ[key]
        order.append(key)
    if not order or order[-1] != "output":
        raise ValueError("the graph is not a chain from 'input' to 'output'")
    nodes = [graph.nodes[k] for k in order[:-1]]
    features: OrderedDict[str, nn.Module] = OrderedDict()
    classifier: OrderedDict[str, nn.Module] = OrderedDict()
    readout = None
    factory = None
    flat = False
    i = 0
    while i < len(nodes):
        node, meta = nodes[i], _meta(nodes[i])
        name = _text(meta.get("qifsim_name", f"layer{i}")).split(".")[-1]
        target = classifier if flat else features
        if isinstance(node, nir.Flatten):
            classifier[name] = TimeFlatten()
            flat = True
        elif isinstance(node, nir.AvgPool2d):
            kernel = tuple(int(k) for k in np.asarray(node.kernel_size).reshape(-1))
            kernel = kernel * 2 if len(kernel) == 1 else kernel  # square kernels may be one number
            target[name] = MergeTime(nn.AvgPool2d(kernel))  # non-square: global pooling
        elif _text(meta.get("qifsim_role", "")) == "readout":
            w = torch.from_numpy(np.asarray(meta["qifsim_weight"]))
            voting = int(_scalar(meta["qifsim_voting"]))
            readout = Readout(w.shape[1], int(_scalar(meta["qifsim_num_classes"])), voting)
            readout.fc.weight.data.copy_(w)
            readout.fc.bias.data.copy_(torch.from_numpy(np.asarray(meta["qifsim_bias"])))
        elif isinstance(node, (nir.Conv2d, nir.Affine)):
            if i + 1 >= len(nodes) or not isinstance(nodes[i + 1], (nir.LIF, nir.IF)):
                raise ValueError(f"node {order[i]!r} is not followed by a LIF/IF node")
            block, factory = _restore_block(node, nodes[i + 1])
            target[name] = block
            i += 1
        else:
            raise ValueError(f"node {order[i]!r} ({type(node).__name__}) is not supported")
        i += 1
    if readout is None or factory is None:
        raise ValueError("the graph has no qifsim readout or no spiking layer")
    input_shape = tuple(int(s) for s in np.asarray(gmeta["qifsim_input_shape"]))
    model = NIRRestoredNet(
        factory, readout.num_classes, input_shape, nn.Sequential(features),
        nn.Sequential(classifier), readout, int(_scalar(gmeta["qifsim_time_steps"])),
    )  # fmt: skip
    return model.eval()


def write_nir(path: str | Path, graph) -> Path:
    """``nir.write`` to ``path`` atomically."""
    import nir

    with atomic_path(path) as tmp:
        nir.write(tmp, graph)
    return Path(path)


def read_nir(path: str | Path):
    """``nir.read`` with a clear error for missing or unreadable files."""
    import nir

    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"NIR file {path} does not exist")
    try:
        return nir.read(path)
    except (OSError, KeyError, ValueError) as err:
        raise ValueError(f"{path}: not a readable NIR file ({type(err).__name__}: {err})") from err
