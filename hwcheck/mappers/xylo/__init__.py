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

The package: :mod:`~hwcheck.mappers.xylo.limits` (the profile schema), :mod:`.network` (the graph
read as input projection, hidden population and readout; fan-out, reach, time constants,
quantisation, cycles), :mod:`.rules` (the design rules), :mod:`.tables` (report tables and notes).
"""

from __future__ import annotations

from typing import Any

from hwcheck.graph import LayerGraph
from hwcheck.mappers.base import FitReport
from hwcheck.mappers.xylo.limits import DEFAULT_DT_S, XYLO_LIMITS
from hwcheck.mappers.xylo.network import (
    _fmt_s,
    _Net,
    _parse,
    bitshift_decay,
    cycles_per_step,
    quantise_weights,
    time_constants,
)
from hwcheck.mappers.xylo.rules import XYLO_RULES
from hwcheck.mappers.xylo.tables import _add_notes, _tables
from hwcheck.profiles import ChipProfile, FamilySpec, register_family

__all__ = [
    "map_xylo",
    "XYLO_LIMITS",
    "XYLO_RULES",
    "bitshift_decay",
    "quantise_weights",
    "time_constants",
    "cycles_per_step",
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


register_family(
    FamilySpec(
        name="xylo",
        limits=XYLO_LIMITS,
        mapper=map_xylo,
        description="SynSense Xylo: one input projection, one hidden population, one readout.",
    )
)
