"""Dense baselines (cpu, gpu, arm): profiles with KerasSpiking's figures and the memory report."""

from __future__ import annotations

import pytest
import sinabs.layers as sl
import torch
from torch import nn

from hwcheck.graph import describe
from hwcheck.mappers.base import ERROR
from hwcheck.mappers.dense import map_dense
from hwcheck.profiles import load_profile

KERAS_SPIKING_J = {"cpu": 8.6e-9, "gpu": 0.3e-9, "arm": 0.9e-9}


@pytest.mark.parametrize("name", ["cpu", "gpu", "arm"])
def test_dense_profiles_carry_keras_spiking_figures(name):
    p = load_profile(name)
    assert p.family == "dense"
    assert (p.synop_convention, p.neuron_update) == ("ops_dense", "clock")
    for key in ("synop_pJ", "neuron_update_pJ"):
        fig = p.energy[key]
        assert fig.value == pytest.approx(KERAS_SPIKING_J[name] * 1e12)
        assert fig.unit == "pJ" and fig.kind == "derived"
        assert "keras-spiking" in fig.source and "DEGNAN15" in fig.source
    assert p.energy["static_power_mW"].value == 0.0 and p.energy["static_power_mW"].kind == "model"
    assert p.limits == {}


def _model() -> nn.Sequential:
    torch.manual_seed(0)
    return nn.Sequential(
        nn.Conv2d(2, 4, 3),
        sl.IAFSqueeze(batch_size=1),
        nn.Flatten(),
        nn.Linear(4 * 4 * 4, 10, bias=False),
        sl.LIFSqueeze(tau_mem=10.0, tau_syn=5.0, batch_size=1),
    )


def test_dense_report_counts_float32_weights_and_state():
    model = _model()
    report = map_dense(describe(model, (2, 6, 6)), load_profile("cpu"))
    layers = report.layers
    conv_params = 4 * 2 * 3 * 3 + 4  # weights + bias, by hand
    fc_params = 10 * 64
    assert layers.loc["0", "params"] == conv_params == sum(p.numel() for p in model[0].parameters())
    assert layers.loc["0", "weights_bytes"] == 4 * conv_params
    assert layers.loc["3", "weights_bytes"] == 4 * fc_params
    # IAF: membrane only; LIF with a synaptic time constant: membrane + synaptic current
    assert layers.loc["1", "state_bytes"] == 4 * 64 and layers.loc["4", "state_bytes"] == 4 * 2 * 10
    assert (layers["memory_bytes"] == layers["weights_bytes"] + layers["state_bytes"]).all()
    assert (layers["core"] == "").all() and (layers["n_cores"] == 0).all()
    assert layers["members"].tolist() == list(layers.index)
    s = report.summary
    assert (s["cores_used"], s["cores_available"]) == (0, 0)
    assert s["binding_constraint"] == "none (general-purpose device)"
    assert s["violations"] == 0 and report.fits
    # every parameter (neuron thresholds and time constants included) plus the 84 state values
    assert s["memory_bytes"] == 4 * (sum(p.numel() for p in model.parameters()) + 64 + 20)
    assert s["params"] == sum(p.numel() for p in model.parameters())


def test_rule_memory_when_a_profile_gives_memory_bytes():
    graph = describe(_model(), (2, 6, 6))
    total = map_dense(graph, load_profile("arm")).summary["memory_bytes"]
    tight = load_profile("arm", overrides={"limits.memory_bytes": 1000})
    report = map_dense(graph, tight)
    v = next(v for v in report.violation_list if v.rule == "memory")
    assert (v.needed, v.limit, v.severity) == (total, 1000, ERROR)
    assert "int8" in v.hint and f"{total - 1000:,}" in v.hint
    roomy = map_dense(graph, load_profile("arm", overrides={"limits.memory_bytes": 4 * total}))
    assert roomy.fits and roomy.summary["utilisation_pct"] == pytest.approx(25.0)


def test_dense_baseline_also_gives_the_ann_run_once():
    import sinabs.layers as sl
    import torch
    from torch import nn

    import hwcheck

    net = nn.Sequential(nn.Linear(4, 3, bias=False), sl.IAF(), nn.Linear(3, 2, bias=False), sl.IAF())
    x = torch.ones(1, 10, 4)
    rep = hwcheck.report(net, ["cpu", "loihi"], x)
    cpu = hwcheck.load_profile("cpu").energy["synop_pJ"].value
    row = rep.summary.loc["cpu"]
    assert row["ann_energy_uJ"] == pytest.approx((12 + 6) * cpu * 1e-6)  # every connection once
    assert row["dynamic_energy_uJ"] >= 10 * row["ann_energy_uJ"]  # the SNN run densely for 10 steps
    assert rep.summary["ann_energy_uJ"].isna()["loihi"]
