"""The top-level jobs: check a model against chips, build a report, compare chips, calibrate.

Data flows one way: model -> graph (:mod:`hwcheck.graph`) -> activity (:mod:`hwcheck.activity`)
-> fit per chip family (:mod:`hwcheck.mappers`) and estimates (:mod:`hwcheck.estimate`) ->
:class:`hwcheck.report.Report`.
"""

from __future__ import annotations

import datetime as _dt
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import pandas as pd

from hwcheck.activity import Analysis, analyze
from hwcheck.estimate import estimate_bandwidth, estimate_energy
from hwcheck.graph import LayerGraph, describe
from hwcheck.mappers.base import FitReport
from hwcheck.nir_import import as_model
from hwcheck.profiles import FAMILIES, ChipProfile, ProfileError, list_profiles, load_profile
from hwcheck.progress import quiet
from hwcheck.report import ChipResult, Report

__all__ = ["check", "report", "compare", "calibrate", "resolve_chips"]


def _profile(chip: str | ChipProfile, overrides: Mapping[str, Any] | None = None) -> ChipProfile:
    p = chip if isinstance(chip, ChipProfile) else load_profile(chip)
    return p.with_overrides(overrides) if overrides else p


def resolve_chips(chips: str | ChipProfile | Sequence[str | ChipProfile]) -> list[str | ChipProfile]:
    """``"all"`` -> every bundled profile; a single name -> a list of one."""
    if isinstance(chips, (str, ChipProfile)):
        chips = [chips]
    out: list[str | ChipProfile] = []
    for c in chips:
        if c == "all":
            out.extend(n for n in list_profiles() if n not in out)
        else:
            out.append(c)
    if not out:
        raise ValueError("no chip given: name at least one chip profile (or 'all')")
    return out


def check(
    model: Any,
    chip: str | ChipProfile = "speck2f",
    input_shape: Sequence[int] | None = None,
    *,
    analysis: Analysis | None = None,
    graph: LayerGraph | None = None,
    overrides: Mapping[str, Any] | None = None,
    layout: str | None = None,
    timesteps: int | None = None,
) -> FitReport:
    """Does ``model`` fit ``chip``? Shapes only: no data, no vendor SDK.

    ``input_shape`` is one sample at one time step, e.g. ``(2, 128, 128)``. Pass an
    ``analysis`` to also check activity rules (e.g. Xylo's spikes per step). ``layout`` and
    ``timesteps`` override how time is read (see :func:`hwcheck.describe`).
    """
    profile = _profile(chip, overrides)
    if graph is None:
        graph = analysis.graph if analysis is not None else None
    if graph is None:
        model, input_shape = as_model(model, input_shape)  # a nir.NIRGraph or .nir file
        if input_shape is None:
            raise ValueError("check() needs input_shape (one sample, one time step), e.g. (2, 128, 128)")
        graph = describe(model, input_shape, layout=layout, timesteps=timesteps)
    fam = FAMILIES.get(profile.family)
    if fam is None or fam.mapper is None:
        raise ProfileError(f"{profile.path}: family {profile.family!r} has no mapper registered")
    fit = fam.mapper(graph, profile, analysis)
    for w in [*graph.notes, *graph.warnings]:
        fit.notes.append(w)
    return fit


def report(
    model: Any,
    chips: str | ChipProfile | Sequence[str | ChipProfile] = ("speck2f",),
    data: Any = None,
    *,
    input_shape: Sequence[int] | None = None,
    dt: float = 1e-3,
    name: str = "report",
    overrides: Mapping[str, Any] | None = None,
    analysis: Analysis | None = None,
    progress: bool | None = None,
    notes: Sequence[str] = (),
    layout: str | None = None,
    data_layout: str = "auto",
) -> Report:
    """Analyse ``model`` on ``data`` (if given) and check it against every chip.

    Without data, only the static fit is reported (no energy or bandwidth).
    """
    chips = resolve_chips(chips)
    model, input_shape = as_model(model, input_shape, dt)  # a nir.NIRGraph or .nir file
    if analysis is None and data is not None:
        analysis = analyze(model, data, dt=dt, progress=progress, layout=layout, data_layout=data_layout)
    graph = analysis.graph if analysis is not None else None
    if graph is None:
        if input_shape is None:
            raise ValueError("report() needs data or input_shape")
        graph = describe(model, input_shape, layout=layout)
    results = []
    with quiet(progress is False):
        for chip in resolve_chips(chips):
            profile = _profile(chip, overrides)
            fit = check(model, profile, graph=graph, analysis=analysis)
            energy = estimate_energy(analysis, profile) if analysis is not None else None
            bw = estimate_bandwidth(analysis, profile, fit) if analysis is not None else None
            results.append(ChipResult(fit, energy, bw))
    all_notes = list(notes)
    if analysis is None:
        all_notes.append("no data analysed: static fit only (energy and bandwidth need activity)")
    extra = analysis.notes() if analysis is not None else []
    for w in [*graph.notes, *graph.warnings, *extra]:
        if w not in all_notes:
            all_notes.append(w)
    return Report(name, analysis, results, all_notes, graph=graph)


def compare(
    model: Any,
    chips: str | Sequence[str | ChipProfile] = "all",
    data: Any = None,
    *,
    input_shape: Sequence[int] | None = None,
    dt: float = 1e-3,
    overrides: Mapping[str, Any] | None = None,
) -> pd.DataFrame:
    """One row per chip: fits, cores used / available, binding constraint, energy per inference
    (NaN with the reason in ``energy_note`` where unknown), violations. Best fitting, lowest
    energy first."""
    return report(model, chips, data, input_shape=input_shape, dt=dt, overrides=overrides).summary


def calibrate(
    model: Any,
    data: Any,
    chip: str | ChipProfile,
    *,
    dt: float = 1e-3,
    measured_power_mW: float | None = None,
    measured_energy_uJ: float | None = None,
    description: str = "user measurement",
    out_path: str | Path | None = None,
    analysis: Analysis | None = None,
    data_layout: str = "auto",
) -> tuple[ChipProfile, Path | None]:
    """Fit ``energy.synop_pJ`` of ``chip`` to a measurement of ``model`` running ``data``.

    Give the measured average power during inference (``measured_power_mW``) or the measured
    energy per inference (``measured_energy_uJ``). Known terms (static power, neuron updates
    where the profile has a figure) are subtracted first; the rest is attributed to synaptic
    operations. Writes a user profile (TOML) with the measurement as the figure's source when
    ``out_path`` is given. Returns the calibrated profile and the path written.
    """
    if (measured_power_mW is None) == (measured_energy_uJ is None):
        raise ValueError("give exactly one of measured_power_mW or measured_energy_uJ")
    profile = _profile(chip)
    if analysis is None:
        analysis = analyze(model, data, dt=dt, progress=False, data_layout=data_layout)
    dur = analysis.duration_s
    if measured_energy_uJ is None:
        measured_energy_uJ = float(measured_power_mW) * 1e-3 * dur * 1e6
    stat = profile.energy.get("static_power_mW")
    known_uJ = float(stat.value) * 1e-3 * dur * 1e6 if stat is not None else 0.0
    s = analysis.summary()
    neu = profile.energy.get("neuron_update_pJ")
    updates = {"event": s["neuron_updates_event"], "clock": s["neuron_updates"]}.get(profile.neuron_update, 0.0)
    if neu is not None:
        known_uJ += float(updates) * float(neu.value) * 1e-6
    ops = float(s[profile.synop_convention])
    if ops <= 0:
        raise ValueError("the analysed data caused no synaptic operations: cannot calibrate E_synop")
    remainder = measured_energy_uJ - known_uJ
    if remainder <= 0:
        raise ValueError(
            f"measured {measured_energy_uJ:.4g} uJ per inference is not above the known terms "
            f"({known_uJ:.4g} uJ: static power and neuron updates); check the measurement"
        )
    synop_pJ = remainder / ops * 1e6
    when = _dt.date.today().isoformat()
    source = (
        f"calibrated by hwcheck from {description} on {when}: "
        f"{measured_energy_uJ:.6g} uJ per inference over {ops:.6g} {profile.synop_convention}"
    )
    cal = profile.with_overrides({"energy.synop_pJ": synop_pJ}, source=source, kind="measured")
    if neu is None:
        # one measurement cannot separate synops from neuron updates: the dynamic energy is
        # attributed to synops, and the profile says so (instead of "neuron updates unknown")
        cal = cal.with_overrides(
            {"energy.neuron_update_pJ": 0.0},
            source=f"calibrated by hwcheck on {when}: included in energy.synop_pJ (one measurement "
            "cannot separate neuron updates from synaptic operations)",
            kind="measured",
        )
    written = None
    if out_path is not None:
        written = Path(out_path)
        write_profile(cal, written, name=written.stem)
    return cal, written


def write_profile(profile: ChipProfile, path: Path, name: str | None = None) -> None:
    """Write ``profile`` as a TOML file that :func:`load_profile` reads back (atomically)."""
    import tomli_w

    doc: dict[str, Any] = {
        "name": name or profile.name,
        "family": profile.family,
        "title": profile.title,
        "description": profile.description,
        "model": {"synop_convention": profile.synop_convention, "neuron_update": profile.neuron_update},
    }
    for section, fig in profile.figures():
        entry: dict[str, Any] = {"value": fig.value}
        entry.update({k: getattr(fig, k) for k in ("low", "high") if getattr(fig, k) is not None})
        entry.update(unit=fig.unit, kind=fig.kind, source=fig.source)
        if fig.note:
            entry["note"] = fig.note
        doc.setdefault(section, {})[fig.key] = entry
    from hwcheck.safe_write import write_file_atomic

    write_file_atomic(Path(path), tomli_w.dumps(doc))
