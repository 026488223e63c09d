"""describe(): node names, kinds, shapes, parameters, neurons and data-flow edges."""

from __future__ import annotations

import subprocess
import sys

import pytest
import sinabs.layers as sl
import torch
from conftest import conv_connections, linear_connections
from torch import nn

import hwcheck
from hwcheck import INPUT


def _edges(graph: hwcheck.LayerGraph) -> set[tuple[str, str]]:
    return set(graph.edges)


def _summary(graph: hwcheck.LayerGraph) -> list[tuple[str, str, tuple, tuple]]:
    return [(n.name, n.kind, n.in_shape, n.out_shape) for n in graph]


# --------------------------------------------------------------------------- structure


def test_nested_sequential() -> None:
    model = nn.Sequential(
        nn.Sequential(nn.Conv2d(2, 4, 3, padding=1), nn.ReLU()),
        nn.Sequential(nn.Sequential(nn.AvgPool2d(2)), nn.Flatten()),
        nn.Linear(4 * 4 * 4, 5, bias=False),
    )
    g = hwcheck.describe(model, (2, 8, 8))
    assert _summary(g) == [
        ("0.0", "conv", (2, 8, 8), (4, 8, 8)),
        ("0.1", "activation", (4, 8, 8), (4, 8, 8)),
        ("1.0.0", "pool", (4, 8, 8), (4, 4, 4)),
        ("1.1", "reshape", (4, 4, 4), (64,)),
        ("2", "linear", (64,), (5,)),
    ]
    assert g.edges == [
        (INPUT, "0.0"),
        ("0.0", "0.1"),
        ("0.1", "1.0.0"),
        ("1.0.0", "1.1"),
        ("1.1", "2"),
    ]
    assert g.outputs == ["2"]
    assert g["0.0"].params == 2 * 4 * 9 + 4 and g["2"].params == 64 * 5
    assert g["0.0"].module is model[0][0]
    assert g["0.0"].module_path == "0.0" and g["0.0"].call_index == 0
    assert g.layout == "B" and g.input_shape == (2, 8, 8)
    assert all(n.neurons == 0 for n in g)
    assert g.predecessors("2") == ["1.1"] and g.successors("0.0") == ["0.1"]


class Residual(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.c1 = nn.Conv2d(1, 2, 3, padding=1)
        self.a1 = nn.ReLU()
        self.c2 = nn.Conv2d(2, 2, 3, padding=1)
        self.a2 = nn.ReLU()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.a1(self.c1(x))
        return self.a2(self.c2(y) + y)


def test_residual_add_edges() -> None:
    g = hwcheck.describe(Residual(), (1, 6, 6))
    assert [n.name for n in g] == ["c1", "a1", "c2", "a2"]
    assert _edges(g) == {(INPUT, "c1"), ("c1", "a1"), ("a1", "c2"), ("c2", "a2"), ("a1", "a2")}
    assert g["a2"].in_shape == (2, 6, 6)
    assert g.outputs == ["a2"]


class MergeNet(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.ca = nn.Conv2d(1, 2, 3, padding=1)
        self.cb = nn.Conv2d(1, 2, 1)
        self.merge = sl.Merge()
        self.out = nn.Conv2d(2, 3, 3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.out(self.merge(self.ca(x), self.cb(x)))


def test_sinabs_merge() -> None:
    g = hwcheck.describe(MergeNet(), (1, 5, 5))
    m = g["merge"]
    assert m.kind == "merge" and m.in_shapes == ((2, 5, 5), (2, 5, 5)) and m.out_shape == (2, 5, 5)
    assert _edges(g) == {
        (INPUT, "ca"),
        (INPUT, "cb"),
        ("ca", "merge"),
        ("cb", "merge"),
        ("merge", "out"),
    }
    assert g["out"].out_shape == (3, 3, 3)


class CatNet(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.ca = nn.Conv2d(1, 2, 3, padding=1)
        self.cb = nn.Conv2d(1, 3, 3, padding=1)
        self.out = nn.Conv2d(5, 1, 1, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.out(torch.cat([self.ca(x), self.cb(x)], dim=1))


def test_torch_cat() -> None:
    g = hwcheck.describe(CatNet(), (1, 4, 4))
    assert g["out"].in_shape == (5, 4, 4)
    assert _edges(g) == {(INPUT, "ca"), (INPUT, "cb"), ("ca", "out"), ("cb", "out")}
    assert g["out"].synapses == 5 * 16


class CalledTwice(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.l = nn.Linear(3, 3)
        self.act = nn.ReLU()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.l(self.act(self.l(x)))


def test_module_called_twice() -> None:
    model = CalledTwice()
    g = hwcheck.describe(model, (3,))
    assert [n.name for n in g] == ["l", "act", "l:2"]
    assert [(n.call_index, n.module_path) for n in g.calls_of("l")] == [(0, "l"), (1, "l")]
    assert g["l"].module is g["l:2"].module is model.l
    assert g["l"].params == 12 and g["l:2"].params == 0  # parameters counted once
    assert g["l"].synapses == g["l:2"].synapses == 9
    assert g.edges == [(INPUT, "l"), ("l", "act"), ("act", "l:2")]
    assert g.outputs == ["l:2"]


@pytest.mark.parametrize(
    "make", [nn.Identity, lambda: nn.Dropout(0.3)], ids=["identity", "dropout"]
)
def test_identity_and_dropout_nodes(make) -> None:
    """A module that returns its input tensor unchanged (Identity, Dropout in eval) is a node."""
    model = nn.Sequential(nn.Conv2d(1, 2, 3), make(), nn.Conv2d(2, 2, 3)).eval()
    g = hwcheck.describe(model, (1, 6, 6))
    assert [(n.name, n.kind) for n in g] == [("0", "conv"), ("1", "identity"), ("2", "conv")]
    assert g.edges == [(INPUT, "0"), ("0", "1"), ("1", "2")]
    assert g["1"].in_shape == g["1"].out_shape == (2, 4, 4)


def test_conv1d() -> None:
    conv = nn.Conv1d(2, 4, 3, stride=2, padding=1, dilation=2, groups=2)
    g = hwcheck.describe(nn.Sequential(conv, nn.ReLU()), (2, 11))
    n = g["0"]
    assert (n.kind, n.in_shape, n.out_shape) == ("conv", (2, 11), (4, 5))
    assert (
        n.attrs["kernel_size"] == (3,) and n.attrs["stride"] == (2,) and n.attrs["padding"] == (1,)
    )
    assert n.attrs["dilation"] == (2,) and n.attrs["groups"] == 2 and n.attrs["bias"] is True
    assert n.params == 4 * 1 * 3 + 4
    assert n.synapses == conv_connections(conv, (2, 11)).stats()["synapses"]


@pytest.mark.parametrize(
    "k,d,want",
    [(3, 1, (1,)), (4, 1, (1,)), (5, 2, (4,)), (2, 3, (1,))],
    ids=["k3", "k4", "k5d2", "k2d3"],
)
def test_conv_same_padding_resolved(k: int, d: int, want: tuple[int, ...]) -> None:
    """'same' padding is reported as the (smaller) padding before the input, as torch applies it."""
    g = hwcheck.describe(nn.Sequential(nn.Conv1d(1, 1, k, padding="same", dilation=d)), (1, 9))
    assert g["0"].attrs["padding"] == want
    assert g["0"].out_shape == (1, 9)


def test_linear_on_bt_input() -> None:
    model = nn.Sequential(nn.Linear(6, 4), sl.IAF(), nn.Linear(4, 2), sl.IAF())
    g = hwcheck.describe(model, (6,))
    assert g.layout == "BT"
    assert _summary(g) == [
        ("0", "linear", (6,), (4,)),
        ("1", "spiking", (4,), (4,)),
        ("2", "linear", (4,), (2,)),
        ("3", "spiking", (2,), (2,)),
    ]
    assert all(n.lead_dims == 2 for n in g)
    assert g["1"].neurons == 4 and g["3"].neurons == 2
    assert g["0"].synapses == linear_connections(model[0]).stats()["synapses"] == 24


def test_batchnorm_is_norm() -> None:
    model = nn.Sequential(
        nn.Conv2d(1, 3, 3), nn.BatchNorm2d(3), nn.Flatten(), nn.Linear(12, 2), nn.BatchNorm1d(2)
    )
    g = hwcheck.describe(model, (1, 4, 4))
    assert g["1"].kind == "norm" and g["1"].params == 6 and g["1"].out_shape == (3, 2, 2)
    assert g["4"].kind == "norm" and g["4"].in_shape == (2,)
    assert g["1"].synapses == 0 and g["1"].neurons == 0


def test_flatten_unflatten_time_batch_one() -> None:
    model = nn.Sequential(
        sl.FlattenTime(), nn.Conv2d(2, 3, 3), sl.UnflattenTime(batch_size=1), sl.IAF()
    )
    g = hwcheck.describe(model, (2, 5, 5))
    assert g.layout == "BT"
    assert _summary(g) == [
        ("0", "reshape", (2, 5, 5), (2, 5, 5)),
        ("1", "conv", (2, 5, 5), (3, 3, 3)),
        ("2", "reshape", (3, 3, 3), (3, 3, 3)),
        ("3", "spiking", (3, 3, 3), (3, 3, 3)),
    ]
    assert [n.lead_dims for n in g] == [1, 1, 2, 2]
    assert g["3"].neurons == 27


def test_unflatten_time_with_batch_size() -> None:
    """UnflattenTime(batch_size=4) needs a traced batch of 4 (a batch of 1 cannot be unflattened)."""
    model = nn.Sequential(
        sl.FlattenTime(), nn.Conv2d(2, 3, 3), sl.UnflattenTime(batch_size=4), sl.IAF()
    )
    g = hwcheck.describe(model, (2, 5, 5))
    assert g["3"].in_shape == (3, 3, 3) and g["3"].neurons == 27
    x = (torch.rand(4, 3, 2, 5, 5) < 0.3).float()
    a = hwcheck.analyze(model, x)
    assert a.n_samples == 4 and a.n_steps == 3


# --------------------------------------------------------------------------- neurons


def test_sinabs_neurons() -> None:
    model = nn.Sequential(
        nn.Linear(3, 4),
        sl.LIF(tau_mem=10.0, tau_syn=5.0),
        nn.Linear(4, 4),
        sl.ALIF(tau_mem=5.0, tau_adapt=20.0),
        nn.Linear(4, 2),
        sl.ExpLeak(tau_mem=3.0),
        sl.IAF(spike_threshold=2.0),
    )
    g = hwcheck.describe(model, (3,))
    kinds = [
        (n.name, n.kind, n.neurons, n.attrs.get("neuron_model"))
        for n in g
        if n.kind in ("spiking", "neuron")
    ]
    assert kinds == [
        ("1", "spiking", 4, "LIF"),
        ("3", "spiking", 4, "ALIF"),
        ("5", "neuron", 2, "ExpLeak"),
        ("6", "spiking", 2, "IAF"),
    ]
    assert g["1"].attrs["tau_mem"] == pytest.approx(10.0) and g["1"].attrs[
        "tau_syn"
    ] == pytest.approx(5.0)
    assert g["3"].attrs["tau_mem"] == pytest.approx(5.0)
    assert g["5"].attrs["tau_mem"] == pytest.approx(3.0)
    assert g["6"].attrs["tau_mem"] is None and g["6"].attrs["leak"] is False
    assert g["1"].attrs["leak"] is True
    assert g["6"].attrs["threshold"] == pytest.approx(2.0) and g["1"].attrs[
        "threshold"
    ] == pytest.approx(1.0)
    assert g["6"].attrs["reset"] == "subtract"
    assert not any(n.attrs.get("squeeze") for n in g if n.kind in ("spiking", "neuron"))


def test_alif_threshold_is_base_threshold() -> None:
    """ALIF keeps its (base) threshold in b0; spike_threshold is its adaptive state."""
    g = hwcheck.describe(
        nn.Sequential(nn.Linear(2, 2), sl.ALIF(tau_mem=5.0, tau_adapt=20.0, spike_threshold=1.5)),
        (2,),
    )
    assert g["1"].attrs["threshold"] == pytest.approx(1.5)


def test_sinabs_squeeze_neurons() -> None:
    model = nn.Sequential(
        nn.Conv2d(1, 2, 3),
        sl.IAFSqueeze(batch_size=2),
        nn.Conv2d(2, 2, 3),
        sl.LIFSqueeze(tau_mem=4.0, batch_size=2),
        nn.Conv2d(2, 2, 1),
        sl.ExpLeakSqueeze(tau_mem=2.0, batch_size=2),
    )
    g = hwcheck.describe(model, (1, 7, 7))
    assert g.layout == "(BT)"
    got = [
        (n.name, n.kind, n.out_shape, n.neurons, n.attrs["neuron_model"], n.attrs["squeeze"])
        for n in g
        if n.kind in ("spiking", "neuron")
    ]
    assert got == [
        ("1", "spiking", (2, 5, 5), 50, "IAF", True),
        ("3", "spiking", (2, 3, 3), 18, "LIF", True),
        ("5", "neuron", (2, 3, 3), 18, "ExpLeak", True),
    ]
    assert all(n.lead_dims == 1 for n in g)


# --------------------------------------------------------------------------- unknown / user layers


class MyWeighted(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.w = nn.Parameter(torch.ones(3, 3))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x @ self.w


def test_unknown_module_with_weights_warns() -> None:
    model = nn.Sequential(nn.Linear(3, 3), nn.Sequential(MyWeighted()), nn.ReLU())
    g = hwcheck.describe(model, (3,))
    assert g["1.0"].kind == "unknown"
    assert g["1.0"].synapses == 0
    assert any("'1.0'" in w and "MyWeighted" in w for w in g.warnings), g.warnings
    assert len(g.warnings) == 1
    # plain known layers do not warn
    assert hwcheck.describe(nn.Sequential(nn.Linear(3, 3), nn.ReLU()), (3,)).warnings == []


class MyNeuron(nn.Module):
    """A user neuron: integrate, spike at 1, subtract."""

    def __init__(self) -> None:
        super().__init__()
        self.threshold = 1.0

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # x: (B, T, F)
        v = torch.zeros_like(x[:, 0])
        out = []
        for t in range(x.shape[1]):
            v = v + x[:, t]
            s = (v >= self.threshold).float()
            v = v - s
            out.append(s)
        return torch.stack(out, 1)


def test_register_neuron_counts_user_class() -> None:
    class LocalNeuron(MyNeuron):  # a fresh class, so the global registry change stays local
        pass

    model = nn.Sequential(nn.Linear(3, 4, bias=False), LocalNeuron())
    nn.init.constant_(model[0].weight, 0.6)
    before = hwcheck.describe(model, (3,), layout="BT")
    assert before["1"].kind == "unknown" and before["1"].neurons == 0
    hwcheck.register_neuron(LocalNeuron, "MyIF", attrs=lambda m: {"threshold": m.threshold})
    g = hwcheck.describe(model, (3,), layout="BT")
    n = g["1"]
    assert (n.kind, n.neurons, n.attrs["neuron_model"], n.attrs["threshold"]) == (
        "spiking",
        4,
        "MyIF",
        1.0,
    )
    x = (torch.rand(2, 6, 3) < 0.5).float()
    with torch.no_grad():
        out = model(x)
    a = hwcheck.analyze(model, x, layout="BT")
    assert a.layers.loc["1", "spikes_out"] == pytest.approx(float(out.sum()) / 2)
    assert a.layers.loc["1", "firing_rate"] == pytest.approx(float(out.sum()) / (2 * 6 * 4))
    assert a.summary()["spiking_neurons"] == 4


def test_import_does_not_pull_samna_or_dynapcnn() -> None:
    code = (
        "import sys, hwcheck, hwcheck.graph, hwcheck.activity, hwcheck.layers; "
        "bad = [m for m in sys.modules if m == 'samna' or m.startswith('samna.') "
        "or m.startswith('sinabs.backend')]; "
        "assert not bad, bad"
    )
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert res.returncode == 0, res.stderr[-2000:]


def test_describe_is_cached_until_the_model_changes() -> None:
    import torch
    from torch import nn

    import hwcheck

    net = nn.Sequential(nn.Linear(4, 3, bias=False))
    g1 = hwcheck.describe(net, (4,))
    assert hwcheck.describe(net, (4,)) is g1  # no second trace
    assert hwcheck.describe(net, (4,), cache=False) is not g1
    g_b = hwcheck.describe(net, (4,), layout="B")  # another key: its own graph, both kept
    assert g_b is not g1
    assert hwcheck.describe(net, (4,)) is g1 and hwcheck.describe(net, (4,), layout="B") is g_b
    with torch.no_grad():
        net[0].weight.zero_()
    g2 = hwcheck.describe(net, (4,))
    assert g2 is not g1 and g2["0"].synapses_nonzero == 0 and g1["0"].synapses_nonzero == 12
    net.append(nn.Linear(3, 2))
    assert list(hwcheck.describe(net, (4,)).nodes) == ["0", "1"]


def test_graph_prints_as_a_table_and_converts_to_a_frame():
    model = nn.Sequential(nn.Conv2d(2, 4, 3), sl.IAFSqueeze(batch_size=1), nn.Flatten(), nn.Linear(4 * 4 * 4, 3))
    g = hwcheck.describe(model, (2, 6, 6))
    df = g.to_frame()
    assert list(df.index) == list(g.nodes) and df.loc["0", "synapses"] == 4 * 4 * 4 * 2 * 9
    text = repr(g)
    assert text.splitlines()[0] == "LayerGraph: 4 layers, input (2, 6, 6), layout (BT)"
    assert "Conv2d" in text and "IAFSqueeze" in text and "LayerNode(" not in text


class _MergeOfAvgPool(nn.Module):
    """Merge(pool(x), spikes): the pooled branch reads the model input, not a neuron layer."""

    def __init__(self, pool: nn.Module) -> None:
        super().__init__()
        self.p = pool
        self.c2, self.s2 = nn.Conv2d(2, 2, 3, padding=1, stride=2), sl.IAFSqueeze(batch_size=1)
        self.m = sl.Merge()
        self.c3, self.s3 = nn.Conv2d(2, 4, 3), sl.IAFSqueeze(batch_size=1)

    def forward(self, x):
        return self.s3(self.c3(self.m(self.p(x), self.s2(self.c2(x)))))


def test_a_merge_with_an_average_pooled_input_branch_is_named():
    notes = hwcheck.describe(_MergeOfAvgPool(nn.AvgPool2d(2)), (2, 8, 8)).notes
    assert any("`c3` reads a merge of an average-pooled branch (p)" in n for n in notes)
    notes = hwcheck.describe(_MergeOfAvgPool(sl.SumPool2d(2)), (2, 8, 8)).notes
    assert not any("average-pooled" in n for n in notes)  # sum pooling keeps the event counts
