"""Energy and bandwidth estimates against figures computed by hand."""

import math

import pandas as pd
import pytest
import sinabs.layers as sl
import torch
from torch import nn

import hwcheck
from hwcheck.estimate import estimate_bandwidth, estimate_energy
from hwcheck.mappers.base import FitReport
from hwcheck.profiles import parse_profile

# Input: 4 time steps x 3 channels; 5 events (a multi-spike value 2 counts twice).
EVENTS = torch.tensor([[1.0, 0, 0], [0, 0, 0], [1, 1, 0], [0, 0, 2]])
DT = 1e-3  # 4 steps -> 4 ms per inference


def tiny_model():
    lin = nn.Linear(3, 2, bias=False)
    with torch.no_grad():
        lin.weight.fill_(1.0)
    return nn.Sequential(lin, sl.IAFSqueeze(batch_size=1))


def fig(value, unit, **extra):
    return {"value": value, "unit": unit, "source": "test figure", "kind": "model", **extra}


def profile(energy=None, bandwidth=None, synop_convention="synops", neuron_update="event"):
    data = {
        "name": "testchip",
        "family": "dense",
        "model": {"synop_convention": synop_convention, "neuron_update": neuron_update},
        "energy": energy or {},
        "bandwidth": bandwidth or {},
    }
    return parse_profile(data, "test.toml")


@pytest.fixture(scope="module")
def analysis():
    return hwcheck.analyze(tiny_model(), EVENTS, dt=DT, progress=False)


def test_counts_by_hand(analysis):
    s = analysis.summary()
    assert s["input_events"] == 5
    assert s["synops"] == 5 * 2  # each event reaches both outputs
    assert s["ops_dense"] == 6 * 4  # 6 connections, every step
    # IAF input per step: [1,1], [0,0], [2,2], [2,2]: 3 steps with input x 2 neurons
    assert s["neuron_updates_event"] == 6
    assert s["neuron_updates"] == 8
    assert analysis.duration_s == pytest.approx(4e-3)


def test_event_driven_energy_by_hand(analysis):
    p = profile(
        {
            "synop_pJ": fig(10.0, "pJ", low=5.0, high=20.0),
            "neuron_update_pJ": fig(2.0, "pJ"),
            "static_power_mW": fig(1.0, "mW"),
        }
    )
    e = estimate_energy(analysis, p)
    dyn = (10 * 10 + 6 * 2) * 1e-6  # pJ -> uJ
    static = 1e-3 * 4e-3 * 1e6  # 1 mW x 4 ms = 4 uJ
    assert e.totals["dynamic_uJ"] == pytest.approx(dyn)
    assert e.totals["dynamic_low_uJ"] == pytest.approx((10 * 5 + 6 * 2) * 1e-6)
    assert e.totals["dynamic_high_uJ"] == pytest.approx((10 * 20 + 6 * 2) * 1e-6)
    assert e.totals["static_uJ"] == pytest.approx(static)
    assert e.totals["total_uJ"] == pytest.approx(dyn + static)
    assert e.totals["power_mW"] == pytest.approx((dyn + static) / 4e-3 * 1e-3)
    assert e.layers["energy_uJ"].sum() == pytest.approx(dyn)
    assert not e.missing
    assert any("test figure" in a for a in e.assumptions)


def test_clock_driven_dense_energy_by_hand(analysis):
    p = profile(
        {"synop_pJ": fig(10.0, "pJ"), "neuron_update_pJ": fig(2.0, "pJ")},
        synop_convention="ops_dense",
        neuron_update="clock",
    )
    e = estimate_energy(analysis, p)
    assert e.totals["dynamic_uJ"] == pytest.approx((24 * 10 + 8 * 2) * 1e-6)
    assert math.isnan(e.totals["static_uJ"])  # no static figure: unknown, not zero
    assert e.totals["total_uJ"] == pytest.approx(e.totals["dynamic_uJ"])  # total = dynamic only
    assert any("static power of testchip: not published" in a for a in e.assumptions)


def test_input_event_and_timestep_terms(analysis):
    p = profile(
        {
            "synop_pJ": fig(10.0, "pJ"),
            "neuron_update_pJ": fig(2.0, "pJ"),
            "input_event_pJ": fig(1.0, "pJ"),
            "timestep_overhead_pJ": fig(3.0, "pJ"),
        }
    )
    e = estimate_energy(analysis, p)
    assert e.totals["dynamic_uJ"] == pytest.approx((100 + 12 + 5 * 1 + 4 * 3) * 1e-6)


def test_unknown_figures_stay_unknown(analysis):
    p = profile({"static_power_mW": fig(0.5, "mW")})
    e = estimate_energy(analysis, p)
    assert math.isnan(e.totals["dynamic_uJ"])
    assert math.isnan(e.totals["total_uJ"])
    assert e.totals["static_uJ"] == pytest.approx(0.5e-3 * 4e-3 * 1e6)
    assert any("synop_pJ" in m for m in e.missing)
    assert "unknown" in e.describe_unknown()
    assert e.layers["energy_uJ"].isna().all()


def test_neuron_update_none_needs_no_neuron_figure(analysis):
    p = profile({"synop_pJ": fig(26.0, "pJ")}, neuron_update="none")
    e = estimate_energy(analysis, p)
    assert e.totals["dynamic_uJ"] == pytest.approx(10 * 26 * 1e-6)


def test_override_replaces_a_figure(analysis):
    p = profile({"synop_pJ": fig(10.0, "pJ"), "neuron_update_pJ": fig(2.0, "pJ")})
    p2 = p.with_overrides({"energy.synop_pJ": 12})
    assert estimate_energy(analysis, p2).totals["dynamic_uJ"] == pytest.approx((10 * 12 + 12) * 1e-6)
    assert p2.energy["synop_pJ"].source.startswith("user override")
    with pytest.raises(hwcheck.ProfileError):
        p.with_overrides({"energy.synop_pJ": -1})
    with pytest.raises(hwcheck.ProfileError):
        p.with_overrides({"nosection.x": 1})


def test_bandwidth_by_hand_and_limits(analysis):
    p = profile(bandwidth={"input_events_per_s": fig(1000.0, "1/s"), "output_events_per_s": fig(1e6, "1/s")})
    bw = estimate_bandwidth(analysis, p)
    t = bw.table.set_index("scope")
    assert t.loc["chip_input", "events_per_s"] == pytest.approx(5 / 4e-3)
    assert t.loc["chip_input", "load_ratio"] == pytest.approx(1.25)
    assert "over limit" in t.loc["chip_input", "flag"]
    spikes = analysis.layers.loc["1", "spikes_out"]
    assert spikes == 10  # IAF, threshold 1, multi-spike: 1 + 2 + 2 per neuron
    assert t.loc["chip_output", "events_per_s"] == pytest.approx(spikes / 4e-3)
    assert t.loc["chip_output", "flag"] == "-"
    layer = bw.table[(bw.table.scope == "layer") & (bw.table.unit == "0")].iloc[0]
    assert layer["synops_per_s"] == pytest.approx(10 / 4e-3)
    assert layer["limit_name"] == "no published limit" and math.isnan(layer["limit_per_s"])
    assert len(bw.flags) == 1


def test_hot_core_flag_and_core_limit(analysis):
    layers = pd.DataFrame(
        {"members": ["0,1", "0,1", "0,1"], "core": ["0", "1", "2"], "n_cores": [1, 1, 1]},
        index=["a", "b", "c"],
    )
    # three units with identical members: equal loads -> no hot core
    fit = FitReport("testchip", "dense", layers, pd.DataFrame())
    p = profile(bandwidth={"synops_per_s_per_core": fig(1000.0, "1/s")})
    bw = estimate_bandwidth(analysis, p, fit)
    cores = bw.table[bw.table.scope == "core"]
    assert len(cores) == 3
    assert list(cores["load_ratio"]) == pytest.approx([2.5, 2.5, 2.5])
    assert not any("mean synops" in f for f in bw.flags)
    # b and c spread the same layer over 10 cores each: a carries 10x their load
    layers2 = pd.DataFrame({"members": ["0,1", "0,1", "0,1"], "core": ["0", "1-10", "11-20"], "n_cores": [1, 10, 10]}, index=["a", "b", "c"])
    bw2 = estimate_bandwidth(analysis, profile(), FitReport("testchip", "dense", layers2, pd.DataFrame()))
    assert [f for f in bw2.flags if "mean synops" in f] == ["core 0 (a) carries 10.0x the mean synops/s of the other cores"]


def test_calibration_round_trip(tmp_path, analysis):
    base = profile({"neuron_update_pJ": fig(2.0, "pJ"), "static_power_mW": fig(1.0, "mW")})
    measured_uJ = 4.0 + (10 * 7.5 + 6 * 2) * 1e-6  # as if E_synop were 7.5 pJ
    from hwcheck.check import calibrate

    toml_path = tmp_path / "mychip.toml"
    cal, written = calibrate(
        tiny_model(), EVENTS, base, dt=DT, measured_energy_uJ=measured_uJ, out_path=toml_path,
        description="bench supply, 10 runs",
    )
    assert cal.energy["synop_pJ"].value == pytest.approx(7.5)
    assert cal.energy["synop_pJ"].kind == "measured"
    reloaded = hwcheck.load_profile(toml_path)
    assert "bench supply" in reloaded.energy["synop_pJ"].source
    e = estimate_energy(analysis, reloaded)
    assert e.totals["total_uJ"] == pytest.approx(measured_uJ)
    # from average power instead of energy
    cal2, _ = calibrate(tiny_model(), EVENTS, base, dt=DT, measured_power_mW=measured_uJ / 4e-3 * 1e-3)
    assert cal2.energy["synop_pJ"].value == pytest.approx(7.5)
    with pytest.raises(ValueError, match="not above the known terms"):
        calibrate(tiny_model(), EVENTS, base, dt=DT, measured_energy_uJ=1.0)


def test_calibrated_profile_reproduces_the_measurement_and_is_not_unknown():
    import hwcheck
    from hwcheck.examples import dvs_gesture_cnn, synthetic_events

    model = dvs_gesture_cnn()
    x = synthetic_events(10, 1, 200, 1e-3)
    cal, _ = hwcheck.calibrate(model, x, "speck2f", measured_power_mW=3.8)
    assert cal.energy["neuron_update_pJ"].value == 0.0
    assert "included in energy.synop_pJ" in cal.energy["neuron_update_pJ"].source
    row = hwcheck.report(model, [cal], x).summary.iloc[0]
    assert row["energy_note"] == "-"
    assert row["energy_per_inference_uJ"] == pytest.approx(3.8e-3 * 10e-3 * 1e6)  # 3.8 mW x 10 ms
