"""A layer graph read as Xylo's input projection, hidden population and readout, and what is
derived from it (fan-out, reach, time constants, cycles per step)."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from hwcheck.graph import INPUT, LayerGraph, LayerNode
from hwcheck.mappers.base import Violation
from hwcheck.mappers.xylo.limits import CYCLE_KEYS, DEFAULT_DT_S, PASS_THROUGH_KINDS
from hwcheck.profiles import ChipProfile

# =========================================================================== small pure helpers


def bitshift_decay(tau_steps: float | None) -> tuple[int | None, float | None, float | None]:
    """Xylo's bit-shift decay for a time constant given in time steps.

    Returns ``(dash, tau_eff_steps, err_pct)``: ``dash = max(0, round(log2(tau)))`` (as rockpool
    maps it), the decay per step is ``1 - 2**-dash``, so the effective time constant is
    ``-1 / ln(1 - 2**-dash)`` steps (0 for dash 0: the state is cleared every step).
    ``tau_steps = inf`` (no leak) gives ``(None, inf, 0.0)``; ``None`` gives ``(None, None, None)``.
    """
    if tau_steps is None or (isinstance(tau_steps, float) and math.isnan(tau_steps)):
        return None, None, None
    if math.isinf(tau_steps):
        return None, math.inf, 0.0
    if tau_steps <= 0:
        return 0, 0.0, -100.0
    dash = max(0, int(round(math.log2(tau_steps))))
    tau_eff = 0.0 if dash == 0 else -1.0 / math.log1p(-(2.0**-dash))
    err_pct = (tau_eff - tau_steps) / tau_steps * 100.0
    return dash, tau_eff, err_pct


def quantise_weights(
    mats: dict[str, np.ndarray],
    bits: int,
    threshold: float | None = None,
    threshold_bits: int | None = None,
) -> tuple[float, pd.DataFrame]:
    """Quantise a group of weight matrices with one scale ``(2**(bits-1) - 1) / max|w|``.

    This is one group of rockpool's ``global_quantize`` (input + recurrent weights, or the
    readout): one scale keeps the group's function; per-matrix errors are what the chip loses.
    With ``threshold`` (the group's largest threshold, in model units) and ``threshold_bits``, a
    threshold that no longer fits the signed ``threshold_bits`` integer after scaling is handled
    as the vendor does: threshold and integer weights are multiplied by
    ``limited = (2**(threshold_bits-1) - 1) / (threshold x scale)`` and rounded again, which
    costs precision (every weight quantises to zero once ``max|q| x limited < 0.5``).

    Returns the effective scale (integer weight = round(w x scale) up to the double rounding)
    and a table indexed by matrix name with ``weight_quant_rmse_rel`` (RMS error / RMS weight),
    ``weight_quant_max_abs_err`` (in weight units) and ``weight_quant_zeroed`` (nonzero weights
    that quantise to 0).
    """
    qmax = 2 ** (bits - 1) - 1
    wmax = max((float(np.abs(w).max()) for w in mats.values() if w.size), default=0.0)
    scale = qmax / wmax if wmax > 0 else 1.0
    limited = 1.0
    if threshold is not None and threshold_bits is not None:
        tq = abs(float(threshold)) * scale
        tmax = 2 ** (threshold_bits - 1) - 1
        if tq > tmax:
            limited = tmax / tq
    rows = {}
    for name, w in mats.items():
        q = np.clip(np.round(w * scale), -qmax - 1, qmax)
        if limited != 1.0:
            q = np.round(q * limited)
        err = w - q / (scale * limited)
        rms_w = float(np.sqrt(np.mean(w**2))) if w.size else 0.0
        rms_e = float(np.sqrt(np.mean(err**2))) if w.size else 0.0
        rows[name] = {
            "weight_quant_rmse_rel": rms_e / rms_w if rms_w > 0 else 0.0,
            "weight_quant_max_abs_err": float(np.abs(err).max()) if w.size else 0.0,
            "weight_quant_zeroed": int(np.count_nonzero((w != 0) & (q == 0))),
        }
    df = pd.DataFrame.from_dict(
        rows,
        orient="index",
        columns=["weight_quant_rmse_rel", "weight_quant_max_abs_err", "weight_quant_zeroed"],
    )
    return scale * limited, df


def _fmt_hz(hz: float) -> str:
    return f"{hz / 1e9:.3g} GHz" if hz >= 1e9 else f"{hz / 1e6:.3g} MHz"


def _fmt_s(s: float) -> str:
    if s >= 1:
        return f"{s:.3g} s"
    if s >= 1e-3:
        return f"{s * 1e3:.3g} ms"
    return f"{s * 1e6:.3g} us"


# =========================================================================== the parsed network


@dataclass
class _Net:
    """The model as Xylo sees it (filled by :func:`_parse`)."""

    graph: LayerGraph
    profile: ChipProfile
    dt: float
    analysis: Any = None
    pairs: list[tuple[LayerNode, LayerNode]] = field(default_factory=list)  # (linear, spiking)
    rec_weights: dict[str, np.ndarray] = field(default_factory=dict)  # spiking name -> (H, H)
    rec_names: dict[str, str] = field(default_factory=dict)  # spiking name -> rec weight label
    structure: list[Violation] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    weights: dict[str, np.ndarray] = field(default_factory=dict)  # linear name -> (out, in)

    # ---- roles
    @property
    def ok(self) -> bool:
        return len(self.pairs) >= 2

    @property
    def input_linear(self) -> LayerNode:
        return self.pairs[0][0]

    @property
    def hidden(self) -> list[LayerNode]:
        return [s for _, s in self.pairs[:-1]]

    @property
    def hidden_linears(self) -> list[LayerNode]:
        return [lin for lin, _ in self.pairs[1:-1]]

    @property
    def readout(self) -> LayerNode:
        return self.pairs[-1][0]

    @property
    def output(self) -> LayerNode:
        return self.pairs[-1][1]

    @property
    def n_in(self) -> int:
        lin = self.input_linear
        return int(lin.attrs.get("in_features", self.weights[lin.name].shape[1]))

    @property
    def n_hidden(self) -> int:
        return sum(_neurons(s) for s in self.hidden)

    @property
    def n_out(self) -> int:
        return _neurons(self.output)

    def lim(self, key: str, default: Any = None) -> Any:
        return self.profile.limit(key, default)

    def activity(self, node: str, column: str) -> float | None:
        """A column of the activity analysis for one node, or None."""
        layers = getattr(self.analysis, "layers", None)
        if layers is None or node not in layers.index or column not in layers.columns:
            return None
        v = layers.at[node, column]
        try:
            v = float(v)
        except (TypeError, ValueError):
            return None
        return None if math.isnan(v) else v


def _neurons(node: LayerNode) -> int:
    if node.neurons:
        return int(node.neurons)
    return int(np.prod(node.out_shape)) if node.out_shape else 0


def _linear_weight(node: LayerNode, notes: list[str]) -> np.ndarray:
    """The (out, in) weight matrix of a Linear node, as float64 numpy."""
    w = getattr(node.module, "weight", None)
    if w is not None:
        return w.detach().cpu().double().numpy().reshape(w.shape[0], -1)
    out_f = int(node.attrs.get("out_features", 0))
    in_f = int(node.attrs.get("in_features", 0))
    notes.append(f"`{node.name}`: no weights available; counted as dense ({out_f} x {in_f}).")
    return np.ones((out_f, in_f))


def _rec_weight(node: LayerNode, notes: list[str]) -> tuple[str, np.ndarray] | None:
    """The recurrent (H, H) weights of a recurrent spiking node (sinabs ``rec_connect``,
    snnTorch ``recurrent``)."""
    from hwcheck.layers import recurrent_module

    found = recurrent_module(node.module) if node.module is not None else None
    rec = found[1] if found else None
    if rec is None:
        notes.append(
            f"`{node.name}` is recurrent but its recurrent weights are not reachable; "
            "its recurrent fan-out is not counted."
        )
        return None
    import torch.nn as nn  # local: reading weights needs torch, the rest of the module does not

    lin = (
        rec
        if isinstance(rec, nn.Linear)
        else next((m for m in rec.modules() if isinstance(m, nn.Linear)), None)
    )
    if lin is None:
        notes.append(
            f"`{node.name}`: recurrent connection {type(rec).__name__} has no Linear; its "
            "recurrent fan-out is not counted."
        )
        return None
    return f"{node.name}.{found[0]}", lin.weight.detach().cpu().double().numpy()


def _parse(net: _Net) -> None:
    """Find the Linear -> spiking chain; record structural violations instead of stopping."""
    g = net.graph
    skipped: set[str] = set()
    rec_paths: dict[str, str] = {}  # module path prefix of a recurrent layer -> its node name
    for node in g:
        if node.kind == "spiking" and node.attrs.get("recurrent"):
            rec_paths[node.module_path + "."] = node.name

    rec_weight_nodes: set[str] = set()

    def resolve(name: str, seen: frozenset[str] = frozenset()) -> list[str]:
        """Predecessors of ``name`` seen through pass-through nodes; the recurrent weights of a
        layer (and self loops) are part of that layer, not of the chain."""
        out: list[str] = []
        for p in g.predecessors(name):
            if p == name or p in seen or p in rec_weight_nodes:
                continue
            if p in skipped:
                out.extend(x for x in resolve(p, seen | {name}) if x not in out)
            elif p not in out:
                out.append(p)
        return out

    chain: list[LayerNode] = []
    after_unsupported: set[str] = set()  # chain nodes right after an unsupported layer
    pending_unsupported = False
    for node in g:
        # a Linear inside a recurrent layer (its rec_connect) is part of that layer
        if node.kind == "linear" and any(node.module_path.startswith(p) for p in rec_paths):
            skipped.add(node.name)
            rec_weight_nodes.add(node.name)
            continue
        if node.kind in PASS_THROUGH_KINDS:
            skipped.add(node.name)
            continue
        if node.kind not in ("linear", "spiking"):
            hint = {
                "conv": "Xylo has no convolutions: flatten the input to <= 16 channels and use Linear layers.",
                "pool": "Xylo has no pooling: pool the features before the chip (in the front end) or drop the layer.",
                "norm": "fold the normalisation into the adjacent Linear weights (and thresholds) before deployment.",
                "activation": "replace the activation by a spiking layer (sinabs LIF/IAF) or remove it.",
                "neuron": "Xylo neurons always spike: use a spiking LIF readout and read its spikes.",
                "merge": "Xylo runs one chain: remove the merge (no residual connections on Xylo).",
            }.get(node.kind, "describe the layer with hwcheck.layers.register_layer, or remove it.")
            net.structure.append(
                Violation(
                    node.name,
                    "unsupported_layer",
                    f"{node.kind} ({node.type_name})",
                    "Linear, spiking neurons",
                    f"{node.type_name} layer `{node.name}` ({node.kind}) cannot run on Xylo "
                    "(allowed: Linear -> spiking neurons chains).",
                    hint,
                )
            )
            skipped.add(node.name)
            pending_unsupported = True
            continue
        if pending_unsupported:
            after_unsupported.add(node.name)
            pending_unsupported = False
        chain.append(node)

    # data flow: a chain, each node fed only by the previous one
    prev = INPUT
    for node in chain:
        preds = resolve(node.name)
        if preds != [prev]:
            net.structure.append(
                Violation(
                    node.name,
                    "not_a_chain",
                    f"inputs {preds or ['none']}",
                    f"[{prev}]",
                    f"`{node.name}` is fed by {', '.join(preds) or 'nothing'}, not only by `{prev}`: "
                    "Xylo runs a single chain (input -> hidden -> readout).",
                    f"feed `{node.name}` from one layer only (now {len(preds)} sources): remove "
                    "residual / skip connections and parallel branches, or concatenate the "
                    "branches into one layer.",
                )
            )
        prev = node.name

    # alternation Linear, spiking, Linear, spiking ...
    i = 0
    while i < len(chain):
        node = chain[i]
        if node.kind == "linear":
            nxt = chain[i + 1] if i + 1 < len(chain) else None
            if nxt is None:
                net.structure.append(
                    Violation(
                        node.name,
                        "output_not_neurons",
                        "Linear output",
                        "spiking output neurons",
                        f"the model ends with Linear `{node.name}`; Xylo's readout ends in "
                        "spiking output neurons.",
                        f"add a spiking layer (e.g. sinabs LIF) after `{node.name}` and read its spikes.",
                    )
                )
                i += 1
            elif nxt.kind == "linear":
                if nxt.name in after_unsupported:  # a consequence of the unsupported layer
                    i += 1
                    continue
                net.structure.append(
                    Violation(
                        nxt.name,
                        "consecutive_weights",
                        f"`{node.name}` -> `{nxt.name}`",
                        "Linear -> spiking",
                        f"Linear `{node.name}` feeds Linear `{nxt.name}` directly; Xylo needs "
                        "neurons between weight layers.",
                        f"fold them into one Linear (W = W_{nxt.name} @ W_{node.name}) or put "
                        "a spiking layer between them.",
                    )
                )
                i += 1
            else:
                net.pairs.append((node, nxt))
                i += 2
        else:
            if node.name in after_unsupported:  # a consequence of the unsupported layer
                i += 1
                continue
            what = "the model input" if i == 0 else f"`{chain[i - 1].name}`"
            net.structure.append(
                Violation(
                    node.name,
                    "neurons_without_weights",
                    f"{what} -> `{node.name}`",
                    "Linear -> spiking",
                    f"spiking layer `{node.name}` is fed by {what} without a Linear; on Xylo every "
                    "neuron population is fed by a weight matrix.",
                    f"put a Linear before `{node.name}` (for the input: Linear(n_in, n) with n <= "
                    f"{net.lim('input_projection_reach')}).",
                )
            )
            i += 1

    if len(net.pairs) < 2:
        net.structure.append(
            Violation(
                net.pairs[0][1].name if net.pairs else (chain[-1].name if chain else "model"),
                "too_few_neuron_layers",
                len(net.pairs),
                2,
                f"{len(net.pairs)} Linear -> spiking stage(s) found; Xylo needs >= 2 "
                "(a hidden population and the output neurons).",
                "use Linear -> LIF (hidden) -> Linear -> LIF (output) at least.",
            )
        )
        return

    out = net.output
    if out.attrs.get("recurrent"):
        net.structure.append(
            Violation(
                out.name,
                "output_recurrent",
                "recurrent output layer",
                "feed-forward output layer",
                f"output layer `{out.name}` is recurrent; Xylo's output neurons cannot be recurrent.",
                f"make `{out.name}` feed-forward, or add a recurrent hidden layer before the readout.",
            )
        )

    for lin, _ in net.pairs:
        net.weights[lin.name] = _linear_weight(lin, net.notes)
    for s in net.hidden:
        if s.attrs.get("recurrent"):
            rw = _rec_weight(s, net.notes)
            if rw is not None:
                net.rec_names[s.name], net.rec_weights[s.name] = rw


# =========================================================================== derived quantities


def _by_neuron(w: np.ndarray, n_target: int) -> np.ndarray:
    """``(targets, sources)`` bool: does source j drive target neuron i on any synapse?

    A matrix with ``2 x n_target`` rows feeds a two-synapse layer (rockpool's ``2N -> N``): row
    ``2k + s`` is synapse ``s`` of neuron ``k`` (rockpool reshapes the weights to ``(.., N, 2)``).
    """
    nz = w != 0
    if n_target and nz.shape[0] == 2 * n_target:
        return nz.reshape(n_target, 2, -1).any(axis=1)
    return nz


def _rec_parts(net: _Net) -> list[tuple[LayerNode, dict[str, np.ndarray]]]:
    """Per hidden layer: ``{weight label: (targets, this layer's neurons) bool}`` of the recurrent
    weight memory it writes: the next hidden Linear and its own recurrent weights."""
    out = []
    hidden = net.hidden
    for k, s in enumerate(hidden):
        parts: dict[str, np.ndarray] = {}
        if k + 1 < len(hidden):
            lin, tgt = net.pairs[k + 1]
            parts[lin.name] = _by_neuron(net.weights[lin.name], _neurons(tgt))
        if s.name in net.rec_weights:
            parts[net.rec_names[s.name]] = _by_neuron(net.rec_weights[s.name], _neurons(s))
        out.append((s, parts))
    return out


def _fanout(net: _Net) -> list[tuple[LayerNode, np.ndarray, dict[str, np.ndarray]]]:
    """Per hidden layer: (node, fan-out per neuron, {weight label: fan-out per neuron}).

    Fan-out = hidden neurons driven (a two-synapse target counted once); the readout has its own
    memory and is not counted.
    """
    out = []
    for s, parts in _rec_parts(net):
        counts = {name: m.sum(axis=0).astype(np.int64) for name, m in parts.items()}
        total = sum(counts.values()) if counts else np.zeros(_neurons(s), dtype=np.int64)
        out.append((s, np.asarray(total), counts))
    return out


def _rec_total(net: _Net) -> int:
    """Entries of the recurrent weight memory: (source, target neuron) pairs with a weight."""
    return int(sum(int(m.sum()) for _, parts in _rec_parts(net) for m in parts.values()))


def _input_targets(net: _Net) -> np.ndarray:
    """Per neuron of the first hidden layer: has it a nonzero input weight?"""
    w = net.weights[net.input_linear.name]
    return _by_neuron(w, _neurons(net.hidden[0])).any(axis=1)


def _readout_sources(net: _Net) -> np.ndarray:
    """Per neuron of the last hidden layer: has it a nonzero readout weight?"""
    return (net.weights[net.readout.name] != 0).any(axis=0)


def _expansion(net: _Net) -> tuple[int, int]:
    """(Nien, Noen): hidden neurons with a nonzero input weight / a nonzero readout weight."""
    return int(np.count_nonzero(_input_targets(net))), int(np.count_nonzero(_readout_sources(net)))


def _reach(net: _Net) -> tuple[int, int]:
    """(input reach, readout reach) by position, as rockpool allocates the hidden neurons.

    The first hidden layer holds hidden neurons 0..N-1: the input reach is 1 + the last of them
    with a nonzero input weight. The last hidden layer holds the last hidden neurons: the readout
    reach is M - the first of its M neurons with a nonzero readout weight.
    """
    ins = np.flatnonzero(_input_targets(net))
    outs = np.flatnonzero(_readout_sources(net))
    m = _neurons(net.hidden[-1])
    return (int(ins[-1]) + 1 if ins.size else 0, m - int(outs[0]) if outs.size else 0)


def _rec_fanout_mean(net: _Net) -> float:
    """Average recurrent fan-out per hidden neuron (entries of the recurrent weight memory)."""
    if net.n_hidden == 0:
        return 0.0
    return _rec_total(net) / net.n_hidden


def cycles_per_step(
    profile: ChipProfile,
    n_in: int,
    n_hidden: int,
    n_out: int,
    n_ien: int,
    n_oen: int,
    fanout_mean: float,
    p_in: float = 1.0,
    p_hid: float = 1.0,
) -> float | None:
    """Master-clock cycles per time step from rockpool's published cycle model.

    ``Nin (p_in Nien c_tgt + c_ch) + Nhid (fanout c_syn p_hid + c_fix) + Noen p_hid (c_src +
    Nout c_out) + Nhid (c_spk + c_var p_hid) + Nout c_ofix``. ``p_in``/``p_hid`` are the
    probabilities that an input channel / a hidden neuron has an event in a step (1 = worst case).
    Returns None when the profile lacks a constant.
    """
    c = {k: profile.limit(k) for k in CYCLE_KEYS}
    if any(v is None for v in c.values()):
        return None
    if profile.limit("cycles_expansion_neurons", "all_hidden") != "connected":
        n_ien = n_oen = n_hidden
    return (
        n_in * (p_in * n_ien * c["cycles_input_per_target"] + c["cycles_input_per_channel"])
        + n_hidden
        * (fanout_mean * c["cycles_hidden_per_synapse"] * p_hid + c["cycles_hidden_fixed"])
        + n_oen * p_hid * (c["cycles_readout_per_source"] + n_out * c["cycles_readout_per_output"])
        + n_hidden * (c["cycles_hidden_spike_fixed"] + c["cycles_hidden_spike_var"] * p_hid)
        + n_out * c["cycles_output_fixed"]
    )


def time_constants(graph: LayerGraph, dt: float = DEFAULT_DT_S) -> pd.DataFrame:
    """Per spiking node: tau_mem / tau_syn, their Xylo bit-shift (dash) and effective values.

    Columns ``tau_mem_s, dash_mem, tau_mem_eff_s, tau_mem_err_pct`` and the same for ``syn``;
    seconds at ``dt``. A non-leaky neuron (IAF) has tau_mem inf and error 0.
    """
    rows = {}
    for node in graph.by_kind("spiking"):
        rows[node.name] = _tau_row(node, dt)
    cols = [
        col
        for w in ("mem", "syn")
        for col in (f"tau_{w}_s", f"dash_{w}", f"tau_{w}_eff_s", f"tau_{w}_err_pct")
    ]
    return pd.DataFrame.from_dict(rows, orient="index", columns=cols)


def _tau_row(node: LayerNode, dt: float) -> dict[str, float]:
    row: dict[str, float] = {}
    for which in ("mem", "syn"):
        tau = node.attrs.get(f"tau_{which}")
        if which == "mem" and tau is None and node.attrs.get("leak") is False:
            tau = math.inf
        dash, tau_eff, err = bitshift_decay(None if tau is None else float(tau))
        row[f"tau_{which}_s"] = math.nan if tau is None else float(tau) * dt
        row[f"dash_{which}"] = math.nan if dash is None else float(dash)
        row[f"tau_{which}_eff_s"] = math.nan if tau_eff is None else tau_eff * dt
        row[f"tau_{which}_err_pct"] = math.nan if err is None else err
    return row
