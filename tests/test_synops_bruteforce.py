"""Synapses, fan-in/out and synops of describe()/analyze() against a brute-force oracle.

The oracle (tests/conftest.py) lists every connection with plain loops over output positions,
kernel taps and pooling windows. Each configuration first checks the oracle against the layer's
own forward pass (so the oracle's geometry is right), then compares hwcheck to the oracle.
"""

from __future__ import annotations

import copy
import random
from typing import Any

import numpy as np
import pytest
import sinabs.layers as sl
import torch
from conftest import (
    chain_fan_out,
    conv_connections,
    expected_synops,
    linear_connections,
    pool2d_connections,
    pool2d_counts,
    pool_params,
    sparsify_,
    spikes,
)
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sinabs.activation import SingleSpike
from torch import nn

import hwcheck

B = 2  # samples per batch in these tests


# --------------------------------------------------------------------------- configurations


def _conv_cfgs(nd: int, n: int, seed: int) -> list[dict[str, Any]]:
    """Random conv configurations whose output is at least 1 wide."""
    rng = random.Random(seed)
    cfgs: list[dict[str, Any]] = []
    while len(cfgs) < n:
        g = rng.choice([1, 1, 1, 2, 3, "dw"])
        if g == "dw":
            cin = rng.randint(1, 3)
            groups, cout = cin, cin * rng.choice([1, 2])
        else:
            groups = int(g)
            cin, cout = groups * rng.randint(1, 2), groups * rng.randint(1, 2)
        k = tuple(rng.randint(1, 5) for _ in range(nd))
        dil = tuple(rng.choice([1, 1, 2]) for _ in range(nd))
        pad_kind = rng.choice(["int", "tuple", "same", "valid"])
        stride: Any = 1 if pad_kind == "same" else tuple(rng.choice([1, 2, 3]) for _ in range(nd))
        padding: Any = {
            "int": rng.randint(0, 2),
            "tuple": tuple(rng.randint(0, 2) for _ in range(nd)),
            "same": "same",
            "valid": "valid",
        }[pad_kind]
        size = tuple(rng.randint(4, 8 if nd == 2 else 12) for _ in range(nd))
        pads = (
            (0,) * nd
            if isinstance(padding, str)
            else (padding,) * nd
            if isinstance(padding, int)
            else padding
        )
        if padding != "same" and any(
            size[a] + 2 * pads[a] - dil[a] * (k[a] - 1) - 1 < 0 for a in range(nd)
        ):
            continue
        cfgs.append(
            dict(
                cin=cin,
                cout=cout,
                k=k,
                stride=stride,
                padding=padding,
                dilation=dil,
                groups=groups,
                size=size,
                bias=rng.random() < 0.5,
                seed=len(cfgs) + 100 * seed,
            )
        )
    return cfgs


# named cases that must be covered whatever the random draw gives
_NAMED_2D = [
    dict(cin=2, cout=3, k=(4, 4), stride=1, padding="same", dilation=(1, 1), groups=1, size=(6, 7)),
    dict(cin=2, cout=2, k=(2, 3), stride=1, padding="same", dilation=(2, 1), groups=2, size=(5, 6)),
    dict(cin=1, cout=2, k=(3, 3), stride=1, padding="same", dilation=(2, 2), groups=1, size=(6, 6)),
    dict(cin=3, cout=3, k=(3, 3), stride=(2, 2), padding=1, dilation=(1, 1), groups=3, size=(7, 8)),
    dict(cin=2, cout=4, k=(3, 3), stride=(3, 3), padding=2, dilation=(1, 1), groups=2, size=(8, 8)),
    dict(
        cin=2,
        cout=2,
        k=(5, 5),
        stride=(2, 3),
        padding="valid",
        dilation=(1, 1),
        groups=1,
        size=(8, 9),
    ),
    dict(cin=1, cout=1, k=(1, 1), stride=(1, 1), padding=0, dilation=(1, 1), groups=1, size=(3, 3)),
    dict(
        cin=2,
        cout=2,
        k=(3, 3),
        stride=(1, 1),
        padding=1,
        dilation=(1, 1),
        groups=1,
        size=(5, 5),
        padding_mode="circular",
    ),
    dict(
        cin=1,
        cout=2,
        k=(3, 2),
        stride=(2, 1),
        padding=(1, 1),
        dilation=(1, 2),
        groups=1,
        size=(6, 6),
        padding_mode="circular",
    ),
]
_NAMED_1D = [
    dict(cin=2, cout=2, k=(4,), stride=1, padding="same", dilation=(1,), groups=1, size=(9,)),
    dict(cin=2, cout=2, k=(3,), stride=1, padding="same", dilation=(2,), groups=2, size=(7,)),
    dict(cin=3, cout=6, k=(5,), stride=(3,), padding=2, dilation=(1,), groups=3, size=(11,)),
]
CONV2D = _conv_cfgs(2, 24, seed=1) + [
    dict(c, bias=True, seed=900 + i) for i, c in enumerate(_NAMED_2D)
]
CONV1D = _conv_cfgs(1, 12, seed=2) + [
    dict(c, bias=False, seed=950 + i) for i, c in enumerate(_NAMED_1D)
]


def _make_conv(cfg: dict[str, Any]) -> nn.Module:
    cls = nn.Conv2d if len(cfg["size"]) == 2 else nn.Conv1d
    conv = cls(
        cfg["cin"],
        cfg["cout"],
        cfg["k"],
        stride=cfg["stride"],
        padding=cfg["padding"],
        dilation=cfg["dilation"],
        groups=cfg["groups"],
        bias=cfg["bias"],
        padding_mode=cfg.get("padding_mode", "zeros"),
    )
    return sparsify_(conv, cfg["seed"])


def _cfg_id(cfg: dict[str, Any]) -> str:
    return "c{cin}-{cout}_k{k}_s{stride}_p{padding}_d{dilation}_g{groups}_{size}".format(
        **cfg
    ).replace(" ", "") + ("_" + cfg["padding_mode"] if "padding_mode" in cfg else "")


def _check_oracle(module: nn.Module, conns: Any, x: torch.Tensor) -> None:
    """The oracle's connections reproduce the layer's own forward pass (bias removed)."""
    module = copy.deepcopy(module).double()
    with torch.no_grad():
        y = module(x[:1].double())[0]
        if getattr(module, "bias", None) is not None:
            shape = (-1,) + (1,) * (y.dim() - 1)
            y = y - module.bias.double().reshape(shape)
    np.testing.assert_allclose(conns.apply(x[0].numpy()), y.numpy(), rtol=1e-9, atol=1e-9)


def _check_stats(node: hwcheck.LayerNode, conns: Any) -> None:
    want = conns.stats()
    got = {k: getattr(node, k) for k in want}
    assert got == want, f"{node.name}: describe() {got} != brute force {want}"


def _one_layer(module: nn.Module, in_shape: tuple[int, ...], seed: int) -> None:
    model = nn.Sequential(module)
    conns = (
        linear_connections(module)
        if isinstance(module, nn.Linear)
        else conv_connections(module, in_shape)
    )
    x = spikes((B, *in_shape), seed)
    _check_oracle(module, conns, x)
    graph = hwcheck.describe(model, in_shape)
    node = graph["0"]
    assert node.in_shape == tuple(in_shape)
    assert node.out_shape == conns.out_shape
    _check_stats(node, conns)
    row = hwcheck.analyze(model, x, progress=False).layers.loc["0"]
    assert row["events_in"] == pytest.approx(float(x.sum()) / B)
    assert row["synops"] == pytest.approx(expected_synops(x, conns.fan_out(), 1, B), rel=1e-12)
    assert row["synops_effective"] == pytest.approx(
        expected_synops(x, conns.fan_out(nonzero=True), 1, B), rel=1e-12
    )


# --------------------------------------------------------------------------- single weight layers


@pytest.mark.parametrize("cfg", CONV2D, ids=_cfg_id)
def test_conv2d_matches_bruteforce(cfg: dict[str, Any]) -> None:
    _one_layer(_make_conv(cfg), (cfg["cin"], *cfg["size"]), cfg["seed"])


@pytest.mark.parametrize("cfg", CONV1D, ids=_cfg_id)
def test_conv1d_matches_bruteforce(cfg: dict[str, Any]) -> None:
    _one_layer(_make_conv(cfg), (cfg["cin"], *cfg["size"]), cfg["seed"])


@pytest.mark.parametrize(
    "n_in,n_out,seed", [(1, 1, 0), (5, 3, 1), (12, 7, 2), (3, 9, 3), (8, 1, 4)]
)
def test_linear_matches_bruteforce(n_in: int, n_out: int, seed: int) -> None:
    _one_layer(sparsify_(nn.Linear(n_in, n_out, bias=seed % 2 == 0), seed), (n_in,), seed)


def test_zero_weights_lower_effective_counts() -> None:
    """A layer with many zero weights: synops_effective < synops, and both match the oracle."""
    conv = sparsify_(nn.Conv2d(2, 3, 3, padding=1, bias=False), seed=7, p_zero=0.7)
    conns = conv_connections(conv, (2, 5, 5))
    st_ = conns.stats()
    assert st_["synapses_nonzero"] < st_["synapses"]
    _one_layer(conv, (2, 5, 5), 7)


def test_all_zero_weights() -> None:
    conv = nn.Conv2d(1, 2, 3, bias=False)
    nn.init.zeros_(conv.weight)
    model = nn.Sequential(conv)
    x = spikes((B, 1, 5, 5), 3, p=0.6)
    node = hwcheck.describe(model, (1, 5, 5))["0"]
    assert (
        node.synapses == 2 * 9 * 9 and node.synapses_nonzero == 0 and node.fan_out_max_nonzero == 0
    )
    row = hwcheck.analyze(model, x).layers.loc["0"]
    assert row["synops"] > 0 and row["synops_effective"] == 0


# --------------------------------------------------------------------------- pools in front


def _pool_chain_check(
    model: nn.Module,
    in_shape: tuple[int, ...],
    stages: list[Any],
    node_name: str,
    seed: int,
    pool_names: list[str] | None = None,
) -> None:
    """Events counted before the pools; synops = events x fan-out through all stages."""
    x = spikes((B, *in_shape), seed)
    graph = hwcheck.describe(model, in_shape)
    node = graph[node_name]
    _check_stats(node, stages[-1])
    for pname, pst in zip(pool_names or [], stages, strict=False):
        pnode = graph[pname]
        want = pst.stats()
        assert (pnode.fan_in_max, pnode.fan_out_max) == (want["fan_in_max"], want["fan_out_max"]), (
            pname
        )
        assert pnode.out_shape == pst.out_shape
    row = hwcheck.analyze(model, x).layers.loc[node_name]
    assert row["events_in"] == pytest.approx(float(x.sum()) / B)
    assert row["synops"] == pytest.approx(
        expected_synops(x, chain_fan_out(stages), 1, B), rel=1e-12
    )
    assert row["synops_effective"] == pytest.approx(
        expected_synops(x, chain_fan_out(stages, nonzero_last=True), 1, B), rel=1e-12
    )


POOLS = [
    ("avg2", lambda: nn.AvgPool2d(2), (2, 6, 6)),
    ("avg2_tuple", lambda: nn.AvgPool2d((2, 2), stride=2), (2, 6, 7)),
    ("avg3_s2_p1", lambda: nn.AvgPool2d(3, stride=2, padding=1), (2, 7, 7)),
    ("avg2_p1_nopad", lambda: nn.AvgPool2d(2, 2, padding=1, count_include_pad=False), (2, 5, 6)),
    ("avg3_s2_ceil", lambda: nn.AvgPool2d(3, stride=2, ceil_mode=True), (2, 8, 8)),
    ("avg2_ceil", lambda: nn.AvgPool2d(2, ceil_mode=True), (1, 5, 7)),
    (
        "avg3_s2_p1_ceil_nopad",
        lambda: nn.AvgPool2d(3, stride=2, padding=1, ceil_mode=True, count_include_pad=False),
        (2, 6, 6),
    ),
    ("avg3_s1_overlap", lambda: nn.AvgPool2d(3, stride=1), (2, 6, 6)),
    ("avg23_s12_overlap", lambda: nn.AvgPool2d((2, 3), stride=(1, 2)), (1, 6, 7)),
    (
        "avg3_s1_p1_overlap_nopad",
        lambda: nn.AvgPool2d(3, stride=1, padding=1, count_include_pad=False),
        (2, 5, 5),
    ),
    ("sum2", lambda: sl.SumPool2d(2), (2, 6, 6)),
    ("sum3_s2", lambda: sl.SumPool2d(3, stride=2), (2, 7, 7)),
    ("sum2_ceil", lambda: sl.SumPool2d(2, ceil_mode=True), (2, 5, 5)),
    ("sum2_s1_overlap", lambda: sl.SumPool2d(2, stride=1), (1, 5, 5)),
]


def _check_pool_oracle(pool: nn.Module, conns: Any, in_shape: tuple[int, ...], seed: int) -> None:
    """Window sums of the oracle equal the pool's forward (avg: x divisor for its mode)."""
    x = spikes((1, *in_shape), seed).double()
    with torch.no_grad():
        y = pool(x)[0].numpy()
    sums = conns.apply(x[0].numpy())
    if isinstance(pool, nn.AvgPool2d):
        if pool.count_include_pad:
            # compare against the same geometry with the in-bounds divisor
            ref = nn.AvgPool2d(pool.kernel_size, pool.stride, pool.padding, pool.ceil_mode, False)
            with torch.no_grad():
                y = ref(x)[0].double().numpy()
        y = y * pool2d_counts(pool, in_shape)
    elif isinstance(pool, nn.LPPool2d) and pool.ceil_mode:
        # sinabs SumPool2d is LPPool2d(1): avg_pool x k*k, and torch's ceil-mode windows divide
        # by their in-bounds size, so a partial window's *value* is scaled up by k*k / size.
        # The connections (which events reach which window) are still the sum geometry.
        kh, kw = pool_params(pool)[0]
        y = y / (kh * kw) * pool2d_counts(pool, in_shape)
    np.testing.assert_allclose(sums, y, rtol=1e-9, atol=1e-9)


@pytest.mark.parametrize("name,make_pool,in_shape", POOLS, ids=[p[0] for p in POOLS])
def test_pool_then_conv(name: str, make_pool: Any, in_shape: tuple[int, ...]) -> None:
    pool = make_pool()
    pconns = pool2d_connections(pool, in_shape)
    _check_pool_oracle(pool, pconns, in_shape, seed=11)
    conv = sparsify_(nn.Conv2d(in_shape[0], 3, 3, padding=1, stride=1, bias=False), seed=12)
    cconns = conv_connections(conv, pconns.out_shape)
    model = nn.Sequential(pool, conv)
    _pool_chain_check(model, in_shape, [pconns, cconns], "1", seed=13, pool_names=["0"])


@pytest.mark.parametrize("name,make_pool,in_shape", POOLS[::2], ids=[p[0] for p in POOLS[::2]])
def test_pool_flatten_linear(name: str, make_pool: Any, in_shape: tuple[int, ...]) -> None:
    pool = make_pool()
    pconns = pool2d_connections(pool, in_shape)
    lin = sparsify_(nn.Linear(pconns.n_out, 4), seed=21)
    model = nn.Sequential(pool, nn.Flatten(), lin)
    _pool_chain_check(
        model, in_shape, [pconns, linear_connections(lin)], "2", seed=22, pool_names=["0"]
    )


class PoolViewLinear(nn.Module):
    """Pool, then x.view(B, -1) inside forward (no Flatten module), then Linear."""

    def __init__(self, pool: nn.Module, n: int) -> None:
        super().__init__()
        self.pool = pool
        self.fc = nn.Linear(n, 3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.pool(x)
        return self.fc(y.view(y.shape[0], -1))


@pytest.mark.parametrize("name,make_pool,in_shape", POOLS[1::3], ids=[p[0] for p in POOLS[1::3]])
def test_pool_view_linear(name: str, make_pool: Any, in_shape: tuple[int, ...]) -> None:
    pool = make_pool()
    pconns = pool2d_connections(pool, in_shape)
    model = PoolViewLinear(pool, pconns.n_out)
    sparsify_(model.fc, seed=31)
    _pool_chain_check(
        model, in_shape, [pconns, linear_connections(model.fc)], "fc", seed=32, pool_names=["pool"]
    )


def test_two_pools_then_conv() -> None:
    """Two pools in a row, the second overlapping and padded without counting the padding."""
    in_shape = (2, 8, 8)
    p1, p2 = nn.AvgPool2d(2), nn.AvgPool2d(3, stride=1, padding=1, count_include_pad=False)
    s1 = pool2d_connections(p1, in_shape)
    s2 = pool2d_connections(p2, s1.out_shape)
    conv = sparsify_(nn.Conv2d(2, 2, 3, stride=2, bias=False), seed=41)
    s3 = conv_connections(conv, s2.out_shape)
    model = nn.Sequential(p1, p2, conv)
    _pool_chain_check(model, in_shape, [s1, s2, s3], "2", seed=42, pool_names=["0", "1"])


@pytest.mark.parametrize(
    "make_id", [nn.Identity, lambda: nn.Dropout(0.5)], ids=["identity", "dropout"]
)
def test_identity_in_pool_chain(make_id: Any) -> None:
    """An Identity / Dropout (eval) between two pools and the conv: the chain goes through it."""
    in_shape = (2, 8, 8)
    p1, p2 = nn.AvgPool2d(2), sl.SumPool2d(2, stride=1)
    s1 = pool2d_connections(p1, in_shape)
    s2 = pool2d_connections(p2, s1.out_shape)
    conv = sparsify_(nn.Conv2d(2, 2, 3, bias=False), seed=43)
    s3 = conv_connections(conv, s2.out_shape)
    model = nn.Sequential(p1, make_id(), p2, make_id(), conv).eval()
    _pool_chain_check(model, in_shape, [s1, s2, s3], "4", seed=44, pool_names=["0", "2"])


def test_sumpool_avgpool_flatten_linear() -> None:
    in_shape = (1, 9, 9)
    p1, p2 = sl.SumPool2d(3, stride=2), nn.AvgPool2d(2, ceil_mode=True)
    s1 = pool2d_connections(p1, in_shape)
    s2 = pool2d_connections(p2, s1.out_shape)
    lin = sparsify_(nn.Linear(s2.n_out, 5), seed=51)
    model = nn.Sequential(p1, p2, nn.Flatten(), lin)
    _pool_chain_check(model, in_shape, [s1, s2, linear_connections(lin)], "3", seed=52)


def test_maxpool_events_counted_after_pool() -> None:
    """MaxPool is not linear: events are counted at the conv's own input (the pool's output)."""
    in_shape = (2, 6, 6)
    conv = sparsify_(nn.Conv2d(2, 3, 3, padding=1, bias=False), seed=61)
    model = nn.Sequential(nn.MaxPool2d(2), conv)
    x = spikes((B, *in_shape), 62)
    with torch.no_grad():
        pooled = nn.functional.max_pool2d(x, 2)
    conns = conv_connections(conv, (2, 3, 3))
    row = hwcheck.analyze(model, x).layers.loc["1"]
    assert row["events_in"] == pytest.approx(float(pooled.sum()) / B)
    assert row["synops"] == pytest.approx(expected_synops(pooled, conns.fan_out(), 1, B))


# --------------------------------------------------------------------------- dense ops


def test_macs_vs_acs_split() -> None:
    """Binary input: every dense op is an accumulate; a multi-spike input makes them MACs."""
    conv = nn.Conv2d(1, 2, 3, padding=1, bias=False)
    model = nn.Sequential(conv)
    syn = conv_connections(conv, (1, 4, 4)).stats()["synapses"]
    binary = spikes((B, 1, 4, 4), 71, max_value=1)
    assert set(binary.unique().tolist()) == {0.0, 1.0}
    row = hwcheck.analyze(model, binary).layers.loc["0"]
    assert (row["ops_dense"], row["acs"], row["macs"]) == (syn, syn, 0)
    multi = binary.clone()
    multi[0, 0, 0, 0] = 2.0
    row = hwcheck.analyze(model, multi).layers.loc["0"]
    assert (row["ops_dense"], row["acs"], row["macs"]) == (syn, 0, syn)


@pytest.mark.parametrize("T", [1, 4])
def test_ops_dense_is_synapses_times_steps_squeeze(T: int) -> None:
    conv = sparsify_(nn.Conv2d(2, 3, 3, stride=2, padding=1, bias=False), seed=80)
    lin = sparsify_(nn.Linear(3 * 3 * 3, 4, bias=False), seed=81)
    iaf = dict(batch_size=B, spike_fn=SingleSpike)  # binary spikes into the Linear
    model = nn.Sequential(conv, sl.IAFSqueeze(**iaf), nn.Flatten(), lin, sl.IAFSqueeze(**iaf))
    x = spikes((B * T, 2, 5, 5), 81, max_value=1)
    a = hwcheck.analyze(model, x)
    syn_c = conv_connections(conv, (2, 5, 5)).stats()["synapses"]
    assert a.n_samples == B and a.n_steps == T
    assert a.layers.loc["0", "ops_dense"] == syn_c * T
    assert a.layers.loc["3", "ops_dense"] == 27 * 4 * T
    assert a.layers.loc["0", "acs"] == syn_c * T  # binary input spikes
    assert a.layers.loc["3", "acs"] == 27 * 4 * T  # IAF output spikes are binary here
    assert a.summary()["ops_dense"] == (syn_c + 27 * 4) * T


def test_ops_dense_bt_layout_linear() -> None:
    """(B, T, F) into a Linear with sinabs IAF (non-squeeze): T steps per sample."""
    T, F = 6, 5
    lin = sparsify_(nn.Linear(F, 3), seed=91)
    model = nn.Sequential(lin, sl.IAF())
    x = spikes((B, T, F), 92)
    a = hwcheck.analyze(model, x)
    assert a.graph.layout == "BT" and a.n_steps == T
    row = a.layers.loc["0"]
    assert row["ops_dense"] == F * 3 * T
    assert row["synops"] == pytest.approx(
        expected_synops(x, linear_connections(lin).fan_out(), 2, B)
    )


# --------------------------------------------------------------------------- property tests


def _divisors(n: int) -> list[int]:
    return [d for d in range(1, n + 1) if n % d == 0]


@st.composite
def conv2d_params(draw: Any) -> dict[str, Any]:
    groups = draw(st.sampled_from([1, 1, 2, 3]))
    cin = groups * draw(st.integers(1, 2))
    cout = groups * draw(st.integers(1, 2))
    k = (draw(st.integers(1, 4)), draw(st.integers(1, 4)))
    d = (draw(st.integers(1, 2)), draw(st.integers(1, 2)))
    s = (draw(st.integers(1, 3)), draw(st.integers(1, 3)))
    p = (draw(st.integers(0, 2)), draw(st.integers(0, 2)))
    h = draw(st.integers(max(1, d[0] * (k[0] - 1) + 1 - 2 * p[0]), 8))
    w = draw(st.integers(max(1, d[1] * (k[1] - 1) + 1 - 2 * p[1]), 8))
    return dict(
        cin=cin,
        cout=cout,
        k=k,
        stride=s,
        padding=p,
        dilation=d,
        groups=groups,
        size=(h, w),
        bias=False,
        seed=draw(st.integers(0, 10_000)),
    )


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(conv2d_params())
def test_property_conv2d(cfg: dict[str, Any]) -> None:
    _one_layer(_make_conv(cfg), (cfg["cin"], *cfg["size"]), cfg["seed"])


@st.composite
def pool_conv_params(draw: Any) -> dict[str, Any]:
    k = draw(st.integers(1, 3))
    s = draw(st.integers(1, 3))
    p = draw(st.integers(0, k // 2))
    ceil_mode = draw(st.booleans())
    cip = draw(st.booleans())
    h = draw(st.integers(max(k - 2 * p, 1), 8))
    w = draw(st.integers(max(k - 2 * p, 1), 8))
    ck = draw(st.integers(1, 3))
    cp = draw(st.integers(0, 1))
    cs = draw(st.integers(1, 2))
    return dict(
        k=k,
        s=s,
        p=p,
        ceil=ceil_mode,
        cip=cip,
        h=h,
        w=w,
        ck=ck,
        cp=cp,
        cs=cs,
        seed=draw(st.integers(0, 10_000)),
    )


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(pool_conv_params())
def test_property_avgpool_conv(c: dict[str, Any]) -> None:
    in_shape = (2, c["h"], c["w"])
    pool = nn.AvgPool2d(c["k"], c["s"], c["p"], ceil_mode=c["ceil"], count_include_pad=c["cip"])
    pconns = pool2d_connections(pool, in_shape)
    _, ph, pw = pconns.out_shape
    if any(n + 2 * c["cp"] - c["ck"] < 0 for n in (ph, pw)):
        return  # conv would have no output
    _check_pool_oracle(pool, pconns, in_shape, c["seed"])
    conv = sparsify_(
        nn.Conv2d(2, 2, c["ck"], stride=c["cs"], padding=c["cp"], bias=False), c["seed"]
    )
    cconns = conv_connections(conv, pconns.out_shape)
    model = nn.Sequential(pool, conv)
    _pool_chain_check(model, in_shape, [pconns, cconns], "1", seed=c["seed"] + 1, pool_names=["0"])
