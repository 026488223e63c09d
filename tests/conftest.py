"""Shared test helpers: an independent brute-force oracle for connections and synops.

Everything here is plain Python loops over every output position, kernel tap and pooling window.
It reads only a layer's hyper-parameters and weights; it never calls hwcheck, a transposed
convolution or autograd, so it can be used as the expected value for hwcheck's counts.

Positions are flat row-major indices into a feature shape without batch/time dims, so a
``Flatten`` / ``view`` between a pool and a Linear keeps the index unchanged.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from itertools import product

import numpy as np
import pytest
import torch
from torch import nn

# (input position, output position, weight); positions are flat row-major indices
Conn = tuple[int, int, float]


@dataclass
class Connections:
    """All connections of one linear layer (or sum-pool geometry) for one sample and step."""

    in_shape: tuple[int, ...]
    out_shape: tuple[int, ...]
    conns: list[Conn]

    @property
    def n_in(self) -> int:
        return math.prod(self.in_shape)

    @property
    def n_out(self) -> int:
        return math.prod(self.out_shape)

    def fan_out(self, nonzero: bool = False) -> list[int]:
        """Connections leaving each input position."""
        fo = [0] * self.n_in
        for i, _, w in self.conns:
            if not nonzero or w != 0:
                fo[i] += 1
        return fo

    def fan_in(self, nonzero: bool = False) -> list[int]:
        fi = [0] * self.n_out
        for _, o, w in self.conns:
            if not nonzero or w != 0:
                fi[o] += 1
        return fi

    def stats(self) -> dict[str, int]:
        """What describe() should report for this layer."""
        return {
            "synapses": len(self.conns),
            "synapses_nonzero": sum(1 for _, _, w in self.conns if w != 0),
            "fan_in_max": max(self.fan_in(), default=0),
            "fan_out_max": max(self.fan_out(), default=0),
            "fan_out_max_nonzero": max(self.fan_out(nonzero=True), default=0),
        }

    def apply(self, x: np.ndarray) -> np.ndarray:
        """y[o] = sum of w * x[i] over the connections (to check the oracle against forward())."""
        flat = np.asarray(x, dtype=np.float64).reshape(-1)
        y = np.zeros(self.n_out)
        for i, o, w in self.conns:
            y[o] += w * flat[i]
        return y.reshape(self.out_shape)


def _flat(idx: Sequence[int], shape: Sequence[int]) -> int:
    f = 0
    for i, n in zip(idx, shape, strict=True):
        f = f * n + i
    return f


def conv_pads(m: nn.Module) -> list[tuple[int, int]]:
    """(before, after) zero padding per spatial dim, as the conv applies it."""
    k, d = m.kernel_size, m.dilation
    if isinstance(m.padding, str):
        if m.padding == "valid":
            return [(0, 0)] * len(k)
        # 'same': total d*(k-1), the smaller half before
        return [
            (dd * (kk - 1) // 2, dd * (kk - 1) - dd * (kk - 1) // 2)
            for kk, dd in zip(k, d, strict=True)
        ]
    return [(p, p) for p in m.padding]


def conv_connections(m: nn.Module, in_shape: Sequence[int]) -> Connections:
    """Every (input, output, weight) of a Conv1d/Conv2d by looping over outputs and taps."""
    c_in, *sp = in_shape
    nd = len(sp)
    k, s, d = m.kernel_size, m.stride, m.dilation
    pads = conv_pads(m)
    circular = m.padding_mode == "circular"
    if m.padding_mode not in ("zeros", "circular"):
        raise NotImplementedError(m.padding_mode)
    out_sp = [
        (sp[a] + pads[a][0] + pads[a][1] - d[a] * (k[a] - 1) - 1) // s[a] + 1 for a in range(nd)
    ]
    c_out, g = m.out_channels, m.groups
    cin_g, cout_g = c_in // g, c_out // g
    w = m.weight.detach().double().numpy()
    out_shape = (c_out, *out_sp)
    conns: list[Conn] = []
    for o in range(c_out):
        grp = o // cout_g
        for op in product(*[range(n) for n in out_sp]):
            of = _flat((o, *op), out_shape)
            for cl in range(cin_g):
                ci = grp * cin_g + cl
                for tap in product(*[range(kk) for kk in k]):
                    ip = [op[a] * s[a] - pads[a][0] + tap[a] * d[a] for a in range(nd)]
                    if circular:
                        ip = [ip[a] % sp[a] for a in range(nd)]
                    elif not all(0 <= ip[a] < sp[a] for a in range(nd)):
                        continue
                    conns.append((_flat((ci, *ip), in_shape), of, float(w[(o, cl, *tap)])))
    return Connections(tuple(in_shape), out_shape, conns)


def linear_connections(m: nn.Linear, in_features: int | None = None) -> Connections:
    w = m.weight.detach().double().numpy()
    conns = [(i, o, float(w[o, i])) for o in range(m.out_features) for i in range(m.in_features)]
    return Connections((m.in_features,), (m.out_features,), conns)


def pool_out_len(n: int, k: int, s: int, p: int, ceil_mode: bool) -> int:
    """Output length of a pool (torch's rule: a ceil-mode window must start inside the input
    or the left padding)."""
    num = n + 2 * p - k
    out = (-(-num // s) if ceil_mode else num // s) + 1
    if ceil_mode and (out - 1) * s >= n + p:
        out -= 1
    return out


def pool_windows(n: int, k: int, s: int, p: int, ceil_mode: bool) -> list[list[int]]:
    """Input indices (in bounds) covered by each output window along one dim."""
    return [
        [i for i in range(o * s - p, o * s - p + k) if 0 <= i < n]
        for o in range(pool_out_len(n, k, s, p, ceil_mode))
    ]


def pool_params(m: nn.Module) -> tuple[tuple[int, ...], tuple[int, ...], tuple[int, ...], bool]:
    """kernel, stride, padding, ceil_mode of an AvgPool / SumPool (LPPool) as 2-tuples."""

    def two(v: object) -> tuple[int, ...]:
        return tuple(v) if isinstance(v, (tuple, list)) else (int(v), int(v))  # type: ignore[arg-type]

    k = two(m.kernel_size)
    s = m.stride if m.stride not in (None, (), []) else k
    return k, two(s), two(getattr(m, "padding", 0)), bool(getattr(m, "ceil_mode", False))


def pool2d_connections(m: nn.Module, in_shape: Sequence[int]) -> Connections:
    """Sum-pool geometry: each input reaches every window containing it, with weight 1."""
    c, h, w = in_shape
    k, s, p, ceil_mode = pool_params(m)
    wh = pool_windows(h, k[0], s[0], p[0], ceil_mode)
    ww = pool_windows(w, k[1], s[1], p[1], ceil_mode)
    out_shape = (c, len(wh), len(ww))
    conns: list[Conn] = []
    for ch in range(c):
        for oh, rows in enumerate(wh):
            for ow, cols in enumerate(ww):
                of = _flat((ch, oh, ow), out_shape)
                for ih in rows:
                    for iw in cols:
                        conns.append((_flat((ch, ih, iw), in_shape), of, 1.0))
    return Connections(tuple(in_shape), out_shape, conns)


def pool2d_counts(m: nn.Module, in_shape: Sequence[int]) -> np.ndarray:
    """Number of in-bounds elements in each window (the count_include_pad=False divisor)."""
    c, h, w = in_shape
    k, s, p, ceil_mode = pool_params(m)
    wh = pool_windows(h, k[0], s[0], p[0], ceil_mode)
    ww = pool_windows(w, k[1], s[1], p[1], ceil_mode)
    out = np.zeros((c, len(wh), len(ww)))
    for oh, rows in enumerate(wh):
        for ow, cols in enumerate(ww):
            out[:, oh, ow] = len(rows) * len(cols)
    return out


def chain_fan_out(stages: Sequence[Connections], nonzero_last: bool = False) -> list[int]:
    """Connections leaving each position of the first stage's input through all stages: an event
    reaches every position its connections reach, and each of those fans out further."""
    fo = stages[-1].fan_out(nonzero=nonzero_last)
    for st in reversed(stages[:-1]):
        assert st.n_out == len(fo), "stage shapes do not chain"
        prev = [0] * st.n_in
        for i, o, _ in st.conns:
            prev[i] += fo[o]
        fo = prev
    return fo


def expected_synops(x: torch.Tensor, fan_out: Sequence[int], lead: int, samples: int) -> float:
    """Per-sample synops: events summed over the lead (batch/time) dims times the fan-out."""
    xs = x.detach().double().sum(dim=tuple(range(lead))) if lead else x.detach().double()
    flat = xs.reshape(-1).tolist()
    assert len(flat) == len(fan_out)
    return sum(v * f for v, f in zip(flat, fan_out, strict=True)) / samples


def spikes(shape: Sequence[int], seed: int, p: float = 0.3, max_value: int = 3) -> torch.Tensor:
    """A random multi-spike integer tensor: values 0..max_value, about a fraction p nonzero."""
    g = torch.Generator().manual_seed(seed)
    mask = torch.rand(tuple(shape), generator=g) < p
    vals = torch.randint(1, max_value + 1, tuple(shape), generator=g).float()
    return vals * mask


def sparsify_(m: nn.Module, seed: int, p_zero: float = 0.3) -> nn.Module:
    """Zero a random fraction of a layer's weights in place (for synapses_nonzero)."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        w = m.weight
        w.copy_(torch.randn(w.shape, generator=g))
        w[torch.rand(w.shape, generator=g) < p_zero] = 0.0
    return m


def module_hooks(model: nn.Module) -> list[str]:
    """Names of modules that still have any forward (pre-)hook."""
    left = []
    for name, m in model.named_modules():
        if m._forward_hooks or m._forward_pre_hooks:
            left.append(name or "<model>")
        if getattr(m, "_forward_hooks_with_kwargs", None) or getattr(
            m, "_forward_pre_hooks_with_kwargs", None
        ):
            left.append(name or "<model>")
    return left


@pytest.fixture(autouse=True)
def _quiet_known_warnings():
    """torch warns about 'same' padding with even kernels; sinabs about deprecations."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*padding='same'.*")
        warnings.filterwarnings("ignore", category=DeprecationWarning, module="sinabs")
        yield


__all__ = [
    "Connections",
    "chain_fan_out",
    "conv_connections",
    "conv_pads",
    "expected_synops",
    "linear_connections",
    "module_hooks",
    "pool2d_connections",
    "pool2d_counts",
    "pool_out_len",
    "pool_windows",
    "sparsify_",
    "spikes",
]


def init_weights(model: nn.Module, seed: int, mean: float = 0.3, std: float = 0.5) -> nn.Module:
    """Seeded N(mean, std) weights for every Conv2d / Linear, biases zeroed: lively test models."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, (nn.Conv2d, nn.Linear)):
                m.weight.copy_(torch.randn(m.weight.shape, generator=g) * std + mean)
                if m.bias is not None:
                    m.bias.zero_()
    return model
