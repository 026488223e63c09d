"""Reports: analysis + fit + estimates for one or more chips, as DataFrames and files.

:class:`Report` holds tidy tables (``layers``, ``cores``, ``violations``, ``energy``,
``bandwidth``, ``summary`` -- one row per chip) and writes them with :meth:`Report.save`:
CSV files, ``summary.json``, a readable ``report.md`` and PNG plots, into a folder that appears
complete or not at all, and only ever replaces an earlier report (see :mod:`hwcheck.safe_write`).
"""

from __future__ import annotations

import json
import math
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd

from hwcheck.activity import Analysis, static_layers
from hwcheck.estimate import Bandwidth, EnergyEstimate
from hwcheck.graph import LayerGraph
from hwcheck.mappers.base import FitReport, violations_frame
from hwcheck.safe_write import check_name, replace_folder

__all__ = ["ChipResult", "Report", "FORMATS"]

FORMATS = ("csv", "json", "md", "png", "html")

SUMMARY_COLUMNS = [
    "chip",
    "family",
    "fits",
    "errors",
    "warnings",
    "cores_used",
    "cores_available",
    "utilisation_pct",
    "binding_constraint",
    "energy_per_inference_uJ",
    "energy_low_uJ",
    "energy_high_uJ",
    "dynamic_energy_uJ",
    "static_energy_uJ",
    "ann_energy_uJ",
    "power_mW",
    "energy_note",
    "latency_s",
    "realtime_margin",
    "synops_per_inference",
    "bandwidth_flags",
]


@dataclass
class ChipResult:
    """Everything hwcheck knows about one model on one chip."""

    fit: FitReport
    energy: EnergyEstimate | None = None
    bandwidth: Bandwidth | None = None

    def summary_row(self, analysis: Analysis | None) -> dict[str, Any]:
        s = self.fit.summary
        e = self.energy
        known_total = e is not None and not math.isnan(e.totals["total_uJ"])
        note = "-"
        if e is None:
            note = "no activity analysed"
        elif e.missing:
            note = e.describe_unknown()
        elif math.isnan(e.totals["static_uJ"]):
            note = "static power not published: the total is dynamic energy only"
        return {
            "chip": self.fit.chip,
            "family": self.fit.family,
            "fits": bool(self.fit.fits),
            "errors": len(self.fit.errors),
            "warnings": len(self.fit.warnings),
            "cores_used": float(s.get("cores_used", math.nan)),
            "cores_available": float(s.get("cores_available", math.nan)),
            "utilisation_pct": float(s.get("utilisation_pct", math.nan)),
            "binding_constraint": str(s.get("binding_constraint") or "-"),
            "energy_per_inference_uJ": e.totals["total_uJ"] if known_total else math.nan,
            "energy_low_uJ": e.totals["total_low_uJ"] if known_total else math.nan,
            "energy_high_uJ": e.totals["total_high_uJ"] if known_total else math.nan,
            "dynamic_energy_uJ": e.totals["dynamic_uJ"] if e is not None else math.nan,
            "static_energy_uJ": e.totals["static_uJ"] if e is not None else math.nan,
            "ann_energy_uJ": e.totals.get("ann_once_uJ", math.nan) if e is not None else math.nan,
            "power_mW": e.totals["power_mW"] if known_total else math.nan,
            "energy_note": note,
            "latency_s": float(s.get("latency_s", math.nan)),
            "realtime_margin": float(s.get("realtime_margin", math.nan)),
            "synops_per_inference": float(analysis.summary()["synops"]) if analysis is not None else math.nan,
            "bandwidth_flags": len(self.bandwidth.flags) if self.bandwidth is not None else 0,
        }


@dataclass
class Report:
    """A model checked against one or more chips.

    ``summary`` is sorted: chips the model fits first (checked fits before fits that could not
    be checked, neuromorphic chips before the dense baselines), then by energy per inference,
    known energies before unknown ones.
    """

    name: str
    analysis: Analysis | None
    results: list[ChipResult]
    notes: list[str] = field(default_factory=list)
    #: the layer graph, for the static per-layer table when no data was analysed
    graph: LayerGraph | None = None

    # ---------------------------------------------------------------- tables
    @property
    def fits(self) -> bool:
        """True when the model fits every chip of the report."""
        return all(r.fit.fits for r in self.results)

    @property
    def summary(self) -> pd.DataFrame:
        rows = [r.summary_row(self.analysis) for r in self.results]
        df = pd.DataFrame(rows, columns=SUMMARY_COLUMNS)
        if len(df):
            # fits first; among those, a fit that was checked before one that could not be
            # (no core count), neuromorphic chips before the dense baselines; then known energies
            # in order, then unknown ones (ordered by their known static part)
            unchecked = df["binding_constraint"].astype(str).str.contains("no core count")
            total = df["energy_per_inference_uJ"]
            energy = total.fillna(df["static_energy_uJ"]).fillna(math.inf)
            df = df.assign(_f=~df["fits"], _u=unchecked, _d=df["family"] == "dense", _k=total.isna(), _e=energy)
            df = df.sort_values(["_f", "_u", "_d", "_k", "_e", "chip"], kind="stable")
            df = df.drop(columns=["_f", "_u", "_d", "_k", "_e"])
        return df.set_index("chip")

    @property
    def layers(self) -> pd.DataFrame:
        """The analysis table (or the static graph when no data was analysed), plus one
        ``core_<chip>`` column per chip with the core(s) each layer was assigned to."""
        if self.analysis is not None:
            df = self.analysis.layers.copy()
        elif self.graph is not None:
            df = static_layers(self.graph)
        else:
            df = pd.DataFrame(index=pd.Index([], name="layer"))
        for r in self.results:
            col = f"core_{r.fit.chip}"
            cores = {}
            if len(r.fit.layers) and "members" in r.fit.layers.columns and "core" in r.fit.layers.columns:
                for _, row in r.fit.layers.iterrows():
                    for m in str(row["members"]).split(","):
                        cores[m] = str(row["core"]) if str(row["core"]) not in ("", "nan") else "-"
            if len(df):
                df[col] = [cores.get(n, "-") for n in df.index]
        return df

    def _concat(self, frames: list[tuple[str, pd.DataFrame]], index_name: str) -> pd.DataFrame:
        parts = []
        for chip, f in frames:
            if f is None or not len(f):
                continue
            f = f.copy()
            f.index = f.index.astype(str)
            f.index.name = index_name
            f = f.reset_index()
            if "chip" in f.columns:  # e.g. the chip index of a multi-chip partition
                f = f.rename(columns={"chip": "chip_index"})
            f.insert(0, "chip", chip)
            parts.append(f)
        if not parts:
            return pd.DataFrame(columns=["chip", index_name])
        return pd.concat(parts, ignore_index=True)

    @property
    def cores(self) -> pd.DataFrame:
        return self._concat([(r.fit.chip, r.fit.cores) for r in self.results], "core")

    @property
    def violations(self) -> pd.DataFrame:
        parts = []
        for r in self.results:
            v = violations_frame(r.fit.violation_list)
            v.insert(0, "chip", r.fit.chip)
            parts.append(v)
        if not parts:
            return violations_frame([]).assign(chip=[])
        return pd.concat(parts, ignore_index=True)

    @property
    def energy(self) -> pd.DataFrame:
        return self._concat(
            [(r.fit.chip, r.energy.layers) for r in self.results if r.energy is not None], "layer"
        )

    @property
    def bandwidth(self) -> pd.DataFrame:
        parts = []
        for r in self.results:
            if r.bandwidth is not None and len(r.bandwidth.table):
                t = r.bandwidth.table.copy()
                t.insert(0, "chip", r.fit.chip)
                parts.append(t)
        return pd.concat(parts, ignore_index=True) if parts else pd.DataFrame(columns=["chip"])

    @property
    def bandwidth_checked(self) -> pd.DataFrame:
        """The rows of :attr:`bandwidth` that have a published limit to check against (the
        report's Bandwidth section); the others are traffic figures only (``bandwidth.csv``)."""
        b = self.bandwidth
        return b[b["limit_per_s"].notna()].reset_index(drop=True) if "limit_per_s" in b else b

    def _unchecked_bandwidth_chips(self) -> list[str]:
        return [
            r.fit.chip for r in self.results
            if r.bandwidth is not None and len(r.bandwidth.table) and r.bandwidth.table["limit_per_s"].isna().all()
        ]  # fmt: skip

    # ---------------------------------------------------------------- text
    def verdict(self) -> str:
        lines = []
        for chip, row in self.summary.iterrows():
            state = "FITS" if row["fits"] else "DOES NOT FIT"
            e = row["energy_per_inference_uJ"]
            st = row["static_energy_uJ"]
            if not math.isnan(e):
                energy = f"{e:.4g} uJ/inference"
            elif not math.isnan(st):
                energy = f"dynamic energy unknown (static {st:.4g} uJ/inference)"
            else:
                energy = "energy unknown"
            lines.append(
                f"{chip:<14} {state:<13} {int(row['errors'])} error(s), {int(row['warnings'])} warning(s); "
                f"{energy}; binding: {row['binding_constraint']}"
            )
        return "\n".join(lines)

    def __str__(self) -> str:
        parts = [f"hwcheck report '{self.name}'", self.verdict()]
        for r in self.results:
            parts.append(str(r.fit))
        return "\n".join(parts)

    def markdown(self) -> str:
        """A readable report: verdict, tables, and every assumption with its source."""
        out = [f"# hwcheck report: {self.name}", "", "## Verdict", ""]
        out += ["```", self.verdict(), "```", ""]
        out += ["## Summary (one row per chip)", "", _md(self.summary.reset_index()), ""]
        if self.analysis is not None:
            s = self.analysis.summary()
            out += ["## Model totals (per inference)", "", _md(s.to_frame("value").reset_index()), ""]
        layers = self.layers
        if len(layers):
            cols = [c for c in ("kind", "type", "in_shape", "out_shape", "params", "neurons", "synapses",
                                "fan_in_max", "spikes_out", "firing_rate", "synops", "synops_effective",
                                "ops_dense") if c in layers]
            cols += [c for c in layers.columns if c.startswith("core_")]
            title = "## Layers" if self.analysis is not None else "## Layers (static: shapes and counts, no data)"
            out += [title, "", _md(layers[cols].reset_index()), ""]
        v = self.violations
        out += ["## Violations", "", _md(v) if len(v) else "None.", ""]
        c = self.cores
        if len(c) > MD_CORES and "utilisation_pct" in c:
            top = c.sort_values("utilisation_pct", ascending=False, kind="stable").head(MD_CORES)
            out += ["## Cores", "", f"The {MD_CORES} fullest of {len(c):,} cores (all of them in "
                    "`cores.csv`).", "", _md(top), ""]
        elif len(c):
            out += ["## Cores", "", _md(c), ""]
        b = self.bandwidth_checked
        if len(b):
            out += ["## Bandwidth (against published limits)", "", _md(b), ""]
        out += ["## Assumptions and sources", ""]
        out += [f"- {line}" for line in self.note_lines()]
        out.append("")
        return "\n".join(out)

    def note_lines(self) -> list[str]:
        """Every note, assumption and source of the report, chip notes prefixed by the chip."""
        out = list(self.notes)
        for r in self.results:
            out += [f"{r.fit.chip}: {n}" for n in r.fit.notes]
            if r.energy is not None:
                out += [f"{r.fit.chip}: {a}" for a in r.energy.assumptions]
                if r.energy.missing:
                    out.append(f"{r.fit.chip}: {r.energy.describe_unknown()}")
            if r.bandwidth is not None:
                out += [f"{r.fit.chip}: bandwidth: {f}" for f in r.bandwidth.flags]
        unchecked = self._unchecked_bandwidth_chips()
        if unchecked:
            out.append(
                f"bandwidth: no published event-rate limit for {', '.join(unchecked)}: their events/s and "
                "synops/s per layer, core and chip edge are in bandwidth.csv, not checked"
            )
        return out

    # ---------------------------------------------------------------- files
    def save(self, directory: str | os.PathLike[str] | None = None, formats: tuple[str, ...] = FORMATS) -> Path:
        """Write the report into ``directory`` (default ``reports/<name>``), atomically.

        Files: layers.csv, cores.csv, violations.csv, energy.csv, bandwidth.csv, summary.csv
        (csv); summary.json (json); report.md (md); core_utilisation.png, layer_synops.png,
        chip_energy.png (png, where there is something to plot); report.html (html: one
        self-contained page with every table and the plots inline).
        """
        unknown = set(formats) - set(FORMATS)
        if unknown:
            raise ValueError(f"unknown report format(s) {sorted(unknown)}; expected some of {FORMATS}")
        target = Path(directory) if directory is not None else Path("reports") / check_name(self.name)

        def fill(tmp: Path) -> None:
            if "csv" in formats:
                self.layers.to_csv(tmp / "layers.csv")
                self.cores.to_csv(tmp / "cores.csv", index=False)
                self.violations.to_csv(tmp / "violations.csv", index=False)
                self.energy.to_csv(tmp / "energy.csv", index=False)
                self.bandwidth.to_csv(tmp / "bandwidth.csv", index=False)
                self.summary.to_csv(tmp / "summary.csv")
            if "json" in formats:
                payload = {
                    "name": self.name,
                    "fits_all": self.fits,
                    "chips": json.loads(self.summary.reset_index().to_json(orient="records")),
                    "model": json.loads(self.analysis.summary().to_json()) if self.analysis is not None else None,
                    "notes": self.notes,
                }
                (tmp / "summary.json").write_text(json.dumps(payload, indent=2), encoding="utf-8")
            if "md" in formats:
                (tmp / "report.md").write_text(self.markdown(), encoding="utf-8")
            plots: list[Path] = []
            if "png" in formats or "html" in formats:
                from hwcheck.plots import save_plots

                plots = save_plots(self, tmp)
            if "html" in formats:
                from hwcheck.html_report import render_html

                (tmp / "report.html").write_text(render_html(self, plots), encoding="utf-8")
                if "png" not in formats:
                    for p in plots:  # only wanted inside the page
                        p.unlink()

        from hwcheck import __version__

        replace_folder(target, fill, {"tool": "hwcheck", "version": __version__, "name": self.name})
        return target


#: Rows of the cores table in report.md; a many-core mapping lists its fullest cores.
MD_CORES = 64


def _md(df: pd.DataFrame) -> str:
    """A DataFrame as a GitHub-flavoured Markdown table (no extra dependency)."""
    cols = [str(c) for c in df.columns]
    lines = ["| " + " | ".join(cols) + " |", "|" + "---|" * len(cols)]
    for _, row in df.iterrows():
        cells = []
        for v in row.tolist():
            if isinstance(v, float):
                cells.append("-" if math.isnan(v) else f"{v:.4g}")
            else:
                cells.append(str(v).replace("|", "/").replace("\n", " "))
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)
