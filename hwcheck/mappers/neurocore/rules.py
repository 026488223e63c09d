"""The neurocore design rules and the activity figures they read.

Each rule looks at the graph, the populations or the numbered cores and returns every
:class:`~hwcheck.mappers.base.Violation` it finds, with a hint: layers the chip cannot run
(normalisation, non-spiking activations, max pooling), a neuron no core can hold, output axons
over the limit, non-binary weights on a crossbar, layers or models over a chip. Kept apart from
the mapper so that adding a rule does not touch the partition or the tables.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

import numpy as np
import pandas as pd
import torch

from hwcheck.graph import LayerGraph
from hwcheck.mappers.base import ERROR, WARNING, Violation
from hwcheck.mappers.neurocore.limits import CoreLimits
from hwcheck.mappers.neurocore.partition import CoreUse
from hwcheck.mappers.neurocore.population import Population
from hwcheck.profiles import ChipProfile


def _structural_violations(graph: LayerGraph, profile: ChipProfile) -> list[Violation]:
    out: list[Violation] = []
    chip = profile.name
    for node in graph:
        if node.kind == "norm":
            out.append(
                Violation(
                    node.name,
                    "batchnorm",
                    node.type_name,
                    "folded into weights",
                    f"`{node.name}`: {node.type_name} is not folded; {chip} has no normalisation "
                    "on chip",
                    "fold BatchNorm into the preceding conv/linear (scale its weights and bias) "
                    "before mapping",
                )
            )
        elif node.kind == "activation":
            out.append(
                Violation(
                    node.name,
                    "unsupported_layer",
                    node.type_name,
                    "spiking neurons",
                    f"`{node.name}`: {node.type_name} is not a spiking neuron; {chip} runs spiking "
                    "neurons only (counted here as if it were one)",
                    "convert the ANN to an SNN (e.g. sinabs.from_model, or replace the activation by "
                    "IAF/LIF neurons)",
                )
            )
        elif node.kind == "unknown":
            out.append(
                Violation(
                    node.name,
                    "unsupported_layer",
                    node.type_name,
                    "known layer",
                    f"`{node.name}`: {node.type_name} is not a layer hwcheck knows how to map "
                    f"onto {chip}",
                    "replace it by a supported layer or register it in hwcheck.layers",
                )
            )
        elif node.kind == "pool" and node.attrs.get("pool_type") == "max":
            out.append(
                Violation(
                    node.name,
                    "max_pool",
                    "max pooling",
                    "sum or average pooling",
                    f"`{node.name}`: max pooling has no synaptic equivalent on {chip}",
                    "use AvgPool/SumPool (folded into the next weight layer) instead of MaxPool",
                )
            )
    return out


def _spikes_out(analysis: Any) -> dict[str, float] | None:
    df = getattr(analysis, "layers", None)
    if not isinstance(df, pd.DataFrame) or "spikes_out" not in df:
        return None
    return {str(k): float(v) for k, v in df["spikes_out"].items()}


def _n_steps(analysis: Any) -> int | None:
    df = getattr(analysis, "layers", None)
    if isinstance(df, pd.DataFrame) and "n_steps" in df and len(df):
        return int(df["n_steps"].max())
    n = getattr(analysis, "n_steps", None)
    if isinstance(n, (int, float, np.integer, np.floating)) and not isinstance(n, bool) and n > 0:
        return int(round(float(n)))
    return None


def _binding(cores_df: pd.DataFrame, used: int, available: int, cpc: int, chips: int) -> str:
    if not used:
        return "none (no core count)"
    if used > available:
        return f"cores: {used:,} > {available:,} ({chips} chips of {cpc} cores)"
    best, best_ratio = f"cores: {used:,} / {available:,}", used / available
    for col, label in (
        ("neurons_pct", "neurons per core"),
        ("axons_in_pct", "input axons per core"),
        ("axons_out_pct", "output axons per core"),
        ("synapse_bits_pct", "synapse memory per core"),
    ):
        vals = cores_df[col].astype(float)
        if vals.notna().any() and vals.max() / 100.0 > best_ratio:
            best_ratio = vals.max() / 100.0
            core = int(vals.idxmax())
            best = (
                f"{label} ({vals.max():.0f} % in core {core}, layer {cores_df.loc[core, 'layer']})"
            )
    return best


def _per_neuron_rules(
    pops: list[Population], singles: Mapping[str, CoreUse], lim: CoreLimits, profile: ChipProfile
) -> list[Violation]:
    """A single neuron that no core can hold: too many inputs or too many synapse bits."""
    out: list[Violation] = []
    chip = profile.name
    for pop in pops:
        one = singles.get(pop.name)
        syn = pop.synapses_per_neuron()
        fan = int(syn.max()) if len(syn) else 0
        if lim.axons_in is not None and one is not None and one.axons_in > lim.axons_in:
            out.append(
                _fan_in_violation(pop, one.axons_in, lim.axons_in, "input axons per core", chip)
            )
        elif lim.fan_in is not None and fan > lim.fan_in:
            out.append(_fan_in_violation(pop, fan, lim.fan_in, "inputs per neuron", chip))
        if lim.synapse_bits is not None and one is not None and one.synapse_bits > lim.synapse_bits:
            per_syn = lim.weight_bits + lim.overhead_bits
            out.append(
                Violation(
                    pop.name,
                    "synapse_memory",
                    one.synapse_bits,
                    lim.synapse_bits,
                    f"`{pop.name}`: the synapses of one neuron need {one.synapse_bits:,} bits > "
                    f"{lim.synapse_bits:,} bits of synapse memory per core ({chip})",
                    f"reduce the fan-in of `{pop.name}` (about {lim.synapse_bits // per_syn:,} "
                    f"synapses of {per_syn} bits fit one core) or use fewer weight bits",
                )
            )
    return out


def _fan_in_violation(pop: Population, needed: int, limit: int, what: str, chip: str) -> Violation:
    return Violation(
        pop.name,
        "fan_in",
        needed,
        limit,
        f"`{pop.name}`: one neuron reads {needed:,} inputs > {limit:,} {what} ({chip})",
        _fan_in_hint(pop, needed, limit),
    )


def _fan_in_hint(pop: Population, needed: int, limit: int) -> str:
    factor = needed / limit
    if len(pop.weight_nodes) == 1 and not pop.folded_pools:
        return (
            f"cut each neuron's inputs by {factor:.2g}x to <= {limit:,}: fewer input channels "
            "or features, a smaller kernel, or groups (e.g. split the layer into "
            f"{math.ceil(factor)} layers of <= {limit:,} inputs and add their outputs in a "
            "further neuron layer)"
        )
    return (
        f"cut each neuron's inputs by {factor:.2g}x to <= {limit:,} (pooling windows folded "
        "in count once per source; smaller pools or fewer channels help)"
    )


def _output_axon_rule(
    pops: list[Population],
    parts: Mapping[str, tuple[str, list[CoreUse]]],
    core_rows: list[dict[str, Any]],
    out_axons: Mapping[str, np.ndarray],
    core_of: Mapping[str, np.ndarray],
    lim: CoreLimits,
    profile: ChipProfile,
) -> list[Violation]:
    if lim.axons_out is None:
        return []
    out: list[Violation] = []
    by_layer: dict[str, list[dict[str, Any]]] = {}
    for r in core_rows:
        if r["axons_out"] > lim.axons_out:
            by_layer.setdefault(r["layer"], []).append(r)
    for layer, rows in by_layer.items():
        worst = max(rows, key=lambda r: r["axons_out"])
        per_neuron = int(out_axons[layer].max())
        k = lim.axons_out // max(per_neuron, 1)
        if k == 0:
            hint = (
                f"a neuron of `{layer}` feeds {per_neuron} cores > {lim.axons_out} output axons "
                "per core, so no split of it helps: make the layers it feeds use fewer, fuller "
                f"cores (at most {lim.axons_out})"
            )
        else:
            hint = (
                f"a neuron of `{layer}` reaches up to {per_neuron} destination cores: put at "
                f"most {k} of its neurons per core (set limits.neurons_per_core={k}) or make the "
                "next layer use fewer, fuller cores"
            )
        out.append(
            Violation(
                layer,
                "output_axons",
                worst["axons_out"],
                lim.axons_out,
                f"`{layer}`: output axons {worst['axons_out']:,} > {lim.axons_out:,} per core "
                f"(core {worst['core']}; {len(rows)} core(s) over) ({profile.name})",
                hint,
            )
        )
    return out


def _crossbar_rule(
    graph: LayerGraph, pops: list[Population], profile: ChipProfile
) -> list[Violation]:
    if not profile.limit("crossbar_binary", False):
        return []
    out = []
    for pop in pops:
        for w in pop.weight_nodes:
            weight = getattr(graph[w].module, "weight", None)
            if not isinstance(weight, torch.Tensor):
                continue
            vals = torch.unique(weight.detach()[weight.detach() != 0])
            if len(vals) > 1:
                out.append(
                    Violation(
                        w,
                        "binary_crossbar",
                        f"{len(vals)} distinct weights",
                        "1 (binary crossbar)",
                        f"`{w}`: {len(vals):,} distinct nonzero weights; {profile.name} synapses are "
                        "binary crossbar bits (the weight comes from the source axon's type)",
                        "binarise the weights (one magnitude, sign via axon type) or quantise them to "
                        "the few per-neuron axon-type weights the chip offers",
                        WARNING,
                    )
                )
    return out


def _chip_rules(
    pops: list[Population],
    pop_cores: Mapping[str, list[int]],
    cores_used: int,
    chips_needed: int,
    cpc: int,
    chips_max: int | None,
    profile: ChipProfile,
) -> list[Violation]:
    out: list[Violation] = []
    for pop in pops:
        n = len(pop_cores.get(pop.name, []))
        if n > cpc:
            out.append(
                Violation(
                    pop.name,
                    "layer_exceeds_chip",
                    n,
                    cpc,
                    f"`{pop.name}`: needs {n:,} cores > {cpc:,} cores per chip "
                    f"({math.ceil(n / cpc)} chips for this layer alone)",
                    f"shrink `{pop.name}` ({pop.n:,} neurons) to about {pop.n * cpc // n:,} neurons "
                    f"to fit one chip, or run it across {math.ceil(n / cpc)} chips",
                    WARNING,
                )
            )
    if chips_needed > 1:
        over = chips_max is not None and chips_needed > int(chips_max)
        limit = int(chips_max) if chips_max is not None else 1
        out.append(
            Violation(
                "(model)",
                "chips",
                chips_needed,
                limit,
                f"needs {chips_needed} chips ({cores_used:,} cores > {cpc:,} per chip)"
                + (f" > {limit} chips available" if over else ""),
                f"reduce the model to <= {cpc * limit:,} cores (largest layers first) or "
                f"use a system of {chips_needed} chips; spikes between chips cost extra energy and "
                "latency",
                ERROR if over else WARNING,
            )
        )
    return out
