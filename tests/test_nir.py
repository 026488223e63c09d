"""NIR in: hand-built graphs, files, and exports from sinabs, snnTorch and Norse.

The counts of a NIR graph must equal those of the torch model it was exported from, on the same
weights and inputs, and its fit verdicts on Speck, Xylo and Loihi must equal the torch model's.
"""

from __future__ import annotations

import types
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn as nn

import hwcheck
from hwcheck.cli import main
from hwcheck.nir_import import CONVENTIONS, NIRError, NIRModel

nir = pytest.importorskip("nir")

COLS = ["events_in", "synops", "synops_effective", "ops_dense", "spikes_out", "neurons", "synapses",
        "synapses_nonzero", "neuron_updates", "neuron_updates_event"]  # fmt: skip


def _events(b: int, t: int, *shape: int, p: float = 0.3, seed: int = 0) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return (torch.rand(b, t, *shape, generator=g) < p).float()


def _same_counts(a: hwcheck.Analysis, b: hwcheck.Analysis) -> None:
    """Equal per-layer counts, row by row in graph order (layer names may differ)."""
    assert len(a.layers) == len(b.layers)
    cols = [c for c in COLS if c in a.layers]
    np.testing.assert_allclose(
        a.layers[cols].to_numpy(float), b.layers[cols].to_numpy(float), rtol=1e-9, atol=0
    )
    assert a.n_samples == b.n_samples and a.n_steps == b.n_steps


def _lif(n: int, tau: float, thr: float = 1.0, r: float = 1.0) -> nir.LIF:
    return nir.LIF(
        tau=np.full(n, tau), r=np.full(n, r), v_leak=np.zeros(n), v_threshold=np.full(n, thr)
    )


def _ff_graph(seed: int = 0, shapes: bool = True) -> nir.NIRGraph:
    rng = np.random.default_rng(seed)
    return nir.NIRGraph(
        nodes={
            "input": nir.Input(input_type={"input": np.array([10]) if shapes else None}),
            "fc1": nir.Affine(weight=rng.normal(0, 1.5, (12, 10)), bias=np.zeros(12)),
            "lif1": _lif(12, 0.016, r=1.0),
            "fc2": nir.Linear(weight=rng.normal(0, 1.5, (4, 12))),
            "lif2": _lif(4, 0.008),
            "output": nir.Output(output_type={"output": np.array([4])}),
        },
        edges=[
            ("input", "fc1"),
            ("fc1", "lif1"),
            ("lif1", "fc2"),
            ("fc2", "lif2"),
            ("lif2", "output"),
        ],
    )


# --------------------------------------------------------------------------- hand-built graphs


def test_feed_forward_graph_is_described_with_what_the_file_says() -> None:
    g = hwcheck.describe(_ff_graph())
    assert list(g.nodes) == ["fc1", "lif1", "fc2", "lif2"]
    assert g.input_shape == (10,) and g.layout == "BT"
    assert [n.kind for n in g] == ["linear", "spiking", "linear", "spiking"]
    assert g["fc1"].type_name == "Affine" and g["fc1"].synapses == 120 and g["lif1"].neurons == 12
    lif = g["lif1"].attrs
    # forward Euler at dt = 1 ms: decay 1 - 1/16, i.e. -1/ln(15/16) steps; the file's 16 ms kept
    assert lif["tau_mem"] == pytest.approx(-1 / np.log(1 - 1 / 16))
    assert (
        lif["nir_tau"] == pytest.approx(0.016)
        and lif["nir_type"] == "LIF"
        and lif["nir_node"] == "lif1"
    )
    assert lif["neuron_model"] == "LIF" and lif["reset"] == "subtract" and lif["threshold"] == 1.0
    assert g["fc1"].attrs["bias"] is False and g["fc1"].attrs["nir_bias"] == "zeros"
    assert any("read from NIR" in n for n in g.notes)


def test_lif_runs_forward_euler_of_the_nir_equation() -> None:
    graph = _ff_graph()
    m = hwcheck.from_nir(graph, dt=1e-3)
    x = _events(2, 30, 10)
    w1 = torch.tensor(graph.nodes["fc1"].weight, dtype=torch.float32)
    v = torch.zeros(2, 12)
    spikes = []
    for t in range(30):
        v = v + 1 / 16 * (-v + x[:, t] @ w1.T)
        z = (v > 1).float()
        v = v - z
        spikes.append(z)
    ref = torch.stack(spikes, 1)
    with torch.no_grad():
        m(x)  # warm
        out = m.get_submodule("lif1")(m.get_submodule("fc1")(x))
    assert torch.allclose(out, ref)
    a = hwcheck.analyze(graph, x, dt=1e-3)
    assert a.layers.loc["lif1", "spikes_out"] == pytest.approx(float(ref.sum()) / 2)
    assert a.layers.loc["fc2", "synops"] == pytest.approx(float(ref.sum()) * 4 / 2)


def test_missing_shape_names_the_node_and_input_shape_supplies_it() -> None:
    rng = np.random.default_rng(1)
    graph = nir.NIRGraph(
        nodes={
            "input": nir.Input(input_type={"input": None}),
            "conv": nir.Conv2d(input_shape=None, weight=rng.normal(0, 1, (4, 2, 3, 3)), stride=1, padding=1,
                               dilation=1, groups=1, bias=np.zeros(4)),
            "if": nir.IF(r=np.ones(()), v_threshold=np.ones(())),
            "output": nir.Output(output_type={"output": None}),
        },
        edges=[("input", "conv"), ("conv", "if"), ("if", "output")],
    )  # fmt: skip
    with pytest.raises(NIRError, match="input node 'input' has no shape.*'conv' \\(Conv2d\\)"):
        hwcheck.describe(graph)
    g = hwcheck.describe(graph, (2, 8, 8))
    assert g["conv"].out_shape == (4, 8, 8) and g["if"].neurons == 256
    assert hwcheck.check(graph, "speck2f", (2, 8, 8)).fits
    # a Conv2d that carries its input_shape fixes the input
    graph.nodes["conv"] = nir.Conv2d(input_shape=(8, 8), weight=graph.nodes["conv"].weight, stride=1, padding=1,
                                     dilation=1, groups=1, bias=np.zeros(4))  # fmt: skip
    assert hwcheck.describe(graph).input_shape == (2, 8, 8)


def test_conv_graph_counts_equal_the_sinabs_model_with_the_same_weights() -> None:
    import sinabs.layers as sl
    from sinabs.activation import SingleSpike

    w = np.random.default_rng(0).normal(0, 0.6, (4, 2, 3, 3))
    graph = nir.NIRGraph(
        nodes={
            "input": nir.Input(input_type={"input": np.array([2, 8, 8])}),
            "conv": nir.Conv2d(input_shape=(8, 8), weight=w, stride=1, padding=1, dilation=1, groups=1, bias=np.zeros(4)),
            "iaf": nir.IF(r=np.ones((4, 8, 8)), v_threshold=np.ones((4, 8, 8))),
            "pool": nir.SumPool2d(kernel_size=np.array([2, 2]), stride=np.array([2, 2]), padding=np.array([0, 0])),
            "flat": nir.Flatten(input_type={"input": np.array([4, 4, 4])}, start_dim=0),
            "fc": nir.Affine(weight=np.ones((3, 64)) * 0.3, bias=np.zeros(3)),
            "iaf2": nir.IF(r=np.ones(3), v_threshold=np.ones(3)),
            "output": nir.Output(output_type={"output": np.array([3])}),
        },
        edges=[("input", "conv"), ("conv", "iaf"), ("iaf", "pool"), ("pool", "flat"), ("flat", "fc"),
               ("fc", "iaf2"), ("iaf2", "output")],
    )  # fmt: skip
    ref = nn.Sequential(
        nn.Conv2d(2, 4, 3, padding=1, bias=False), sl.IAFSqueeze(batch_size=2, spike_fn=SingleSpike),
        sl.SumPool2d(2), nn.Flatten(), nn.Linear(64, 3, bias=False),
        sl.IAFSqueeze(batch_size=2, spike_fn=SingleSpike),
    )  # fmt: skip
    with torch.no_grad():
        ref[0].weight.copy_(torch.tensor(w))
        ref[4].weight.fill_(0.3)
    x = _events(2, 12, 2, 8, 8)
    steps = CONVENTIONS["sinabs"].replace(multi_spike=False)
    m = hwcheck.from_nir(graph, convention=steps)
    a_nir, a_ref = hwcheck.analyze(m, x), hwcheck.analyze(ref, x, data_layout="BT")
    assert a_nir.layers.loc["iaf", "spikes_out"] > 0
    _same_counts(a_nir, a_ref)
    g = a_nir.graph
    assert g["pool"].attrs["pool_type"] == "sum" and g["fc"].attrs["event_chain"][0] == (
        "pool",
        "pool",
    )
    for chip in ("speck2f", "loihi"):
        assert hwcheck.check(m, chip).fits == hwcheck.check(ref, chip, (2, 8, 8)).fits


def test_recurrent_cycle_becomes_recurrent_weights_one_step_late() -> None:
    rng = np.random.default_rng(2)
    w_in, w_rec = rng.normal(0, 1.5, (8, 5)), rng.normal(0, 0.8, (8, 8))
    graph = nir.NIRGraph(
        nodes={
            "input": nir.Input(input_type={"input": np.array([5])}),
            "fc": nir.Linear(weight=w_in),
            "lif": _lif(8, 0.01),
            "rec": nir.Linear(weight=w_rec),
            "output": nir.Output(output_type={"output": np.array([8])}),
        },
        edges=[("input", "fc"), ("fc", "lif"), ("lif", "rec"), ("rec", "lif"), ("lif", "output")],
    )
    x = _events(3, 40, 5)
    a = hwcheck.analyze(graph, x, dt=1e-3)
    g = a.graph
    assert "lif.recurrent" in g.nodes and g["lif"].attrs["recurrent"] is True
    assert ("lif", "lif.recurrent") in g.recurrent_edges and g["lif.recurrent"].attrs[
        "nir_node"
    ] == "rec"
    # reference: spikes of step t reach step t + 1 through w_rec
    wi, wr = torch.tensor(w_in).float(), torch.tensor(w_rec).float()
    v, z, total, rec_events = torch.zeros(3, 8), torch.zeros(3, 8), 0.0, 0.0
    for t in range(40):
        rec_events += float(z.sum())
        v = v + 0.1 * (-v + x[:, t] @ wi.T + z @ wr.T)
        z = (v > 1).float()
        v = v - z
        total += float(z.sum())
    assert total > 0
    assert a.layers.loc["lif", "spikes_out"] == pytest.approx(total / 3)
    assert a.layers.loc["lif.recurrent", "synops"] == pytest.approx(rec_events * 8 / 3)
    assert a.layers.loc["lif.recurrent", "ops_dense"] == pytest.approx(40 * 64)
    fit = hwcheck.check(graph, "xylo-audio2")
    assert "recurrent" not in " ".join(
        fit.violations.rule
    )  # the hidden layer may be recurrent on Xylo


def test_other_cycles_and_unmapped_nodes_are_named_in_one_error() -> None:
    graph = nir.NIRGraph(
        nodes={
            "input": nir.Input(input_type={"input": np.array([4])}),
            "a": _lif(4, 0.01),
            "wa": nir.Linear(weight=np.eye(4)),
            "b": _lif(4, 0.01),
            "wb": nir.Linear(weight=np.eye(4)),
            "output": nir.Output(output_type={"output": np.array([4])}),
        },
        edges=[("input", "a"), ("a", "wa"), ("wa", "b"), ("b", "wb"), ("wb", "a"), ("b", "output")],
    )
    with pytest.raises(NIRError, match="cycle through 'a', 'wa', 'b', 'wb'"):
        hwcheck.describe(graph)

    class Foo(nir.NIRNode):
        pass

    class Bar(nir.NIRNode):
        pass

    graph = nir.NIRGraph(
        nodes={"input": nir.Input(input_type={"input": np.array([4])}), "f": Foo(), "b": Bar(),
               "output": nir.Output(output_type={"output": np.array([4])})},
        edges=[("input", "f"), ("f", "b"), ("b", "output")],
    )  # fmt: skip
    with pytest.raises(NIRError, match="does not map: 'f' \\(Foo\\), 'b' \\(Bar\\)"):
        hwcheck.check(graph, "loihi")


def test_delay_scale_threshold_li_integrator_and_conv1d_run() -> None:
    rng = np.random.default_rng(3)
    graph = nir.NIRGraph(
        nodes={
            "input": nir.Input(input_type={"input": np.array([2, 12])}),
            "conv": nir.Conv1d(input_shape=12, weight=rng.normal(0, 1, (3, 2, 3)), stride=1, padding=0, dilation=1,
                               groups=1, bias=np.zeros(3)),
            "flat": nir.Flatten(input_type={"input": np.array([3, 10])}, start_dim=0),
            "scale": nir.Scale(scale=np.full(30, 2.0)),
            "integ": nir.I(r=np.full(30, 1000.0)),
            "thr": nir.Threshold(threshold=np.full(30, 1.0)),
            "delay": nir.Delay(delay=np.full(30, 0.002)),
            "fc": nir.Affine(weight=rng.normal(0, 1, (4, 30)), bias=rng.normal(0, 1, 4)),
            "li": nir.LI(tau=np.full(4, 0.004), r=np.ones(4), v_leak=np.zeros(4)),
            "output": nir.Output(output_type={"output": np.array([4])}),
        },
        edges=[("input", "conv"), ("conv", "flat"), ("flat", "scale"), ("scale", "integ"), ("integ", "thr"),
               ("thr", "delay"), ("delay", "fc"), ("fc", "li"), ("li", "output")],
    )  # fmt: skip
    a = hwcheck.analyze(graph, _events(2, 10, 2, 12), dt=1e-3)
    g = a.graph
    kinds = {n.name: n.kind for n in g}
    assert kinds == {"conv": "conv", "flat": "reshape", "scale": "norm", "integ": "neuron", "thr": "spiking",
                     "delay": "identity", "fc": "linear", "li": "neuron"}  # fmt: skip
    assert g["delay"].attrs["delay_steps"] == 2 and any("Delay" in w for w in g.warnings)
    assert g["integ"].attrs["neuron_model"] == "I" and g["integ"].attrs["leak"] is False
    # the delay holds back the first two steps' spikes: Affine reads thr's spikes of steps 0..7
    m = hwcheck.from_nir(graph)
    x = _events(2, 10, 2, 12)
    with torch.no_grad():
        thr = m.get_submodule("thr")(m.get_submodule("integ")(m.get_submodule("scale")(
            m.get_submodule("flat")(m.get_submodule("conv")(x)))))  # fmt: skip
        d = m.get_submodule("delay")(thr)
    assert torch.equal(d[:, 2:], thr[:, :-2]) and not d[:, :2].any()


# --------------------------------------------------------------------------- files


def test_nir_write_read_back_gives_the_same_counts(tmp_path: Path) -> None:
    graph = _ff_graph()
    path = tmp_path / "net.nir"
    nir.write(path, graph)
    x = _events(2, 20, 10)
    _same_counts(hwcheck.analyze(str(path), x), hwcheck.analyze(graph, x))
    other = tmp_path / "weights.bin"  # told by content, not by the name
    other.write_bytes(path.read_bytes())
    assert list(hwcheck.describe(other).nodes) == list(hwcheck.describe(graph).nodes)


def test_corrupt_and_non_nir_hdf5_files_get_clear_errors(
    tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    import h5py

    plain = tmp_path / "data.h5"
    with h5py.File(plain, "w") as f:
        f.create_dataset("x", data=np.zeros(3))
    with pytest.raises(NIRError, match="an HDF5 file, but not a NIR graph"):
        hwcheck.from_nir(plain)
    good = tmp_path / "net.nir"
    nir.write(good, _ff_graph())
    broken = tmp_path / "broken.nir"
    broken.write_bytes(good.read_bytes()[:600])
    with pytest.raises(NIRError, match="damaged HDF5 file"):
        hwcheck.from_nir(broken)
    text = tmp_path / "notes.nir"
    text.write_text("hello")
    with pytest.raises(NIRError, match="not a NIR file"):
        hwcheck.from_nir(text)
    for path, msg in (
        (plain, "not a NIR graph"),
        (broken, "damaged HDF5"),
        (text, "not a NIR file"),
    ):
        assert main(["check", str(path), "--chip", "loihi", "--no-save"]) == 2
        err = capsys.readouterr().err
        assert msg in err and "Traceback" not in err and "pickle" not in err


def test_cli_checks_a_nir_file_without_input_shape(
    tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    path = tmp_path / "net.nir"
    nir.write(path, _ff_graph())
    code = main(
        [
            "check",
            str(path),
            "--chip",
            "xylo-audio2",
            "--timesteps",
            "20",
            "--out",
            str(tmp_path / "rep"),
        ]
    )
    out = capsys.readouterr().out
    assert code in (0, 1) and "xylo-audio2" in out and "lif1" in out
    assert (tmp_path / "rep" / "layers.csv").is_file()
    assert (
        main(["check", str(path), "--chip", "loihi", "--no-save", "--nir-convention", "sinabs"])
        == 0
    )


# --------------------------------------------------------------------------- framework exports


def test_sinabs_export_counts_and_verdicts_agree() -> None:
    import sinabs
    import sinabs.layers as sl

    torch.manual_seed(0)
    net = nn.Sequential(nn.Linear(10, 16), sl.LIF(tau_mem=5.0), nn.Linear(16, 4), sl.IAF())
    with torch.no_grad():
        net[0].weight.mul_(6)
    x = _events(3, 25, 10)
    graph = sinabs.to_nir(net, x)
    assert float(graph.nodes["1"].tau) == 5.0  # pitfall: sinabs writes tau in steps, not seconds
    m = hwcheck.from_nir(graph, convention="sinabs")
    a_ref, a_nir = hwcheck.analyze(net, x), hwcheck.analyze(m, x)
    assert a_ref.layers.loc["1", "spikes_out"] > 0
    _same_counts(a_ref, a_nir)
    for chip in ("xylo-audio2", "loihi", "speck2f"):
        assert hwcheck.check(m, chip).fits == hwcheck.check(net, chip, (10,)).fits
    # read as the NIR standard says (seconds), the same file is a 5-second tau: warned
    g = hwcheck.describe(graph)
    assert any("tau = 5 s is over a second" in w for w in g.warnings)


def test_sinabs_squeeze_conv_export_counts_and_verdicts_agree(tmp_path: Path) -> None:
    import sinabs
    import sinabs.layers as sl

    torch.manual_seed(1)
    net = nn.Sequential(
        nn.Conv2d(2, 8, 3, padding=1, bias=False), sl.IAFSqueeze(batch_size=2), sl.SumPool2d(2),
        nn.Conv2d(8, 8, 3, padding=1, bias=False), sl.IAFSqueeze(batch_size=2), sl.SumPool2d(2),
        nn.Flatten(), nn.Linear(8 * 4 * 4, 5, bias=False), sl.IAFSqueeze(batch_size=2),
    )  # fmt: skip
    x = _events(2, 10, 2, 16, 16)
    net(x.flatten(0, 1))
    graph = sinabs.to_nir(net, x.flatten(0, 1))
    m = hwcheck.from_nir(graph, convention="sinabs")
    a_ref, a_nir = hwcheck.analyze(net, x, data_layout="BT"), hwcheck.analyze(m, x)
    _same_counts(a_ref, a_nir)
    assert a_nir.layers.loc["4", "spikes_out"] > 0
    # pitfall: Conv input_shape and Flatten input_type are None, which nir.write cannot store
    with pytest.raises(TypeError, match="One of data, shape or dtype"):
        nir.write(tmp_path / "bad.nir", graph)
    graph.infer_types()  # fills the Conv input_shape and the Flatten input_type from the Input node
    nir.write(tmp_path / "net.nir", graph)
    _same_counts(
        a_ref, hwcheck.analyze(hwcheck.from_nir(tmp_path / "net.nir", convention="sinabs"), x)
    )
    for chip in ("speck2f", "loihi", "xylo-audio2"):
        f_ref, f_nir = hwcheck.check(net, chip, (2, 16, 16)), hwcheck.check(m, chip)
        assert f_ref.fits == f_nir.fits
        # sinabs_discretize concerns converting the sinabs model with sinabs' own tools only
        ref_rules = sorted(r for r in f_ref.violations["rule"] if r != "sinabs_discretize")
        assert ref_rules == sorted(f_nir.violations["rule"])


def _snntorch_exporter():
    """snnTorch 1.0's exporter passes ``v_reset=`` to nir.LIF / nir.CubaLIF, which nir 1.0.4 does
    not take; with that one argument dropped (NIR 1.0 resets by subtraction, as snnTorch does) it
    works."""
    import snntorch.export_nir as ex

    def drop_v_reset(cls):
        def make(*args, v_reset=None, **kwargs):
            return cls(*args, **kwargs)

        return make

    shim = types.SimpleNamespace(**{n: getattr(nir, n) for n in dir(nir) if not n.startswith("_")})
    shim.LIF, shim.CubaLIF = drop_v_reset(nir.LIF), drop_v_reset(nir.CubaLIF)
    return ex, shim


def test_snntorch_exporter_is_broken_with_the_installed_nir() -> None:
    snn = pytest.importorskip("snntorch")
    from snntorch.export_nir import export_to_nir

    net = nn.Sequential(nn.Linear(4, 3), snn.Leaky(beta=0.9, init_hidden=True, output=True))
    with pytest.raises(TypeError, match="v_reset"):
        export_to_nir(net, torch.rand(1, 4))


def test_snntorch_export_counts_and_verdicts_agree(monkeypatch: pytest.MonkeyPatch) -> None:
    snn = pytest.importorskip("snntorch")
    ex, shim = _snntorch_exporter()
    monkeypatch.setattr(ex, "nir", shim)
    torch.manual_seed(0)
    net = nn.Sequential(
        nn.Linear(10, 16), snn.RLeaky(beta=0.9, linear_features=16, init_hidden=True),
        nn.Linear(16, 4), snn.Synaptic(alpha=0.7, beta=0.8, init_hidden=True, output=True),
    )  # fmt: skip
    with torch.no_grad():
        for p in net.parameters():
            p.mul_(3)
    graph = ex.export_to_nir(net, torch.rand(1, 10))
    assert "1.w_rec" in graph.nodes and ("1.w_rec", "1.lif") in graph.edges
    m = hwcheck.from_nir(graph, convention="snntorch")
    x = _events(3, 25, 10)
    a_ref, a_nir = hwcheck.analyze(net, x), hwcheck.analyze(m, x)
    assert a_nir.layers.loc["1.lif.recurrent", "synops"] > 0
    _same_counts(a_ref, a_nir)
    for chip in ("xylo-audio2", "loihi", "speck2f"):
        f_ref, f_nir = hwcheck.check(net, chip, (10,)), hwcheck.check(m, chip)
        assert f_ref.fits == f_nir.fits
        assert sorted(f_ref.violations["rule"]) == sorted(f_nir.violations["rule"])


@pytest.mark.parametrize("cells", [("LIFBoxCell", "LIFBoxCell"), ("LIFCell", "IAFCell")])
def test_norse_export_needs_its_taus_fixed_then_counts_agree(cells: tuple[str, str]) -> None:
    norse = pytest.importorskip("norse.torch")
    from norse.torch.utils.export_nir import to_nir

    torch.manual_seed(0)
    l1, l2 = nn.Linear(10, 16), nn.Linear(16, 4)
    with torch.no_grad():
        l1.weight.mul_(10)
        l2.weight.mul_(10 if cells[1] == "LIFBoxCell" else 1)
    c1, c2 = getattr(norse, cells[0])(), getattr(norse, cells[1])()

    class Loop(nn.Module):  # the same cells, run over time
        def __init__(self) -> None:
            super().__init__()
            self.l1, self.c1, self.l2, self.c2 = l1, c1, l2, c2

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            s1 = s2 = None
            out = []
            for t in range(x.shape[0]):
                z, s1 = self.c1(self.l1(x[t]), s1)
                z, s2 = self.c2(self.l2(z), s2)
                out.append(z)
            return torch.stack(out)

    graph = to_nir(norse.SequentialState(l1, c1, l2, c2), torch.rand(1, 10))
    # pitfall: Norse writes tau = dt / tau_mem_inv = dt * tau (1e-5 s for its 10 ms default)
    first = graph.nodes["1"]
    assert float(first.tau if isinstance(first, nir.LIF) else first.tau_mem) == pytest.approx(1e-5)
    assert any("dt / tau = 100" in w for w in hwcheck.describe(graph).warnings)
    for node in graph.nodes.values():
        if isinstance(node, nir.LIF):
            node.tau = node.tau / 1e-3
        if isinstance(node, nir.CubaLIF):
            node.tau_mem, node.tau_syn = node.tau_mem / 1e-3, node.tau_syn / 1e-3
    x = _events(3, 30, 10)
    a_ref = hwcheck.analyze(Loop(), x, data_layout="BT")
    a_nir = hwcheck.analyze(hwcheck.from_nir(graph, convention="norse"), x)
    assert a_ref.layers["spikes_out"].sum() > 0
    _same_counts(a_ref, a_nir)


def test_analysis_is_repeatable_and_leaves_outputs_unchanged() -> None:
    m = hwcheck.from_nir(_ff_graph())
    x = _events(2, 15, 10)
    with torch.no_grad():
        before = m(x)
    a, b = hwcheck.analyze(m, x), hwcheck.analyze(m, x)
    _same_counts(a, b)
    # two batches: each starts from rest, so the counts are those of the batches apart
    y = _events(3, 15, 10, seed=1)
    _same_counts(hwcheck.analyze(m, [x, y]), a.merge(hwcheck.analyze(m, y)))
    with torch.no_grad():
        assert torch.equal(m(x), before)
    assert isinstance(m, NIRModel) and m.nir_nodes["lif1"] == "lif1"
    rep = hwcheck.report(_ff_graph(), ["loihi", "xylo-audio2"], x)
    assert set(rep.summary.index if rep.summary.index.name == "chip" else rep.summary["chip"]) == {
        "loihi",
        "xylo-audio2",
    }
