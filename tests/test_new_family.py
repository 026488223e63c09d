"""A new chip family is one module plus a profile: a made-up chip, registered from a test."""

import pandas as pd
import pytest
import sinabs.layers as sl
import torch
from torch import nn

import hwcheck
from hwcheck.mappers.base import ERROR, FitReport, Violation
from hwcheck.profiles import FamilySpec, FigureSpec, register_family

PROFILE = """
name = "toychip"
family = "toy"
title = "A made-up chip: one population of neurons"

[model]
synop_convention = "synops"
neuron_update = "event"

[limits.max_neurons]
value = 100
unit = "neurons"
kind = "spec"
source = "made up for this test"

[energy.synop_pJ]
value = 5.0
unit = "pJ"
kind = "model"
source = "made up for this test"

[energy.neuron_update_pJ]
value = 1.0
unit = "pJ"
kind = "model"
source = "made up for this test"
"""


def map_toy(graph, profile, analysis=None):
    limit = profile.limit("max_neurons")
    spiking = graph.by_kind("spiking")
    used = sum(n.neurons for n in spiking)
    violations = []
    for n in spiking:
        if n.neurons > limit:
            violations.append(
                Violation(n.name, "neurons", n.neurons, limit, f"layer '{n.name}': {n.neurons} neurons > {limit}",
                          f"use <= {limit} neurons", ERROR)
            )
    layers = pd.DataFrame(
        {"members": [n.name for n in spiking], "core": ["0"] * len(spiking), "n_cores": [1] * len(spiking),
         "neurons": [n.neurons for n in spiking]},
        index=[n.name for n in spiking],
    )
    cores = pd.DataFrame({"neurons_capacity": [limit], "neurons_used": [used]}, index=["0"])
    summary = {"cores_used": 1, "cores_available": 1, "utilisation_pct": 100.0 * used / limit,
               "binding_constraint": f"neurons {used} of {limit}", "violations": len(violations)}
    return FitReport(profile.name, "toy", layers, cores, violations, summary)


def test_made_up_family_works_end_to_end(tmp_path):
    register_family(FamilySpec("toy", {"max_neurons": FigureSpec("int")}, map_toy))
    path = tmp_path / "toychip.toml"
    path.write_text(PROFILE)
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(4, 60, bias=False), sl.IAFSqueeze(batch_size=1),
                          nn.Linear(60, 50, bias=False), sl.IAFSqueeze(batch_size=1))
    events = (torch.rand(10, 4, generator=torch.Generator().manual_seed(1)) < 0.5).float()
    rep = hwcheck.report(model, [str(path)], events, name="toy")
    row = rep.summary.loc["toychip"]
    assert bool(row["fits"]) is True  # 60 and 50 each <= 100
    # counts by running the layers by hand: every event reaches all outputs of the next Linear
    import sinabs

    sinabs.reset_states(model)
    with torch.no_grad():
        cur1 = model[0](events)
        spikes1 = model[1](cur1)
        cur2 = model[2](spikes1)
    synops = float(events.sum()) * 60 + float(spikes1.sum()) * 50
    updates = float((cur1 != 0).sum() + (cur2 != 0).sum())
    expected = (synops * 5.0 + updates * 1.0) * 1e-6
    assert row["dynamic_energy_uJ"] == pytest.approx(expected)
    out = rep.save(tmp_path / "out", formats=("csv", "md"))
    assert (out / "summary.csv").exists()
    small = str(path).replace("toychip", "tiny")
    (tmp_path / "tiny.toml").write_text(PROFILE.replace("value = 100", "value = 55").replace('"toychip"', '"tiny"'))
    fit = hwcheck.check(model, small, input_shape=(4,))
    assert not fit.fits
    assert fit.violations.iloc[0]["layer"] == "1"
