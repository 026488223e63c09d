"""Xylo family (Audio 2, Audio 3, IMU): profiles, counts and one test per design rule.

Every figure a test checks is computed independently in the test (by hand, by a loop over the
weights, or by simulating the bit-shift decay), never read back from the mapper's own helpers.
"""

from __future__ import annotations

import math
from collections import OrderedDict

import numpy as np
import pytest
import sinabs.layers as sl
import torch
from sinabs.activation import MembraneReset
from torch import nn

import hwcheck
from hwcheck.layers import register_neuron
from hwcheck.mappers.base import ERROR, WARNING
from hwcheck.mappers.xylo import bitshift_decay, map_xylo, time_constants

PROFILES = ("xylo-audio2", "xylo-audio3", "xylo-imu")
# (input channels, hidden, output, synaptic states hidden, fan-out, input reach, readout reach)
FACTS = {
    "xylo-audio2": (16, 1000, 8, 2, 64, 1000, 1000),
    "xylo-audio3": (16, 992, 32, 2, 1024, 128, 128),
    "xylo-imu": (16, 496, 16, 1, 512, 128, 128),
}
# hidden layer sizes that fill each chip exactly while respecting the 128-neuron reach of A3/IMU
AT_LIMIT_HIDDEN = {
    "xylo-audio2": [936, 64],
    "xylo-audio3": [128, 736, 128],
    "xylo-imu": [128, 240, 128],
}
# rockpool power_cycles_model constants, written out here independently of the profiles
C_TGT, C_CH, C_SYN, C_HFIX, C_SRC, C_OUT, C_SPK, C_VAR, C_OFIX, MARGIN = (
    3.5, 1, 7, 3, 1, 8, 19, 3, 12, 0.2,
)  # fmt: skip


# --------------------------------------------------------------------------- helpers


def _fill(lin: nn.Linear, gen: torch.Generator, fanout: int | None = None) -> None:
    """Nonzero weights in +-[0.1, 1]; with ``fanout``, source j reaches rows (j + k) % out."""
    out_f, in_f = lin.weight.shape
    w = (torch.rand(out_f, in_f, generator=gen) * 0.9 + 0.1) * torch.where(
        torch.rand(out_f, in_f, generator=gen) < 0.5, -1.0, 1.0
    )
    if fanout is not None:
        mask = torch.zeros(out_f, in_f)
        for j in range(in_f):
            for k in range(min(fanout, out_f)):
                mask[(j + k) % out_f, j] = 1.0
        w = w * mask
    with torch.no_grad():
        lin.weight.copy_(w)


def mlp(
    n_in: int,
    hidden: list[int],
    n_out: int,
    *,
    fanout: int | None = None,
    recurrent: tuple[int, ...] = (),
    neuron=lambda: sl.IAF(),
    bias: bool = False,
    seed: int = 0,
) -> nn.Sequential:
    """fc_in -> lif1 -> fc2 -> lif2 ... -> fc_out -> lif_out, IAF neurons by default.

    ``recurrent`` lists hidden layer numbers (1-based) that are IAFRecurrent with a dense
    recurrent Linear.
    """
    gen = torch.Generator().manual_seed(seed)
    sizes = [n_in, *hidden, n_out]
    mods: OrderedDict[str, nn.Module] = OrderedDict()
    for i in range(len(sizes) - 1):
        last = i == len(sizes) - 2
        lin = nn.Linear(sizes[i], sizes[i + 1], bias=bias)
        _fill(lin, gen, fanout if i > 0 else None)
        mods["fc_in" if i == 0 else "fc_out" if last else f"fc{i + 1}"] = lin
        name = "lif_out" if last else f"lif{i + 1}"
        if not last and (i + 1) in recurrent:
            rec = nn.Linear(sizes[i + 1], sizes[i + 1], bias=False)
            _fill(rec, gen)
            mods[name] = sl.IAFRecurrent(rec_connect=rec)
        else:
            mods[name] = neuron()
    return nn.Sequential(mods)


def check(model: nn.Module, n_in: int, profile: str, analysis=None, dt: float | None = 1e-3):
    graph = hwcheck.describe(model, (n_in,))
    return map_xylo(graph, hwcheck.load_profile(profile), analysis, dt=dt)


def rule(report, name: str, severity: str | None = None):
    return [
        v
        for v in report.violation_list
        if v.rule == name and (severity is None or v.severity == severity)
    ]


def only(report, name: str, severity: str = ERROR, numeric_hint: bool = True):
    """The one violation of ``name``; its hint is concrete (has numbers) and it names its layer."""
    found = rule(report, name, severity)
    assert len(found) == 1, report
    v = found[0]
    assert v.hint and (not numeric_hint or any(ch.isdigit() for ch in v.hint)), v
    assert v.layer in v.message or v.layer == "xylo", v
    return v


def fanout_brute_force(model: nn.Sequential, hidden_name: str) -> list[int]:
    """Per neuron of ``hidden_name``: nonzero outgoing weights, counted one by one."""
    names = list(model._modules)
    layer = model._modules[hidden_name]
    nxt = model._modules[names[names.index(hidden_name) + 1]].weight.tolist()
    rec = layer.rec_connect.weight.tolist() if hasattr(layer, "rec_connect") else None
    counts = []
    for j in range(len(nxt[0])):
        c = sum(1 for row in nxt if row[j] != 0)
        if rec is not None:
            c += sum(1 for row in rec if row[j] != 0)
        counts.append(c)
    return counts


def cycles_by_hand(n_in, n_hid, n_out, n_ien, n_oen, fanout_mean, p_in=1.0, p_hid=1.0):
    return (
        n_in * (p_in * n_ien * C_TGT + C_CH)
        + n_hid * (fanout_mean * C_SYN * p_hid + C_HFIX)
        + n_oen * p_hid * (C_SRC + n_out * C_OUT)
        + n_hid * (C_SPK + C_VAR * p_hid)
        + n_out * C_OFIX
    )


# --------------------------------------------------------------------------- profiles


@pytest.mark.parametrize("name", PROFILES)
def test_profiles_carry_the_chip_facts_figures(name):
    p = hwcheck.load_profile(name)
    n_in, hid, out, syn, fan, reach_in, reach_out = FACTS[name]
    assert p.family == "xylo"
    assert p.limit("input_channels") == n_in
    assert p.limit("hidden_neurons") == hid
    assert p.limit("output_neurons") == out
    assert p.limit("synaptic_states_hidden") == syn
    assert p.limit("synaptic_states_output") == 1
    assert p.limit("max_fanout_hidden") == fan
    assert p.limit("input_projection_reach") == reach_in
    assert p.limit("readout_reach") == reach_out
    assert p.limit("weight_bits") == 8
    assert p.limit("max_input_events_per_step") == 15
    assert p.limit("max_spikes_per_step_hidden") == 31
    assert p.limit("max_spikes_per_step_output") == 1
    assert p.limit("clock_hz") == 50e6
    assert p.limit("output_neurons_warn") == (16 if name == "xylo-audio3" else None)
    assert p.limit("cycles_expansion_neurons") == (
        "all_hidden" if name == "xylo-audio2" else "connected"
    )
    for key, c in zip(
        (
            "cycles_input_per_target",
            "cycles_input_per_channel",
            "cycles_hidden_per_synapse",
            "cycles_hidden_fixed",
            "cycles_readout_per_source",
            "cycles_readout_per_output",
            "cycles_hidden_spike_fixed",
            "cycles_hidden_spike_var",
            "cycles_output_fixed",
            "cycles_margin",
        ),
        (C_TGT, C_CH, C_SYN, C_HFIX, C_SRC, C_OUT, C_SPK, C_VAR, C_OFIX, MARGIN),
        strict=True,
    ):
        assert p.limit(key) == c, key
        assert p.limits[key].kind in ("model", "derived") and "RP-CYC" in p.limits[key].source
    # per-op energy is unknown for Xylo: no energy figures, only measured context
    assert not p.energy
    assert p.power and all(f.kind == "measured" and f.source for f in p.power.values())
    for _, fig in p.figures():
        assert fig.source.strip()


def test_audio2_measured_kws_figures():
    p = hwcheck.load_profile("xylo-audio2")
    assert p.power["kws_dynamic_power_uW"].value == 291
    assert p.power["kws_energy_per_inference_uJ"].value == 6.6
    assert "BOS24" in p.power["kws_energy_per_inference_uJ"].source
    r = check(mlp(4, [8], 2), 4, "xylo-audio2")
    assert any("291" in n and "not published" in n for n in r.notes)


# --------------------------------------------------------------------------- exactly at the limits


@pytest.mark.parametrize("name", PROFILES)
def test_model_exactly_at_the_limits_fits(name):
    n_in, hid, out, _, fan, reach_in, reach_out = FACTS[name]
    hidden = AT_LIMIT_HIDDEN[name]
    assert sum(hidden) == hid
    model = mlp(n_in, hidden, out, fanout=fan if name == "xylo-audio2" else None)
    r = check(model, n_in, name)
    assert r.fits, r
    assert not r.errors
    lay = r.layers
    assert list(lay.index) == ["input", "hidden", "output"]
    assert lay.loc["input", "neurons"] == n_in
    assert lay.loc["hidden", "neurons"] == hid
    assert lay.loc["output", "neurons"] == out
    assert lay.loc["input", "reach"] == hidden[0] <= reach_in
    assert lay.loc["output", "reach"] == hidden[-1] <= reach_out
    expect_fan = max(max(fanout_brute_force(model, f"lif{k + 1}")) for k in range(len(hidden)))
    assert lay.loc["hidden", "max_fanout"] == expect_fan <= fan
    if name == "xylo-audio2":
        assert expect_fan == fan  # the fan-out limit is hit exactly too
    assert (lay["core"] == "").all() and (lay["n_cores"] == 1).all()
    assert lay.loc["output", "members"] == "fc_out,lif_out"
    assert r.summary["cores_used"] == 1 and r.summary["cores_available"] == 1
    assert r.summary["utilisation_pct"] == pytest.approx(100.0)
    assert r.summary["violations"] == len(r.violation_list)
    assert r.cores.loc["xylo", "capacity"] == hid and r.cores.loc["xylo", "used"] == hid
    # A3: 32 outputs are on the chip but above the DRC's 16 output channels -> warning only
    warn = rule(r, "output_neurons", WARNING)
    assert len(warn) == (1 if name == "xylo-audio3" else 0)


# --------------------------------------------------------------------------- one over


@pytest.mark.parametrize("name", PROFILES)
def test_one_input_channel_over(name):
    n_in = FACTS[name][0] + 1
    r = check(mlp(n_in, [64], 4), n_in, name)
    v = only(r, "input_channels")
    assert (v.layer, v.needed, v.limit) == ("fc_in", 17, 16)
    assert "fc_in" in v.message and "16" in v.hint


@pytest.mark.parametrize("name", PROFILES)
def test_one_hidden_neuron_over_names_the_overflowing_layer(name):
    hidden = list(AT_LIMIT_HIDDEN[name])
    hidden[1] += 1  # the second hidden layer pushes the shared population over
    r = check(mlp(16, hidden, 4, fanout=64 if name == "xylo-audio2" else None), 16, name)
    v = only(r, "hidden_neurons")
    # the population overflows at the first layer (data-flow order) where the running sum > limit
    k = next(k for k in range(len(hidden)) if sum(hidden[: k + 1]) > FACTS[name][1])
    assert v.layer == f"lif{k + 1}"
    assert (v.needed, v.limit) == (sum(hidden), FACTS[name][1])
    assert f"from {hidden[k]} to {hidden[k] - 1}" in v.hint
    assert not r.fits
    assert r.summary["binding_constraint"].startswith(f"hidden neurons {sum(hidden)} / ")


@pytest.mark.parametrize("name", PROFILES)
def test_one_output_neuron_over(name):
    out = FACTS[name][2] + 1
    r = check(mlp(16, [100], out), 16, name)
    v = only(r, "output_neurons")
    assert (v.layer, v.needed, v.limit) == ("lif_out", out, out - 1)


def test_audio3_warns_above_16_output_channels():
    r = check(mlp(16, [100], 17), 16, "xylo-audio3")
    v = only(r, "output_neurons", WARNING)
    assert (v.needed, v.limit) == (17, 16)
    assert r.fits
    assert not rule(check(mlp(16, [100], 16), 16, "xylo-audio3"), "output_neurons")


def test_one_fanout_over_names_the_layer():
    at = mlp(16, [935, 65], 8, fanout=64)
    assert not rule(check(at, 16, "xylo-audio2"), "fanout")
    over = mlp(16, [935, 65], 8, fanout=65)
    r = check(over, 16, "xylo-audio2")
    v = only(r, "fanout")
    assert v.layer == "lif1" and v.needed == max(fanout_brute_force(over, "lif1")) == 65
    assert v.limit == 64
    assert "fc2" in v.hint and "64" in v.hint
    assert r.layers.loc["hidden", "max_fanout"] == 65


def test_fanout_counts_recurrent_and_readout_weights():
    # lif1 is recurrent (40 x 40) and feeds the readout (8): fan-out 48 per neuron
    model = mlp(16, [24, 40], 8, recurrent=(2,))
    r = check(model, 16, "xylo-audio2")
    assert r.layers.loc["hidden", "max_fanout"] == max(fanout_brute_force(model, "lif2")) == 48
    # 60 recurrent + 8 readout = 68 > 64
    model = mlp(16, [60], 8, recurrent=(1,))
    r = check(model, 16, "xylo-audio2")
    v = only(r, "fanout")
    assert (v.layer, v.needed, v.limit) == ("lif1", 68, 64)
    assert "lif1.rec_connect" in v.message and "fc_out" in v.message
    # zeroed weights do not count
    with torch.no_grad():
        model.lif1.rec_connect.weight[:5, :] = 0.0
    assert not rule(check(model, 16, "xylo-audio2"), "fanout")


def test_fanout_over_on_imu_counts_the_recurrent_population():
    model = mlp(16, [128, 385, 128], 4, recurrent=(2,))
    r = check(model, 16, "xylo-imu")
    v = only(r, "fanout")
    assert (v.layer, v.needed, v.limit) == ("lif2", 385 + 128, 512)


@pytest.mark.parametrize("name", ["xylo-audio3", "xylo-imu"])
def test_input_projection_reaches_only_128_hidden_neurons(name):
    r = check(mlp(16, [129, 64], 4), 16, name)
    v = only(r, "input_reach")
    assert (v.layer, v.needed, v.limit) == ("fc_in", 129, 128)
    assert "lif1" in v.message and "128" in v.hint
    ok = mlp(16, [129, 64], 4)
    with torch.no_grad():
        ok.fc_in.weight[7, :] = 0.0  # a neuron without input weights needs no input projection
    assert not rule(check(ok, 16, name), "input_reach")
    assert not rule(check(mlp(16, [128, 64], 4), 16, name), "input_reach")


def test_audio2_input_projection_reaches_all_hidden_neurons():
    r = check(mlp(16, [500, 60], 4, fanout=60), 16, "xylo-audio2")
    assert not rule(r, "input_reach") and r.fits


@pytest.mark.parametrize("name", ["xylo-audio3", "xylo-imu"])
def test_readout_reads_only_128_hidden_neurons(name):
    r = check(mlp(16, [100, 129], 4), 16, name)
    v = only(r, "readout_reach")
    assert (v.layer, v.needed, v.limit) == ("fc_out", 129, 128)
    assert "lif2" in v.message
    ok = mlp(16, [100, 129], 4)
    with torch.no_grad():
        ok.fc_out.weight[:, 3] = 0.0
    assert not rule(check(ok, 16, name), "readout_reach")


def test_synaptic_states_two_fit_audio_but_not_imu():
    class TwoSyn(nn.Module):
        """A neuron with two synaptic time constants (stand-in)."""

        def forward(self, x):
            return (x > 1).float()

    register_neuron(TwoSyn, "TwoSyn", synaptic_states=2, attrs=lambda m: {"tau_mem": 16.0})
    model = nn.Sequential(
        OrderedDict(
            fc_in=nn.Linear(16, 32, bias=False),
            syn2=TwoSyn(),
            fc_out=nn.Linear(32, 4, bias=False),
            lif_out=sl.IAF(),
        )
    )
    for name in ("xylo-audio2", "xylo-audio3"):
        assert not rule(check(model, 16, name), "synaptic_states")
    v = only(check(model, 16, "xylo-imu"), "synaptic_states")
    assert (v.layer, v.needed, v.limit) == ("syn2", 2, 1)
    # the output neurons have one synaptic state on every Xylo
    model_out = nn.Sequential(
        OrderedDict(
            fc_in=nn.Linear(16, 32, bias=False),
            lif1=sl.IAF(),
            fc_out=nn.Linear(32, 4, bias=False),
            syn2=TwoSyn(),
        )
    )
    v = only(check(model_out, 16, "xylo-audio2"), "synaptic_states")
    assert (v.layer, v.needed, v.limit) == ("syn2", 2, 1)


def test_snntorch_style_registered_neuron_maps():
    class Leaky(nn.Module):
        """Stand-in for snntorch.Leaky (snnTorch is not installed here)."""

        def __init__(self, beta: float):
            super().__init__()
            self.beta = beta

        def forward(self, x):
            return (x > 1).float()

    register_neuron(Leaky, "Leaky", attrs=lambda m: {"tau_mem": -1.0 / math.log(m.beta)})
    beta = 1 - 2.0**-4  # exactly representable by dash 4
    model = nn.Sequential(
        OrderedDict(
            fc_in=nn.Linear(16, 32, bias=False),
            leaky1=Leaky(beta),
            fc_out=nn.Linear(32, 4, bias=False),
            leaky_out=Leaky(beta),
        )
    )
    r = check(model, 16, "xylo-imu")
    assert r.fits, r
    assert r.layers.loc["hidden", "neurons"] == 32
    assert r.layers.loc["hidden", "dash_mem"] == 4
    assert r.layers.loc["hidden", "tau_mem_err_pct"] == pytest.approx(0.0, abs=1e-9)


# --------------------------------------------------------------------------- weights


def _int8_rms_rel(ws: list[np.ndarray], scale: float) -> tuple[float, float]:
    errs, vals = [], []
    for w in ws:
        for x in w.ravel().tolist():
            q = max(
                -128,
                min(127, math.floor(x * scale + 0.5) if x >= 0 else -math.floor(-x * scale + 0.5)),
            )
            errs.append(x - q / scale)
            vals.append(x)
    rms = math.sqrt(sum(e * e for e in errs) / len(errs)) / math.sqrt(
        sum(v * v for v in vals) / len(vals)
    )
    return rms, max(abs(e) for e in errs)


def test_weight_quantisation_error_reported_and_warned():
    model = mlp(4, [6], 3)
    with torch.no_grad():
        model.fc_in.weight.fill_(1.0)  # the largest weight sets the global scale 127 / 1
        model.fc_out.weight.copy_(torch.linspace(-0.004, 0.004, 18).reshape(3, 6))
    r = check(model, 4, "xylo-audio2")
    scale = 127.0
    rms_in, _ = _int8_rms_rel([model.fc_in.weight.detach().numpy().astype(float)], scale)
    rms_out, max_out = _int8_rms_rel([model.fc_out.weight.detach().numpy().astype(float)], scale)
    assert rms_in == 0.0
    assert r.layers.loc["input", "weight_quant_rmse_rel"] == pytest.approx(rms_in, abs=1e-12)
    assert r.layers.loc["output", "weight_quant_rmse_rel"] == pytest.approx(rms_out, rel=1e-6)
    assert r.layers.loc["output", "weight_quant_max_abs_err"] == pytest.approx(max_out, rel=1e-6)
    assert rms_out > 0.05
    v = only(r, "weight_quantisation", WARNING)
    assert v.layer == "fc_out" and v.needed == pytest.approx(rms_out, abs=1e-4) and v.limit == 0.05
    assert "quantisation-aware" in v.hint
    assert r.fits


def test_weights_on_the_int8_grid_have_no_error():
    model = mlp(4, [6], 3)
    with torch.no_grad():
        for lin in (model.fc_in, model.fc_out):  # k / 64: exact in float32
            lin.weight.copy_(torch.randint(-127, 128, lin.weight.shape).float() / 64)
        model.fc_in.weight[0, 0] = 127 / 64  # global scale 127 / max|w| = 64
    r = check(model, 4, "xylo-audio2")
    assert r.layers["weight_quant_rmse_rel"].max() == 0.0
    assert not rule(r, "weight_quantisation")


def test_threshold_out_of_int16_range_for_tiny_weights():
    model = mlp(4, [6], 3)
    with torch.no_grad():
        for lin in (model.fc_in, model.fc_out):
            lin.weight.fill_(1e-4)
    r = check(model, 4, "xylo-audio2")
    found = rule(r, "threshold_range")
    assert {v.layer for v in found} == {"lif1", "lif_out"}
    v = found[0]
    assert v.needed == round(1.0 * 127 / 1e-4) and v.limit == 32767 and v.hint


def test_biases_are_not_transferred():
    model = mlp(4, [6], 3, bias=True)
    r = check(model, 4, "xylo-audio2")
    found = {v.layer: v for v in rule(r, "bias_dropped", WARNING)}
    assert set(found) == {"fc_in", "fc_out"}
    v = found["fc_in"]
    assert (v.needed, v.limit) == ("6 nonzero biases", "no weight biases")
    assert "bias=False" in v.hint and "fc_in" in v.message
    assert r.fits
    with torch.no_grad():
        model.fc_in.bias.zero_()
    assert {v.layer for v in rule(check(model, 4, "xylo-audio2"), "bias_dropped")} == {"fc_out"}


# --------------------------------------------------------------------------- time constants


def _simulated_tau(dash: int, steps: int = 200) -> float:
    """Decay a state by v -= v * 2**-dash and read the time constant off the curve."""
    v = 1.0
    for _ in range(steps):
        v -= v * 2.0**-dash
    return -steps / math.log(v)


@pytest.mark.parametrize("tau,dash", [(16.0, 4), (20.0, 4), (12.0, 4), (3.0, 2), (100.0, 7)])
def test_bitshift_decay_matches_a_simulated_decay(tau, dash):
    d, tau_eff, err = bitshift_decay(tau)
    assert d == dash == round(math.log2(tau))
    assert tau_eff == pytest.approx(_simulated_tau(dash), rel=1e-9)
    assert err == pytest.approx((tau_eff - tau) / tau * 100)


def test_bitshift_decay_edges():
    assert bitshift_decay(math.inf) == (None, math.inf, 0.0)
    assert bitshift_decay(None) == (None, None, None)
    assert bitshift_decay(1.0)[:2] == (0, 0.0)  # dash 0 clears the state every step


def test_time_constant_error_is_reported_and_warned():
    model = mlp(4, [6], 3, neuron=lambda: sl.LIF(tau_mem=20.0, tau_syn=3.0))
    dt = 0.5e-3
    r = check(model, 4, "xylo-audio2", dt=dt)
    eff_mem, eff_syn = _simulated_tau(4), _simulated_tau(2)
    h = r.layers.loc["hidden"]
    assert h["tau_mem_s"] == pytest.approx(20 * dt)
    assert h["dash_mem"] == 4 and h["tau_mem_eff_s"] == pytest.approx(eff_mem * dt, rel=1e-9)
    assert h["tau_mem_err_pct"] == pytest.approx((eff_mem - 20) / 20 * 100, rel=1e-9)
    assert h["dash_syn"] == 2 and h["tau_syn_err_pct"] == pytest.approx(
        (eff_syn - 3) / 3 * 100, rel=1e-9
    )
    warned = {(v.layer, v.message.split()[0]) for v in rule(r, "time_constant", WARNING)}
    assert warned == {
        ("lif1", "tau_mem"),
        ("lif1", "tau_syn"),
        ("lif_out", "tau_mem"),
        ("lif_out", "tau_syn"),
    }
    v = next(v for v in rule(r, "time_constant") if v.layer == "lif1" and "tau_mem" in v.message)
    assert v.needed == pytest.approx(eff_mem * dt, abs=1e-8) and v.limit == pytest.approx(20 * dt)
    assert "15.5" in v.hint and "31.5" in v.hint  # the representable neighbours of 20 steps
    tc = time_constants(hwcheck.describe(model, (4,)), dt)
    assert tc.loc["lif1", "tau_mem_eff_s"] == pytest.approx(eff_mem * dt, rel=1e-9)
    empty = time_constants(hwcheck.describe(nn.Sequential(nn.Linear(3, 4)), (3,)))
    assert len(empty) == 0 and list(empty.columns) == list(tc.columns)
    # tau 16 steps: dash 4 represents it within 10 % -> no warning
    r16 = check(mlp(4, [6], 3, neuron=lambda: sl.LIF(tau_mem=16.0)), 4, "xylo-audio2")
    assert not rule(r16, "time_constant")


def test_zero_reset_is_flagged():
    model = mlp(4, [6], 3, neuron=lambda: sl.IAF(reset_fn=MembraneReset()))
    r = check(model, 4, "xylo-imu")
    found = rule(r, "reset_mode", WARNING)
    assert {v.layer for v in found} == {"lif1", "lif_out"}
    assert found[0].needed == "zero" and found[0].limit == "subtract"
    assert "subtract" in found[0].hint and found[0].layer in found[0].message


# --------------------------------------------------------------------------- activity rules


def _spiky_model() -> nn.Sequential:
    model = mlp(16, [8], 2)
    with torch.no_grad():
        model.fc_in.weight.zero_()
        model.fc_in.weight[0, 0] = 32.5  # one input event -> 32 spikes at lif1[0] (MultiSpike)
        model.fc_out.weight.zero_()
        model.fc_out.weight[0, 0] = 0.1  # 32 spikes x 0.1 -> 3 spikes at lif_out[0]
    return model


def test_measured_spikes_per_step_over_limits():
    model = _spiky_model()
    x = torch.zeros(1, 4, 16)
    x[0, 1, 0] = 1.0
    a = hwcheck.analyze(model, x, dt=1e-3)
    r = check(model, 16, "xylo-audio2", analysis=a, dt=None)
    found = {v.layer: v for v in rule(r, "spikes_per_step", ERROR)}
    assert (found["lif1"].needed, found["lif1"].limit) == (32, 31)
    assert (found["lif_out"].needed, found["lif_out"].limit) == (3, 1)
    assert "SingleSpike" in found["lif_out"].hint
    assert r.layers.loc["hidden", "max_per_step"] == 32
    # 31 spikes fit (a fresh model: no neuron state left from the run above)
    model = _spiky_model()
    with torch.no_grad():
        model.fc_in.weight[0, 0] = 31.5
        model.fc_out.weight[0, 0] = 1 / 31.5
    a = hwcheck.analyze(model, x, dt=1e-3)
    r = check(model, 16, "xylo-audio2", analysis=a)
    assert not rule(r, "spikes_per_step")


def test_measured_input_events_per_step():
    model = mlp(16, [8], 2)
    x = torch.zeros(2, 3, 16)
    x[1, 2, 5] = 16.0
    r = check(model, 16, "xylo-imu", analysis=hwcheck.analyze(model, x, dt=1e-3))
    v = only(r, "input_events_per_step")
    assert (v.layer, v.needed, v.limit) == ("fc_in", 16, 15)
    x[1, 2, 5] = 15.0
    assert not rule(
        check(model, 16, "xylo-imu", analysis=hwcheck.analyze(model, x)), "input_events_per_step"
    )


def test_activity_rules_need_activity():
    r = check(_spiky_model(), 16, "xylo-audio2")
    assert not rule(r, "spikes_per_step") and not rule(r, "input_events_per_step")


# --------------------------------------------------------------------------- real time


def test_realtime_worst_case_matches_the_cycle_model():
    model = mlp(16, [40, 30], 4, recurrent=(2,))
    r = check(model, 16, "xylo-audio2", dt=1e-3)
    fan_mean = (40 * 30 + 30 * 30) / 70  # nonzero hidden->hidden + recurrent weights per neuron
    cycles = cycles_by_hand(16, 70, 4, 70, 70, fan_mean)
    s = r.summary
    assert s["cycles_per_step"] == pytest.approx(cycles)
    assert s["needed_clock_hz"] == pytest.approx(cycles * 1.2 / 1e-3)
    assert s["realtime_margin"] == pytest.approx(50e6 / (cycles * 1.2 / 1e-3))
    assert s["latency_s"] == pytest.approx(cycles / 50e6)
    assert s["activity_basis"].startswith("worst case")
    assert not rule(r, "realtime")  # about 29 MHz needed < 50 MHz


def test_realtime_counts_connected_expansion_neurons_on_imu():
    model = mlp(16, [100], 4)
    with torch.no_grad():
        model.fc_in.weight[:10, :] = 0.0  # 90 neurons receive input
        model.fc_out.weight[:, :5] = 0.0  # 95 neurons are read out
    imu = check(model, 16, "xylo-imu").summary["cycles_per_step"]
    a2 = check(model, 16, "xylo-audio2").summary["cycles_per_step"]
    assert imu == pytest.approx(cycles_by_hand(16, 100, 4, 90, 95, 0.0))
    assert a2 == pytest.approx(cycles_by_hand(16, 100, 4, 100, 100, 0.0))


def test_realtime_worst_case_over_budget_is_a_warning():
    model = mlp(16, [500, 60], 8, fanout=60)
    r = check(model, 16, "xylo-audio2", dt=1e-3)
    v = only(r, "realtime", WARNING)
    assert v.needed == round(r.summary["needed_clock_hz"]) and v.limit == 50e6
    assert v.needed > 50e6
    assert "worst case" in v.message and "dt >=" in v.hint
    assert r.fits
    # the same model at dt = 20 ms fits the budget
    assert not rule(check(model, 16, "xylo-audio2", dt=20e-3), "realtime")


def test_realtime_with_measured_activity_over_budget_is_an_error():
    model = mlp(16, [200], 8)
    with torch.no_grad():
        model.fc_in.weight.fill_(1e-3)  # 5 steps x 16 inputs x 1e-3 < threshold: no hidden spikes
    gen = torch.Generator().manual_seed(1)
    x = (torch.rand(3, 5, 16, generator=gen) < 0.25).float()
    dt = 1e-5
    a = hwcheck.analyze(model, x, dt=dt)
    r = check(model, 16, "xylo-audio2", analysis=a, dt=None)
    p_in = float(x.sum()) / (3 * 5 * 16)
    cycles = cycles_by_hand(16, 200, 8, 200, 200, 0.0, p_in=p_in, p_hid=0.0)
    assert r.summary["dt_s"] == dt
    assert r.summary["p_in"] == pytest.approx(p_in) and r.summary["p_hid"] == 0.0
    assert r.summary["cycles_per_step"] == pytest.approx(cycles)
    v = only(r, "realtime", ERROR)
    assert v.needed == round(cycles * 1.2 / dt) and v.limit == 50e6
    assert "measured" in v.message
    assert not r.fits
    assert r.summary["binding_constraint"].startswith("clock")


# --------------------------------------------------------------------------- structure, dt


def test_structure_violations():
    norm = nn.Sequential(
        OrderedDict(
            a=nn.Linear(4, 8), lif=sl.IAF(), ln=nn.LayerNorm(8), c=nn.Linear(8, 2), out=sl.IAF()
        )
    )
    r = check(norm, 4, "xylo-audio2")
    v = only(r, "unsupported_layer", numeric_hint=False)
    assert v.layer == "ln" and "fold" in v.hint and not r.fits
    # an ANN: the ReLU is reported, not the Linear -> Linear it leaves behind once skipped
    ann = nn.Sequential(OrderedDict(a=nn.Linear(4, 8), relu=nn.ReLU(), c=nn.Linear(8, 2)))
    r = check(ann, 4, "xylo-audio2")
    assert only(r, "unsupported_layer", numeric_hint=False).layer == "relu"
    assert not rule(r, "consecutive_weights") and rule(r, "output_not_neurons")

    two_lin = nn.Sequential(
        OrderedDict(
            a=nn.Linear(4, 8), b=nn.Linear(8, 8), lif=sl.IAF(), c=nn.Linear(8, 2), out=sl.IAF()
        )
    )
    v = only(check(two_lin, 4, "xylo-audio2"), "consecutive_weights", numeric_hint=False)
    assert v.layer == "b"

    ends_linear = nn.Sequential(OrderedDict(a=nn.Linear(4, 8), lif=sl.IAF(), c=nn.Linear(8, 2)))
    r = check(ends_linear, 4, "xylo-audio2")
    assert only(r, "output_not_neurons", numeric_hint=False).layer == "c"
    assert rule(r, "too_few_neuron_layers")

    rec_out = nn.Sequential(
        OrderedDict(
            a=nn.Linear(4, 8),
            lif=sl.IAF(),
            c=nn.Linear(8, 2),
            out=sl.IAFRecurrent(rec_connect=nn.Linear(2, 2, bias=False)),
        )
    )
    v = only(check(rec_out, 4, "xylo-audio2"), "output_recurrent", numeric_hint=False)
    assert v.layer == "out"


def test_residual_model_is_not_a_chain():
    class Residual(nn.Module):
        def __init__(self):
            super().__init__()
            self.fc_in, self.lif1 = nn.Linear(4, 8, bias=False), sl.IAF()
            self.fc2, self.lif2 = nn.Linear(8, 8, bias=False), sl.IAF()
            self.fc_out, self.lif_out = nn.Linear(8, 2, bias=False), sl.IAF()

        def forward(self, x):
            h = self.lif1(self.fc_in(x))
            h = self.lif2(self.fc2(h)) + h
            return self.lif_out(self.fc_out(h))

    r = check(Residual(), 4, "xylo-audio2")
    v = only(r, "not_a_chain")
    assert v.layer == "fc_out"


def test_dt_comes_from_argument_then_analysis_then_default():
    model = mlp(4, [6], 3, neuron=lambda: sl.LIF(tau_mem=16.0))
    graph = hwcheck.describe(model, (4,))
    prof = hwcheck.load_profile("xylo-imu")
    r = map_xylo(graph, prof)
    assert r.summary["dt_s"] == 1e-3 and any("assumed 1 ms" in n for n in r.notes)
    a = hwcheck.analyze(model, torch.zeros(1, 3, 4), dt=2e-3)
    assert map_xylo(graph, prof, a).summary["dt_s"] == 2e-3
    assert map_xylo(graph, prof, a, dt=5e-4).summary["dt_s"] == 5e-4
    assert map_xylo(graph, prof, a, dt=5e-4).layers.loc["hidden", "tau_mem_s"] == pytest.approx(
        8e-3
    )


def test_registered_family_and_mapper():
    from hwcheck.profiles import FAMILIES

    assert FAMILIES["xylo"].mapper is map_xylo
    assert {"xylo-audio2", "xylo-audio3", "xylo-imu"} <= set(hwcheck.list_profiles())
