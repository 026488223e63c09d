"""SynSense Xylo (Audio 2, Audio 3, IMU): does a feed-forward / recurrent SNN fit one chip?

Xylo is not a many-core chip: it runs one input projection (<= 16 channels), one hidden
population (recurrent-capable) and one readout. A model of the shape

    Linear -> LIF -> (Linear -> LIF)* -> Linear -> LIF

maps as: the first Linear is the input projection, every hidden LIF layer shares the hidden
population (the hidden-to-hidden Linears and the recurrent weights of ``*Recurrent`` layers become
the chip's recurrent weight matrix), the last Linear is the readout and the last LIF layer the
output neurons.

The checks are a list of named rule functions (:data:`XYLO_RULES`), each returning every
:class:`~hwcheck.mappers.base.Violation` it finds. Quantities a reader needs (quantisation error,
bit-shift time constants, cycles per time step) are reported as columns of
:attr:`FitReport.layers` and entries of :attr:`FitReport.summary`, not only as violations.

Conventions:
* time constants in the graph are in time steps (sinabs tau, snnTorch -1/ln(beta)); the model's
  ``dt`` (seconds) turns them into seconds and sets the real-time budget.
* Fan-out of a hidden neuron = the hidden neurons it drives: nonzero weights in its column of the
  next hidden Linear and of its layer's recurrent weights, a two-synapse target counted once (its
  Isyn and Isyn2 weights share one fan-out entry: RWTRAM and RWT2RAM run in parallel). The readout
  is not part of it: its weights sit in their own dense memory (OWTRAM) on every Xylo.
* A two-synapse layer is fed ``2N -> N`` as rockpool builds it: row ``2k + s`` of the Linear before
  it is synapse ``s`` of neuron ``k``.
* Reach is by position, as rockpool allocates neurons: the first hidden layer holds hidden neurons
  0..N-1 (input expansion neurons), the last hidden layer the last ones (output expansion
  neurons); the input weights reach the first ``input_projection_reach`` of them, the readout the
  last ``readout_reach``.
* Quantisation follows rockpool's ``global_quantize``: input and recurrent weights share one
  scale, the readout has its own, thresholds are scaled with their group.
* Activity rules (events / spikes per step, measured firing probabilities) use an activity
  analysis when one is given; without it the cycle model assumes the worst case (p = 1).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from hwcheck.graph import INPUT, LayerGraph, LayerNode
from hwcheck.mappers.base import ERROR, WARNING, FitReport, Violation
from hwcheck.profiles import ChipProfile, FamilySpec, FigureSpec, register_family

__all__ = [
    "map_xylo",
    "XYLO_LIMITS",
    "XYLO_RULES",
    "bitshift_decay",
    "quantise_weights",
    "time_constants",
    "cycles_per_step",
]

DEFAULT_DT_S = 1e-3
QUANT_WARN_REL = 0.05  # warn above 5 % RMS relative weight error
TAU_WARN_PCT = 10.0  # warn above 10 % time-constant error
PASS_THROUGH_KINDS = ("identity", "reshape")

XYLO_LIMITS: dict[str, FigureSpec] = {
    "input_channels": FigureSpec("int", True, "SNN input channels"),
    "hidden_neurons": FigureSpec("int", True, "neurons of the hidden population"),
    "output_neurons": FigureSpec("int", True, "readout (output) neurons"),
    "output_neurons_warn": FigureSpec(
        "int", False, "output neurons above which the vendor DRC warns"
    ),
    "synaptic_states_hidden": FigureSpec("int", True, "synaptic states per hidden neuron"),
    "synaptic_states_output": FigureSpec("int", True, "synaptic states per output neuron"),
    "max_fanout_hidden": FigureSpec("int", True, "max nonzero outgoing weights per hidden neuron"),
    "input_projection_reach": FigureSpec(
        "int", True, "hidden neurons the input projection reaches"
    ),
    "readout_reach": FigureSpec("int", True, "hidden neurons the readout can read from"),
    "recurrent_weights_total": FigureSpec(
        "int", False, "fan-out entries of the whole recurrent weight memory (all hidden neurons)"
    ),
    "weight_bits": FigureSpec("int", True, "signed weight precision"),
    "threshold_bits": FigureSpec("int", False, "signed threshold precision"),
    "max_input_events_per_step": FigureSpec("int", True, "input events per channel per time step"),
    "max_spikes_per_step_hidden": FigureSpec("int", True, "spikes per hidden neuron per step"),
    "max_spikes_per_step_output": FigureSpec("int", True, "spikes per output neuron per step"),
    "clock_hz": FigureSpec("number", True, "main clock the real-time check assumes"),
    "clock_hz_max": FigureSpec("number", False, "fastest main clock"),
    # cycle model (rockpool power_cycles_model.cycles_model); all optional: without them the
    # real-time check is skipped.
    "cycles_input_per_channel": FigureSpec("number", False, "cycles per input channel per step"),
    "cycles_input_per_target": FigureSpec("number", False, "cycles per (input event, target)"),
    "cycles_hidden_fixed": FigureSpec("number", False, "fixed Isyn cycles per hidden neuron"),
    "cycles_hidden_per_synapse": FigureSpec(
        "number", False, "cycles per recurrent synapse of a spike"
    ),
    "cycles_readout_per_source": FigureSpec("number", False, "cycles per spiking readout source"),
    "cycles_readout_per_output": FigureSpec(
        "number", False, "cycles per readout synapse of a spike"
    ),
    "cycles_hidden_spike_fixed": FigureSpec(
        "number", False, "fixed spike cycles per hidden neuron"
    ),
    "cycles_hidden_spike_var": FigureSpec(
        "number", False, "spike cycles per hidden neuron x p_hid"
    ),
    "cycles_output_fixed": FigureSpec("number", False, "cycles per output neuron per step"),
    "cycles_margin": FigureSpec("number", False, "safety margin of the needed clock (fraction)"),
    "cycles_expansion_neurons": FigureSpec(
        "str",
        False,
        "'all_hidden' (Nien = Noen = Nhid) or 'connected' (neurons with nonzero weights)",
    ),
}

CYCLE_KEYS = (
    "cycles_input_per_channel",
    "cycles_input_per_target",
    "cycles_hidden_fixed",
    "cycles_hidden_per_synapse",
    "cycles_readout_per_source",
    "cycles_readout_per_output",
    "cycles_hidden_spike_fixed",
    "cycles_hidden_spike_var",
    "cycles_output_fixed",
)


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


# =========================================================================== the mapper


def _resolve_dt(analysis: Any, dt: float | None, notes: list[str]) -> float:
    if dt is not None:
        if not dt > 0:
            raise ValueError(f"dt must be > 0 seconds, got {dt!r}")
        return float(dt)
    adt = getattr(analysis, "dt", None)
    if adt is not None and adt > 0:
        return float(adt)
    notes.append(
        f"dt not given (argument or analysis.dt): assumed {_fmt_s(DEFAULT_DT_S)} per time step "
        "for time constants and the real-time budget."
    )
    return DEFAULT_DT_S


def map_xylo(
    graph: LayerGraph,
    profile: ChipProfile,
    analysis: Any = None,
    dt: float | None = None,
) -> FitReport:
    """Check ``graph`` against one Xylo chip; collect every violation.

    Args:
        graph: the model's layer graph (:func:`hwcheck.graph.describe`).
        profile: a ``family = "xylo"`` chip profile.
        analysis: optional activity analysis (``.layers`` indexed by node name, ``.dt``); enables
            the per-step event/spike rules and replaces the worst-case firing probabilities of
            the cycle model by measured ones.
        dt: seconds per time step; defaults to ``analysis.dt``, else 1 ms (noted).
    """
    notes: list[str] = []
    dt_s = _resolve_dt(analysis, dt, notes)
    net = _Net(graph, profile, dt_s, analysis, notes=notes)
    _parse(net)
    violations = list(net.structure)
    if net.ok:
        for rule in XYLO_RULES:
            violations.extend(rule(net))
    layers, cores, summary = _tables(net, violations)
    _add_notes(net)
    return FitReport(
        chip=profile.name,
        family="xylo",
        layers=layers,
        cores=cores,
        violation_list=violations,
        summary=summary,
        notes=net.notes,
    )


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


register_family(
    FamilySpec(
        name="xylo",
        limits=XYLO_LIMITS,
        mapper=map_xylo,
        description="SynSense Xylo: one input projection, one hidden population, one readout.",
    )
)
