"""Activity over real forward passes: events, spikes, neuron updates and synops per layer.

Counters are streaming sums fed by forward hooks: memory is proportional to the layers' input
size (one accumulator per position where events enter a weight layer), never to the batch or
the number of time steps; inputs and outputs are not stored. Two analyses of the same model add
up (:meth:`Analysis.merge`).

Conventions (all per-layer figures are **per sample**, i.e. per inference over the sample's whole
time window; a multi-spike value n counts as n events):

* ``events_in`` -- events arriving at the layer. For a weight layer fed through sum/avg pooling
  they are counted *before* the pooling, where the spikes are;
* ``synops`` -- each input event times the exact number of connections leaving its position
  (through any sum/avg pooling in front: each event reaches every window containing it): what an
  event-driven chip executes;
* ``synops_effective`` -- the same, counting only connections whose weight is nonzero;
* ``ops_dense`` -- every connection once per time step (a dense CPU/GPU), split into ``macs``
  (non-binary input) and ``acs`` (binary 0/1 input);
* ``neuron_updates`` -- every neuron every time step (clock-driven);
  ``neuron_updates_event`` -- (neuron, step) pairs that received nonzero input (event-driven);
* ``firing_rate`` -- spikes per neuron per time step; ``firing_rate_hz`` -- the same per second;
* ``synops_per_s`` -- synops over the sample's duration (time steps x ``dt``).
"""

from __future__ import annotations

import itertools
import math
import threading
import weakref
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any

import pandas as pd
import torch

from hwcheck import kernels
from hwcheck.connectivity import chain_fanout_map
from hwcheck.graph import (
    LayerGraph,
    LayerNode,
    _model_dtype,
    describe,
    holds_model,
    preserved_state,
    signature_and_modules,
)
from hwcheck.layers import spec_for
from hwcheck.timing import (
    BatchPlan,
    TimeError,
    feature_rank,
    infer_layout,
    plan_batch,
    reset_states,
    state_modules,
)

__all__ = ["ActivityCounter", "Analysis", "analyze", "LAYER_COLUMNS", "samples_and_steps"]

SUM_FIELDS = (
    "events_in",
    "spikes_out",
    "synops",
    "synops_effective",
    "ops_dense",
    "macs",
    "acs",
    "neuron_updates",
    "neuron_updates_event",
)
MAX_FIELDS = ("in_max_per_step", "out_max_per_step")

LAYER_COLUMNS = [
    "kind",
    "type",
    "in_shape",
    "out_shape",
    "params",
    "neurons",
    "synapses",
    "synapses_nonzero",
    "fan_in_max",
    "fan_out_max",
    "events_in",
    "spikes_out",
    "firing_rate",
    "firing_rate_hz",
    "neuron_updates",
    "neuron_updates_event",
    "synops",
    "synops_effective",
    "ops_dense",
    "macs",
    "acs",
    "synops_per_s",
    "events_out_per_s",
    "in_max_per_step",
    "out_max_per_step",
]


_BLOCK = 1 << 18  # elements per block of a scratch pass (1 MiB of float32, 2 MiB of float64)
_FIRST = 1 << 14  # first block of a whole-number test: analog data fail it at once
_SMALL = 1 << 14  # tensors this small take the reductions with the fewest calls
_F32_EXACT = 2**24  # float32 holds every whole number below this


class _Scratch:
    """Work buffers reused by every pass: a reduction that needs a temporary (a comparison, a
    float64 copy) writes block by block into these instead of allocating a full-size tensor. On
    a CPU a fresh large tensor costs page faults that take longer than the arithmetic; a reused
    block of at most :data:`_BLOCK` elements stays in cache. One per thread (:func:`_scratch`),
    kept between analyses; memory: a few MiB per dtype and device, independent of the data."""

    __slots__ = ("_bufs", "_ones")

    def __init__(self) -> None:
        self._bufs: dict[tuple[torch.dtype, torch.device], torch.Tensor] = {}
        self._ones: dict[tuple[int, torch.dtype, torch.device], torch.Tensor] = {}

    def buf(self, n: int, dtype: torch.dtype, device: torch.device) -> torch.Tensor:
        """``n`` (<= _BLOCK) elements of scratch, contents undefined."""
        key = (dtype, device)
        b = self._bufs.get(key)
        if b is None or b.numel() < n:
            b = self._bufs[key] = torch.empty(min(max(n, 2 * (0 if b is None else b.numel())), _BLOCK), dtype=dtype, device=device)
        return b[:n]

    def ones(self, n: int, dtype: torch.dtype, device: torch.device) -> torch.Tensor:
        key = (n, dtype, device)
        o = self._ones.get(key)
        if o is None:
            o = self._ones[key] = torch.ones(n, dtype=dtype, device=device)
        return o


_THREAD = threading.local()


def _scratch() -> _Scratch:
    """This thread's scratch buffers (counters in other threads never share them)."""
    s = getattr(_THREAD, "scratch", None)
    if s is None:
        s = _THREAD.scratch = _Scratch()
    return s


def _blocks(flat: torch.Tensor, first: int = _BLOCK) -> Iterator[torch.Tensor]:
    """Consecutive slices of a 1-d tensor: ``first`` elements, then :data:`_BLOCK` at a time."""
    n, pos, size = flat.numel(), 0, min(first, _BLOCK)
    while pos < n:
        yield flat[pos : pos + size]
        pos += size
        size = _BLOCK


class _TensorStats:
    """Reductions of one tensor, each computed at most once per forward pass.

    A spiking layer's output is usually the next layer's input, and the model input is the first
    layer's input: their hooks need the same figures, so they are shared here (keyed by tensor
    identity and version, dropped at the end of the pass). Every figure comes from as few passes
    over the tensor as the data allow:

    * ``minmax`` -- one compiled pass that also counts non-whole values, else ``amin`` and
      ``amax`` (two vectorised passes; ``aminmax`` is not vectorised on CPUs);
    * ``colsum`` -- the sum over the leading (batch/time) rows, from which a counter takes events
      in, synops and effective synops per position (dot products with fan-out maps) and spikes
      out. Whole numbers whose sums stay below 2**24 are summed in float32 (exact) by one
      matrix-vector product; other data in float64, block by block through a scratch buffer;
    * ``whole`` -- every value a whole number (``frac`` into scratch, stopping at the first
      block that is not: analog data cost one small block); it decides float32 sums and 0/1
      (``binary``) inputs, and only runs where ``minmax`` cannot decide;
    * ``nnz`` -- nonzero count (``ne`` into float32 scratch and a sum; ``count_nonzero`` does
      not vectorise), only where a figure needs it (neuron updates).

    Where the compiled kernels of :mod:`hwcheck.kernels` run, :meth:`prime` takes min, max,
    wholeness, nonzero count and the float64 column sums in one pass, ``nnz`` is one pass
    without a temporary, and float64 sums need no float64 copy; the torch passes above are the
    fallback and give the same figures.
    """

    __slots__ = (
        "ref", "version", "integral", "scratch", "_minmax", "_colsum", "_abs_colsum", "_nnz", "_whole", "_total",
    )  # fmt: skip

    def __init__(self, t: torch.Tensor, scratch: _Scratch | None = None) -> None:
        self.ref = weakref.ref(t)
        self.version = t._version
        # set for spike tensors (outputs of spiking layers): every value is a whole count
        self.integral = False
        self.scratch = scratch if scratch is not None else _scratch()
        self._minmax: tuple[float, float] | None = None
        self._colsum: dict[int, torch.Tensor] = {}
        self._abs_colsum: dict[int, torch.Tensor] = {}
        self._nnz: float | None = None
        self._whole: bool | None = None
        self._total: float | None = None  # sum of all values (from the one-pass kernel)

    def prime(self, t: torch.Tensor, features: int) -> None:
        """Take every figure of ``t`` as (rows, ``features``) in one compiled pass, where the
        kernel runs and nothing was taken yet (else the figures come one by one, as asked)."""
        if self._minmax is not None or not t.numel():
            return
        got = kernels.row_stats(t, features)
        if got is None:
            return
        colsum, lo, hi, nnz, frac, total = got
        self._minmax = (lo, hi)
        self._nnz = float(nnz)
        self._whole = frac == 0
        self._colsum[features] = colsum
        self._total = total

    def minmax(self, t: torch.Tensor) -> tuple[float, float]:
        """(min, max) as Python floats (NaN if any value is NaN); (0, 0) for an empty tensor."""
        if self._minmax is None:
            got = kernels.minmax(t) if t.is_floating_point() else None
            if got is not None:  # one pass, which also tells whole numbers apart
                self._minmax = (got[0], got[1])
                if self._whole is None:
                    self._whole = got[2] == 0
            elif not t.numel():
                self._minmax = (0.0, 0.0)
            elif t.is_floating_point() and t.numel() > _SMALL:
                self._minmax = (float(torch.amin(t)), float(torch.amax(t)))
            else:  # one call: the per-call cost outweighs the pass
                lo, hi = torch.aminmax(t) if t.is_floating_point() else (t.min(), t.max())
                self._minmax = (float(lo), float(hi))
        return self._minmax

    def finite(self, t: torch.Tensor) -> bool:
        lo, hi = self.minmax(t)
        return math.isfinite(lo) and math.isfinite(hi)

    def whole(self, t: torch.Tensor) -> bool:
        """True when every value is a whole number (and finite)."""
        if self._whole is None:
            if not self.finite(t):
                self._whole = False
            elif not t.is_floating_point() or self.integral:
                self._whole = True
            elif not t.is_contiguous():
                f = torch.frac(t)
                self._whole = float(torch.amax(f)) == 0 and float(torch.amin(f)) == 0
            else:
                signed = self.minmax(t)[0] < 0
                self._whole = True
                for blk in _blocks(t.reshape(-1), _FIRST if t.numel() > _BLOCK else _BLOCK):
                    f = torch.frac(blk, out=self.scratch.buf(blk.numel(), t.dtype, t.device))
                    if float(torch.amax(f)) != 0 or (signed and float(torch.amin(f)) != 0):
                        self._whole = False
                        break
        return self._whole

    def binary(self, t: torch.Tensor) -> bool:
        """True when every value is exactly 0 or 1."""
        lo, hi = self.minmax(t)
        if not (0 <= lo and hi <= 1):  # the common multi-spike / analog case (and NaN)
            return False
        if hi == 0 or lo == 1:  # all zeros or all ones
            return True
        if hi < 1 or lo > 0:  # a value strictly between 0 and 1
            return False
        return self.whole(t)

    def _exact_f32(self, t: torch.Tensor, rows: int) -> bool:
        """float32 column sums of this tensor are exact: whole numbers whose column sums stay
        below 2**24. Spike counts (``integral``) are taken as whole."""
        if t.dtype != torch.float32 or not self.finite(t):
            return False
        lo, hi = self.minmax(t)
        if max(abs(lo), abs(hi)) * rows >= _F32_EXACT:
            return False
        return self.integral or self.whole(t)

    def colsum(self, t: torch.Tensor, features: int) -> torch.Tensor:
        """Sum over the leading (batch/time) rows: float64 vector of ``features`` entries."""
        c = self._colsum.get(features)
        if c is None:
            c = self._colsum[features] = self._sum_rows(t, features, absolute=False)
        return c

    def abs_colsum(self, t: torch.Tensor, features: int) -> torch.Tensor:
        """Column sums of ``|t|``: events are magnitudes (a spike of -1 is one event). The same
        as :meth:`colsum` -- no extra pass -- when no value is negative."""
        if not self.minmax(t)[0] < 0:
            return self.colsum(t, features)
        c = self._abs_colsum.get(features)
        if c is None:
            c = self._abs_colsum[features] = self._sum_rows(t, features, absolute=True)
        return c

    def abs_total(self, t: torch.Tensor, features: int) -> float:
        """Sum of ``|t|`` (the total of :meth:`abs_colsum`)."""
        if self._total is not None and not self.minmax(t)[0] < 0:
            return self._total
        return float(self.abs_colsum(t, features).sum())

    def _sum_rows(self, t: torch.Tensor, features: int, absolute: bool) -> torch.Tensor:
        features = max(features, 1)
        rows = t.numel() // features
        t2 = t.reshape(rows, features)
        if rows <= 1 or t.dtype == torch.float64 or t.device.type != "cpu" or not t.is_floating_point():
            return (t2.abs() if absolute else t2).sum(0, dtype=torch.float64)
        exact = self._exact_f32(t, rows)
        if exact and not absolute:  # one float32 matrix-vector product, exact for whole numbers
            return torch.mv(t2.t(), self.scratch.ones(rows, t.dtype, t.device)).to(torch.float64)
        if not exact and t.numel() > _SMALL:
            c = kernels.colsum_f64(t, features, absolute)
            if c is not None:
                return c
        # through scratch, block by block: |x| in float32 (whole numbers), else a float64 copy
        dtype = torch.float32 if exact else torch.float64
        c = torch.zeros(features, dtype=torch.float64, device=t.device)
        if features > _BLOCK:  # long rows: column pieces of one row at a time
            for row in t2:
                for j in range(0, features, _BLOCK):
                    piece = row[j : j + _BLOCK]
                    b = self.scratch.buf(piece.numel(), dtype, t.device).copy_(piece)
                    c[j : j + _BLOCK].add_(b.abs_() if absolute else b)
            return c
        step = _BLOCK // features
        ones = self.scratch.ones(min(step, rows), dtype, t.device)
        for block in t2.split(step):
            b = self.scratch.buf(block.numel(), dtype, t.device).view(block.shape)
            b.copy_(block)
            if absolute:
                b.abs_()
            o = ones[: len(block)]
            if exact:
                c.add_(torch.mv(b.t(), o))
            else:
                c.addmv_(b.t(), o)
        return c

    def nnz(self, t: torch.Tensor) -> float:
        """Number of nonzero values."""
        if self._nnz is None:
            n = kernels.count_nonzero(t)
            if n is not None:
                self._nnz = float(n)
        if self._nnz is None:
            if t.numel() <= _SMALL or not t.is_floating_point() or not t.is_contiguous() or t.device.type != "cpu":
                self._nnz = float(torch.count_nonzero(t))
            else:
                n = 0.0
                for blk in _blocks(t.reshape(-1)):
                    # float32 counts of <= 2**20 ones are exact
                    n += float(torch.ne(blk, 0, out=self.scratch.buf(blk.numel(), torch.float32, t.device)).sum())
                self._nnz = n
        return self._nnz


def _whole_spikes(module: Any) -> bool:
    """A spiking layer emits whole spike counts, unless it scales them (snnTorch's
    ``graded_spikes_factor``): then its outputs are tested like any other tensor."""
    g = getattr(module, "graded_spikes_factor", 1.0)
    if isinstance(g, torch.Tensor):
        return g.numel() == 1 and float(g) == 1.0
    return g == 1.0


def _absmax(minmax: tuple[float, float]) -> float:
    lo, hi = minmax
    return max(hi, -lo)


def shape_str(shape: tuple[int, ...]) -> str:
    """A feature shape as text for tables: ``(2, 128, 128)`` -> ``"2x128x128"``."""
    return "x".join(str(s) for s in shape) if shape else "-"


def samples_and_steps(model: Any, x: torch.Tensor, layout: str) -> tuple[int, int]:
    """(samples, time steps per sample) in one model input of the given layout."""
    plan = plan_batch(model, x, layout, data_layout="native", has_neurons=False)
    return plan.samples, plan.steps


STATIC_COLUMNS = [
    "kind", "type", "in_shape", "out_shape", "params", "neurons", "synapses", "synapses_nonzero",
    "fan_in_max", "fan_out_max",
]  # fmt: skip


def static_layers(graph: LayerGraph) -> pd.DataFrame:
    """What is known of each layer without data: shapes, parameters, neurons, synapses, fan-in
    and fan-out (the static columns of :attr:`Analysis.layers`)."""
    rows = [
        {
            "layer": n.name,
            "kind": n.kind,
            "type": n.type_name,
            "in_shape": shape_str(n.in_shape),
            "out_shape": shape_str(n.out_shape),
            "params": n.params,
            "neurons": n.neurons,
            "synapses": n.synapses,
            "synapses_nonzero": n.synapses_nonzero,
            "fan_in_max": n.fan_in_max,
            "fan_out_max": n.fan_out_max,
        }
        for n in graph
    ]
    return pd.DataFrame(rows, columns=["layer", *STATIC_COLUMNS]).set_index("layer")


@dataclass
class Analysis:
    """Activity of a model over some data: per-layer raw sums plus how many samples they cover.

    ``layers`` is the per-sample table (see module docstring for the conventions); ``summary()``
    gives model totals. ``dt`` is the duration of one time step in seconds.
    """

    graph: LayerGraph
    dt: float
    n_samples: int = 0
    n_steps_total: int = 0  # sum over samples of their time steps
    input_events: float = 0.0  # model input, summed over all samples
    raw: dict[str, dict[str, float]] = field(default_factory=dict)

    @property
    def n_steps(self) -> float:
        """Time steps per sample (the mean, if samples differ in length)."""
        return self.n_steps_total / self.n_samples if self.n_samples else 0.0

    @property
    def duration_s(self) -> float:
        """Duration of one sample in seconds (time steps x dt)."""
        return self.n_steps * self.dt

    def merge(self, other: Analysis) -> Analysis:
        """The analysis of both data sets (same model and layer graph)."""
        if list(self.graph.nodes) != list(other.graph.nodes):
            raise ValueError("cannot merge analyses of different layer graphs")
        if not math.isclose(self.dt, other.dt):
            raise ValueError(f"cannot merge analyses with different dt ({self.dt} vs {other.dt})")
        raw: dict[str, dict[str, float]] = {}
        for name in self.graph.nodes:
            a, b = self.raw.get(name, {}), other.raw.get(name, {})
            row = {k: a.get(k, 0.0) + b.get(k, 0.0) for k in SUM_FIELDS}
            row.update({k: max(a.get(k, 0.0), b.get(k, 0.0)) for k in MAX_FIELDS})
            raw[name] = row
        return Analysis(
            graph=self.graph,
            dt=self.dt,
            n_samples=self.n_samples + other.n_samples,
            n_steps_total=self.n_steps_total + other.n_steps_total,
            input_events=self.input_events + other.input_events,
            raw=raw,
        )

    __add__ = merge

    @property
    def layers(self) -> pd.DataFrame:
        """One row per layer call, indexed by node name; activity columns are per sample."""
        n = max(self.n_samples, 1)
        steps = self.n_steps
        rows = []
        for node in self.graph:
            r = self.raw.get(node.name, {})
            per = {k: r.get(k, 0.0) / n for k in SUM_FIELDS}
            neuron_steps = node.neurons * steps
            fr = per["spikes_out"] / neuron_steps if neuron_steps else float("nan")
            if node.kind == "activation":
                # units x steps per sample = neuron_updates: spikes per unit per step (as sinabs'
                # firing_rate_hook on a NeuromorphicReLU)
                fr = per["spikes_out"] / per["neuron_updates"] if per["neuron_updates"] else float("nan")
            elif not node.neurons:
                fr = float("nan")
            rows.append(
                {
                    "layer": node.name,
                    "kind": node.kind,
                    "type": node.type_name,
                    "in_shape": shape_str(node.in_shape),
                    "out_shape": shape_str(node.out_shape),
                    "params": node.params,
                    "neurons": node.neurons,
                    "synapses": node.synapses,
                    "synapses_nonzero": node.synapses_nonzero,
                    "fan_in_max": node.fan_in_max,
                    "fan_out_max": node.fan_out_max,
                    **per,
                    "firing_rate": fr,
                    "firing_rate_hz": fr / self.dt if self.dt else float("nan"),
                    "synops_per_s": per["synops"] / self.duration_s if self.duration_s else float("nan"),
                    "events_out_per_s": per["spikes_out"] / self.duration_s if self.duration_s else float("nan"),
                    "in_max_per_step": r.get("in_max_per_step", 0.0),
                    "out_max_per_step": r.get("out_max_per_step", 0.0),
                }
            )
        df = pd.DataFrame(rows, columns=["layer", *LAYER_COLUMNS]).set_index("layer")
        return df

    def notes(self) -> list[str]:
        """What a reader must know about how this data was counted: time steps and samples used,
        and weight layers of a spiking network that received inputs other than 0/1 (counted as
        |x| events each)."""
        out = [f"activity: {self.n_samples} sample(s) of {self.n_steps:g} time step(s), dt = {self.dt:g} s"]
        if self.graph.by_kind("spiking"):
            analog = [
                n.name for n in self.graph.by_kind("conv", "linear") if self.raw.get(n.name, {}).get("macs", 0) > 0
            ]
            if analog:
                out.append(
                    "inputs other than 0/1 spikes (analog, signed or multi-spike values) reach "
                    + ", ".join(f"`{a}`" for a in analog)
                    + ": each value x counts as |x| events (NeuroBench counts any nonzero as one)"
                )
        return out

    def summary(self) -> pd.Series:
        """Model totals per sample (synops, spikes, neurons...) plus dt and duration."""
        df = self.layers
        neurons = int(df["neurons"].sum())
        spikes = float(df.loc[df["kind"] == "spiking", "spikes_out"].sum())
        spiking_neurons = int(df.loc[df["kind"] == "spiking", "neurons"].sum())
        steps = self.n_steps
        out = {
            "samples": self.n_samples,
            "time_steps": steps,
            "dt_s": self.dt,
            "duration_s": self.duration_s,
            "params": int(df["params"].sum()),
            "neurons": neurons,
            "spiking_neurons": spiking_neurons,
            "synapses": int(df["synapses"].sum()),
            "synapses_nonzero": int(df["synapses_nonzero"].sum()),
            "input_events": self.input_events / max(self.n_samples, 1),
            "spikes": spikes,
            "firing_rate": spikes / (spiking_neurons * steps) if spiking_neurons and steps else float("nan"),
            "synops": float(df["synops"].sum()),
            "synops_effective": float(df["synops_effective"].sum()),
            "ops_dense": float(df["ops_dense"].sum()),
            "macs": float(df["macs"].sum()),
            "acs": float(df["acs"].sum()),
            "neuron_updates": float(df["neuron_updates"].sum()),
            "neuron_updates_event": float(df["neuron_updates_event"].sum()),
        }
        out["synops_per_s"] = out["synops"] / self.duration_s if self.duration_s else float("nan")
        out["input_events_per_s"] = out["input_events"] / self.duration_s if self.duration_s else float("nan")
        return pd.Series(out, name="total")


class ActivityCounter:
    """Forward hooks that count activity of ``model`` per node of ``graph``.

    Use as a context manager; every hook is removed on exit, also when a forward pass raises::

        with ActivityCounter(model, graph, dt=1e-3) as counter:
            model(x)
        analysis = counter.analysis()

    ``counter.synops_tensor()`` is the last forward pass's synops per sample as a differentiable
    tensor (for a training penalty), when gradients are enabled.
    """

    def __init__(
        self,
        model: torch.nn.Module,
        graph: LayerGraph,
        dt: float = 1e-3,
        per_neuron: bool = False,
        *,
        module_ids: frozenset[int] | None = None,
    ) -> None:
        self.model = model
        self.per_neuron = per_neuron
        self.graph = graph
        self.dt = float(dt)
        self.layout = graph.layout
        self.handles: list[Any] = []
        # set by analyze(), which tells the counter the samples and steps of each batch
        self.driven = False
        # weights may change between passes (training steps, pruning): checked before each
        # pass; a Session checks once, as no weight changes while it runs
        self.weights_may_change = True
        # recurrent weights inside a neuron layer: called once per step inside the layer
        self.inner = {n.module for n in graph if "recurrent_of" in n.attrs}
        self._scratch = _scratch()
        _check_graph_of(model, graph, module_ids)
        self._plan()
        self.reset()

    # -- setup ---------------------------------------------------------------------------------
    def _plan(self) -> None:
        """Decide, per node, what to measure and precompute the fan-out maps (once per graph:
        a graph is fixed, so its plan is kept with it and shared by later counters)."""
        keep = (
            "calls", "event_point", "point_shape", "fanout", "fanout_nz", "points", "spike_nodes",
            "feature_numel", "pre_todo", "post_todo", "fan_rows", "branches", "out_points",
            "chains", "weight_modules", "weight_shapes", "wkey",
        )  # fmt: skip
        cached = self.graph.__dict__.get("_counter_plan")
        if cached is not None:
            self.__dict__.update(cached)
            self._fanout_cast = {}
            if self._weights_key() == self.wkey:
                return
            self._weight_maps()  # weights changed since the plan was made (e.g. pruned)
        else:
            self._compute_plan()
        self.graph.__dict__["_counter_plan"] = {k: self.__dict__[k] for k in keep}

    def _compute_plan(self) -> None:
        g = self.graph
        self.calls: dict[Any, list[str]] = {}
        for node in g:
            self.calls.setdefault(node.module, []).append(node.name)
        # event points: node whose input is accumulated per position -> its feature shape
        self.event_point: dict[str, str] = {}
        self.point_shape: dict[str, tuple[int, ...]] = {}
        self.fanout: dict[str, torch.Tensor] = {}
        self.chains: dict[str, tuple[Any, Any, Any]] = {}
        for node in g.by_kind("conv", "linear"):
            # (params are counted on a module's first call only: later calls have 0)
            if node.params and sum(p.numel() for p in node.module.parameters()) != node.params:
                raise _stale(node)
            chain = node.attrs.get("event_chain", ())
            spec = spec_for(node.module)
            if chain:
                first = chain[0][1]
                point = first
                layers: list[tuple[Any, Any]] = []
                reshapes: list[tuple[int, tuple[int, ...]]] = []
                for step in chain:
                    if step[0] == "pool":
                        pnode = g[step[1]]
                        layers.append((pnode.module, spec_for(pnode.module)))
                    else:
                        reshapes.append((len(layers), tuple(step[1])))
                reshapes.append((len(layers), tuple(node.in_shape)))
                layers.append((node.module, spec))
                shape = g[first].in_shape
            else:
                point = node.name
                layers, reshapes, shape = [(node.module, spec)], [], node.in_shape
            self.event_point[node.name] = point
            self.point_shape[point] = tuple(shape)
            self.chains[node.name] = (layers, reshapes, shape)
            self.fanout[node.name] = chain_fanout_map(layers, reshapes, shape)
        self.points = set(self.event_point.values())
        self.weight_modules = [n.module for n in g.by_kind("conv", "linear")]
        self.weight_shapes = {n.name: _param_shapes(n.module) for n in g.by_kind("conv", "linear")}
        self._fanout_cast: dict[tuple[str, torch.dtype, torch.device], torch.Tensor] = {}
        self.spike_nodes = {
            n.name for n in g if (spec := spec_for(n.module)) is not None and spec.counts_spikes
        }
        self.feature_numel = {
            n.name: max(math.prod(n.in_shape), 1) for n in g.by_kind("conv", "linear")
        }
        # what each layer's pre-hook counts at its input: (event point shape or None, its size,
        # "weights" / "neurons" / None, dense synapses per input sample, features per sample,
        # neurons); layers absent count nothing there
        self.pre_todo: dict[str, tuple[Any, ...]] = {}
        for n in g:
            kind = {"conv": "weights", "linear": "weights", "spiking": "neurons", "neuron": "neurons"}.get(n.kind)
            point = self.point_shape.get(n.name)
            if kind is not None or point is not None:
                self.pre_todo[n.name] = (
                    point, math.prod(point) if point is not None else 0, kind, float(n.synapses),
                    self.feature_numel.get(n.name, 1), max(n.neurons, 1),
                )  # fmt: skip
        # per spiking layer: (features of one output sample, kind, output shape, whether it
        # may scale its spikes: see _whole_spikes)
        self.post_todo = {
            name: (
                math.prod(g[name].out_shape), g[name].kind, tuple(g[name].out_shape),
                hasattr(g[name].module, "graded_spikes_factor"),
            )  # fmt: skip
            for name in self.spike_nodes
        }
        self._weight_maps()

    def _weights_key(self) -> tuple:
        """Identity and version of every tensor a weight layer holds: what the nonzero fan-out
        maps depend on (also a parametrized weight's original and a pruning mask)."""
        key: list[Any] = []
        add = key.append
        stack = list(self.weight_modules)
        while stack:  # (each module's own dicts: Module.parameters() costs a generator chain)
            m = stack.pop()
            for t in itertools.chain(m._parameters.values(), m._buffers.values()):
                if t is not None:
                    add((id(t), t._version, t.data_ptr()))
            if m._modules:
                stack.extend(c for c in m._modules.values() if c is not None)
        return tuple(key)

    def _weight_maps(self) -> None:
        """The fan-out maps that depend on which weights are zero, from the current weights."""
        g = self.graph
        for w, shapes in self.weight_shapes.items():
            if _param_shapes(g[w].module) != shapes:
                raise _stale(g[w])
        self.wkey = self._weights_key()
        self.fanout_nz = {w: chain_fanout_map(*self.chains[w], nonzero=True) for w in self.chains}
        # per weight layer: its events, synops and effective synops are the products of these
        # rows (ones, fan-out, nonzero fan-out; no third row where no weight is zero: the two are
        # equal) with the event point's column sums
        self.fan_rows = {}
        for w, f in self.fanout.items():
            nz = self.fanout_nz[w]
            rows = [torch.ones_like(f), f] if torch.equal(f, nz) else [torch.ones_like(f), f, nz]
            self.fan_rows[w] = torch.stack(rows).reshape(len(rows), -1)
        # weight layers that read a merge: each branch's events are the spikes of the neuron
        # layer it starts at (before any pooling), counted where that layer's output is summed
        self.branches: dict[str, list[tuple[str, torch.Tensor]]] = {}
        for node in g.by_kind("conv", "linear"):
            plan = _merge_branches(g, node)
            if plan:
                self.branches[node.name] = plan
        self.out_points = {q for plan in self.branches.values() for q, _ in plan}

    def _reweigh(self) -> None:
        """The weights changed (a training step, pruning): events counted so far keep the
        effective synops of the weights they met, later ones get the new maps."""
        old_rows, old_branches = self.fan_rows, self.branches
        self._weight_maps()
        off = self._eff_offset
        for w, rows in old_rows.items():
            pacc = self.point_acc.get(self.event_point[w])
            if pacc is not None and w not in old_branches:  # a merge reader counts by its branches
                now = self.fan_rows[w][-1].to(pacc.device)
                off[w] = off.get(w, 0.0) + float(torch.dot(rows[-1].to(pacc.device), pacc) - torch.dot(now, pacc))
        for w, plan in old_branches.items():
            now_plan = dict(self.branches.get(w, ()))
            for q, fans in plan:
                oacc = self.out_acc.get(q)
                if oacc is not None and q in now_plan:
                    before = torch.dot(fans[2].to(device=oacc.device, dtype=oacc.dtype), oacc)
                    after = torch.dot(now_plan[q][2].to(device=oacc.device, dtype=oacc.dtype), oacc)
                    off[w] = off.get(w, 0.0) + float(before - after)

    def reset(self) -> None:
        """Zero every counter (hooks stay in place)."""
        self.n_samples = 0
        self.n_steps_total = 0
        self._input_acc = 0.0  # model input events, summed
        self.point_acc: dict[str, torch.Tensor] = {}
        self.out_acc: dict[str, torch.Tensor] = {}  # output column sums of branch sources
        self._owned: list[torch.Tensor] = []  # sums in point_acc / out_acc this counter made
        # per weight layer: effective synops of events counted before the weights last changed,
        # minus what the current nonzero map gives those events (see _reweigh)
        self._eff_offset: dict[str, float] = {}
        self.acc: dict[str, dict[str, Any]] = {n.name: {} for n in self.graph}
        # per-neuron sums over batch and time (only with per_neuron=True): name -> (in, out)
        self.neuron_in: dict[str, torch.Tensor] = {}
        self.neuron_out: dict[str, torch.Tensor] = {}
        self._call_count: dict[Any, int] = {}
        self._live: list[torch.Tensor] = []
        self._live_samples = 1
        self._stack: list[str] = []
        self._seen: dict[int, _TensorStats] = {}
        self._pass_samples = 0
        self._pass_open = False
        self.last_loop_steps: int | None = None

    def __enter__(self) -> ActivityCounter:
        self.attach()
        return self

    def __exit__(self, *exc: Any) -> None:
        self.detach()

    def attach(self) -> None:
        if self.handles:
            return
        self.handles.append(self.model.register_forward_pre_hook(self._model_pre_hook))
        self.handles.append(self.model.register_forward_hook(self._model_post_hook))
        for module, names in self.calls.items():
            self.handles.append(module.register_forward_pre_hook(self._pre_hook))
            if names[0] in self.spike_nodes:  # only their outputs are counted
                self.handles.append(module.register_forward_hook(self._post_hook))

    def detach(self) -> None:
        for h in self.handles:
            h.remove()
        self.handles = []

    # -- hooks -----------------------------------------------------------------------------------
    def _stats(self, t: torch.Tensor) -> _TensorStats:
        """The shared reductions of ``t`` for this pass (see :class:`_TensorStats`)."""
        st = self._seen.get(id(t))
        if st is None or st.ref() is not t or st.version != t._version:
            st = self._seen[id(t)] = _TensorStats(t, self._scratch)
        return st

    def _model_post_hook(self, module: Any, args: tuple, output: Any) -> None:
        """End of a pass: for a folded time loop, count the steps it ran (once per pass)."""
        self._seen = {}
        if not self._pass_open:
            return
        self._pass_open = False
        if self.graph.loop_steps:
            steps = self.last_loop_steps = self._measured_loop_steps()
            if not self.driven:
                self.n_steps_total += self._pass_samples * steps

    def _measured_loop_steps(self) -> int:
        """Repetitions of the time loop in this pass, from how often each layer was called."""
        ratios = {
            self._call_count.get(m, 0) / len(names)
            for m, names in self.calls.items()
            if m not in self.inner
        }
        k = max(ratios, default=1)
        if ratios - {1.0, k} or k != int(k):
            raise RuntimeError(
                "the model's layers were called in a different pattern than when the layer graph was "
                "built (a time loop whose layers do not all run once per step)"
            )
        return int(k)

    def _model_pre_hook(self, module: Any, args: tuple) -> None:
        if self.weights_may_change and self._weights_key() != self.wkey:
            self._reweigh()
        self._call_count = {}
        self._live = []
        self._seen = {}
        self._scratch = _scratch()  # this pass's thread's
        self._pass_open = True
        x = next((a for a in args if isinstance(a, torch.Tensor)), None)
        if x is None:
            return
        if not self.driven:
            s, t = samples_and_steps(self.model, x, self.layout)
            self.n_samples += s
            self._pass_samples = s
            if not self.graph.loop_steps:
                self.n_steps_total += s * t
            self._live_samples = s
        grad = torch.is_grad_enabled()
        if grad:
            with torch.no_grad():
                self._count_model_input(self._stats(x), x.detach())
        else:
            self._count_model_input(self._stats(x), x)

    def _count_model_input(self, st: _TensorStats, x: torch.Tensor) -> None:
        """The model input's events (``x`` detached, gradients off)."""
        lead = min(2 if self.layout in ("BT", "TB") else 1, x.dim())
        features = math.prod(x.shape[lead:])
        st.prime(x, features)
        if x.is_floating_point() and x.numel() and not st.finite(x):
            raise ValueError("the input holds NaN or infinite values; events must be finite numbers")
        self._input_acc += st.abs_total(x, features)

    def _node_of(self, module: Any) -> str:
        k = self._call_count.get(module, 0)
        self._call_count[module] = k + 1
        names = self.calls[module]
        if self.graph.loop_steps or module in self.inner:
            return names[k % len(names)]
        if k >= len(names):
            raise RuntimeError(
                f"module '{self.graph[names[0]].module_path}' was called {k + 1} times in one forward "
                f"pass but {len(names)} time(s) when the layer graph was built; the analysis needs the "
                "same call structure on every pass"
            )
        return names[k]

    def _pre_hook(self, module: Any, args: tuple) -> None:
        name = self._node_of(module)
        if name in self.spike_nodes:
            # the post hook of this call needs the same name: remember it on a stack
            self._stack.append(name)
        todo = self.pre_todo.get(name)
        grad = torch.is_grad_enabled()
        if todo is None and not grad:
            return  # nothing is counted at this layer's input
        x = args[0] if args and isinstance(args[0], torch.Tensor) else next(
            (a for a in args if isinstance(a, torch.Tensor)), None
        )
        if x is None:
            return
        st = self._stats(x)
        if todo is not None:
            if grad:
                with torch.no_grad():
                    self._count_input(name, todo, st, x.detach())
            else:
                self._count_input(name, todo, st, x)
        # differentiable synops of this pass, for weight layers whose events enter here
        # (also when x needs no grad: the value must be the whole pass's synops; the terms of
        # later layers still carry gradients to the weights through x)
        if grad and name in self.points:
            shape = self.point_shape[name]
            lead = tuple(range(x.dim() - len(shape)))
            xa = x.abs() if st.minmax(x.detach())[0] < 0 else x
            xs = xa.sum(dim=lead) if lead else xa
            for w, point in self.event_point.items():
                if point == name:
                    fan = self._fanout_as(w, xs)
                    self._live.append((xs * fan).sum() / max(self._live_samples, 1))

    def _count_input(self, name: str, todo: tuple, st: _TensorStats, x: torch.Tensor) -> None:
        """What a layer's input contributes (``x`` detached, gradients off)."""
        shape, point_numel, kind, synapses, features, neurons = todo
        acc = self.acc[name]
        if shape is not None:  # an event point: sums per input position, all figures in one pass
            st.prime(x, point_numel)
            if x.shape[x.dim() - len(shape) :] != shape:
                raise RuntimeError(
                    f"layer '{name}' got input of shape {tuple(x.shape)}, but the layer graph "
                    f"was built for features {shape}; analyse inputs of one feature shape"
                )
            self._accumulate(self.point_acc, name, st.abs_colsum(x, point_numel))
        if kind == "weights":
            dense = synapses * (x.numel() // features)
            key = "acs" if st.binary(x) else "macs"
            acc[key] = acc.get(key, 0.0) + dense
            acc["ops_dense"] = acc.get("ops_dense", 0.0) + dense
            acc["in_max_per_step"] = max(acc.get("in_max_per_step", 0.0), _absmax(st.minmax(x)))
        elif kind == "neurons":
            acc["neuron_updates_event"] = acc.get("neuron_updates_event", 0.0) + st.nnz(x)
            acc["neuron_updates"] = acc.get("neuron_updates", 0.0) + float(x.numel() // neurons * neurons)
            if self.per_neuron:
                node = self.graph.nodes[name]
                colsum = st.colsum(x, math.prod(node.in_shape))
                self._add_neuron(self.neuron_in, name, colsum, node.in_shape)

    def _accumulate(self, store: dict[str, torch.Tensor], name: str, summed: torch.Tensor) -> None:
        """``store[name] += summed``. The first sum is kept as it is (it stays shared with the
        other layers of this pass, so it is never changed in place); the second makes a sum
        of the counter's own, which later ones are added to in place."""
        prev = store.get(name)
        if prev is None:
            store[name] = summed
        elif any(prev is o for o in self._owned):
            prev.add_(summed)
        else:
            own = store[name] = prev + summed
            self._owned.append(own)

    def _fanout_as(self, w: str, like: torch.Tensor) -> torch.Tensor:
        """Fan-out map of ``w`` in the dtype and on the device of ``like`` (cached: training
        calls this every step)."""
        key = (w, like.dtype, like.device)
        fan = self._fanout_cast.get(key)
        if fan is None:
            fan = self._fanout_cast[key] = self.fanout[w].to(dtype=like.dtype, device=like.device)
        return fan

    def _post_hook(self, module: Any, args: tuple, output: Any) -> None:
        if not self._stack:  # the model is one layer and its call was already closed by hand
            return
        name = self._stack.pop()
        if name not in self.spike_nodes:
            return
        out = output
        while isinstance(out, (tuple, list)) and out:
            out = out[0]
        if not isinstance(out, torch.Tensor):
            return
        st = self._stats(out)
        if torch.is_grad_enabled():
            with torch.no_grad():
                self._count_output(name, st, out.detach())
        else:
            self._count_output(name, st, out)

    def _count_output(self, name: str, st: _TensorStats, out: torch.Tensor) -> None:
        """What a spiking (or activation) layer's output contributes (``out`` detached)."""
        features, kind, out_shape, graded = self.post_todo[name]
        acc = self.acc[name]
        if kind == "spiking" and (not graded or _whole_spikes(self.graph.nodes[name].module)):
            st.integral = True  # spike counts (a surrogate gradient changes only backward)
        n = out.numel()
        if features == 0 or n % features:
            features = 1  # not the traced feature shape: the total is still right
        st.prime(out, features)
        if name in self.out_points:
            colsum = st.abs_colsum(out, features)
            if colsum.numel() == features:
                self._accumulate(self.out_acc, name, colsum.reshape(-1))
        acc["spikes_out"] = acc.get("spikes_out", 0.0) + st.abs_total(out, features)
        acc["out_max_per_step"] = max(acc.get("out_max_per_step", 0.0), _absmax(st.minmax(out)))
        if kind == "activation":
            acc["neuron_updates"] = acc.get("neuron_updates", 0.0) + float(n)
        if self.per_neuron:
            self._add_neuron(self.neuron_out, name, st.abs_colsum(out, features), out_shape)

    @staticmethod
    def _add_neuron(
        store: dict[str, torch.Tensor], name: str, colsum: torch.Tensor, shape: tuple
    ) -> None:
        summed = colsum.reshape(shape)
        store[name] = summed if name not in store else store[name] + summed

    # -- results ---------------------------------------------------------------------------------
    def synops_tensor(self) -> torch.Tensor:
        """Synops per sample of the last forward pass, differentiable w.r.t. the model's inputs
        and parameters (zero when gradients were disabled)."""
        if not self._live:
            return torch.zeros(())
        return torch.stack(list(self._live)).sum()

    def analysis(self) -> Analysis:
        raw: dict[str, dict[str, float]] = {}
        zero = dict.fromkeys(SUM_FIELDS + MAX_FIELDS, 0.0)
        for node in self.graph:
            row = zero.copy()
            row.update(self.acc[node.name])  # every counted figure is a float already
            if node.kind in ("conv", "linear") and node.name in self.branches:
                total = [0.0, 0.0, 0.0]
                for q, fans in self.branches[node.name]:
                    oacc = self.out_acc.get(q)
                    if oacc is not None:
                        got = _dot_rows(fans, oacc)
                        total = [a + b for a, b in zip(total, got, strict=True)]
                row["events_in"], row["synops"], row["synops_effective"] = total
            elif node.kind in ("conv", "linear"):
                pacc = self.point_acc.get(self.event_point[node.name])
                if pacc is not None:
                    got = _dot_rows(self.fan_rows[node.name], pacc)
                    row["events_in"], row["synops"], row["synops_effective"] = got[0], got[1], got[-1]
            if node.name in self._eff_offset:
                row["synops_effective"] += self._eff_offset[node.name]
            raw[node.name] = row
        return Analysis(
            graph=self.graph,
            dt=self.dt,
            n_samples=self.n_samples,
            n_steps_total=self.n_steps_total,
            input_events=self._input_acc,
            raw=raw,
        )


def _dot_rows(rows: torch.Tensor, v: torch.Tensor) -> list[float]:
    """``rows @ v`` as floats (``rows`` moved to ``v``'s device and dtype where they differ)."""
    if rows.device != v.device or rows.dtype != v.dtype:
        rows = rows.to(device=v.device, dtype=v.dtype)
    return torch.mv(rows, v).tolist()


def _stale(node: LayerNode) -> ValueError:
    return ValueError(
        f"the layer graph no longer matches the model: the weights of layer '{node.name}' "
        f"({node.module_path or type(node.module).__name__}) changed shape since it was traced; "
        "describe the model again (or leave graph= out)"
    )


def _param_shapes(module: Any) -> tuple:
    return tuple((k, tuple(p.shape)) for k, p in module._parameters.items() if p is not None)


def _check_graph_of(model: torch.nn.Module, graph: LayerGraph, module_ids: frozenset[int] | None = None) -> None:
    """A graph holds its model's modules: hooks on another model's (a copy's), or on a layer
    replaced since the trace, would count nothing, silently. ``module_ids``: the ids of
    ``model.modules()``, where the caller has them."""
    mods = module_ids if module_ids is not None else {id(m) for m in model.modules()}
    stray = next((n for n in graph if n.module is not None and id(n.module) not in mods), None)
    if stray is not None:
        raise ValueError(
            f"the layer graph was built for another model: its layer '{stray.name}' "
            f"({stray.module_path or type(stray.module).__name__}) is not a module of this model; "
            "describe this model (hwcheck.describe(model, input_shape)) or leave graph= out"
        )


def _merge_branches(g: LayerGraph, w: LayerNode) -> list[tuple[str, torch.Tensor]]:
    """For a weight layer that reads a merge (an addition of branches): per branch, the neuron
    layer it starts at and the fan rows (ones, fan-out, nonzero fan-out) of that layer's outputs
    through the branch's pooling and ``w``. Empty where ``w`` reads no merge, or a branch does
    not start at a spiking / activation layer through pooling and reshapes only."""

    def single_pred(n: str) -> str | None:
        ps = g.predecessors(n)
        return ps[0] if len(ps) == 1 else None

    m = single_pred(w.name)
    while m is not None and m in g.nodes and g[m].kind in ("reshape", "identity"):
        m = single_pred(m)
    if m is None or m not in g.nodes or g[m].kind != "merge":
        return []
    spec = spec_for(w.module)
    plan = []
    for b in g.predecessors(m):
        pools: list[LayerNode] = []
        q: str | None = b
        while q is not None and q in g.nodes and g[q].kind in ("reshape", "identity", "pool"):
            if g[q].kind == "pool":
                if g[q].attrs.get("pool_type") not in ("avg", "sum"):
                    return []
                pools.append(g[q])
            q = single_pred(q)
        if q is None or q not in g.nodes or g[q].kind not in ("spiking", "activation"):
            return []
        pools.reverse()
        layers = [(p.module, spec_for(p.module)) for p in pools]
        reshapes = [(i, tuple(p.in_shape)) for i, p in enumerate(pools)]
        reshapes.append((len(layers), tuple(w.in_shape)))
        layers.append((w.module, spec))
        shape = tuple(g[q].out_shape)
        fan = chain_fanout_map(layers, reshapes, shape).reshape(-1)
        fan_nz = chain_fanout_map(layers, reshapes, shape, nonzero=True).reshape(-1)
        plan.append((q, torch.stack([torch.ones_like(fan), fan, fan_nz])))
    return plan


def _batches(data: Any) -> Iterable[torch.Tensor]:
    if data is None:
        raise TypeError("analyze() needs data: a tensor, a DataLoader, or an iterable of tensors / (input, target) pairs")
    if isinstance(data, torch.Tensor):
        yield data
        return
    if isinstance(data, (str, bytes)) or not hasattr(data, "__iter__"):
        raise TypeError(
            f"data must be a tensor, a DataLoader or an iterable of tensors, got {type(data).__name__}"
        )
    for item in data:
        if isinstance(item, (tuple, list)):
            item = item[0]
        if isinstance(item, dict):
            item = next(iter(item.values()))
        if not isinstance(item, torch.Tensor):
            raise TypeError(f"data must yield tensors (or (input, target) pairs), got {type(item).__name__}")
        yield item




def _feature_shape(model: Any, x: torch.Tensor, layout: str) -> tuple[int, ...]:
    f = feature_rank(model)
    if f is not None and x.dim() >= f + 1:
        return tuple(x.shape[x.dim() - f :])
    lead = 2 if layout in ("BT", "TB") else 1
    if x.dim() <= lead:
        expected = f"{f + 1} (model input) or {f + 2} (batch, time, ...)" if f is not None else f"more than {lead}"
        raise TimeError(f"input of shape {tuple(x.shape)} has {x.dim()} dimension(s); expected {expected}")
    return tuple(x.shape[lead:])


def analyze(
    model: torch.nn.Module,
    data: Any,
    dt: float = 1e-3,
    *,
    layout: str | None = None,
    data_layout: str = "auto",
    progress: bool | None = None,
    reset_states: bool = True,
    graph: LayerGraph | None = None,
    per_sample: bool | None = None,
) -> Analysis:
    """Run ``model`` over ``data`` and count activity per layer (see module docstring).

    Args:
        model: the network (sinabs, snnTorch, SpikingJelly, Norse, plain torch). Its outputs are
            not changed, and its neuron states are restored afterwards.
        data: a tensor (one batch), or an iterable / DataLoader of tensors or (input, target).
            A DataLoader's batches are batch-first ``(B, T, ...)``; a tensor is taken in the
            model's own layout, or as ``(B, T, ...)`` where its rank says so (see
            :mod:`hwcheck.timing`).
        dt: duration of one time step in seconds (finite, > 0).
        layout: ``"(BT)"``, ``"BT"``, ``"TB"`` or ``"B"`` (default: :func:`hwcheck.timing.infer_layout`,
            refined by tracing).
        data_layout: ``"auto"``, ``"native"`` (as the model takes it), ``"BT"`` or ``"TB"``.
        progress: show a progress bar (default: when there is more than one batch).
        reset_states: reset every neuron state before each batch (each batch is fresh samples).
        graph: a precomputed layer graph (else built from the first batch's shape).
        per_sample: analyse sample by sample with distributions (:mod:`hwcheck.dataset`);
            default: for event recordings, paths and Datasets, and under ``torch.distributed``.
    """
    from torch.utils.data import DataLoader

    from hwcheck.graph import _check_model
    from hwcheck.nir_import import as_model

    dt = _check_dt(dt)
    from hwcheck.dataset import analyze_dataset, wants_dataset

    if per_sample or (per_sample is None and not isinstance(data, torch.Tensor) and wants_dataset(data)):
        return analyze_dataset(model, data, dt, layout=layout, progress=progress, graph=graph)
    model = as_model(model, dt=dt)[0]  # a nir.NIRGraph or .nir file: taus converted at dt
    _check_model(model)
    if data_layout == "auto" and isinstance(data, DataLoader):
        data_layout = "BT"  # collate stacks samples along dim 0
    layout = layout or (graph.layout if graph is not None else None)
    batches = _batches(data)
    total = None
    if progress is None or progress:
        try:
            total = len(data) if not isinstance(data, torch.Tensor) else 1
        except TypeError:
            total = None
    show = progress if progress is not None else (total is not None and total > 1)
    bar = None
    if show:
        from tqdm.auto import tqdm

        bar = tqdm(total=total, desc="analysing", unit="batch", leave=False)
    try:
        with Session(model, dt, layout=layout, graph=graph) as session:
            for x in batches:
                session.feed(x, data_layout=data_layout, reset=reset_states)
                if bar is not None:
                    bar.update(1)
    finally:
        if bar is not None:
            bar.close()
    if session.counter is None:
        raise ValueError("analyze() got no data: pass a tensor or a non-empty iterable of tensors")
    result = session.counter.analysis()
    session.recycle()
    return result


#: per model: (signature, what an analysis derives from the model's structure: weight dtype,
#: state modules, module ids, layer graphs per input shape, counters left for reuse per graph),
#: rebuilt when the signature changes
_PREPARED: weakref.WeakKeyDictionary[Any, tuple[tuple, dict[Any, Any]]] = weakref.WeakKeyDictionary()
_PREPARED_GRAPHS = 32  # input shapes remembered per model


def _prepared(model: torch.nn.Module) -> tuple[dict[Any, Any], list[Any]]:
    """What repeated analyses of an unchanged model share, and the model's modules (from the
    same walk; not kept: the model itself is one of them, and what is kept beside a weakly keyed
    model must not refer back to it)."""
    sig, mods = signature_and_modules(model)
    got = _PREPARED.get(model)
    if got is None or got[0] != sig:
        states = state_modules(model)
        if any(m is model for _, m in states):  # a one-layer model: found again on each call
            states = None
        info = {
            "wdtype": _model_dtype(model), "states": states, "graphs": {},
            "counters": {}, "module_ids": frozenset(map(id, mods)),
        }  # fmt: skip
        got = _PREPARED[model] = (sig, info)
    return got[1], mods


class Session:
    """One analysis run over batches: the model's states and flags are kept aside and restored
    on exit, gradients are off, and the counter (with its layer graph, traced from the first
    batch unless given) is attached on the first batch and removed on exit; :meth:`recycle`
    leaves it for the next Session on the unchanged model.

    ``on_start(counter, graph)`` runs once the counter is attached (the dataset analysis adds
    its per-step peak hooks there)."""

    def __init__(
        self,
        model: torch.nn.Module,
        dt: float,
        *,
        layout: str | None = None,
        graph: LayerGraph | None = None,
        per_neuron: bool = False,
        on_start: Any = None,
    ) -> None:
        self.model, self.dt, self.layout, self.graph = model, dt, layout, graph
        self.per_neuron, self.on_start = per_neuron, on_start
        self.counter: ActivityCounter | None = None
        self.info, modules = _prepared(model)
        self.wdtype = self.info["wdtype"]  # inputs are cast to the weights' dtype (float16/64 models)
        self._state = preserved_state(model, eval_mode=False, modules=modules)
        self._grad = torch.no_grad()

    def __enter__(self) -> Session:
        self._state.__enter__()
        self._grad.__enter__()
        return self

    def __exit__(self, *exc: Any) -> None:
        try:
            if self.counter is not None:
                self.counter.detach()
        finally:
            self._grad.__exit__(*exc)
            self._state.__exit__(*exc)

    def _graph_for(self, x: torch.Tensor) -> LayerGraph:
        """The layer graph for batches like ``x`` (traced once per input shape and layout)."""
        from hwcheck.layers import REGISTRY_VERSION

        graphs = self.info["graphs"]
        key = (REGISTRY_VERSION[0], self.layout, tuple(x.shape))
        g = graphs.get(key)
        if g is None:
            g = _describe_for(self.model, x, self.layout)
            if not holds_model(g, self.model):
                if len(graphs) >= _PREPARED_GRAPHS:
                    graphs.clear()
                graphs[key] = g
        return g

    def _counter_for(self, graph: LayerGraph) -> ActivityCounter:
        """A counter on ``graph``: one that an earlier analysis of this (unchanged) model left
        for reuse, zeroed, else a new one (whose setup checks the graph against the model)."""
        # (a kept counter holds its graph: the id stays that graph's while it is kept)
        c = self.info["counters"].pop((id(graph), self.per_neuron), None)
        if c is not None:
            c.model, c.dt = self.model, self.dt
            return c
        return ActivityCounter(self.model, graph, self.dt, per_neuron=self.per_neuron, module_ids=self.info["module_ids"])

    def recycle(self) -> None:
        """Leave the (detached) counter for the next analysis of this model; call once its
        figures are read (:meth:`ActivityCounter.analysis`)."""
        c, self.counter = self.counter, None
        if c is not None and not c.handles and not holds_model(c.graph, self.model):
            c.reset()  # frees the sums; the counter keeps its plan
            c.model = None  # kept beside the model (weakly keyed): no reference back to it
            self.info["counters"][(id(c.graph), c.per_neuron)] = c

    def feed(self, x: torch.Tensor, *, data_layout: str = "auto", reset: bool = True) -> ActivityCounter:
        """Run one batch through the model (see :func:`hwcheck.timing.plan_batch`) and count it."""
        if x.is_complex():  # finiteness is checked by the counter, from the min/max it takes
            raise TypeError(f"input must be a real tensor, got dtype {x.dtype}")
        if x.dtype != self.wdtype:
            x = x.to(self.wdtype)
        if self.counter is None:
            if self.graph is None:
                self.graph = self._graph_for(x)
            self.counter = self._counter_for(self.graph)
            self.counter.driven = True
            self.counter.weights_may_change = False
            if self.counter._weights_key() != self.counter.wkey:  # e.g. a reused counter
                self.counter._reweigh()
            self.counter.attach()
            if self.on_start is not None:
                self.on_start(self.counter, self.graph)
        g = self.graph
        plan = plan_batch(
            self.model, x, g.layout, features=len(g.input_shape), data_layout=data_layout,
            has_neurons=bool(g.by_kind("spiking", "neuron")),
        )  # fmt: skip
        _run_plan(self.model, self.counter, plan, g, reset, self.info["states"])
        return self.counter


def _describe_for(model: torch.nn.Module, x: torch.Tensor, layout: str | None) -> LayerGraph:
    """The layer graph for data like ``x``. A one-step ("B") model given (B, T, ...) data may
    instead run its own time loop over dim 0 (``for t in range(x.shape[0])``): tracing it with
    the data's own shape (one sample) tells the two apart."""
    guess = layout or infer_layout(model)
    shape = _feature_shape(model, x, guess)
    if layout is None and guess == "B" and x.dim() == len(shape) + 2:
        try:
            g = describe(model, shape, example=x[:, :1])
        except Exception:  # the model does not take (., ., features) input: it is one step
            g = None
        if g is not None and g.loop_steps and g.layout == "TB":
            return g
    return describe(model, shape, layout=layout)


def _check_dt(dt: Any) -> float:
    try:
        v = float(dt)
    except (TypeError, ValueError):
        raise ValueError(f"dt must be a time step in seconds (a number > 0), got {dt!r}") from None
    if not math.isfinite(v) or v <= 0:
        raise ValueError(f"dt must be a finite time step in seconds > 0, got {dt!r}")
    return v


def _call(model: torch.nn.Module, x: torch.Tensor) -> None:
    """One forward pass; an error of the model's own code is named as such."""
    from hwcheck.graph import ModelError, _ours, model_error

    try:
        model(x)
    except ModelError:
        raise
    except Exception as exc:
        if _ours(exc):
            raise
        raise model_error(model, x, exc) from exc


def _run_plan(
    model: torch.nn.Module,
    counter: ActivityCounter,
    plan: BatchPlan,
    graph: LayerGraph,
    reset: bool,
    states: list[tuple[str, Any]] | None = None,
) -> None:
    """Feed one batch: a stepped plan carries state over its calls, any other plan's calls are
    separate samples. ``states``: :func:`hwcheck.timing.state_modules` of the model, if known."""
    counter.n_samples += plan.samples
    if plan.stepped:
        counter._live_samples = plan.samples
        if reset:
            reset_states(model, plan.samples, states)
        steps = 0
        for xc in plan.calls:
            _call(model, xc)
            steps += (counter.last_loop_steps or 1) if graph.loop_steps else 1
        counter.n_steps_total += plan.samples * steps
        return
    per_call = plan.samples // max(len(plan.calls), 1)
    counter._live_samples = per_call
    for xc in plan.calls:
        if reset:
            reset_states(model, per_call, states)
        _call(model, xc)
        steps = plan.steps
        if graph.loop_steps:
            steps = counter.last_loop_steps or plan.steps
            if graph.layout == "TB" and steps != int(xc.shape[0]):
                raise TimeError(
                    f"the data has {int(xc.shape[0])} time steps, but the model's forward() loops "
                    f"{steps} times; give data of that many steps (or change the model's step count)"
                )
        counter.n_steps_total += per_call * steps
