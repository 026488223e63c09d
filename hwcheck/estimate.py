"""Energy and bandwidth estimates from an activity analysis, a chip profile and (optionally) a fit.

Energy per inference (one sample over its time window)::

    dynamic = ops x E_synop + neuron_updates x E_neuron + input_events x E_input
              + spikes x E_spike_out + time_steps x E_timestep
    static  = P_static x duration

``ops`` is the count the profile's figure applies to (``model.synop_convention``: ``synops`` for
event-driven chips, ``ops_dense`` for dense devices); ``neuron_updates`` is event- or
clock-driven (``model.neuron_update``). A term whose figure the profile lacks makes the dynamic
energy **unknown** -- it is reported as NaN with the missing figures named, never guessed. Where
a figure has ``low``/``high``, the estimate carries the range.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import pandas as pd

from hwcheck.activity import Analysis
from hwcheck.mappers.base import FitReport
from hwcheck.profiles import ChipProfile, Figure

__all__ = ["EnergyEstimate", "estimate_energy", "estimate_bandwidth", "Bandwidth"]

PJ_TO_UJ = 1e-6
HOT_CORE_RATIO = 3.0  # a core carrying this many times the mean load of the others is flagged


def _vals(fig: Figure | None) -> tuple[float, float, float] | None:
    """(low, typical, high) of a figure, or None when unknown."""
    if fig is None:
        return None
    v = float(fig.value)
    lo = float(fig.low) if fig.low is not None else v
    hi = float(fig.high) if fig.high is not None else v
    return lo, v, hi


@dataclass
class EnergyEstimate:
    """Energy of one inference on one chip.

    ``layers``: per layer, the counts used and ``energy_uJ`` (typical) with ``energy_low_uJ`` /
    ``energy_high_uJ``; NaN where the figure is unknown. ``totals``: ``dynamic_uJ``,
    ``static_uJ``, ``total_uJ`` (+ ``_low`` / ``_high``), ``power_mW`` (average over the window),
    ``energy_per_s_uJ``. ``missing``: figures the profile lacks for the dynamic part.
    ``assumptions``: every assumption with its source, for the report.
    """

    chip: str
    layers: pd.DataFrame
    totals: dict[str, float]
    missing: list[str] = field(default_factory=list)
    assumptions: list[str] = field(default_factory=list)

    @property
    def known(self) -> bool:
        return not self.missing

    def describe_unknown(self) -> str:
        if not self.missing:
            return ""
        return (
            f"dynamic energy unknown for {self.chip}: no published "
            + ", ".join(self.missing)
            + " (calibrate with `hwcheck calibrate` or set with --set energy.<figure>=...)"
        )


def estimate_energy(analysis: Analysis, profile: ChipProfile) -> EnergyEstimate:
    """Energy per inference of ``analysis`` on ``profile`` (see module docstring)."""
    conv = profile.synop_convention
    nu = profile.neuron_update
    e = profile.energy
    syn = _vals(e.get("synop_pJ"))
    neu = _vals(e.get("neuron_update_pJ"))
    spk = _vals(e.get("spike_out_pJ"))
    missing: list[str] = []
    if syn is None:
        missing.append("energy per synaptic operation (energy.synop_pJ)")
    if nu != "none" and neu is None:
        missing.append("energy per neuron update (energy.neuron_update_pJ)")

    df = analysis.layers
    rows = []
    tot = [0.0, 0.0, 0.0]
    for name, r in df.iterrows():
        ops = float(r[conv]) if r["kind"] in ("conv", "linear") else 0.0
        if nu == "event":
            updates = float(r["neuron_updates_event"])
        elif nu == "clock":
            updates = float(r["neuron_updates"])
        else:
            updates = 0.0
        spikes = float(r["spikes_out"]) if r["kind"] == "spiking" else 0.0
        e_lo = e_ty = e_hi = 0.0
        known = True
        for count, fig in ((ops, syn), (updates, neu), (spikes if spk else 0.0, spk)):
            if count == 0:
                continue
            if fig is None:
                known = False
                continue
            e_lo += count * fig[0] * PJ_TO_UJ
            e_ty += count * fig[1] * PJ_TO_UJ
            e_hi += count * fig[2] * PJ_TO_UJ
        if not known or missing:
            e_lo = e_ty = e_hi = math.nan
        tot = [tot[0] + e_lo, tot[1] + e_ty, tot[2] + e_hi]
        rows.append(
            {
                "layer": name,
                "kind": r["kind"],
                "ops": ops,
                "ops_convention": conv if r["kind"] in ("conv", "linear") else "-",
                "neuron_updates": updates,
                "spikes_out": spikes,
                "energy_uJ": e_ty,
                "energy_low_uJ": e_lo,
                "energy_high_uJ": e_hi,
            }
        )
    layers = pd.DataFrame(rows).set_index("layer") if rows else pd.DataFrame()
    assumptions = [
        f"profile {profile.name} ({profile.path})",
        f"dt = {analysis.dt:g} s, {analysis.n_steps:g} time steps per inference "
        f"({analysis.duration_s:g} s), {analysis.n_samples} sample(s) analysed",
        f"synaptic operations counted as `{conv}`; neuron updates {nu}-driven",
        "energy per inference from the mean activity per sample"
        + (" (p50/p95/max per sample in the layer table)" if getattr(analysis, "dist", None) is not None else ""),
    ]
    for key, fig in e.items():
        lo = fig.low if fig.low is not None else fig.value
        hi = fig.high if fig.high is not None else fig.value
        rng = f" (range {lo:g}..{hi:g})" if fig.is_range else ""
        assumptions.append(f"{key} = {fig.value:g} {fig.unit}{rng} [{fig.kind}] -- {fig.source}")

    extra = [0.0, 0.0, 0.0]
    inp = _vals(e.get("input_event_pJ"))
    if inp is not None:
        n = analysis.input_events / max(analysis.n_samples, 1)
        extra = [extra[i] + n * inp[i] * PJ_TO_UJ for i in range(3)]
    step = _vals(e.get("timestep_overhead_pJ"))
    if step is not None:
        extra = [extra[i] + analysis.n_steps * step[i] * PJ_TO_UJ for i in range(3)]
    dyn = [t + x for t, x in zip(tot, extra)]
    if missing:
        dyn = [math.nan] * 3
    stat_fig = _vals(e.get("static_power_mW"))
    dur = analysis.duration_s
    if stat_fig is None:
        stat = [math.nan] * 3
        assumptions.append(f"static power of {profile.name}: not published (static energy unknown)")
    else:
        stat = [p * 1e-3 * dur * 1e6 for p in stat_fig]  # mW x s -> uJ
    # an unpublished static power is left out of the total (and said so), not made up
    total = [d + (0.0 if math.isnan(s) else s) for d, s in zip(dyn, stat)]
    totals = {
        "dynamic_uJ": dyn[1],
        "dynamic_low_uJ": dyn[0],
        "dynamic_high_uJ": dyn[2],
        "static_uJ": stat[1],
        "static_low_uJ": stat[0],
        "static_high_uJ": stat[2],
        "total_uJ": total[1],
        "total_low_uJ": total[0],
        "total_high_uJ": total[2],
        "duration_s": dur,
        "power_mW": total[1] / dur * 1e-3 if dur else math.nan,  # uJ / s = uW
        "energy_per_s_uJ": total[1] / dur if dur else math.nan,
        "ann_once_uJ": math.nan,
    }
    if profile.family == "dense" and syn is not None:
        # the fair baseline for a converted network: the ANN it came from, run once per input
        # (every connection once), not the SNN simulated densely for every time step
        macs = float(sum(n.synapses for n in analysis.graph.by_kind("conv", "linear")))
        totals["ann_once_uJ"] = macs * syn[1] * PJ_TO_UJ
        assumptions.append(
            f"ANN baseline: the same layers run once as an ANN ({macs:.4g} MACs) at "
            f"{syn[1]:g} pJ per op = {totals['ann_once_uJ']:.4g} uJ per input"
        )
    return EnergyEstimate(profile.name, layers, totals, missing, assumptions)


@dataclass
class Bandwidth:
    """Event traffic per layer, per core and at the chip's edges, against published limits.

    ``table`` columns: ``scope`` (layer | core | chip_input | chip_output), ``unit``,
    ``events_per_s``, ``synops_per_s``, ``limit_per_s`` (NaN: no published limit),
    ``limit_name``, ``load_ratio`` (rate / limit), ``flag`` (text, ``"-"`` when fine), ``basis``
    (``"mean"``: over the sample's duration; ``"peak step"``: the busiest time step of any sample,
    from a dataset analysis, :mod:`hwcheck.dataset`).
    """

    chip: str
    table: pd.DataFrame
    flags: list[str] = field(default_factory=list)


def estimate_bandwidth(analysis: Analysis, profile: ChipProfile, fit: FitReport | None = None) -> Bandwidth:
    """Events/s and synops/s per layer, per core (from the fit's assignment) and at the chip
    input/output, compared with the profile's ``[bandwidth]`` limits where published."""
    df = analysis.layers
    bw = profile.bandwidth
    rows: list[dict[str, Any]] = []
    flags: list[str] = []

    def limit(key: str) -> tuple[float, str]:
        fig = bw.get(key)
        return (float(fig.value), key) if fig is not None else (math.nan, "no published limit")

    peaks = analysis.peak_events_per_s() if hasattr(analysis, "peak_events_per_s") else {}

    def add(scope: str, unit: str, ev: float, so: float, key: str | None, rate: float, basis: str = "mean") -> None:
        lim, lname = limit(key) if key else (math.nan, "no published limit")
        ratio = rate / lim if lim and not math.isnan(lim) else math.nan
        flag = "-"
        if not math.isnan(ratio) and ratio > 1:
            flag = f"over limit x{ratio:.2f}"
            flags.append(f"{scope} {unit}: {rate:.3g}/s > {lname} {lim:.3g}/s (x{ratio:.2f})")
        rows.append(
            {
                "scope": scope,
                "unit": unit,
                "events_per_s": ev,
                "synops_per_s": so,
                "limit_per_s": lim,
                "limit_name": lname,
                "load_ratio": ratio,
                "flag": flag,
                "basis": basis,
            }
        )

    for name, r in df.iterrows():
        if r["kind"] in ("conv", "linear", "spiking"):
            add("layer", str(name), float(r["events_out_per_s"]), float(r["synops_per_s"]), None, 0.0)

    if fit is not None and len(fit.layers) and "core" in fit.layers.columns:
        per_core: dict[str, list[float]] = {}
        for unit, row in fit.layers.iterrows():
            core = str(row.get("core", ""))
            if not core or core in ("-", "nan"):
                continue
            members = [m for m in str(row.get("members", "")).split(",") if m in df.index]
            so = float(sum(df.loc[m, "synops_per_s"] for m in members if df.loc[m, "kind"] in ("conv", "linear")))
            ev = float(sum(df.loc[m, "events_out_per_s"] for m in members if df.loc[m, "kind"] == "spiking"))
            n = max(int(row.get("n_cores", 1) or 1), 1)
            per_core[f"{core} ({unit})"] = [ev / n, so / n]
        loads = {k: v[1] for k, v in per_core.items()}
        for unit, (ev, so) in per_core.items():
            add("core", unit, ev, so, "synops_per_s_per_core", so)
        if len(loads) >= 2:
            for unit, so in loads.items():
                others = [v for k, v in loads.items() if k != unit]
                mean_others = sum(others) / len(others)
                if mean_others > 0 and so > HOT_CORE_RATIO * mean_others:
                    msg = (
                        f"core {unit} carries {so / mean_others:.1f}x the mean synops/s of the other "
                        "cores"
                    )
                    if profile.family == "dynapcnn":
                        msg += (
                            "; Speck's congestion balancer drops input events while a core is busy "
                            "(no published synops/s limit): check accuracy on chip"
                        )
                    flags.append(msg)
                    for row in rows:
                        if row["scope"] == "core" and row["unit"] == unit and row["flag"] == "-":
                            row["flag"] = f"hot core x{so / mean_others:.1f}"
    dur = analysis.duration_s
    s = analysis.summary()
    outs = [o for o in analysis.graph.outputs if o in df.index and df.loc[o, "kind"] == "spiking"]
    if peaks:  # a dataset: the limits are checked against the busiest step (sum of layer peaks)
        in_rate = peaks.get("input", math.nan)
        add("chip_input", "input", in_rate, math.nan, "input_events_per_s", in_rate, "peak step")
        out_rate = sum(peaks.get(o, 0.0) for o in outs)
        add("chip_output", "output", out_rate, math.nan, "output_events_per_s", out_rate, "peak step")
    else:
        add("chip_input", "input", float(s["input_events_per_s"]), math.nan, "input_events_per_s", float(s["input_events_per_s"]))
        out_rate = sum(float(df.loc[o, "events_out_per_s"]) for o in outs)
        add("chip_output", "output", out_rate if dur else math.nan, math.nan, "output_events_per_s", out_rate)
    return Bandwidth(profile.name, pd.DataFrame(rows), flags)
