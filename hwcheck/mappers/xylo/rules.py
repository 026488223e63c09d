"""Xylo's design rules: each takes the parsed network and returns every violation it finds."""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import pandas as pd

from hwcheck.graph import LayerNode
from hwcheck.mappers.base import ERROR, WARNING, Violation
from hwcheck.mappers.xylo.limits import QUANT_WARN_REL, TAU_WARN_PCT
from hwcheck.mappers.xylo.network import (
    _expansion,
    _fanout,
    _fmt_hz,
    _fmt_s,
    _input_targets,
    _Net,
    _neurons,
    _reach,
    _readout_sources,
    _rec_fanout_mean,
    _rec_parts,
    _rec_total,
    _tau_row,
    cycles_per_step,
    quantise_weights,
)

# =========================================================================== rules


def _representable_taus(tau_steps: float) -> tuple[float, float]:
    """The effective time constants (steps) Xylo can represent just below and above tau."""
    lo, d = 0.0, 1
    while True:
        t = -1.0 / math.log1p(-(2.0**-d))
        if t >= tau_steps:
            return lo, t
        lo, d = t, d + 1


def _lim_name(net: _Net) -> str:
    return net.profile.title or net.profile.name


def rule_input_channels(net: _Net) -> list[Violation]:
    lim, n = net.lim("input_channels"), net.n_in
    if n <= lim:
        return []
    lin = net.input_linear
    return [
        Violation(
            lin.name,
            "input_channels",
            n,
            lim,
            f"input channels of `{lin.name}` ({n}) > {lim} (Xylo SNN inputs).",
            f"reduce the input to {lim} channels (now {n}, {n - lim} too many): fewer filter "
            "bands / sensor features, or sum neighbouring channels before the chip.",
        )
    ]


def rule_hidden_neurons(net: _Net) -> list[Violation]:
    lim, n = net.lim("hidden_neurons"), net.n_hidden
    if n <= lim:
        return []
    # the layer at which the shared population overflows
    cum, breaker = 0, net.hidden[-1]
    for s in net.hidden:
        cum += _neurons(s)
        if cum > lim:
            breaker = s
            break
    parts = " + ".join(f"{s.name} {_neurons(s)}" for s in net.hidden)
    return [
        Violation(
            breaker.name,
            "hidden_neurons",
            n,
            lim,
            f"hidden neurons ({parts} = {n}) > {lim} (hidden population of {_lim_name(net)}); "
            f"overflows at `{breaker.name}`.",
            f"remove {n - lim} hidden neuron(s), e.g. shrink `{breaker.name}` from "
            f"{_neurons(breaker)} to {max(_neurons(breaker) - (n - lim), 0)}; all hidden layers "
            "share one population.",
        )
    ]


def rule_output_neurons(net: _Net) -> list[Violation]:
    lim, n, out = net.lim("output_neurons"), net.n_out, net.output
    warn = net.lim("output_neurons_warn")
    if n > lim:
        return [
            Violation(
                out.name,
                "output_neurons",
                n,
                lim,
                f"output neurons of `{out.name}` ({n}) > {lim} (readout of {_lim_name(net)}).",
                f"use <= {lim} output classes (now {n}): merge classes, or read a "
                f"{lim}-neuron code (e.g. binary) instead of one neuron per class.",
            )
        ]
    if warn is not None and n > warn:
        return [
            Violation(
                out.name,
                "output_neurons",
                n,
                warn,
                f"output neurons of `{out.name}` ({n}) > {warn}: the vendor DRC warns that only "
                f"{warn} output channels are supported (the chip has {lim} output neurons).",
                f"use <= {warn} output neurons to stay inside the supported output channels.",
                WARNING,
            )
        ]
    return []


def rule_synaptic_states(net: _Net) -> list[Violation]:
    out: list[Violation] = []
    for role, nodes, key in (
        ("hidden", net.hidden, "synaptic_states_hidden"),
        ("output", [net.output], "synaptic_states_output"),
    ):
        lim = net.lim(key)
        for s in nodes:
            n = int(s.attrs.get("synaptic_states", 1) or 0)
            if n > lim:
                out.append(
                    Violation(
                        s.name,
                        "synaptic_states",
                        n,
                        lim,
                        f"synaptic states per neuron of {role} layer `{s.name}` "
                        f"({s.attrs.get('neuron_model', s.type_name)}) ({n}) > {lim} ({role} neurons "
                        f"of {_lim_name(net)}).",
                        f"use a neuron with <= {lim} synaptic time constant(s) in `{s.name}` "
                        + (
                            "(e.g. sinabs LIF without tau_syn, or snnTorch Leaky)."
                            if lim <= 1
                            else "(e.g. sinabs LIF with one tau_syn)."
                        ),
                    )
                )
    return out


def rule_fanout(net: _Net) -> list[Violation]:
    lim = net.lim("max_fanout_hidden")
    out = []
    for s, total, parts in _fanout(net):
        if total.size == 0 or int(total.max()) <= lim:
            continue
        j = int(total.argmax())
        split = " + ".join(f"{int(v[j])} in `{name}`" for name, v in parts.items())
        n_over = int(np.count_nonzero(total > lim))
        names = " / ".join(f"`{name}`" for name in parts)
        out.append(
            Violation(
                s.name,
                "fanout",
                int(total.max()),
                lim,
                f"fan-out of hidden layer `{s.name}` ({int(total.max())} hidden neurons driven by "
                f"neuron {j}: {split}) > {lim} per hidden neuron; {n_over} neuron(s) over.",
                f"prune {names} so that each neuron of `{s.name}` drives <= {lim} hidden neurons "
                f"(remove >= {int(total.max()) - lim} targets of neuron {j}), or make the next "
                f"layer narrower.",
            )
        )
    return out


def rule_recurrent_memory(net: _Net) -> list[Violation]:
    """The whole recurrent weight memory (not only one neuron's share) must hold the network."""
    lim = net.lim("recurrent_weights_total")
    if lim is None:
        return []
    n = _rec_total(net)
    if n <= lim:
        return []
    per_layer = [(s, {k: int(m.sum()) for k, m in parts.items()}) for s, parts in _rec_parts(net)]
    split = " + ".join(f"{v} in `{k}`" for _, d in per_layer for k, v in d.items() if v)
    big = max(per_layer, key=lambda t: sum(t[1].values()))[0]
    avg = lim / net.n_hidden if net.n_hidden else 0.0
    fan_max = max((int(t.max()) for _, t, _ in _fanout(net) if t.size), default=0)
    extra = (
        f", although no neuron exceeds the {net.lim('max_fanout_hidden')}-target fan-out limit"
        if fan_max <= net.lim("max_fanout_hidden")
        else ""
    )
    return [
        Violation(
            big.name,
            "recurrent_memory",
            n,
            lim,
            f"recurrent weight memory: {n:,} entries ({split}) > {lim:,} (the whole recurrent "
            f"weight memory of {_lim_name(net)}; largest share `{big.name}`){extra}.",
            f"prune >= {n - lim:,} hidden-to-hidden / recurrent weights (an average fan-out of "
            f"<= {avg:.3g} targets per hidden neuron fits), or make the hidden layers narrower.",
        )
    ]


def rule_input_reach(net: _Net) -> list[Violation]:
    lim = net.lim("input_projection_reach")
    reach, _ = _reach(net)
    if reach <= lim:
        return []
    lin, first = net.input_linear, net.hidden[0]
    driven = _input_targets(net)
    lost = int(np.count_nonzero(driven[lim:]))
    n_driven = int(np.count_nonzero(driven))
    fix = (
        f"give only the first {lim} neurons of `{first.name}` input weights (reorder its neurons: "
        f"permute the rows of `{lin.name}` and the columns of the next weights; {lost} to move)"
        if n_driven <= lim
        else f"zero the input weights of >= {n_driven - lim} neurons of `{first.name}` and put "
        f"the rest first"
    )
    return [
        Violation(
            lin.name,
            "input_reach",
            reach,
            lim,
            f"input projection `{lin.name}` writes hidden neuron {reach - 1} of `{first.name}` "
            f"(rockpool maps `{first.name}` to hidden neurons 0..{_neurons(first) - 1}), but the "
            f"input weights of {_lim_name(net)} reach only the first {lim} hidden neurons: the "
            f"input weights of {lost} neuron(s) at positions >= {lim} would be dropped.",
            f"{fix}, or make `{first.name}` <= {lim} neurons and widen a later hidden layer.",
        )
    ]


def rule_readout_reach(net: _Net) -> list[Violation]:
    lim = net.lim("readout_reach")
    _, reach = _reach(net)
    if reach <= lim:
        return []
    lin, last = net.readout, net.hidden[-1]
    m = _neurons(last)
    read = _readout_sources(net)
    lost = int(np.count_nonzero(read[: m - lim]))
    n_read = int(np.count_nonzero(read))
    fix = (
        f"read only the last {lim} neurons of `{last.name}` (reorder its neurons: permute the "
        f"columns of `{lin.name}` and the rows of the weights into it; {lost} to move)"
        if n_read <= lim
        else f"zero the readout weights of >= {n_read - lim} neurons of `{last.name}` and put "
        f"the rest last"
    )
    return [
        Violation(
            lin.name,
            "readout_reach",
            reach,
            lim,
            f"readout `{lin.name}` reads neuron {m - reach} of `{last.name}` ({m} neurons, "
            f"allocated last by rockpool), but the readout of {_lim_name(net)} reads only the "
            f"last {lim} hidden neurons: the readout weights of {lost} neuron(s) before position "
            f"{m - lim} would be dropped.",
            f"{fix}, or make `{last.name}` <= {lim} neurons (add a narrower hidden layer before "
            "the readout).",
        )
    ]


def _weight_mats(net: _Net) -> dict[str, np.ndarray]:
    mats = {lin.name: net.weights[lin.name] for lin, _ in net.pairs}
    for s, w in net.rec_weights.items():
        mats[net.rec_names[s]] = w
    return mats


@dataclass
class _QGroup:
    """One scale group of rockpool's ``global_quantize``."""

    names: list[str]  # weight matrices of the group
    layer: LayerNode | None  # the spiking layer with the group's largest threshold
    threshold: float | None  # that threshold (model units)
    scale: float  # 2^(bits-1) - 1 over max|w| of the group
    limited: float  # threshold rescale of the vendor (1.0: none)
    table: pd.DataFrame  # quantise_weights' per-matrix errors


def _quant_groups(net: _Net) -> dict[str, _QGroup]:
    """``recurrent`` (input + hidden-to-hidden + recurrent weights, hidden thresholds) and
    ``readout`` (readout weights, output threshold), each with its own scale, as rockpool's
    ``global_quantize`` does."""
    mats = _weight_mats(net)
    bits, tbits = net.lim("weight_bits"), net.lim("threshold_bits")
    readout = net.readout.name
    groups = {
        "recurrent": ([n for n in mats if n != readout], net.hidden),
        "readout": ([readout], [net.output]),
    }
    out = {}
    for key, (names, nodes) in groups.items():
        thr = [
            (abs(float(s.attrs["threshold"])), s)
            for s in nodes
            if s.attrs.get("threshold") is not None
        ]
        thr_max, layer = max(thr, key=lambda t: t[0]) if thr else (None, None)
        sub = {n: mats[n] for n in names}
        eff, table = quantise_weights(sub, bits, thr_max, tbits)
        qmax = 2 ** (bits - 1) - 1
        wmax = max((float(np.abs(w).max()) for w in sub.values() if w.size), default=0.0)
        scale = qmax / wmax if wmax > 0 else 1.0
        out[key] = _QGroup(names, layer, thr_max, scale, eff / scale, table)
    return out


def _dequantised(w: np.ndarray, g: _QGroup, bits: int) -> np.ndarray:
    qmax = 2 ** (bits - 1) - 1
    q = np.clip(np.round(w * g.scale), -qmax - 1, qmax)
    if g.limited != 1.0:
        q = np.round(q * g.limited)
    return q / (g.scale * g.limited)


def rule_weight_quantisation(net: _Net) -> list[Violation]:
    bits = net.lim("weight_bits")
    out = []
    for key, g in _quant_groups(net).items():
        group = "input + recurrent weights" if key == "recurrent" else "the readout"
        for name, row in g.table.iterrows():
            rel = float(row["weight_quant_rmse_rel"])
            if rel <= QUANT_WARN_REL:
                continue
            out.append(
                Violation(
                    str(name),
                    "weight_quantisation",
                    round(rel, 4),
                    QUANT_WARN_REL,
                    f"{bits}-bit weight error of `{name}` (RMS {rel:.1%} of its RMS weight, max "
                    f"{row['weight_quant_max_abs_err']:.3g}) > {QUANT_WARN_REL:.0%} (one scale "
                    f"over {group}, as rockpool's global_quantize).",
                    "train with quantisation-aware training (int8, one scale for input + "
                    f"recurrent weights, one for the readout) or bring the weight magnitudes of "
                    f"`{name}` closer to the largest weight of {group} (weight normalisation per "
                    "layer and a matching threshold).",
                    WARNING,
                )
            )
    return out


def rule_threshold_range(net: _Net) -> list[Violation]:
    """A threshold past the signed threshold range: the vendor quantiser rescales threshold and
    weights together (a precision loss, a warning); an error once a weight matrix quantises to
    all zeros."""
    tbits = net.lim("threshold_bits")
    if tbits is None:
        return []
    bits = net.lim("weight_bits")
    qmax, tmax = 2 ** (bits - 1) - 1, 2 ** (tbits - 1) - 1
    out = []
    for key, g in _quant_groups(net).items():
        if g.limited == 1.0 or g.layer is None or g.threshold is None:
            continue
        s = g.layer
        q = g.threshold * g.scale
        ratio = tmax / qmax
        nz = {n: int(np.count_nonzero(_weight_mats(net)[n])) for n in g.names}
        dead = [n for n in g.names if nz[n] and int(g.table.at[n, "weight_quant_zeroed"]) == nz[n]]
        zeroed = int(g.table["weight_quant_zeroed"].sum())
        worst = g.table["weight_quant_rmse_rel"].idxmax()
        rms = float(g.table.at[worst, "weight_quant_rmse_rel"])
        head = (
            f"threshold of `{s.name}` in weight units ({g.threshold:g} x {g.scale:.3g} = {q:.0f}) "
            f"> {tmax} ({tbits}-bit threshold): the vendor quantiser scales the threshold and the "
            f"{'input + recurrent' if key == 'recurrent' else 'readout'} weights by "
            f"{g.limited:.3g} to fit"
        )
        hint = (
            f"scale the weights up (or the threshold of `{s.name}` down) by >= {q / tmax:.3g}x: "
            f"threshold / max|w| must be <= {ratio:.0f} to keep all {qmax} weight levels."
        )
        if dead:
            names = ", ".join(f"`{n}`" for n in dead)
            out.append(
                Violation(
                    s.name,
                    "threshold_range",
                    round(q),
                    tmax,
                    f"{head}, and every weight of {names} quantises to zero (the largest weight "
                    f"becomes {qmax} x {g.limited:.3g} = {qmax * g.limited:.3g} < 0.5).",
                    hint,
                )
            )
        else:
            out.append(
                Violation(
                    s.name,
                    "threshold_range",
                    round(q),
                    tmax,
                    f"{head}: precision loss, the largest weight keeps "
                    f"{int(np.round(qmax * g.limited))} of {qmax} levels, RMS weight error "
                    f"{rms:.1%} (worst `{worst}`), {zeroed} weight(s) quantise to zero.",
                    hint,
                    WARNING,
                )
            )
    return out


def rule_biases(net: _Net) -> list[Violation]:
    out = []
    names = [lin for lin, _ in net.pairs]
    for lin in names:
        b = getattr(lin.module, "bias", None)
        if b is None and not (lin.module is None and lin.attrs.get("bias")):
            continue
        nz = int((b != 0).sum()) if b is not None else int(lin.attrs.get("out_features", 0))
        if nz == 0:
            continue
        out.append(
            Violation(
                lin.name,
                "bias_dropped",
                f"{nz} nonzero biases",
                "no weight biases",
                f"Linear `{lin.name}` has {nz} nonzero bias(es); biases of weight layers are not "
                "transferred to Xylo.",
                f"train `{lin.name}` with bias=False (or fold a constant bias into an always-on "
                "input channel).",
                WARNING,
            )
        )
    return out


def rule_time_constants(net: _Net) -> list[Violation]:
    out = []
    for _, s in net.pairs:
        row = _tau_row(s, net.dt)
        for which in ("mem", "syn"):
            err = row[f"tau_{which}_err_pct"]
            if math.isnan(err):
                continue
            tau_steps = row[f"tau_{which}_s"] / net.dt
            if tau_steps <= 1.0:
                # rockpool's Xylo graph modules refuse it: dash = log2(tau / dt) needs tau > dt
                out.append(
                    Violation(
                        s.name,
                        "time_constant_le_dt",
                        round(row[f"tau_{which}_s"], 9),
                        round(net.dt, 9),
                        f"tau_{which} of `{s.name}` ({_fmt_s(row[f'tau_{which}_s'])} = "
                        f"{tau_steps:.3g} steps) <= dt {_fmt_s(net.dt)}: the vendor mapper cannot "
                        "turn it into a bit-shift decay (dash = log2(tau / dt)) and refuses it.",
                        f"use tau_{which} > dt: {_fmt_s(2 * net.dt)} (2 steps, dash 1) or more, "
                        f"or a shorter dt (< {_fmt_s(row[f'tau_{which}_s'])}).",
                    )
                )
                continue
            if abs(err) <= TAU_WARN_PCT:
                continue
            lo, hi = _representable_taus(tau_steps)
            dash = int(row[f"dash_{which}"])
            out.append(
                Violation(
                    s.name,
                    "time_constant",
                    round(row[f"tau_{which}_eff_s"], 9),
                    round(row[f"tau_{which}_s"], 9),
                    f"tau_{which} of `{s.name}` ({_fmt_s(row[f'tau_{which}_s'])} = {tau_steps:.3g} "
                    f"steps) becomes {_fmt_s(row[f'tau_{which}_eff_s'])} with bit-shift dash {dash} "
                    f"at dt {_fmt_s(net.dt)}: error {err:+.1f}% > {TAU_WARN_PCT:.0f}%.",
                    f"use a tau_{which} Xylo represents: {lo:.3g} or {hi:.3g} steps "
                    f"({_fmt_s(lo * net.dt)} / {_fmt_s(hi * net.dt)}), i.e. -1/ln(1 - 2^-dash), "
                    "or retrain with those values.",
                    WARNING,
                )
            )
    return out


def rule_reset(net: _Net) -> list[Violation]:
    out = []
    for _, s in net.pairs:
        reset = s.attrs.get("reset")
        if reset is None or reset == "subtract":
            continue
        out.append(
            Violation(
                s.name,
                "reset_mode",
                str(reset),
                "subtract",
                f"reset of `{s.name}` is {reset!r}; Xylo neurons reset by subtracting the threshold.",
                f"train `{s.name}` with a subtractive reset (sinabs MembraneSubtract, snnTorch "
                "reset_mechanism='subtract').",
                WARNING,
            )
        )
    return out


def rule_input_events(net: _Net) -> list[Violation]:
    lin, lim = net.input_linear, net.lim("max_input_events_per_step")
    v = net.activity(lin.name, "in_max_per_step")
    if v is None or v <= lim:
        return []
    return [
        Violation(
            lin.name,
            "input_events_per_step",
            v,
            lim,
            f"input events per channel per step into `{lin.name}` ({v:g}, measured) > {lim}.",
            f"clip the input at {lim} events per channel per step, or use a shorter dt "
            f"(now {_fmt_s(net.dt)}; about {lim / v:.2g}x to spread the events).",
        )
    ]


def rule_spikes_per_step(net: _Net) -> list[Violation]:
    out = []
    for role, nodes, key in (
        ("hidden", net.hidden, "max_spikes_per_step_hidden"),
        ("output", [net.output], "max_spikes_per_step_output"),
    ):
        lim = net.lim(key)
        for s in nodes:
            v = net.activity(s.name, "out_max_per_step")
            if v is None or v <= lim:
                continue
            out.append(
                Violation(
                    s.name,
                    "spikes_per_step",
                    v,
                    lim,
                    f"spikes per neuron per step of {role} layer `{s.name}` ({v:g}, measured) > {lim}.",
                    f"limit `{s.name}` to {lim} spike(s) per step (sinabs "
                    + ("SingleSpike spike_fn" if lim == 1 else f"MaxSpike({lim}) spike_fn")
                    + "), raise its threshold, or use a shorter dt.",
                )
            )
    return out


@dataclass
class _Realtime:
    cycles: float
    p_in: float
    p_hid: float
    measured: bool
    needed_clock_hz: float
    min_clock_hz: float


def _realtime(net: _Net) -> _Realtime | None:
    nien, noen = _expansion(net)
    p_in = p_hid = 1.0
    measured = False
    layers = getattr(net.analysis, "layers", None)
    if layers is not None:
        steps = getattr(net.analysis, "n_steps", None)
        ev = net.activity(net.input_linear.name, "events_in")
        spk = [net.activity(s.name, "spikes_out") for s in net.hidden]
        if steps and ev is not None and all(v is not None for v in spk):
            p_in = min(1.0, ev / (net.n_in * steps)) if net.n_in else 0.0
            p_hid = min(1.0, sum(spk) / (net.n_hidden * steps)) if net.n_hidden else 0.0
            measured = True
    cycles = cycles_per_step(
        net.profile,
        net.n_in,
        net.n_hidden,
        net.n_out,
        nien,
        noen,
        _rec_fanout_mean(net),
        p_in,
        p_hid,
    )
    if cycles is None:
        return None
    margin = net.lim("cycles_margin", 0.0)
    return _Realtime(cycles, p_in, p_hid, measured, cycles * (1 + margin) / net.dt, cycles / net.dt)


def rule_realtime(net: _Net) -> list[Violation]:
    rt = _realtime(net)
    if rt is None:
        return []
    clock = float(net.lim("clock_hz"))
    if rt.needed_clock_hz <= clock:
        return []
    basis = (
        f"measured p_in {rt.p_in:.3g}, p_hid {rt.p_hid:.3g}"
        if rt.measured
        else "worst case: every input and hidden neuron active every step"
    )
    over = rt.min_clock_hz > clock
    severity = ERROR if (over and rt.measured) else WARNING
    margin = net.lim("cycles_margin", 0.0)
    dt_needed = rt.cycles * (1 + margin) / clock
    cmax = net.lim("clock_hz_max")
    options = [f"use dt >= {_fmt_s(dt_needed)}"]
    if cmax is None or rt.needed_clock_hz <= cmax:
        options.append(f"run the main clock at >= {_fmt_hz(rt.needed_clock_hz)}")
    options.append(
        "cut hidden neurons / fan-out / activity (cycles grow with "
        "Nhid x (fan-out x 7 x p_hid + 22))"
    )
    tail = "" if rt.measured else "; pass measured activity to replace the worst case"
    if cmax is not None and rt.needed_clock_hz > cmax:
        tail += f" (the main clock cannot exceed {_fmt_hz(cmax)})"
    what = "cannot run in real time" if over else f"has less than the {margin:.0%} safety margin"
    return [
        Violation(
            "xylo",
            "realtime",
            round(rt.needed_clock_hz),
            clock,
            f"needed clock ({rt.cycles:,.0f} cycles per step x {1 + margin:g} / dt "
            f"{_fmt_s(net.dt)} = {_fmt_hz(rt.needed_clock_hz)}) > clock {_fmt_hz(clock)} "
            f"({basis}): the model {what}.",
            ", or ".join(options) + tail + ".",
            severity,
        )
    ]


Rule = Callable[[_Net], list[Violation]]

#: The design rules, run in order on a parsed network (structure is checked while parsing).
XYLO_RULES: list[Rule] = [
    rule_input_channels,
    rule_hidden_neurons,
    rule_output_neurons,
    rule_synaptic_states,
    rule_fanout,
    rule_recurrent_memory,
    rule_input_reach,
    rule_readout_reach,
    rule_weight_quantisation,
    rule_threshold_range,
    rule_biases,
    rule_time_constants,
    rule_reset,
    rule_input_events,
    rule_spikes_per_step,
    rule_realtime,
]
