"""DYNAP-CNN / Speck: does the model fit the chip's cores, and if not, what to change.

The chip is a set of cores. Each core runs one *chip layer*: a weight layer (Conv2d, or a Linear
turned into a convolution over its whole input map) -> IAF neurons -> an optional sum pooling on
each of its (at most two) destinations. This package

1. groups the layer graph into chip layers (plus a DVS input layer when the model starts with
   pooling),
2. runs a list of named rules over the chip layers and the graph nodes, collecting *every*
   violation (errors and warnings are separate severities),
3. computes each chip layer's kernel, neuron and bias memory with the power-of-two rounding of
   sinabs' code, and assigns chip layers to cores by maximum bipartite matching; when no
   assignment exists it names a set of layers that has fewer fitting cores than members (Hall's
   condition) and says what would make one of them fit elsewhere.

Only shapes are needed: no forward pass over data, no samna. The family's limits schema is
registered on import (see :data:`LIMITS`). Modules: :mod:`.memory` (limits, memory formulas, core
sizes), :mod:`.layers` (chip layers), :mod:`.assign` (cores), :mod:`.rules`, :mod:`.tables`.
"""

from __future__ import annotations

from typing import Any

import pandas as pd

from hwcheck.graph import LayerGraph
from hwcheck.mappers.base import ERROR, FitReport, Violation
from hwcheck.mappers.dynapcnn.assign import CoreAssignment, assign_cores
from hwcheck.mappers.dynapcnn.layers import ChipLayer, build_chip_layers
from hwcheck.mappers.dynapcnn.memory import (
    FAMILY,
    LIMITS,
    RESOURCES,
    CoreTable,
    bias_memory_words,
    clog2,
    kernel_memory_words,
    neuron_memory_words,
)
from hwcheck.mappers.dynapcnn.rules import (
    LAYER_RULES,
    NODE_RULES,
    _best_hint,
    _core_groups,
    _Ctx,
    _fit_options,
    _Option,
    _shape,
    _v,
    fmt_cores,
    fmt_words,
    rule_sinabs_discretize,
)
from hwcheck.mappers.dynapcnn.tables import _cores_frame, _layers_frame, _summary
from hwcheck.profiles import ChipProfile, FamilySpec, register_family

__all__ = [
    "FAMILY",
    "LIMITS",
    "ChipLayer",
    "CoreTable",
    "CoreAssignment",
    "DynapcnnFitReport",
    "assign_cores",
    "bias_memory_words",
    "build_chip_layers",
    "clog2",
    "fmt_cores",
    "fmt_words",
    "kernel_memory_words",
    "map_dynapcnn",
    "neuron_memory_words",
]


def _memory_violations(layer: ChipLayer, cand: list[int], table: CoreTable) -> list[Violation]:
    """A layer that fits no core: name the resource, needed vs the largest core, and changes
    that make it fit."""
    if cand:
        return []
    need = dict(zip(RESOURCES, layer.need, strict=True))
    opts: list[_Option] = []
    for group in _core_groups(table):
        opts += _fit_options(layer, table.caps(group[0]), fmt_cores(group))
    out = []
    for i, r in enumerate(RESOURCES):
        caps = [table.caps(c)[i] for c in range(len(table))]
        top = max(caps)
        if need[r] > top:
            at = [c for c in range(len(table)) if caps[c] == top]
            rel = [o for o in opts if r != "bias" or "bias" in o.text] or opts
            fallback = (
                "remove the bias (bias=False)"
                if r == "bias"
                else "split the layer into smaller layers"
            )
            out.append(
                _v(
                    layer.name,
                    f"{r}-memory",
                    need[r],
                    top,
                    f"{r} memory {fmt_words(need[r])} > {fmt_words(top)} words "
                    f"(largest: core{'s' if len(at) > 1 else ''} {fmt_cores(at)})",
                    _best_hint(rel, fallback),
                )
            )
    if out:
        return out
    per = []
    for i, r in enumerate(RESOURCES):
        if need[r] == 0:
            continue
        have = [c for c in range(len(table)) if table.caps(c)[i] >= need[r]]
        per.append(
            f"{r} {fmt_words(need[r])} (core{'s' if len(have) > 1 else ''} {fmt_cores(have)})"
        )
    return [
        _v(
            layer.name,
            "memory-combination",
            ", ".join(f"{r} {fmt_words(need[r])}" for r in RESOURCES),
            "one core with all three",
            "no core has enough memory for all of " + ", ".join(per),
            _best_hint(opts, "split the layer into smaller layers"),
        )
    ]


def _hall_violation(
    layers: list[ChipLayer], zl: list[int], zc: list[int], table: CoreTable
) -> Violation:
    """Explain a missing assignment: ``zl`` layers fit only the ``zc`` cores, |zc| < |zl|."""
    names = ", ".join(layers[i].name for i in zl)
    k = len(zl)
    best = None
    for ri, r in enumerate(RESOURCES):
        m = min(layers[i].need[ri] for i in zl)
        if m == 0:
            continue
        have = [c for c in range(len(table)) if table.caps(c)[ri] >= m]
        if len(have) < k and (best is None or len(have) < len(best[2])):
            best = (r, m, have)
    if best is not None:
        r, m, have = best
        msg = (
            f"{k} layers ({names}) need >= {fmt_words(m)} {r} memory, but only {len(have)} "
            f"core{'s' if len(have) != 1 else ''} ({fmt_cores(have)}) have it"
        )
    else:
        msg = (
            f"{k} layers ({names}) fit only on {len(zc)} cores ({fmt_cores(zc)}); the other "
            "cores lack their kernel, neuron or bias memory"
        )
    outside = [c for c in range(len(table)) if c not in zc]
    opts: list[_Option] = []
    for group in _core_groups(table, outside):
        for i in zl:
            opts += _fit_options(layers[i], table.caps(group[0]), fmt_cores(group))
    surplus = k - len(zc)
    fallback = f"remove or merge {surplus} of these layers"
    hint = _best_hint(opts, fallback)
    if opts:
        hint = f"make one of them fit another core: {hint}; or {fallback}"
    return _v(names.replace(" ", ""), "core-assignment", k, len(zc), msg, hint)


# --------------------------------------------------------------------------- report


class DynapcnnFitReport(FitReport):
    """A :class:`FitReport` whose ``str()`` also shows the chip layers and their cores."""

    def __str__(self) -> str:
        text = super().__str__()
        if self.layers is None or not len(self.layers):
            return text
        rows = []
        for name, r in self.layers.iterrows():

            def mem(col: str, r: Any = r) -> str:
                v = r[col]
                return "-" if pd.isna(v) else fmt_words(int(v))

            def pct(col: str, r: Any = r) -> str:
                v = r[col]
                return "-" if pd.isna(v) else f"{v:.0f}%"

            rows.append(
                [
                    str(name),
                    r["core"] or "none",
                    _shape(r["in_shape"]),
                    _shape(r["out_shape"]),
                    f"{mem('kernel_mem_words')}/{mem('kernel_limit_words')}",
                    f"{mem('neuron_mem_words')}/{mem('neuron_limit_words')}",
                    f"{mem('bias_mem_words')}/{mem('bias_limit_words')}",
                    pct("kernel_util_pct"),
                    pct("neuron_util_pct"),
                ]
            )
        head = ["layer", "core", "in", "out", "kernel", "neuron", "bias", "kernel%", "neuron%"]
        widths = [max(len(h), *(len(row[i]) for row in rows)) for i, h in enumerate(head)]
        lines = ["  " + "  ".join(h.ljust(w) for h, w in zip(head, widths, strict=True))]
        lines += [
            "  " + "  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)) for row in rows
        ]
        return text + "\n  chip layers (memory used/core capacity, words):\n" + "\n".join(lines)


def _dedupe(vs: list[Violation]) -> list[Violation]:
    seen: set[tuple] = set()
    out = []
    for v in vs:
        key = (v.layer, v.rule, v.message)
        if key not in seen:
            seen.add(key)
            out.append(v)
    return out


def map_dynapcnn(
    graph: LayerGraph, profile: ChipProfile, analysis: Any = None
) -> DynapcnnFitReport:
    """Check ``graph`` against a DYNAP-CNN-family chip: every rule, memory, core assignment.

    ``analysis`` (activity) is accepted for the common mapper signature but not used: no
    per-core SynOps/s limit is published for these chips.
    """
    table = CoreTable.from_profile(profile)
    layers, dvs = build_chip_layers(graph)
    ctx = _Ctx(profile, table, graph, layers, dvs)
    notes: list[str] = []
    violations: list[Violation] = []

    for node in graph:
        if "recurrent_of" in node.attrs:
            continue
        for nrule in NODE_RULES:
            violations += nrule(node, ctx)
    units = ([dvs] if dvs is not None else []) + layers
    for unit in units:
        for rule in LAYER_RULES:
            violations += rule(unit, ctx)
    violations += rule_sinabs_discretize(layers, ctx)

    n_cores = len(table)
    if len(layers) > n_cores:
        violations.append(
            _v(
                "model",
                "layer-count",
                len(layers),
                n_cores,
                f"{len(layers)} chip layers (weight layer + IAF each) > {n_cores} cores",
                f"remove or merge {len(layers) - n_cores} layer{'s' if len(layers) - n_cores > 1 else ''} (e.g. fold two convs into one, or "
                "drop a layer and widen its neighbour)",
            )
        )
    assignment = assign_cores([layer.need for layer in layers], table)
    for layer, cand in zip(layers, assignment.candidates, strict=True):
        violations += _memory_violations(layer, cand, table)
    for zl, zc in assignment.witnesses:
        if len(layers) > n_cores and len(zc) == n_cores:
            continue  # the same fact as layer-count
        violations.append(_hall_violation(layers, zl, zc, table))
    violations = _dedupe(violations)

    # notes
    for unit in units:
        for d in unit.destinations:
            for p in d.pools:
                if p.attrs.get("pool_type") == "avg":
                    k = max(p.attrs.get("kernel_size", (1, 1)))
                    to = f" ('{d.target}')" if d.target else ""
                    notes.append(
                        f"AvgPool2d '{p.name}' ({k}x{k}) runs as SumPool on the chip: the next "
                        f"layer's weights{to} must be divided by k*k = {k * k} (sinabs does this "
                        "when converting)"
                    )
    for layer in layers:
        if layer.kind == "linear" and layer.kernel != (1, 1):
            notes.append(
                f"Linear '{layer.name}' runs as a conv with a {layer.kernel[0]}x{layer.kernel[1]} "
                f"kernel over its {_shape(layer.in_shape)} input map"
            )
    if analysis is not None:
        notes.append("activity not used: no per-core SynOps/s limit is published for this chip")
    notes.append(
        "memory words by sinabs' formulas: kernel = c_in * 2^(ceil(log2(kx*ky)) + "
        "ceil(log2(c_out))), neuron = c_out * 2^(ceil(log2(H_out)) + ceil(log2(W_out))), bias = c_out"
    )
    notes.append(
        "utilisation_pct = neuron memory needed by all chip layers / neuron memory of all cores"
    )

    layers_df = _layers_frame(units, layers, assignment, table)
    cores_df = _cores_frame(layers, assignment, table)
    errors = [v for v in violations if v.severity == ERROR]
    summary = _summary(layers, assignment, table, errors)
    summary["violations"] = len(violations)
    return DynapcnnFitReport(
        chip=profile.name,
        family=FAMILY,
        layers=layers_df,
        cores=cores_df,
        violation_list=violations,
        summary=summary,
        notes=list(dict.fromkeys(notes)),
    )



register_family(
    FamilySpec(
        name=FAMILY,
        limits=LIMITS,
        mapper=map_dynapcnn,
        description="SynSense DYNAP-CNN / Speck: convolutional cores, each conv -> IAF -> sum pool",
        validate=CoreTable.from_profile,
    )
)
