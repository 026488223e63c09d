"""Many-core neuromorphic chips: Intel Loihi / Loihi 2, IBM TrueNorth, SpiNNaker 1 / 2.

These chips are grids of identical cores. A core holds a slice of one layer's neurons together
with the synapses *into* those neurons (synapses live with the post-synaptic neuron), so a layer
is split over as many cores as its per-core needs require:

* neurons per core (Loihi: 1024 compartments; TrueNorth: 256; SpiNNaker: a software default),
* distinct input axons per core (the pre-synaptic sources that reach the core's neurons),
* synapse memory per core (nonzero synapses times the bits of the synapse encoding),
* output axons per core (one per (source neuron, destination core) pair).

Where the profile has ``conv_population_axons`` (Loihi, as nengo-loihi builds convolutions), a
convolution that mixes channels is read through population axons: one input axon per source
position, one output axon (``conv_population_axon_slots`` slots) per (source position,
destination core), and weights stored once per distinct weight list -- the in-channel atoms
times the neurons of the core a position reaches -- shared by positions that reach the same
neurons (relative to the first) through the same taps, in the same window of
``conv_population_base_compartments`` compartments (:meth:`reach.ConvTerm.counts`).

The mapper walks back from every neuron layer through pooling, reshapes and the weight layer to
the source neuron layers (pooling is folded into the weight layer's connectivity). For any block
of neurons it counts the synapses each source sends into the block: in closed form from the
layer's structure where :mod:`hwcheck.mappers.reach` covers it (conv / pool chains, pooled or
sparse linear layers), else by autograd on the layer's connectivity as a linear map with 0/1
weights (1 where the weight is nonzero). Layers are split readers first, so that a layer's
output axons (one per destination core of each neuron) are known when it is split. Neurons are
split greedily into contiguous blocks in one of two orders (flat ``(C, H, W)`` order or
position-major ``(H, W, C)`` order, whichever needs fewer cores). For feasibility tests that only
grow with the block (all but population weight memory), greedy is the fewest-cores contiguous
split; ``tests/test_neurocore.py`` checks it against a brute-force search. Population weight
memory can shrink as a block grows (a block that completes rows or channel planes shares more
lists), so for such layers splits kept to whole rows / planes are tried too and the fewest
cores kept (within one core of the brute-force optimum on the tests, pinned where not equal).

The package: :mod:`~hwcheck.mappers.neurocore.limits` (the profile schema, per-core limits and
the synapse encoding), :mod:`.population` (neuron layers and the maps that feed them),
:mod:`.partition` (the split into cores), :mod:`.axons` (output axons and inter-chip pairs),
:mod:`.rules` (the design rules); :func:`map_neurocore` here puts them together into the report.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pandas as pd

from hwcheck import progress
from hwcheck.graph import LayerGraph
from hwcheck.mappers.base import WARNING, FitReport, Violation
from hwcheck.mappers.neurocore.axons import _AxonTally, _plane_of, _ReaderCount
from hwcheck.mappers.neurocore.limits import (
    CHECKED_LIMITS,
    FAMILY,
    LIMITS,
    CoreLimits,
    core_limits,
    row_bits,
    synapse_bits,
)
from hwcheck.mappers.neurocore.limits import block_limits as block_limits
from hwcheck.mappers.neurocore.limits import index_bits as index_bits
from hwcheck.mappers.neurocore.limits import population_bits as population_bits
from hwcheck.mappers.neurocore.partition import (
    _RESOURCE_LABEL,
    CoreUse,
    _partition_population,
    _range,
    partition,
)
from hwcheck.mappers.neurocore.partition import ORDERS as ORDERS
from hwcheck.mappers.neurocore.partition import _evaluate as _evaluate
from hwcheck.mappers.neurocore.partition import relaxed_limits as relaxed_limits
from hwcheck.mappers.neurocore.partition import worst_neuron as worst_neuron
from hwcheck.mappers.neurocore.population import POPULATION_KINDS as POPULATION_KINDS
from hwcheck.mappers.neurocore.population import SOURCE_KINDS as SOURCE_KINDS
from hwcheck.mappers.neurocore.population import Population, build_populations
from hwcheck.mappers.neurocore.rules import (
    _binding,
    _chip_rules,
    _crossbar_rule,
    _n_steps,
    _output_axon_rule,
    _per_neuron_rules,
    _spikes_out,
    _structural_violations,
)
from hwcheck.profiles import ChipProfile, FamilySpec, register_family

__all__ = [
    "FAMILY",
    "LIMITS",
    "CoreLimits",
    "CoreUse",
    "Population",
    "build_populations",
    "core_limits",
    "map_neurocore",
    "partition",
    "row_bits",
    "synapse_bits",
]


def map_neurocore(graph: LayerGraph, profile: ChipProfile, analysis: Any = None) -> FitReport:
    """Partition every neuron layer into cores and check the many-core chip's limits."""
    lim = core_limits(profile)
    cpc = int(profile.limit("cores_per_chip"))
    chips_max = profile.limit("chips_max")
    chip = profile.name
    violations = _structural_violations(graph, profile)
    pops, conn_violations, notes = build_populations(graph)
    violations += conn_violations

    for key in CHECKED_LIMITS:
        if profile.limit(key) is None:
            notes.append(f"not checked: {key} unknown for {chip}")
    if not lim.partitionable:
        notes.append(
            f"no core count for {chip}: no per-core limit is known; set one with an override "
            "(e.g. limits.neurons_per_core=256)"
        )

    # --- partition each population, keeping the order that needs fewer cores
    parts: dict[str, tuple[str, list[CoreUse]]] = {}
    singles: dict[str, CoreUse] = {}
    readers = _ReaderCount(pops) if lim.axons_out is not None else None
    with progress.bar(sum(p.n for p in pops), f"mapping onto {chip}", "neuron") as shown:
        # readers first: a layer's output axons depend on how the layers it feeds are split
        for pop in reversed(pops):
            if readers is not None:
                pop.out_cost = readers.cost(pop.name)
                pop.out_pos = readers.positions(pop.name, lim.population_axon_slots)
                if pop.n and readers.worst(pop) > lim.axons_out:
                    # one neuron alone is over: reported by the rule below
                    pop.out_cost, pop.out_pos = None, None
            _partition_population(pop, lim, parts, singles, notes)
            if readers is not None and pop.name in parts:
                for c in parts[pop.name][1]:
                    readers.add(c.inputs(), pop.name)
            shown.update(pop.n)

    # --- global core numbering and chips
    core_rows: list[dict[str, Any]] = []
    core_of: dict[str, np.ndarray] = {}
    next_core = 0
    pop_cores: dict[str, list[int]] = {}
    for pop in pops:
        if pop.name not in parts:
            continue
        order, cores = parts[pop.name]
        perm = pop.order(order)
        owner = np.empty(pop.n, np.int64)
        ids = []
        for c in cores:
            owner[perm[c.start : c.end]] = next_core
            ids.append(next_core)
            core_rows.append(
                {
                    "core": next_core,
                    "chip": next_core // cpc,
                    "layer": pop.name,
                    "use": c,
                    "members": perm[c.start : c.end],
                }
            )
            next_core += 1
        core_of[pop.name] = owner
        pop_cores[pop.name] = ids
    cores_used = next_core
    chips_needed = max(1, math.ceil(cores_used / cpc)) if cores_used else 0

    # --- output axons (one per (source neuron, destination core), population axons one per
    #     (source position, destination core)) and inter-chip pairs
    planes = {p.name: _plane_of(p) for p in pops}
    tally = _AxonTally(core_of, cpc, planes)
    for row in core_rows:
        use: CoreUse = row["use"]
        for src, touch in use.inputs().items():
            tally.add(row["chip"], src, touch)
    out_axons, remote_pairs, pos_axons = tally.result()
    per_neuron_out = dict(out_axons)  # output axons of each neuron alone (for the rule's hint)
    for src, per_pos in pos_axons.items():
        per_neuron_out[src] = per_neuron_out[src] + lim.population_axon_slots * np.tile(
            per_pos, planes[src][0]
        )
    for row in core_rows:
        members = row.pop("members")
        got = int(out_axons[row["layer"]][members].sum())
        if row["layer"] in pos_axons:
            plane = planes[row["layer"]][1]
            held = np.unique(members % plane)
            got += lim.population_axon_slots * int(pos_axons[row["layer"]][held].sum())
        row["axons_out"] = got

    # --- tables
    def pct(v: float, limit: int | None) -> float:
        return float("nan") if not limit else 100.0 * v / limit

    cores_df = pd.DataFrame(
        [
            {
                "core": r["core"],
                "chip": r["chip"],
                "layer": r["layer"],
                "neurons": r["use"].neurons,
                "axons_in": r["use"].axons_in,
                "axons_out": r["axons_out"],
                "synapses": r["use"].synapses,
                "synapse_bits": r["use"].synapse_bits,
                "neurons_pct": pct(r["use"].neurons, lim.neurons),
                "axons_in_pct": pct(r["use"].axons_in, lim.axons_in),
                "axons_out_pct": pct(r["axons_out"], lim.axons_out),
                "synapse_bits_pct": pct(r["use"].synapse_bits, lim.synapse_bits),
            }
            for r in core_rows
        ],
        columns=[
            "core",
            "chip",
            "layer",
            "neurons",
            "axons_in",
            "axons_out",
            "synapses",
            "synapse_bits",
            "neurons_pct",
            "axons_in_pct",
            "axons_out_pct",
            "synapse_bits_pct",
        ],
    )
    pct_cols = ["neurons_pct", "axons_in_pct", "axons_out_pct", "synapse_bits_pct"]
    if len(cores_df):
        filled = cores_df[pct_cols].astype(float)
        cores_df["utilisation_pct"] = filled.max(axis=1, skipna=True)
        cores_df["binding"] = [
            _RESOURCE_LABEL[c.removesuffix("_pct")] if not math.isnan(u) else ""
            for c, u in zip(
                filled.fillna(-1.0).idxmax(axis=1), cores_df["utilisation_pct"], strict=True
            )
        ]
    else:
        cores_df["utilisation_pct"] = pd.Series(dtype=float)
        cores_df["binding"] = pd.Series(dtype=object)
    cores_df = cores_df.set_index("core")

    spikes = _spikes_out(analysis)
    layer_rows = []
    for pop in pops:
        order, cores = parts.get(pop.name, ("", []))
        ids = pop_cores.get(pop.name, [])
        sub = cores_df.loc[ids] if ids else cores_df.iloc[0:0]
        syn = pop.synapses_per_neuron()
        row: dict[str, Any] = {
            "layer": pop.name,
            "members": ",".join(pop.members),
            "kind": pop.kind,
            "neurons": pop.n,
            "n_cores": len(ids),
            "core": _range(ids),
            "chip": _range([i // cpc for i in ids]),
            "order": order,
            "synapses": int(syn.sum()),
            "fan_in_max": int(syn.max()) if len(syn) else 0,
            "axons_in_max_per_core": int(sub["axons_in"].max()) if len(sub) else 0,
            "axons_out_max_per_core": int(sub["axons_out"].max()) if len(sub) else 0,
            "synapse_bits_max_per_core": int(sub["synapse_bits"].max()) if len(sub) else 0,
            "split_by": sub["binding"].mode().iloc[0] if len(sub) and sub["binding"].any() else "",
            "interchip_axons": remote_pairs.get(pop.name, 0),
        }
        if spikes is not None:
            s = spikes.get(pop.name)
            row["interchip_spikes_per_sample"] = (
                float("nan")
                if s is None
                else float(s) * remote_pairs.get(pop.name, 0) / max(pop.n, 1)
            )
        layer_rows.append(row)
        notes.extend(pop.notes)
    layer_cols = [
        "members",
        "kind",
        "neurons",
        "n_cores",
        "core",
        "chip",
        "order",
        "synapses",
        "fan_in_max",
        "axons_in_max_per_core",
        "axons_out_max_per_core",
        "synapse_bits_max_per_core",
        "split_by",
        "interchip_axons",
    ]
    if spikes is not None:
        layer_cols.append("interchip_spikes_per_sample")
    layers_df = pd.DataFrame(layer_rows, columns=["layer", *layer_cols]).set_index("layer")

    # --- rules
    violations += _per_neuron_rules(pops, singles, lim, profile)
    violations += _output_axon_rule(pops, parts, core_rows, per_neuron_out, core_of, lim, profile)
    violations += _crossbar_rule(graph, pops, profile)
    violations += _chip_rules(pops, pop_cores, cores_used, chips_needed, cpc, chips_max, profile)
    for pop in pops:
        if pop.kind == "readout":
            violations.append(
                Violation(
                    pop.name,
                    "readout_without_neurons",
                    "no neurons after weights",
                    "neuron layer",
                    f"`{pop.name}`: no neuron layer follows it; counted as {pop.n} non-spiking "
                    "readout compartments",
                    f"add a neuron layer of {pop.n} neurons after `{pop.name}` (or read its "
                    "input spikes out and apply it on the host)",
                    WARNING,
                )
            )

    # --- notes
    folded = sorted({p for pop in pops for p in pop.folded_pools})
    if folded:
        notes.append(
            f"pooling folded into the next weight layer's connectivity: {', '.join(folded)} "
            "(each source in a pooling window gets its own synapse)"
        )
    if any(not p.exact for p in pops):
        names = ", ".join(p.name for p in pops if not p.exact)
        notes.append(
            f"synapse counts of {names} are upper bounds (overlapping pooling windows, "
            "merged branches or padding modes reach a source twice)"
        )
    if lim.synapse_bits is not None or lim.overhead_bits:
        notes.append(
            f"synapses: {lim.weight_bits}-bit weights, rows of "
            f"{lim.row_synapses or 'any number of'} synapses + {lim.row_header_bits} header bits "
            f"rounded to {lim.word_bits}-bit words; sparse encoding adds "
            + (f"index bits sized to the core (0 for one neuron, else 6 to {lim.overhead_bits})"
               if lim.index_bits_by_block else f"{lim.overhead_bits} index bits")
            + " per synapse, the dense one stores every neuron of the core; the cheaper "
            "per core is used"
            + (
                "; convolutions are read through population axons and store one weight list "
                "per distinct input-position pattern (shared across positions), sparse-encoded"
                if lim.population_axons
                else ""
            )
        )
    if cores_used:
        notes.append(
            "neurons split in flat (C,H,W) or position-major (H,W,C) order, whichever "
            "needs fewer cores (column `order`)"
        )
    if chips_needed > 1:
        total = sum(remote_pairs.values())
        msg = f"{chips_needed} chips: {total:,} (neuron, remote chip) pairs carry inter-chip spikes"
        if spikes is not None and "interchip_spikes_per_sample" in layers_df:
            per = float(np.nansum(layers_df["interchip_spikes_per_sample"].to_numpy(float)))
            msg += f"; about {per:,.0f} inter-chip spikes per sample (uniform firing per layer)"
        notes.append(msg)

    # --- summary
    cores_available = cpc * (int(chips_max) if chips_max else 1)
    summary: dict[str, Any] = {
        "cores_used": int(cores_used),
        "cores_available": int(cores_available),
        "chips_needed": int(chips_needed),
        "utilisation_pct": 100.0 * cores_used / cores_available if cores_available else 0.0,
        "binding_constraint": _binding(cores_df, cores_used, cores_available, cpc, chips_needed),
        "violations": 0,
        "neurons": int(sum(p.n for p in pops)),
        "synapses": int(layers_df["synapses"].sum()) if len(layers_df) else 0,
        "synapse_bits": int(cores_df["synapse_bits"].sum()) if len(cores_df) else 0,
    }
    ts = profile.limit("timestep_s")
    n_steps = _n_steps(analysis)
    if ts is not None and n_steps:
        summary["latency_s"] = float(ts) * n_steps
        notes.append(f"latency_s = {n_steps} time steps x {ts} s per step (global tick)")
    if spikes is not None and "interchip_spikes_per_sample" in layers_df:
        summary["interchip_spikes_per_sample"] = float(
            np.nansum(layers_df["interchip_spikes_per_sample"].to_numpy(float))
        )
    report = FitReport(chip, FAMILY, layers_df, cores_df, violations, summary, notes)
    report.summary["violations"] = len(violations)
    return report


register_family(
    FamilySpec(
        FAMILY,
        LIMITS,
        map_neurocore,
        "many-core chips: layers split across cores by neurons, axons and synapse memory",
    )
)
