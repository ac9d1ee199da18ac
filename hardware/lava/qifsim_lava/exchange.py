"""Read and validate a qifsim exchange file (``hardware/lava/EXCHANGE.md``, format version 1).

numpy + h5py only (this runs in ``.venv-lava``, without torch). :func:`load_exchange`
returns a :class:`Network`: the layers after ``/layer/0`` in forward order, each a
:class:`Layer` with the float and fixed-point data the builder needs.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from pathlib import Path

import h5py
import numpy as np

FORMAT = "qifsim-exchange"
FORMAT_VERSION = 1
QIF_EXT_VERSION = 1
KINDS = ("dense", "conv", "flatten", "pool")
ROLES = ("hidden", "readout", "flatten", "pool")


class ExchangeError(ValueError):
    """The exchange file is corrupt, truncated, of another version or inconsistent."""


@dataclass
class Layer:
    """One ``/layer/{index}`` group (index >= 1).

    ``shape`` is the output shape in torch order; ``weight_float``/``weight_mant`` are
    dense ``(out, in)`` or conv ``(out, in/groups, kH, kW)`` (torch layout); ``bias_*`` ``(out,)``.
    ``params`` holds float neuron parameters, ``fixed`` the integer ones.
    """

    index: int
    kind: str
    role: str
    neuron: str
    shape: tuple[int, ...]
    weight_float: np.ndarray | None = None
    bias_float: np.ndarray | None = None
    weight_mant: np.ndarray | None = None
    bias_mant: np.ndarray | None = None
    weight_exponent: int = 0
    scale: float = 1.0
    stride: tuple[int, int] = (1, 1)
    padding: tuple[int, int] = (0, 0)
    dilation: tuple[int, int] = (1, 1)
    groups: int = 1
    kernel_size: tuple[int, int] = (1, 1)
    params: dict = field(default_factory=dict)
    fixed: dict = field(default_factory=dict)

    @property
    def synaptic(self) -> bool:
        """Dense, conv and pool layers are Lava connection processes (one step of delay each)."""
        return self.kind in ("dense", "conv", "pool")


@dataclass
class Network:
    """A validated exchange file: ``/meta`` values and the layers ``/layer/1 ..``."""

    path: Path
    qifsim_version: str
    model_name: str
    input_shape: tuple[int, ...]
    time_steps: int
    input_scale: float
    num_classes: int
    layers: list[Layer]
    checksum: str

    @property
    def delay(self) -> int:
        """``D``: number of synaptic processes on the path to the readout."""
        return sum(layer.synaptic for layer in self.layers)


def file_checksum(f: h5py.File) -> str:
    """Hex SHA-256 over every dataset of an open file, in EXCHANGE.md's order and encoding."""
    names: list[str] = []
    f.visititems(lambda _n, obj: names.append(obj.name) if isinstance(obj, h5py.Dataset) else None)
    digest = hashlib.sha256()
    for name in sorted(names):
        value = np.asarray(f[name][()])
        digest.update(name.encode("utf-8") + b"\0")
        digest.update(value.dtype.str.encode("ascii") + b"\0")
        digest.update(str(tuple(value.shape)).encode("ascii") + b"\0")
        digest.update(np.ascontiguousarray(value).tobytes())
    return digest.hexdigest()


class _Reader:
    """Typed access to datasets with errors that name the file and the key."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def fail(self, what: str) -> ExchangeError:
        return ExchangeError(f"{self.path}: {what}; re-export the model with `qifsim export`")

    def get(self, g: h5py.Group, key: str) -> np.ndarray:
        if key not in g:
            raise self.fail(f"missing dataset {g.name}/{key}")
        return np.asarray(g[key][()])

    def text(self, g: h5py.Group, key: str) -> str:
        value = self.get(g, key).reshape(-1)
        if value.size != 1:
            raise self.fail(f"{g.name}/{key} must hold one string")
        item = value[0]
        return item.decode("utf-8", errors="replace") if isinstance(item, bytes) else str(item)

    def integer(self, g: h5py.Group, key: str) -> int:
        value = self.get(g, key)
        if value.size != 1 or value.dtype.kind not in "iu":
            raise self.fail(f"{g.name}/{key} must be one integer, got {value.dtype} {value.shape}")
        return int(value.reshape(-1)[0])

    def real(self, g: h5py.Group, key: str) -> float:
        value = self.get(g, key)
        if value.size != 1 or value.dtype.kind not in "fiu" or not np.isfinite(value).all():
            raise self.fail(f"{g.name}/{key} must be one finite number")
        return float(value.reshape(-1)[0])

    def ints(self, g: h5py.Group, key: str, n: int | None = None) -> tuple[int, ...]:
        value = self.get(g, key)
        if value.ndim != 1 or value.dtype.kind not in "iu" or (n is not None and value.size != n):
            raise self.fail(f"{g.name}/{key} must be a 1-d integer array of length {n or 'any'}")
        return tuple(int(v) for v in value)

    def array(self, g: h5py.Group, key: str, shape: tuple[int, ...], integral: bool) -> np.ndarray:
        value = self.get(g, key)
        if value.shape != shape:
            raise self.fail(f"{g.name}/{key} has shape {value.shape}, expected {shape}")
        if value.dtype.kind not in "biuf":
            raise self.fail(f"{g.name}/{key} must be numeric, got {value.dtype}")
        value = value.astype(np.float64)
        if not np.isfinite(value).all():
            raise self.fail(f"{g.name}/{key} contains NaN/inf")
        if integral and np.any(value != np.round(value)):
            raise self.fail(f"{g.name}/{key} must hold integer values")
        return value.astype(np.int64) if integral else value


def _conv_out(size: tuple[int, ...], layer: Layer, kernel: tuple[int, ...]) -> tuple[int, ...]:
    return tuple(
        (n + 2 * p - d * (k - 1) - 1) // s + 1
        for n, p, d, k, s in zip(
            size, layer.padding, layer.dilation, kernel, layer.stride, strict=True
        )
    )


def _read_synapse(r: _Reader, g: h5py.Group, layer: Layer, in_shape: tuple[int, ...]) -> None:
    q = g["qif"]
    out = layer.shape[0]
    if layer.kind == "dense":
        if len(in_shape) != 1 or len(layer.shape) != 1:
            raise r.fail(f"{g.name}: a dense layer needs flat input and output, got {in_shape}")
        wshape: tuple[int, ...] = (out, in_shape[0])
        file_shape = wshape
    else:
        if len(in_shape) != 3 or len(layer.shape) != 3:
            raise r.fail(f"{g.name}: a conv layer needs (C, H, W) input and output")
        layer.stride = r.ints(g, "stride", 2)
        layer.padding = r.ints(g, "padding", 2)
        layer.dilation = r.ints(g, "dilation", 2)
        layer.groups = r.integer(g, "groups")
        raw = r.get(g, "weight")
        if raw.ndim != 5 or raw.shape[-1] != 1 or layer.groups < 1:
            raise r.fail(f"{g.name}/weight must be (out, in/groups, kH, kW, 1), got {raw.shape}")
        wshape = (out, in_shape[0] // layer.groups, raw.shape[2], raw.shape[3])
        file_shape = (*wshape, 1)
        expect = _conv_out(in_shape[1:], layer, raw.shape[2:4])
        if in_shape[0] % layer.groups or out % layer.groups or layer.shape[1:] != expect:
            raise r.fail(f"{g.name}: conv geometry does not give output shape {layer.shape}")
    layer.weight_exponent = r.integer(q, "weight_exponent")
    layer.scale = r.real(q, "scale")
    if not 0 <= layer.weight_exponent <= 7 or not layer.scale > 0:
        raise r.fail(f"{q.name}: weight_exponent must be in [0, 7] and scale > 0")
    weight = r.array(g, "weight", file_shape, integral=True).reshape(wshape)
    layer.weight_mant = weight / 2.0**layer.weight_exponent  # weight = m * 2**e (netx's meaning)
    if layer.weight_mant.size and (
        layer.weight_mant.min() < -256
        or layer.weight_mant.max() > 254
        or np.any(layer.weight_mant % 2)
    ):
        raise r.fail(
            f"{g.name}/weight must be m * 2**weight_exponent with m even integers in [-256, 254]"
        )
    layer.bias_mant = r.array(g, "bias", (out,), integral=True)
    if layer.bias_mant.size and not (
        -4096 <= layer.bias_mant.min() <= layer.bias_mant.max() <= 4095
    ):
        raise r.fail(f"{g.name}/bias mantissas must lie in [-4096, 4095] (13-bit signed)")
    layer.weight_float = r.array(q, "weight_float", file_shape, integral=False).reshape(wshape)
    layer.bias_float = r.array(q, "bias_float", (out,), integral=False)


def _read_neuron(r: _Reader, g: h5py.Group, layer: Layer) -> None:
    q = g["qif"]
    if layer.neuron not in ("qif", "lif"):
        raise r.fail(f"{q.name}: a hidden layer needs neuron 'qif' or 'lif', got {layer.neuron!r}")
    layer.params["u_th"] = r.real(q, "u_th")
    layer.fixed["vth_mant"] = r.integer(q, "vth_mant")
    if not 1 <= layer.fixed["vth_mant"] <= 8191:
        raise r.fail(f"{q.name}/vth_mant must be in [1, 8191] (13 bits)")
    if layer.neuron == "qif":
        for key in ("a", "u_rest", "u_c"):
            layer.params[key] = r.real(q, key)
        layer.params["form"] = r.text(q, "form")
        if layer.params["form"] not in ("paper", "euler"):
            raise r.fail(f"{q.name}/form must be 'paper' or 'euler'")
        for key in ("u_rest_int", "u_c_int", "a_mant", "a_shift"):
            layer.fixed[key] = r.integer(q, key)
        if not 1 <= layer.fixed["a_mant"] <= 4095 or not 0 <= layer.fixed["a_shift"] <= 62:
            raise r.fail(f"{q.name}: a_mant must be in [1, 4095] and a_shift in [0, 62]")
    else:
        layer.params["beta"] = r.real(q, "beta")
        layer.fixed["dv"] = r.integer(q, "dv")
        if not 0 <= layer.fixed["dv"] <= 4096:
            raise r.fail(f"{q.name}/dv must be in [0, 4096]")
        if "neuron" not in g:
            raise r.fail(f"missing group {g.name}/neuron (netx CUBA parameters)")


def _read_layer(r: _Reader, g: h5py.Group, index: int, in_shape: tuple[int, ...]) -> Layer:
    t = r.get(g, "type").reshape(-1)
    kind = t[0].decode("utf-8", "replace") if t.size == 1 and isinstance(t[0], bytes) else None
    if kind not in KINDS:
        raise r.fail(f"{g.name}/type is {kind!r}, expected one of {KINDS}")
    if "qif" not in g:
        raise r.fail(f"missing group {g.name}/qif (the qifsim extension)")
    q = g["qif"]
    if r.integer(q, "version") != QIF_EXT_VERSION:
        raise r.fail(f"{q.name}/version is not {QIF_EXT_VERSION}")
    layer = Layer(index, kind, r.text(q, "role"), r.text(q, "neuron"), r.ints(g, "shape"))
    if layer.role not in ROLES or min(layer.shape, default=0) < 1:
        raise r.fail(f"{g.name}: invalid role {layer.role!r} or shape {layer.shape}")
    if kind == "flatten":
        if layer.shape != (int(np.prod(in_shape)),):
            raise r.fail(f"{g.name}: flatten of {in_shape} cannot have shape {layer.shape}")
    elif kind == "pool":
        layer.kernel_size = r.ints(q, "kernel_size", 2)
        kh, kw = layer.kernel_size
        if len(in_shape) != 3 or min(kh, kw) < 1:
            raise r.fail(f"{g.name}: invalid pool kernel {layer.kernel_size} on {in_shape}")
        if layer.shape != (in_shape[0], in_shape[1] // kh, in_shape[2] // kw):
            raise r.fail(f"{g.name}: pool output shape {layer.shape} does not match its input")
        layer.stride = layer.kernel_size
    else:
        _read_synapse(r, g, layer, in_shape)
        if layer.role == "hidden":
            _read_neuron(r, g, layer)
        elif layer.role != "readout":
            raise r.fail(f"{g.name}: a {kind} layer must be hidden or readout, not {layer.role}")
    return layer


def _read_open(r: _Reader, f: h5py.File) -> Network:
    fmt = f.attrs.get("format")
    fmt = fmt.decode("utf-8", "replace") if isinstance(fmt, bytes) else fmt
    if not isinstance(fmt, str) or fmt != FORMAT:
        raise r.fail(f"attribute 'format' is {fmt!r}, expected {FORMAT!r} (not an exchange file)")
    version = f.attrs.get("format_version")
    version = int(version) if isinstance(version, (int, np.integer)) else version
    if not isinstance(version, int) or version != FORMAT_VERSION:
        raise ExchangeError(
            f"{r.path}: format_version {version!r} is not supported; qifsim_lava reads version "
            f"{FORMAT_VERSION}: re-export the model with a matching qifsim (`qifsim export`)"
        )
    stored = f.attrs.get("checksum")
    stored = stored.decode("utf-8", "replace") if isinstance(stored, bytes) else stored
    actual = file_checksum(f)
    if not isinstance(stored, str) or stored != actual:
        raise ExchangeError(
            f"{r.path}: checksum mismatch (stored {str(stored)[:16]}..., "
            f"computed {actual[:16]}...): "
            "the file was corrupted or edited after export; re-export it with `qifsim export`"
        )
    if "meta" not in f or "layer" not in f:
        raise r.fail("missing group /meta or /layer")
    meta, root = f["meta"], f["layer"]
    input_shape = r.ints(meta, "input_shape")
    if len(input_shape) not in (1, 3) or min(input_shape) < 1:
        raise r.fail(f"/meta/input_shape {input_shape} must be (C, H, W) or (N,)")
    n = len(root)
    if set(root.keys()) != {str(i) for i in range(n)}:
        raise r.fail(f"/layer must hold groups 0..{n - 1}, got {sorted(root.keys())}")
    if (
        r.get(root["0"], "type").reshape(-1)[:1].tolist() != [b"input"]
        or r.ints(root["0"], "shape") != input_shape
    ):
        raise r.fail("/layer/0 must be the input layer with shape = /meta/input_shape")
    layers: list[Layer] = []
    shape = input_shape
    for i in range(1, n):
        layers.append(_read_layer(r, root[str(i)], i, shape))
        shape = layers[-1].shape
    if not layers or layers[-1].role != "readout" or any(x.role == "readout" for x in layers[:-1]):
        raise r.fail("the last layer, and only it, must be the readout")
    net = Network(
        path=r.path,
        qifsim_version=r.text(meta, "qifsim_version"),
        model_name=r.text(meta, "model_name"),
        input_shape=input_shape,
        time_steps=r.integer(meta, "time_steps"),
        input_scale=r.real(meta, "input_scale"),
        num_classes=r.integer(meta, "num_classes"),
        layers=layers,
        checksum=actual,
    )
    if net.num_classes != layers[-1].shape[0] or net.time_steps < 1 or not net.input_scale > 0:
        raise r.fail("inconsistent /meta: num_classes, time_steps >= 1 or input_scale > 0")
    return net


def load_exchange(path: str | Path) -> Network:
    """Read and validate ``path``.

    Raises:
        FileNotFoundError: ``path`` does not exist.
        ExchangeError: not HDF5 or truncated, wrong ``format``/``format_version``,
            checksum mismatch, or a missing/inconsistent key (the message names it).
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"exchange file {path} does not exist")
    r = _Reader(path)
    try:
        f = h5py.File(path, "r")
    except OSError as err:
        raise ExchangeError(
            f"{path}: cannot be opened as HDF5 ({err}): the file is truncated or corrupt; "
            "re-export it with `qifsim export`"
        ) from err
    try:
        with f:
            return _read_open(r, f)
    except (OSError, KeyError, RuntimeError, TypeError) as err:
        raise r.fail(f"unreadable content ({type(err).__name__}: {err})") from err
