"""The per-tensor reductions behind every activity figure, against float64 brute force.

The counter takes each tensor's column sums, min/max, nonzero count and 0/1 test from as few
passes as it can (float32 sums only for whole numbers, block passes through scratch buffers);
these tests pin each path to the exact answer, at block edges and for values that a float32
sum or a careless 0/1 test would get wrong.
"""

from __future__ import annotations

import pytest
import torch

from hwcheck.activity import _BLOCK, _TensorStats


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
    assert st.binary(t) is binary
    assert st.whole(t) is binary


@pytest.mark.parametrize("fill, binary", [(0.0, True), (1.0, True), (0.25, False), (2.0, False)])
def test_binary_from_min_and_max_alone(fill: float, binary: bool) -> None:
    t = torch.full((4, 5), fill)
    assert _TensorStats(t).binary(t) is binary


def test_nonfinite_values_are_never_whole_or_binary() -> None:
    for bad in (float("nan"), float("inf")):
        t = torch.zeros(10, 10)
        t[3, 3] = bad
        st = _TensorStats(t)
        assert not st.finite(t) and not st.whole(t) and not st.binary(t)


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
