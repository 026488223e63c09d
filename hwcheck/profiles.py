"""Chip profiles: one TOML file per chip, every figure with its unit, source and kind.

A profile is plain data (frozen dataclasses, no torch). Its ``family`` selects the mapper that
checks a model against it; each family declares which ``limits`` figures it needs (a
:class:`FamilySpec`), so a profile is validated against its family when it is loaded.

File layout (see README, "Chip profiles")::

    name = "speck2f"
    family = "dynapcnn"
    title = "SynSense Speck 2f"
    description = "..."

    [model]                         # modelling choices (no source needed)
    synop_convention = "synops"     # which count the per-op energy applies to
    neuron_update = "event"         # "event" (only neurons with input) or "clock" (all, every step)

    [limits.n_cores]                # a figure: value + unit + source + kind
    value = 9
    unit = "cores"
    kind = "spec"                   # spec | measured | model | derived
    source = "sinabs chips/dynapcnn.py get_constraints @904eb89"
    note = "optional free text"

    [energy.synop_pJ]               # optional low / high give a range around value
    value = 27.1
    low = 23.6
    high = 35.5
    ...
"""

from __future__ import annotations

import difflib
import math
import os
import sys
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

__all__ = [
    "Figure",
    "FigureSpec",
    "FamilySpec",
    "ChipProfile",
    "ProfileError",
    "load_profile",
    "list_profiles",
    "profile_dirs",
    "register_family",
    "FAMILIES",
    "ENERGY_FIGURES",
    "BANDWIDTH_FIGURES",
]

FIGURE_KINDS = ("spec", "measured", "model", "derived")
FIGURE_KEYS = {"value", "unit", "source", "kind", "low", "high", "note"}
TOP_KEYS = {"name", "family", "title", "description", "model", "limits", "energy", "bandwidth", "power"}
MODEL_KEYS = {
    "synop_convention": ("synops", "synops_effective", "ops_dense"),
    "neuron_update": ("event", "clock", "none"),
}

# Value types a FigureSpec may ask for.
VALUE_TYPES = ("int", "number", "bool", "str", "int_list", "number_list", "str_list")


class ProfileError(ValueError):
    """A chip profile is malformed. The message names the file, the key and what was expected."""


@dataclass(frozen=True)
class Figure:
    """One published (or derived) number with where it comes from.

    ``value`` may be a number, a bool, a string or a list (e.g. a per-core table). ``low`` and
    ``high`` give the range the sources span, when they disagree.
    """

    key: str
    value: Any
    unit: str
    source: str
    kind: str
    low: float | None = None
    high: float | None = None
    note: str = ""

    @property
    def is_range(self) -> bool:
        return self.low is not None or self.high is not None


@dataclass(frozen=True)
class FigureSpec:
    """What a family expects of one figure: its value type and whether it must be present."""

    type: str
    required: bool = True
    description: str = ""

    def __post_init__(self) -> None:
        if self.type not in VALUE_TYPES:
            raise ValueError(f"FigureSpec.type must be one of {VALUE_TYPES}, got {self.type!r}")


@dataclass(frozen=True)
class FamilySpec:
    """A chip family: the limit figures its profiles must carry and the mapper that checks them.

    ``mapper(graph, profile, analysis=None) -> FitReport`` is set by the family's mapper module.
    ``validate(profile)`` checks figures against each other (e.g. per-core tables against the
    core count) and raises :class:`ProfileError`; it runs when a profile is loaded.
    """

    name: str
    limits: Mapping[str, FigureSpec]
    mapper: Callable[..., Any] | None = None
    description: str = ""
    validate: Callable[[Any], None] | None = None


FAMILIES: dict[str, FamilySpec] = {}

# Energy / bandwidth figures any family may carry (all optional: absent means "unknown").
ENERGY_FIGURES: dict[str, FigureSpec] = {
    "synop_pJ": FigureSpec("number", False, "energy per synaptic operation"),
    "neuron_update_pJ": FigureSpec("number", False, "energy per neuron update"),
    "input_event_pJ": FigureSpec("number", False, "energy per input event into the chip"),
    "spike_out_pJ": FigureSpec("number", False, "energy per output spike routed"),
    "static_power_mW": FigureSpec("number", False, "static (resting) power of the chip"),
    "timestep_overhead_pJ": FigureSpec("number", False, "fixed energy per time step (sync)"),
}
BANDWIDTH_FIGURES: dict[str, FigureSpec] = {
    "synops_per_s_per_core": FigureSpec("number", False, "max synaptic ops per second per core"),
    "input_events_per_s": FigureSpec("number", False, "max input event rate into the chip"),
    "output_events_per_s": FigureSpec("number", False, "max output event rate from the chip"),
    "spikes_per_s_per_core": FigureSpec("number", False, "max output spikes per second per core"),
}


def register_family(spec: FamilySpec) -> FamilySpec:
    """Make a chip family known. A mapper module calls this once at import."""
    FAMILIES[spec.name] = spec
    return spec


@dataclass(frozen=True)
class ChipProfile:
    """A chip, as the data files describe it. Figures are grouped by section."""

    name: str
    family: str
    title: str
    description: str
    path: str
    synop_convention: str
    neuron_update: str
    limits: Mapping[str, Figure] = field(default_factory=dict)
    energy: Mapping[str, Figure] = field(default_factory=dict)
    bandwidth: Mapping[str, Figure] = field(default_factory=dict)
    power: Mapping[str, Figure] = field(default_factory=dict)

    def limit(self, key: str, default: Any = None) -> Any:
        """The value of a limit figure, or ``default`` when the profile does not carry it."""
        fig = self.limits.get(key)
        return default if fig is None else fig.value

    def figures(self) -> list[tuple[str, Figure]]:
        """Every figure as (section, figure), for listing with sources."""
        out: list[tuple[str, Figure]] = []
        for section in ("limits", "energy", "bandwidth", "power"):
            for fig in getattr(self, section).values():
                out.append((section, fig))
        return out

    def with_overrides(
        self, overrides: Mapping[str, Any], source: str = "user override (--set)", kind: str = "model"
    ) -> ChipProfile:
        """A copy with figures set or replaced, e.g. ``{"energy.synop_pJ": 12}``.

        Overridden figures keep the unit of the figure they replace and carry ``source`` and
        ``kind`` (e.g. ``"measured"`` for a calibration).
        """
        if kind not in FIGURE_KINDS:
            raise ValueError(f"kind must be one of {FIGURE_KINDS}, got {kind!r}")
        sections = {s: dict(getattr(self, s)) for s in ("limits", "energy", "bandwidth", "power")}
        model = {"synop_convention": self.synop_convention, "neuron_update": self.neuron_update}
        for dotted, value in overrides.items():
            section, _, key = dotted.partition(".")
            if section == "model":
                _check_model_key(self.path, key, value)
                model[key] = value
                continue
            if section not in sections or not key:
                raise ProfileError(
                    f"{self.path}: cannot set {dotted!r}; expected SECTION.KEY with SECTION one of "
                    "limits, energy, bandwidth, power"
                )
            old = sections[section].get(key)
            unit = old.unit if old is not None else _default_unit(key)
            spec = _spec_for(self.family, section, key)
            if spec is None and old is None:
                known = sorted(set(sections[section]) | set(_schema_keys(self.family, section)))
                close = difflib.get_close_matches(key, known, n=1, cutoff=0.5)
                hint = f"; did you mean {section}.{close[0]}?" if close else ""
                raise ProfileError(
                    f"{self.path}: unknown figure {dotted!r} for a {self.family} chip{hint} "
                    f"(known {section} keys: {', '.join(known) or 'none'})"
                )
            if spec is not None:
                _check_value(self.path, f"{section}.{key}", value, spec)
            elif isinstance(value, (int, float)) and not isinstance(value, bool) and value < 0:
                raise ProfileError(f"{self.path}: {section}.{key} = {value}; expected >= 0")
            sections[section][key] = Figure(key, value, unit, source, kind)
        return ChipProfile(
            name=self.name,
            family=self.family,
            title=self.title,
            description=self.description,
            path=self.path,
            synop_convention=model["synop_convention"],
            neuron_update=model["neuron_update"],
            **sections,
        )


def _check_model_key(path: str, key: str, value: Any) -> None:
    if key not in MODEL_KEYS:
        raise ProfileError(f"{path}: unknown key model.{key}; expected one of {sorted(MODEL_KEYS)}")
    if value not in MODEL_KEYS[key]:
        raise ProfileError(f"{path}: model.{key} = {value!r}; expected one of {MODEL_KEYS[key]}")


def _default_unit(key: str) -> str:
    for suffix in ("pJ", "mW", "uJ", "per_s"):
        if key.endswith(suffix):
            return "1/s" if suffix == "per_s" else suffix
    return ""


def _schema_keys(family: str, section: str) -> list[str]:
    if section == "limits":
        fam = FAMILIES.get(family)
        return [] if fam is None else list(fam.limits)
    return list({"energy": ENERGY_FIGURES, "bandwidth": BANDWIDTH_FIGURES}.get(section, {}))


def _spec_for(family: str, section: str, key: str) -> FigureSpec | None:
    if section == "limits":
        fam = FAMILIES.get(family)
        return None if fam is None else fam.limits.get(key)
    if section == "energy":
        return ENERGY_FIGURES.get(key)
    if section == "bandwidth":
        return BANDWIDTH_FIGURES.get(key)
    return None


def profile_dirs() -> list[Path]:
    """Where profiles are looked up by name: ``$HWCHECK_PROFILES`` (os.pathsep-separated), then
    the ``chip_profiles/`` folder bundled inside the package (installed with it)."""
    dirs = [Path(p) for p in os.environ.get("HWCHECK_PROFILES", "").split(os.pathsep) if p]
    dirs.append(Path(__file__).resolve().parent / "chip_profiles")
    return dirs


def list_profiles() -> list[str]:
    """Names of every profile found in :func:`profile_dirs`, sorted."""
    names: set[str] = set()
    for d in profile_dirs():
        if d.is_dir():
            names.update(p.stem for p in d.glob("*.toml"))
    return sorted(names)


def load_profile(name_or_path: str | os.PathLike[str], overrides: Mapping[str, Any] | None = None) -> ChipProfile:
    """Load a profile by name (``"speck2f"``) or by path to a TOML file, and validate it.

    Raises :class:`ProfileError` naming the file, the key and what was expected.
    """
    # Importing the package registers the built-in families.
    import hwcheck.mappers  # noqa: F401

    text = str(name_or_path)
    path = Path(text)
    # a path ends in .toml or names a folder; anything else is a profile name, even where a
    # file or folder of that name happens to exist in the current folder
    is_path = text.endswith(".toml") or "/" in text or os.sep in text or isinstance(name_or_path, Path)
    if not is_path:
        for d in profile_dirs():
            candidate = d / f"{text}.toml"
            if candidate.is_file():
                path = candidate
                break
        else:
            raise ProfileError(
                f"unknown chip profile {text!r}; known profiles: {', '.join(list_profiles())} "
                "(or give the path to a .toml file)"
            )
    if not path.is_file():
        raise ProfileError(f"{path}: no such profile file")
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except tomllib.TOMLDecodeError as exc:
        raise ProfileError(f"{path}: not valid TOML: {exc}") from exc
    except UnicodeDecodeError as exc:
        raise ProfileError(f"{path}: not UTF-8 text ({exc.reason} at byte {exc.start}); save the profile as UTF-8") from exc
    except OSError as exc:
        raise ProfileError(f"{path}: cannot read the profile: {exc.strerror}") from exc
    profile = parse_profile(data, str(path))
    if overrides:
        profile = profile.with_overrides(overrides)
    return profile


def parse_profile(data: Mapping[str, Any], path: str = "<profile>") -> ChipProfile:
    """Validate a parsed TOML document and build a :class:`ChipProfile`."""
    unknown = set(data) - TOP_KEYS
    if unknown:
        raise ProfileError(
            f"{path}: unknown top-level key(s) {sorted(unknown)}; expected only {sorted(TOP_KEYS)}"
        )
    for key in ("name", "family"):
        if key not in data:
            raise ProfileError(f"{path}: missing required key {key!r} (a string)")
    for key in ("name", "family", "title", "description"):
        if key in data and not isinstance(data[key], str):
            raise ProfileError(f"{path}: {key} must be a string, got {type(data[key]).__name__}")
    family = data["family"]
    if family not in FAMILIES:
        raise ProfileError(
            f"{path}: family = {family!r} is not a known chip family; expected one of "
            f"{sorted(FAMILIES)}"
        )
    fam = FAMILIES[family]

    model = data.get("model", {})
    if not isinstance(model, Mapping):
        raise ProfileError(f"{path}: [model] must be a table")
    for key, value in model.items():
        _check_model_key(path, key, value)

    sections: dict[str, dict[str, Figure]] = {}
    schemas: dict[str, Mapping[str, FigureSpec] | None] = {
        "limits": fam.limits,
        "energy": ENERGY_FIGURES,
        "bandwidth": BANDWIDTH_FIGURES,
        "power": None,  # free-form measured context
    }
    for section, schema in schemas.items():
        table = data.get(section, {})
        if not isinstance(table, Mapping):
            raise ProfileError(f"{path}: [{section}] must be a table of figures")
        figures: dict[str, Figure] = {}
        for key, raw in table.items():
            dotted = f"{section}.{key}"
            if schema is not None and key not in schema:
                raise ProfileError(
                    f"{path}: unknown key {dotted} for family {family!r}; expected one of "
                    f"{sorted(schema)}"
                )
            spec = schema[key] if schema is not None else FigureSpec("number", False)
            figures[key] = _parse_figure(path, dotted, key, raw, spec)
        if schema is not None:
            for key, spec in schema.items():
                if spec.required and key not in figures:
                    raise ProfileError(
                        f"{path}: missing required figure {section}.{key} "
                        f"({spec.type}{': ' + spec.description if spec.description else ''})"
                    )
        sections[section] = figures

    profile = ChipProfile(
        name=data["name"],
        family=family,
        title=data.get("title", data["name"]),
        description=data.get("description", ""),
        path=path,
        synop_convention=model.get("synop_convention", "synops"),
        neuron_update=model.get("neuron_update", "event"),
        **sections,
    )
    if fam.validate is not None:
        fam.validate(profile)
    return profile


def _parse_figure(path: str, dotted: str, key: str, raw: Any, spec: FigureSpec) -> Figure:
    if not isinstance(raw, Mapping):
        raise ProfileError(
            f"{path}: {dotted} must be a table with value, unit, source and kind; got {raw!r}"
        )
    extra = set(raw) - FIGURE_KEYS
    if extra:
        raise ProfileError(
            f"{path}: unknown field(s) {sorted(extra)} in {dotted}; expected {sorted(FIGURE_KEYS)}"
        )
    for req in ("value", "unit", "source", "kind"):
        if req not in raw:
            raise ProfileError(f"{path}: {dotted} is missing its {req!r} field")
    for req in ("unit", "source", "kind", "note"):
        if req in raw and not isinstance(raw[req], str):
            raise ProfileError(f"{path}: {dotted}.{req} must be a string, got {raw[req]!r}")
    if not raw["source"].strip():
        raise ProfileError(f"{path}: {dotted}.source is empty; every figure needs its source")
    if raw["kind"] not in FIGURE_KINDS:
        raise ProfileError(f"{path}: {dotted}.kind = {raw['kind']!r}; expected one of {FIGURE_KINDS}")
    _check_value(path, dotted, raw["value"], spec)
    low, high = raw.get("low"), raw.get("high")
    for name, bound in (("low", low), ("high", high)):
        if bound is not None and (not _is_number(bound) or bound < 0):
            raise ProfileError(f"{path}: {dotted}.{name} = {bound!r}; expected a number >= 0")
    if low is not None and high is not None and low > high:
        raise ProfileError(f"{path}: {dotted}: low ({low}) > high ({high})")
    value = raw["value"]
    if _is_number(value):
        if low is not None and value < low or high is not None and value > high:
            raise ProfileError(f"{path}: {dotted}: value {value} outside [low, high] = [{low}, {high}]")
    return Figure(
        key=key,
        value=list(value) if isinstance(value, list) else value,
        unit=raw["unit"],
        source=raw["source"],
        kind=raw["kind"],
        low=low,
        high=high,
        note=raw.get("note", ""),
    )


def _is_number(v: Any) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)


#: capacities and rates a chip model divides by: zero would make every check meaningless
POSITIVE_LIMITS = frozenset(
    {
        "n_cores", "max_input_px", "max_output_map_px", "max_channels", "max_kernel_px",
        "destinations_per_core", "weight_bits", "state_bits", "dvs_input_channels",
        "input_channels", "hidden_neurons", "output_neurons", "synaptic_states_hidden",
        "synaptic_states_output", "max_fanout_hidden", "threshold_bits", "clock_hz", "clock_hz_max",
        "cores_per_chip", "neurons_per_core", "input_axons_per_core", "output_axons_per_core",
        "synapse_memory_bits_per_core", "synapse_row_synapses", "synapse_word_bits",
        "fan_in_per_core", "chips_max", "timestep_s", "memory_bytes",
    }
)  # fmt: skip


def _check_value(path: str, dotted: str, value: Any, spec: FigureSpec) -> None:
    t = spec.type

    def fail(expected: str) -> None:
        raise ProfileError(f"{path}: {dotted} = {value!r}; expected {expected}")

    section, _, key = dotted.partition(".")
    if section == "limits" and key in POSITIVE_LIMITS and t in ("int", "number"):
        if _is_number(value) and not isinstance(value, bool) and not value > 0:
            fail("a capacity > 0")
    if _is_number(value) and not isinstance(value, bool) and not math.isfinite(value):
        fail("a finite number")

    if t == "int":
        if not isinstance(value, int) or isinstance(value, bool) or value < 0:
            fail("a non-negative integer")
    elif t == "number":
        if not _is_number(value) or value < 0:
            fail("a non-negative number")
    elif t == "bool":
        if not isinstance(value, bool):
            fail("true or false")
    elif t == "str":
        if not isinstance(value, str):
            fail("a string")
    elif t in ("int_list", "number_list", "str_list"):
        if not isinstance(value, list) or not value:
            fail(f"a non-empty list ({t.replace('_list', '')} items)")
        for item in value:
            if t == "int_list" and (not isinstance(item, int) or isinstance(item, bool) or item < 0):
                fail("a list of non-negative integers")
            if t == "number_list" and (not _is_number(item) or item < 0):
                fail("a list of non-negative numbers")
            if t == "str_list" and not isinstance(item, str):
                fail("a list of strings")
