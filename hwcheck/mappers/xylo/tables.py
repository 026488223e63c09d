"""The layers / cores / summary tables and the notes of a Xylo fit report."""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pandas as pd

from hwcheck.graph import LayerNode
from hwcheck.mappers.base import Violation
from hwcheck.mappers.xylo.network import (
    _fanout,
    _fmt_hz,
    _fmt_s,
    _Net,
    _reach,
    _rec_total,
    _tau_row,
)
from hwcheck.mappers.xylo.rules import _dequantised, _quant_groups, _realtime, _weight_mats


def _tables(
    net: _Net, violations: list[Violation]
) -> tuple[pd.DataFrame, pd.DataFrame, dict[str, Any]]:
    lim = net.lim
    hid_lim = lim("hidden_neurons")
    if not net.ok:
        layers = pd.DataFrame(
            columns=["members", "core", "n_cores", "neurons", "neurons_limit"]
        ).astype({"n_cores": "int64"})
        cores = pd.DataFrame(
            [{"capacity": hid_lim, "used": 0, "free": hid_lim, "assigned": ""}], index=["xylo"]
        )
        summary = {
            "cores_used": 0,
            "cores_available": 1,
            "utilisation_pct": 0.0,
            "binding_constraint": "structure: the model is not a Linear -> spiking chain",
            "violations": len(violations),
            "dt_s": net.dt,
        }
        return layers, cores, summary

    reach_in, reach_out = _reach(net)
    fan = _fanout(net)
    fan_max = max((int(t.max()) for _, t, _ in fan if t.size), default=0)
    rec_total = _rec_total(net)
    mats = _weight_mats(net)
    groups = _quant_groups(net)
    group_of = {n: g for g in groups.values() for n in g.names}
    bits = lim("weight_bits")

    def quant(names: list[str]) -> tuple[float, float]:
        ws = [mats[n] for n in names]
        if not ws or all(w.size == 0 for w in ws):
            return math.nan, math.nan
        # RMS over the pooled weights of the row (each with its group's scale), max over them
        e = np.concatenate(
            [(mats[n] - _dequantised(mats[n], group_of[n], bits)).ravel() for n in names]
        )
        a = np.concatenate([w.ravel() for w in ws])
        rms_a = float(np.sqrt(np.mean(a**2)))
        return (float(np.sqrt(np.mean(e**2))) / rms_a if rms_a > 0 else 0.0, float(np.abs(e).max()))

    def worst_tau(nodes: list[LayerNode]) -> dict[str, Any]:
        best: dict[str, Any] = {}
        for which in ("mem", "syn"):
            pick = None
            for s in nodes:
                r = _tau_row(s, net.dt)
                err = r[f"tau_{which}_err_pct"]
                if math.isnan(err):
                    continue
                if pick is None or abs(err) > abs(pick[1][f"tau_{which}_err_pct"]):
                    pick = (s, r)
            for col in (
                f"tau_{which}_s",
                f"dash_{which}",
                f"tau_{which}_eff_s",
                f"tau_{which}_err_pct",
            ):
                best[col] = pick[1][col] if pick else math.nan
            best[f"tau_{which}_layer"] = pick[0].name if pick else ""
        return best

    def act_max(nodes: list[LayerNode], col: str) -> float:
        vals = [net.activity(n.name, col) for n in nodes]
        vals = [v for v in vals if v is not None]
        return max(vals) if vals else math.nan

    rec_labels = [net.rec_names[s] for s in net.rec_weights]
    hidden_w = [lin.name for lin in net.hidden_linears] + rec_labels
    syn_hidden = max(int(s.attrs.get("synaptic_states", 1) or 0) for s in net.hidden)
    rows = {
        "input": {
            "members": net.input_linear.name,
            "neurons": net.n_in,
            "neurons_limit": lim("input_channels"),
            "synaptic_states": math.nan,
            "synaptic_states_limit": math.nan,
            "max_fanout": math.nan,
            "fanout_limit": math.nan,
            "reach": reach_in,
            "reach_limit": lim("input_projection_reach"),
            "weights": int(mats[net.input_linear.name].size),
            "weights_nonzero": int(np.count_nonzero(mats[net.input_linear.name])),
            "max_per_step": act_max([net.input_linear], "in_max_per_step"),
            "max_per_step_limit": lim("max_input_events_per_step"),
        },
        "hidden": {
            "members": ",".join(
                n.name for lin, sp in net.pairs[:-1] for n in (lin, sp) if n is not net.input_linear
            ),
            "neurons": net.n_hidden,
            "neurons_limit": hid_lim,
            "synaptic_states": syn_hidden,
            "synaptic_states_limit": lim("synaptic_states_hidden"),
            "max_fanout": fan_max,
            "fanout_limit": lim("max_fanout_hidden"),
            "reach": math.nan,
            "reach_limit": math.nan,
            "weights": int(sum(mats[n].size for n in hidden_w)),
            "weights_nonzero": int(sum(np.count_nonzero(mats[n]) for n in hidden_w)),
            "recurrent_entries": rec_total,
            "recurrent_entries_limit": lim("recurrent_weights_total", math.nan),
            "max_per_step": act_max(net.hidden, "out_max_per_step"),
            "max_per_step_limit": lim("max_spikes_per_step_hidden"),
        },
        "output": {
            "members": f"{net.readout.name},{net.output.name}",
            "neurons": net.n_out,
            "neurons_limit": lim("output_neurons"),
            "synaptic_states": int(net.output.attrs.get("synaptic_states", 1) or 0),
            "synaptic_states_limit": lim("synaptic_states_output"),
            "max_fanout": math.nan,
            "fanout_limit": math.nan,
            "reach": reach_out,
            "reach_limit": lim("readout_reach"),
            "weights": int(mats[net.readout.name].size),
            "weights_nonzero": int(np.count_nonzero(mats[net.readout.name])),
            "max_per_step": act_max([net.output], "out_max_per_step"),
            "max_per_step_limit": lim("max_spikes_per_step_output"),
        },
    }
    for key, names in (
        ("input", [net.input_linear.name]),
        ("hidden", hidden_w),
        ("output", [net.readout.name]),
    ):
        rows[key]["weight_quant_rmse_rel"], rows[key]["weight_quant_max_abs_err"] = quant(names)
    rows["input"].update(worst_tau([]))
    rows["hidden"].update(worst_tau(net.hidden))
    rows["output"].update(worst_tau([net.output]))
    layers = pd.DataFrame.from_dict(rows, orient="index")
    layers.insert(1, "core", "")
    layers.insert(2, "n_cores", 1)
    layers["n_cores"] = layers["n_cores"].astype("int64")

    cores = pd.DataFrame(
        [
            {
                "capacity": hid_lim,
                "used": net.n_hidden,
                "free": hid_lim - net.n_hidden,
                "input_channels_capacity": lim("input_channels"),
                "input_channels_used": net.n_in,
                "output_neurons_capacity": lim("output_neurons"),
                "output_neurons_used": net.n_out,
                "assigned": "input,hidden,output",
            }
        ],
        index=["xylo"],
    )

    # binding constraint: the resource closest to (or furthest over) its limit
    ratios: list[tuple[float, str]] = [
        (net.n_in / lim("input_channels"), f"input channels {net.n_in} / {lim('input_channels')}"),
        (net.n_hidden / hid_lim, f"hidden neurons {net.n_hidden} / {hid_lim}"),
        (
            net.n_out / lim("output_neurons"),
            f"output neurons {net.n_out} / {lim('output_neurons')}",
        ),
        (
            fan_max / lim("max_fanout_hidden"),
            f"hidden fan-out {fan_max} / {lim('max_fanout_hidden')}",
        ),
        (
            reach_in / lim("input_projection_reach"),
            f"input projection reach {reach_in} / {lim('input_projection_reach')}",
        ),
        (reach_out / lim("readout_reach"), f"readout reach {reach_out} / {lim('readout_reach')}"),
    ]
    if lim("recurrent_weights_total") is not None:
        ratios.append(
            (
                rec_total / lim("recurrent_weights_total"),
                f"recurrent weight memory {rec_total} / {lim('recurrent_weights_total')}",
            )
        )
    summary: dict[str, Any] = {
        "cores_used": 1,
        "cores_available": 1,
        "utilisation_pct": 100.0 * net.n_hidden / hid_lim,
        "dt_s": net.dt,
        "hidden_neurons": net.n_hidden,
        "input_channels": net.n_in,
        "output_neurons": net.n_out,
        "max_fanout_hidden": fan_max,
        "recurrent_weights": rec_total,
        "weight_scale": groups["recurrent"].scale * groups["recurrent"].limited,
        "weight_scale_readout": groups["readout"].scale * groups["readout"].limited,
    }
    rt = _realtime(net)
    if rt is not None:
        clock = float(lim("clock_hz"))
        summary.update(
            {
                "cycles_per_step": rt.cycles,
                "clock_hz": clock,
                "needed_clock_hz": rt.needed_clock_hz,
                "realtime_margin": clock / rt.needed_clock_hz
                if rt.needed_clock_hz > 0
                else math.inf,
                "latency_s": rt.cycles / clock,
                "p_in": rt.p_in,
                "p_hid": rt.p_hid,
                "activity_basis": "measured" if rt.measured else "worst case (p = 1)",
            }
        )
        clock_ratio = (
            rt.needed_clock_hz / clock,
            f"clock {_fmt_hz(rt.needed_clock_hz)} needed / {_fmt_hz(clock)}"
            + ("" if rt.measured else " (worst case)"),
        )
        # a worst-case clock estimate binds only when no hard resource is over its limit
        if rt.measured or max(r[0] for r in ratios) <= 1.0:
            ratios.append(clock_ratio)
    ratio, label = max(ratios, key=lambda r: r[0])
    summary["binding_constraint"] = f"{label} ({ratio:.0%})"
    summary["violations"] = len(violations)
    return layers, cores, summary


def _add_notes(net: _Net) -> None:
    notes = net.notes
    if net.ok:
        rt = _realtime(net)
        if rt is not None:
            notes.append(
                "real-time: rockpool's cycle model "
                + (
                    "with measured firing probabilities (events / (channels x steps), an upper "
                    "bound when one position has several events in a step; averages, not peaks)"
                    if rt.measured
                    else "in the worst case (every input channel and hidden neuron active every step, "
                    "p = 1); pass an activity analysis for measured probabilities"
                )
                + f"; cycles per step {rt.cycles:,.0f}, needed clock {_fmt_hz(rt.needed_clock_hz)} "
                f"(incl. {net.lim('cycles_margin', 0.0):.0%} margin) at dt {_fmt_s(net.dt)}."
            )
        else:
            notes.append("real-time: the profile lacks the cycle-model constants; not checked.")
        if any(
            getattr(s.module, "norm_input", False)
            for _, s in net.pairs
            if s.attrs.get("neuron_model") == "LIF"
        ):
            notes.append(
                "sinabs LIF with norm_input=True scales its input by (1 - exp(-1/tau_mem)); Xylo "
                "does not, so that factor must be folded into the weights before quantising."
            )
        if any(s.attrs.get("leak") is False for _, s in net.pairs):
            notes.append(
                "non-leaking neurons (IAF): Xylo always decays by a bit shift; a dash as large "
                "as the 16-bit state leaves the state unchanged (derived, not from a source)."
            )
    notes.append(
        "fan-out counts the hidden neurons a hidden neuron drives (next hidden layer and its own "
        "recurrent weights; a two-synapse target once); the readout weights have their own dense "
        "memory and are not counted (Audio 2 / Audio 3 RAM maps; assumed for IMU, whose RAM map "
        "is not published)."
    )
    notes.append(
        "quantisation as rockpool's global_quantize: one int scale over the input + recurrent "
        "weights, one over the readout (max |w| -> 2^(bits-1) - 1); a threshold past its range "
        "rescales its group; per-matrix bit shifts of the chip are not used."
    )
    if net.profile.limit("input_projection_reach", 0) < net.profile.limit("hidden_neurons", 0):
        notes.append(
            "reach by position, as rockpool allocates the hidden neurons: the input weights reach "
            "the first hidden layer's first "
            f"{net.profile.limit('input_projection_reach')} neurons, the readout reads the last "
            f"{net.profile.limit('readout_reach')} neurons of the last hidden layer; weights past "
            "them are dropped by the vendor's config_from_specification."
        )
    if not net.profile.energy:
        ctx = ", ".join(
            f"{k} {f.value:g} {f.unit} ({f.source.split(']')[0].lstrip('[')})"
            for k, f in net.profile.power.items()
        )
        notes.append(
            "energy: per-op energies of Xylo are not published (unknown unless calibrated); "
            + (f"measured context: {ctx}." if ctx else "no measured figures in the profile.")
        )
