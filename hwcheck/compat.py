"""Drop-in replacements for sinabs' ``SNNAnalyzer`` and ``SynOpCounter``, counted correctly.

Same constructors, methods and dictionary keys as sinabs documents them, computed by
:mod:`hwcheck.activity`: exact synops through pooling (by data flow, not registration order),
one per-sample convention for every layer, a module called twice summed per forward pass, nested
models counted, no stored inputs or outputs, no deprecation warning. The README lists each
deliberate difference from sinabs.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

import torch

from hwcheck.activity import ActivityCounter, Analysis
from hwcheck.graph import INPUT, describe, infer_layout

__all__ = ["SNNAnalyzer", "SynOpCounter"]


class _LazyCounter:
    """Builds the layer graph on the model's first forward pass, then counts every pass."""

    def __init__(self, model: torch.nn.Module, dt_s: float, per_neuron: bool) -> None:
        self.model = model
        self.dt_s = dt_s
        self.per_neuron = per_neuron
        self.counter: ActivityCounter | None = None
        self.layout = infer_layout(model)
        self._building = False
        self.handles = [
            model.register_forward_pre_hook(self._pre),
            model.register_forward_hook(self._post),
        ]
        self.on_pass: list[Any] = []

    def _pre(self, module: Any, args: tuple) -> None:
        if self.counter is not None or self._building:
            return
        x = next((a for a in args if isinstance(a, torch.Tensor)), None)
        if x is None:
            return
        lead = 2 if self.layout in ("BT", "TB") else 1
        self._building = True
        try:
            graph = describe(self.model, tuple(x.shape[lead:]), layout=self.layout)
        finally:
            self._building = False
        self.counter = ActivityCounter(self.model, graph, self.dt_s, per_neuron=self.per_neuron)
        self.counter.attach()
        # the counter's own hooks were added during this call's hook loop: run them by hand
        self.counter._model_pre_hook(module, args)
        if module in self.counter.calls:  # the model is itself a single layer
            self.counter._pre_hook(module, args)

    def _post(self, module: Any, args: tuple, output: Any) -> None:
        if self._building or self.counter is None:
            return
        if module in self.counter.calls:  # the model is one layer: close its call first
            self.counter._post_hook(module, args, output)
        self.counter._model_post_hook(module, args, output)
        for cb in self.on_pass:
            cb(self.counter)

    def remove(self) -> None:
        for h in self.handles:
            h.remove()
        self.handles = []
        if self.counter is not None:
            self.counter.detach()


class SNNAnalyzer:
    """Statistics of spiking and parameter layers, with sinabs' interface.

    Args:
        model: the PyTorch model.
        dt: duration of one time step in **milliseconds** (as in sinabs; default 1.0).

    Hooks are attached at construction and count every forward pass; call :meth:`remove` (or use
    ``with SNNAnalyzer(model) as a:``) to take them off.
    """

    def __init__(self, model: torch.nn.Module, dt: float = 1.0) -> None:
        self.model = model
        self.dt = dt
        self._lazy = _LazyCounter(model, dt * 1e-3, per_neuron=True)
        self._lazy.on_pass.append(self._collect)
        self._last: Analysis | None = None
        self._last_neurons: dict[str, tuple[torch.Tensor, torch.Tensor]] = {}
        self._total: Analysis | None = None
        self._sum_neurons: dict[str, torch.Tensor] = {}
        self._rate_sum: dict[str, float] = {}
        self._synops_sum: dict[str, float] = {}
        self.n_batches = 0

    def __enter__(self) -> SNNAnalyzer:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.remove()

    def remove(self) -> None:
        """Remove every hook this analyzer added."""
        self._lazy.remove()

    def reset(self) -> None:
        """Forget everything counted so far (hooks stay)."""
        self._last, self._total = None, None
        self._last_neurons, self._sum_neurons = {}, {}
        self._rate_sum, self._synops_sum = {}, {}
        self.n_batches = 0
        if self._lazy.counter is not None:
            self._lazy.counter.reset()

    def _collect(self, counter: ActivityCounter) -> None:
        a = counter.analysis()
        per_neuron = {n: (counter.neuron_in.get(n), counter.neuron_out[n]) for n in counter.neuron_out}
        counter.reset()
        self._last, self._last_neurons = a, per_neuron
        self._total = a if self._total is None else self._total.merge(a)
        self.n_batches += 1
        for path, st in _by_module(a, per_neuron).items():
            if st.spiking:
                self._rate_sum[path] = self._rate_sum.get(path, 0.0) + st.rate(a.n_steps)
                rate = st.rate_per_neuron(a.n_samples, a.n_steps)
                if rate is not None:
                    prev = self._sum_neurons.get(path)
                    self._sum_neurons[path] = rate if prev is None else prev + rate
            if st.param:
                self._synops_sum[path] = self._synops_sum.get(path, 0.0) + st.synops

    def get_layer_statistics(self, average: bool = False) -> dict:
        """``{"spiking": {name: {...}}, "parameter": {name: {...}}}`` as sinabs returns it.

        Spiking layers: ``n_neurons``, ``firing_rate`` (spikes per neuron per time step),
        ``firing_rate_per_neuron`` (same, per neuron), ``input`` / ``output`` (per neuron, summed
        over time, averaged over samples -- sinabs keeps the whole last tensors instead).
        Parameter layers: ``synops`` (per sample), ``num_timesteps``, ``time_window`` (ms),
        ``SynOps/s`` and ``synops/s``. ``average=True`` averages over forward passes, else the
        last pass.
        """
        result: dict[str, dict[str, dict[str, Any]]] = {"spiking": {}, "parameter": {}}
        if self._last is None:
            return result
        a = self._last
        s = max(a.n_samples, 1)
        steps = a.n_steps
        n = self.n_batches
        for path, st in _by_module(a, self._last_neurons).items():
            if st.spiking:
                if average:
                    rate = self._rate_sum[path] / n
                    per_neuron = self._sum_neurons[path] / n if path in self._sum_neurons else None
                else:
                    rate = st.rate(steps)
                    per_neuron = st.rate_per_neuron(a.n_samples, steps)
                result["spiking"][path] = {
                    "n_neurons": st.neurons,
                    "firing_rate": torch.tensor(rate),
                    "firing_rate_per_neuron": per_neuron.float() if per_neuron is not None else None,
                    "input": (st.in_sum / s).float() if st.in_sum is not None else None,
                    "output": (st.out_sum / s).float() if st.out_sum is not None else None,
                }
            if st.param:
                synops = self._synops_sum[path] / n if average else st.synops
                per_s = synops / steps / self.dt * 1000 if steps else float("inf")
                result["parameter"][path] = {
                    "synops": torch.tensor(synops),
                    "num_timesteps": int(round(steps)),
                    "time_window": steps * self.dt,
                    "SynOps/s": torch.tensor(per_s),
                    "synops/s": torch.tensor(per_s),
                }
        return result

    def get_model_statistics(self, average: bool = False) -> dict:
        """``firing_rate`` (over all spiking neurons), ``synops`` (sum of the layers' synops, the
        same numbers as :meth:`get_layer_statistics`) and ``n_spiking_neurons``."""
        layers = self.get_layer_statistics(average)
        spikes_weighted = 0.0
        neurons = 0
        for st in layers["spiking"].values():
            spikes_weighted += float(st["firing_rate"]) * st["n_neurons"]
            neurons += st["n_neurons"]
        synops = sum(float(st["synops"]) for st in layers["parameter"].values())
        out: dict[str, Any] = {}
        if neurons:
            out["firing_rate"] = torch.tensor(spikes_weighted / neurons)
        out["synops"] = torch.tensor(synops)
        out["n_spiking_neurons"] = torch.tensor(float(neurons))
        return out

    def analysis(self, average: bool = True) -> Analysis | None:
        """The hwcheck :class:`Analysis` of every pass so far (or only the last one)."""
        return self._total if average else self._last


@dataclass
class _ModuleStats:
    """One module's figures in one pass, summed over its calls (sinabs reports per module)."""

    spiking: bool = False
    param: bool = False
    neurons: int = 0
    spikes: float = 0.0  # per sample
    synops: float = 0.0  # per sample
    in_sum: torch.Tensor | None = None  # per neuron, summed over samples and time
    out_sum: torch.Tensor | None = None

    def rate(self, steps: float) -> float:
        return self.spikes / max(self.neurons * steps, 1e-30)

    def rate_per_neuron(self, samples: int, steps: float) -> torch.Tensor | None:
        if self.out_sum is None:
            return None
        return self.out_sum / max(samples, 1) / max(steps, 1)


def _by_module(a: Analysis, per_neuron: dict) -> dict[str, _ModuleStats]:
    """Per module path: the figures of its calls in one pass, added up."""
    out: dict[str, _ModuleStats] = {}
    df = a.layers
    for node in a.graph:
        st = out.setdefault(node.module_path, _ModuleStats())
        if node.kind == "spiking":
            st.spiking = True
            st.neurons = node.neurons
            st.spikes += float(df.at[node.name, "spikes_out"])
            pin, pout = per_neuron.get(node.name, (None, None))
            if pout is not None:
                st.out_sum = pout if st.out_sum is None else st.out_sum + pout
            if pin is not None:
                st.in_sum = pin if st.in_sum is None else st.in_sum + pin
        elif node.kind in ("conv", "linear"):
            st.param = True
            st.synops += float(df.at[node.name, "synops"])
    return out


#: > 0 while a SynOpCounter traces the model: other counters' hooks wait for the real pass
_TRACING = [0]


class SynOpCounter:
    """Synaptic operations caused by the ``NeuromorphicReLU`` activations of an ANN.

    Args:
        modules: the model's modules, e.g. ``model.modules()`` (the model itself first). With the
            model present, each activation's fan-out is derived exactly from the layers it feeds
            (borders, stride and pooling included); given only activation modules, their
            ``fanout`` attribute is used as in sinabs.
        sum_activations: return one total (default) or a list with one value per activation.

    Calling the counter after a forward pass returns the synops per sample of that pass as a
    differentiable tensor, usable as a training penalty.
    """

    def __init__(self, modules: Iterable[torch.nn.Module], sum_activations: bool = True) -> None:
        import sinabs.layers as sl

        mods = list(modules)
        self.sum_activations = sum_activations
        self.relus = [m for m in mods if isinstance(m, sl.NeuromorphicReLU)]
        if not self.relus:
            raise ValueError("No NeuromorphicReLU found in module list.")
        self.root = next(
            (m for m in mods if any(r is not m and any(r is c for c in m.modules()) for r in self.relus)),
            None,
        )
        self.values: dict[int, torch.Tensor] = {}
        self.fanouts: dict[int, torch.Tensor] | None = None
        self.handles = [r.register_forward_hook(self._hook) for r in self.relus]
        if self.root is not None:
            self.handles.append(self.root.register_forward_pre_hook(self._build))

    def remove(self) -> None:
        """Remove every hook this counter added."""
        for h in self.handles:
            h.remove()
        self.handles = []

    def _build(self, module: Any, args: tuple) -> None:
        if self.fanouts is not None or _TRACING[0]:
            return  # built, or inside another counter's tracing pass: build on the real pass
        x = next((a for a in args if isinstance(a, torch.Tensor)), None)
        if x is None:
            return
        self.fanouts = {}
        layout = infer_layout(self.root)
        lead = 2 if layout == "BT" else 1
        hooks_backup = [(r, dict(r._forward_hooks)) for r in self.relus]
        for r in self.relus:  # do not count the tracing pass
            r._forward_hooks.clear()
        _TRACING[0] += 1
        try:
            graph = describe(self.root, tuple(x.shape[lead:]), layout=layout)
        finally:
            _TRACING[0] -= 1
            for r, h in hooks_backup:
                r._forward_hooks.update(h)
        counter = ActivityCounter(self.root, graph, 1.0)
        by_module: dict[int, str] = {}
        for node in graph:
            if any(node.module is r for r in self.relus):
                by_module[id(node.module)] = node.name
        for w, point in counter.event_point.items():
            src = _source_node(graph, point)
            if src is None:
                continue
            rid = next((k for k, n in by_module.items() if n == src), None)
            if rid is None:
                continue
            fan = counter.fanout[w].reshape(-1)
            prev = self.fanouts.get(rid)
            self.fanouts[rid] = fan if prev is None else prev + fan

    def _hook(self, module: Any, args: tuple, output: torch.Tensor) -> None:
        if self.fanouts is not None and id(module) in self.fanouts:
            fan = self.fanouts[id(module)]
            n = output.shape[0] if output.dim() else 1
            flat = output.reshape(n, -1) if output.dim() > 1 else output.reshape(1, -1)
            if flat.shape[1] != fan.numel():
                flat = output.reshape(-1, fan.numel())
            self.values[id(module)] = (flat.sum(0) * fan.to(flat.dtype)).sum() / max(n, 1)
        else:
            n = len(output) if output.dim() else 1
            self.values[id(module)] = output.sum() / n * float(getattr(module, "fanout", 1))

    def __call__(self) -> torch.Tensor | list[torch.Tensor]:
        vals = [self.values.get(id(r), torch.zeros(())) for r in self.relus]
        if self.sum_activations:
            return torch.stack(vals).sum()
        return vals


def _source_node(graph: Any, point: str) -> str | None:
    """The node whose output feeds ``point`` through reshapes / identities only."""
    preds = graph.predecessors(point)
    while len(preds) == 1:
        p = preds[0]
        if p == INPUT:
            return None
        if graph[p].kind in ("reshape", "identity"):
            preds = graph.predecessors(p)
            continue
        return p
    return None
