"""The dataset catalogue: one JSON file per event dataset, shipped inside the wheel.

The files live in the top-level ``datasets/`` folder (``datasets/README.md``
documents the schema) and are read through the package ``qifsim._catalogue``.
``load_catalogue()`` parses them into frozen :class:`DatasetInfo` records;
``dataset_info(name)`` returns one.
"""

from __future__ import annotations

import functools
import importlib.resources
import json
from dataclasses import dataclass, field
from typing import Any

SCHEMA_VERSION = 1
SPLIT_RULES = ("folders", "per-class-ratio", "trial-lists")
COUNT_CHECKS = ("exact", "classes-present", "trial-lists")


@dataclass(frozen=True)
class DatasetInfo:
    """One catalogue entry (all fields come from ``datasets/<name>.json``).

    Attributes:
        name: catalogue name, e.g. ``"cifar10-dvs"``.
        title: display name, e.g. ``"CIFAR10-DVS"``.
        description, citation, url, paper_url, license: where the data comes from;
            ``url`` is the official page to download it from (no automatic download).
        sensor_size: ``(W, H, 2)`` in pixels; the nominal maximum where sizes vary
            (see ``sensor_note``).
        classes: class names in label order (label ``k`` is ``classes[k]``).
        raw_format: reader format name for ``qifsim.events.io.read_events``.
        raw_options: default reader options (e.g. ``{"orientation": "jaer"}``).
        raw_suffix: file name suffix of one recording, e.g. ``".bin"``.
        root_folder: folder the archive unpacks to inside the root ("" if none).
        layout: split -> relative layout of the raw files (for messages).
        setup: how to lay the downloaded archives out in the root.
        split_rule: ``"folders"``, ``"per-class-ratio"`` or ``"trial-lists"``.
        split_official: whether the split is the dataset's own.
        train_ratio: default train fraction per class (per-class-ratio rule only).
        split_folders: split -> folder (folders rule) or trial-list file (trial-lists rule).
        split_description: the split rule in words.
        count_check: how ``strict=True`` checks a root (see ``datasets/README.md``).
        expected_files: ``{"train", "test", "total"}`` -> raw file count or ``None``.
        expected_samples: ``{"train", "test"}`` -> sample count or ``None``.
        per_class_files: split (or ``"all"``) -> class -> file count, or ``None``.
        paper: the QIF paper's preprocessing and training row (``paper["used"]``
            says whether the paper used the dataset).
        raw: the whole parsed JSON document.
    """

    name: str
    title: str
    description: str
    citation: str
    url: str
    paper_url: str
    license: str
    sensor_size: tuple[int, int, int]
    sensor_note: str
    classes: tuple[str, ...]
    class_note: str
    raw_format: str
    raw_options: dict[str, Any] = field(hash=False, compare=False)
    raw_suffix: str
    root_folder: str
    layout: dict[str, str] = field(hash=False, compare=False)
    setup: str
    split_rule: str
    split_official: bool
    train_ratio: float | None
    split_folders: dict[str, str] = field(hash=False, compare=False)
    split_description: str
    count_check: str
    expected_files: dict[str, int | None] = field(hash=False, compare=False)
    expected_samples: dict[str, int | None] = field(hash=False, compare=False)
    per_class_files: dict[str, dict[str, int]] | None = field(hash=False, compare=False)
    paper: dict[str, Any] = field(hash=False, compare=False)
    raw: dict[str, Any] = field(hash=False, compare=False, repr=False)

    @property
    def num_classes(self) -> int:
        """Number of classes."""
        return len(self.classes)

    @classmethod
    def from_json(cls, doc: dict[str, Any]) -> DatasetInfo:
        """Build from a parsed catalogue document; raises ``ValueError`` naming a bad field."""
        name = doc.get("name", "?")
        try:
            if doc["schema"] != SCHEMA_VERSION:
                raise ValueError(f"schema {doc['schema']} is not {SCHEMA_VERSION}")
            raw, split, expected = doc["raw"], doc["split"], doc["expected"]
            sensor = tuple(int(v) for v in doc["sensor_size"])
            if len(sensor) != 3 or sensor[2] != 2 or min(sensor) < 1:
                raise ValueError(f"sensor_size must be [W, H, 2], got {doc['sensor_size']}")
            if split["rule"] not in SPLIT_RULES:
                raise ValueError(f"split.rule must be one of {SPLIT_RULES}, got {split['rule']!r}")
            if expected["check"] not in COUNT_CHECKS:
                raise ValueError(f"expected.check must be one of {COUNT_CHECKS}")
            classes = tuple(str(c) for c in doc["classes"])
            if len(set(classes)) != len(classes) or not classes:
                raise ValueError("classes must be a non-empty list of distinct names")
            return cls(
                name=str(doc["name"]),
                title=str(doc["title"]),
                description=str(doc["description"]),
                citation=str(doc["citation"]),
                url=str(doc["url"]),
                paper_url=str(doc.get("paper_url", "")),
                license=str(doc["license"]),
                sensor_size=sensor,  # type: ignore[arg-type]
                sensor_note=str(doc.get("sensor_note", "")),
                classes=classes,
                class_note=str(doc.get("class_note", "")),
                raw_format=str(raw["format"]),
                raw_options=dict(raw.get("options", {})),
                raw_suffix=str(raw["suffix"]),
                root_folder=str(raw.get("root_folder", "")),
                layout=dict(raw["layout"]),
                setup=str(raw["setup"]),
                split_rule=str(split["rule"]),
                split_official=bool(split["official"]),
                train_ratio=None
                if split.get("train_ratio") is None
                else float(split["train_ratio"]),
                split_folders=dict(split.get("folders") or split.get("lists") or {}),
                split_description=str(split["description"]),
                count_check=str(expected["check"]),
                expected_files=dict(expected["files"]),
                expected_samples=dict(expected["samples"]),
                per_class_files=expected.get("per_class_files"),
                paper=dict(doc["paper"]),
                raw=doc,
            )
        except KeyError as err:
            raise ValueError(f"catalogue entry {name!r} lacks the field {err.args[0]!r}") from None
        except ValueError as err:
            raise ValueError(f"catalogue entry {name!r}: {err}") from None


def load_catalogue() -> dict[str, DatasetInfo]:
    """All catalogue entries by name, in sorted name order (a new dict; files read once)."""
    return dict(_read_catalogue())


@functools.lru_cache(maxsize=1)
def _read_catalogue() -> tuple[tuple[str, DatasetInfo], ...]:
    entries: dict[str, DatasetInfo] = {}
    folder = importlib.resources.files("qifsim._catalogue")
    for item in sorted(folder.iterdir(), key=lambda p: p.name):
        if not item.name.endswith(".json"):
            continue
        info = DatasetInfo.from_json(json.loads(item.read_text(encoding="utf-8")))
        if item.name != f"{info.name}.json":
            raise ValueError(f"catalogue file {item.name} holds the entry {info.name!r}")
        entries[info.name] = info
    return tuple(entries.items())


def dataset_names() -> list[str]:
    """The catalogue's dataset names, sorted."""
    return list(load_catalogue())


def dataset_info(name: str) -> DatasetInfo:
    """The catalogue entry ``name`` (case-insensitive; ``_`` and ``-`` are equivalent).

    Raises:
        KeyError: naming the valid names when ``name`` is unknown.
    """
    catalogue = load_catalogue()
    key = str(name).strip().lower().replace("_", "-")
    if key not in catalogue:
        raise KeyError(f"unknown dataset {name!r}; valid names: {', '.join(catalogue)}")
    return catalogue[key]
