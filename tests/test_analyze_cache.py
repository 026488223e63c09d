"""analyze() reuses one trace and one counter plan per model structure and input shape.

A second ``analyze(model, x)`` on an unchanged model must not trace again nor rebuild the fan-out
maps, and must give the same figures as an analysis from a fresh trace; any change of the model
(a replaced layer, another weight shape, weights edited in place) must trace again.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
import pytest
import sinabs.layers as sl
import torch
from conftest import init_weights, spikes
from torch import nn

import hwcheck
import hwcheck.activity
import hwcheck.graph

B, T = 2, 4
NUMERIC = [
    "events_in", "spikes_out", "synops", "synops_effective", "ops_dense", "macs", "acs",
    "neuron_updates", "neuron_updates_event", "firing_rate", "in_max_per_step", "out_max_per_step",
]  # fmt: skip


def squeeze_snn() -> nn.Sequential:
    return init_weights(
        nn.Sequential(
            nn.Conv2d(2, 4, 3, padding=1, bias=False),
            sl.IAFSqueeze(batch_size=B),
            sl.SumPool2d(2),
            nn.Conv2d(4, 4, 3, bias=False),
            sl.IAFSqueeze(batch_size=B),
            nn.Flatten(),
            nn.Linear(4 * 2 * 2, 3, bias=False),
            sl.IAFSqueeze(batch_size=B),
        ),
        seed=1,
    )


def _same(a: pd.DataFrame, b: pd.DataFrame) -> None:
    assert list(a.index) == list(b.index)
    for col in NUMERIC:
        np.testing.assert_array_equal(a[col].to_numpy(float), b[col].to_numpy(float), err_msg=col)


@pytest.fixture
def traces(monkeypatch: pytest.MonkeyPatch) -> list[Any]:
    """Every real trace (cache miss) of this test, in order."""
    calls: list[Any] = []
    real = hwcheck.graph._describe

    def counting(model: Any, *args: Any, **kwargs: Any) -> Any:
        calls.append(model)
        return real(model, *args, **kwargs)

    monkeypatch.setattr(hwcheck.graph, "_describe", counting)
    return calls


@pytest.fixture
def fanout_builds(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """Every fan-out map the counters build (the counter plan), in order."""
    calls: list[int] = []
    real = hwcheck.activity.chain_fanout_map

    def counting(*args: Any, **kwargs: Any) -> Any:
        calls.append(1)
        return real(*args, **kwargs)

    monkeypatch.setattr(hwcheck.activity, "chain_fanout_map", counting)
    return calls


def test_second_analyze_reuses_trace_and_plan(traces: list[Any], fanout_builds: list[int]) -> None:
    model = squeeze_snn()
    x1 = spikes((B * T, 2, 8, 8), 1, max_value=1)
    x2 = spikes((B * T, 2, 8, 8), 2, max_value=1)
    a1 = hwcheck.analyze(model, x1)
    n_traces, n_fans = len(traces), len(fanout_builds)
    assert n_traces >= 1 and n_fans == 6  # 3 weight layers x (all, nonzero)
    a2 = hwcheck.analyze(model, x2)
    assert len(traces) == n_traces, "a second analyze() of the same model traced again"
    assert len(fanout_builds) == n_fans, "a second analyze() rebuilt the fan-out maps"
    assert a2.graph is a1.graph
    # the same data gives the same figures from the cached trace as from a fresh one
    fresh = hwcheck.describe(model, (2, 8, 8), cache=False)
    _same(hwcheck.analyze(model, x2).layers, hwcheck.analyze(model, x2, graph=fresh).layers)
    _same(a2.layers, hwcheck.analyze(model, x2, graph=fresh).layers)


def test_other_input_shape_is_its_own_trace(traces: list[Any]) -> None:
    model = nn.Sequential(nn.Conv2d(2, 3, 3, bias=False), nn.ReLU())
    small, large = torch.rand(4, 2, 6, 6), torch.rand(4, 2, 9, 9)
    g_small = hwcheck.analyze(model, small).graph
    g_large = hwcheck.analyze(model, large).graph
    assert g_small is not g_large and g_large.input_shape == (2, 9, 9)
    n = len(traces)
    assert hwcheck.analyze(model, small).graph is g_small  # both stay cached
    assert hwcheck.analyze(model, large).graph is g_large
    assert len(traces) == n


def test_replaced_layer_is_traced_again(traces: list[Any]) -> None:
    model = squeeze_snn()
    x = spikes((B * T, 2, 8, 8), 3, max_value=1)
    before = hwcheck.analyze(model, x)
    n = len(traces)
    # same shapes, another module object with other weights
    model[3] = init_weights(nn.Conv2d(4, 4, 3, bias=False), seed=7)
    after = hwcheck.analyze(model, x)
    assert len(traces) > n and after.graph is not before.graph
    assert after.graph["3"].module is model[3]
    fresh = hwcheck.describe(model, (2, 8, 8), cache=False)
    _same(after.layers, hwcheck.analyze(model, x, graph=fresh).layers)


def test_changed_weight_shape_is_traced_again(traces: list[Any]) -> None:
    model = squeeze_snn()
    x = spikes((B * T, 2, 8, 8), 4, max_value=1)
    hwcheck.analyze(model, x)
    n = len(traces)
    # a wider last layer, swapped in as a new weight on the same module
    lin = model[6]
    lin.weight = nn.Parameter(torch.rand(5, 16))
    lin.out_features = 5
    after = hwcheck.analyze(model, x)
    assert len(traces) > n
    assert after.graph["6"].out_shape == (5,) and after.graph["6"].synapses == 5 * 16
    fresh = hwcheck.describe(model, (2, 8, 8), cache=False)
    _same(after.layers, hwcheck.analyze(model, x, graph=fresh).layers)


def test_weights_edited_in_place_give_new_effective_synops(traces: list[Any]) -> None:
    model = squeeze_snn()
    x = spikes((B * T, 2, 8, 8), 5, max_value=1)
    before = hwcheck.analyze(model, x).layers
    n = len(traces)
    with torch.no_grad():
        model[0].weight[:, 0] = 0.0  # half the first layer's synapses are now zero
    after = hwcheck.analyze(model, x)
    assert len(traces) > n
    fresh = hwcheck.describe(model, (2, 8, 8), cache=False)
    _same(after.layers, hwcheck.analyze(model, x, graph=fresh).layers)
    row0 = after.layers.loc["0"]
    assert row0["synops"] == before.loc["0", "synops"]
    assert row0["synops_effective"] < before.loc["0", "synops_effective"]


def test_a_graph_traced_before_pruning_counts_the_pruned_weights() -> None:
    """graph= is a snapshot of the structure; the effective synops are activity and follow the
    weights the events meet."""
    model = squeeze_snn()
    x = spikes((B * T, 2, 8, 8), 6, max_value=1)
    g = hwcheck.describe(model, (2, 8, 8))
    before = hwcheck.analyze(model, x, graph=g).layers
    with torch.no_grad():
        model[0].weight[:, 1] = 0.0
        model[6].weight[0] = 0.0
    stale = hwcheck.analyze(model, x, graph=g).layers
    fresh = hwcheck.analyze(model, x, graph=hwcheck.describe(model, (2, 8, 8), cache=False)).layers
    for layer in ("0", "3", "6"):
        for col in ("synops", "synops_effective", "events_in", "spikes_out"):
            assert stale.loc[layer, col] == fresh.loc[layer, col]
    assert stale.loc["6", "synops_effective"] < stale.loc["6", "synops"]
    # the first layer's input is the data: the same events meet fewer nonzero weights
    assert stale.loc["0", "synops"] == before.loc["0", "synops"]
    assert stale.loc["0", "synops_effective"] < before.loc["0", "synops_effective"]


def test_an_attached_counter_follows_weight_changes_between_passes() -> None:
    """Events of each pass count with the weights of that pass (pruning while a counter is
    attached, as in a training loop)."""
    import copy

    import sinabs

    model = squeeze_snn()
    original = copy.deepcopy(model)
    x1, x2 = spikes((B * T, 2, 8, 8), 7, max_value=1), spikes((B * T, 2, 8, 8), 8, max_value=1)
    counter = hwcheck.ActivityCounter(model, hwcheck.describe(model, (2, 8, 8)))
    with counter, torch.no_grad():
        sinabs.reset_states(model)
        model(x1)
        model[0].weight[:2] = 0.0
        model[3].weight[:, :, 0] = 0.0
        sinabs.reset_states(model)
        model(x2)
    got = counter.analysis().layers  # per sample, over both passes' samples
    first = hwcheck.analyze(original, x1).layers
    second = hwcheck.analyze(model, x2).layers
    for layer in ("0", "3", "6"):
        for col in ("synops", "synops_effective", "events_in"):
            both = (first.loc[layer, col] + second.loc[layer, col]) / 2
            assert got.loc[layer, col] == pytest.approx(both, rel=1e-12)
    assert second.loc["0", "synops_effective"] < second.loc["0", "synops"]


def test_a_counter_follows_weight_changes_of_a_layer_that_reads_a_merge() -> None:
    import copy

    import sinabs

    class Branches(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.c1, self.s1 = nn.Conv2d(2, 3, 3, padding=1), sl.IAFSqueeze(batch_size=2)
            self.c2, self.s2 = nn.Conv2d(2, 3, 3, padding=1), sl.IAFSqueeze(batch_size=2)
            self.m = sl.Merge()
            self.c3, self.s3 = nn.Conv2d(3, 4, 3), sl.IAFSqueeze(batch_size=2)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return self.s3(self.c3(self.m(self.s1(self.c1(x)), self.s2(self.c2(x)))))

    torch.manual_seed(0)
    model = Branches()
    with torch.no_grad():
        for c in (model.c1, model.c2, model.c3):
            c.weight.uniform_(0.2, 1.0)
    original = copy.deepcopy(model)
    x1, x2 = (torch.rand(12, 2, 8, 8) < 0.5).float(), (torch.rand(12, 2, 8, 8) < 0.5).float()
    counter = hwcheck.ActivityCounter(model, hwcheck.describe(model, (2, 8, 8)))
    assert "c3" in counter.branches
    with counter, torch.no_grad():
        sinabs.reset_states(model)
        model(x1)
        model.c3.weight[:, :2] = 0.0
        sinabs.reset_states(model)
        model(x2)
    got = counter.analysis().raw["c3"]
    a1, a2 = hwcheck.analyze(original, x1).raw["c3"], hwcheck.analyze(model, x2).raw["c3"]
    for col in ("synops", "synops_effective"):
        assert got[col] == pytest.approx(a1[col] + a2[col], rel=1e-12)
    assert a2["synops_effective"] < a2["synops"]


def _baked(model: nn.Module) -> nn.Module:
    """A fresh model with the (pruned / parametrized) weights ``model`` computes, as plain
    parameters."""
    out = squeeze_snn()
    with torch.no_grad():
        for mine, theirs in zip(out, model, strict=True):
            if isinstance(mine, (nn.Conv2d, nn.Linear)):
                mine.weight.copy_(theirs.weight)
    return out


def test_pruning_twice_gives_the_new_effective_synops() -> None:
    """A second pruning round changes only the mask buffer: still a weight change."""
    from torch.nn.utils import prune

    model = squeeze_snn()
    x = spikes((B * T, 2, 8, 8), 11, max_value=1)
    for amount in (0.3, 0.6):
        prune.l1_unstructured(model[3], "weight", amount=amount)
        got = hwcheck.analyze(model, x).layers
        want = hwcheck.analyze(_baked(model), x).layers
        for layer in ("0", "3", "6"):
            assert got.loc[layer, "synops_effective"] == want.loc[layer, "synops_effective"]
    assert got.loc["3", "synops_effective"] < got.loc["3", "synops"]


def test_an_attached_counter_follows_a_parametrized_weight() -> None:
    import sinabs
    from torch.nn.utils import parametrize

    class Masked(nn.Module):
        def forward(self, w: torch.Tensor) -> torch.Tensor:
            return w * (w.abs() > 0.4)

    model = squeeze_snn()
    parametrize.register_parametrization(model[3], "weight", Masked())
    x1, x2 = spikes((B * T, 2, 8, 8), 12, max_value=1), spikes((B * T, 2, 8, 8), 13, max_value=1)
    counter = hwcheck.ActivityCounter(model, hwcheck.describe(model, (2, 8, 8)))
    first = hwcheck.analyze(_baked(model), x1).layers
    with counter, torch.no_grad():
        sinabs.reset_states(model)
        model(x1)
        model[3].parametrizations.weight.original.mul_(0.5)  # more weights fall under the mask
        sinabs.reset_states(model)
        model(x2)
    second = hwcheck.analyze(_baked(model), x2).layers
    got = counter.analysis().layers
    both = (first.loc["3", "synops_effective"] + second.loc["3", "synops_effective"]) / 2
    assert got.loc["3", "synops_effective"] == pytest.approx(both, rel=1e-12)
    assert second.loc["3", "synops_effective"] < first.loc["3", "synops_effective"]


def test_a_graph_with_a_replaced_layer_is_refused() -> None:
    model = squeeze_snn()
    x = spikes((B * T, 2, 8, 8), 14, max_value=1)
    g = hwcheck.describe(model, (2, 8, 8))
    model[3] = nn.Conv2d(4, 4, 3, bias=False)  # same shape, another module
    with pytest.raises(ValueError, match="layer '3' .* is not a module of this model"):
        hwcheck.analyze(model, x, graph=g)
    assert hwcheck.analyze(model, x).layers.loc["3", "synops"] > 0


@pytest.mark.parametrize("counted_before", [False, True])
def test_a_graph_whose_weights_changed_shape_is_refused(counted_before: bool) -> None:
    model = squeeze_snn()
    x = spikes((B * T, 2, 8, 8), 9, max_value=1)
    g = hwcheck.describe(model, (2, 8, 8))
    if counted_before:  # the counter plan of g is made (and kept) before the change
        hwcheck.analyze(model, x, graph=g)
    model[6].weight = nn.Parameter(torch.rand(5, 16))
    model[6].out_features = 5
    with pytest.raises(ValueError, match="weights of layer '6' .* changed shape since it was traced"):
        hwcheck.analyze(model, x, graph=g)
    assert hwcheck.analyze(model, x).graph["6"].out_shape == (5,)  # a fresh trace is fine


def test_cached_analysis_equals_uncached_on_many_batches() -> None:
    model = squeeze_snn()
    data = [spikes((B * T, 2, 8, 8), 10 + i, max_value=2) for i in range(4)]
    cached = hwcheck.analyze(model, data, progress=False)
    again = hwcheck.analyze(model, data, progress=False)
    fresh = hwcheck.analyze(
        model, data, progress=False, graph=hwcheck.describe(model, (2, 8, 8), cache=False)
    )
    _same(cached.layers, again.layers)
    _same(cached.layers, fresh.layers)
    assert cached.input_events == fresh.input_events


def test_pruning_twice_updates_the_static_nonzero_synapses() -> None:
    """The layer table's synapses_nonzero is static, from the trace: the second pruning round
    (only the mask changes) must give a new trace, not the cached one."""
    from torch.nn.utils import prune

    model = squeeze_snn()
    x = spikes((B * T, 2, 8, 8), 12, max_value=1)
    for amount in (0.3, 0.6):
        prune.l1_unstructured(model[3], "weight", amount=amount)
        got = hwcheck.analyze(model, x).layers.loc["3", "synapses_nonzero"]
        want = hwcheck.analyze(_baked(model), x).layers.loc["3", "synapses_nonzero"]
        assert got == want == hwcheck.describe(_baked(model), (2, 8, 8))["3"].synapses_nonzero


def test_a_changed_tuple_setting_is_traced_again(traces: list[Any]) -> None:
    """A convolution's padding is a tuple: changing it changes every shape after it."""
    model = nn.Sequential(nn.Conv2d(2, 3, 3, padding=1, bias=False), nn.ReLU(), nn.Flatten())
    x = torch.rand(4, 2, 6, 6)
    assert hwcheck.analyze(model, x).graph["0"].out_shape == (3, 6, 6)
    model[0].padding = (0, 0)
    after = hwcheck.analyze(model, x)
    assert after.graph["0"].out_shape == (3, 4, 4)
    fresh = hwcheck.describe(model, (2, 6, 6), cache=False)
    _same(after.layers, hwcheck.analyze(model, x, graph=fresh).layers)


def test_the_model_is_freed_after_analyses() -> None:
    """What analyses keep for reuse (trace, counter plan) holds no reference to the model."""
    import gc
    import weakref

    model = squeeze_snn()
    x = spikes((B * T, 2, 8, 8), 13, max_value=1)
    hwcheck.analyze(model, x)
    hwcheck.analyze(model, x)
    ref = weakref.ref(model)
    del model
    gc.collect()
    assert ref() is None


def test_a_reused_counter_starts_from_zero_with_its_own_dt() -> None:
    model = squeeze_snn()
    x = spikes((B * T, 2, 8, 8), 14, max_value=1)
    fresh = hwcheck.describe(model, (2, 8, 8), cache=False)
    first = hwcheck.analyze(model, x, dt=1e-3)
    second = hwcheck.analyze(model, x, dt=2e-3)  # the counter left by the first analysis
    assert second.dt == 2e-3 and second.n_samples == first.n_samples == B
    want = hwcheck.analyze(model, x, dt=2e-3, graph=fresh)
    _same(second.layers, want.layers)
    assert second.layers["synops_per_s"].equals(want.layers["synops_per_s"])
    # no hook is left on the model by the analyses
    assert all(not m._forward_hooks and not m._forward_pre_hooks for m in model.modules())


def test_a_one_layer_model_is_freed_after_analyses() -> None:
    """A model that is itself the only layer: its graph refers to it, so it is not cached."""
    import gc
    import weakref

    model = sl.IAF()
    x = spikes((B, T, 4), 15, max_value=1)
    first = hwcheck.analyze(model, x).layers
    _same(hwcheck.analyze(model, x).layers, first)
    hwcheck.describe(model, (4,))
    ref = weakref.ref(model)
    del model
    gc.collect()
    assert ref() is None
