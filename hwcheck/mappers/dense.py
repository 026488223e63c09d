"""General-purpose devices (CPU, GPU, ARM): the baseline every neuromorphic estimate is compared to.

A conventional device runs the network as dense tensor code: every connection is computed every
step (``synop_convention = "ops_dense"``) and every neuron is updated every step
(``neuron_update = "clock"``). It has no cores to fill, so the only thing to report is the
memory the model needs: parameters as float32 (4 bytes each) and neuron state as float32. A
profile may give ``limits.memory_bytes`` to check the total against a device's memory.
"""

from __future__ import annotations

from typing import Any

import pandas as pd

from hwcheck.graph import LayerGraph
from hwcheck.mappers.base import FitReport, Violation
from hwcheck.profiles import ChipProfile, FamilySpec, FigureSpec, register_family

__all__ = ["FAMILY", "LIMITS", "BYTES_PER_VALUE", "map_dense"]

FAMILY = "dense"

#: float32: the precision the PyTorch model runs at on these devices.
BYTES_PER_VALUE = 4

LIMITS: dict[str, FigureSpec] = {
    "memory_bytes": FigureSpec(
        "int", False, "memory available for weights and neuron state; absent = not checked"
    ),
}

_STATE_KINDS = ("spiking", "neuron")


def _state_values(node: Any) -> int:
    """Neuron state values kept between steps: the membrane, plus the synaptic current states
    of neurons with a synaptic time constant."""
    if node.kind not in _STATE_KINDS:
        return 0
    extra = node.attrs.get("synaptic_states") or 0 if node.attrs.get("tau_syn") is not None else 0
    return int(node.neurons) * (1 + int(extra))


def map_dense(graph: LayerGraph, profile: ChipProfile, analysis: Any = None) -> FitReport:
    """Memory footprint per layer; a general-purpose device runs any layer."""
    rows = []
    for node in graph:
        params = int(node.params)
        state = _state_values(node)
        if params == 0 and state == 0:
            continue
        rows.append(
            {
                "unit": node.name,
                "members": node.name,
                "core": "",
                "n_cores": 0,
                "kind": node.kind,
                "params": params,
                "weights_bytes": params * BYTES_PER_VALUE,
                "neurons": int(node.neurons),
                "state_bytes": state * BYTES_PER_VALUE,
            }
        )
    cols = [
        "members",
        "core",
        "n_cores",
        "kind",
        "params",
        "weights_bytes",
        "neurons",
        "state_bytes",
    ]
    layers = pd.DataFrame(rows, columns=["unit", *cols]).set_index("unit")
    layers["memory_bytes"] = layers["weights_bytes"] + layers["state_bytes"]
    total = int(layers["memory_bytes"].sum()) if len(layers) else 0

    violations: list[Violation] = []
    limit = profile.limit("memory_bytes")
    notes = [
        f"memory: parameters and neuron state as float32 ({BYTES_PER_VALUE} bytes each); "
        "activations, buffers and framework overhead not counted",
        "dense device: every connection computed and every neuron updated each time step",
    ]
    if limit is None:
        binding = "none (general-purpose device)"
        util = 0.0
    else:
        util = 100.0 * total / limit if limit else float("inf")
        binding = f"memory: {total:,} / {int(limit):,} bytes"
        if total > limit:
            biggest = layers["memory_bytes"].idxmax()
            violations.append(
                Violation(
                    "(model)",
                    "memory",
                    total,
                    int(limit),
                    f"weights and state need {total:,} bytes > {int(limit):,} bytes of memory "
                    f"({profile.name})",
                    f"shrink the model by {total - int(limit):,} bytes (largest: `{biggest}`, "
                    f"{int(layers.loc[biggest, 'memory_bytes']):,} bytes) or store weights in "
                    "fewer bits (int8 = 1/4 of float32)",
                )
            )
    cores = pd.DataFrame(columns=["capacity", "used", "free", "assigned"])
    summary: dict[str, Any] = {
        "cores_used": 0,
        "cores_available": 0,
        "utilisation_pct": util,
        "binding_constraint": binding,
        "violations": len(violations),
        "params": int(layers["params"].sum()) if len(layers) else 0,
        "memory_bytes": total,
    }
    return FitReport(profile.name, FAMILY, layers, cores, violations, summary, notes)


register_family(
    FamilySpec(FAMILY, LIMITS, map_dense, "general-purpose devices running the network densely")
)
