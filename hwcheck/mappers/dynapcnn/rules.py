"""The DYNAP-CNN design rules: each takes a chip layer (or a graph node) and returns every
violation it finds, with a hint.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import torch

from hwcheck.graph import LayerGraph, LayerNode
from hwcheck.mappers.base import ERROR, WARNING, Violation
from hwcheck.mappers.dynapcnn.layers import ChipLayer
from hwcheck.mappers.dynapcnn.memory import (
    _WEIGHT,
    SUPPORTED,
    CoreTable,
    clog2,
    neuron_memory_words,
)
from hwcheck.profiles import ChipProfile


def fmt_words(n: int) -> str:
    """Words as the sinabs docs print them: 16384 -> '16Ki'; other values as plain numbers."""
    if n >= 1024 and n % 1024 == 0:
        return f"{n // 1024}Ki"
    return str(n)


def fmt_cores(cores: Sequence[int]) -> str:
    """[0, 1, 2, 5] -> '0-2, 5'."""
    cs = sorted(set(cores))
    parts: list[str] = []
    i = 0
    while i < len(cs):
        j = i
        while j + 1 < len(cs) and cs[j + 1] == cs[j] + 1:
            j += 1
        parts.append(str(cs[i]) if i == j else f"{cs[i]}-{cs[j]}")
        i = j + 1
    return ", ".join(parts)


def _shape(s: Sequence[int]) -> str:
    return "x".join(str(x) for x in s)


def _core_groups(table: CoreTable, cores: Sequence[int] | None = None) -> list[list[int]]:
    """Cores with identical capacities, grouped: [[0, 1, 2], [3, 4], ...]."""
    groups: dict[tuple[int, int, int], list[int]] = {}
    for c in range(len(table)) if cores is None else cores:
        groups.setdefault(table.caps(c), []).append(c)
    return list(groups.values())


# --------------------------------------------------------------------------- fit hints


@dataclass(frozen=True)
class _Option:
    keep: float  # fraction of the model kept (higher = smaller change)
    text: str


def _fit_options(layer: ChipLayer, caps: tuple[int, int, int], label: str) -> list[_Option]:
    """Single changes to ``layer`` after which it fits a core with ``caps``, each with how much
    of the layer it keeps."""
    K, N, B = caps
    k, n, b = layer.need
    ky, kx = layer.kernel
    oh, ow = layer.out_shape[1], layer.out_shape[2]
    kk = clog2(kx * ky)
    name = layer.name
    where = (
        f"to fit core {label}" if "," not in label and "-" not in label else f"to fit cores {label}"
    )
    opts: list[_Option] = []
    # fewer output channels: c' * 2^map <= N, c_in * 2^(kk + clog2 c') <= K, c' <= B (with bias)
    q = K // (layer.c_in * 2**kk)
    c_k = 2 ** (q.bit_length() - 1) if q >= 1 else 0
    c_n = N // 2 ** (clog2(oh) + clog2(ow))
    c_b = B if layer.bias else layer.c_out
    c2 = min(c_k, c_n, c_b, layer.c_out)
    if 1 <= c2 < layer.c_out:
        opts.append(
            _Option(
                c2 / layer.c_out,
                f"reduce the output channels of '{name}' from {layer.c_out} to <= {c2} {where}",
            )
        )
    if layer.bias and b > B and k <= K and n <= N:
        opts.append(_Option(0.99, f"remove the bias of '{name}' (bias=False) {where}"))
    if layer.kind == "conv" and k <= K and b <= B and n > N:
        for f, word in ((2, "halve"), (4, "quarter")):
            h2, w2 = -(-oh // f), -(-ow // f)
            if neuron_memory_words(layer.c_out, h2, w2) <= N:
                opts.append(
                    _Option(
                        1 / f**2,
                        f"{word} the output map of '{name}' ({oh}x{ow} -> {h2}x{w2}) with stride "
                        f"{f} on it or pool {f} before it {where}",
                    )
                )
                break
    if k > K and n <= N and b <= B:
        q_in = K // 2 ** (kk + clog2(layer.c_out))
        if 1 <= q_in < layer.c_in:
            opts.append(
                _Option(
                    q_in / layer.c_in,
                    f"reduce the input channels of '{name}' (channels of the layer before) from "
                    f"{layer.c_in} to <= {q_in} {where}",
                )
            )
        side = max(ky, kx)
        for s in range(side - 1, 0, -1):
            if layer.c_in * 2 ** (clog2(s * s) + clog2(layer.c_out)) <= K:
                if layer.kind == "linear":
                    text = f"pool the input map of '{name}' to <= {s}x{s} before it (now {ky}x{kx}) {where}"
                else:
                    text = f"use a {s}x{s} kernel in '{name}' instead of {ky}x{kx} {where}"
                opts.append(_Option((s * s) / (ky * kx), text))
                break
    return opts


def _best_hint(options: list[_Option], fallback: str) -> str:
    seen: list[str] = []
    for o in sorted(options, key=lambda o: -o.keep):
        if o.text not in seen:
            seen.append(o.text)
        if len(seen) == 2:
            break
    return "; or ".join(seen) if seen else fallback


# --------------------------------------------------------------------------- rules


@dataclass
class _Ctx:
    """What the rules need: the profile's limits, the core table and the grouping."""

    profile: ChipProfile
    table: CoreTable
    graph: LayerGraph
    layers: list[ChipLayer]
    dvs: ChipLayer | None

    def lim(self, key: str, default: Any = None) -> Any:
        return self.profile.limit(key, default)


Rule = Callable[[ChipLayer, _Ctx], list[Violation]]


def _v(
    layer: str, rule: str, needed: Any, limit: Any, message: str, hint: str, severity: str = ERROR
) -> Violation:
    return Violation(layer, rule, needed, limit, message, hint, severity)


def rule_no_spiking(layer: ChipLayer, ctx: _Ctx) -> list[Violation]:
    """Every weight layer must be followed by its own spiking (IAF) layer."""
    if not layer.is_core or layer.spiking is not None or layer.spiking_shared_with:
        return []
    w = layer.weight
    if len(layer.blocker) > 1:
        names = ", ".join(f"'{b.name}'" for b in layer.blocker)
        return [
            _v(
                layer.name,
                "weight-fanout",
                len(layer.blocker),
                1,
                f"{w.type_name} output goes to {len(layer.blocker)} layers ({names}) before any "
                "spiking layer; a core feeds its conv output only to its own IAF neurons",
                f"put one IAF layer right after '{layer.name}' and branch after it "
                f"(up to {ctx.lim('destinations_per_core')} destinations)",
            )
        ]
    nxt = layer.blocker[0] if layer.blocker else None
    what = "the model output" if nxt is None else f"{nxt.type_name} '{nxt.name}'"
    if nxt is not None and nxt.kind in _WEIGHT:
        hint = (
            f"insert an IAF layer (sinabs IAFSqueeze) between '{layer.name}' and '{nxt.name}': "
            "two weight layers cannot share a core"
        )
    else:
        hint = f"add an IAF layer (sinabs IAFSqueeze) right after '{layer.name}'"
    return [
        _v(
            layer.name,
            "no-spiking-layer",
            what,
            "IAF",
            f"{w.type_name} is followed by {what}, not by a spiking layer; each core runs "
            "weight layer -> IAF",
            hint,
        )
    ]


def rule_shared_spiking(layer: ChipLayer, ctx: _Ctx) -> list[Violation]:
    """A spiking layer fed by two weight layers would need two convs in one core."""
    if not layer.spiking_shared_with:
        return []
    return [
        _v(
            layer.name,
            "shared-spiking-layer",
            "2 weight layers",
            "1 per IAF layer",
            f"its output is summed with '{layer.spiking_shared_with}' into one spiking layer; a "
            "core has one weight layer per IAF layer",
            "add the spike trains before a single weight layer instead (several cores may target "
            "one core), or give each weight layer its own IAF layer",
        )
    ]


def rule_pool_before_spiking(layer: ChipLayer, ctx: _Ctx) -> list[Violation]:
    """Pooling between a weight layer and its IAF layer has no place on the chip."""
    out = []
    for p in layer.pools_before:
        s = f"'{layer.spiking.name}'" if layer.spiking is not None else "the IAF layer"
        out.append(
            _v(
                layer.name,
                "pool-before-spiking",
                f"{p.type_name} '{p.name}'",
                "pooling after IAF",
                f"{p.type_name} '{p.name}' sits between the weight layer and its spiking layer; "
                "the chip pools only after IAF, per destination",
                f"move '{p.name}' after {s} (and retrain)",
            )
        )
    return out


def rule_kernel_square(layer: ChipLayer, ctx: _Ctx) -> list[Violation]:
    if not layer.is_core or layer.spatial_dims != 2 or layer.kernel[0] == layer.kernel[1]:
        return []
    ky, kx = layer.kernel
    side = max(ky, kx)
    if layer.kind == "linear":
        hint = f"make the map before this Linear square (now {ky}x{kx}), e.g. crop or pad it to {side}x{side}"
    else:
        hint = f"use a square kernel, e.g. {side}x{side}"
    return [
        _v(
            layer.name,
            "kernel-square",
            f"{ky}x{kx}",
            "square",
            f"kernel {ky}x{kx} is not square (the chip takes square kernels only)",
            hint,
        )
    ]


def rule_kernel_size(layer: ChipLayer, ctx: _Ctx) -> list[Violation]:
    lim = ctx.lim("max_kernel_px")
    side = max(layer.kernel)
    if not layer.is_core or side <= lim:
        return []
    if layer.kind == "linear":
        f = 2 ** clog2(-(-side // lim))
        hint = (
            f"pool the {layer.in_shape[1]}x{layer.in_shape[2]} map by {f} before this Linear (kernel "
            f"becomes <= {lim}x{lim}), or add a strided conv layer before it"
        )
        msg = f"kernel {layer.kernel[0]}x{layer.kernel[1]} (a Linear is a conv over its whole input map) > {lim}x{lim}"
    else:
        hint = f"use a kernel <= {lim}x{lim} (e.g. two stacked {lim}x{lim} convs, or pool/stride before it)"
        msg = f"kernel {layer.kernel[0]}x{layer.kernel[1]} > {lim}x{lim}"
    return [_v(layer.name, "kernel-size", side, lim, msg, hint)]


def rule_stride(layer: ChipLayer, ctx: _Ctx) -> list[Violation]:
    allowed = list(ctx.lim("strides"))
    bad = [s for s in layer.stride if s not in allowed]
    if layer.kind != "conv" or not bad:
        return []
    near = [min(allowed, key=lambda a, s=s: (abs(a - s), a)) for s in layer.stride]
    return [
        _v(
            layer.name,
            "stride",
            _shape(layer.stride),
            ", ".join(map(str, allowed)),
            f"stride {_shape(layer.stride)} not in the allowed strides ({', '.join(map(str, allowed))})",
            f"use stride {_shape(near)}",
        )
    ]


def rule_padding(layer: ChipLayer, ctx: _Ctx) -> list[Violation]:
    lim = ctx.lim("max_padding_px")
    p = max(layer.padding) if layer.padding else 0
    if layer.kind != "conv" or p <= lim:
        return []
    return [
        _v(
            layer.name,
            "padding",
            p,
            lim,
            f"padding {_shape(layer.padding)} > {lim}",
            f"use padding <= {lim} (a smaller kernel needs less padding for the same output size)",
        )
    ]


def rule_padding_mode(layer: ChipLayer, ctx: _Ctx) -> list[Violation]:
    if layer.kind != "conv" or layer.padding_mode == "zeros" or max(layer.padding, default=0) == 0:
        return []
    return [
        _v(
            layer.name,
            "padding-mode",
            layer.padding_mode,
            "zeros",
            f"padding_mode '{layer.padding_mode}'; the chip pads with zeros only",
            "use padding_mode='zeros' (and retrain)",
        )
    ]


def rule_dilation(layer: ChipLayer, ctx: _Ctx) -> list[Violation]:
    if layer.kind != "conv" or all(d == 1 for d in layer.dilation):
        return []
    ky, kx = layer.kernel
    eff = [d * (k - 1) + 1 for d, k in zip(layer.dilation[-2:], (ky, kx), strict=False)]
    return [
        _v(
            layer.name,
            "dilation",
            _shape(layer.dilation),
            1,
            f"dilation {_shape(layer.dilation)}; the chip has no dilation setting",
            f"use dilation 1 (a dense {eff[0]}x{eff[1]} kernel with zeros covers the same field, "
            "if it fits the kernel limit)",
        )
    ]


def rule_groups(layer: ChipLayer, ctx: _Ctx) -> list[Violation]:
    if layer.kind != "conv" or layer.groups == 1:
        return []
    return [
        _v(
            layer.name,
            "groups",
            layer.groups,
            1,
            f"groups = {layer.groups}; the chip has no grouped convolution (memory is counted for "
            f"the dense kernel with all {layer.c_in} input channels)",
            "use groups=1: express the grouped conv as a dense kernel with zero blocks",
        )
    ]


def rule_channels(layer: ChipLayer, ctx: _Ctx) -> list[Violation]:
    lim = ctx.lim("max_channels")
    out = []
    for side, c in (("input", layer.c_in), ("output", layer.c_out)):
        if layer.is_core and c > lim:
            hint = f"use <= {lim} {side} channels (split the layer into {-(-c // lim)} layers of <= {lim})"
            if layer.kind == "linear" and side == "input":
                hint = f"reduce the {c} input features to <= {lim} (pool or add a layer before this Linear)"
            out.append(_v(layer.name, "channels", c, lim, f"{c} {side} channels > {lim}", hint))
    return out


def rule_input_size(layer: ChipLayer, ctx: _Ctx) -> list[Violation]:
    lim = ctx.lim("max_input_px")
    _, h, w = layer.in_shape
    if max(h, w) <= lim:
        return []
    f = 2 ** clog2(-(-max(h, w) // lim))
    what = "input" if layer.kind == "dvs" else "input map"
    return [
        _v(
            layer.name,
            "input-size",
            f"{h}x{w}",
            f"{lim}x{lim}",
            f"{what} {h}x{w} > {lim}x{lim}",
            f"crop or downsample the input to <= {lim}x{lim} (e.g. pool {f} at the input)",
        )
    ]


def rule_output_map(layer: ChipLayer, ctx: _Ctx) -> list[Violation]:
    lim = ctx.lim("max_output_map_px")
    _, h, w = layer.out_shape
    if not layer.is_core or max(h, w) <= lim:
        return []
    f = 2 ** clog2(-(-max(h, w) // lim))
    return [
        _v(
            layer.name,
            "output-map",
            f"{h}x{w}",
            f"{lim}x{lim}",
            f"output map {h}x{w} > {lim}x{lim}",
            f"use stride {f} in '{layer.name}' or pool {f} before it "
            f"(output {-(-h // f)}x{-(-w // f)})",
        )
    ]


def rule_bias(layer: ChipLayer, ctx: _Ctx) -> list[Violation]:
    if not layer.is_core or not layer.bias:
        return []
    return [
        _v(
            layer.name,
            "bias",
            layer.c_out,
            0,
            f"has a bias ({layer.c_out} words): on chip a bias is a constant leak, added on every "
            "slow-clock tick to every neuron, which costs power and needs the slow clock",
            "train with bias=False unless the leak is wanted",
            WARNING,
        )
    ]


def rule_destinations(layer: ChipLayer, ctx: _Ctx) -> list[Violation]:
    lim = ctx.lim("destinations_per_core")
    dests = layer.chip_destinations
    if len(dests) <= lim:
        return []
    names = ", ".join(f"'{d.target}'" + (f" (pool {d.factor})" if d.pools else "") for d in dests)
    return [
        _v(
            layer.name,
            "destinations",
            len(dests),
            lim,
            f"sends spikes to {len(dests)} destinations ({names}) > {lim}",
            f"keep <= {lim} destinations: add a relay layer (1x1 conv + IAF) that forwards to the "
            "rest, or merge branches",
        )
    ]


def _pool_violations(owner: str, pools: Sequence[LayerNode], sizes: list[int]) -> list[Violation]:
    out = []
    for p in pools:
        a = p.attrs
        if a.get("pool_type") == "max":
            continue  # flagged as an unsupported module
        k = tuple(a.get("kernel_size", (1, 1)))
        s = tuple(a.get("stride", k))
        pad = tuple(a.get("padding", (0,)))
        tag = f"{p.type_name} '{p.name}'"
        if len(set(k)) > 1:
            side = max(k)
            out.append(
                _v(
                    owner,
                    "pool-square",
                    _shape(k),
                    "square",
                    f"{tag}: pooling {_shape(k)} is not square",
                    f"use a square pooling, e.g. {side}x{side}",
                )
            )
        if s != k:
            out.append(
                _v(
                    owner,
                    "pool-overlap",
                    f"stride {_shape(s)}",
                    f"stride = kernel {_shape(k)}",
                    f"{tag}: stride {_shape(s)} != kernel {_shape(k)} (overlapping or gapped windows); "
                    "the chip pools in non-overlapping windows",
                    f"use stride = kernel size ({_shape(k)})",
                )
            )
        if any(x != 0 for x in pad):
            out.append(
                _v(
                    owner,
                    "pool-padding",
                    _shape(pad),
                    0,
                    f"{tag}: padding {_shape(pad)}; chip pooling has no padding",
                    "use padding=0 (crop or pad the map in the conv before instead)",
                )
            )
        if a.get("ceil_mode"):
            out.append(
                _v(
                    owner,
                    "pool-ceil-mode",
                    "ceil_mode=True",
                    "ceil_mode=False",
                    f"{tag}: ceil_mode=True (partial windows at the border); the chip drops them",
                    "use ceil_mode=False and a map size divisible by the pooling",
                )
            )
        side = max(k)
        if side not in sizes:
            near = min(sizes, key=lambda z: (abs(z - side), z))
            out.append(
                _v(
                    owner,
                    "pool-size",
                    side,
                    ", ".join(map(str, sizes)),
                    f"{tag}: pooling {_shape(k)} not in the allowed sizes ({', '.join(map(str, sizes))})",
                    f"use pooling {near}x{near}",
                )
            )
    return out


def rule_pooling(layer: ChipLayer, ctx: _Ctx) -> list[Violation]:
    """Per-destination pooling: square, size in the allowed set, unpadded, floor mode,
    non-overlapping; consecutive pools multiply."""
    sizes = list(ctx.lim("pooling_sizes"))
    out: list[Violation] = []
    done: set[str] = set()
    for d in layer.destinations:
        fresh = [p for p in d.pools if p.name not in done]
        done.update(p.name for p in d.pools)
        out += _pool_violations(layer.name, fresh, sizes)
        pooled = [p for p in d.pools if p.attrs.get("pool_type") != "max"]
        if len(pooled) > 1 and d.factor not in sizes:
            names = " x ".join(f"'{p.name}'" for p in pooled)
            out.append(
                _v(
                    layer.name,
                    "pool-size",
                    d.factor,
                    ", ".join(map(str, sizes)),
                    f"consecutive pools {names} pool {d.factor}x{d.factor} in total, not in the "
                    f"allowed sizes ({', '.join(map(str, sizes))})",
                    f"pool at most {max(sizes)}x{max(sizes)} in total per destination",
                )
            )
    return out


def rule_mixed_pooling(layer: ChipLayer, ctx: _Ctx) -> list[Violation]:
    """One kernel cannot carry two AvgPool rescales; sinabs silently averages them."""
    if len({d.factor for _, d in layer.sources}) <= 1:
        return []
    parts = ", ".join(f"'{src}' pooled {d.factor}x{d.factor}" for src, d in layer.sources)
    return [
        _v(
            layer.name,
            "mixed-pooling-inputs",
            parts,
            "one pooling for all inputs",
            f"is fed both pooled and unpooled inputs ({parts}); with AvgPool each input needs its "
            "own weight rescale (k*k), which one kernel cannot carry (sinabs applies one averaged "
            "factor); with SumPool the inputs arrive at different event densities",
            "give all inputs of this layer the same pooling, or use SumPool and retrain with it",
            WARNING,
        )
    ]


def rule_linear_input(layer: ChipLayer, ctx: _Ctx) -> list[Violation]:
    shape = layer.linear_input_shape
    if layer.kind != "linear" or shape is None:
        return []
    return [
        _v(
            layer.name,
            "linear-input",
            _shape(shape),
            "flat input",
            f"Linear applied to the last dimension of a {_shape(shape)} input; on chip a "
            "Linear is a conv over the whole flattened map",
            "flatten the input (nn.Flatten) before this Linear",
        )
    ]


def rule_dvs_channels(layer: ChipLayer, ctx: _Ctx) -> list[Violation]:
    lim = ctx.lim("dvs_input_channels")
    if layer.kind != "dvs" or lim is None or layer.c_in <= lim:
        return []
    return [
        _v(
            layer.name,
            "dvs-channels",
            layer.c_in,
            lim,
            f"the model starts with pooling, so its input runs through the DVS input layer, "
            f"which takes {lim} polarity channels; the input has {layer.c_in}",
            f"use <= {lim} input channels, or start the model with a conv layer (events then go "
            "straight to a core)",
        )
    ]


#: Relative RMS weight error, and fraction of nonzero weights rounded to zero, above which the
#: quantisation rules warn.
QUANT_WARN = 0.02
ZERO_WARN = 0.10


def _fit_scale(values: torch.Tensor, bits: int) -> float:
    """The largest factor by which ``values`` still fit signed ``bits``-bit integers."""
    hi, lo = float(values.max()), float(values.min())
    out = math.inf
    if hi > 0:
        out = min(out, (2 ** (bits - 1) - 1) / hi)
    if lo < 0:
        out = min(out, 2 ** (bits - 1) / -lo)
    return out


def rule_quantisation(layer: ChipLayer, ctx: _Ctx) -> list[Violation]:
    """Weights, bias and thresholds as the chip stores them: one scale per layer that fits the
    weights (and bias) in ``weight_bits`` and the threshold and lower state bound in
    ``state_bits`` (sinabs' ``discretize``: a missing ``min_v_mem`` is the state's lower end);
    the weights then round to integers. Warns with the error where it is large; every weight
    rounding to zero is an error."""
    if not layer.is_core or layer.weight is None:
        return []
    w = getattr(layer.weight.module, "weight", None)
    if not isinstance(w, torch.Tensor) or not w.numel() or not w.is_floating_point():
        return []
    wb, sb = int(ctx.lim("weight_bits", 8)), int(ctx.lim("state_bits", 16))
    w = w.detach().double()
    scale_w = _fit_scale(w, wb)
    b = getattr(layer.weight.module, "bias", None)
    if isinstance(b, torch.Tensor) and b.numel():
        scale_w = min(scale_w, _fit_scale(b.detach().double(), wb))
    attrs = layer.spiking.attrs if layer.spiking is not None else {}
    thr = attrs.get("threshold")
    low = attrs.get("min_v_mem")
    # without a lower bound the state's floor is the chip's integer floor: no constraint
    state = [float(v) for v in (thr, low) if isinstance(v, (int, float))]
    scale_s = _fit_scale(torch.tensor(state, dtype=torch.float64), sb) if state else math.inf
    floor = "none" if low is None else f"{float(low):g}"
    scale = min(scale_w, scale_s)
    if not math.isfinite(scale) or not bool((w != 0).any()):
        return []
    q = torch.round(w * scale) / scale
    err = float(torch.linalg.vector_norm(q - w) / torch.linalg.vector_norm(w))
    nz = w != 0
    zeroed = float(((q == 0) & nz).sum()) / float(nz.sum())
    levels = int(round(float(w.abs().max()) * scale))
    if zeroed == 1.0:
        why = (f"the {sb}-bit state range (threshold {thr}, lower bound {floor}) limits the scale to {scale:.3g}"
               if scale_s < scale_w else f"the scale is {scale:.3g}")
        return [
            _v(
                layer.name,
                "weight_quantisation",
                "all weights 0",
                f"{wb}-bit weights",
                f"every weight rounds to zero on chip: {why}, and the largest weight "
                f"{float(w.abs().max()):.3g} becomes {levels}",
                "scale the weights up and the threshold with them (the ratio is what matters)",
            )
        ]
    if err <= QUANT_WARN and zeroed <= ZERO_WARN:
        return []
    if scale_s < scale_w:
        return [
            _v(
                layer.name,
                "state_range",
                f"{100 * err:.1f}% weight error",
                f"<= {100 * QUANT_WARN:.0f}%",
                f"the {sb}-bit state range (threshold {thr}, lower bound {floor}) limits the "
                f"weight scale to {scale:.3g}: weights use only +-{levels} of +-{2 ** (wb - 1) - 1} "
                f"levels, RMS error {100 * err:.1f}%, {100 * zeroed:.0f}% of the weights become 0",
                f"scale weights and threshold up together so the weights span the {wb}-bit range",
                WARNING,
            )
        ]
    return [
        _v(
            layer.name,
            "weight_quantisation",
            f"{100 * err:.1f}% weight error",
            f"<= {100 * QUANT_WARN:.0f}%",
            f"{wb}-bit weights (scale {scale:.3g}, largest weight {float(w.abs().max()):.3g} -> "
            f"{levels}): RMS error {100 * err:.1f}%, {100 * zeroed:.0f}% of the weights become 0",
            "train with quantisation-aware training, or clip outlier weights so the rest use "
            "more of the levels",
            WARNING,
        )
    ]


def _sinabs_zeroed(layer: ChipLayer, ctx: _Ctx) -> float | None:
    """Fraction of the nonzero weights that sinabs' ``discretize`` (what
    ``DynapcnnNetwork(discretize=True)`` runs) rounds to zero when the spiking layer has no
    ``min_v_mem``: it then takes the lower bound as -2**15, which caps the scale at 1."""
    if not layer.is_core or layer.weight is None or layer.spiking is None:
        return None
    if layer.spiking.attrs.get("min_v_mem", 0.0) is not None or "IAF" not in layer.spiking.type_name:
        return None  # sinabs converts IAF layers only
    w = getattr(layer.weight.module, "weight", None)
    if not isinstance(w, torch.Tensor) or not w.numel() or not w.is_floating_point():
        return None
    w = w.detach().double()
    nz = w != 0
    if not bool(nz.any()):
        return None
    wb, sb = int(ctx.lim("weight_bits", 8)), int(ctx.lim("state_bits", 16))
    thr = layer.spiking.attrs.get("threshold")
    state = [-(2.0 ** (sb - 1))] + ([float(thr)] if isinstance(thr, (int, float)) else [])
    scale = min(_fit_scale(w, wb), _fit_scale(torch.tensor(state, dtype=torch.float64), sb))
    b = getattr(layer.weight.module, "bias", None)
    if isinstance(b, torch.Tensor) and b.numel():
        scale = min(scale, _fit_scale(b.detach().double(), wb))
    return float(((torch.round(w * scale) == 0) & nz).sum()) / float(nz.sum())


def rule_sinabs_discretize(layers: list[ChipLayer], ctx: _Ctx) -> list[Violation]:
    """One warning for the layers whose weights sinabs' own discretisation would wipe out."""
    hit = {layer.name: z for layer in layers if (z := _sinabs_zeroed(layer, ctx)) is not None and z >= 0.5}
    if not hit:
        return []
    worst = max(hit.values())
    names = ", ".join(f"`{n}` ({100 * z:.0f}%)" for n, z in hit.items())
    return [
        _v(
            "model",
            "sinabs_discretize",
            f"{100 * worst:.0f}% of weights 0",
            "min_v_mem set",
            "sinabs' DynapcnnNetwork(discretize=True) takes a missing min_v_mem as -32768, which "
            f"limits the weight scale to at most 1: it would round these weights to zero: {names}",
            "give the IAF layers a lower bound, e.g. IAFSqueeze(..., min_v_mem=-1.0) (or "
            "-threshold), before converting with sinabs",
            WARNING,
        )
    ]


#: Rules run on every chip layer (the DVS layer too; each rule skips what does not apply).
LAYER_RULES: list[Rule] = [
    rule_no_spiking,
    rule_shared_spiking,
    rule_pool_before_spiking,
    rule_linear_input,
    rule_quantisation,
    rule_kernel_square,
    rule_kernel_size,
    rule_stride,
    rule_padding,
    rule_padding_mode,
    rule_dilation,
    rule_groups,
    rule_channels,
    rule_input_size,
    rule_output_map,
    rule_bias,
    rule_destinations,
    rule_pooling,
    rule_mixed_pooling,
    rule_dvs_channels,
]

NodeRule = Callable[[LayerNode, _Ctx], list[Violation]]

_UNSUPPORTED_HINTS = {
    "activation": "replace it with an IAF spiking layer (sinabs IAFSqueeze), e.g. convert the ANN with sinabs.from_model",
    "neuron": "remove it or replace it with an IAF spiking layer (the chip has no leaky non-spiking state)",
    "pool": "use SumPool2d or AvgPool2d with stride = kernel in {sizes} (and retrain)",
    "conv": "use Conv2d on a 2-D map (reshape the input to C x H x W)",
}


def node_rule_unsupported(node: LayerNode, ctx: _Ctx) -> list[Violation]:
    """Modules the chip does not run (named, with what it runs instead)."""
    kind = node.kind
    bad = (
        kind in ("activation", "neuron")
        or (kind == "pool" and node.attrs.get("pool_type") == "max")
        or (kind == "conv" and len(node.attrs.get("kernel_size", (1, 1))) != 2)
    )
    if not bad:
        return []
    sizes = ", ".join(map(str, ctx.lim("pooling_sizes")))
    return [
        _v(
            node.name,
            "unsupported-module",
            node.type_name,
            SUPPORTED,
            f"{node.type_name} is not supported on the chip (it runs {SUPPORTED})",
            _UNSUPPORTED_HINTS[kind].format(sizes=sizes),
        )
    ]


def node_rule_unknown(node: LayerNode, ctx: _Ctx) -> list[Violation]:
    if node.kind != "unknown":
        return []
    return [
        _v(
            node.name,
            "unknown-module",
            node.type_name,
            SUPPORTED,
            f"{node.type_name} is a module hwcheck does not know; the chip runs {SUPPORTED}",
            "replace it with supported layers, or register how it maps with "
            "hwcheck.layers.register_layer if it is one of them under another name",
        )
    ]


def node_rule_norm(node: LayerNode, ctx: _Ctx) -> list[Violation]:
    if node.kind != "norm":
        return []
    return [
        _v(
            node.name,
            "batchnorm-not-folded",
            node.type_name,
            "no normalisation on chip",
            f"{node.type_name} is not folded: the chip has no normalisation layer",
            "fold it into the preceding conv's weights and bias before deploying (the folded bias "
            "then costs a leak), or remove it",
        )
    ]


def node_rule_neuron_model(node: LayerNode, ctx: _Ctx) -> list[Violation]:
    if node.kind != "spiking":
        return []
    want = ctx.lim("neuron_model", "IAF")
    model = str(node.attrs.get("neuron_model", "?"))
    if model == want and node.attrs.get("tau_syn") is None:
        return []
    what = model if model != want else f"{model} with a synaptic current (tau_syn)"
    return [
        _v(
            node.name,
            "neuron-model",
            what,
            want,
            f"non-IAF neurons: {what}; the chip runs {want} neurons only",
            f"replace it with an {want} layer (sinabs IAFSqueeze) and fine-tune: a leak has no "
            "exact chip equivalent (the only leak is a constant bias on the slow clock)",
        )
    ]


def node_rule_recurrent(node: LayerNode, ctx: _Ctx) -> list[Violation]:
    if node.kind != "spiking" or not node.attrs.get("recurrent"):
        return []
    return [
        _v(
            node.name,
            "recurrent-neurons",
            "recurrent",
            "feed-forward",
            "recurrent spiking layer; a core has no recurrent weights of its own",
            "use a feed-forward IAF layer (recurrence between cores is possible through "
            "destinations but may deadlock)",
        )
    ]


def node_rule_shared(node: LayerNode, ctx: _Ctx) -> list[Violation]:
    """A module called twice: weights and neuron state would have to live in two cores."""
    if node.kind not in (*_WEIGHT, "spiking", "neuron") or node.call_index != 0:
        return []
    calls = ctx.graph.calls_of(node.module_path)
    if len(calls) <= 1:
        return []
    names = ", ".join(f"'{c.name}'" for c in calls)
    return [
        _v(
            node.module_path or node.name,
            "shared-module",
            len(calls),
            1,
            f"{node.type_name} module is used {len(calls)} times ({names}); each use needs its own "
            "core with its own weights and state",
            "use a separate module instance per use (copy.deepcopy), each then takes a core",
        )
    ]


def node_rule_reshape(node: LayerNode, ctx: _Ctx) -> list[Violation]:
    if node.kind != "reshape":
        return []
    i, o = tuple(node.in_shape), tuple(node.out_shape)
    if math.prod(i) == math.prod(o) and (i == o or all(d == 1 for d in o[1:])):
        return []
    return [
        _v(
            node.name,
            "reshape",
            f"{_shape(i)} -> {_shape(o)}",
            "flatten only",
            f"{node.type_name} reshapes {_shape(i)} -> {_shape(o)}; between chip layers only a "
            "flatten into a Linear is possible",
            "reshape only by flattening a (C, H, W) map right before a Linear",
        )
    ]


def node_rule_orphan_spiking(node: LayerNode, ctx: _Ctx) -> list[Violation]:
    if node.kind != "spiking":
        return []
    if any(layer.spiking is node for layer in ctx.layers):
        return []
    if any(len(layer.blocker) > 1 and node in layer.blocker for layer in ctx.layers):
        return []  # explained by the weight layer's weight-fanout violation
    return [
        _v(
            node.name,
            "spiking-without-weights",
            node.type_name,
            "weight layer -> IAF",
            f"{node.type_name} is not preceded by its own weight layer; each core runs weight layer -> IAF",
            f"put a Conv2d or Linear right before '{node.name}', or remove it",
        )
    ]


#: Rules run on every graph node.
NODE_RULES: list[NodeRule] = [
    node_rule_unsupported,
    node_rule_unknown,
    node_rule_norm,
    node_rule_neuron_model,
    node_rule_recurrent,
    node_rule_shared,
    node_rule_reshape,
    node_rule_orphan_spiking,
]
