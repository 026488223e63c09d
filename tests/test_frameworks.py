"""Models of snnTorch, SpikingJelly and Norse, counted over time.

Every expected figure is counted independently here: by the framework's own manual time loop
(spikes and inputs summed by hand, fan-outs of dense Linear layers are their out_features), or by
NeuroBench's SynapticOperations where its convention matches.
"""

from __future__ import annotations

import pytest
import torch
from torch import nn

import hwcheck

snn = pytest.importorskip("snntorch")

T, B, F, H = 15, 4, 20, 30


def _scaled(model: nn.Module, k: float = 3.0, seed: int = 0) -> nn.Module:
    torch.manual_seed(seed)
    for m in model.modules():
        if isinstance(m, nn.Linear):
            nn.init.uniform_(m.weight, -k / m.in_features**0.5, k / m.in_features**0.5)
            if m.bias is not None:
                nn.init.zeros_(m.bias)
    return model


def _events(*shape: int, p: float = 0.3, seed: int = 1) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return (torch.rand(*shape, generator=g) < p).float()


class TutorialIndexed(nn.Module):
    """snnTorch tutorial 5 style: the time loop inside forward() walks x[step] of (T, B, F)."""

    def __init__(self, steps: int = T) -> None:
        super().__init__()
        self.steps = steps
        self.fc1, self.lif1 = nn.Linear(F, H), snn.Leaky(beta=0.9)
        self.fc2, self.lif2 = nn.Linear(H, H), snn.Leaky(beta=0.9)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        mem1, mem2 = self.lif1.reset_mem(), self.lif2.reset_mem()
        out = []
        for step in range(self.steps):
            spk1, mem1 = self.lif1(self.fc1(x[step]), mem1)
            spk2, mem2 = self.lif2(self.fc2(spk1), mem2)
            out.append(spk2)
        return torch.stack(out)


class TutorialStatic(TutorialIndexed):
    """The same loop fed the same static (B, F) input at every step."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        mem1, mem2 = self.lif1.reset_mem(), self.lif2.reset_mem()
        out = []
        for _ in range(self.steps):
            spk1, mem1 = self.lif1(self.fc1(x), mem1)
            spk2, mem2 = self.lif2(self.fc2(spk1), mem2)
            out.append(spk2)
        return torch.stack(out)


def _manual_tutorial(model: TutorialIndexed, x: torch.Tensor, indexed: bool) -> dict[str, float]:
    """Per-sample counts by the model's own loop, taken by hand."""
    with torch.no_grad():
        mem1, mem2 = torch.zeros(x.shape[-2], H), torch.zeros(x.shape[-2], H)
        ev1 = sp1 = sp2 = 0.0
        for step in range(model.steps):
            xi = x[step] if indexed else x
            ev1 += float(xi.sum())
            spk1, mem1 = model.lif1(model.fc1(xi), mem1)
            spk2, mem2 = model.lif2(model.fc2(spk1), mem2)
            sp1 += float(spk1.sum())
            sp2 += float(spk2.sum())
    b = x.shape[-2]
    return {"events1": ev1 / b, "spikes1": sp1 / b, "spikes2": sp2 / b, "synops": (ev1 * H + sp1 * H) / b}


def test_snntorch_time_loop_over_x_step_is_folded_and_counted_per_sample() -> None:
    model = _scaled(TutorialIndexed())
    x = _events(T, B, F)
    a = hwcheck.analyze(model, x)
    assert list(a.graph.nodes) == ["fc1", "lif1", "fc2", "lif2"]
    assert a.graph.layout == "TB" and a.graph.loop_steps == T
    assert a.n_samples == B and a.n_steps == T
    want = _manual_tutorial(model, x, indexed=True)
    assert want["spikes1"] > 0
    assert a.layers.loc["fc1", "events_in"] == pytest.approx(want["events1"])
    assert a.layers.loc["lif1", "spikes_out"] == pytest.approx(want["spikes1"])
    assert a.layers.loc["lif2", "spikes_out"] == pytest.approx(want["spikes2"])
    assert a.summary()["synops"] == pytest.approx(want["synops"])
    s = a.summary()
    assert s["time_steps"] == T and s["samples"] == B
    assert s["synops_per_s"] == pytest.approx(want["synops"] / (T * 1e-3))


def test_snntorch_time_loop_over_static_input_is_folded() -> None:
    model = _scaled(TutorialStatic())
    x = _events(B, F)
    a = hwcheck.analyze(model, x)
    assert list(a.graph.nodes) == ["fc1", "lif1", "fc2", "lif2"]
    assert a.graph.layout == "B" and a.n_samples == B and a.n_steps == T
    want = _manual_tutorial(model, x, indexed=False)
    assert a.layers.loc["lif1", "spikes_out"] == pytest.approx(want["spikes1"])
    assert a.summary()["synops"] == pytest.approx(want["synops"])


def test_time_loop_static_check_counts_each_neuron_once() -> None:
    model = TutorialIndexed()
    g = hwcheck.describe(model, (F,))
    assert g.layout == "TB" and g.loop_steps == T and list(g.nodes) == ["fc1", "lif1", "fc2", "lif2"]
    fit = hwcheck.check(model, chip="loihi", input_shape=(F,))
    assert int(fit.layers["neurons"].sum()) == 2 * H  # not 15x
    assert any("time loop of 15 steps" in n for n in fit.notes)
    xylo = hwcheck.check(model, chip="xylo-audio2", input_shape=(F,))
    assert not [v for v in xylo.violation_list if v.rule == "not_a_chain"]


def test_time_loop_steps_must_match_the_data() -> None:
    with pytest.raises(ValueError, match="25 time steps.*loops 15 times"):
        hwcheck.analyze(TutorialIndexed(), _events(25, 2, F))


def test_layer_applied_twice_with_neurons_is_not_a_time_loop() -> None:
    class Twice(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.fc, self.lif = nn.Linear(F, F), snn.Leaky(beta=0.5, init_hidden=True)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return self.lif(self.fc(self.lif(self.fc(x))))

    g = hwcheck.describe(Twice(), (F,))
    assert g.loop_steps is None and list(g.nodes) == ["fc", "lif", "fc:2", "lif:2"]


def _stepped_net() -> nn.Sequential:
    return _scaled(
        nn.Sequential(
            nn.Linear(F, H),
            snn.Leaky(beta=0.9, init_hidden=True),
            nn.Linear(H, 10),
            snn.Leaky(beta=0.9, init_hidden=True, output=True),
        )
    )


def test_snntorch_stepped_model_is_driven_over_time_with_state() -> None:
    from snntorch import utils as su

    net = _stepped_net()
    x = _events(B, T, F)  # batch-first, as a DataLoader gives
    a = hwcheck.analyze(net, x)
    assert a.n_samples == B and a.n_steps == T
    with torch.no_grad():
        su.reset(net)
        ev = sp = 0.0
        for t in range(T):
            ev += float(x[:, t].sum())
            s = net[1](net[0](x[:, t]))
            sp += float(s.sum())
            net[3](net[2](s))
    assert sp > 0
    assert a.layers.loc["1", "spikes_out"] == pytest.approx(sp / B)
    assert a.summary()["synops"] == pytest.approx((ev * H + sp * 10) / B)


def test_snntorch_stepped_synops_match_neurobench() -> None:
    pytest.importorskip("neurobench")
    from neurobench.benchmarks import Benchmark
    from neurobench.metrics.workload import SynapticOperations
    from neurobench.models import SNNTorchModel
    from torch.utils.data import DataLoader, TensorDataset

    net = _stepped_net()
    loader = DataLoader(TensorDataset(_events(B, T, F), torch.zeros(B)), batch_size=2)
    nb = Benchmark(SNNTorchModel(net), loader, [], [], [[], [SynapticOperations]]).run(verbose=False)
    s = hwcheck.analyze(net, loader, progress=False).summary()
    ops = nb["SynapticOperations"]
    assert ops["Effective_ACs"] > 0
    assert s["synops_effective"] == pytest.approx(ops["Effective_ACs"])
    assert s["ops_dense"] == pytest.approx(ops["Dense"])
    assert s["macs"] == ops["Effective_MACs"] == 0


def test_snntorch_graded_spikes_are_not_taken_for_whole_counts() -> None:
    """Spikes scaled per neuron (values 0, 0.5 and 1) feed the next layer as multiplies, and
    their events are the scaled magnitudes; factor 1 stays 0/1 spikes (accumulates)."""
    from snntorch import utils as su

    x = _events(B, T, F)
    for factor, binary in ((torch.tensor(1.0), True), (torch.where(torch.arange(H) % 2 == 0, 1.0, 0.5), False)):
        net = _stepped_net()
        net[1] = snn.Leaky(beta=0.9, init_hidden=True, graded_spikes_factor=factor)
        a = hwcheck.analyze(net, x)
        with torch.no_grad():
            su.reset(net)
            sp = 0.0
            values = set()
            for t in range(T):
                s = net[1](net[0](x[:, t]))
                sp += float(s.abs().sum())
                values |= set(s.unique().tolist())
        assert (values == {0.0, 0.5, 1.0}) != binary
        row = a.layers.loc["2"]
        assert a.layers.loc["1", "spikes_out"] == pytest.approx(sp / B)
        assert row["events_in"] == pytest.approx(sp / B)
        assert (row["acs"] > 0, row["macs"] > 0) == (binary, not binary)


def test_two_identical_analyses_agree_and_model_state_is_restored() -> None:
    net = _stepped_net()
    x = _events(B, T, F)
    with torch.no_grad():
        net(x[:, 0])  # the user's own state, for another batch size
    before = net[1].mem.clone()
    a1 = hwcheck.analyze(net, x)
    a2 = hwcheck.analyze(net, x)
    assert a1.layers.equals(a2.layers)
    assert torch.equal(net[1].mem, before)


def test_snntorch_rleaky_recurrent_weights_are_synapses_with_synops() -> None:
    from snntorch import utils as su

    torch.manual_seed(0)
    net = _scaled(nn.Sequential(nn.Linear(F, 32), snn.RLeaky(beta=0.9, linear_features=32, init_hidden=True)))
    g = hwcheck.describe(net, (F,))
    assert g["1.recurrent"].synapses == 32 * 32
    assert ("1", "1.recurrent") in g.recurrent_edges and ("1.recurrent", "1") in g.recurrent_edges
    x = _events(B, T, F)
    a = hwcheck.analyze(net, x)
    with torch.no_grad():
        su.reset(net)
        prev = torch.zeros(B, 32)
        delivered = 0.0
        for t in range(T):
            delivered += float(prev.sum())  # spikes of step t-1 reach the recurrent weights at t
            prev = net(x[:, t])
    assert delivered > 0
    assert a.layers.loc["1.recurrent", "events_in"] == pytest.approx(delivered / B)
    assert a.layers.loc["1.recurrent", "synops"] == pytest.approx(delivered * 32 / B)


def test_recurrent_weights_reach_xylo_and_loihi() -> None:
    net = nn.Sequential(
        nn.Linear(16, 32, bias=False),
        snn.RLeaky(beta=0.9, linear_features=32, init_hidden=True),
        nn.Linear(32, 4, bias=False),
        snn.Leaky(beta=0.9, init_hidden=True),
    )
    xylo = hwcheck.check(net, chip="xylo-audio2", input_shape=(16,))
    assert xylo.layers.loc["hidden", "max_fanout"] == 32  # recurrent (the readout has its own memory)
    loihi = hwcheck.check(net, chip="loihi", input_shape=(16,))
    assert "1.recurrent" not in loihi.layers.index  # part of layer 1, not a readout
    assert loihi.layers.loc["1", "synapses"] == 16 * 32 + 32 * 32


def test_sinabs_rec_connect_is_counted_as_run() -> None:
    import sinabs.layers as sl

    rec = nn.Linear(32, 32, bias=False)
    net = nn.Sequential(nn.Linear(16, 32, bias=False), sl.IAFRecurrent(rec_connect=rec))
    _scaled(net, k=6)
    seen: list[float] = []
    h = rec.register_forward_hook(lambda m, i, o: seen.append(float(i[0].abs().sum())))
    x = _events(2, 10, 16, p=0.5)
    try:
        with torch.no_grad():
            net[1].reset_states()
            net(x)
    finally:
        h.remove()
    a = hwcheck.analyze(net, x)
    assert a.graph["1.rec_connect"].synapses == 1024
    assert sum(seen) > 0
    assert a.layers.loc["1.rec_connect", "synops"] == pytest.approx(sum(seen) * 32 / 2)


def test_spikingjelly_multistep_and_singlestep_agree_with_manual_counts() -> None:
    sj = pytest.importorskip("spikingjelly.activation_based")
    from spikingjelly.activation_based import functional, layer, neuron

    def build(mode: str) -> nn.Module:
        torch.manual_seed(0)
        net = nn.Sequential(
            layer.Conv2d(2, 4, 3, padding=1),
            neuron.IFNode(),
            layer.Flatten(),
            layer.Linear(4 * 8 * 8, 10),
            neuron.LIFNode(tau=2.0),
        )
        functional.set_step_mode(net, mode)
        with torch.no_grad():
            for p in net.parameters():
                p.mul_(4)
        return net

    assert sj is not None
    x = _events(6, 3, 2, 8, 8)  # (T, B, C, H, W)
    multi = build("m")
    a = hwcheck.analyze(multi, x)
    assert a.graph.layout == "TB" and a.n_samples == 3 and a.n_steps == 6
    assert a.graph["1"].kind == "spiking" and a.graph["1"].neurons == 4 * 8 * 8
    assert a.graph["4"].attrs["tau_mem"] == 2.0
    with torch.no_grad():
        functional.reset_net(multi)
        s1 = multi[1](multi[0](x))
    assert float(s1.sum()) > 0
    assert a.layers.loc["1", "spikes_out"] == pytest.approx(float(s1.sum()) / 3)
    assert a.layers.loc["3", "synops"] == pytest.approx(float(s1.sum()) * 10 / 3)
    assert hwcheck.analyze(multi, x).layers.equals(a.layers)  # state reset between analyses

    single = build("s")
    b = hwcheck.analyze(single, x.transpose(0, 1))  # stepped: batch-first data
    assert b.graph.layout == "B" and b.n_samples == 3 and b.n_steps == 6
    cols = ["events_in", "spikes_out", "synops"]
    assert b.layers[cols].to_numpy() == pytest.approx(a.layers[cols].to_numpy())


def test_norse_time_first_module_and_cell_loop() -> None:
    norse = pytest.importorskip("norse.torch")
    torch.manual_seed(0)
    seq = norse.SequentialState(nn.Linear(F, H), norse.LIF(), nn.Linear(H, 5), norse.LI())
    with torch.no_grad():
        for p in seq.parameters():
            p.mul_(20)
    x = _events(6, 3, F)
    a = hwcheck.analyze(seq, x)
    assert a.graph.layout == "TB" and a.n_samples == 3 and a.n_steps == 6
    assert a.graph["1"].attrs["tau_mem"] == pytest.approx(10.0)  # 1 / (100 /s * 1 ms)
    with torch.no_grad():
        z, _ = seq[1](seq[0](x))
    assert float(z.sum()) > 0
    assert a.layers.loc["1", "spikes_out"] == pytest.approx(float(z.sum()) / 3)
    assert a.layers.loc["2", "synops"] == pytest.approx(float(z.sum()) * 5 / 3)

    class CellLoop(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.fc, self.cell = nn.Linear(F, H), norse.LIFCell()

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            state, out = None, []
            for t in range(x.shape[0]):
                z, state = self.cell(self.fc(x[t]), state)
                out.append(z)
            return torch.stack(out)

    loop = CellLoop()
    loop.fc.load_state_dict(seq[0].state_dict())
    b = hwcheck.analyze(loop, x)
    assert b.graph.layout == "TB" and b.graph.loop_steps and b.n_steps == 6 and b.n_samples == 3
    assert b.layers.loc["cell", "spikes_out"] == pytest.approx(a.layers.loc["1", "spikes_out"])


def test_events_are_magnitudes_and_energy_is_never_negative() -> None:
    import sinabs.layers as sl

    net = nn.Sequential(nn.Linear(4, 5, bias=False), sl.IAF())
    x = -torch.ones(1, 3, 4)
    a = hwcheck.analyze(net, x)
    assert a.layers.loc["0", "events_in"] == 12
    assert a.layers.loc["0", "synops"] == 60
    rep = hwcheck.report(net, ["truenorth", "loihi"], x)
    energy_cols = [c for c in rep.summary.columns if "uJ" in c and c != "ann_energy_uJ"]
    assert energy_cols
    for c in energy_cols:
        vals = rep.summary[c].dropna()
        assert len(vals) and (vals >= 0).all(), c
    assert (rep.summary["dynamic_energy_uJ"].dropna() > 0).all()


def test_single_layer_models_and_unknown_roots() -> None:
    import sinabs.layers as sl

    lin = nn.Linear(3, 5)
    a = hwcheck.analyze(lin, torch.ones(2, 3))
    assert a.summary()["synops"] == 15  # 3 events x 5 outputs per sample
    with hwcheck.SNNAnalyzer(lin) as an:
        lin(torch.ones(2, 3))
        lin(torch.ones(2, 3))
    assert float(an.get_model_statistics()["synops"]) == 15
    iaf = hwcheck.analyze(sl.IAF(), torch.full((2, 4, 3), 0.6))
    assert iaf.layers["neurons"].sum() == 3 and iaf.layers["spikes_out"].sum() == 6  # 2 spikes per neuron in 4 steps

    g = hwcheck.describe(nn.LSTM(3, 4), (3,))
    assert any("LSTM" in w and "NOT counted" in w for w in g.warnings)
    with pytest.raises(ValueError, match="has no layers"):
        hwcheck.describe(nn.Sequential(), (3,))


def test_submodule_named_input_does_not_collide() -> None:
    import sinabs.layers as sl

    class Net(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.input = nn.Identity()
            self.fc = nn.Linear(3, 4)
            self.sp = sl.IAFSqueeze(batch_size=1)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return self.sp(self.fc(self.input(x)))

    g = hwcheck.describe(Net(), (3,))
    assert ("input", "input") not in g.edges
    assert (hwcheck.INPUT, "input") in g.edges and ("input", "fc") in g.edges
    hwcheck.check(Net(), chip="speck2f", input_shape=(3,))  # no RecursionError


def test_dataloader_batches_are_batch_first_for_squeeze_models() -> None:
    import sinabs.layers as sl
    from torch.utils.data import DataLoader, TensorDataset

    torch.manual_seed(0)
    net = nn.Sequential(nn.Conv2d(2, 4, 3), sl.IAFSqueeze(batch_size=2))
    data = _events(6, 5, 2, 8, 8, p=0.2)
    loader = DataLoader(TensorDataset(data, torch.zeros(6)), batch_size=2)
    a = hwcheck.analyze(net, loader, progress=False)
    native = [data[i : i + 2].reshape(-1, 2, 8, 8) for i in range(0, 6, 2)]
    b = hwcheck.analyze(net, native, progress=False)
    assert a.n_samples == b.n_samples == 6 and a.n_steps == b.n_steps == 5
    assert a.layers.equals(b.layers)


def test_torchscript_is_refused_with_a_way_out() -> None:
    scripted = torch.jit.script(nn.Sequential(nn.Linear(3, 4)))
    with pytest.raises(TypeError, match="eager nn.Module"):
        hwcheck.analyze(scripted, torch.ones(1, 3))
    with pytest.raises(TypeError, match="TorchScript"):
        hwcheck.describe(scripted, (3,))


def test_cli_drives_a_stepped_snntorch_model_over_its_time_steps(tmp_path, capsys) -> None:
    from hwcheck.cli import main, synthetic

    src = tmp_path / "stepped_net.py"
    src.write_text(
        "import torch.nn as nn, snntorch as snn\n"
        "net = nn.Sequential(nn.Linear(20, 30), snn.Leaky(beta=0.9, init_hidden=True),\n"
        "                    nn.Linear(30, 10), snn.Leaky(beta=0.9, init_hidden=True))\n"
    )
    rc = main(["check", f"{src}:net", "--chip", "loihi", "--input-shape", "20", "--timesteps", "25", "--no-save"])
    assert rc == 0
    out = capsys.readouterr().out
    assert "loihi" in out and "FITS" in out
    net = _stepped_net()
    (batch,) = synthetic(net, (20,), timesteps=25, rate_hz=200, dt=1e-3)
    a = hwcheck.analyze(net, batch, data_layout="BT")
    assert a.n_samples == 1 and a.n_steps == 25  # not 25 samples of one step
    rc = main(["check", f"{src}:net", "--chip", "loihi", "--input-shape", "20", "--timesteps", "25",
               "--no-save", "--layout", "(BT)"])
    assert rc == 2  # a Squeeze layout for a model without Squeeze layers: a clear error


def test_signed_input_to_a_spiking_network_is_named_in_the_notes() -> None:
    import sinabs.layers as sl

    net = nn.Sequential(nn.Linear(4, 5, bias=False), sl.IAF())
    signed = hwcheck.analyze(net, torch.tensor([[[1.0, -1.0, 0.0, 1.0]]]))
    assert any("`0`" in n and "|x|" in n for n in signed.notes())
    binary = hwcheck.analyze(net, torch.tensor([[[1.0, 0.0, 0.0, 1.0]]]))
    assert not any("|x|" in n for n in binary.notes())
    assert "1 sample(s) of 1 time step(s)" in binary.notes()[0]
