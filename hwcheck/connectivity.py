"""Exact connection counts of weight and pooling layers.

The fan-out of every input position is the vector-Jacobian product of the layer's connection
map (weights replaced by ones, or by the 0/1 mask of nonzero weights) with an all-ones output:
for a convolution this is the transposed convolution of ones, exact at borders and with any
padding, stride, dilation, groups or padding mode. Computed in float64 so counts stay exact.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch

__all__ = ["weight_stats", "fanout_map", "chain_fanout_map"]


def _weights(module: Any, nonzero: bool, dtype: torch.dtype, device: Any) -> torch.Tensor | None:
    w = getattr(module, "weight", None)
    if not isinstance(w, torch.Tensor):
        return None
    w = w.detach()
    mask = (w != 0) if nonzero else torch.ones_like(w, dtype=torch.bool)
    return mask.to(dtype=dtype, device=device)


def _device(module: Any) -> Any:
    for p in module.parameters():
        return p.device
    return torch.device("cpu")


def fanout_map(module: Any, spec: Any, in_shape: Sequence[int], nonzero: bool = False) -> torch.Tensor:
    """Number of connections leaving each input position (shape ``in_shape``), float64."""
    return chain_fanout_map([(module, spec)], [], in_shape, nonzero)


def chain_fanout_map(
    layers: Sequence[tuple[Any, Any]],
    reshapes: Sequence[tuple[int, tuple[int, ...]]],
    in_shape: Sequence[int],
    nonzero: bool = False,
) -> torch.Tensor:
    """Fan-out of each input position through a chain of linear layers.

    ``layers`` are ``(module, spec)`` in forward order; ``reshapes`` are ``(position, shape)``:
    reshape to ``shape`` before layer ``position``. Pools use their sum geometry; only the
    last layer's weights are masked when ``nonzero`` is set (pools have no weights).
    """
    dev = _device(layers[-1][0])
    x = torch.ones((1, *in_shape), dtype=torch.float64, device=dev, requires_grad=True)
    with torch.enable_grad():
        y = x
        reshape_at = dict(reshapes)
        for i, (module, spec) in enumerate(layers):
            if i in reshape_at:
                y = y.reshape(1, *reshape_at[i])
            last = i == len(layers) - 1
            w = _weights(module, nonzero and last, torch.float64, dev) if spec.kind in ("conv", "linear") else None
            y = spec.connect(module, y, w)
        if len(layers) in reshape_at:
            y = y.reshape(1, *reshape_at[len(layers)])
        (grad,) = torch.autograd.grad(y.sum(), x)
    return grad[0].detach()


def _linear_stats(w: torch.Tensor) -> dict[str, int]:
    """:func:`weight_stats` of a linear layer on a flat input, from one pass over its weight
    (row and column counts of the nonzero mask; no float64 copy of a large matrix)."""
    w = w.detach()
    n_out, n_in = w.shape
    nonzero = int(torch.count_nonzero(w))
    zeros = w.numel() - nonzero
    if not w.numel():
        fan_out_nz = 0
    elif zeros < n_in:  # some input has no zero weight at all
        fan_out_nz = n_out
    elif zeros <= w.numel() // 2:  # few zeros: count them per input
        per_input = torch.bincount(torch.nonzero(w == 0)[:, 1], minlength=n_in)
        fan_out_nz = n_out - int(per_input.min())
    else:
        fan_out_nz = int(torch.count_nonzero(w, dim=0).max())
    return {
        "synapses": n_out * n_in,
        "synapses_nonzero": nonzero,
        "fan_in_max": n_in if n_out else 0,
        "fan_out_max": n_out if n_in else 0,
        "fan_out_max_nonzero": fan_out_nz,
    }


def weight_stats(module: Any, spec: Any, in_shape: Sequence[int]) -> dict[str, int]:
    """Synapses (all and nonzero), max fan-in and max fan-out of one layer, for one sample/step."""
    w = getattr(module, "weight", None)
    if (
        spec.kind == "linear"
        and isinstance(module, torch.nn.Linear)
        and isinstance(w, torch.Tensor)
        and w.dim() == 2
        and tuple(in_shape) == (w.shape[1],)
    ):
        return _linear_stats(w)
    dev = _device(module)
    with torch.no_grad():
        ones = torch.ones((1, *in_shape), dtype=torch.float64, device=dev)
        has_w = spec.kind in ("conv", "linear")
        fan_in = spec.connect(module, ones, _weights(module, False, torch.float64, dev) if has_w else None)
        fan_in_nz = (
            spec.connect(module, ones, _weights(module, True, torch.float64, dev)) if has_w else fan_in
        )
    fo = fanout_map(module, spec, in_shape)
    fo_nz = fanout_map(module, spec, in_shape, nonzero=True) if has_w else fo
    return {
        "synapses": int(round(float(fan_in.sum()))),
        "synapses_nonzero": int(round(float(fan_in_nz.sum()))),
        "fan_in_max": int(round(float(fan_in.max()))) if fan_in.numel() else 0,
        "fan_out_max": int(round(float(fo.max()))) if fo.numel() else 0,
        "fan_out_max_nonzero": int(round(float(fo_nz.max()))) if fo_nz.numel() else 0,
    }
