"""DYNAP-CNN / Speck fit check: memory formulas, core matching, every rule, report tables.

Memory figures are checked against an independent implementation written here (float log2 and
the conv output-size formula), the matcher against brute force over core permutations.
"""

from __future__ import annotations

import copy
import functools
import itertools
import math
import random
from collections import OrderedDict

import pytest
import sinabs.layers as sl
import torch
import torch.nn as nn

from hwcheck.graph import describe
from hwcheck.mappers.base import ERROR, WARNING
from hwcheck.mappers.dynapcnn import (
    CoreTable,
    assign_cores,
    clog2,
    fmt_cores,
    fmt_words,
    map_dynapcnn,
)
from hwcheck.profiles import FAMILIES, ProfileError, load_profile

# --------------------------------------------------------------------------- helpers


def IAF() -> nn.Module:
    # a lower bound, as a model meant for sinabs' chip conversion has (see rule_sinabs_discretize)
    return sl.IAFSqueeze(batch_size=1, min_v_mem=-1.0)


def seq(*pairs: tuple[str, nn.Module]) -> nn.Sequential:
    return nn.Sequential(OrderedDict(pairs))


def check(model: nn.Module, shape=(2, 128, 128), chip: str = "speck2f"):
    return map_dynapcnn(describe(model, shape), load_profile(chip))


def ref_kernel(c_in: int, c_out: int, k: int) -> int:
    """Independent: c_in * 2^(ceil(log2(k*k)) + ceil(log2(c_out))), via float log2."""
    return c_in * 2 ** (math.ceil(math.log2(k * k)) + math.ceil(math.log2(c_out)))


def ref_neuron(c_out: int, h: int, w: int) -> int:
    return c_out * 2 ** (math.ceil(math.log2(h)) + math.ceil(math.log2(w)))


def ref_out(size: int, k: int, s: int = 1, p: int = 0, d: int = 1) -> int:
    return (size + 2 * p - d * (k - 1) - 1) // s + 1


def violations(report, rule: str):
    return [v for v in report.violation_list if v.rule == rule]


def only(report, rule: str):
    vs = violations(report, rule)
    assert len(vs) == 1, (rule, [str(v) for v in report.violation_list])
    return vs[0]


SPECK_TABLE = CoreTable(
    kernel=(16384, 16384, 16384, 32768, 32768, 65536, 65536, 16384, 16384),
    neuron=(65536, 65536, 65536, 32768, 32768, 16384, 16384, 16384, 16384),
    bias=(1024,) * 9,
)
MINI_TABLE = CoreTable(
    kernel=(16384, 32768, 32768, 65536, 16384),
    neuron=(65536, 32768, 32768, 16384, 16384),
    bias=(0, 0, 0, 1024, 1024),
)


def sinabs_cnn() -> nn.Sequential:
    """The 2x128x128 CNN of the sinabs DYNAP-CNN tests."""
    return seq(
        ("conv1", nn.Conv2d(2, 8, 2, stride=2, bias=False)),
        ("iaf1", IAF()),
        ("conv2", nn.Conv2d(8, 16, 3, stride=1, padding=1, bias=False)),
        ("iaf2", IAF()),
        ("pool2", sl.SumPool2d(2)),
        ("conv3", nn.Conv2d(16, 16, 3, bias=False)),
        ("iaf3", IAF()),
        ("flat", nn.Flatten()),
        ("fc", nn.Linear(16 * 30 * 30, 10, bias=False)),
        ("iaf4", IAF()),
    )


@functools.lru_cache(maxsize=1)
def sinabs_cnn_report():
    return check(sinabs_cnn())


def nine_layer() -> nn.Sequential:
    """9 chip layers on a DVS-size input that fill all 9 Speck cores."""
    return seq(
        ("c1", nn.Conv2d(2, 8, 2, stride=2, bias=False)), ("s1", IAF()),
        ("c2", nn.Conv2d(8, 16, 3, padding=1, bias=False)), ("s2", IAF()), ("p2", sl.SumPool2d(2)),
        ("c3", nn.Conv2d(16, 32, 3, padding=1, bias=False)), ("s3", IAF()),
        ("c4", nn.Conv2d(32, 32, 3, padding=1, bias=False)), ("s4", IAF()), ("p4", sl.SumPool2d(2)),
        ("c5", nn.Conv2d(32, 64, 3, padding=1, bias=False)), ("s5", IAF()),
        ("c6", nn.Conv2d(64, 64, 3, padding=1, bias=False)), ("s6", IAF()), ("p6", sl.SumPool2d(2)),
        ("c7", nn.Conv2d(64, 64, 3, padding=1, bias=False)), ("s7", IAF()), ("p7", sl.SumPool2d(2)),
        ("flat", nn.Flatten()),
        ("f8", nn.Linear(64 * 4 * 4, 16, bias=False)), ("s8", IAF()),
        ("f9", nn.Linear(16, 10, bias=False)), ("s9", IAF()),
    )  # fmt: skip


# --------------------------------------------------------------------------- formulas


def test_clog2_matches_float_log2():
    assert clog2(1) == 0
    for n in range(1, 5000):
        assert clog2(n) == math.ceil(math.log2(n)), n


def test_family_registered():
    assert FAMILIES["dynapcnn"].mapper is map_dynapcnn


def test_sinabs_cnn_memory_matches_independent_formula():
    r = sinabs_cnn_report()
    L = r.layers
    assert list(L.index) == ["conv1", "conv2", "conv3", "fc"]
    h1 = ref_out(128, 2, 2)  # 64
    h2 = ref_out(h1, 3, 1, 1)  # 64
    h3 = ref_out(h2 // 2, 3)  # 30
    expect = {
        "conv1": (ref_kernel(2, 8, 2), ref_neuron(8, h1, h1)),
        "conv2": (ref_kernel(8, 16, 3), ref_neuron(16, h2, h2)),
        "conv3": (ref_kernel(16, 16, 3), ref_neuron(16, h3, h3)),
        # Linear after Flatten of (16, 30, 30): a conv with a 30x30 kernel over 16 channels
        "fc": (ref_kernel(16, 10, 30), ref_neuron(10, 1, 1)),
    }
    for name, (k, n) in expect.items():
        assert L.loc[name, "kernel_mem_words"] == k, name
        assert L.loc[name, "neuron_mem_words"] == n, name
        assert L.loc[name, "bias_mem_words"] == 0
    # by hand: 64, 32Ki | 2Ki, 64Ki | 4Ki, 16Ki (30 -> 32) | 256Ki, 10
    assert [L.loc[n, "kernel_mem_words"] for n in expect] == [64, 2048, 4096, 262144]
    assert [L.loc[n, "neuron_mem_words"] for n in expect] == [32768, 65536, 16384, 10]
    assert L.loc["fc", "in_shape"] == (16, 30, 30) and L.loc["fc", "kernel_size"] == 30
    assert L.loc["conv2", "pooling"] == "2" and L.loc["conv2", "destinations"] == "conv3"
    assert L.loc["conv2", "members"] == "conv2,iaf2,pool2"
    assert L.loc["conv3", "members"] == "conv3,iaf3,flat"
    # the Linear's kernel (256Ki > 64Ki) and its 30x30 kernel side do not fit: both reported
    assert not r.fits
    v = only(r, "kernel-memory")
    assert (v.layer, v.needed, v.limit) == ("fc", 262144, 65536)
    assert "<= 16x16" in v.hint or "<= 4" in v.hint
    assert only(r, "kernel-size").needed == 30


def test_sinabs_cnn_fits_when_linear_input_is_pooled():
    layers = list(sinabs_cnn().named_children())[:7]  # conv1 .. iaf3
    layers += [
        ("pool3", sl.SumPool2d(2)),
        ("flat", nn.Flatten()),
        ("fc", nn.Linear(16 * 15 * 15, 10, bias=False)),
        ("iaf4", IAF()),
    ]
    r = check(seq(*layers))
    assert r.fits, str(r)
    assert r.layers.loc["fc", "kernel_mem_words"] == ref_kernel(16, 10, 15)  # 16 * 2^(8+4) = 64Ki
    assert r.layers.loc["fc", "core"] in ("5", "6")  # only the 64Ki-kernel cores hold it


def test_speck_docs_worked_example_does_not_fit():
    """sinabs docs: 16 -> 32 channels, 3x3, 64x64 input: kernel 8Ki, neuron 128Ki."""
    m = seq(("conv", nn.Conv2d(16, 32, 3, padding=1, bias=False)), ("iaf", IAF()))
    r = check(m, (16, 64, 64))
    assert r.layers.loc["conv", "kernel_mem_words"] == 8 * 1024 == ref_kernel(16, 32, 3)
    assert r.layers.loc["conv", "neuron_mem_words"] == 128 * 1024 == ref_neuron(32, 64, 64)
    assert not r.fits
    v = only(r, "neuron-memory")
    assert (v.layer, v.needed, v.limit) == ("conv", 131072, 65536)
    assert "128Ki > 64Ki" in v.message and "cores 0-2" in v.message
    assert "from 32 to <= 16" in v.hint and "halve the output map" in v.hint
    assert r.layers.loc["conv", "core"] == "" and r.layers.loc["conv", "n_cores"] == 0


def test_grouped_conv_uses_dense_kernel_and_is_flagged():
    m = seq(("conv", nn.Conv2d(16, 32, 3, groups=4, bias=False)), ("iaf", IAF()))
    r = check(m, (16, 16, 16))
    assert r.layers.loc["conv", "kernel_mem_words"] == ref_kernel(16, 32, 3)  # full c_in, not 4
    v = only(r, "groups")
    assert (v.needed, v.limit, v.severity) == (4, 1, ERROR) and "groups=1" in v.hint


def test_linear_on_flat_input_is_a_1x1_conv():
    m = seq(
        ("fc1", nn.Linear(100, 20, bias=False)), ("s1", IAF()),
        ("fc2", nn.Linear(20, 5, bias=False)), ("s2", IAF()),
    )  # fmt: skip
    r = check(m, (100,))
    assert r.fits, str(r)
    assert r.layers.loc["fc1", "kernel_mem_words"] == ref_kernel(100, 20, 1) == 100 * 32
    assert r.layers.loc["fc2", "kernel_mem_words"] == 20 * 8
    assert r.layers.loc["fc1", "neuron_mem_words"] == 20
    assert r.layers.loc["fc1", "in_shape"] == (100, 1, 1)


def test_functional_flatten_is_seen_as_a_map():
    class M(nn.Module):
        def __init__(self):
            super().__init__()
            self.conv, self.s1 = nn.Conv2d(2, 4, 3, bias=False), IAF()
            self.fc, self.s2 = nn.Linear(4 * 6 * 6, 8, bias=False), IAF()

        def forward(self, x):
            return self.s2(self.fc(self.s1(self.conv(x)).flatten(1)))

    r = check(M(), (2, 8, 8))
    assert r.layers.loc["fc", "in_shape"] == (4, 6, 6)
    assert r.layers.loc["fc", "kernel_mem_words"] == ref_kernel(4, 8, 6)


def test_nine_layer_model_fills_speck_and_tables_agree():
    r = check(nine_layer())
    assert r.fits, str(r)
    L, C = r.layers, r.cores
    assert len(L) == 9 and r.summary["cores_used"] == 9 == r.summary["cores_available"]
    assert sorted(int(c) for c in L["core"]) == list(range(9))
    # each layer on a core it fits, and the core table repeats the layer's need
    caps = load_profile("speck2f")
    for name, row in L.iterrows():
        c = int(row["core"])
        assert row["kernel_mem_words"] <= caps.limit("kernel_memory_words")[c]
        assert row["neuron_mem_words"] <= caps.limit("neuron_memory_words")[c]
        assert C.loc[c, "assigned_layer"] == name
        assert C.loc[c, "kernel_used_words"] == row["kernel_mem_words"]
        assert (
            C.loc[c, "neuron_free_words"]
            == C.loc[c, "neuron_capacity_words"] - row["neuron_mem_words"]
        )
        assert row["neuron_util_pct"] == pytest.approx(
            100 * row["neuron_mem_words"] / row["neuron_limit_words"]
        )
    # utilisation: total neuron memory needed / total neuron memory (documented choice)
    maps = [(8, 64), (16, 64), (32, 32), (32, 32), (64, 16), (64, 16), (64, 8)]
    total = sum(ref_neuron(c, h, h) for c, h in maps) + ref_neuron(16, 1, 1) + ref_neuron(10, 1, 1)
    assert r.summary["utilisation_pct"] == pytest.approx(100 * total / (320 * 1024))
    assert r.summary["violations"] == 0 and r.summary["binding_constraint"]
    assert "FITS" in str(r) and "c7" in str(r)


def test_nine_layers_exceed_the_five_core_mini():
    r = check(nine_layer(), chip="speck2cmini")
    v = only(r, "layer-count")
    assert (v.needed, v.limit) == (9, 5) and "remove or merge 4" in v.hint
    assert r.summary["cores_available"] == 5


def test_profile_with_inconsistent_core_table_is_rejected():
    p = load_profile("speck2f").with_overrides({"limits.kernel_memory_words": [16384, 16384]})
    g = describe(seq(("c", nn.Conv2d(2, 2, 1)), ("s", IAF())), (2, 4, 4))
    with pytest.raises(ProfileError, match="kernel_memory_words"):
        map_dynapcnn(g, p)


# --------------------------------------------------------------------------- matcher


def _brute_force_fits(needs, table: CoreTable) -> bool:
    return any(
        all(table.fits(n, c) for n, c in zip(needs, perm, strict=True))
        for perm in itertools.permutations(range(len(table)), len(needs))
    )


@pytest.mark.parametrize("table,max_layers", [(SPECK_TABLE, 5), (MINI_TABLE, 5)])
def test_matcher_agrees_with_brute_force(table: CoreTable, max_layers: int):
    rng = random.Random(1234)
    kern = [1024, 8192, 16384, 20000, 32768, 65536]
    neur = [1024, 16384, 20000, 32768, 40000, 65536]
    bias = [0, 0, 16, 512]
    outcomes = set()
    for _ in range(80):
        k = rng.randint(1, max_layers)
        needs = [(rng.choice(kern), rng.choice(neur), rng.choice(bias)) for _ in range(k)]
        a = assign_cores(needs, table)
        want = _brute_force_fits(needs, table)
        assert a.complete == want, needs
        outcomes.add(want)
        used = [c for c in a.core_of if c is not None]
        assert len(used) == len(set(used))
        for n, c in zip(needs, a.core_of, strict=True):
            assert c is None or table.fits(n, c)
        for zl, zc in a.witnesses:  # Hall: these layers together fit fewer cores than they are
            fitting = {c for i in zl for c in range(len(table)) if table.fits(needs[i], c)}
            assert fitting == set(zc) and len(zc) < len(zl)
        if not want:
            assert a.witnesses or any(not cand for cand in a.candidates)
    assert outcomes == {True, False}  # both cases exercised


def test_matcher_prefers_smallest_cores_and_is_deterministic():
    a = assign_cores([(100, 100, 0)], SPECK_TABLE)
    assert a.core_of == [7]  # 16Ki + 16Ki + 1Ki: the smallest core
    needs = [(100, 65536, 0), (100, 32768, 0), (65536, 100, 0), (100, 100, 0)]
    a1, a2 = assign_cores(needs, SPECK_TABLE), assign_cores(needs, SPECK_TABLE)
    assert a1.core_of == a2.core_of == [0, 3, 5, 7]


def test_fmt_helpers():
    assert fmt_words(65536) == "64Ki" and fmt_words(1100) == "1100" and fmt_words(10) == "10"
    assert fmt_cores([0, 1, 2, 5, 7, 8]) == "0-2, 5, 7-8"


# --------------------------------------------------------------------------- rules


def test_core_assignment_explained_by_hall_counting():
    """4 layers that each need 64Ki neuron memory, but only cores 0-2 have it."""
    pairs = []
    c_in = 2
    for i in range(1, 5):
        pairs += [(f"conv{i}", nn.Conv2d(c_in, 16, 3, padding=1, bias=False)), (f"iaf{i}", IAF())]
        c_in = 16
    r = check(seq(*pairs), (2, 64, 64))
    v = only(r, "core-assignment")
    assert (v.needed, v.limit) == (4, 3)
    assert v.message.startswith("4 layers (conv1, conv2, conv3, conv4) need >= 64Ki neuron memory")
    assert "only 3 cores (0-2)" in v.message
    assert "from 16 to <= 8 to fit cores 3-4" in v.hint
    assert r.summary["cores_used"] == 3
    assert "core-assignment" not in {x.rule for x in r.violation_list if x.layer == "model"}
    assert r.summary["binding_constraint"].startswith("conv1,conv2,conv3,conv4")


def test_memory_combination_on_mini_bias_table():
    """speck2cmini: 64Ki neuron memory only on core 0, bias memory only on cores 3-4."""
    m = seq(("conv", nn.Conv2d(2, 16, 3, padding=1, bias=True)), ("iaf", IAF()))
    r = check(m, (2, 64, 64), chip="speck2cmini")
    v = only(r, "memory-combination")
    assert "neuron 64Ki (core 0)" in v.message and "bias 16 (cores 3-4)" in v.message
    assert "remove the bias of 'conv' (bias=False) to fit core 0" in v.hint
    r2 = check(m, (2, 64, 64), chip="speck2f")
    assert r2.fits and only(r2, "bias").severity == WARNING


def test_bias_memory_over_largest_core():
    m = seq(("conv", nn.Conv2d(2, 1100, 1, bias=True)), ("iaf", IAF()))
    r = check(m, (2, 1, 1))
    v = only(r, "bias-memory")
    assert (v.needed, v.limit) == (1100, 1024) and "bias=False" in v.hint
    assert only(r, "channels").needed == 1100


def test_kernel_memory_over_largest_core():
    m = seq(("conv", nn.Conv2d(256, 256, 3, bias=False)), ("iaf", IAF()))
    r = check(m, (256, 8, 8))
    v = only(r, "kernel-memory")
    assert (v.needed, v.limit) == (ref_kernel(256, 256, 3), 65536)
    assert "cores 5-6" in v.message and "<=" in v.hint


def _rule_cases():
    """(id, model factory, input shape, chip, rule, layer, needed, limit, severity, hint text)."""
    C = nn.Conv2d

    def fanout():
        class M(nn.Module):
            def __init__(self):
                super().__init__()
                self.conv, self.a, self.b = C(2, 4, 3, bias=False), IAF(), IAF()

            def forward(self, x):
                y = self.conv(x)
                return self.a(y) + self.b(y)

        return M()

    def shared_spiking():
        class M(nn.Module):
            def __init__(self):
                super().__init__()
                self.ca, self.cb, self.s = C(2, 4, 3, bias=False), C(2, 4, 3, bias=False), IAF()

            def forward(self, x):
                return self.s(self.ca(x) + self.cb(x))

        return M()

    def three_dest():
        class M(nn.Module):
            def __init__(self):
                super().__init__()
                self.c0, self.s0 = C(2, 4, 1, bias=False), IAF()
                self.ca, self.sa = C(4, 4, 1, bias=False), IAF()
                self.cb, self.sb = C(4, 4, 1, bias=False), IAF()
                self.cc, self.sc = C(4, 4, 1, bias=False), IAF()

            def forward(self, x):
                y = self.s0(self.c0(x))
                return self.sa(self.ca(y)) + self.sb(self.cb(y)) + self.sc(self.cc(y))

        return M()

    def mixed_pool():
        class M(nn.Module):
            def __init__(self):
                super().__init__()
                self.c1, self.s1 = C(2, 4, 3, padding=1, bias=False), IAF()
                self.c2, self.s2 = C(4, 4, 2, stride=2, bias=False), IAF()
                self.pool = nn.AvgPool2d(2)
                self.c3, self.s3 = C(4, 4, 1, bias=False), IAF()

            def forward(self, x):
                a = self.s1(self.c1(x))
                return self.s3(self.c3(self.pool(a) + self.s2(self.c2(a))))

        return M()

    def shared_module():
        class M(nn.Module):
            def __init__(self):
                super().__init__()
                self.c, self.s1, self.s2 = C(2, 2, 3, padding=1, bias=False), IAF(), IAF()

            def forward(self, x):
                return self.s2(self.c(self.s1(self.c(x))))

        return M()

    class Weird(nn.Module):
        def forward(self, x):
            return x * 2

    def conv_iaf(conv, *extra):
        return lambda: seq(("conv", conv()), ("iaf", IAF()), *[(n, f()) for n, f in extra])

    def pool_case(pool):
        return lambda: seq(
            ("conv", C(2, 4, 1, bias=False)), ("iaf", IAF()), ("pool", pool()),
            ("conv2", C(4, 4, 1, bias=False)), ("iaf2", IAF()),
        )  # fmt: skip

    S = (2, 16, 16)
    return [
        ("no-spiking-cascade", lambda: seq(("conv", C(2, 4, 3)), ("conv2", C(4, 4, 3)), ("iaf", IAF())),
         S, "speck2f", "no-spiking-layer", "conv", "Conv2d 'conv2'", "IAF", ERROR, "between 'conv' and 'conv2'"),
        ("no-spiking-output", lambda: seq(("fc", nn.Linear(8, 4, bias=False))),
         (8,), "speck2f", "no-spiking-layer", "fc", "the model output", "IAF", ERROR, "right after 'fc'"),
        ("weight-fanout", fanout, S, "speck2f", "weight-fanout", "conv", 2, 1, ERROR, "branch after it"),
        ("shared-spiking", shared_spiking, S, "speck2f", "shared-spiking-layer", "cb",
         "2 weight layers", "1 per IAF layer", ERROR, "before a single weight layer"),
        ("pool-before-spiking", lambda: seq(("conv", C(2, 4, 3, bias=False)), ("pool", sl.SumPool2d(2)), ("iaf", IAF())),
         S, "speck2f", "pool-before-spiking", "conv", "SumPool2d 'pool'", "pooling after IAF", ERROR, "move 'pool' after 'iaf'"),
        ("linear-input", lambda: seq(("fc", nn.Linear(16, 4, bias=False)), ("iaf", IAF())),
         (2, 16, 16), "speck2f", "linear-input", "fc", "2x16x16", "flat input", ERROR, "nn.Flatten"),
        ("kernel-square", conv_iaf(lambda: C(2, 4, (3, 5), bias=False)),
         S, "speck2f", "kernel-square", "conv", "3x5", "square", ERROR, "5x5"),
        ("kernel-size", conv_iaf(lambda: C(2, 2, 17, bias=False)),
         (2, 32, 32), "speck2f", "kernel-size", "conv", 17, 16, ERROR, "<= 16x16"),
        ("stride", conv_iaf(lambda: C(2, 4, 3, stride=3, bias=False)),
         S, "speck2f", "stride", "conv", "3x3", "1, 2, 4, 8", ERROR, "stride 2x2"),
        ("stride-one-axis", conv_iaf(lambda: C(2, 4, 3, stride=(1, 3), bias=False)),
         S, "speck2f", "stride", "conv", "1x3", "1, 2, 4, 8", ERROR, "stride 1x2"),
        ("padding", conv_iaf(lambda: C(2, 4, 16, padding=8, bias=False)),
         S, "speck2f", "padding", "conv", 8, 7, ERROR, "<= 7"),
        ("padding-mode", conv_iaf(lambda: C(2, 4, 3, padding=1, padding_mode="reflect", bias=False)),
         S, "speck2f", "padding-mode", "conv", "reflect", "zeros", ERROR, "padding_mode='zeros'"),
        ("dilation", conv_iaf(lambda: C(2, 4, 3, dilation=2, bias=False)),
         S, "speck2f", "dilation", "conv", "2x2", 1, ERROR, "dense 5x5 kernel"),
        ("groups", conv_iaf(lambda: C(4, 4, 3, groups=2, bias=False)),
         (4, 16, 16), "speck2f", "groups", "conv", 2, 1, ERROR, "groups=1"),
        ("channels", conv_iaf(lambda: C(2, 1100, 1, bias=False)),
         (2, 1, 1), "speck2f", "channels", "conv", 1100, 1024, ERROR, "<= 1024"),
        ("input-size", conv_iaf(lambda: C(2, 4, 4, stride=4, bias=False)),
         (2, 256, 256), "speck2f", "input-size", "conv", "256x256", "128x128", ERROR, "pool 2"),
        ("output-map", conv_iaf(lambda: C(2, 1, 3, padding=1, bias=False)),
         (2, 128, 128), "speck2f", "output-map", "conv", "128x128", "64x64", ERROR, "stride 2"),
        ("bias", conv_iaf(lambda: C(2, 4, 3, bias=True)),
         S, "speck2f", "bias", "conv", 4, 0, WARNING, "bias=False"),
        ("destinations", three_dest, S, "speck2f", "destinations", "c0", 3, 2, ERROR, "relay layer"),
        ("pool-square", pool_case(lambda: nn.AvgPool2d((2, 4))),
         S, "speck2f", "pool-square", "conv", "2x4", "square", ERROR, "4x4"),
        ("pool-overlap", pool_case(lambda: nn.AvgPool2d(2, stride=1)),
         S, "speck2f", "pool-overlap", "conv", "stride 1x1", "stride = kernel 2x2", ERROR, "stride = kernel size"),
        ("pool-padding", pool_case(lambda: nn.AvgPool2d(2, padding=1)),
         S, "speck2f", "pool-padding", "conv", "1x1", 0, ERROR, "padding=0"),
        ("pool-ceil-mode", pool_case(lambda: nn.AvgPool2d(2, ceil_mode=True)),
         (2, 15, 15), "speck2f", "pool-ceil-mode", "conv", "ceil_mode=True", "ceil_mode=False", ERROR, "ceil_mode=False"),
        ("pool-size", pool_case(lambda: sl.SumPool2d(3)),
         (2, 18, 18), "speck2f", "pool-size", "conv", 3, "1, 2, 4", ERROR, "pooling 2x2"),
        ("mixed-pooling", mixed_pool, S, "speck2f", "mixed-pooling-inputs", "c3",
         "'c1' pooled 2x2, 'c2' pooled 1x1", "one pooling for all inputs", WARNING, "same pooling"),
        ("dvs-channels", lambda: seq(("pool", sl.SumPool2d(2)), ("conv", C(3, 4, 1, bias=False)), ("iaf", IAF())),
         (3, 128, 128), "speck2f", "dvs-channels", "dvs", 3, 2, ERROR, "<= 2 input channels"),
        ("dvs-input-size", lambda: seq(("pool", sl.SumPool2d(4)), ("conv", C(2, 4, 1, bias=False)), ("iaf", IAF())),
         (2, 256, 256), "speck2f", "input-size", "dvs", "256x256", "128x128", ERROR, "<= 128x128"),
        ("dvs-pool-size", lambda: seq(("pool", sl.SumPool2d(8)), ("conv", C(2, 4, 1, bias=False)), ("iaf", IAF())),
         (2, 128, 128), "speck2f", "pool-size", "dvs", 8, "1, 2, 4", ERROR, "pooling 4x4"),
        ("relu", lambda: seq(("conv", C(2, 4, 3, bias=False)), ("relu", nn.ReLU()), ("conv2", C(4, 4, 3, bias=False)), ("iaf", IAF())),
         S, "speck2f", "unsupported-module", "relu", "ReLU", None, ERROR, "IAF"),
        ("maxpool", pool_case(lambda: nn.MaxPool2d(2)),
         S, "speck2f", "unsupported-module", "pool", "MaxPool2d", None, ERROR, "SumPool2d or AvgPool2d"),
        ("expleak", lambda: seq(("conv", C(2, 4, 3, bias=False)), ("leak", sl.ExpLeakSqueeze(tau_mem=10.0, batch_size=1)), ("iaf", IAF())),
         S, "speck2f", "unsupported-module", "leak", "ExpLeakSqueeze", None, ERROR, "IAF"),
        ("conv1d", lambda: seq(("conv", nn.Conv1d(2, 4, 3, bias=False)), ("iaf", IAF())),
         (2, 16), "speck2f", "unsupported-module", "conv", "Conv1d", None, ERROR, "Conv2d"),
        ("unknown", lambda: seq(("conv", C(2, 4, 3, bias=False)), ("weird", Weird()), ("iaf", IAF())),
         S, "speck2f", "unknown-module", "weird", "Weird", None, ERROR, "register_layer"),
        ("batchnorm", lambda: seq(("conv", C(2, 4, 3, bias=False)), ("bn", nn.BatchNorm2d(4)), ("iaf", IAF())),
         S, "speck2f", "batchnorm-not-folded", "bn", "BatchNorm2d", "no normalisation on chip", ERROR, "fold it"),
        ("lif", lambda: seq(("conv", C(2, 4, 3, bias=False)), ("lif", sl.LIFSqueeze(tau_mem=10.0, batch_size=1))),
         S, "speck2f", "neuron-model", "lif", "LIF", "IAF", ERROR, "IAFSqueeze"),
        ("iaf-tau-syn", lambda: seq(("conv", C(2, 4, 3, bias=False)), ("iaf", sl.IAFSqueeze(batch_size=1, tau_syn=5.0))),
         S, "speck2f", "neuron-model", "iaf", "IAF with a synaptic current (tau_syn)", "IAF", ERROR, "IAF"),
        ("recurrent", lambda: seq(("fc", nn.Linear(8, 4, bias=False)), ("rec", sl.IAFRecurrent(rec_connect=nn.Linear(4, 4)))),
         (8,), "speck2f", "recurrent-neurons", "rec", "recurrent", "feed-forward", ERROR, "feed-forward"),
        ("shared-module", shared_module, S, "speck2f", "shared-module", "c", 2, 1, ERROR, "deepcopy"),
        ("reshape", lambda: seq(("fc", nn.Linear(8, 16, bias=False)), ("s1", IAF()), ("unflat", nn.Unflatten(1, (4, 2, 2))),
                                ("conv", C(4, 4, 1, bias=False)), ("s2", IAF())),
         (8,), "speck2f", "reshape", "unflat", "16 -> 4x2x2", "flatten only", ERROR, "flattening"),
        ("spiking-without-weights", lambda: seq(("iaf0", IAF()), ("conv", C(2, 4, 3, bias=False)), ("iaf", IAF())),
         S, "speck2f", "spiking-without-weights", "iaf0", "IAFSqueeze", "weight layer -> IAF", ERROR, "before 'iaf0'"),
        ("layer-count", lambda: seq(*[p for i in range(10) for p in ((f"c{i}", C(2, 2, 1, bias=False)), (f"s{i}", IAF()))]),
         (2, 4, 4), "speck2f", "layer-count", "model", 10, 9, ERROR, "remove or merge 1"),
    ]  # fmt: skip


@pytest.mark.parametrize("case", _rule_cases(), ids=lambda c: c[0])
def test_rule(case):
    _, factory, shape, chip, rule, layer, needed, limit, severity, hint = case
    r = check(factory(), shape, chip)
    vs = [v for v in violations(r, rule) if v.layer == layer]
    assert len(vs) == 1, [str(v) for v in r.violation_list]
    v = vs[0]
    assert v.severity == severity
    assert v.needed == needed
    if limit is not None:
        assert v.limit == limit
    assert v.hint and hint in v.hint, v.hint
    if severity == ERROR:
        assert not r.fits and "DOES NOT FIT" in str(r)


def test_clean_model_has_no_violations():
    """A Flatten before a Linear is only a reshape: no violation at all."""
    m = seq(
        ("conv", nn.Conv2d(2, 4, 3, bias=False)), ("iaf", IAF()), ("pool", sl.SumPool2d(2)),
        ("flat", nn.Flatten()), ("fc", nn.Linear(4 * 7 * 7, 5, bias=False)), ("iaf2", IAF()),
    )  # fmt: skip
    r = check(m, (2, 16, 16))
    assert r.violation_list == [], [str(v) for v in r.violation_list]
    assert r.fits and r.layers.loc["conv", "members"] == "conv,iaf,pool,flat"


def test_identity_and_dropout_are_ignored():
    """Hand-built graph (conv -> dropout -> iaf -> identity -> fc -> iaf2): the identity kinds
    pass through and change nothing."""
    from hwcheck.graph import INPUT, LayerGraph, LayerNode

    def node(name, kind, tname, i, o, **attrs):
        return LayerNode(name, name, 0, kind, tname, i, (i,), o, attrs=attrs)

    iaf = {"neuron_model": "IAF", "tau_syn": None, "recurrent": False}
    conv = {"in_channels": 2, "out_channels": 4, "kernel_size": (3, 3), "stride": (1, 1),
            "padding": (0, 0), "dilation": (1, 1), "groups": 1, "bias": False,
            "padding_mode": "zeros"}  # fmt: skip
    nodes = [
        node("conv", "conv", "Conv2d", (2, 8, 8), (4, 6, 6), **conv),
        node("drop", "identity", "Dropout", (4, 6, 6), (4, 6, 6)),
        node("iaf", "spiking", "IAFSqueeze", (4, 6, 6), (4, 6, 6), **iaf),
        node("id", "identity", "Identity", (4, 6, 6), (4, 6, 6)),
        node("flat", "reshape", "Flatten", (4, 6, 6), (144,)),
        node("fc", "linear", "Linear", (144,), (5,), in_features=144, out_features=5, bias=False),
        node("iaf2", "spiking", "IAFSqueeze", (5,), (5,), **iaf),
    ]
    names = [n.name for n in nodes]
    g = LayerGraph(
        {n.name: n for n in nodes}, list(zip([INPUT, *names[:-1]], names, strict=True)), (2, 8, 8)
    )
    r = map_dynapcnn(g, load_profile("speck2f"))
    assert r.violation_list == [], [str(v) for v in r.violation_list]
    assert r.layers.loc["conv", "members"] == "conv,drop,iaf,id,flat"
    assert r.layers.loc["fc", "kernel_mem_words"] == ref_kernel(4, 5, 6)


def test_all_violations_reported_together():
    m = seq(
        ("conv", nn.Conv2d(2, 4, 17, stride=3, dilation=1, bias=True)), ("bn", nn.BatchNorm2d(4)),
        ("lif", sl.LIFSqueeze(tau_mem=5.0, batch_size=1)), ("pool", sl.SumPool2d(3)),
        ("conv2", nn.Conv2d(4, 4, 1, bias=False)), ("iaf", IAF()),
    )  # fmt: skip
    r = check(m, (2, 64, 64))
    rules = {v.rule for v in r.violation_list}
    assert {
        "kernel-size",
        "stride",
        "bias",
        "batchnorm-not-folded",
        "neuron-model",
        "pool-size",
    } <= rules
    assert len(r.errors) >= 5 and len(r.warnings) == 1


def test_dvs_layer_and_avgpool_note():
    m = seq(
        ("inpool", sl.SumPool2d(2)), ("conv", nn.Conv2d(2, 8, 3, padding=1, bias=False)), ("iaf", IAF()),
        ("avg", nn.AvgPool2d(2)), ("conv2", nn.Conv2d(8, 8, 3, padding=1, bias=False)), ("iaf2", IAF()),
    )  # fmt: skip
    r = check(m)
    assert r.fits, str(r)
    assert list(r.layers.index) == ["dvs", "conv", "conv2"]
    assert r.layers.loc["dvs", "core"] == "dvs" and r.layers.loc["dvs", "n_cores"] == 0
    assert r.layers.loc["dvs", "pooling"] == "2" and r.summary["cores_used"] == 2
    assert r.layers.loc["conv", "in_shape"] == (2, 64, 64)
    assert any("k*k = 4" in n and "'avg'" in n for n in r.notes)


def test_summary_and_frames_shape():
    r = sinabs_cnn_report()
    for key in (
        "cores_used",
        "cores_available",
        "utilisation_pct",
        "binding_constraint",
        "violations",
    ):
        assert key in r.summary
    for col in ("members", "core", "n_cores", "in_shape", "out_shape", "kernel_mem_words",
                "neuron_mem_words", "bias_mem_words", "kernel_limit_words", "neuron_limit_words",
                "bias_limit_words", "kernel_util_pct", "neuron_util_pct"):  # fmt: skip
        assert col in r.layers.columns
    for col in ("kernel_capacity_words", "neuron_capacity_words", "bias_capacity_words",
                "kernel_used_words", "neuron_used_words", "bias_used_words", "kernel_free_words",
                "neuron_free_words", "bias_free_words", "assigned_layer", "kernel_util_pct",
                "neuron_util_pct"):  # fmt: skip
        assert col in r.cores.columns
    assert list(r.cores.index) == list(range(9))
    assert r.summary["violations"] == len(r.violation_list)
    assert r.summary["binding_constraint"].startswith("fc: kernel memory 256Ki > 64Ki")


def test_analysis_argument_is_accepted():
    g = describe(seq(("c", nn.Conv2d(2, 2, 1, bias=False)), ("s", IAF())), (2, 4, 4))
    r = map_dynapcnn(g, load_profile("speck2f"), analysis=object())
    assert r.fits and any("activity not used" in n for n in r.notes)


def test_weight_fanout_is_reported_once():
    case = next(c for c in _rule_cases() if c[0] == "weight-fanout")
    r = check(case[1](), case[2])
    assert [v.rule for v in r.errors] == ["weight-fanout"]


# --------------------------------------------------------------------------- samna cross-check

STUB_INIT = """import pathlib
pathlib.Path(__file__).with_name("IMPORTED").write_text("the stub ran")
PYPI_SAMNA = True  # a mark to indicate it's pypi samna
def install_real_samna():
    raise RuntimeError("would pip install")
install_real_samna()
"""


def _fake_samna(tmp_path, monkeypatch, init: str, extra: tuple[str, ...] = ()):
    import sys

    pkg = tmp_path / "samna"
    pkg.mkdir()
    (pkg / "__init__.py").write_text(init)
    for name in extra:
        (pkg / name).write_bytes(b"\x7fELF")
    monkeypatch.delitem(sys.modules, "samna", raising=False)
    monkeypatch.syspath_prepend(str(tmp_path))
    return pkg


def test_samna_absent(tmp_path, monkeypatch):
    import sys

    from hwcheck.samna_check import samna_cross_check, samna_status

    monkeypatch.delitem(sys.modules, "samna", raising=False)
    monkeypatch.setattr(sys, "path", [str(tmp_path)])  # nothing named samna on this path
    assert samna_status() == ("absent", "samna not installed; skipping hardware cross-check")
    assert samna_cross_check(nn.Identity(), "speck2f", (2, 4, 4)).startswith("samna not installed")


def test_samna_stub_detected_without_importing_it(tmp_path, monkeypatch):
    import sys

    from hwcheck.samna_check import samna_cross_check, samna_status

    pkg = _fake_samna(tmp_path, monkeypatch, STUB_INIT)
    status, msg = samna_status()
    assert (
        status == "stub"
        and msg == "samna is the PyPI bootstrap stub; skipping hardware cross-check"
    )
    out = samna_cross_check(sinabs_cnn(), "speck2f", (2, 128, 128))
    assert out == msg
    assert not (pkg / "IMPORTED").exists() and "samna" not in sys.modules


def test_samna_without_marker_but_without_extensions_is_a_stub(tmp_path, monkeypatch):
    from hwcheck.samna_check import samna_status

    _fake_samna(tmp_path, monkeypatch, "x = 1\n")
    assert samna_status()[0] == "stub"


def test_samna_with_compiled_module_counts_as_real(tmp_path, monkeypatch):
    from hwcheck.samna_check import samna_status

    pkg = _fake_samna(
        tmp_path, monkeypatch, "from .samna import *\n", ("samna.cpython-311-x86_64-linux-gnu.so",)
    )
    status, msg = samna_status()
    assert status == "real" and str(pkg) in msg


@pytest.mark.samna
def test_cross_check_agrees_with_sinabs():
    from hwcheck.samna_check import CrossCheck, samna_cross_check, samna_status

    if samna_status()[0] != "real":
        pytest.skip("needs a real samna installation (the PyPI package is a bootstrap stub)")
    for model, shape in ((nine_layer(), (2, 128, 128)), (sinabs_cnn(), (2, 128, 128))):
        out = samna_cross_check(model, "speck2f", shape)
        assert isinstance(out, CrossCheck) and out.agree, str(out)


class _MergedMaps(nn.Module):
    """Two 4x6x6 maps, flattened and added by a sinabs Merge, read by one Linear."""

    def __init__(self) -> None:
        super().__init__()
        self.c1, self.s1 = nn.Conv2d(2, 4, 3, padding=1, bias=False), sl.IAFSqueeze(batch_size=1)
        self.c2, self.s2 = nn.Conv2d(2, 4, 3, padding=1, bias=False), sl.IAFSqueeze(batch_size=1)
        self.f1, self.f2 = nn.Flatten(), nn.Flatten()
        self.merge = sl.Merge()
        self.fc, self.s3 = nn.Linear(4 * 6 * 6, 16, bias=False), sl.IAFSqueeze(batch_size=1)

    def forward(self, x):
        a, b = self.f1(self.s1(self.c1(x))), self.f2(self.s2(self.c2(x)))
        return self.s3(self.fc(self.merge(a, b)))


def test_linear_after_a_merge_of_maps_runs_as_a_conv_over_the_map():
    # the chip runs the Linear as a 6x6 kernel over 4 channels (as sinabs sizes it):
    # c_in * 2^(ceil(log2(6*6)) + ceil(log2(16))) = 4 * 2^(6 + 4) words, not a 1x1 over 144
    report = map_dynapcnn(describe(_MergedMaps(), (2, 6, 6)), load_profile("speck2f"))
    used = report.cores.set_index("assigned_layer").loc["fc", "kernel_used_words"]
    assert used == 4 * 2 ** (math.ceil(math.log2(36)) + math.ceil(math.log2(16))) == 4096


# ---------------------------------------------------------------- quantisation (8-bit weights)


def _quant(weight: torch.Tensor, threshold: float, min_v_mem: float | None = -1.0):
    conv = nn.Conv2d(weight.shape[1], weight.shape[0], weight.shape[2], bias=False)
    with torch.no_grad():
        conv.weight.copy_(weight)
    spk = sl.IAFSqueeze(batch_size=1, spike_threshold=threshold, min_v_mem=min_v_mem)
    report = map_dynapcnn(describe(nn.Sequential(conv, spk), (weight.shape[1], 8, 8)), load_profile("speck2f"))
    return {v.rule: v for v in report.violation_list}


def _rms_error(w: torch.Tensor, scale: float) -> float:
    """By hand: the weights as the chip stores them (round(w * scale)) against the model's."""
    wd = w.double()
    return float((torch.round(wd * scale) / scale - wd).norm() / wd.norm())


def test_quantisation_below_at_and_above_the_state_range():
    g = torch.Generator().manual_seed(0)
    w = (torch.rand(4, 2, 3, 3, generator=g) * 0.6 - 0.3)
    wmax = float(w.abs().max())
    # threshold 1: the 8-bit weights set the scale (127 / max|w|); tiny error, no violation
    assert _rms_error(w, 127 / wmax) < 0.02
    assert not {"weight_quantisation", "state_range"} & set(_quant(w, 1.0))
    # the 16-bit state range sets the scale once 32767 / threshold < 127 / max|w|
    for thr in (300.0, 1000.0, 3000.0):
        scale = min(127 / wmax, 32767 / thr)
        err = _rms_error(w, scale)
        got = _quant(w, thr)
        if err > 0.02:
            assert "state_range" in got and f"{100 * err:.1f}%" in got["state_range"].message, thr
        else:
            assert "state_range" not in got, thr
    # a threshold so large that every weight rounds to zero is an error
    got = _quant(w, 1e6)
    assert got["weight_quantisation"].severity == ERROR and "every weight rounds to zero" in got["weight_quantisation"].message


def test_outlier_weight_wastes_the_8_bit_levels():
    w = torch.full((4, 2, 3, 3), 0.002)
    w[0, 0, 0, 0] = 1.0
    err = _rms_error(w, 127.0)  # small: the one large weight dominates the norm
    assert err < 0.02 and round(0.002 * 127) == 0  # ... but every small weight rounds to 0
    got = _quant(w, 1.0)
    assert got["weight_quantisation"].severity == WARNING
    msg = got["weight_quantisation"].message
    assert f"{100 * err:.1f}%" in msg and f"{100 * 71 / 72:.0f}% of the weights become 0" in msg


def _sinabs_discretize():
    """sinabs' own discretize module, loaded from its file (its package __init__ imports samna)."""
    import importlib.util
    import os
    import sys

    import sinabs

    path = os.path.join(os.path.dirname(sinabs.__file__), "backend", "dynapcnn", "discretize.py")
    if not os.path.isfile(path):
        pytest.skip("sinabs has no backend/dynapcnn/discretize.py")
    spec = importlib.util.spec_from_file_location("_sinabs_discretize", path)
    mod = importlib.util.module_from_spec(spec)
    sys.modules.setdefault("_sinabs_discretize", mod)
    spec.loader.exec_module(mod)
    return mod


@pytest.mark.parametrize("min_v_mem", [None, -1.0])
def test_sinabs_discretize_pitfall_agrees_with_sinabs(min_v_mem):
    """sinabs' discretize run for real: without min_v_mem it rounds every small weight to zero,
    and hwcheck warns exactly then."""
    disc = _sinabs_discretize()
    g = torch.Generator().manual_seed(1)
    w = torch.rand(4, 2, 3, 3, generator=g) * 0.6 - 0.3
    conv = nn.Conv2d(2, 4, 3, bias=False)
    with torch.no_grad():
        conv.weight.copy_(w)
    spk = sl.IAF(spike_threshold=1.0, min_v_mem=min_v_mem)
    c2, _ = disc.discretize_conv_spike_(copy.deepcopy(conv), copy.deepcopy(spk), to_int=False)
    zeroed = float((c2.weight == 0).sum()) / c2.weight.numel()
    model = nn.Sequential(conv, sl.IAFSqueeze(batch_size=1, spike_threshold=1.0, min_v_mem=min_v_mem))
    report = map_dynapcnn(describe(model, (2, 8, 8)), load_profile("speck2f"))
    warned = [v for v in report.violation_list if v.rule == "sinabs_discretize"]
    if min_v_mem is None:
        assert zeroed == 1.0 and warned and "100%" in warned[0].message
    else:
        assert zeroed < 0.1 and not warned
