"""The exchange file (``hardware/lava/EXCHANGE.md``, format version 1): build, write, read, check.

* :class:`ExchangeLayer` / :class:`ExchangeFile`: the in-memory form, the
  same whether built from a model (:func:`build_exchange`) or read from disk
  (:func:`read_exchange`);
* :func:`write_exchange`: HDF5 in lava-dl netx's layout plus the ``qif/``
  extension, written atomically, SHA-256 checksum over every dataset;
* :func:`read_exchange`: validates format, version, checksum and every key;
  corrupt, truncated, wrong-version or wrong-checksum files raise
  :class:`ExchangeFormatError` saying what is wrong and what to do.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from pathlib import Path

import h5py
import numpy as np

from ..atomic import atomic_path
from .graph import ExportLayer
from .quantize import (
    A_MANT_MAX,
    A_SHIFT_MAX,
    BIAS_MANT_MAX,
    BIAS_MANT_MIN,
    EXP_MAX,
    MANT_MAX,
    MANT_MIN,
    VTH_MANT_MAX,
    LayerQuant,
)

__all__ = [
    "FORMAT",
    "FORMAT_VERSION",
    "ExchangeFile",
    "ExchangeFormatError",
    "ExchangeLayer",
    "build_exchange",
    "checksum",
    "read_exchange",
    "write_exchange",
]

FORMAT = "qifsim-exchange"
FORMAT_VERSION = 1
QIF_EXT_VERSION = 1
_KINDS = ("dense", "conv", "flatten", "pool")
_ROLES = ("hidden", "readout", "flatten", "pool")


class ExchangeFormatError(ValueError):
    """An exchange file is corrupt, truncated, of another version, or inconsistent."""


@dataclass
class ExchangeLayer:
    """One layer after the input (``/layer/{i}``, ``i >= 1``).

    Attributes:
        kind, role, neuron: as in EXCHANGE.md (``dense``/``conv``/``flatten``/``pool``;
            ``hidden``/``readout``/``flatten``/``pool``; ``qif``/``lif``/``none``).
        shape: output shape per sample (torch order).
        weight_float: float64 deployment weights, dense ``(out, in)``, conv
            ``(out, in/groups, kH, kW)`` (the file adds a trailing axis of 1).
        bias_float: float64 ``(out,)``.
        weight_mant, bias_mant: integer mantissas (float64 holding integers).
        weight_exponent, scale, quant_error: see EXCHANGE.md.
        stride, padding, dilation, groups: conv geometry ``(y, x)``.
        kernel_size: pool kernel ``(kH, kW)`` (stride = kernel).
        params: float neuron parameters (``u_th``, ``a``/``beta``, ``u_rest``, ``u_c``, ``form``).
        fixed: integer neuron parameters (``vth_mant``, ``u_rest_int``, ``u_c_int``,
            ``a_mant``, ``a_shift``, ``dv``).
    """

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
    quant_error: float = 0.0
    stride: tuple[int, int] = (1, 1)
    padding: tuple[int, int] = (0, 0)
    dilation: tuple[int, int] = (1, 1)
    groups: int = 1
    kernel_size: tuple[int, int] = (1, 1)
    params: dict = field(default_factory=dict)
    fixed: dict = field(default_factory=dict)

    @property
    def synaptic(self) -> bool:
        """True for ``dense``/``conv``."""
        return self.kind in ("dense", "conv")


@dataclass
class ExchangeFile:
    """A whole exchange file: metadata and the layers after the input.

    ``layers[k]`` is ``/layer/{k + 1}``; ``/layer/0`` is the input
    (``input_shape``). ``checksum`` is filled by read/write.
    """

    qifsim_version: str
    model_name: str
    input_shape: tuple[int, ...]
    time_steps: int
    input_scale: float
    num_classes: int
    layers: list[ExchangeLayer]
    checksum: str = ""


def build_exchange(
    layers: list[ExportLayer],
    quant: list[LayerQuant | None],
    *,
    model_name: str,
    input_shape: tuple[int, ...],
    time_steps: int,
    input_scale: float,
    qifsim_version: str,
) -> ExchangeFile:
    """Combine the walked layers and their quantisation into an :class:`ExchangeFile`."""
    out = []
    for layer, q in zip(layers, quant, strict=True):
        entry = ExchangeLayer(layer.kind, layer.role, layer.neuron, tuple(layer.shape))
        if layer.kind == "pool":
            entry.kernel_size = tuple(layer.kernel_size)
        if layer.synaptic:
            assert q is not None
            entry.weight_float = np.asarray(layer.weight, dtype=np.float64)
            entry.bias_float = np.asarray(layer.bias, dtype=np.float64)
            entry.weight_mant = q.weight_mant
            entry.bias_mant = q.bias_mant
            entry.weight_exponent = q.weight_exponent
            entry.scale = q.scale
            entry.quant_error = q.quant_error
            entry.fixed = dict(q.fixed)
            entry.params = dict(layer.params)
            if layer.kind == "conv":
                entry.stride, entry.padding = tuple(layer.stride), tuple(layer.padding)
                entry.dilation, entry.groups = tuple(layer.dilation), int(layer.groups)
        out.append(entry)
    return ExchangeFile(
        qifsim_version=qifsim_version,
        model_name=model_name,
        input_shape=tuple(int(s) for s in input_shape),
        time_steps=int(time_steps),
        input_scale=float(input_scale),
        num_classes=int(layers[-1].shape[0]),
        layers=out,
    )


# -- checksum -----------------------------------------------------------------------------------
def checksum(f: h5py.File) -> str:
    """Hex SHA-256 over every dataset of an open file, as EXCHANGE.md specifies."""
    names: list[str] = []
    f.visititems(lambda _n, obj: names.append(obj.name) if isinstance(obj, h5py.Dataset) else None)
    h = hashlib.sha256()
    for name in sorted(names):
        value = np.asarray(f[name][()])
        h.update(name.encode("utf-8") + b"\0")
        h.update(value.dtype.str.encode("ascii") + b"\0")
        h.update(str(tuple(value.shape)).encode("ascii") + b"\0")
        h.update(np.ascontiguousarray(value).tobytes())
    return h.hexdigest()


# -- writing ------------------------------------------------------------------------------------
def _s10(text: str) -> np.ndarray:
    return np.array([text.encode("ascii")], dtype="S10")


def _write_layer(g: h5py.Group, layer: ExchangeLayer) -> None:
    g["type"] = _s10(layer.kind)
    g["shape"] = np.asarray(layer.shape, dtype=np.int64)
    q = g.create_group("qif")
    q["version"] = np.int64(QIF_EXT_VERSION)
    q["role"] = np.bytes_(layer.role)
    q["neuron"] = np.bytes_(layer.neuron)
    if layer.kind == "pool":
        q["kernel_size"] = np.asarray(layer.kernel_size, dtype=np.int64)
    if not layer.synaptic:
        return
    w_mant, w_float = layer.weight_mant, layer.weight_float
    if layer.kind == "conv":
        w_mant, w_float = w_mant[..., None], w_float[..., None]
        g["stride"] = np.asarray(layer.stride, dtype=np.int64)
        g["padding"] = np.asarray(layer.padding, dtype=np.int64)
        g["dilation"] = np.asarray(layer.dilation, dtype=np.int64)
        g["groups"] = np.int64(layer.groups)
    # netx's meaning: the integer weight m * 2**e (the mantissas come back as weight / 2**e)
    g["weight"] = np.asarray(w_mant, dtype=np.float64) * 2.0**layer.weight_exponent
    g["bias"] = np.asarray(layer.bias_mant, dtype=np.float64)
    q["weight_float"] = np.asarray(w_float, dtype=np.float64)
    q["bias_float"] = np.asarray(layer.bias_float, dtype=np.float64)
    q["weight_exponent"] = np.int64(layer.weight_exponent)
    q["scale"] = np.float64(layer.scale)
    q["quant_error"] = np.float64(layer.quant_error)
    if layer.role != "hidden":
        return
    p, fx = layer.params, layer.fixed
    q["u_th"] = np.float64(p["u_th"])
    q["vth_mant"] = np.int64(fx["vth_mant"])
    if layer.neuron == "qif":
        for key in ("a", "u_rest", "u_c"):
            q[key] = np.float64(p[key])
        for key in ("u_rest_int", "u_c_int", "a_mant", "a_shift"):
            q[key] = np.int64(fx[key])
        q["form"] = np.bytes_(p["form"])
        # netx has no QIF neuron: without a neuron/ group it would build a dense QIF layer as a
        # non-leaky integrator and run silently; with type QIF it refuses to load (EXCHANGE.md)
        g.create_group("neuron")["type"] = _s10("QIF")
    else:
        q["beta"] = np.float64(p["beta"])
        q["dv"] = np.int64(fx["dv"])
        n = g.create_group("neuron")
        n["type"] = _s10("CUBA")
        n["iDecay"] = np.int64(4096)
        n["vDecay"] = np.int64(fx["dv"])
        n["vThMant"] = np.int64(fx["vth_mant"])
        n["refDelay"] = np.int64(1)
        n["gradedSpike"] = np.bool_(False)


def write_exchange(path: str | Path, exchange: ExchangeFile) -> str:
    """Write ``exchange`` to ``path`` atomically; returns the checksum (also stored)."""
    with atomic_path(path) as tmp:
        with h5py.File(tmp, "w") as f:
            meta = f.create_group("meta")
            meta["qifsim_version"] = np.bytes_(exchange.qifsim_version)
            meta["model_name"] = np.bytes_(exchange.model_name)
            meta["input_shape"] = np.asarray(exchange.input_shape, dtype=np.int64)
            meta["time_steps"] = np.int64(exchange.time_steps)
            meta["input_scale"] = np.float64(exchange.input_scale)
            meta["num_classes"] = np.int64(exchange.num_classes)
            root = f.create_group("layer")
            inp = root.create_group("0")
            inp["type"] = _s10("input")
            inp["shape"] = np.asarray(exchange.input_shape, dtype=np.int64)
            for i, layer in enumerate(exchange.layers, start=1):
                _write_layer(root.create_group(str(i)), layer)
            digest = checksum(f)
            f.attrs["format"] = FORMAT
            f.attrs["format_version"] = np.int64(FORMAT_VERSION)
            f.attrs["checksum"] = digest
    exchange.checksum = digest
    return digest


# -- reading ------------------------------------------------------------------------------------
class _Reader:
    """Typed access to datasets with errors that name the file and the key."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def fail(self, what: str) -> ExchangeFormatError:
        return ExchangeFormatError(
            f"{self.path}: {what}; the file is not a valid qifsim exchange file "
            f"(format v{FORMAT_VERSION}); re-export it with `qifsim export`"
        )

    def get(self, g: h5py.Group, key: str) -> np.ndarray:
        if key not in g:
            raise self.fail(f"missing dataset {g.name.rstrip('/')}/{key}")
        obj = g[key]
        if not isinstance(obj, h5py.Dataset):
            raise self.fail(f"{obj.name} is not a dataset")
        return np.asarray(obj[()])

    def text(self, g: h5py.Group, key: str, s10: bool = False) -> str:
        v = self.get(g, key)
        if v.dtype.kind != "S" or (s10 and v.shape != (1,)):
            raise self.fail(f"{g.name}/{key} must be a byte string, got {v.dtype} {v.shape}")
        return (v[0] if v.shape else v[()]).decode("ascii", errors="replace")

    def integer(self, g: h5py.Group, key: str) -> int:
        v = self.get(g, key)
        if v.shape != () or v.dtype.kind not in "iu":
            raise self.fail(f"{g.name}/{key} must be an integer scalar, got {v.dtype} {v.shape}")
        return int(v)

    def real(self, g: h5py.Group, key: str) -> float:
        v = self.get(g, key)
        if v.shape != () or v.dtype.kind not in "fiu" or not np.isfinite(v):
            raise self.fail(f"{g.name}/{key} must be a finite number, got {v!r}")
        return float(v)

    def ints(self, g: h5py.Group, key: str, n: int | None = None) -> tuple[int, ...]:
        v = self.get(g, key)
        if v.ndim != 1 or v.dtype.kind not in "iu" or (n is not None and v.shape[0] != n):
            raise self.fail(f"{g.name}/{key} must be an int vector of length {n}, got {v!r}")
        return tuple(int(x) for x in v)

    def array(self, g: h5py.Group, key: str, shape: tuple[int, ...], integral: bool) -> np.ndarray:
        v = self.get(g, key)
        if v.dtype.kind not in "biuf":
            raise self.fail(f"{g.name}/{key} must be numeric, got {v.dtype}")
        v = v.astype(np.float64, copy=False)
        if v.shape != shape:
            raise self.fail(f"{g.name}/{key} has shape {v.shape}, expected {shape}")
        if not np.isfinite(v).all():
            raise self.fail(f"{g.name}/{key} contains NaN/inf")
        if integral and not np.array_equal(v, np.round(v)):
            raise self.fail(f"{g.name}/{key} must hold integers")
        return v


def _read_layer(r: _Reader, g: h5py.Group, in_shape: tuple[int, ...]) -> ExchangeLayer:
    kind = r.text(g, "type", s10=True)
    if kind not in _KINDS:
        raise r.fail(f"{g.name}/type is {kind!r}, expected one of {_KINDS}")
    shape = r.ints(g, "shape")
    if "qif" not in g:
        raise r.fail(f"missing group {g.name}/qif (the qifsim extension)")
    q = g["qif"]
    if r.integer(q, "version") != QIF_EXT_VERSION:
        raise r.fail(f"{q.name}/version is not {QIF_EXT_VERSION}")
    role, neuron = r.text(q, "role"), r.text(q, "neuron")
    if role not in _ROLES or neuron not in ("qif", "lif", "none"):
        raise r.fail(f"{q.name}: invalid role/neuron {role!r}/{neuron!r}")
    layer = ExchangeLayer(kind, role, neuron, shape)
    if kind == "flatten":
        if shape != (int(np.prod(in_shape)),):
            raise r.fail(f"{g.name}: flatten of {in_shape} cannot have shape {shape}")
        return layer
    if kind == "pool":
        layer.kernel_size = r.ints(q, "kernel_size", 2)
        kh, kw = layer.kernel_size
        if len(in_shape) != 3 or min(kh, kw) < 1:
            raise r.fail(f"{g.name}: invalid pool on {in_shape} with kernel {layer.kernel_size}")
        if shape != (in_shape[0], in_shape[1] // kh, in_shape[2] // kw):
            raise r.fail(f"{g.name}: pool output shape {shape} inconsistent with its input")
        layer.stride = layer.kernel_size
        return layer
    out = shape[0]
    if kind == "dense":
        if len(in_shape) != 1 or len(shape) != 1:
            raise r.fail(f"{g.name}: dense layer needs flat input/output, got {in_shape}->{shape}")
        wshape: tuple[int, ...] = (out, in_shape[0])
    else:
        if len(in_shape) != 3 or len(shape) != 3:
            raise r.fail(f"{g.name}: conv layer needs (C, H, W) maps, got {in_shape}->{shape}")
        layer.stride = r.ints(g, "stride", 2)
        layer.padding = r.ints(g, "padding", 2)
        layer.dilation = r.ints(g, "dilation", 2)
        layer.groups = r.integer(g, "groups")
        w = r.get(g, "weight")
        if w.ndim != 5 or w.shape[-1] != 1 or layer.groups < 1:
            raise r.fail(f"{g.name}/weight must be (out, in/groups, kH, kW, 1), got {w.shape}")
        wshape = (out, in_shape[0] // layer.groups, *w.shape[2:4])
        expect = tuple(
            (n + 2 * p - d * (k - 1) - 1) // st + 1
            for n, p, d, k, st in zip(
                in_shape[1:],
                layer.padding,
                layer.dilation,
                w.shape[2:4],
                layer.stride,
                strict=True,
            )
        )
        if in_shape[0] % layer.groups or out % layer.groups or shape[1:] != expect:
            raise r.fail(
                f"{g.name}: conv geometry inconsistent (input {in_shape}, groups {layer.groups}, "
                f"kernel {w.shape[2:4]}) with output shape {shape}, expected {(out, *expect)}"
            )
    file_wshape = (*wshape, 1) if kind == "conv" else wshape
    layer.weight_exponent = r.integer(q, "weight_exponent")
    layer.scale = r.real(q, "scale")
    layer.quant_error = r.real(q, "quant_error")
    if not 0 <= layer.weight_exponent <= EXP_MAX or not layer.scale > 0:
        raise r.fail(f"{q.name}: weight_exponent must be in [0, {EXP_MAX}] and scale > 0")
    weight = r.array(g, "weight", file_wshape, integral=True).reshape(wshape)
    layer.weight_mant = weight / 2.0**layer.weight_exponent
    if layer.weight_mant.size and (
        layer.weight_mant.min() < MANT_MIN
        or layer.weight_mant.max() > MANT_MAX
        or np.any(layer.weight_mant % 2)
    ):
        raise r.fail(
            f"{g.name}/weight must be m * 2**weight_exponent with m even integers in [-256, 254]"
        )
    layer.bias_mant = r.array(g, "bias", (out,), integral=True)
    if layer.bias_mant.size and not (
        BIAS_MANT_MIN <= layer.bias_mant.min() <= layer.bias_mant.max() <= BIAS_MANT_MAX
    ):
        raise r.fail(f"{g.name}/bias mantissas must lie in [{BIAS_MANT_MIN}, {BIAS_MANT_MAX}]")
    layer.weight_float = r.array(q, "weight_float", file_wshape, integral=False).reshape(wshape)
    layer.bias_float = r.array(q, "bias_float", (out,), integral=False)
    if role == "hidden":
        if neuron not in ("qif", "lif"):
            raise r.fail(f"{q.name}: a hidden layer needs neuron qif or lif, got {neuron!r}")
        layer.params["u_th"] = r.real(q, "u_th")
        layer.fixed["vth_mant"] = r.integer(q, "vth_mant")
        if not 1 <= layer.fixed["vth_mant"] <= VTH_MANT_MAX:
            raise r.fail(f"{q.name}/vth_mant must be in [1, {VTH_MANT_MAX}]")
        if neuron == "qif":
            for key in ("a", "u_rest", "u_c"):
                layer.params[key] = r.real(q, key)
            layer.params["form"] = r.text(q, "form")
            if layer.params["form"] not in ("paper", "euler"):
                raise r.fail(f"{q.name}/form must be 'paper' or 'euler'")
            for key in ("u_rest_int", "u_c_int", "a_mant", "a_shift"):
                layer.fixed[key] = r.integer(q, key)
            fx = layer.fixed
            if not 1 <= fx["a_mant"] <= A_MANT_MAX or not 0 <= fx["a_shift"] <= A_SHIFT_MAX:
                raise r.fail(
                    f"{q.name}: a_mant must be in [1, {A_MANT_MAX}] and a_shift in "
                    f"[0, {A_SHIFT_MAX}]"
                )
        else:
            layer.params["beta"] = r.real(q, "beta")
            layer.fixed["dv"] = r.integer(q, "dv")
            if not 0 <= layer.fixed["dv"] <= 4096:
                raise r.fail(f"{q.name}/dv must be in [0, 4096]")
            if "neuron" not in g:
                raise r.fail(f"missing group {g.name}/neuron (netx CUBA parameters)")
    return layer


def read_exchange(path: str | Path) -> ExchangeFile:
    """Read and validate an exchange file.

    Raises:
        ExchangeFormatError: not HDF5 / truncated, wrong ``format`` or
        ``format_version``, checksum mismatch (corrupted or edited), or a missing
        or inconsistent key (the message names it).
        FileNotFoundError: ``path`` does not exist.
    """
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"exchange file {path} does not exist")
    r = _Reader(path)
    try:
        f = h5py.File(path, "r")
    except OSError as err:
        raise ExchangeFormatError(
            f"{path}: cannot be opened as HDF5 ({err}); the file is truncated or corrupt — "
            "re-export it with `qifsim export`"
        ) from err
    try:
        with f:
            return _read_open(r, f)
    except (OSError, KeyError, RuntimeError) as err:  # h5py errors on damaged content
        raise r.fail(f"unreadable content ({type(err).__name__}: {err})") from err


def _read_open(r: _Reader, f: h5py.File) -> ExchangeFile:
    fmt = f.attrs.get("format")
    fmt = fmt.decode("utf-8", "replace") if isinstance(fmt, bytes) else fmt
    if not isinstance(fmt, str) or fmt != FORMAT:
        raise r.fail(f"attribute format is {fmt!r}, expected {FORMAT!r}")
    version = f.attrs.get("format_version")
    version = version.item() if isinstance(version, np.generic) else version
    if not isinstance(version, int) or version != FORMAT_VERSION:
        raise ExchangeFormatError(
            f"{r.path}: format_version {version!r} is not supported; this qifsim reads version "
            f"{FORMAT_VERSION} — re-export the model with this qifsim (`qifsim export`)"
        )
    stored = f.attrs.get("checksum")
    stored = stored.decode("utf-8", "replace") if isinstance(stored, bytes) else stored
    actual = checksum(f)
    if not isinstance(stored, str) or stored != actual:
        raise ExchangeFormatError(
            f"{r.path}: checksum mismatch (stored {str(stored)[:16]}..., computed "
            f"{actual[:16]}...): the file was corrupted or edited after export; re-export it"
        )
    meta = f["meta"] if "meta" in f else None
    if meta is None or "layer" not in f:
        raise r.fail("missing group /meta or /layer")
    input_shape = r.ints(meta, "input_shape")
    if len(input_shape) not in (1, 3) or min(input_shape) < 1:
        raise r.fail(f"/meta/input_shape {input_shape} must be (C, H, W) or (N,)")
    root = f["layer"]
    n = len(root)
    if sorted(root.keys(), key=lambda k: int(k) if k.isdigit() else -1) != [
        str(i) for i in range(n)
    ]:
        raise r.fail(f"/layer must hold groups 0..{n - 1}, got {sorted(root.keys())}")
    if r.text(root["0"], "type", s10=True) != "input" or r.ints(root["0"], "shape") != input_shape:
        raise r.fail("/layer/0 must be the input layer with shape = /meta/input_shape")
    layers, shape = [], input_shape
    for i in range(1, n):
        layer = _read_layer(r, root[str(i)], shape)
        layers.append(layer)
        shape = layer.shape
    if not layers or layers[-1].role != "readout":
        raise r.fail("the last layer must be the readout")
    if any(layer.role == "readout" for layer in layers[:-1]):
        raise r.fail("only the last layer may be the readout")
    ex = ExchangeFile(
        qifsim_version=r.text(meta, "qifsim_version"),
        model_name=r.text(meta, "model_name"),
        input_shape=input_shape,
        time_steps=r.integer(meta, "time_steps"),
        input_scale=r.real(meta, "input_scale"),
        num_classes=r.integer(meta, "num_classes"),
        layers=layers,
        checksum=actual,
    )
    if ex.num_classes != layers[-1].shape[0] or ex.time_steps < 1 or not ex.input_scale > 0:
        raise r.fail("inconsistent /meta (num_classes, time_steps >= 1, input_scale > 0)")
    return ex
