"""Export trained qifsim networks: the Lava exchange file, Loihi quantisation, NIR.

* :func:`export_lava`: walk the model (:mod:`.graph`: tdBN folded, pooling,
  flatten, readout), quantise it to Loihi's constraints (:mod:`.quantize`) and
  write the exchange file (:mod:`.exchange`, ``hardware/lava/EXCHANGE.md``);
* :func:`read_exchange`: read and validate one (:class:`ExchangeFormatError`);
* :func:`run_reference` (:mod:`.reference`): the Lava semantics in torch, in
  float64 (``"float"``) or bit-exact integers (``"fixed"``), without Lava delays;
* :func:`to_nir` / :func:`from_nir` (:mod:`.nir`): NIR graphs for LIF networks.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path

from torch import nn

from .exchange import (
    ExchangeFile,
    ExchangeFormatError,
    ExchangeLayer,
    build_exchange,
    read_exchange,
    write_exchange,
)
from .graph import ExportError, ExportLayer, walk
from .quantize import LayerQuant, quantize_layers
from .reference import ReferenceResult, run_reference

__all__ = [
    "ExchangeFile",
    "ExchangeFormatError",
    "ExchangeLayer",
    "ExportError",
    "ExportLayer",
    "ExportReport",
    "LayerQuant",
    "ReferenceResult",
    "build_exchange",
    "export_lava",
    "from_nir",
    "model_exchange",
    "read_exchange",
    "run_reference",
    "to_nir",
    "walk",
    "write_exchange",
]


@dataclass
class ExportReport:
    """What :func:`export_lava` wrote.

    Attributes:
        path: the exchange file.
        checksum: its SHA-256 (hex).
        layers: per layer: ``index`` (``/layer/{index}``), ``kind``, ``role``, ``neuron``,
            ``shape``, and for synaptic layers the quantisation report
            (:meth:`~qifsim.export.quantize.LayerQuant.report`).
        seconds: wall time of the export.
    """

    path: Path
    checksum: str
    layers: list[dict] = field(default_factory=list)
    seconds: float = 0.0

    def table(self) -> str:
        """Human-readable per-layer table (quantisation error, exponent, threshold mantissa)."""
        lines = [
            f"{'#':>2} {'type':7} {'role':8} {'neuron':6} {'shape':>14} {'exp':>3} "
            f"{'vth_mant':>8} {'w err':>8} {'b err':>8} {'24-bit':>7}"
        ]
        for row in self.layers:
            shape = "x".join(str(s) for s in row["shape"])
            if "quant_error" in row:
                sat = "sat?" if row["saturation_possible"] else "ok"
                lines.append(
                    f"{row['index']:>2} {row['kind']:7} {row['role']:8} {row['neuron']:6} "
                    f"{shape:>14} {row['weight_exponent']:>3} {row.get('vth_mant', '-'):>8} "
                    f"{row['quant_error']:8.2e} {row['bias_error']:8.2e} {sat:>7}"
                )
            else:
                lines.append(
                    f"{row['index']:>2} {row['kind']:7} {row['role']:8} {row['neuron']:6} "
                    f"{shape:>14}"
                )
        if any(row.get("saturation_possible") for row in self.layers):
            lines.append(
                "24-bit: 'sat?' = the worst case (every input at its maximum at once) could "
                "exceed the 24-bit state; the largest |V| actually reached is what "
                "`qifsim export --check N` measures"
            )
        return "\n".join(lines)


def _model_name(model: nn.Module) -> str:
    return str(getattr(model, "name", "") or type(model).__name__)


def model_exchange(
    model: nn.Module,
    input_shape: tuple[int, ...] | None = None,
    *,
    time_steps: int | None = None,
    input_scale: float = 1.0,
    max_input: float = 1.0,
) -> tuple[ExchangeFile, list[LayerQuant | None], list[ExportLayer]]:
    """The in-memory exchange form of ``model`` (what :func:`export_lava` writes).

    Returns ``(exchange, quantisation per layer, walked layers)``.
    """
    from .. import __version__

    if input_shape is None:
        input_shape = getattr(model, "input_shape", None)
        if input_shape is None:
            raise ExportError(
                f"{type(model).__name__} has no input_shape attribute; pass input_shape=(C, H, W)"
            )
    if time_steps is None:
        time_steps = int(getattr(model, "default_steps", 0) or 0)
        if time_steps < 1:
            raise ExportError("pass time_steps=T (the model has no default_steps)")
    if int(time_steps) < 1:
        raise ExportError(f"time_steps must be >= 1, got {time_steps}")
    layers = walk(model, tuple(input_shape))
    quant = quantize_layers(layers, input_scale, max_input, int(time_steps))
    exchange = build_exchange(
        layers,
        quant,
        model_name=_model_name(model),
        input_shape=tuple(input_shape),
        time_steps=int(time_steps),
        input_scale=input_scale,
        qifsim_version=__version__,
    )
    return exchange, quant, layers


def export_lava(
    model: nn.Module,
    path: str | Path,
    input_shape: tuple[int, ...] | None = None,
    *,
    time_steps: int | None = None,
    input_scale: float = 1.0,
    max_input: float = 1.0,
) -> ExportReport:
    """Write ``model`` as a Lava exchange file (``hardware/lava/EXCHANGE.md``).

    Args:
        model: a trained qifsim model (QIF or LIF; eval-mode semantics: tdBN
            running statistics, dropout off).
        path: the ``.h5`` file to write (atomically).
        input_shape: one input frame ``(C, H, W)`` (default: ``model.input_shape``).
        time_steps: ``T`` (default: ``model.default_steps``).
        input_scale: fixed-point inputs are ``round(frames * input_scale)``
            (1 for event-count frames; a power of two for graded inputs).
        max_input: largest input value (float units), for the 24-bit check of
            the first layer (1 for spike inputs, the largest event count for
            count frames).

    Returns:
        :class:`ExportReport` with the per-layer quantisation errors.

    Raises:
        ExportError: a module the format cannot represent (named), bad arguments.
    """
    start = time.perf_counter()
    exchange, quant, _ = model_exchange(
        model, input_shape, time_steps=time_steps, input_scale=input_scale, max_input=max_input
    )
    digest = write_exchange(path, exchange)
    rows = []
    for i, (layer, q) in enumerate(zip(exchange.layers, quant, strict=True), start=1):
        row = {
            "index": i,
            "kind": layer.kind,
            "role": layer.role,
            "neuron": layer.neuron,
            "shape": list(layer.shape),
        }
        if q is not None:
            row.update(q.report())
        rows.append(row)
    return ExportReport(Path(path), digest, rows, time.perf_counter() - start)


def to_nir(model: nn.Module, input_shape=None, **kwargs):
    """NIR graph of ``model``: :func:`qifsim.export.nir.to_nir` (same arguments and defaults)."""
    from .nir import to_nir as _to_nir

    return _to_nir(model, input_shape, **kwargs)


def from_nir(graph, **kwargs):
    """Restore a qifsim model from a NIR graph written by :func:`to_nir`."""
    from .nir import from_nir as _from_nir

    return _from_nir(graph, **kwargs)
