"""hwcheck against sinabs 3.1.3's own counters.

Where sinabs is right (sequential IAFSqueeze CNNs with sum/avg pooling of kernel == stride and no
padding, NeuromorphicReLU ANNs) hwcheck must give the same synops per layer and firing rates.
Where sinabs is wrong (see shared/reference/sinabs-behaviour.md, "Synops counting", items 1-10)
hwcheck must give the correct value, checked here by hand or by the brute-force oracle.
"""

from __future__ import annotations

import copy
import math
import warnings

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
    pool2d_connections,
    spikes,
)
from sinabs import hooks
from torch import nn

import hwcheck

B, T = 2, 5


def _snn_analyzer(model: nn.Module):
    from sinabs.synopcounter import SNNAnalyzer

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        return SNNAnalyzer(model)


def _synop_counter(modules, **kw):
    from sinabs.synopcounter import SynOpCounter

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        return SynOpCounter(modules, **kw)




def squeeze_cnn(pool: str) -> nn.Sequential:
    """conv-IAF-pool-conv-IAF-avgpool-flatten-linear-IAF on (B*T, 2, 16, 16)."""
    first_pool = sl.SumPool2d(2) if pool == "sum" else nn.AvgPool2d(2)
    model = nn.Sequential(
        nn.Conv2d(2, 4, 3, padding=1, bias=False),
        sl.IAFSqueeze(batch_size=B),
        first_pool,
        nn.Conv2d(4, 8, 3, stride=2, padding=1, bias=False),
        sl.IAFSqueeze(batch_size=B),
        nn.AvgPool2d(2),
        nn.Flatten(),
        nn.Linear(8 * 2 * 2, 10, bias=False),
        sl.IAFSqueeze(batch_size=B),
    )
    return init_weights(model, seed=1 if pool == "sum" else 2)


def _analyze_fresh(model: nn.Module, x: torch.Tensor, **kw) -> hwcheck.Analysis:
    """analyze() from zero neuron states (reset here too, so these comparisons do not depend
    on analyze()'s own reset, which test_activity checks separately)."""
    sinabs.reset_states(model)
    return hwcheck.analyze(model, x, **kw)


# --------------------------------------------------------------------------- where sinabs is right


@pytest.mark.parametrize("pool", ["sum", "avg"])
def test_snnanalyzer_squeeze_cnn(pool: str) -> None:
    model = squeeze_cnn(pool)
    x = spikes((B * T, 2, 16, 16), 5, p=0.3, max_value=1)
    ref = copy.deepcopy(model)
    sinabs.reset_states(ref)
    analyzer = _snn_analyzer(ref)
    with torch.no_grad():
        ref(x)
    stats = analyzer.get_layer_statistics()
    a = _analyze_fresh(model, x)
    layers = a.layers
    assert set(stats["parameter"]) == {"0", "3", "7"}
    for name, s in stats["parameter"].items():
        assert s["num_timesteps"] == T
        assert layers.loc[name, "synops"] == pytest.approx(float(s["synops"]), rel=1e-6), name
    assert set(stats["spiking"]) == {"1", "4", "8"}
    for name, s in stats["spiking"].items():
        assert layers.loc[name, "neurons"] == s["n_neurons"]
        assert layers.loc[name, "firing_rate"] == pytest.approx(
            float(s["firing_rate"]), rel=1e-6
        ), name
    # the model totals: sinabs sums unscaled synops (item 1), so compare with the layer sum
    total = sum(float(s["synops"]) for s in stats["parameter"].values())
    assert a.summary()["synops"] == pytest.approx(total, rel=1e-6)


def test_snnanalyzer_synops_per_second() -> None:
    """sinabs' synops/s (dt in ms) over a squeeze model equals hwcheck's synops_per_s."""
    model = squeeze_cnn("sum")
    x = spikes((B * T, 2, 16, 16), 6, max_value=1)
    ref = copy.deepcopy(model)
    sinabs.reset_states(ref)
    analyzer = _snn_analyzer(ref)
    analyzer.dt = 2.0  # ms
    with torch.no_grad():
        ref(x)
    stats = analyzer.get_layer_statistics()["parameter"]
    layers = _analyze_fresh(model, x, dt=2e-3).layers
    for name, s in stats.items():
        assert layers.loc[name, "synops_per_s"] == pytest.approx(float(s["synops/s"]), rel=1e-6)


@pytest.mark.parametrize("pool", ["sum", "avg"])
def test_sinabs_hooks_squeeze_cnn(pool: str) -> None:
    """sinabs.hooks give synops per time step (mean over B*T rows): hwcheck per sample = x T."""
    model = squeeze_cnn(pool)
    x = spikes((B * T, 2, 16, 16), 7, max_value=1)
    ref = copy.deepcopy(model)
    hooks.register_synops_hooks(ref, dt=1e-3)
    for m in ref:
        if isinstance(m, sl.IAFSqueeze):
            m.register_forward_hook(hooks.firing_rate_hook)
    sinabs.reset_states(ref)
    with torch.no_grad():
        ref(x)
    layers = _analyze_fresh(model, x).layers
    per_step = ref.hook_data["synops_per_timestep"]
    assert set(per_step) == {0, 3, 7}
    for idx, v in per_step.items():
        assert layers.loc[str(idx), "synops"] == pytest.approx(float(v) * T, rel=1e-6)
    for idx, m in enumerate(ref):
        if isinstance(m, sl.IAFSqueeze):
            fr = float(m.hook_data["firing_rate"])
            assert layers.loc[str(idx), "firing_rate"] == pytest.approx(fr, rel=1e-6)


def neuromorphic_relu_ann() -> nn.Sequential:
    model = nn.Sequential(
        nn.Conv2d(1, 4, 3, bias=False),
        sl.NeuromorphicReLU(),
        nn.AvgPool2d(2),
        nn.Conv2d(4, 6, 3, padding=1, bias=False),
        sl.NeuromorphicReLU(),
        nn.Flatten(),
        nn.Linear(6 * 5 * 5, 4, bias=False),
        sl.NeuromorphicReLU(),
    )
    return init_weights(model, seed=3, mean=0.2, std=0.4).eval()


def test_snnanalyzer_neuromorphic_relu_ann() -> None:
    model = neuromorphic_relu_ann()
    x = spikes((3, 1, 12, 12), 8, p=0.5)
    ref = copy.deepcopy(model)
    analyzer = _snn_analyzer(ref)
    with torch.no_grad():
        ref(x)
    stats = analyzer.get_layer_statistics()["parameter"]
    layers = hwcheck.analyze(model, x).layers
    assert set(stats) == {"0", "3", "6"}
    for name, s in stats.items():
        assert layers.loc[name, "synops"] == pytest.approx(float(s["synops"]), rel=1e-6), name


def test_firing_rate_hook_neuromorphic_relu() -> None:
    """firing_rate_hook on a NeuromorphicReLU = mean output per unit and sample (one step)."""
    model = neuromorphic_relu_ann()
    x = spikes((3, 1, 12, 12), 9, p=0.5)
    ref = copy.deepcopy(model)
    for m in ref:
        if isinstance(m, sl.NeuromorphicReLU):
            m.register_forward_hook(hooks.firing_rate_hook)
    with torch.no_grad():
        ref(x)
    layers = hwcheck.analyze(model, x).layers
    for idx, m in enumerate(ref):
        if isinstance(m, sl.NeuromorphicReLU):
            want = float(m.hook_data["firing_rate"])
            assert layers.loc[str(idx), "firing_rate"] == pytest.approx(want, rel=1e-6), idx


def test_synopcounter_where_fanout_is_uniform() -> None:
    """SynOpCounter is right when each NeuromorphicReLU's fanout is set to the next Linear's width."""
    model = init_weights(
        nn.Sequential(
            nn.Linear(10, 20),
            sl.NeuromorphicReLU(fanout=5),
            nn.Linear(20, 5),
            sl.NeuromorphicReLU(),
        ),
        seed=4,
    ).eval()
    model[3].fanout = 0  # nothing after it
    x = spikes((4, 10), 10, p=0.6)
    counter = _synop_counter(model.modules(), sum_activations=False)
    with torch.no_grad():
        model(x)
    (ref,) = counter()
    layers = hwcheck.analyze(model, x).layers
    assert layers.loc["2", "synops"] == pytest.approx(float(ref), rel=1e-6)


# --------------------------------------------------------------------------- sinabs defects


def test_defect1_model_total_includes_avgpool_scaling() -> None:
    model = nn.Sequential(nn.AvgPool2d(2), nn.Conv2d(1, 1, 1, bias=False))
    a = hwcheck.analyze(model, torch.ones(1, 1, 2, 2))
    assert a.layers.loc["1", "synops"] == 4
    assert a.summary()["synops"] == 4  # sinabs: layer 4, model 1


def test_defect2_one_convention_for_conv_and_linear() -> None:
    """No Squeeze layer, (B, T, ...) input: conv and linear both per sample over T steps."""

    conv = init_weights(nn.Conv2d(1, 2, 3, bias=False), seed=5)
    lin = init_weights(nn.Linear(2 * 3 * 3, 3, bias=False), seed=6)
    model = nn.Sequential(
        sl.FlattenTime(),
        conv,
        sl.UnflattenTime(batch_size=B),
        sl.IAF(),
        nn.Flatten(start_dim=2),
        lin,
        sl.IAF(),
    )
    x = spikes((B, T, 1, 5, 5), 11, max_value=1)
    sinabs.reset_states(model)
    with torch.no_grad():
        mid = model[3](model[2](model[1](model[0](x))))
    a = _analyze_fresh(model, x, dt=1e-3)
    assert a.graph.layout == "BT" and a.n_samples == B and a.n_steps == T
    syn_c = expected_synops(x, conv_connections(conv, (1, 5, 5)).fan_out(), 2, B)
    syn_l = expected_synops(mid.reshape(B, T, -1), linear_connections(lin).fan_out(), 2, B)
    layers = a.layers
    assert layers.loc["1", "synops"] == pytest.approx(syn_c)
    assert layers.loc["5", "synops"] == pytest.approx(syn_l)
    for name in ("1", "5"):
        assert math.isfinite(layers.loc[name, "synops_per_s"])
        assert layers.loc[name, "synops_per_s"] == pytest.approx(
            layers.loc[name, "synops"] / (T * 1e-3)
        )


class ManualFlattenTime(nn.Module):
    """(B, T, C, H, W) -> conv on (B*T, ...) -> (B, T, ...) written in forward (no Unflatten module)."""

    def __init__(self, conv: nn.Module) -> None:
        super().__init__()
        self.conv = conv

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b = x.shape[0]
        return self.conv(x.flatten(0, 1)).unflatten(0, (b, -1))


def test_defect2_one_convention_manual_time_flattening() -> None:
    conv = init_weights(nn.Conv2d(1, 2, 3, bias=False), seed=5)
    lin = init_weights(nn.Linear(2 * 3 * 3, 3, bias=False), seed=6)
    model = nn.Sequential(ManualFlattenTime(conv), sl.IAF(), nn.Flatten(start_dim=2), lin, sl.IAF())
    x = spikes((B, T, 1, 5, 5), 11, max_value=1)
    sinabs.reset_states(model)
    with torch.no_grad():
        mid = model[1](model[0](x))
    a = _analyze_fresh(model, x, dt=1e-3)
    assert a.graph.layout == "BT" and a.n_samples == B and a.n_steps == T
    layers = a.layers
    assert layers.loc["0.conv", "synops"] == pytest.approx(
        expected_synops(x, conv_connections(conv, (1, 5, 5)).fan_out(), 2, B)
    )
    assert layers.loc["3", "synops"] == pytest.approx(
        expected_synops(mid.reshape(B, T, -1), linear_connections(lin).fan_out(), 2, B)
    )
    for name in ("0.conv", "3"):
        assert layers.loc[name, "synops_per_s"] == pytest.approx(
            layers.loc[name, "synops"] / (T * 1e-3)
        )


def test_defect3_linear_bt_per_sample_and_per_step() -> None:
    x = torch.zeros(2, 10, 3)
    x[0, 0, 0] = 3
    x[1, 0, 1] = 5
    # (B, T, F) spiking model: 20 per sample over 10 steps = 2 per step (sinabs hooks: 20 "per step")
    a = hwcheck.analyze(nn.Sequential(nn.Linear(3, 5), sl.IAF()), x)
    assert a.n_steps == 10
    assert a.layers.loc["0", "synops"] == 20
    assert a.layers.loc["0", "synops"] / a.n_steps == 2
    assert a.layers.loc["0", "synops_per_s"] == pytest.approx(20 / (10 * 1e-3))
    # (B, seq, F) ANN: dim 1 is not time; one inference per sample (sinabs: num_timesteps = 10)
    a = hwcheck.analyze(nn.Sequential(nn.Linear(3, 5)), x)
    assert a.graph.layout == "B" and a.n_steps == 1
    assert a.layers.loc["0", "synops"] == 20
    assert a.layers.loc["0", "ops_dense"] == 10 * 15


class TwoBranches(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.pa, self.pb = nn.AvgPool2d(2), nn.AvgPool2d(2)
        self.ca, self.cb = nn.Conv2d(1, 1, 1, bias=False), nn.Conv2d(1, 1, 1, bias=False)
        nn.init.ones_(self.ca.weight)
        nn.init.ones_(self.cb.weight)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.ca(self.pa(x)) + self.cb(self.pb(x))


def test_defect4_pool_scaling_follows_data_flow() -> None:
    a = hwcheck.analyze(TwoBranches(), torch.ones(1, 1, 2, 2))
    assert a.layers.loc["ca", "synops"] == 4  # sinabs: 16
    assert a.layers.loc["cb", "synops"] == 4  # sinabs: 1
    assert a.layers.loc["ca", "events_in"] == 4


class Residual(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.c1 = nn.Conv2d(1, 2, 3, padding=1, bias=False)
        self.act = nn.ReLU()
        self.c2 = nn.Conv2d(2, 2, 3, padding=1, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.act(self.c1(x))
        return self.c2(y) + y


def test_defect5_nested_and_non_sequential_models_counted() -> None:
    inner = nn.Sequential(nn.Conv2d(2, 3, 3, bias=False), nn.ReLU())
    model = init_weights(
        nn.Sequential(nn.Sequential(nn.Conv2d(1, 2, 3, padding=1, bias=False), nn.ReLU()), inner),
        seed=7,
    ).eval()
    x = spikes((B, 1, 6, 6), 12)
    layers = hwcheck.analyze(model, x).layers
    with torch.no_grad():
        h = model[0](x)
    assert layers.loc["0.0", "synops"] == pytest.approx(
        expected_synops(x, conv_connections(model[0][0], (1, 6, 6)).fan_out(), 1, B)
    )
    assert layers.loc["1.0", "synops"] == pytest.approx(
        expected_synops(h, conv_connections(inner[0], (2, 6, 6)).fan_out(), 1, B)
    )

    res = init_weights(Residual(), seed=8)
    layers = hwcheck.analyze(res, x).layers
    with torch.no_grad():
        y = res.act(res.c1(x))
    assert layers.loc["c1", "synops"] == pytest.approx(
        expected_synops(x, conv_connections(res.c1, (1, 6, 6)).fan_out(), 1, B)
    )
    assert layers.loc["c2", "synops"] == pytest.approx(
        expected_synops(y, conv_connections(res.c2, (2, 6, 6)).fan_out(), 1, B)
    )


class CalledTwice(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.l = nn.Linear(1, 1)
        nn.init.ones_(self.l.weight)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.l(x) + self.l(2 * x)


def test_defect6_module_called_twice_counts_both_calls() -> None:
    a = hwcheck.analyze(CalledTwice(), torch.ones(1, 1))
    assert a.layers.loc["l", "synops"] == 1
    assert a.layers.loc["l:2", "synops"] == 2
    assert a.layers.loc[["l", "l:2"], "synops"].sum() == 3  # sinabs: 1.5 (average) or 2 (last)
    assert a.summary()["synops"] == 3


def test_defect7_no_spurious_kernel_stride_warning() -> None:
    model = nn.Sequential(
        nn.AvgPool2d(kernel_size=(2, 2), stride=2), nn.Conv2d(1, 1, 1, bias=False)
    )
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        a = hwcheck.analyze(model, torch.ones(1, 1, 4, 4))
    assert not [w for w in caught if "stride" in str(w.message)]
    assert a.layers.loc["1", "synops"] == 16


def test_defect8_count_include_pad_false_and_ceil_mode() -> None:
    nopad = nn.Sequential(
        nn.AvgPool2d(2, 2, padding=1, count_include_pad=False), nn.Conv2d(1, 1, 1, bias=False)
    )
    assert (
        hwcheck.analyze(nopad, torch.ones(1, 1, 2, 2)).layers.loc["1", "synops"] == 4
    )  # sinabs 16
    ceil = nn.Sequential(nn.AvgPool2d(2, 2, ceil_mode=True), nn.Conv2d(1, 1, 1, bias=False))
    assert hwcheck.analyze(ceil, torch.ones(1, 1, 3, 3)).layers.loc["1", "synops"] == 9  # sinabs 16


def test_defect9_nonspiking_state_not_counted_as_spikes() -> None:
    """ExpLeak holds state but does not spike: neurons yes, spikes no."""
    model = nn.Sequential(
        nn.Linear(4, 3, bias=False), sl.ExpLeak(tau_mem=5.0), nn.Linear(3, 2, bias=False), sl.IAF()
    )
    init_weights(model, seed=9, mean=1.0, std=0.2)
    x = spikes((B, T, 4), 13, max_value=1)
    a = _analyze_fresh(model, x)
    layers = a.layers
    assert layers.loc["1", "kind"] == "neuron" and layers.loc["1", "neurons"] == 3
    assert layers.loc["1", "spikes_out"] == 0
    assert a.summary()["spiking_neurons"] == 2
    assert a.summary()["spikes"] == layers.loc["3", "spikes_out"]


def test_defect10_synopcounter_borders_and_pooling() -> None:
    """NeuromorphicReLU -> AvgPool -> padded conv: exact fan-out at borders through the pool."""
    conv = init_weights(nn.Conv2d(2, 3, 3, bias=False), seed=10)
    model = nn.Sequential(sl.NeuromorphicReLU(fanout=27), nn.AvgPool2d(2), conv).eval()
    x = spikes((B, 2, 8, 8), 14, p=0.5)
    pst = pool2d_connections(model[1], (2, 8, 8))
    cst = conv_connections(conv, pst.out_shape)
    with torch.no_grad():
        acts = model[0](x)
    want = expected_synops(acts, chain_fan_out([pst, cst]), 1, B)
    counter = _synop_counter(model.modules())
    with torch.no_grad():
        model(x)
    a = hwcheck.analyze(model, x)
    assert a.layers.loc["2", "synops"] == pytest.approx(want)
    assert want != pytest.approx(float(counter()))  # the hand-set uniform fanout is not exact here


# --------------------------------------------------------------------------- drop-in replacements


def test_compat_snnanalyzer_matches_sinabs() -> None:
    """hwcheck.SNNAnalyzer: sinabs' dict keys, and sinabs' values where sinabs is right."""
    if not hasattr(hwcheck, "SNNAnalyzer"):
        pytest.skip("hwcheck.SNNAnalyzer not written yet")
    model = squeeze_cnn("avg")
    x = spikes((B * T, 2, 16, 16), 15, max_value=1)
    ref = copy.deepcopy(model)
    sinabs.reset_states(ref)
    analyzer = _snn_analyzer(ref)
    analyzer.dt = 2.0
    with torch.no_grad():
        ref(x)
    sinabs.reset_states(model)
    with hwcheck.SNNAnalyzer(model, dt=2.0) as mine, torch.no_grad():
        model(x)
    want, got = analyzer.get_layer_statistics(), mine.get_layer_statistics()
    assert set(got) == {"spiking", "parameter"}
    assert set(got["parameter"]) == set(want["parameter"])
    assert set(got["spiking"]) == set(want["spiking"])
    for name, s in want["parameter"].items():
        g = got["parameter"][name]
        assert set(g) == set(s)
        for key in ("synops", "synops/s", "SynOps/s", "num_timesteps", "time_window"):
            assert float(g[key]) == pytest.approx(float(s[key]), rel=1e-6), (name, key)
    for name, s in want["spiking"].items():
        g = got["spiking"][name]
        assert set(g) == set(s)
        assert g["n_neurons"] == s["n_neurons"]
        assert float(g["firing_rate"]) == pytest.approx(float(s["firing_rate"]), rel=1e-6)
        torch.testing.assert_close(
            g["firing_rate_per_neuron"].double(),
            s["firing_rate_per_neuron"].detach().double(),
            rtol=1e-5,
            atol=1e-6,
        )
    wm, gm = analyzer.get_model_statistics(), mine.get_model_statistics()
    assert set(gm) == set(wm)
    assert float(gm["n_spiking_neurons"]) == float(wm["n_spiking_neurons"])
    # sinabs' model total leaves out the AvgPool scaling (item 1); hwcheck sums its layers
    assert float(gm["synops"]) == pytest.approx(
        sum(float(s["synops"]) for s in want["parameter"].values())
    )
    assert not [n for n, m in model.named_modules() if m._forward_hooks or m._forward_pre_hooks]


def test_compat_synopcounter_exact() -> None:
    """hwcheck.SynOpCounter with the whole model: exact fan-out through pooling and borders, and
    sinabs' value where sinabs is right (uniform fanout set by hand)."""
    if not hasattr(hwcheck, "SynOpCounter"):
        pytest.skip("hwcheck.SynOpCounter not written yet")
    conv = init_weights(nn.Conv2d(2, 3, 3, bias=False), seed=10)
    model = nn.Sequential(sl.NeuromorphicReLU(), nn.AvgPool2d(2), conv).eval()
    x = spikes((B, 2, 8, 8), 16, p=0.5)
    pst = pool2d_connections(model[1], (2, 8, 8))
    want = expected_synops(
        model[0](x), chain_fan_out([pst, conv_connections(conv, pst.out_shape)]), 1, B
    )
    counter = hwcheck.SynOpCounter(model.modules())
    model(x)
    assert float(counter()) == pytest.approx(want)

    lin = init_weights(
        nn.Sequential(nn.Linear(6, 4), sl.NeuromorphicReLU(fanout=3), nn.Linear(4, 3)), seed=11
    ).eval()
    xs = spikes((3, 6), 17, p=0.7)
    ref_model = copy.deepcopy(lin)
    ref = _synop_counter(ref_model.modules(), sum_activations=False)
    mine = hwcheck.SynOpCounter(lin.modules(), sum_activations=False)
    with torch.no_grad():
        ref_model(xs)
        lin(xs)
        want_lin = expected_synops(lin[1](lin[0](xs)), linear_connections(lin[2]).fan_out(), 1, 3)
    ((got,), (theirs,)) = mine(), ref()
    assert float(got) == pytest.approx(want_lin, rel=1e-6)
    assert float(got) == pytest.approx(float(theirs), rel=1e-6)


def test_two_synopcounters_on_one_model_agree() -> None:
    """One counter's tracing pass must not clear or feed the other's hooks."""
    model = nn.Sequential(
        nn.Conv2d(1, 4, 3), sl.NeuromorphicReLU(), nn.AvgPool2d(2), nn.Conv2d(4, 4, 3),
        sl.NeuromorphicReLU(), nn.Flatten(), nn.Linear(4 * 4 * 4, 3),
    )  # fmt: skip
    init_weights(model, seed=12)
    x = spikes((2, 1, 14, 14), 18, p=0.5) * 3
    alone = hwcheck.SynOpCounter(model.modules())
    with torch.no_grad():
        model(x)
    want = float(alone())
    alone.remove()
    first, second = hwcheck.SynOpCounter(model.modules()), hwcheck.SynOpCounter(model.modules())
    with torch.no_grad():
        model(x)
    assert float(first()) == float(second()) == want > 0
    first.remove()
    second.remove()
    assert not [n for n, m in model.named_modules() if m._forward_hooks or m._forward_pre_hooks]
