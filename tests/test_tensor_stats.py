"""The per-tensor reductions behind every activity figure, against float64 brute force.

The counter takes each tensor's column sums, min/max, nonzero count and 0/1 test from as few
passes as it can (float32 sums only for whole numbers, block passes through scratch buffers);
these tests pin each path to the exact answer, at block edges and for values that a float32
sum or a careless 0/1 test would get wrong. Every test runs twice: with the compiled one-pass
kernels of :mod:`hwcheck.kernels` (where a C compiler is found) and with torch alone.
"""

from __future__ import annotations

import pytest
import torch

from hwcheck import kernels
from hwcheck.activity import _BLOCK, _SMALL, _TensorStats


@pytest.fixture(autouse=True, params=["kernels", "torch"])
def mode(request, monkeypatch, tmp_path_factory):
    """Both reduction paths; the kernels are built once into a shared temporary cache."""
    kernels.reset()
    if request.param == "torch":
        monkeypatch.setenv("HWCHECK_KERNELS", "0")
    else:
        monkeypatch.setenv("HWCHECK_CACHE", str(tmp_path_factory.getbasetemp() / "kernels"))
        if not kernels.available():
            pytest.skip("no C compiler: the kernels cannot be built here")
    yield request.param
    kernels.reset()


def _ref_colsum(t: torch.Tensor, features: int, absolute: bool = False) -> torch.Tensor:
    t64 = t.double().reshape(-1, features)
    return (t64.abs() if absolute else t64).sum(0)


CASES = {
    "binary": lambda g: (torch.rand(40, 3, 17, 19, generator=g) < 0.1).float(),
    "multi-spike": lambda g: torch.randint(0, 7, (12, 5, 33), generator=g).float(),
    "signed spikes": lambda g: torch.randint(-2, 3, (9, 4, 30), generator=g).float(),
    "analog": lambda g: torch.randn(16, 6, 21, generator=g),
    "analog nonneg": lambda g: torch.rand(16, 6, 21, generator=g) * 3,
    "long rows": lambda g: torch.randint(0, 2, (3, _BLOCK + 77), generator=g).float(),
    "long analog rows": lambda g: torch.randn(2, _BLOCK + 5, generator=g),
    "many rows": lambda g: torch.randint(0, 3, (_BLOCK // 8 + 3, 9), generator=g).float(),
    "float64": lambda g: torch.randn(7, 11, generator=g, dtype=torch.float64),
}


@pytest.mark.parametrize("case", list(CASES))
@pytest.mark.parametrize("integral", [False, True])
def test_column_sums_match_float64(case: str, integral: bool) -> None:
    t = CASES[case](torch.Generator().manual_seed(0))
    features = t[0].numel()
    if integral and not torch.equal(t, t.round()):
        pytest.skip("spike tensors hold whole counts")
    st = _TensorStats(t)
    st.integral = integral
    st.prime(t, features)
    c = st.colsum(t, features)
    assert c.dtype == torch.float64 and c.shape == (features,)
    torch.testing.assert_close(c, _ref_colsum(t, features), rtol=1e-12, atol=0)
    a = st.abs_colsum(t, features)
    torch.testing.assert_close(a, _ref_colsum(t, features, absolute=True), rtol=1e-12, atol=0)
    lo, hi = st.minmax(t)
    assert (lo, hi) == (float(t.min()), float(t.max()))
    assert st.nnz(t) == float(torch.count_nonzero(t))


def test_whole_numbers_sum_exactly_beyond_float32_rounding() -> None:
    # 3000 rows of 4097: float32 partial sums of these would still be exact, but 1 + 2**-23
    # values are not whole and must not take the float32 path
    t = torch.full((3000, 2), 4097.0)
    st = _TensorStats(t)
    assert st.colsum(t, 2).tolist() == [3000 * 4097.0] * 2
    t2 = torch.full((3000, 2), 1 + 2**-23)
    exact = 3000 * (1 + 2**-23)
    assert _TensorStats(t2).colsum(t2, 2).tolist() == pytest.approx([exact] * 2, rel=1e-15)


@pytest.mark.parametrize(
    "value, binary",
    [(0.5, False), (1 - 2**-24, False), (1e-40, False), (2**-30, False), (1.0, True), (-0.0, True)],
)
def test_binary_test_sees_one_odd_value(value: float, binary: bool) -> None:
    g = torch.Generator().manual_seed(1)
    t = (torch.rand(50, _BLOCK // 40, generator=g) < 0.3).float()  # spans several blocks
    t.view(-1)[-3] = value  # in the last block
    st = _TensorStats(t)
    st.prime(t, t.shape[1])
    assert st.binary(t) is binary
    assert st.whole(t) is binary


@pytest.mark.parametrize("fill, binary", [(0.0, True), (1.0, True), (0.25, False), (2.0, False)])
def test_binary_from_min_and_max_alone(fill: float, binary: bool) -> None:
    t = torch.full((4, 5), fill)
    assert _TensorStats(t).binary(t) is binary


def test_nonfinite_values_are_never_whole_or_binary() -> None:
    for bad in (float("nan"), float("inf"), -float("inf")):
        for shape in ((10, 10), (40, _SMALL // 10)):  # small: torch; large: the kernel's pass
            t = torch.zeros(shape)
            t[3, 3] = bad
            st = _TensorStats(t)
            st.prime(t, shape[1])
            assert not st.finite(t) and not st.whole(t) and not st.binary(t)
            assert st.nnz(t) == 1.0


def test_nonzero_count_over_many_blocks_and_negative_zero() -> None:
    g = torch.Generator().manual_seed(2)
    t = torch.randn(3 * _BLOCK + 11, generator=g) * (torch.rand(3 * _BLOCK + 11, generator=g) < 0.4)
    t[:5] = -0.0  # counts as zero
    assert _TensorStats(t).nnz(t) == float(torch.count_nonzero(t))


def test_non_contiguous_tensors() -> None:
    g = torch.Generator().manual_seed(3)
    base = torch.randint(0, 3, (6, 8, 10), generator=g).float()
    t = base.transpose(1, 2)
    st = _TensorStats(t)
    st.integral = True
    torch.testing.assert_close(st.colsum(t, 80), _ref_colsum(t.contiguous(), 80), rtol=0, atol=0)
    assert st.nnz(t) == float(torch.count_nonzero(t))
    assert st.whole(t)


LARGE = {
    "binary": lambda g: (torch.rand(40, 4, 33, 65, generator=g) < 0.1).float(),
    "multi-spike": lambda g: torch.randint(0, 7, (20, 3, 2000), generator=g).float(),
    "signed spikes": lambda g: torch.randint(-2, 3, (30, 1100), generator=g).float(),
    "analog": lambda g: torch.randn(16, 3001, generator=g),
    "analog sparse": lambda g: torch.randn(24, 2000, generator=g) * (torch.rand(24, 2000, generator=g) < 0.2),
    "whole, sums past 2**24": lambda g: torch.full((64, 300), 2.0**18),
    "negative zeros": lambda g: -(torch.rand(20, 1000, generator=g) < 0.5).float(),
    "huge values": lambda g: torch.full((20, 1000), 3e38),
}


@pytest.mark.parametrize("case", list(LARGE))
def test_one_pass_figures_equal_brute_force(case: str) -> None:
    """Tensors above the small-tensor size take the kernel's single pass (when built): every
    figure it yields equals float64 brute force, and the torch path gives the same."""
    t = LARGE[case](torch.Generator().manual_seed(4))
    assert t.numel() > _SMALL
    features = t[0].numel()
    st = _TensorStats(t)
    st.prime(t, features)
    torch.testing.assert_close(st.colsum(t, features), _ref_colsum(t, features), rtol=1e-12, atol=0)
    torch.testing.assert_close(st.abs_colsum(t, features), _ref_colsum(t, features, True), rtol=1e-12, atol=0)
    assert st.minmax(t) == (float(t.min()), float(t.max()))
    assert st.nnz(t) == float(torch.count_nonzero(t))
    assert st.whole(t) == bool(torch.equal(t, t.round()))
    assert st.binary(t) == bool(((t == 0) | (t == 1)).all())


def test_kernels_are_built_once_into_the_cache(tmp_path, monkeypatch, mode) -> None:
    if mode != "kernels":
        pytest.skip("about the compiled path")
    monkeypatch.setenv("HWCHECK_CACHE", str(tmp_path / "cache"))
    kernels.reset()
    assert kernels.available()
    built = kernels.library_path()
    assert built is not None and built.exists() and built.parent == tmp_path / "cache"
    stamp = built.stat().st_mtime_ns
    kernels.reset()
    assert kernels.available() and built.stat().st_mtime_ns == stamp
    assert [p.name for p in built.parent.iterdir()] == [built.name]  # no build folder left


def test_without_a_compiler_the_torch_path_answers(tmp_path, monkeypatch, mode) -> None:
    monkeypatch.setenv("HWCHECK_CACHE", str(tmp_path / "cache"))
    monkeypatch.setenv("CC", str(tmp_path / "no-such-compiler"))
    kernels.reset()
    assert not kernels.available()
    assert not (tmp_path / "cache").exists()
    t = torch.randint(0, 3, (30, 1000)).float()
    st = _TensorStats(t)
    st.prime(t, 1000)
    assert st.nnz(t) == float(torch.count_nonzero(t))
    torch.testing.assert_close(st.colsum(t, 1000), _ref_colsum(t, 1000), rtol=0, atol=0)


def test_an_analysis_is_the_same_with_and_without_kernels(monkeypatch, mode) -> None:
    if mode != "kernels":
        pytest.skip("compares the two paths")
    import sinabs.layers as sl
    from torch import nn

    import hwcheck

    torch.manual_seed(0)
    model = nn.Sequential(
        nn.Conv2d(2, 8, 3, padding=1, bias=False), sl.IAFSqueeze(batch_size=2, min_v_mem=-1.0),
        sl.SumPool2d(2), nn.Conv2d(8, 8, 3, padding=1, bias=False), sl.IAFSqueeze(batch_size=2),
        nn.Flatten(), nn.Linear(8 * 16 * 16, 10, bias=False), sl.IAFSqueeze(batch_size=2),
    )  # fmt: skip
    with torch.no_grad():
        for m in model:
            if isinstance(m, (nn.Conv2d, nn.Linear)):
                m.weight.mul_(4.0)
    x = (torch.rand(2 * 12, 2, 32, 32) < 0.2).float()
    fast = hwcheck.analyze(model, x).layers
    assert fast["spikes_out"].sum() > 0 and fast["neuron_updates_event"].sum() > 0
    monkeypatch.setenv("HWCHECK_KERNELS", "0")
    kernels.reset()
    slow = hwcheck.analyze(model, x).layers
    pd_testing = pytest.importorskip("pandas.testing")
    pd_testing.assert_frame_equal(fast, slow, check_exact=True)

