"""Hardware energy profiles: readable JSON files in ``hardware/profiles/`` (shipped in the wheel).

A profile is a linear energy model in joules over the counts an
:class:`~qifsim.energy.report.EnergyReport` holds::

    E = E_MAC * MACs + E_AC * ACs                                 (synaptic_J)
      + neuron updates * E_update(neuron type)                    (neuron_update_J, optional)
      + memory accesses * E_access                                (memory, optional)

File fields (all energies in joules):

``name``, ``description``: strings; ``sources``: full citations; ``assumptions``: list of strings.
``synaptic_J``: ``{"mac": E_MAC, "ac": E_AC}``.
``neuron_update_J``: ``null``, ``{"mode": "ops", "mul": E_mul, "add": E_add}`` (each neuron
type's multiplications and additions per update: QIF 2 mul + 3 add, LIF 1 mul + 1 add,
norse/snntorch/spikingjelly neurons as :mod:`qifsim.energy.neuron_ops` states them) or
``{"mode": "fixed", "qif": E, "lif": E, "other": E}`` (energy per neuron per step; ``other``,
optional, for every other neuron type).
``memory``: ``null`` or ``{"access_J": {"read": E, "write": E}, "per_mac": {...},
"per_ac": {...}, "per_neuron_update": {...}}`` (accesses per operation).

``load_profile("cmos45nm-fp32")`` reads a shipped profile; a path to a ``.json``
file reads your own (validated the same way).
"""

from __future__ import annotations

import json
import math
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .neuron_ops import NEURON_OPS

#: The default profile: the QIF paper's Eq. 17 (E_MAC 4.6 pJ, E_AC 0.9 pJ).
DEFAULT_PROFILE = "cmos45nm-fp32"

#: Operations per neuron per time step by neuron type (QIF paper: QIF 2 mul + 3 add, LIF
#: 1 mul + 1 add; the peers' neurons: :mod:`qifsim.energy.neuron_ops`).
NEURON_UPDATE_OPS: dict[str, dict[str, int]] = {k: v.counts() for k, v in NEURON_OPS.items()}
#: Neuron types a ``"fixed"`` profile must price; ``"other"`` (optional) prices the rest.
FIXED_NEURONS = ("qif", "lif")

_KEYS = {
    "name",
    "description",
    "sources",
    "assumptions",
    "synaptic_J",
    "neuron_update_J",
    "memory",
}
_ACCESS_KINDS = ("read", "write")
_MEMORY_OPS = ("per_mac", "per_ac", "per_neuron_update")


class ProfileError(ValueError):
    """A profile file is missing, unreadable or invalid; the message names the problem."""


def profiles_dir() -> Path:
    """Folder of the shipped profiles (``qifsim/_profiles`` -> ``hardware/profiles``)."""
    return Path(__file__).resolve().parents[1] / "_profiles"


def profile_names() -> list[str]:
    """Names of the shipped profiles, sorted."""
    folder = profiles_dir()
    return sorted(p.stem for p in folder.glob("*.json")) if folder.is_dir() else []


@dataclass(frozen=True)
class EnergyProfile:
    """A validated energy profile (see the module docstring for the fields; joules)."""

    name: str
    description: str
    sources: tuple[str, ...]
    assumptions: tuple[str, ...]
    e_mac: float
    e_ac: float
    neuron_update: dict[str, Any] | None = None
    memory: dict[str, Any] | None = None
    path: str | None = field(default=None, compare=False)

    def neuron_update_energy(self, neuron: str, ops: dict[str, int] | None = None) -> float:
        """Joules per update of one ``neuron`` per time step, memory included.

        ``neuron``: a neuron type (``"qif"``, ``"lif"``, ``"norse-lif"``, ...); ``ops``:
        its ``{"mul", "add"}`` per update when known to the caller (default: the table
        :data:`NEURON_UPDATE_OPS`). 0 when the profile does not count neuron updates.

        Raises:
            ValueError: the profile costs updates by operations and the type has no
                stated count, or a ``"fixed"`` profile has no price for it.
        """
        nu = self.neuron_update
        if nu is None:
            return 0.0
        key = neuron.lower() if neuron.lower() in FIXED_NEURONS else neuron
        if nu["mode"] == "ops":
            counts = ops if ops is not None else NEURON_UPDATE_OPS.get(key)
            if counts is None:
                raise ValueError(
                    f"profile {self.name!r} costs neuron updates by their multiplications and "
                    f"additions, but the neuron type {neuron!r} has no stated count; give one "
                    "with qifsim.energy.register_neuron(cls, name, multi_step=..., mul=..., "
                    "add=...) or use a profile that does not count neuron updates"
                )
            energy = counts["mul"] * nu["mul"] + counts["add"] * nu["add"]
        else:
            price = nu.get(key, nu.get("other"))
            if price is None:
                raise ValueError(
                    f"profile {self.name!r} prices the updates of {', '.join(FIXED_NEURONS)} "
                    f"neurons only (no 'other' entry), not {neuron!r}"
                )
            energy = price
        return energy + self._memory_energy("per_neuron_update")

    def _memory_energy(self, op: str) -> float:
        if self.memory is None:
            return 0.0
        access = self.memory["access_J"]
        return sum(n * access[kind] for kind, n in self.memory[op].items())

    @property
    def mac_energy(self) -> float:
        """Joules per MAC, memory accesses included."""
        return self.e_mac + self._memory_energy("per_mac")

    @property
    def ac_energy(self) -> float:
        """Joules per AC, memory accesses included."""
        return self.e_ac + self._memory_energy("per_ac")

    @property
    def counts_neurons(self) -> bool:
        """Whether neuron-state updates cost energy in this profile."""
        return self.neuron_update is not None

    def to_dict(self) -> dict[str, Any]:
        """The profile as its JSON file holds it."""
        return {
            "name": self.name,
            "description": self.description,
            "sources": list(self.sources),
            "assumptions": list(self.assumptions),
            "synaptic_J": {"mac": self.e_mac, "ac": self.e_ac},
            "neuron_update_J": self.neuron_update,
            "memory": self.memory,
        }


def _energy(where: str, value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ProfileError(f"{where} must be a number of joules, got {value!r}")
    v = float(value)
    if not math.isfinite(v) or v < 0 or v > 1e-6:
        raise ProfileError(
            f"{where} = {value!r} is not a plausible energy per operation in joules "
            "(expected 0 <= E <= 1e-6 J; picojoules are written like 4.6e-12)"
        )
    return v


def _strings(where: str, value: Any) -> tuple[str, ...]:
    if not isinstance(value, list) or not value or not all(isinstance(s, str) and s for s in value):
        raise ProfileError(f"{where} must be a non-empty list of non-empty strings")
    return tuple(value)


def _mapping(where: str, value: Any, keys: tuple[str, ...], exact: bool = True) -> dict:
    if not isinstance(value, dict):
        raise ProfileError(f"{where} must be an object with keys {keys}, got {value!r}")
    extra = sorted(set(value) - set(keys))
    missing = sorted(set(keys) - set(value)) if exact else []
    if extra or missing:
        raise ProfileError(f"{where}: expected keys {keys}; missing {missing}, unknown {extra}")
    return value


def validate_profile(data: Any, origin: str = "<profile>") -> EnergyProfile:
    """Check a profile's JSON content and return it as an :class:`EnergyProfile`.

    Raises:
        ProfileError: naming the file (``origin``), the field and what is wrong.
    """
    try:
        return _validate(data, origin)
    except ProfileError as err:
        raise ProfileError(f"energy profile {origin}: {err}") from None


def _validate(data: Any, origin: str) -> EnergyProfile:
    if not isinstance(data, dict):
        raise ProfileError("the file must hold a JSON object")
    missing = sorted(_KEYS - set(data))
    unknown = sorted(set(data) - _KEYS)
    if missing or unknown:
        raise ProfileError(f"missing fields {missing}, unknown fields {unknown}")
    for key in ("name", "description"):
        if not isinstance(data[key], str) or not data[key].strip():
            raise ProfileError(f"{key!r} must be a non-empty string")
    sources = _strings("'sources'", data["sources"])
    assumptions = _strings("'assumptions'", data["assumptions"])
    syn = _mapping("'synaptic_J'", data["synaptic_J"], ("mac", "ac"))
    e_mac = _energy("synaptic_J.mac", syn["mac"])
    e_ac = _energy("synaptic_J.ac", syn["ac"])
    nu = data["neuron_update_J"]
    if nu is not None:
        mode = nu.get("mode") if isinstance(nu, dict) else None
        if mode == "ops":
            _mapping("'neuron_update_J'", nu, ("mode", "mul", "add"))
            nu = {
                "mode": "ops",
                **{k: _energy(f"neuron_update_J.{k}", nu[k]) for k in ("mul", "add")},
            }
        elif mode == "fixed":
            _mapping("'neuron_update_J'", nu, ("mode", *FIXED_NEURONS, "other"), exact=False)
            missing = [k for k in FIXED_NEURONS if k not in nu]
            if missing:
                raise ProfileError(f"'neuron_update_J' (fixed) is missing {missing}")
            nu = {
                "mode": "fixed",
                **{k: _energy(f"neuron_update_J.{k}", v) for k, v in nu.items() if k != "mode"},
            }
        else:
            raise ProfileError(
                '\'neuron_update_J\' must be null, {"mode": "ops", "mul", "add"} or '
                '{"mode": "fixed", "qif", "lif", optional "other"}'
            )
    memory = data["memory"]
    if memory is not None:
        _mapping("'memory'", memory, ("access_J", *_MEMORY_OPS))
        access = _mapping("memory.access_J", memory["access_J"], _ACCESS_KINDS)
        memory = {"access_J": {k: _energy(f"memory.access_J.{k}", access[k]) for k in access}}
        for op in _MEMORY_OPS:
            counts = _mapping(f"memory.{op}", data["memory"][op], _ACCESS_KINDS, exact=False)
            for kind, n in counts.items():
                if isinstance(n, bool) or not isinstance(n, int) or n < 0:
                    raise ProfileError(f"memory.{op}.{kind} must be an integer >= 0, got {n!r}")
            memory[op] = dict(counts)
        if nu is None and any(memory["per_neuron_update"].values()):
            raise ProfileError("memory.per_neuron_update needs neuron_update_J (it is null)")
    return EnergyProfile(
        name=data["name"],
        description=data["description"],
        sources=sources,
        assumptions=assumptions,
        e_mac=e_mac,
        e_ac=e_ac,
        neuron_update=nu,
        memory=memory,
        path=None if origin.startswith("<") else origin,
    )


def load_profile(profile: str | os.PathLike | EnergyProfile = DEFAULT_PROFILE) -> EnergyProfile:
    """A profile by shipped name (``qifsim energy --list-profiles``) or path to a ``.json`` file.

    Raises:
        ProfileError: unknown name (listing the known ones), unreadable or invalid file.
    """
    if isinstance(profile, EnergyProfile):
        return profile
    text = str(profile)
    path = Path(text)
    if not (text.endswith(".json") or os.sep in text or path.is_file()):
        path = profiles_dir() / f"{text}.json"
        if not path.is_file():
            raise ProfileError(
                f"unknown energy profile {text!r}; shipped profiles: {', '.join(profile_names())} "
                "(or give the path of a .json profile file)"
            )
    if not path.is_file():
        raise ProfileError(f"no energy profile file at {str(path)!r}")
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as err:
        raise ProfileError(f"cannot read energy profile {str(path)!r}: {err}") from err
    return validate_profile(data, str(path))


def describe_profiles() -> list[dict[str, Any]]:
    """Each shipped profile as a dict: name, description, E_MAC, E_AC (J), neurons, memory."""
    rows = []
    for name in profile_names():
        p = load_profile(name)
        rows.append(
            {
                "name": p.name,
                "description": p.description,
                "mac_J": p.mac_energy,
                "ac_J": p.ac_energy,
                "neuron_update_J": {n: p.neuron_update_energy(n) for n in FIXED_NEURONS},
                "memory": p.memory is not None,
                "sources": list(p.sources),
            }
        )
    return rows
