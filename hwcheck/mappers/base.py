"""What every chip-family mapper returns: violations and a fit report.

A mapper is a function ``map_<family>(graph, profile, analysis=None) -> FitReport``. It groups the
graph's layers into the chip's units (cores, populations), runs a list of named rule functions
that each return :class:`Violation` objects (all of them, never stopping at the first), assigns
units to cores where the chip has cores, and fills a :class:`FitReport`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import pandas as pd

__all__ = ["Violation", "FitReport", "ERROR", "WARNING", "violations_frame"]

ERROR = "error"
WARNING = "warning"

VIOLATION_COLUMNS = ["severity", "layer", "rule", "needed", "limit", "message", "hint"]


@dataclass(frozen=True)
class Violation:
    """One broken rule: what, how much, the limit, and what to change.

    ``needed`` and ``limit`` are numbers where the rule is quantitative, else short strings
    (e.g. ``"stride 3"`` vs ``"1, 2, 4, 8"``).
    """

    layer: str
    rule: str
    needed: Any
    limit: Any
    message: str
    hint: str
    severity: str = ERROR

    def __post_init__(self) -> None:
        if self.severity not in (ERROR, WARNING):
            raise ValueError(f"severity must be {ERROR!r} or {WARNING!r}, got {self.severity!r}")
        if not self.hint:
            raise ValueError(f"violation {self.rule!r} on {self.layer!r} has no hint")

    def __str__(self) -> str:
        return f"[{self.severity}] {self.layer}: {self.message} Hint: {self.hint}"


def violations_frame(violations: list[Violation]) -> pd.DataFrame:
    """Violations as a tidy table, errors first. ``needed``/``limit`` are kept as text so mixed
    numbers and words survive a CSV round trip."""
    rows = [
        {
            "severity": v.severity,
            "layer": v.layer,
            "rule": v.rule,
            "needed": _as_text(v.needed),
            "limit": _as_text(v.limit),
            "message": v.message,
            "hint": v.hint,
        }
        for v in violations
    ]
    df = pd.DataFrame(rows, columns=VIOLATION_COLUMNS).astype("object")
    if len(df):
        order = df["severity"].map({ERROR: 0, WARNING: 1})
        df = df.iloc[order.argsort(kind="stable")].reset_index(drop=True)
    return df


def _as_text(v: Any) -> str:
    if isinstance(v, float) and v.is_integer():
        v = int(v)
    return str(v)


@dataclass
class FitReport:
    """The verdict of one mapper on one chip.

    Attributes:
        chip: profile name.
        family: chip family.
        fits: True when no violation has severity ``error``.
        layers: one row per chip unit (a DYNAP-CNN chip layer, a Loihi layer partition, a Xylo
            population...), indexed by its name; columns are family-specific but include
            ``members`` (the graph nodes it holds) and ``core`` where cores are assigned.
        cores: one row per core (or resource pool) with capacity, used, free and what is assigned.
        violations: every broken rule (see :class:`Violation`).
        summary: scalar facts for the side-by-side comparison: ``cores_used``,
            ``cores_available``, ``utilisation_pct``, ``binding_constraint``,
            ``latency_s`` / ``realtime_margin`` where modelled, and any family extras.
        notes: assumptions and remarks a reader must see (units, conversions done, sources).
    """

    chip: str
    family: str
    layers: pd.DataFrame
    cores: pd.DataFrame
    violation_list: list[Violation] = field(default_factory=list)
    summary: dict[str, Any] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)

    @property
    def fits(self) -> bool:
        return not any(v.severity == ERROR for v in self.violation_list)

    @property
    def errors(self) -> list[Violation]:
        return [v for v in self.violation_list if v.severity == ERROR]

    @property
    def warnings(self) -> list[Violation]:
        return [v for v in self.violation_list if v.severity == WARNING]

    @property
    def violations(self) -> pd.DataFrame:
        return violations_frame(self.violation_list)

    def __str__(self) -> str:
        verdict = "FITS" if self.fits else "DOES NOT FIT"
        lines = [
            f"{self.chip} ({self.family}): {verdict}"
            f" -- {len(self.errors)} error(s), {len(self.warnings)} warning(s)"
        ]
        used, avail = self.summary.get("cores_used"), self.summary.get("cores_available")
        if used is not None and avail is not None:
            lines.append(f"  cores used: {used} / {avail}")
        if self.summary.get("binding_constraint"):
            lines.append(f"  binding constraint: {self.summary['binding_constraint']}")
        for v in self.errors + self.warnings:
            lines.append(f"  {v}")
        for note in self.notes:
            lines.append(f"  note: {note}")
        return "\n".join(lines)
