"""The layers / cores / summary tables of a DYNAP-CNN fit report."""

from __future__ import annotations

from typing import Any

import pandas as pd

from hwcheck.mappers.base import Violation
from hwcheck.mappers.dynapcnn.assign import CoreAssignment
from hwcheck.mappers.dynapcnn.layers import ChipLayer
from hwcheck.mappers.dynapcnn.memory import CoreTable
from hwcheck.mappers.dynapcnn.rules import fmt_cores, fmt_words

LAYER_COLUMNS = [
    "members",
    "core",
    "n_cores",
    "type",
    "in_shape",
    "out_shape",
    "kernel_size",
    "stride",
    "padding",
    "pooling",
    "destinations",
    "fits_cores",
    "kernel_mem_words",
    "neuron_mem_words",
    "bias_mem_words",
    "kernel_limit_words",
    "neuron_limit_words",
    "bias_limit_words",
    "kernel_util_pct",
    "neuron_util_pct",
]


def _layers_frame(
    units: list[ChipLayer], layers: list[ChipLayer], a: CoreAssignment, table: CoreTable
) -> pd.DataFrame:
    index = {layer.name: i for i, layer in enumerate(layers)}
    rows = []
    for u in units:
        i = index.get(u.name)
        core = a.core_of[i] if i is not None else None
        caps = table.caps(core) if core is not None else (None, None, None)
        k, n, b = u.need
        rows.append(
            {
                "members": ",".join(u.members),
                "core": "dvs" if not u.is_core else ("" if core is None else str(core)),
                "n_cores": 0 if core is None else 1,
                "type": u.kind,
                "in_shape": tuple(u.in_shape),
                "out_shape": tuple(u.out_shape),
                "kernel_size": max(u.kernel) if u.is_core else 0,
                "stride": max(u.stride) if u.kind == "conv" else 1,
                "padding": max(u.padding, default=0) if u.kind == "conv" else 0,
                "pooling": ",".join(str(d.factor) for d in u.destinations)
                if u.destinations
                else "",
                "destinations": ",".join(d.target or "out" for d in u.destinations),
                "fits_cores": fmt_cores(a.candidates[i]) if i is not None else "",
                "kernel_mem_words": k,
                "neuron_mem_words": n,
                "bias_mem_words": b,
                "kernel_limit_words": caps[0],
                "neuron_limit_words": caps[1],
                "bias_limit_words": caps[2],
                "kernel_util_pct": 100.0 * k / caps[0] if caps[0] else float("nan"),
                "neuron_util_pct": 100.0 * n / caps[1] if caps[1] else float("nan"),
            }
        )
    df = pd.DataFrame(
        rows, columns=LAYER_COLUMNS, index=pd.Index([u.name for u in units], name="layer")
    )
    for col in ("kernel_limit_words", "neuron_limit_words", "bias_limit_words"):
        df[col] = df[col].astype("Int64")
    for col in ("kernel_util_pct", "neuron_util_pct"):
        df[col] = df[col].astype(float)
    return df


def _cores_frame(layers: list[ChipLayer], a: CoreAssignment, table: CoreTable) -> pd.DataFrame:
    on_core = {c: layers[i] for i, c in enumerate(a.core_of) if c is not None}
    rows = []
    for c in range(len(table)):
        K, N, B = table.caps(c)
        layer = on_core.get(c)
        k, n, b = layer.need if layer is not None else (0, 0, 0)
        rows.append(
            {
                "kernel_capacity_words": K,
                "neuron_capacity_words": N,
                "bias_capacity_words": B,
                "kernel_used_words": k,
                "neuron_used_words": n,
                "bias_used_words": b,
                "kernel_free_words": K - k,
                "neuron_free_words": N - n,
                "bias_free_words": B - b,
                "assigned_layer": layer.name if layer is not None else "",
                "kernel_util_pct": 100.0 * k / K if K else 0.0,
                "neuron_util_pct": 100.0 * n / N if N else 0.0,
            }
        )
    return pd.DataFrame(rows, index=pd.Index(range(len(table)), name="core"))


_BINDING_ORDER = (
    "layer-count",
    "core-assignment",
    "kernel-memory",
    "neuron-memory",
    "bias-memory",
    "memory-combination",
)


def _summary(
    layers: list[ChipLayer], a: CoreAssignment, table: CoreTable, errors: list[Violation]
) -> dict[str, Any]:
    n_cores = len(table)
    used = sum(c is not None for c in a.core_of)
    neuron_need = sum(layer.neuron_mem for layer in layers)
    kernel_need = sum(layer.kernel_mem for layer in layers)
    neuron_cap = sum(table.neuron)
    kernel_cap = sum(table.kernel)
    ratios: list[tuple[float, str]] = [
        (used / n_cores if n_cores else 0.0, f"cores: {used} of {n_cores} used")
    ]
    for layer, c in zip(layers, a.core_of, strict=True):
        if c is None:
            continue
        for ri, r in enumerate(("kernel", "neuron")):
            cap = table.caps(c)[ri]
            need = layer.need[ri]
            if cap:
                ratios.append(
                    (
                        need / cap,
                        f"{r} memory of '{layer.name}' on core {c}: {fmt_words(need)} of "
                        f"{fmt_words(cap)} words ({100 * need / cap:.0f}%)",
                    )
                )
    max_core = max((r for r, _ in ratios[1:]), default=0.0)
    if errors:
        ranked = sorted(
            errors,
            key=lambda v: (
                _BINDING_ORDER.index(v.rule) if v.rule in _BINDING_ORDER else len(_BINDING_ORDER)
            ),
        )
        binding = f"{ranked[0].layer}: {ranked[0].message}"
    else:
        binding = max(ratios, key=lambda t: t[0])[1]
    return {
        "cores_used": used,
        "cores_available": n_cores,
        "chip_layers": len(layers),
        "utilisation_pct": 100.0 * neuron_need / neuron_cap if neuron_cap else 0.0,
        "binding_constraint": binding,
        "kernel_mem_words": kernel_need,
        "neuron_mem_words": neuron_need,
        "kernel_capacity_words": kernel_cap,
        "neuron_capacity_words": neuron_cap,
        "max_core_util_pct": 100.0 * max_core,
    }
