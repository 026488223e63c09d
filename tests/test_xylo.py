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
# (input channels, hidden, output, synaptic states hidden, fan-out, input reach, readout reach,
#  recurrent weight memory entries)
FACTS = {
    "xylo-audio2": (16, 1000, 8, 2, 64, 1000, 1000, 32000),
    "xylo-audio3": (16, 992, 32, 2, 1024, 128, 128, 31744),
    "xylo-imu": (16, 496, 16, 1, 512, 128, 128, 31744),
}
# hidden layer sizes and fan-outs (per Linear after the first) that fill each chip exactly: every
# hidden neuron, the 128-neuron reach of A3/IMU and the whole recurrent weight memory
#   A2: 500 x 64 = 32000 (and 64 = the per-neuron fan-out limit)
#   A3: 128 x 64 + 736 x 32 = 31744;  IMU: 128 x 8 + 240 x 128 = 31744
AT_LIMIT = {
    "xylo-audio2": ([500, 500], [64, None]),
    "xylo-audio3": ([128, 736, 128], [64, 32, None]),
    "xylo-imu": ([128, 240, 128], [8, 128, None]),
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
    fanout: int | list[int | None] | None = None,
    recurrent: tuple[int, ...] = (),
    neuron=lambda: sl.IAF(),
    bias: bool = False,
    seed: int = 0,
) -> nn.Sequential:
    """fc_in -> lif1 -> fc2 -> lif2 ... -> fc_out -> lif_out, IAF neurons by default.

    ``recurrent`` lists hidden layer numbers (1-based) that are IAFRecurrent with a dense
    recurrent Linear. ``fanout``: one for every Linear after the first, or a list of them.
    """
    gen = torch.Generator().manual_seed(seed)
    sizes = [n_in, *hidden, n_out]
    mods: OrderedDict[str, nn.Module] = OrderedDict()
    for i in range(len(sizes) - 1):
        last = i == len(sizes) - 2
        lin = nn.Linear(sizes[i], sizes[i + 1], bias=bias)
        fan = fanout[i - 1] if isinstance(fanout, list) and i > 0 else fanout
        _fill(lin, gen, fan if i > 0 else None)
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
    """Per neuron of ``hidden_name``: nonzero weights into hidden neurons (the next hidden Linear
    and its own recurrent weights, not the readout ``fc_out``), counted one by one."""
    names = list(model._modules)
    layer = model._modules[hidden_name]
    nxt_name = names[names.index(hidden_name) + 1]
    n_src = model._modules[nxt_name].weight.shape[1]
    mats = [] if nxt_name == "fc_out" else [model._modules[nxt_name].weight.tolist()]
    if hasattr(layer, "rec_connect"):
        mats.append(layer.rec_connect.weight.tolist())
    return [sum(1 for m in mats for row in m if row[j] != 0) for j in range(n_src)]


def recurrent_memory_brute_force(model: nn.Sequential) -> int:
    """Nonzero weights between hidden neurons: every Linear but the first and the readout, plus
    the recurrent weights."""
    total = 0
    for name, mod in model.named_children():
        mats = []
        if isinstance(mod, nn.Linear) and name not in ("fc_in", "fc_out"):
            mats.append(mod.weight)
        if hasattr(mod, "rec_connect"):
            mats.append(mod.rec_connect.weight)
        total += sum(1 for m in mats for x in m.flatten().tolist() if x != 0)
    return total


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
    n_in, hid, out, syn, fan, reach_in, reach_out, rec_total = FACTS[name]
    assert p.family == "xylo"
    assert p.limit("recurrent_weights_total") == rec_total
    assert p.limits["recurrent_weights_total"].kind == "derived"
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
    n_in, hid, out, _, fan, reach_in, reach_out, rec_total = FACTS[name]
    hidden, fanouts = AT_LIMIT[name]
    assert sum(hidden) == hid
    model = mlp(n_in, hidden, out, fanout=fanouts)
    assert recurrent_memory_brute_force(model) == rec_total
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
    assert lay.loc["hidden", "recurrent_entries"] == rec_total == r.summary["recurrent_weights"]
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
    hidden = list(AT_LIMIT[name][0])
    hidden[1] += 1  # the second hidden layer pushes the shared population over
    fanouts = [8] * (len(hidden) - 1) + [None]  # well inside the recurrent weight memory
    r = check(mlp(16, hidden, 4, fanout=fanouts), 16, name)
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
    at = mlp(16, [400, 65], 8, fanout=64)
    assert not rule(check(at, 16, "xylo-audio2"), "fanout")
    assert max(fanout_brute_force(at, "lif1")) == 64
    below = mlp(16, [400, 65], 8, fanout=63)
    assert not rule(check(below, 16, "xylo-audio2"), "fanout")
    over = mlp(16, [400, 65], 8, fanout=65)
    r = check(over, 16, "xylo-audio2")
    v = only(r, "fanout")
    assert v.layer == "lif1" and v.needed == max(fanout_brute_force(over, "lif1")) == 65
    assert v.limit == 64
    assert "fc2" in v.hint and "64" in v.hint
    assert r.layers.loc["hidden", "max_fanout"] == 65
    assert not rule(r, "recurrent_memory")  # 400 x 65 = 26000 <= 32000


def test_fanout_counts_recurrent_weights_not_the_readout():
    # lif2 is recurrent (40 x 40) and feeds the readout (8): fan-out 40 (the readout weights sit
    # in their own dense memory, OWTRAM, on every Xylo)
    model = mlp(16, [24, 40], 8, recurrent=(2,))
    r = check(model, 16, "xylo-audio2")
    assert r.layers.loc["hidden", "max_fanout"] == max(fanout_brute_force(model, "lif2")) == 40
    # 64 recurrent + 8 readout: at the limit, fits; 65 recurrent: one over
    for n, over in ((63, False), (64, False), (65, True)):
        model = mlp(16, [n], 8, recurrent=(1,))
        r = check(model, 16, "xylo-audio2")
        assert max(fanout_brute_force(model, "lif1")) == n
        if not over:
            assert not rule(r, "fanout"), n
            continue
        v = only(r, "fanout")
        assert (v.layer, v.needed, v.limit) == ("lif1", 65, 64)
        assert "lif1.rec_connect" in v.message and "fc_out" not in v.message
        # zeroed weights do not count
        with torch.no_grad():
            model.lif1.rec_connect.weight[:1, :] = 0.0
        assert not rule(check(model, 16, "xylo-audio2"), "fanout")


def test_fanout_over_on_imu_counts_the_recurrent_population():
    model = mlp(16, [128, 385, 128], 4, recurrent=(2,))
    r = check(model, 16, "xylo-imu")
    v = only(r, "fanout")
    assert (v.layer, v.needed, v.limit) == ("lif2", 385 + 128, 512)
    # a network this dense overflows the whole recurrent weight memory as well
    m = only(r, "recurrent_memory")
    assert m.needed == recurrent_memory_brute_force(model) == 128 * 385 + 385 * 385 + 385 * 128


def _input_positions_kept(w_in: torch.Tensor, reach: int) -> bool:
    """Rockpool's rule, written out: the first hidden layer is hidden neurons 0..N-1 and
    config_from_specification keeps input weights [:, :reach] only; do we lose a weight?"""
    rows = w_in.tolist()
    return all(x == 0 for k in range(reach, len(rows)) for x in rows[k])


def _readout_positions_kept(w_out: torch.Tensor, reach: int) -> bool:
    """The readout keeps the weights of the last ``reach`` neurons of the last hidden layer."""
    rows = w_out.tolist()
    m = len(rows[0])
    return all(row[j] == 0 for row in rows for j in range(m - reach))


@pytest.mark.parametrize("name", ["xylo-audio3", "xylo-imu"])
def test_input_projection_reaches_the_first_128_hidden_neurons_by_position(name):
    # one below, at and one over the 128-neuron reach, dense input weights
    for n in (127, 128, 129):
        model = mlp(16, [n, 64], 4, fanout=[8, None])
        fits = _input_positions_kept(model.fc_in.weight, 128)
        assert fits == (n <= 128)
        r = check(model, 16, name)
        assert bool(rule(r, "input_reach")) == (not fits), n
        assert r.layers.loc["input", "reach"] == n
    v = only(check(mlp(16, [129, 64], 4, fanout=[8, None]), 16, name), "input_reach")
    assert (v.layer, v.needed, v.limit) == ("fc_in", 129, 128)
    assert "lif1" in v.message and "128" in v.hint and "1 neuron(s)" in v.message
    # by position, not by count: a neuron without input weights at position 7 does not help
    model = mlp(16, [129, 64], 4, fanout=[8, None])
    with torch.no_grad():
        model.fc_in.weight[7, :] = 0.0
    assert not _input_positions_kept(model.fc_in.weight, 128)
    assert only(check(model, 16, name), "input_reach").needed == 129
    # ... but one at position 128 (the last) does
    with torch.no_grad():
        model.fc_in.weight[128, :] = 0.0
    assert _input_positions_kept(model.fc_in.weight, 128)
    assert not rule(check(model, 16, name), "input_reach")
    # only 100 connected neurons, but at positions 100..199: hwcheck used to say "fits"
    model = mlp(16, [200, 64], 4, fanout=[8, None])
    with torch.no_grad():
        model.fc_in.weight[:100, :] = 0.0
    v = only(check(model, 16, name), "input_reach")
    assert (v.needed, v.limit) == (200, 128) and "72 neuron(s)" in v.message
    assert "reorder" in v.hint


def test_audio2_input_projection_reaches_all_hidden_neurons():
    r = check(mlp(16, [500, 60], 4, fanout=60), 16, "xylo-audio2")
    assert not rule(r, "input_reach") and r.fits


@pytest.mark.parametrize("name", ["xylo-audio3", "xylo-imu"])
def test_readout_reads_the_last_128_hidden_neurons_by_position(name):
    for n in (127, 128, 129):
        model = mlp(16, [100, n], 4, fanout=[8, None])
        fits = _readout_positions_kept(model.fc_out.weight, 128)
        assert fits == (n <= 128)
        r = check(model, 16, name)
        assert bool(rule(r, "readout_reach")) == (not fits), n
        assert r.layers.loc["output", "reach"] == n
    model = mlp(16, [100, 129], 4, fanout=[8, None])
    v = only(check(model, 16, name), "readout_reach")
    assert (v.layer, v.needed, v.limit) == ("fc_out", 129, 128)
    assert "lif2" in v.message
    with torch.no_grad():
        model.fc_out.weight[:, 3] = 0.0  # position 3 is not the one dropped: still over
    assert only(check(model, 16, name), "readout_reach").needed == 129
    with torch.no_grad():
        model.fc_out.weight[:, 0] = 0.0  # the first neuron is the one the readout cannot read
    assert _readout_positions_kept(model.fc_out.weight, 128)
    assert not rule(check(model, 16, name), "readout_reach")


def test_single_hidden_layer_uses_first_128_for_input_and_last_128_for_readout():
    # one hidden layer of 200 on Audio 3: it is both the input and the output expansion layer
    model = mlp(16, [200], 4)
    with torch.no_grad():
        model.fc_in.weight[128:, :] = 0.0  # input only to 0..127
        model.fc_out.weight[:, :72] = 0.0  # readout only from 72..199
    r = check(model, 16, "xylo-audio3")
    assert not rule(r, "input_reach") and not rule(r, "readout_reach")
    with torch.no_grad():
        model.fc_out.weight[0, 71] = 0.5
    assert only(check(model, 16, "xylo-audio3"), "readout_reach").needed == 129


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


# --------------------------------------------------------------------------- recurrent memory


def test_dense_audio3_network_overflows_the_recurrent_weight_memory():
    # fits every per-neuron rule (fan-out 736 <= 1024, reach 128, 992 neurons) but needs ~6x
    # the 31744 entries of the recurrent weight memory
    model = mlp(16, [128, 736, 128], 8)
    r = check(model, 16, "xylo-audio3")
    need = recurrent_memory_brute_force(model)
    assert need == 2 * 128 * 736
    v = only(r, "recurrent_memory")
    assert (v.needed, v.limit) == (need, 31744) and v.layer in ("lif1", "lif2")
    assert "no neuron exceeds" in v.message and f"{need - 31744:,}" in v.hint
    assert not rule(r, "fanout") and not r.fits
    assert r.summary["binding_constraint"].startswith("recurrent weight memory")


@pytest.mark.parametrize("name", PROFILES)
def test_recurrent_weight_memory_below_at_and_one_over(name):
    hidden, fanouts = AT_LIMIT[name]
    limit = FACTS[name][7]
    model = mlp(16, hidden, 4, fanout=fanouts)
    assert recurrent_memory_brute_force(model) == limit
    assert not rule(check(model, 16, name), "recurrent_memory")
    fc2 = model.fc2
    with torch.no_grad():
        zero = (fc2.weight == 0).nonzero()[0]
        fc2.weight[zero[0], zero[1]] = 0.5  # one more entry
    assert recurrent_memory_brute_force(model) == limit + 1
    v = only(check(model, 16, name), "recurrent_memory")
    assert (v.needed, v.limit) == (limit + 1, limit)
    with torch.no_grad():
        fc2.weight[zero[0], zero[1]] = 0.0
        nz = fc2.weight.nonzero()[0]
        fc2.weight[nz[0], nz[1]] = 0.0  # one fewer
    assert recurrent_memory_brute_force(model) == limit - 1
    assert not rule(check(model, 16, name), "recurrent_memory")


def test_recurrent_weight_memory_counts_rec_connect_and_not_the_readout():
    model = mlp(16, [100, 100], 8, fanout=[50, None], recurrent=(2,))
    r = check(model, 16, "xylo-audio2")
    assert (
        r.summary["recurrent_weights"]
        == recurrent_memory_brute_force(model)
        == 100 * 50 + 100 * 100
    )


# --------------------------------------------------------------------------- two synapses (2N -> N)


class TwoSynapse(nn.Module):
    """A two-synapse neuron fed as rockpool builds it: 2N inputs -> N neurons (stand-in)."""

    def forward(self, x):
        return (x[..., 0::2] + x[..., 1::2] > 1).float()


register_neuron(TwoSynapse, "TwoSynapse", synaptic_states=2, attrs=lambda m: {"tau_mem": 16.0})


def two_synapse_net(n1: int, n2: int, n_out: int = 4, seed: int = 0) -> nn.Sequential:
    gen = torch.Generator().manual_seed(seed)
    mods = OrderedDict(
        fc_in=nn.Linear(16, 2 * n1, bias=False),
        syn1=TwoSynapse(),
        fc2=nn.Linear(n1, 2 * n2, bias=False),
        syn2=TwoSynapse(),
        fc_out=nn.Linear(n2, n_out, bias=False),
        lif_out=sl.IAF(),
    )
    for m in mods.values():
        if isinstance(m, nn.Linear):
            _fill(m, gen)
    return nn.Sequential(mods)


def test_two_synapse_layer_counts_neurons_not_synapses():
    # rockpool reshapes the weights into (.., N, 2): rows 2k and 2k + 1 are neuron k
    for n1, over in ((127, False), (128, False), (129, True)):
        model = two_synapse_net(n1, 40)
        r = check(model, 16, "xylo-audio3")
        assert r.layers.loc["hidden", "neurons"] == n1 + 40
        assert r.layers.loc["input", "reach"] == n1  # not 2 x n1
        assert bool(rule(r, "input_reach")) == over, n1
    model = two_synapse_net(100, 40)
    r = check(model, 16, "xylo-audio2")
    # fan-out: a source drives 40 neurons on both synapses -> 40 entries (Isyn + Isyn2 share one)
    w2 = model.fc2.weight.tolist()
    per_src = [
        sum(1 for k in range(40) if w2[2 * k][j] != 0 or w2[2 * k + 1][j] != 0) for j in range(100)
    ]
    assert r.layers.loc["hidden", "max_fanout"] == max(per_src) == 40
    assert r.summary["recurrent_weights"] == sum(per_src) == 4000
    assert not rule(r, "synaptic_states")
    imu = {v.layer for v in rule(check(model, 16, "xylo-imu"), "synaptic_states")}
    assert imu == {"syn1", "syn2"}


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


def _vendor_quant(w: list[list[float]], scale: float, limited: float = 1.0) -> list[float]:
    """rockpool global_quantize for one weight: round(w x scale), then (threshold past int16)
    round(q x limited); returned dequantised. Python's round() is half-to-even like np.round."""
    return [
        round(round(x * scale) * limited) / (scale * limited)
        if limited != 1.0
        else round(x * scale) / scale
        for row in w
        for x in row
    ]


def _rms_rel(w: list[list[float]], deq: list[float]) -> float:
    flat = [x for row in w for x in row]
    err = math.sqrt(sum((a - b) ** 2 for a, b in zip(flat, deq, strict=True)) / len(flat))
    return err / math.sqrt(sum(a * a for a in flat) / len(flat))


def test_readout_has_its_own_quantisation_scale():
    # input weights up to 1, readout weights up to 0.004: one global scale (127 / 1) would leave
    # the readout a handful of levels; rockpool's global_quantize scales it on its own
    model = mlp(4, [6], 3)
    with torch.no_grad():
        model.fc_in.weight.fill_(1.0)
        model.fc_out.weight.copy_(torch.linspace(-0.004, 0.004, 18).reshape(3, 6))
    r = check(model, 4, "xylo-audio2")
    w_out = model.fc_out.weight.double().tolist()
    w_max = max(abs(x) for row in w_out for x in row)  # 0.004 in float32
    own = _rms_rel(w_out, _vendor_quant(w_out, 127 / w_max))
    one_global = _rms_rel(w_out, _vendor_quant(w_out, 127.0))
    assert one_global > 0.3 > 0.01 > own  # what hwcheck used to report vs the vendor's scale
    assert r.layers.loc["input", "weight_quant_rmse_rel"] == pytest.approx(0.0, abs=1e-12)
    assert r.layers.loc["output", "weight_quant_rmse_rel"] == pytest.approx(own, rel=1e-6)
    assert r.summary["weight_scale"] == pytest.approx(127.0)
    assert r.summary["weight_scale_readout"] == pytest.approx(127 / w_max, rel=1e-9)
    assert not rule(r, "weight_quantisation")
    assert any("global_quantize" in n for n in r.notes)


def test_weight_quantisation_error_within_the_recurrent_group_is_warned():
    # input and hidden-to-hidden weights share one scale: a tiny fc2 next to fc_in = 1 loses
    model = mlp(4, [6, 6], 3)
    with torch.no_grad():
        model.fc_in.weight.fill_(1.0)
        model.fc2.weight.copy_(torch.linspace(-0.004, 0.004, 36).reshape(6, 6))
    r = check(model, 4, "xylo-audio2")
    w2 = model.fc2.weight.double().tolist()
    rms2 = _rms_rel(w2, _vendor_quant(w2, 127.0))
    assert rms2 > 0.05
    v = only(r, "weight_quantisation", WARNING)
    assert v.layer == "fc2" and v.needed == pytest.approx(rms2, abs=1e-4) and v.limit == 0.05
    assert "quantisation-aware" in v.hint and "input + recurrent" in v.message
    assert r.fits


def test_weights_on_the_int8_grid_have_no_error():
    model = mlp(4, [6], 3)
    with torch.no_grad():
        for lin in (model.fc_in, model.fc_out):  # k / 64: exact in float32
            lin.weight.copy_(torch.randint(-127, 128, lin.weight.shape).float() / 64)
            lin.weight[0, 0] = 127 / 64  # scale 127 / max|w| = 64 in each group
    r = check(model, 4, "xylo-audio2")
    assert r.layers["weight_quant_rmse_rel"].max() == 0.0
    assert not rule(r, "weight_quantisation")


@pytest.mark.parametrize(
    "ratio,expect",
    [(258.0, None), (259.0, WARNING), (300.0, WARNING), (65000.0, WARNING), (1e5, ERROR)],
)
def test_threshold_past_int16_is_rescaled_with_a_precision_loss(ratio, expect):
    """threshold / max|w| <= 32767 / 127 = 258 fits; above, the vendor scales threshold and
    weights by 32767 / (threshold x 127): a warning with the loss, an error once every weight
    of a matrix quantises to zero (127 x limited < 0.5: ratio > 65534)."""
    # each IAF gets its own threshold tensor (sinabs shares its default one between instances)
    model = mlp(4, [6], 3, neuron=lambda: sl.IAF(spike_threshold=torch.tensor(1.0)))
    with torch.no_grad():
        model.fc_in.weight[0, 0] = 1.0  # max |w| = 1 in the input + recurrent group
        model.lif1.spike_threshold.fill_(ratio)
    r = check(model, 4, "xylo-audio2")
    found = rule(r, "threshold_range")
    if expect is None:
        assert not found
        return
    v = only(r, "threshold_range", expect)
    q = ratio * 127
    assert v.layer == "lif1" and v.needed == round(q) and v.limit == 32767
    w_in = model.fc_in.weight.double().tolist()
    limited = 32767 / q
    deq = _vendor_quant(w_in, 127.0, limited)
    rms = _rms_rel(w_in, deq)
    assert r.layers.loc["input", "weight_quant_rmse_rel"] == pytest.approx(rms, rel=1e-6)
    if expect == WARNING:
        assert f"{rms:.1%}" in v.message and "precision loss" in v.message
        assert any(x != 0 for x in deq)
        assert r.fits
    else:
        assert (
            all(x == 0 for x in deq) and "quantises to zero" in v.message and "fc_in" in v.message
        )
        assert not r.fits
    assert "258" in v.hint


def test_tiny_weights_rescale_both_groups():
    model = mlp(4, [6], 3)
    with torch.no_grad():
        for lin in (model.fc_in, model.fc_out):
            lin.weight.fill_(1e-4)
    r = check(model, 4, "xylo-audio2")
    found = rule(r, "threshold_range", WARNING)  # 127 x 32767 / 1.27e6 = 3.3 levels are left
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


@pytest.mark.parametrize("tau,refused", [(0.5, True), (1.0, True), (1.5, False), (2.0, False)])
def test_time_constant_at_or_below_dt_is_an_error(tau, refused):
    """rockpool's Xylo graph modules raise for tau <= dt (dash = log2(tau / dt) needs tau > dt)."""
    dt = 1e-3
    for which in ("mem", "syn"):
        kw = {"tau_mem": 16.0, "tau_syn": 8.0} | {f"tau_{which}": tau}
        model = mlp(4, [6], 3, neuron=lambda kw=kw: sl.LIF(**kw))
        r = check(model, 4, "xylo-audio2", dt=dt)
        found = rule(r, "time_constant_le_dt", ERROR)
        if not refused:
            assert not found and r.fits
            continue
        assert {v.layer for v in found} == {"lif1", "lif_out"} and not r.fits
        v = found[0]
        assert v.needed == pytest.approx(tau * dt) and v.limit == pytest.approx(dt)
        assert f"tau_{which}" in v.message and "2 ms" in v.hint
        # refused, not warned a second time for its bit-shift error
        assert not [
            w
            for w in rule(r, "time_constant")
            if w.layer == v.layer and f"tau_{which}" in w.message
        ]


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
