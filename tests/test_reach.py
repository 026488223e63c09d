"""The closed-form reach of a block of neurons (hwcheck.mappers.reach) against the general map.

The general map counts synapses by autograd through the layer's structural linear map (itself
checked against explicit Python loops in test_neurocore.py). For every structure the closed
form claims to cover, random blocks in both partition orders must give the same input axons,
synapses, synapse bits and the same set of source elements read.
"""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest
import sinabs.layers as sl
import torch
from torch import nn

from hwcheck.graph import describe
from hwcheck.mappers.neurocore import _evaluate, build_populations, core_limits, partition
from hwcheck.mappers.reach import box_split, flat_indices
from hwcheck.profiles import load_profile


def discrete(profile: str):
    """The profile's core limits with discrete axons (what the general map counts)."""
    return replace(core_limits(load_profile(profile)), population_axons=False)


def iaf() -> nn.Module:
    return sl.IAFSqueeze(batch_size=1)


def sparse(layer: nn.Module, frac: float = 0.3, seed: int = 0) -> nn.Module:
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        layer.weight[torch.rand(layer.weight.shape, generator=g) < frac] = 0.0
    return layer


class TwoBranch(nn.Module):
    """Two neuron layers feeding one neuron layer through an addition of two convs."""

    def __init__(self) -> None:
        super().__init__()
        self.a, self.sa = nn.Conv2d(2, 3, 3, padding=1), iaf()
        self.b, self.sb = nn.Conv2d(2, 3, 1), iaf()
        self.ca, self.cb = sparse(nn.Conv2d(3, 4, 3, padding=1), seed=4), nn.Conv2d(3, 4, 3, padding=1)
        self.out = iaf()

    def forward(self, x):
        return self.out(self.ca(self.sa(self.a(x))) + self.cb(self.sb(self.b(x))))


class Concat(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.a, self.sa = nn.Conv2d(2, 3, 3, padding=1), iaf()
        self.b, self.sb = nn.Conv2d(2, 2, 3, padding=1), iaf()
        self.c, self.out = nn.Conv2d(5, 4, 3), iaf()

    def forward(self, x):
        return self.out(self.c(torch.cat([self.sa(self.a(x)), self.sb(self.b(x))], dim=1)))


STRUCTURES = {
    "conv stride/pad": (
        lambda: nn.Sequential(sparse(nn.Conv2d(3, 5, 3, stride=2, padding=1)), iaf()),
        (3, 9, 7),
    ),
    "conv dilation": (
        lambda: nn.Sequential(sparse(nn.Conv2d(2, 4, 3, dilation=2, padding=2), seed=1), iaf()),
        (2, 8, 8),
    ),
    "conv groups": (
        lambda: nn.Sequential(sparse(nn.Conv2d(4, 6, 3, groups=2, padding=1), seed=2), iaf()),
        (4, 6, 6),
    ),
    "depthwise": (
        lambda: nn.Sequential(sparse(nn.Conv2d(4, 4, 3, groups=4), seed=3), iaf()),
        (4, 7, 7),
    ),
    "conv1d": (
        lambda: nn.Sequential(sparse(nn.Conv1d(3, 4, 5, stride=2, padding=2), seed=5), iaf()),
        (3, 17),
    ),
    "rect kernel": (
        lambda: nn.Sequential(nn.Conv2d(2, 3, (2, 4), stride=(1, 3), padding=(1, 0)), iaf()),
        (2, 6, 11),
    ),
    "pool then padded conv": (
        lambda: nn.Sequential(
            nn.Conv2d(2, 3, 1), iaf(), sl.SumPool2d(2), sparse(nn.Conv2d(3, 4, 3, padding=1)), iaf()
        ),
        (2, 9, 8),  # 9 rows: the pool drops the last one
    ),
    "overlapping pool then unpadded conv": (
        lambda: nn.Sequential(
            nn.Conv2d(2, 3, 1), iaf(), nn.AvgPool2d(3, stride=2), nn.Conv2d(3, 4, 2), iaf()
        ),
        (2, 9, 9),
    ),
    "conv then pool": (
        lambda: nn.Sequential(sparse(nn.Conv2d(2, 4, 3, padding=1)), nn.AvgPool2d(2), iaf()),
        (2, 8, 8),
    ),
    "pool only": (
        lambda: nn.Sequential(nn.Conv2d(2, 3, 1), iaf(), nn.AvgPool2d(3, 2, padding=1), iaf()),
        (2, 7, 7),
    ),
    "pool ceil mode": (
        lambda: nn.Sequential(nn.Conv2d(2, 3, 1), iaf(), nn.AvgPool2d(2, ceil_mode=True), iaf()),
        (2, 7, 7),
    ),
    "pool flatten linear": (
        lambda: nn.Sequential(
            nn.Conv2d(2, 3, 1), iaf(), sl.SumPool2d(2), nn.Flatten(),
            sparse(nn.Linear(3 * 3 * 3, 7), 0.5), iaf(),
        ),
        (2, 7, 6),
    ),  # fmt: skip
    "sparse linear": (lambda: nn.Sequential(sparse(nn.Linear(20, 17), 0.6), iaf()), (20,)),
    "dense linear": (lambda: nn.Sequential(nn.Linear(20, 17), iaf()), (20,)),
    "readout": (lambda: nn.Sequential(nn.Linear(9, 12), iaf(), sparse(nn.Linear(12, 5))), (9,)),
    "weight chain": (
        lambda: nn.Sequential(nn.Linear(9, 12), sparse(nn.Linear(12, 5), 0.5), iaf()),
        (9,),
    ),
    "two branches": (TwoBranch, (2, 6, 6)),
    "fed straight through": (lambda: nn.Sequential(nn.Identity(), iaf(), nn.Dropout(), iaf()), (3, 4, 5)),
    "fed straight through, flat": (lambda: nn.Sequential(nn.Flatten(), iaf()), (2, 3, 4)),
}


def _check(pop, lim, rng, n_blocks=60):
    orders = ("C,H,W", "H,W,C") if len(pop.shape) >= 2 else ("C,H,W",)
    fast = pop.fast
    pop._syn, pop.fast = None, None
    general = pop.synapses_per_neuron().copy()
    pop._syn, pop.fast = None, fast
    assert np.array_equal(pop.synapses_per_neuron(), general), pop.name
    for order in orders:
        perm = pop.order(order)
        blocks = [(0, pop.n), (0, 1), (pop.n - 1, pop.n)]
        for _ in range(n_blocks):
            a = int(rng.integers(0, pop.n))
            blocks.append((a, int(rng.integers(a + 1, pop.n + 1))))
        for a, e in blocks:
            got = _evaluate(pop, perm, [(a, e)], lim, order)[0]
            pop.fast = None
            want = _evaluate(pop, perm, [(a, e)], lim, order)[0]
            pop.fast = fast
            assert (got.axons_in, got.synapses, got.synapse_bits) == (
                want.axons_in,
                want.synapses,
                want.synapse_bits,
            ), (pop.name, order, a, e)
            got_in, want_in = got.inputs(), want.inputs()
            assert set(got_in) <= set(want_in)
            for src, idx in want_in.items():
                mine = got_in.get(src, np.zeros(0, np.int64))
                mine = flat_indices(mine, pop.sources[src])
                if len(idx) or len(mine):
                    assert np.array_equal(mine, idx), (pop.name, src, order, a, e)


@pytest.mark.parametrize("name", list(STRUCTURES))
def test_closed_form_reach_equals_the_general_map(name):
    make, shape = STRUCTURES[name]
    torch.manual_seed(0)
    graph = describe(make(), shape)
    pops, _, _ = build_populations(graph)
    assert all(p.fast is not None for p in pops), [p.name for p in pops if p.fast is None]
    rng = np.random.default_rng(len(name))
    for profile in ("loihi", "truenorth"):
        lim = discrete(profile)
        for pop in pops:
            _check(pop, lim, rng)


def test_recurrent_layer_has_a_closed_form():
    snntorch = pytest.importorskip("snntorch")
    torch.manual_seed(0)

    class Net(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.fc = nn.Linear(6, 8)
            self.lif = snntorch.RLeaky(beta=0.9, linear_features=8, init_hidden=True)
            with torch.no_grad():
                self.lif.recurrent.weight[torch.rand(8, 8) < 0.5] = 0.0

        def forward(self, x):
            return self.lif(self.fc(x))

    graph = describe(Net(), (6,))
    pops, _, _ = build_populations(graph)
    pop = next(p for p in pops if p.name.endswith("lif"))
    assert pop.fast is not None and pop.name in pop.sources
    _check(pop, discrete("loihi"), np.random.default_rng(1))


def test_concatenation_uses_the_general_map_and_still_partitions():
    graph = describe(Concat(), (2, 6, 6))
    pops, _, _ = build_populations(graph)
    pop = next(p for p in pops if p.name == "out")
    assert pop.fast is None
    lim = core_limits(load_profile("truenorth"))
    cores = partition(pop, lim)
    assert sum(c.neurons for c in cores) == pop.n


@pytest.mark.parametrize("order", ["C,H,W", "H,W,C"])
def test_boxes_cover_each_block_exactly_once(order):
    shape = (3, 4, 5)
    c, h, w = shape
    flat = np.arange(c * h * w).reshape(shape)
    seq = flat.reshape(-1) if order == "C,H,W" else flat.reshape(c, -1).T.reshape(-1)
    rng = np.random.default_rng(0)
    for _ in range(300):
        a = int(rng.integers(0, len(seq)))
        e = int(rng.integers(a + 1, len(seq) + 1))
        got = np.concatenate(
            [flat[c0:c1, y0:y1, x0:x1].reshape(-1) for c0, c1, y0, y1, x0, x1 in box_split(order, a, e, shape)]
        )
        assert np.array_equal(np.sort(got), np.sort(seq[a:e]))


@pytest.mark.parametrize("stride", [1, 2])
def test_shifted_blocks_reuse_counts_exactly(stride):
    """Blocks of one size slid across a larger plane hit the shift cache (and two dense layers
    of one geometry share it); every hit must equal the general map's count."""
    torch.manual_seed(0)
    model = nn.Sequential(
        nn.Conv2d(3, 4, 3, stride=stride, padding=1), iaf(), nn.Conv2d(4, 4, 3, padding=1), iaf(),
        nn.Conv2d(4, 4, 3, padding=1), iaf(),
    )  # fmt: skip
    pops, _, _ = build_populations(describe(model, (3, 14, 13)))
    assert all(p.fast is not None for p in pops)
    lim = discrete("loihi")
    for pop in pops:
        fast = pop.fast
        for order in ("C,H,W", "H,W,C"):
            perm = pop.order(order)
            for k in (5, 13, 30):
                for a in range(0, pop.n - k, 3):
                    got = _evaluate(pop, perm, [(a, a + k)], lim, order)[0]
                    pop.fast = None
                    want = _evaluate(pop, perm, [(a, a + k)], lim, order)[0]
                    pop.fast = fast
                    assert (got.axons_in, got.synapses, got.synapse_bits) == (
                        want.axons_in, want.synapses, want.synapse_bits,
                    ), (pop.name, order, a, k)  # fmt: skip
                    src = next(iter(pop.sources))
                    mine = flat_indices(got.inputs()[src], pop.sources[src])
                    assert np.array_equal(mine, want.inputs()[src])


@pytest.mark.parametrize("stride", [1, 2])
def test_shifted_blocks_reuse_population_counts_exactly(stride):
    """Read through population axons (Loihi), the weight lists a block shares are cached with
    its counts: every cached count must equal one computed afresh for that block."""
    torch.manual_seed(0)
    model = nn.Sequential(
        nn.Conv2d(3, 4, 3, stride=stride, padding=1), iaf(), nn.Conv2d(4, 5, 3, padding=1), iaf(),
        sparse(nn.Conv2d(5, 4, 3, padding=1), seed=2), iaf(),
    )  # fmt: skip
    pops, _, _ = build_populations(describe(model, (3, 14, 13)))
    lim = replace(core_limits(load_profile("loihi")), population_base=16)  # windows matter
    assert lim.population_axons
    for pop in pops:
        for order in ("C,H,W", "H,W,C"):
            perm = pop.order(order)
            for k in (5, 13, 30, 70):
                for a in range(0, pop.n - k, 7):
                    got = _evaluate(pop, perm, [(a, a + k)], lim, order)[0]
                    for t in pop.fast.terms:
                        t._cache = {}
                    want = _evaluate(pop, perm, [(a, a + k)], lim, order)[0]
                    assert (got.axons_in, got.synapses, got.synapse_bits) == (
                        want.axons_in, want.synapses, want.synapse_bits,
                    ), (pop.name, order, a, k)  # fmt: skip
