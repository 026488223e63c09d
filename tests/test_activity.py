"""Activity counting: side effects, hooks, data flow, merging, memory and gradients.

Every expected count is computed here, from the model's own layer outputs and the brute-force
connection oracle of tests/conftest.py.
"""

from __future__ import annotations

import copy
from typing import Any

import numpy as np
import pandas as pd
import pytest
import sinabs
import sinabs.layers as sl
import torch
from conftest import (
    chain_fan_out,
    conv_connections,
    expected_synops,
    init_weights,
    linear_connections,
    module_hooks,
    pool2d_connections,
    spikes,
)
from torch import nn

import hwcheck

B, T = 2, 4




def squeeze_snn(batch_size: int | None = B, num_timesteps: int | None = None) -> nn.Sequential:
    kw = {"batch_size": batch_size, "num_timesteps": num_timesteps}
    return init_weights(
        nn.Sequential(
            nn.Conv2d(2, 4, 3, padding=1, bias=False),
            sl.IAFSqueeze(**kw),
            sl.SumPool2d(2),
            nn.Conv2d(4, 4, 3, bias=False),
            sl.IAFSqueeze(**kw),
            nn.Flatten(),
            nn.Linear(4 * 2 * 2, 3, bias=False),
            sl.IAFSqueeze(**kw),
        ),
        seed=1,
    )


def bt_snn(features: int = 6) -> nn.Sequential:
    """(B, T, F) model with non-squeeze sinabs neurons."""
    return init_weights(
        nn.Sequential(
            nn.Linear(features, 5, bias=False),
            sl.IAF(),
            nn.Linear(5, 3, bias=False),
            sl.LIF(tau_mem=4.0),
        ),
        seed=2,
        mean=0.5,
    )


NUMERIC = [
    "events_in",
    "spikes_out",
    "synops",
    "synops_effective",
    "ops_dense",
    "macs",
    "acs",
    "neuron_updates",
    "neuron_updates_event",
    "firing_rate",
    "synops_per_s",
    "in_max_per_step",
    "out_max_per_step",
]


def _assert_layers_close(a: pd.DataFrame, b: pd.DataFrame) -> None:
    assert list(a.index) == list(b.index)
    for col in NUMERIC:
        np.testing.assert_allclose(
            a[col].to_numpy(float), b[col].to_numpy(float), rtol=1e-9, err_msg=col
        )


# --------------------------------------------------------------------------- no side effects


def test_outputs_identical_with_and_without_counter() -> None:
    model = squeeze_snn()
    x = spikes((B * T, 2, 8, 8), 1, max_value=1)
    graph = hwcheck.describe(model, (2, 8, 8))
    sinabs.reset_states(model)
    ref = model(x)
    for grad in (True, False):
        sinabs.reset_states(model)
        with torch.set_grad_enabled(grad), hwcheck.ActivityCounter(model, graph) as counter:
            out = model(x)
        assert torch.equal(out, ref)
        assert counter.analysis().n_samples == B
    hwcheck.analyze(model, x)
    sinabs.reset_states(model)
    assert torch.equal(model(x), ref), "analyze() changed the model's behaviour"


def test_outputs_identical_bt_layout() -> None:
    model = bt_snn()
    x = spikes((B, T, 6), 2, max_value=1)
    sinabs.reset_states(model)
    ref = model(x)
    graph = hwcheck.describe(model, (6,))
    sinabs.reset_states(model)
    with hwcheck.ActivityCounter(model, graph):
        out = model(x)
    assert torch.equal(out, ref)


def test_describe_leaves_model_unchanged() -> None:
    """Training flags, parameters (objects and values) and state buffers survive describe()."""
    model = nn.Sequential(
        nn.Conv2d(2, 4, 3, padding=1),
        nn.BatchNorm2d(4),
        sl.IAFSqueeze(batch_size=B),
        sl.SumPool2d(2),
        nn.Flatten(),
        nn.Linear(4 * 4 * 4, 3),
        sl.NeuromorphicReLU(),
    )
    init_weights(model, 3)
    model.train()
    model[1].eval()  # mixed flags must be kept as they are
    with torch.no_grad():
        model(spikes((B * T, 2, 8, 8), 3, max_value=1))  # non-zero v_mem, BN stats untouched (eval)
    model[1].train()
    model[6].eval()
    flags = [(n, m.training) for n, m in model.named_modules()]
    params = [(n, p, p.detach().clone()) for n, p in model.named_parameters()]
    buffers = [(n, b.clone()) for n, b in model.named_buffers()]
    attrs = set(vars(model[6]))
    hwcheck.describe(model, (2, 8, 8))
    assert [(n, m.training) for n, m in model.named_modules()] == flags
    for (n, p, v), (n2, p2) in zip(params, model.named_parameters(), strict=True):
        assert n == n2 and p is p2 and torch.equal(p2, v), n
    now = dict(model.named_buffers())
    assert set(now) == {n for n, _ in buffers}
    for n, v in buffers:
        assert torch.equal(now[n], v), n
    assert set(vars(model[6])) == attrs


# --------------------------------------------------------------------------- hooks


class Boom(nn.Module):
    """Raises inside forward when the batch has 3 samples."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.shape[0] == 3:
            raise RuntimeError("boom")
        return x * 1.0


def test_no_hooks_left_after_analyze_and_describe() -> None:
    model = squeeze_snn()
    x = spikes((B * T, 2, 8, 8), 4, max_value=1)
    hwcheck.describe(model, (2, 8, 8))
    assert module_hooks(model) == []
    hwcheck.analyze(model, [x, x])
    assert module_hooks(model) == []


def test_no_hooks_left_after_exception_in_forward() -> None:
    model = nn.Sequential(
        nn.Conv2d(1, 2, 3), Boom(), nn.ReLU(), nn.Flatten(), nn.Linear(2 * 3 * 3, 2)
    )
    good, bad = spikes((2, 1, 5, 5), 5), spikes((3, 1, 5, 5), 6)
    with pytest.raises(RuntimeError, match="boom"):
        hwcheck.analyze(model, [good, bad])
    assert module_hooks(model) == []
    graph = hwcheck.describe(model, (1, 5, 5))
    with pytest.raises(RuntimeError, match="boom"):
        with hwcheck.ActivityCounter(model, graph):
            model(bad)
    assert module_hooks(model) == []
    # the failed passes left nothing behind that changes the next analysis
    a = hwcheck.analyze(model, good)
    assert a.layers.loc["0", "events_in"] == pytest.approx(float(good.sum()) / 2)


class AlwaysBoom(nn.Module):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        raise RuntimeError("boom")


def test_no_hooks_or_mode_left_after_exception_in_describe() -> None:
    model = nn.Sequential(nn.Conv2d(1, 2, 3), AlwaysBoom())
    with pytest.raises(RuntimeError, match="boom"):
        hwcheck.describe(model, (1, 5, 5))
    assert module_hooks(model) == []
    assert not torch._C._is_torch_function_mode_enabled()
    with pytest.raises(RuntimeError, match="boom"):
        hwcheck.analyze(model, spikes((2, 1, 5, 5), 7))
    assert module_hooks(model) == []
    assert not torch._C._is_torch_function_mode_enabled()


# --------------------------------------------------------------------------- data flow


class SharedPoolConv(nn.Module):
    """One AvgPool used twice, feeding two convs; a residual add; a conv called twice."""

    def __init__(self) -> None:
        super().__init__()
        self.pool = nn.AvgPool2d(2)
        self.c1 = nn.Conv2d(2, 2, 3, padding=1, bias=False)
        self.c2 = nn.Conv2d(2, 3, 2, bias=False)
        self.shared = nn.Conv2d(3, 3, 1, bias=False)
        self.act = nn.ReLU()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.act(self.c1(self.pool(x)))  # (2, 4, 4)
        z = self.act(self.c2(self.pool(y)))  # (3, 1, 1)
        s = self.act(self.shared(z))
        return self.shared(s) + z


def test_shared_modules_residual_bruteforce() -> None:
    model = init_weights(SharedPoolConv(), seed=4)
    x = spikes((B, 2, 8, 8), 8)
    with torch.no_grad():
        y = model.act(model.c1(model.pool(x)))
        z = model.act(model.c2(model.pool(y)))
        s = model.act(model.shared(z))
    graph = hwcheck.describe(model, (2, 8, 8))
    assert [n.name for n in graph] == [
        "pool",
        "c1",
        "act",
        "pool:2",
        "c2",
        "act:2",
        "shared",
        "act:3",
        "shared:2",
    ]
    layers = hwcheck.analyze(model, x).layers
    p1 = pool2d_connections(model.pool, (2, 8, 8))
    p2 = pool2d_connections(model.pool, (2, 4, 4))
    want = {
        "c1": expected_synops(x, chain_fan_out([p1, conv_connections(model.c1, (2, 4, 4))]), 1, B),
        "c2": expected_synops(y, chain_fan_out([p2, conv_connections(model.c2, (2, 2, 2))]), 1, B),
        "shared": expected_synops(z, conv_connections(model.shared, (3, 1, 1)).fan_out(), 1, B),
        "shared:2": expected_synops(s, conv_connections(model.shared, (3, 1, 1)).fan_out(), 1, B),
    }
    for name, v in want.items():
        assert layers.loc[name, "synops"] == pytest.approx(v), name
    assert layers.loc["c2", "events_in"] == pytest.approx(float(y.sum()) / B)
    assert layers["synops"].sum() == pytest.approx(sum(want.values()))


def test_nested_sequential_bruteforce() -> None:
    model = init_weights(
        nn.Sequential(
            nn.Sequential(
                nn.Conv2d(1, 2, 3, bias=False), nn.Sequential(nn.ReLU(), nn.AvgPool2d(2))
            ),
            nn.Sequential(nn.Flatten(), nn.Sequential(nn.Linear(2 * 3 * 3, 4, bias=False))),
        ),
        seed=5,
    )
    x = spikes((3, 1, 8, 8), 9)
    with torch.no_grad():
        h = model[0][1][0](model[0][0](x))
    layers = hwcheck.analyze(model, x).layers
    assert list(layers.index) == ["0.0", "0.1.0", "0.1.1", "1.0", "1.1.0"]
    pool = pool2d_connections(model[0][1][1], (2, 6, 6))
    lin = linear_connections(model[1][1][0])
    assert layers.loc["0.0", "synops"] == pytest.approx(
        expected_synops(x, conv_connections(model[0][0], (1, 8, 8)).fan_out(), 1, 3)
    )
    assert layers.loc["1.1.0", "synops"] == pytest.approx(
        expected_synops(h, chain_fan_out([pool, lin]), 1, 3)
    )


# --------------------------------------------------------------------------- batches, merge, reset


def test_merge_equals_concatenated_data_ann() -> None:
    model = init_weights(
        nn.Sequential(
            nn.Conv2d(1, 2, 3, bias=False),
            nn.ReLU(),
            nn.AvgPool2d(2),
            nn.Flatten(),
            nn.Linear(2 * 2 * 2, 3, bias=False),
            nn.ReLU(),
        ),
        seed=6,
    )
    x1, x2 = spikes((2, 1, 6, 6), 10), spikes((5, 1, 6, 6), 11)
    merged = hwcheck.analyze(model, x1).merge(hwcheck.analyze(model, x2))
    whole = hwcheck.analyze(model, torch.cat([x1, x2]))
    assert merged.n_samples == whole.n_samples == 7
    _assert_layers_close(merged.layers, whole.layers)
    pd.testing.assert_series_equal(merged.summary(), whole.summary(), check_exact=False, rtol=1e-9)
    # and the same through a list of batches
    _assert_layers_close(hwcheck.analyze(model, [x1, x2]).layers, whole.layers)


def test_merge_equals_concatenated_data_snn() -> None:
    model = squeeze_snn(batch_size=None, num_timesteps=T)
    x1 = spikes((2 * T, 2, 8, 8), 12, max_value=1)
    x2 = spikes((3 * T, 2, 8, 8), 13, max_value=1)
    both = torch.cat([x1.reshape(2, T, 2, 8, 8), x2.reshape(3, T, 2, 8, 8)]).reshape(5 * T, 2, 8, 8)
    sinabs.reset_states(model)
    a1 = hwcheck.analyze(model, x1)
    sinabs.reset_states(model)
    a2 = hwcheck.analyze(model, x2)
    sinabs.reset_states(model)
    whole = hwcheck.analyze(model, both)
    merged = a1 + a2
    assert (merged.n_samples, merged.n_steps) == (5, T)
    _assert_layers_close(merged.layers, whole.layers)


def test_merge_rejects_other_graphs() -> None:
    a = hwcheck.analyze(nn.Sequential(nn.Linear(2, 2)), torch.ones(1, 2))
    b = hwcheck.analyze(nn.Sequential(nn.Linear(2, 2), nn.ReLU()), torch.ones(1, 2))
    with pytest.raises(ValueError):
        a.merge(b)
    c = hwcheck.analyze(nn.Sequential(nn.Linear(2, 2)), torch.ones(1, 2), dt=2e-3)
    with pytest.raises(ValueError):
        a.merge(c)


def _run_fresh(model: nn.Module, x: torch.Tensor) -> list[torch.Tensor]:
    """Outputs of every top-level layer, from zero neuron states."""
    sinabs.reset_states(model)
    outs, h = [], x
    with torch.no_grad():
        for m in model:
            h = m(h)
            outs.append(h)
    return outs


def test_varying_batch_and_sequence_lengths_bt() -> None:
    """(B, T, F) batches of different B and T: per-sample sums over each sample's own steps."""
    model = bt_snn()
    batches = [
        spikes((2, 5, 6), 14, max_value=1),
        spikes((3, 8, 6), 15, max_value=1),
        spikes((1, 3, 6), 16),
    ]
    n_samples = 6
    sample_steps = 2 * 5 + 3 * 8 + 1 * 3
    syn0 = syn2 = spk1 = spk3 = 0.0
    fo0 = linear_connections(model[0]).fan_out()
    fo2 = linear_connections(model[2]).fan_out()
    for x in batches:
        o = _run_fresh(model, x)
        syn0 += expected_synops(x, fo0, 2, 1)
        syn2 += expected_synops(o[1], fo2, 2, 1)
        spk1 += float(o[1].sum())
        spk3 += float(o[3].sum())
    sinabs.reset_states(model)
    a = hwcheck.analyze(model, batches, progress=False)
    layers = a.layers
    assert a.n_samples == n_samples
    assert a.n_steps == pytest.approx(sample_steps / n_samples)
    assert layers.loc["0", "synops"] == pytest.approx(syn0 / n_samples)
    assert layers.loc["2", "synops"] == pytest.approx(syn2 / n_samples)
    assert layers.loc["1", "spikes_out"] == pytest.approx(spk1 / n_samples)
    assert layers.loc["3", "spikes_out"] == pytest.approx(spk3 / n_samples)
    assert layers.loc["1", "firing_rate"] == pytest.approx(spk1 / (5 * sample_steps))
    assert layers.loc["3", "neuron_updates"] == pytest.approx(3 * sample_steps / n_samples)
    assert layers.loc["0", "ops_dense"] == pytest.approx(6 * 5 * sample_steps / n_samples)


def test_analyze_resets_states_before_each_batch() -> None:
    """Each batch is fresh samples: leftover membrane potential must not leak into the counts."""
    model = squeeze_snn()
    x = spikes((B * T, 2, 8, 8), 17, max_value=1)
    want = _run_fresh(model, x)
    with torch.no_grad():
        model(spikes((B * T, 2, 8, 8), 18, p=0.9, max_value=3))  # leave v_mem behind
    a = hwcheck.analyze(model, [x, x])
    for idx in (1, 4, 7):
        assert a.layers.loc[str(idx), "spikes_out"] == pytest.approx(float(want[idx].sum()) / B), (
            idx
        )
    assert a.layers.loc["3", "synops"] == pytest.approx(
        expected_synops(want[2], conv_connections(model[3], (4, 4, 4)).fan_out(), 1, B)
    )


def test_analyze_is_repeatable() -> None:
    model = bt_snn()
    x = spikes((B, T, 6), 19, max_value=1)
    first = hwcheck.analyze(model, x).layers
    second = hwcheck.analyze(model, x).layers
    _assert_layers_close(first, second)


def test_a_graph_of_another_model_is_refused() -> None:
    """Hooks on a copy's modules would count nothing: the error names the layer."""
    model = bt_snn()
    other = copy.deepcopy(model)
    x = spikes((B, T, 6), 19, max_value=1)
    g = hwcheck.describe(other, (6,))
    with pytest.raises(ValueError, match="built for another model: its layer"):
        hwcheck.analyze(model, x, graph=g)
    with pytest.raises(ValueError, match="built for another model"):
        hwcheck.ActivityCounter(model, g)
    assert not module_hooks(model) and not module_hooks(other)
    assert hwcheck.analyze(other, x, graph=g).layers["synops"].sum() > 0


# --------------------------------------------------------------------------- memory


def _held_tensors(obj: Any, seen: set[int] | None = None) -> tuple[int, int]:
    """(number of tensors, total elements) reachable from a counter's containers."""
    seen = set() if seen is None else seen
    if id(obj) in seen:
        return 0, 0
    seen.add(id(obj))
    if isinstance(obj, torch.Tensor):
        return 1, obj.numel()
    if isinstance(obj, dict):
        items = list(obj.values())
    elif isinstance(obj, (list, tuple, set)):
        items = list(obj)
    else:
        return 0, 0
    n = e = 0
    for it in items:
        a, b = _held_tensors(it, seen)
        n, e = n + a, e + b
    return n, e


def _counter_state(counter: hwcheck.ActivityCounter) -> tuple[int, int]:
    skip = {"model", "graph", "handles"}
    n = e = 0
    seen: set[int] = set()
    for k, v in vars(counter).items():
        if k not in skip:
            a, b = _held_tensors(v, seen)
            n, e = n + a, e + b
    return n, e


@pytest.mark.parametrize("grad", [False, True])
def test_accumulators_do_not_grow_with_batches(grad: bool) -> None:
    model = squeeze_snn(batch_size=None, num_timesteps=T)
    graph = hwcheck.describe(model, (2, 8, 8))
    sizes = []
    for n_batches in (1, 20):
        counter = hwcheck.ActivityCounter(model, graph)
        with counter, torch.set_grad_enabled(grad):
            for i in range(n_batches):
                sinabs.reset_states(model)
                model(spikes(((1 + i % 3) * T, 2, 8, 8), 100 + i, max_value=1))
        sizes.append(_counter_state(counter))
        assert counter.analysis().n_samples == sum(1 + i % 3 for i in range(n_batches))
    assert sizes[0] == sizes[1]


def test_accumulators_do_not_grow_with_sequence_length() -> None:
    model = bt_snn()
    graph = hwcheck.describe(model, (6,))
    sizes = []
    for steps in (2, 50):
        counter = hwcheck.ActivityCounter(model, graph)
        with counter, torch.no_grad():
            model(spikes((B, steps, 6), 20))
        sizes.append(_counter_state(counter))
    assert sizes[0] == sizes[1]


# --------------------------------------------------------------------------- gradients


def _closed_form_ann(x: torch.Tensor, w1: torch.Tensor, b1: torch.Tensor) -> torch.Tensor:
    """synops per sample of Linear(4, 6) -> ReLU -> Linear(6, 3): x events x 6 + relu events x 3."""
    h = torch.relu(x @ w1.T + b1)
    return (x.sum() * 6 + h.sum() * 3) / x.shape[0]


def test_synops_tensor_is_differentiable() -> None:
    model = init_weights(nn.Sequential(nn.Linear(4, 6), nn.ReLU(), nn.Linear(6, 3)), seed=7, mean=0.1)
    graph = hwcheck.describe(model, (4,))
    x = spikes((3, 4), 21, p=0.7).requires_grad_(True)
    with hwcheck.ActivityCounter(model, graph) as counter:
        model(x)
    s = counter.synops_tensor()
    assert s.requires_grad
    assert float(s.detach()) == pytest.approx(counter.analysis().summary()["synops"])
    s.backward()
    xr = x.detach().clone().requires_grad_(True)
    w1 = model[0].weight.detach().clone().requires_grad_(True)
    b1 = model[0].bias.detach().clone().requires_grad_(True)
    ref = _closed_form_ann(xr, w1, b1)
    ref.backward()
    assert float(s.detach()) == pytest.approx(float(ref.detach()))
    torch.testing.assert_close(x.grad, xr.grad)
    torch.testing.assert_close(model[0].weight.grad, w1.grad)
    torch.testing.assert_close(model[0].bias.grad, b1.grad)
    assert model[0].weight.grad.abs().sum() > 0


def test_synops_tensor_value_when_input_needs_no_grad() -> None:
    """The usual training case (data without requires_grad): the value is still the pass's synops,
    and the weights still get gradients."""
    model = init_weights(nn.Sequential(nn.Linear(4, 6), nn.ReLU(), nn.Linear(6, 3)), seed=8, mean=0.1)
    graph = hwcheck.describe(model, (4,))
    x = spikes((3, 4), 22, p=0.7)
    with hwcheck.ActivityCounter(model, graph) as counter:
        model(x)
    s = counter.synops_tensor()
    w1 = model[0].weight.detach().clone().requires_grad_(True)
    ref = _closed_form_ann(x, w1, model[0].bias.detach())
    ref.backward()
    s.backward()
    torch.testing.assert_close(model[0].weight.grad, w1.grad)
    assert float(s.detach()) == pytest.approx(counter.analysis().summary()["synops"])
    assert float(s.detach()) == pytest.approx(float(ref.detach()))


def test_synops_tensor_spiking_surrogate_gradients() -> None:
    model = squeeze_snn()
    graph = hwcheck.describe(model, (2, 8, 8))
    x = spikes((B * T, 2, 8, 8), 23, max_value=1).requires_grad_(True)
    sinabs.reset_states(model)
    with hwcheck.ActivityCounter(model, graph) as counter:
        model(x)
    s = counter.synops_tensor()
    s.backward()
    assert model[0].weight.grad is not None and model[0].weight.grad.abs().sum() > 0
    assert float(s.detach()) == pytest.approx(counter.analysis().summary()["synops"], rel=1e-6)


def test_synops_tensor_zero_without_grad_and_analysis_same() -> None:
    model = squeeze_snn()
    graph = hwcheck.describe(model, (2, 8, 8))
    x = spikes((B * T, 2, 8, 8), 24, max_value=1)
    results = []
    for grad in (False, True):
        sinabs.reset_states(model)
        with torch.set_grad_enabled(grad), hwcheck.ActivityCounter(model, graph) as counter:
            model(x)
        results.append(counter.analysis().layers)
        if not grad:
            assert float(counter.synops_tensor()) == 0.0
    _assert_layers_close(results[0], results[1])


def test_analyze_does_not_build_autograd_graph() -> None:
    model = copy.deepcopy(squeeze_snn())
    x = spikes((B * T, 2, 8, 8), 25, max_value=1).requires_grad_(True)
    hwcheck.analyze(model, x)
    assert x.grad is None and all(p.grad is None for p in model.parameters())


class _MergeOfPooled(nn.Module):
    """Merge(AvgPool(spikes a), spikes b) -> conv: the pooled branch's events are a's spikes."""

    def __init__(self) -> None:
        super().__init__()
        self.c1, self.s1 = nn.Conv2d(2, 3, 3, padding=1), sl.IAFSqueeze(batch_size=2)
        self.p = nn.AvgPool2d(2)
        self.c2, self.s2 = nn.Conv2d(2, 3, 3, padding=1, stride=2), sl.IAFSqueeze(batch_size=2)
        self.m = sl.Merge()
        self.c3, self.s3 = nn.Conv2d(3, 4, 3), sl.IAFSqueeze(batch_size=2)

    def forward(self, x):
        return self.s3(self.c3(self.m(self.p(self.s1(self.c1(x))), self.s2(self.c2(x)))))


def test_events_through_a_merge_with_a_pooled_branch_are_spikes():
    torch.manual_seed(0)
    model = _MergeOfPooled()
    init_weights(model, seed=21, mean=0.6, std=0.4)
    x = spikes((2 * 6, 2, 8, 8), 22, p=0.4)  # batch 2 x 6 steps, squeezed
    seen = {}
    hooks = [model.s1.register_forward_hook(lambda m, i, o: seen.__setitem__("a", o.detach().clone())),
             model.s2.register_forward_hook(lambda m, i, o: seen.__setitem__("b", o.detach().clone()))]  # fmt: skip
    with torch.no_grad():
        model(x)
    for h in hooks:
        h.remove()
    sinabs.reset_states(model)
    a = hwcheck.analyze(model, x, progress=False)
    pst = pool2d_connections(model.p, (3, 8, 8))
    fan_a = chain_fan_out([pst, conv_connections(model.c3, pst.out_shape)])
    fan_b = conv_connections(model.c3, (3, 4, 4)).fan_out()
    want_events = float(seen["a"].sum() + seen["b"].sum()) / 2
    want_synops = expected_synops(seen["a"], fan_a, 1, 2) + expected_synops(seen["b"], fan_b, 1, 2)
    assert want_events > 0
    assert a.layers.loc["c3", "events_in"] == pytest.approx(want_events)
    assert a.layers.loc["c3", "synops"] == pytest.approx(want_synops)
