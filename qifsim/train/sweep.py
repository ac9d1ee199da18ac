"""Hyperparameter sweeps over neuron parameters (QIF paper, Appendix F), resumable.

:func:`run_sweep` expands a sweep preset's grid for one neuron, trains every
point with :func:`qifsim.train.fit` into ``out_dir/<point-id>/`` and collects

* ``out_dir/summary-<neuron>.csv`` and ``.json``: one row per point (parameters,
  final and best test accuracy, ``excluded`` flag and why) and the statistics
  (mean, std, min, max) of the final test accuracy over the points *not*
  excluded (Appendix F leaves parameter sets with ``a > 0.4`` out of Table 6;
  they are still trained and recorded);
* ``out_dir/sweep-<neuron>.png``: accuracy heatmaps over the grid.

QIF and LIF sweeps can share one ``out_dir`` (point folders start with the neuron).

A finished point leaves ``out_dir/<point-id>/point.json``; a rerun with
``resume=True`` skips it and resumes an unfinished one from the trainer's own
checkpoint, so an interrupted sweep is continued by running it again.
"""

from __future__ import annotations

import csv
import io
import itertools
import json
import math
import operator
import statistics
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..atomic import atomic_path, write_json_atomic
from .presets import Overrides, Preset, config_from_preset, read_preset

POINT_FILE = "point.json"
_OPS: dict[str, Callable[[float, float], bool]] = {
    ">": operator.gt,
    ">=": operator.ge,
    "<": operator.lt,
    "<=": operator.le,
    "==": operator.eq,
}
# Fields that may change between a run and its resumption (as for the trainer's resume).
RESUMABLE_CHANGES = ("name", "data_root", "num_workers")


@dataclass(frozen=True)
class SweepPoint:
    """One grid point: ``params`` (the swept values) and the full ``neuron_params``."""

    id: str
    neuron: str
    params: dict[str, float]
    neuron_params: dict[str, Any]
    excluded: bool
    exclusion: str | None


def _fmt(value: float) -> str:
    return f"{value:g}"


def point_id(neuron: str, params: Mapping[str, float]) -> str:
    """Folder name of a point, e.g. ``qif-u_th0.2-u_c0.4-a0.6``."""
    return "-".join([neuron, *(f"{k}{_fmt(v)}" for k, v in params.items())])


def exclusion_reason(params: Mapping[str, float], rules: list[dict[str, Any]]) -> str | None:
    """The first rule (``{"param", "op", "value"}``) that ``params`` meets, in words."""
    for rule in rules:
        name, op, limit = rule["param"], rule["op"], float(rule["value"])
        if op not in _OPS:
            raise ValueError(f"exclusion rule {rule}: op must be one of {list(_OPS)}")
        if name in params and _OPS[op](float(params[name]), limit):
            why = f" ({rule['why']})" if rule.get("why") else ""
            return f"{name} {op} {_fmt(limit)}{why}"
    return None


def expand_grid(preset: Preset, neuron: str = "qif") -> list[SweepPoint]:
    """All grid points of a sweep preset for ``neuron``, in the grid's nested order."""
    if preset.kind != "sweep" or not preset.grid:
        raise ValueError(f"preset {preset.name!r} is not a sweep preset (kind {preset.kind!r})")
    if neuron not in preset.grid:
        raise ValueError(
            f"preset {preset.name!r} has no grid for neuron {neuron!r}; "
            f"valid neurons: {', '.join(preset.grid)}"
        )
    axes = preset.grid[neuron]
    fixed = dict(preset.fixed_params.get(neuron, {}))
    points = []
    for values in itertools.product(*axes.values()):
        params = {k: float(v) for k, v in zip(axes, values, strict=True)}
        reason = exclusion_reason(params, preset.exclude)
        points.append(
            SweepPoint(
                id=point_id(neuron, params),
                neuron=neuron,
                params=params,
                neuron_params={**fixed, **params},
                excluded=reason is not None,
                exclusion=reason,
            )
        )
    return points


def point_config(preset: Preset, point: SweepPoint, overrides: Overrides = ()):
    """The ``TrainConfig`` of one point: the preset's base plus overrides plus the point."""
    overrides = dict(overrides) if isinstance(overrides, Mapping) else list(overrides)
    base = config_from_preset(preset, overrides)
    values = base.to_dict()
    values.update(
        neuron=point.neuron,
        neuron_params=dict(point.neuron_params),
        name=f"{preset.name}-{point.id}",
    )
    return type(base).from_dict(values)


def accuracy_of(result: Mapping[str, Any]) -> float | None:
    """The final test accuracy (``test_acc``) of a ``fit`` result; None if it has none."""
    value = result.get("test_acc")
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return float(value)
    return None


def statistics_of(rows: list[dict[str, Any]]) -> dict[str, Any]:
    """Mean, std (sample), min, max of the accuracy over rows not excluded."""
    values = [r["accuracy"] for r in rows if not r["excluded"] and r["accuracy"] is not None]
    n_excluded = sum(1 for r in rows if r["excluded"])
    stats: dict[str, Any] = {"n_included": len(values), "n_excluded": n_excluded}
    stats["mean"] = statistics.fmean(values) if values else None
    stats["std"] = statistics.stdev(values) if len(values) > 1 else None
    stats["min"] = min(values) if values else None
    stats["max"] = max(values) if values else None
    return stats


def _run_point(
    preset: Preset,
    point: SweepPoint,
    point_dir: Path,
    overrides: Overrides,
    resume: bool,
    progress: bool,
    device: Any,
    fit_fn: Callable[..., dict],
) -> tuple[dict[str, Any], bool]:
    """Train one point (or reuse its finished result); return ``(row, reused)``."""
    config = point_config(preset, point, overrides)
    marker = point_dir / POINT_FILE
    if resume and marker.is_file():
        done = json.loads(marker.read_text(encoding="utf-8"))
        if _comparable(done.get("config", {})) != _comparable(_jsonable(config.to_dict())):
            raise ValueError(
                f"{point_dir} holds a finished run of a different configuration; "
                "use another --out folder or resume=False to retrain"
            )
        return done["row"], True
    marker.unlink(missing_ok=True)  # retraining: the old result no longer describes the folder
    result = fit_fn(
        config, point_dir, resume=resume, progress=progress, device=device, overwrite=not resume
    )
    best = result.get("best_test_acc")
    row = {
        "id": point.id,
        "neuron": point.neuron,
        **{f"param_{k}": v for k, v in point.params.items()},
        "accuracy": accuracy_of(result),
        "best_accuracy": float(best) if isinstance(best, (int, float)) else None,
        "excluded": point.excluded,
        "exclusion": point.exclusion or "",
    }
    write_json_atomic(
        marker, {"config": _jsonable(config.to_dict()), "row": row, "result": _jsonable(result)}
    )
    return row, False


def _comparable(config: Mapping[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in config.items() if k not in RESUMABLE_CHANGES}


def _jsonable(obj: Any) -> Any:
    if isinstance(obj, float):
        return obj if math.isfinite(obj) else None
    if isinstance(obj, (str, int, bool)) or obj is None:
        return obj
    if isinstance(obj, Mapping):
        return {str(k): _jsonable(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_jsonable(v) for v in obj]
    if isinstance(obj, Path):
        return str(obj)
    try:
        return float(obj)
    except (TypeError, ValueError):
        return repr(obj)


def plot_sweep(summary: Mapping[str, Any], path: str | Path) -> Path | None:
    """Accuracy heatmaps of a sweep summary (matplotlib, Agg); None if nothing to plot.

    Two swept parameters: one heatmap. Three: one heatmap of the first two per
    value of the third (titled "excluded" where its points are left out of the
    statistics). One: a line plot. Points not run (``limit``) stay blank.
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np

    grid = dict(summary["grid"])
    names = list(grid)
    acc = {
        tuple(r[f"param_{k}"] for k in names): r["accuracy"]
        for r in summary["points"]
        if r["accuracy"] is not None
    }
    if not acc:
        return None
    excluded = {tuple(r[f"param_{k}"] for k in names) for r in summary["points"] if r["excluded"]}
    title = f"{summary['preset']}, {summary['neuron'].upper()}: test accuracy"
    if len(names) == 1:
        fig, ax = plt.subplots(figsize=(5, 3.5), layout="constrained")
        xs = [float(v) for v in grid[names[0]]]
        ax.plot(xs, [acc.get((x,), np.nan) for x in xs], "o-")
        ax.set_xlabel(names[0])
        ax.set_ylabel("test accuracy")
        ax.set_title(title, fontsize=9)
    else:
        row_name, col_name = names[0], names[1]
        panels = [()] if len(names) == 2 else [(float(v),) for v in grid[names[2]]]
        rows_v = [float(v) for v in grid[row_name]]
        cols_v = [float(v) for v in grid[col_name]]
        fig, axes = plt.subplots(
            1,
            len(panels),
            figsize=(3.0 * len(panels) + 1.2, 3.6),
            squeeze=False,
            layout="constrained",
        )
        low, high = min(acc.values()), max(acc.values())
        if high - low < 1e-6:
            low, high = low - 0.01, high + 0.01
        image = None
        for k, (ax, extra) in enumerate(zip(axes[0], panels, strict=True)):
            data = np.array(
                [[acc.get((r, c, *extra), np.nan) for c in cols_v] for r in rows_v], dtype=float
            )
            image = ax.imshow(data, origin="lower", vmin=low, vmax=high, cmap="viridis")
            ax.set_xticks(range(len(cols_v)), [f"{v:g}" for v in cols_v])
            ax.set_yticks(range(len(rows_v)), [f"{v:g}" for v in rows_v])
            ax.set_xlabel(col_name)
            if k == 0:
                ax.set_ylabel(row_name)
            for i, j in itertools.product(range(len(rows_v)), range(len(cols_v))):
                if not math.isnan(data[i, j]):
                    shade = "white" if (data[i, j] - low) / (high - low) < 0.5 else "black"
                    ax.text(
                        j, i, f"{data[i, j]:.2f}", ha="center", va="center", fontsize=6, color=shade
                    )
            if extra:
                dropped = any((r, c, *extra) in excluded for r in rows_v for c in cols_v)
                label = f"{names[2]} = {extra[0]:g}" + (" (excluded)" if dropped else "")
                ax.set_title(label, fontsize=9)
        fig.suptitle(title, fontsize=10)
        if image is not None:
            fig.colorbar(image, ax=list(axes[0]), shrink=0.8, label="test accuracy")
    path = Path(path)
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", dpi=110)
    plt.close(fig)
    return path


def write_csv(path: Path, rows: list[dict[str, Any]]) -> Path:
    """Rows as CSV (columns in first-seen order), written atomically."""
    columns: list[str] = []
    for row in rows:
        columns.extend(k for k in row if k not in columns)
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=columns, lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)
    with atomic_path(path) as tmp:
        tmp.write_text(buffer.getvalue(), encoding="utf-8")
    return path


def run_sweep(
    preset: str | Path | Preset,
    out_dir: str | Path,
    neuron: str = "qif",
    limit: int | None = None,
    resume: bool = True,
    overrides: Overrides = (),
    progress: bool = True,
    device: Any = None,
    plot: bool = True,
    fit_fn: Callable[..., dict] | None = None,
) -> dict[str, Any]:
    """Train the grid of a sweep preset for ``neuron``; write and return the summary.

    Args:
        preset: sweep preset name, ``.json`` path or parsed :class:`Preset`.
        out_dir: one sub-folder per point plus ``summary-<neuron>.{json,csv}`` and
            ``sweep-<neuron>.png``.
        neuron: ``"qif"`` or ``"lif"`` (which grid to run).
        limit: train only the first ``limit`` points (in grid order).
        resume: skip finished points, resume unfinished ones from their last checkpoint;
            False retrains every point from scratch (``fit(..., overwrite=True)``).
        overrides: TrainConfig overrides applied to every point (dict or ``key=value``).
        progress: passed to ``fit`` (and prints one line per point).
        device: passed to ``fit``.
        plot: write ``sweep-<neuron>.png``.
        fit_fn: the trainer (default :func:`qifsim.train.fit`), called as
            ``fit_fn(config, dir, resume=, progress=, device=, overwrite=)``.

    Returns:
        ``{"preset", "neuron", "points": [rows], "statistics": {...}, "files": {...}}``.
    """
    if not isinstance(preset, Preset):
        preset = read_preset(preset)
    if limit is not None and limit < 1:
        raise ValueError(f"limit must be >= 1, got {limit}")
    if fit_fn is None:
        from . import fit as fit_fn
    overrides = dict(overrides) if isinstance(overrides, Mapping) else list(overrides)
    points = expand_grid(preset, neuron)
    n_grid = len(points)
    points = points[:limit] if limit else points
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    rows, reused = [], 0
    for i, point in enumerate(points, 1):
        if progress:
            mark = " (excluded from statistics)" if point.excluded else ""
            print(f"[{i}/{len(points)}] {point.id}{mark}", flush=True)
        row, was_done = _run_point(
            preset, point, out_dir / point.id, overrides, resume, progress, device, fit_fn
        )
        reused += was_done
        rows.append(row)
    summary = {
        "preset": preset.name,
        "source": preset.source,
        "neuron": neuron,
        "grid": preset.grid[neuron],
        "exclude": preset.exclude,
        "overrides": overrides if isinstance(overrides, dict) else list(overrides),
        "n_grid_points": n_grid,
        "n_run": len(rows),
        "n_reused": reused,
        "points": rows,
        "statistics": statistics_of(rows),
        "files": {"json": f"summary-{neuron}.json", "csv": f"summary-{neuron}.csv"},
    }
    write_csv(out_dir / summary["files"]["csv"], rows)
    if plot:
        png = plot_sweep(summary, out_dir / f"sweep-{neuron}.png")
        if png is not None:
            summary["files"]["png"] = png.name
    write_json_atomic(out_dir / summary["files"]["json"], _jsonable(summary))
    return summary
