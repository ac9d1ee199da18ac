"""Training presets: the paper's setups as readable JSON files, loaded into a ``TrainConfig``.

One file per preset in ``qifsim/train/presets/`` (shipped inside the wheel)::

    {
      "description": "one line, shown by `qifsim presets`",
      "source": "where the numbers come from, e.g. QIF paper, Table 5",
      "kind": "train" | "sweep",
      "notes": "optional remarks",
      "config": {TrainConfig fields; the ones left out keep TrainConfig's defaults},
      # sweep presets only:
      "grid": {"qif": {"u_th": [...], ...}, "lif": {...}},
      "fixed_params": {"qif": {...}, "lif": {...}},
      "exclude": [{"param": "a", "op": ">", "value": 0.4, "why": "..."}]
    }

:func:`load_preset` reads one (by name or path), applies overrides and returns a
validated ``TrainConfig``. Overrides are a dict or ``"key=value"`` strings whose
values are parsed by the field's type: ``epochs=3``, ``lr=1e-3``,
``betas=0.9,0.999``, ``input_size=none``, ``detach_reset=true``,
``neuron_params={"a": 0.3}`` (JSON) or one entry of a dict field,
``neuron_params.a=0.3``.

Changing the neuron: ``neuron=lif`` on a QIF preset sets only the neuron, with
that neuron's default (paper) parameters unless ``neuron_params`` is given too,
and renames the run (``...-qif`` -> ``...-lif``). It does not apply other
per-neuron differences of the paper: for those use the LIF preset (the
ResNet-19 LIF presets carry the paper's lr 1e-3, see :func:`sibling_preset`).
"""

from __future__ import annotations

import dataclasses
import functools
import importlib.resources
import json
import types
import typing
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

PRESET_KINDS = ("train", "sweep")
DOCUMENT_KEYS = (
    "description",
    "source",
    "kind",
    "notes",
    "config",
    "grid",
    "fixed_params",
    "exclude",
)
NEURONS = ("qif", "lif")
_NONE_WORDS = ("none", "null")
_TRUE_WORDS = ("true", "yes", "on", "1")
_FALSE_WORDS = ("false", "no", "off", "0")

Overrides = Mapping[str, Any] | Iterable[str]


@dataclass(frozen=True)
class Preset:
    """One preset file, parsed (not yet a ``TrainConfig``).

    Attributes:
        name: the file stem (``cifar10-resnet19-qif``).
        description: one line for listings.
        source: where the values come from.
        kind: ``"train"`` or ``"sweep"``.
        config: the ``TrainConfig`` fields the file sets.
        notes: optional remarks ("" if none).
        grid: sweep only: neuron -> parameter -> values.
        fixed_params: sweep only: neuron -> parameters every grid point shares.
        exclude: sweep only: rules marking points left out of the statistics.
        path: the file it was read from.
    """

    name: str
    description: str
    source: str
    kind: str
    config: dict[str, Any] = field(hash=False, compare=False)
    notes: str = ""
    grid: dict[str, dict[str, list[float]]] | None = field(default=None, hash=False, compare=False)
    fixed_params: dict[str, dict[str, Any]] = field(default_factory=dict, hash=False, compare=False)
    exclude: list[dict[str, Any]] = field(default_factory=list, hash=False, compare=False)
    path: Path | None = None


def preset_dir() -> Path:
    """The folder holding the preset files (inside the installed package)."""
    package = __name__.rpartition(".")[0]
    return Path(str(importlib.resources.files(package).joinpath("presets")))


@functools.cache
def preset_names() -> tuple[str, ...]:
    """Names of the shipped presets, sorted."""
    return tuple(sorted(p.stem for p in preset_dir().glob("*.json")))


def read_preset(name_or_path: str | Path) -> Preset:
    """Parse a preset by name (see :func:`preset_names`) or from a ``.json`` path.

    Raises:
        ValueError: unknown name (listing the valid ones) or a malformed file.
        FileNotFoundError: a path that does not exist.
    """
    path = _resolve(name_or_path)
    try:
        doc = json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as err:
        raise ValueError(f"preset file {path} is not valid JSON: {err}") from err
    return _parse_document(doc, path)


def _resolve(name_or_path: str | Path) -> Path:
    text = str(name_or_path)
    if text in preset_names():
        return preset_dir() / f"{text}.json"
    candidate = Path(text).expanduser()
    if candidate.suffix == ".json" or candidate.parent != Path("."):
        if not candidate.is_file():
            raise FileNotFoundError(f"preset file not found: {candidate}")
        return candidate
    raise ValueError(f"unknown preset {text!r}; valid presets: {', '.join(preset_names())}")


def _parse_document(doc: Any, path: Path) -> Preset:
    if not isinstance(doc, dict):
        raise ValueError(f"preset file {path}: expected a JSON object at the top level")
    unknown = sorted(set(doc) - set(DOCUMENT_KEYS))
    if unknown:
        raise ValueError(
            f"preset file {path}: unknown keys {unknown}; valid keys: {', '.join(DOCUMENT_KEYS)}"
        )
    for key in ("description", "source", "config"):
        if key not in doc:
            raise ValueError(f"preset file {path}: missing {key!r}")
    kind = doc.get("kind", "train")
    if kind not in PRESET_KINDS:
        raise ValueError(f"preset file {path}: kind must be one of {PRESET_KINDS}, got {kind!r}")
    if not isinstance(doc["config"], dict):
        raise ValueError(f"preset file {path}: 'config' must be an object")
    grid = doc.get("grid")
    if kind == "sweep":
        _check_grid(grid, path)
    elif grid is not None:
        raise ValueError(f"preset file {path}: 'grid' is only allowed in sweep presets")
    return Preset(
        name=path.stem,
        description=str(doc["description"]),
        source=str(doc["source"]),
        kind=kind,
        config=dict(doc["config"]),
        notes=str(doc.get("notes", "")),
        grid=grid,
        fixed_params=dict(doc.get("fixed_params") or {}),
        exclude=list(doc.get("exclude") or []),
        path=path,
    )


def _check_grid(grid: Any, path: Path) -> None:
    if not isinstance(grid, dict) or not grid:
        raise ValueError(f"preset file {path}: a sweep needs 'grid': {{neuron: {{param: [...]}}}}")
    for neuron, axes in grid.items():
        if neuron not in NEURONS:
            raise ValueError(f"preset file {path}: grid neuron {neuron!r} not in {NEURONS}")
        if not isinstance(axes, dict) or not axes:
            raise ValueError(f"preset file {path}: grid[{neuron!r}] must map params to lists")
        for param, values in axes.items():
            ok = isinstance(values, list) and values
            if not ok or not all(isinstance(v, (int, float)) for v in values):
                raise ValueError(
                    f"preset file {path}: grid[{neuron!r}][{param!r}] must be a non-empty "
                    "list of numbers"
                )


# -- TrainConfig fields and value parsing ------------------------------------------


def _train_config_class() -> type:
    from .config import TrainConfig  # imported lazily (no import cycle)

    return TrainConfig


def config_fields() -> dict[str, Any]:
    """``TrainConfig`` field name -> type hint, in declaration order."""
    cls = _train_config_class()
    hints = typing.get_type_hints(cls)
    return {f.name: hints.get(f.name, Any) for f in dataclasses.fields(cls)}


def parse_value(text: str, hint: Any, key: str = "value") -> Any:
    """Parse the text ``text`` as a value of the type ``hint``.

    Handles ``int``, ``float``, ``bool``, ``str``, ``Literal[...]``, ``tuple[...]``
    (comma separated, brackets optional), ``dict`` (JSON) and ``X | None``
    (``none``/``null``). Raises ValueError naming ``key`` and the expected type.
    """
    text = text.strip()
    origin = typing.get_origin(hint)
    args = typing.get_args(hint)
    if origin in (typing.Union, types.UnionType):
        if type(None) in args and text.lower() in _NONE_WORDS:
            return None
        errors = []
        for member in (a for a in args if a is not type(None)):
            try:
                return parse_value(text, member, key)
            except ValueError as err:
                errors.append(str(err))
        raise ValueError(f"{key}: cannot parse {text!r} ({'; '.join(errors)})")
    if origin is typing.Literal:
        for choice in args:
            if str(choice) == text:
                return choice
        raise ValueError(f"{key} must be one of {list(args)}, got {text!r}")
    if hint is Any:
        return _parse_json_like(text)
    if hint is bool:
        low = text.lower()
        if low in _TRUE_WORDS:
            return True
        if low in _FALSE_WORDS:
            return False
        raise ValueError(f"{key} must be true or false, got {text!r}")
    if hint is int:
        try:
            return int(text)
        except ValueError:
            pass
        try:
            number = float(text)
        except ValueError:
            number = float("nan")
        if number.is_integer():
            return int(number)
        raise ValueError(f"{key} must be an integer, got {text!r}")
    if hint is float:
        try:
            return float(text)
        except ValueError:
            raise ValueError(f"{key} must be a number, got {text!r}") from None
    if hint is str:
        return text
    if hint is tuple or origin is tuple:
        return _parse_tuple(text, args, key)
    if hint is dict or origin is dict:
        value = _parse_json_like(text)
        if not isinstance(value, dict):
            raise ValueError(f'{key} must be a JSON object like {{"a": 0.3}}, got {text!r}')
        return value
    return _parse_json_like(text)


def _parse_tuple(text: str, args: tuple, key: str) -> tuple:
    inner = text.strip("()[] ")
    parts = [p.strip() for p in inner.split(",") if p.strip()] if inner else []
    if not args:
        return tuple(_parse_json_like(p) for p in parts)
    if len(args) == 2 and args[1] is Ellipsis:
        return tuple(parse_value(p, args[0], key) for p in parts)
    if len(parts) != len(args):
        raise ValueError(
            f"{key} takes {len(args)} comma-separated values (e.g. "
            f"{','.join(['1'] * len(args))}), got {text!r}"
        )
    return tuple(parse_value(p, a, key) for p, a in zip(parts, args, strict=True))


def _parse_json_like(text: str) -> Any:
    if text.lower() in _NONE_WORDS:
        return None
    try:
        return json.loads(text)
    except json.JSONDecodeError:
        return text


def split_assignments(items: Iterable[str]) -> dict[str, str]:
    """``["key=value", ...]`` -> ``{key: value}`` (the last one of a repeated key wins)."""
    out: dict[str, str] = {}
    for item in items:
        key, sep, value = str(item).partition("=")
        if not sep or not key.strip():
            raise ValueError(f"override {item!r} is not of the form key=value")
        out[key.strip()] = value
    return out


def apply_overrides(config: Mapping[str, Any], overrides: Overrides = ()) -> dict[str, Any]:
    """Return ``config`` (a dict of TrainConfig fields) with ``overrides`` applied.

    String values are parsed by the field's type (:func:`parse_value`); other
    values are taken as they are. ``field.key`` sets one entry of a dict field.

    Raises:
        ValueError: an unknown field (listing the valid ones) or an unparsable value.
    """
    hints = config_fields()
    pairs = dict(overrides) if isinstance(overrides, Mapping) else split_assignments(overrides)
    out = dict(config)
    for key, value in pairs.items():
        name, dot, sub = key.partition(".")
        if name not in hints:
            raise ValueError(f"unknown field {key!r}; valid fields: {', '.join(hints)}")
        if dot:
            if not sub or not _allows(hints[name], dict):
                raise ValueError(f"{key!r}: only dict fields take 'field.key=value'")
            entry = _parse_json_like(value.strip()) if isinstance(value, str) else value
            out[name] = {**(out.get(name) or {}), sub: entry}
        elif isinstance(value, str):
            out[name] = parse_value(value, hints[name], key)
        else:
            out[name] = value
    return out


def _allows(hint: Any, kind: type) -> bool:
    if hint is kind or typing.get_origin(hint) is kind:
        return True
    return any(_allows(a, kind) for a in typing.get_args(hint))


def _rename(name: Any, old_neuron: Any, neuron: Any) -> Any:
    """``x-qif`` -> ``x-lif`` (or ``x`` -> ``x-lif``) when the neuron changes."""
    if not isinstance(name, str) or not isinstance(old_neuron, str):
        return name
    suffix = f"-{old_neuron}"
    stem = name[: -len(suffix)] if name.endswith(suffix) else name
    return f"{stem}-{neuron}"


def _override_keys(overrides: Overrides) -> set[str]:
    pairs = dict(overrides) if isinstance(overrides, Mapping) else split_assignments(overrides)
    return {k.partition(".")[0] for k in pairs}


def build_config(fields_: Mapping[str, Any]):
    """``TrainConfig.from_dict(fields_)``; any validation failure is a ValueError.

    (``TrainConfig`` raises ``ConfigError``, a ValueError listing every problem.)
    """
    cls = _train_config_class()
    try:
        return cls.from_dict(dict(fields_))
    except (TypeError, KeyError) as err:
        raise ValueError(f"invalid training configuration: {err}") from err


def config_from_preset(preset: Preset, overrides: Overrides = ()):
    """The ``TrainConfig`` of a parsed :class:`Preset` with ``overrides`` applied."""
    overrides = overrides if isinstance(overrides, Mapping) else list(overrides)
    values = apply_overrides(preset.config, overrides)
    old_neuron = preset.config.get("neuron")
    if values.get("neuron") != old_neuron:
        # the preset's neuron parameters belong to the other neuron: start from none
        values = apply_overrides({**preset.config, "neuron_params": None}, overrides)
        if "name" not in _override_keys(overrides):
            values["name"] = _rename(values.get("name"), old_neuron, values.get("neuron"))
    return build_config(values)


def load_preset(name_or_path: str | Path, overrides: Overrides = ()):
    """Load a preset (name or ``.json`` path) as a validated ``TrainConfig``.

    For a sweep preset this is the base configuration its grid points modify.

    Raises:
        ValueError: unknown preset (lists the valid names), unknown field (lists
            the valid fields) or a bad value (names the field and the choices).
    """
    return config_from_preset(read_preset(name_or_path), overrides)


def sibling_preset(name: str, neuron: str) -> str | None:
    """The shipped preset for the same setup with ``neuron`` (``x-qif`` <-> ``x-lif``), if any."""
    for other in NEURONS:
        suffix = f"-{other}"
        if name.endswith(suffix):
            candidate = f"{name[: -len(suffix)]}-{neuron}"
            return candidate if candidate in preset_names() else None
    return None


def describe_presets() -> list[dict[str, str]]:
    """``[{"name", "kind", "description", "source"}]`` for every shipped preset."""
    rows = []
    for name in preset_names():
        p = read_preset(name)
        rows.append(
            {"name": name, "kind": p.kind, "description": p.description, "source": p.source}
        )
    return rows
