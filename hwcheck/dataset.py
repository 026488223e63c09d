"""Statistics over a whole dataset: streamed sample by sample, spread as well as means.

A deployment decision is made on a test set, not one batch, and a chip overruns in its busiest
time step, not its average one. :func:`analyze_dataset` runs the model over a dataset **one
sample at a time** (bounded memory: one sample's frames and the counters) and returns a
:class:`DatasetAnalysis`: an :class:`~hwcheck.activity.Analysis` (the per-layer sums and
means, so every estimate and report takes it) plus :class:`Distributions`:

* per sample and layer: synops and spikes (kept exactly: 16 bytes per layer and sample), from
  which p50 / p95 / max are computed (``numpy.quantile``, linear interpolation);
* per layer: the peak events in one time step of one sample (spikes out of a spiking layer; the
  model input as ``"input"``) -- what overruns a chip's per-step limits;
* per spiking layer: the fraction of neurons that never fired on the whole dataset (dead) and
  of those that fired at every step of every sample (saturated).

Everything is a sum, a max or a list of per-sample values, so two analyses merge exactly
(:meth:`DatasetAnalysis.merge`), and under ``torchrun`` every rank analyses its shard and the
process group gathers the parts (:mod:`hwcheck.distributed`).

Data accepted (see :func:`samples_of`): event recordings (a Tonic structured array, a file,
folder or glob of ``.npy``/``.npz``/``.aedat4`` recordings), a Tonic dataset (items
``(events, target)``), any torch ``Dataset`` of tensors ``(T, *features)`` or
``(tensor, target)``, a ``DataLoader`` or iterable of batch-first ``(B, T, *features)`` batches.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd
import torch

from hwcheck.activity import MAX_FIELDS, SUM_FIELDS, ActivityCounter, Analysis
from hwcheck.graph import LayerGraph

__all__ = ["DISTRIBUTION_COLUMNS", "DatasetAnalysis", "Distributions", "analyze_dataset", "samples_of", "wants_dataset"]

DISTRIBUTION_COLUMNS = [
    "synops_p50",
    "synops_p95",
    "synops_max",
    "spikes_p50",
    "spikes_p95",
    "spikes_max",
    "events_peak_per_step",
    "dead_fraction",
    "saturated_fraction",
]


@dataclass
class Distributions:
    """Per-sample values and per-step peaks of one or more shards of a dataset.

    ``synops`` and ``spikes`` are ``(samples, layers)`` arrays in graph node order (``layers``);
    ``input_events`` is ``(samples,)``; ``peak_per_step`` maps a layer (or ``"input"``) to the
    largest number of events in one step of one sample; ``neuron_spikes`` maps a spiking layer to
    its spike count per neuron summed over every sample and step (float64, exact for counts).
    """

    layers: list[str]
    synops: np.ndarray
    spikes: np.ndarray
    input_events: np.ndarray
    peak_per_step: dict[str, float] = field(default_factory=dict)
    neuron_spikes: dict[str, np.ndarray] = field(default_factory=dict)

    @classmethod
    def empty(cls, layers: list[str]) -> Distributions:
        z = np.zeros((0, len(layers)))
        return cls(list(layers), z, z.copy(), np.zeros(0))

    def merge(self, other: Distributions) -> Distributions:
        if self.layers != other.layers:
            raise ValueError("cannot merge distributions of different layer graphs")
        peaks = dict(self.peak_per_step)
        for k, v in other.peak_per_step.items():
            peaks[k] = max(peaks.get(k, 0.0), v)
        neurons = {k: v.copy() for k, v in self.neuron_spikes.items()}
        for k, v in other.neuron_spikes.items():
            neurons[k] = neurons[k] + v if k in neurons else v.copy()
        return Distributions(
            self.layers,
            np.concatenate([self.synops, other.synops]),
            np.concatenate([self.spikes, other.spikes]),
            np.concatenate([self.input_events, other.input_events]),
            peaks,
            neurons,
        )

    @property
    def n_samples(self) -> int:
        return len(self.input_events)


def _q(values: np.ndarray) -> tuple[float, float, float]:
    if not len(values):
        return (math.nan, math.nan, math.nan)
    p50, p95 = np.quantile(values, [0.5, 0.95])
    return (float(p50), float(p95), float(values.max()))


@dataclass
class DatasetAnalysis(Analysis):
    """An :class:`Analysis` over a dataset, with the spread over samples and time steps.

    ``layers`` adds :data:`DISTRIBUTION_COLUMNS` to the per-sample means: ``synops_p50`` /
    ``_p95`` / ``_max`` and ``spikes_*`` over samples, ``events_peak_per_step`` (the most events
    in one time step of one sample), ``dead_fraction`` and ``saturated_fraction`` (spiking layers:
    neurons that never fired / fired at every step). :meth:`distribution` is that part alone.
    """

    dist: Distributions | None = None

    def merge(self, other: Analysis) -> DatasetAnalysis:
        base = Analysis.merge(self, other)
        d_self, d_other = self.dist, getattr(other, "dist", None)
        dist = d_self.merge(d_other) if d_self is not None and d_other is not None else None
        return DatasetAnalysis(**{k: getattr(base, k) for k in ("graph", "dt", "n_samples", "n_steps_total", "input_events", "raw")}, dist=dist)

    __add__ = merge

    def distribution(self) -> pd.DataFrame:
        """Per layer: p50 / p95 / max of synops and spikes per sample, peak events per step,
        dead and saturated neuron fractions (NaN where a figure does not apply)."""
        d = self.dist
        rows = []
        for j, node in enumerate(self.graph):
            row: dict[str, Any] = {"layer": node.name, **dict.fromkeys(DISTRIBUTION_COLUMNS, math.nan)}
            if d is not None:
                if node.kind in ("conv", "linear"):
                    row["synops_p50"], row["synops_p95"], row["synops_max"] = _q(d.synops[:, j])
                if node.kind == "spiking":
                    row["spikes_p50"], row["spikes_p95"], row["spikes_max"] = _q(d.spikes[:, j])
                if node.name in d.peak_per_step:
                    row["events_peak_per_step"] = d.peak_per_step[node.name]
                counts = d.neuron_spikes.get(node.name)
                if counts is not None and counts.size:
                    row["dead_fraction"] = float(np.mean(counts == 0))
                    row["saturated_fraction"] = float(np.mean(counts >= self.n_steps_total)) if self.n_steps_total else math.nan
            rows.append(row)
        return pd.DataFrame(rows, columns=["layer", *DISTRIBUTION_COLUMNS]).set_index("layer")

    @property
    def layers(self) -> pd.DataFrame:
        return Analysis.layers.fget(self).join(self.distribution())

    def peak_events_per_s(self) -> dict[str, float]:
        """Per layer (and ``"input"``): events per second in the busiest step (peak / dt)."""
        if self.dist is None:
            return {}
        return {k: v / self.dt for k, v in self.dist.peak_per_step.items()}

    def summary(self) -> pd.Series:
        s = Analysis.summary(self)
        d = self.dist
        if d is None:
            return s
        extra = {}
        extra["synops_p50"], extra["synops_p95"], extra["synops_max"] = _q(d.synops.sum(axis=1))
        spiking = [j for j, n in enumerate(self.graph) if n.kind == "spiking"]
        extra["spikes_p50"], extra["spikes_p95"], extra["spikes_max"] = _q(d.spikes[:, spiking].sum(axis=1))
        extra["input_events_p95"] = _q(d.input_events)[1]
        extra["input_events_peak_per_step"] = d.peak_per_step.get("input", math.nan)
        return pd.concat([s, pd.Series(extra)]).rename("total")

    def notes(self) -> list[str]:
        out = Analysis.notes(self)
        if self.dist is not None:
            out.append(
                f"distributions over {self.dist.n_samples} sample(s): synops/spikes p50, p95, max per sample; "
                "peaks per time step; energy uses the mean per sample, bandwidth limits the peak step"
            )
        return out

    # -- for torch.distributed and local processes ---------------------------------------------
    def state(self) -> dict[str, Any]:
        """Everything but the graph, as plain picklable data (for gathering across processes)."""
        return {
            "dt": self.dt,
            "n_samples": self.n_samples,
            "n_steps_total": self.n_steps_total,
            "input_events": self.input_events,
            "raw": self.raw,
            "dist": self.dist,
        }

    @classmethod
    def from_state(cls, graph: LayerGraph, state: dict[str, Any]) -> DatasetAnalysis:
        return cls(graph=graph, **state)


# --------------------------------------------------------------------------- data -> samples


def _is_map_dataset(data: Any) -> bool:
    """A map-style dataset: indexable with a length, not a tensor, array, list or DataLoader."""
    from torch.utils.data import DataLoader

    if isinstance(data, (torch.Tensor, np.ndarray, list, tuple, str, bytes, dict, DataLoader)):
        return False
    return hasattr(data, "__getitem__") and hasattr(data, "__len__")


def wants_dataset(data: Any) -> bool:
    """True for data that :func:`hwcheck.analyze` hands to :func:`analyze_dataset`: event
    recordings (arrays, paths, folders, globs), Tonic datasets, map-style torch Datasets, and any
    iterable under an initialised process group of more than one rank."""
    from pathlib import Path

    from hwcheck.distributed import rank_world
    from hwcheck.events import is_event_array, is_event_source

    if isinstance(data, (str, Path)):  # a path that names no recordings stays a type error
        return is_event_source(data)
    if is_event_array(data) or _is_map_dataset(data):
        return True
    # under torchrun every rank must take part in the reduction
    return rank_world()[1] > 1 and data is not None and not isinstance(data, torch.Tensor)


def _as_tensor(item: Any, sensor: tuple[int, int, int] | None, input_shape: tuple[int, ...] | None, dt: float, steps: int | None) -> torch.Tensor:
    """One dataset item as a ``(T, *features)`` tensor (events binned to frames of ``dt``)."""
    from hwcheck.events import is_event_array, sensor_size_for, to_frames

    if isinstance(item, (tuple, list)) and item:
        item = item[0]
    if isinstance(item, dict) and item:
        item = next(iter(item.values()))
    if is_event_array(item):
        if sensor is None:
            if input_shape is None:
                input_shape = _shape_of_events(item)
            sensor = sensor_size_for(input_shape)
        frames = to_frames(item, sensor, dt, steps=steps)
        t = torch.from_numpy(frames)
        return t.reshape(len(t), *input_shape) if input_shape is not None else t
    if isinstance(item, np.ndarray):
        item = torch.from_numpy(np.ascontiguousarray(item))
    if not isinstance(item, torch.Tensor):
        raise TypeError(f"a dataset item must be events, a tensor or an array (or (input, target)), got {type(item).__name__}")
    return item


def _shape_of_events(ev: np.ndarray) -> tuple[int, int, int]:
    if not len(ev):
        raise ValueError("cannot tell the sensor size from an empty recording: pass input_shape=(P, H, W)")
    h = int(ev["y"].max()) + 1 if "y" in ev.dtype.names else 1
    return (max(int(ev["p"].max()) + 1, 2), h, int(ev["x"].max()) + 1)


def samples_of(
    data: Any,
    dt: float,
    *,
    input_shape: tuple[int, ...] | None = None,
    steps: int | None = None,
    rank: int = 0,
    world: int = 1,
) -> tuple[Iterator[torch.Tensor], int | None]:
    """``data`` as an iterator of single samples ``(T, *features)`` and its length (None if
    unknown). Map-style data (recordings, Datasets) are sharded: this rank takes items
    ``rank, rank + world, ...``; a DataLoader or iterable is taken as this rank's shard already
    (give it a ``DistributedSampler``)."""
    from pathlib import Path

    from hwcheck.events import RecordingDataset, is_event_array, shape_from_recording

    sensor = None
    if is_event_array(data):
        data = [data]
    elif isinstance(data, (str, Path)):
        data = RecordingDataset(data, input_shape or shape_from_recording(data), dt, steps=steps)
    if getattr(data, "sensor_size", None) is not None and not isinstance(data, RecordingDataset):
        sensor = tuple(int(s) for s in data.sensor_size)  # a Tonic dataset: (W, H, P)
        if input_shape is None:
            input_shape = (sensor[2], sensor[1], sensor[0])
    if _is_map_dataset(data) or isinstance(data, list):
        idx = range(rank, len(data), world)

        def items() -> Iterator[torch.Tensor]:
            for i in idx:
                yield _as_tensor(data[i], sensor, input_shape, dt, steps)

        return items(), len(idx)
    if isinstance(data, torch.Tensor):  # one batch-first (B, T, *features) tensor
        return iter(data[rank::world]), len(range(rank, len(data), world))

    def batches() -> Iterator[torch.Tensor]:
        for batch in data:
            x = _as_tensor(batch, sensor, input_shape, dt, steps)
            yield from x  # (B, T, ...) -> samples

    try:
        n = len(data) * (getattr(data, "batch_size", None) or 1)
    except TypeError:
        n = None
    return batches(), n


# --------------------------------------------------------------------------- per-step peaks


class _StepPeaks:
    """Forward hooks that record, per layer, the most events in one time step: the model input
    and the output of each spiking layer, for a pass over **one** sample (each row of a tensor
    is then one time step)."""

    def __init__(self, model: torch.nn.Module, counter: ActivityCounter, graph: LayerGraph) -> None:
        self.graph = graph
        self.peaks: dict[str, float] = {}
        self.in_features = max(math.prod(graph.input_shape), 1)
        self.handles = [model.register_forward_pre_hook(self._model_pre)]
        self.names = {m: names for m, names in counter.calls.items() if names[0] in counter.spike_nodes}
        self.calls: dict[Any, int] = {}
        for m in self.names:
            self.handles.append(m.register_forward_hook(self._post))

    def _peak(self, key: str, t: torch.Tensor, features: int) -> None:
        if not t.numel():
            return
        if features <= 0 or t.numel() % features:
            features = t.numel()
        v = float(t.detach().abs().reshape(-1, features).sum(1, dtype=torch.float64).max())
        if v > self.peaks.get(key, -1.0):
            self.peaks[key] = v

    def _model_pre(self, module: Any, args: tuple) -> None:
        self.calls = {}
        x = next((a for a in args if isinstance(a, torch.Tensor)), None)
        if x is not None:
            self._peak("input", x, self.in_features)

    def _post(self, module: Any, args: tuple, output: Any) -> None:
        out = output
        while isinstance(out, (tuple, list)) and out:
            out = out[0]
        if not isinstance(out, torch.Tensor):
            return
        names = self.names[module]
        k = self.calls.get(module, 0)
        self.calls[module] = k + 1
        name = names[k % len(names)]
        self._peak(name, out, math.prod(self.graph.nodes[name].out_shape))

    def remove(self) -> None:
        for h in self.handles:
            h.remove()
        self.handles = []


# --------------------------------------------------------------------------- the driver


def _device_of(model: torch.nn.Module) -> torch.device:
    p = next(model.parameters(), None)
    if p is None:
        p = next(model.buffers(), None)
    return p.device if p is not None else torch.device("cpu")


def analyze_dataset(
    model: torch.nn.Module,
    data: Any,
    dt: float = 1e-3,
    *,
    input_shape: tuple[int, ...] | None = None,
    steps: int | None = None,
    layout: str | None = None,
    progress: bool | None = None,
    graph: LayerGraph | None = None,
    distributed: bool | None = None,
    processes: int = 1,
) -> DatasetAnalysis:
    """Analyse ``model`` over every sample of ``data``, one sample per forward pass.

    Args:
        model: the network (on any device: samples are moved to the device of its parameters).
        data: see :func:`samples_of` (events are binned to ``dt`` with Tonic's ``ToFrame``).
        dt: time step in seconds; one frame of events per step.
        input_shape: the model input ``(P, H, W)`` for event data (default: the Tonic dataset's
            sensor size, or the largest x, y, p of the first recording).
        steps: cut or zero-pad every recording to this many steps (default: its own length).
        layout: the model's time layout (see :mod:`hwcheck.timing`); default inferred.
        progress: a progress bar over samples (default: shown when the work turns out long).
        graph: a precomputed layer graph.
        distributed: reduce over the initialised ``torch.distributed`` process group (default:
            when one is initialised with more than one rank); each rank analyses its shard and
            every rank returns the whole dataset's analysis.
        processes: > 1 runs that many local processes (gloo) and returns the merged analysis.
    """
    from hwcheck import distributed as hd
    from hwcheck.activity import Session, _check_dt
    from hwcheck.graph import _check_model
    from hwcheck.nir_import import as_model
    from hwcheck.progress import bar as make_bar

    dt = _check_dt(dt)
    if processes > 1:
        return hd.analyze_local(
            model, data, dt, processes, input_shape=input_shape, steps=steps, layout=layout, graph=graph, progress=progress
        )
    model = as_model(model, dt=dt)[0]
    _check_model(model)
    rank, world = hd.rank_world() if distributed is not False else (0, 1)
    samples, total = samples_of(data, dt, input_shape=input_shape, steps=steps, rank=rank, world=world)
    device = _device_of(model)
    peaks: _StepPeaks | None = None
    result: DatasetAnalysis | None = None
    rows_syn: list[list[float]] = []
    rows_spk: list[list[float]] = []
    inputs: list[float] = []
    neuron_spikes: dict[str, torch.Tensor] = {}
    show = progress if progress is not None else True
    pbar = make_bar(total, "analysing", "sample") if show else None

    def start(counter: ActivityCounter, g: LayerGraph) -> None:
        nonlocal peaks
        peaks = _StepPeaks(model, counter, g)

    session = Session(model, dt, layout=layout, graph=graph, per_neuron=True, on_start=start)
    try:
        with session:
            for x in samples:
                if session.counter is not None:
                    session.counter.reset()  # one sample per analysis: its own figures
                counter = session.feed(x.to(device=device).unsqueeze(0), data_layout="BT")  # (1, T, *features)
                names = list(session.graph.nodes)
                spiking = {n.name for n in session.graph.by_kind("spiking")}
                one = counter.analysis()
                rows_syn.append([one.raw[n]["synops"] for n in names])
                rows_spk.append([one.raw[n]["spikes_out"] for n in names])
                inputs.append(one.input_events)
                for n, v in counter.neuron_out.items():
                    if n in spiking:
                        v = v.to(torch.float64)
                        neuron_spikes[n] = neuron_spikes[n] + v if n in neuron_spikes else v
                part = DatasetAnalysis(**{k: getattr(one, k) for k in ("graph", "dt", "n_samples", "n_steps_total", "input_events", "raw")})
                result = part if result is None else DatasetAnalysis.merge(result, part)
                if pbar is not None:
                    pbar.update(1)
    finally:
        if peaks is not None:
            peaks.remove()
        if pbar is not None:
            pbar.close()
    graph = session.graph
    if world > 1:
        return hd.reduce(model, graph, result, _dist_part(result, rows_syn, rows_spk, inputs, peaks, neuron_spikes, graph), dt)
    if result is None:
        raise ValueError("analyze_dataset() got no samples")
    result.dist = _dist_part(result, rows_syn, rows_spk, inputs, peaks, neuron_spikes, graph)
    return result


def _dist_part(result: DatasetAnalysis | None, syn: list, spk: list, inputs: list, peaks: _StepPeaks | None, neurons: dict, graph: LayerGraph | None) -> Distributions | None:
    if result is None or graph is None:
        return None
    return Distributions(
        list(graph.nodes),
        np.asarray(syn, dtype=np.float64).reshape(-1, len(graph.nodes)),
        np.asarray(spk, dtype=np.float64).reshape(-1, len(graph.nodes)),
        np.asarray(inputs, dtype=np.float64),
        dict(peaks.peaks) if peaks is not None else {},
        {k: v.cpu().numpy().reshape(-1) for k, v in neurons.items()},
    )


def empty_raw(graph: LayerGraph) -> dict[str, dict[str, float]]:
    return {n: {**dict.fromkeys(SUM_FIELDS, 0.0), **dict.fromkeys(MAX_FIELDS, 0.0)} for n in graph.nodes}
