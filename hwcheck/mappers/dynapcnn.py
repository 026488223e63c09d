"""DYNAP-CNN / Speck: does the model fit the chip's cores, and if not, what to change.

The chip is a set of cores. Each core runs one *chip layer*: a weight layer (Conv2d, or a Linear
turned into a convolution over its whole input map) -> IAF neurons -> an optional sum pooling on
each of its (at most two) destinations. This module

1. groups the layer graph into chip layers (plus a DVS input layer when the model starts with
   pooling),
2. runs a list of named rules over the chip layers and the graph nodes, collecting *every*
   violation (errors and warnings are separate severities),
3. computes each chip layer's kernel, neuron and bias memory with the power-of-two rounding of
   sinabs' code, and assigns chip layers to cores by maximum bipartite matching; when no
   assignment exists it names a set of layers that has fewer fitting cores than members (Hall's
   condition) and says what would make one of them fit elsewhere.

Only shapes are needed: no forward pass over data, no samna. The family's limits schema is
registered on import (see :data:`LIMITS`).
"""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import pandas as pd
import torch

from hwcheck.graph import INPUT, LayerGraph, LayerNode
from hwcheck.mappers.base import ERROR, WARNING, FitReport, Violation
from hwcheck.profiles import ChipProfile, FamilySpec, FigureSpec, ProfileError, register_family

__all__ = [
    "FAMILY",
    "LIMITS",
    "ChipLayer",
    "CoreTable",
    "CoreAssignment",
    "DynapcnnFitReport",
    "assign_cores",
    "bias_memory_words",
    "build_chip_layers",
    "clog2",
    "kernel_memory_words",
    "map_dynapcnn",
    "neuron_memory_words",
]

FAMILY = "dynapcnn"
RESOURCES = ("kernel", "neuron", "bias")

#: The limit figures a DYNAP-CNN-family profile carries.
LIMITS: dict[str, FigureSpec] = {
    "n_cores": FigureSpec("int", True, "number of CNN cores (one chip layer each)"),
    "kernel_memory_words": FigureSpec("int_list", True, "kernel (weight) memory per core, words"),
    "neuron_memory_words": FigureSpec("int_list", True, "neuron (state) memory per core, words"),
    "bias_memory_words": FigureSpec("int_list", True, "bias memory per core, words"),
    "max_input_px": FigureSpec("int", True, "largest input map side of a core / the DVS layer"),
    "max_output_map_px": FigureSpec("int", True, "largest output feature map side of a core"),
    "max_channels": FigureSpec("int", True, "largest number of input or output channels"),
    "max_kernel_px": FigureSpec("int", True, "largest (square) kernel side"),
    "strides": FigureSpec("int_list", True, "allowed convolution strides"),
    "max_padding_px": FigureSpec("int", True, "largest zero padding per side"),
    "pooling_sizes": FigureSpec("int_list", True, "allowed square sum-pooling sizes"),
    "destinations_per_core": FigureSpec("int", True, "destination cores per core (fan-out)"),
    "weight_bits": FigureSpec("int", True, "weight precision"),
    "state_bits": FigureSpec("int", True, "neuron state precision"),
    "neuron_model": FigureSpec("str", True, "the only neuron model the cores run"),
    "dvs_input_channels": FigureSpec("int", False, "polarity channels the DVS input layer takes"),
}

#: Node kinds a chain walk passes through (each is flagged by its own node rule if unsupported).
_PASS = ("identity", "reshape", "norm", "activation", "neuron", "unknown")
_WEIGHT = ("conv", "linear")
SUPPORTED = "Conv2d, Linear, IAF, SumPool2d/AvgPool2d, Flatten, Identity/Dropout"


# --------------------------------------------------------------------------- memory formulas


def clog2(n: int) -> int:
    """ceil(log2(n)) in exact integer arithmetic, for n >= 1 (ceil(log2(1)) = 0)."""
    if n < 1:
        raise ValueError(f"clog2 needs n >= 1, got {n}")
    return (n - 1).bit_length()


def kernel_memory_words(c_in: int, c_out: int, kernel: tuple[int, int]) -> int:
    """Kernel memory of a chip layer: c_in * 2^(ceil(log2(kx*ky)) + ceil(log2(c_out))) words.

    The chip addresses kernels by (channel, position) bit fields, hence the rounding (sinabs
    ``DynapcnnLayer.memory_summary``)."""
    ky, kx = kernel
    return c_in * 2 ** (clog2(kx * ky) + clog2(c_out))


def neuron_memory_words(c_out: int, out_h: int, out_w: int) -> int:
    """Neuron memory: c_out * 2^(ceil(log2(out_h)) + ceil(log2(out_w))) words (one 16-bit state
    each); out_h, out_w are the conv output map, before any pooling."""
    return c_out * 2 ** (clog2(out_h) + clog2(out_w))


def bias_memory_words(c_out: int, bias: bool) -> int:
    """Bias memory: one word per output channel when the layer has a bias, else 0."""
    return c_out if bias else 0


# --------------------------------------------------------------------------- profile view


@dataclass(frozen=True)
class CoreTable:
    """Per-core memory capacities (words), from a profile."""

    kernel: tuple[int, ...]
    neuron: tuple[int, ...]
    bias: tuple[int, ...]

    def __len__(self) -> int:
        return len(self.kernel)

    def caps(self, core: int) -> tuple[int, int, int]:
        return self.kernel[core], self.neuron[core], self.bias[core]

    def fits(self, need: Sequence[int], core: int) -> bool:
        return all(n <= c for n, c in zip(need, self.caps(core), strict=True))

    def total(self, core: int) -> int:
        return sum(self.caps(core))

    @classmethod
    def from_profile(cls, profile: ChipProfile) -> CoreTable:
        """Read the three per-core tables; they must all have ``n_cores`` entries."""
        n = profile.limit("n_cores")
        lists = {k: profile.limit(f"{k}_memory_words") for k in RESOURCES}
        for k, v in lists.items():
            if v is None or len(v) != n:
                raise ProfileError(
                    f"{profile.path}: limits.{k}_memory_words has "
                    f"{'no' if v is None else len(v)} entries; expected n_cores = {n}"
                )
        return cls(*(tuple(int(x) for x in lists[k]) for k in RESOURCES))


# --------------------------------------------------------------------------- chip layers


@dataclass
class Destination:
    """Where a chip layer's spikes go: a target chip layer (``None``: off chip) and the pools on
    the way (the per-destination sum pooling)."""

    target: str | None
    pools: list[LayerNode] = field(default_factory=list)

    @property
    def factor(self) -> int:
        """Total pooling per side (product over consecutive pools)."""
        return (
            math.prod(max(p.attrs.get("kernel_size", (1, 1))) for p in self.pools)
            if self.pools
            else 1
        )

    @property
    def key(self) -> tuple:
        return (self.target, tuple(p.name for p in self.pools))


@dataclass
class ChipLayer:
    """One core's worth of model: weight layer -> IAF -> per-destination pooling.

    ``in_shape`` is the map the core reads (C, H, W) (for a Linear, the map before flattening);
    ``out_shape`` the conv output map (C, H, W), which sets the neuron memory.
    """

    name: str
    weight: LayerNode | None
    members: list[str]
    kind: str  # "conv" | "linear" | "dvs"
    in_shape: tuple[int, int, int]
    out_shape: tuple[int, int, int]
    c_in: int = 0
    c_out: int = 0
    kernel: tuple[int, int] = (1, 1)
    stride: tuple[int, ...] = (1, 1)
    padding: tuple[int, ...] = (0, 0)
    dilation: tuple[int, ...] = (1, 1)
    groups: int = 1
    bias: bool = False
    padding_mode: str = "zeros"
    spatial_dims: int = 2
    spiking: LayerNode | None = None
    pools_before: list[LayerNode] = field(default_factory=list)
    blocker: list[LayerNode] = field(default_factory=list)  # what stops weight -> spiking
    spiking_shared_with: str | None = None
    linear_input_shape: tuple[int, ...] | None = None  # set when a Linear runs on the last dim
    destinations: list[Destination] = field(default_factory=list)
    sources: list[tuple[str, Destination]] = field(default_factory=list)

    @property
    def is_core(self) -> bool:
        return self.kind != "dvs"

    @property
    def kernel_mem(self) -> int:
        if not self.is_core:
            return 0
        return kernel_memory_words(self.c_in, self.c_out, self.kernel)

    @property
    def neuron_mem(self) -> int:
        if not self.is_core:
            return 0
        return neuron_memory_words(self.c_out, self.out_shape[1], self.out_shape[2])

    @property
    def bias_mem(self) -> int:
        return bias_memory_words(self.c_out, self.bias) if self.is_core else 0

    @property
    def need(self) -> tuple[int, int, int]:
        return self.kernel_mem, self.neuron_mem, self.bias_mem

    @property
    def chip_destinations(self) -> list[Destination]:
        """Destinations that occupy a destination slot (a target on chip)."""
        return [d for d in self.destinations if d.target is not None]


class _Graph:
    """Adjacency of a LayerGraph, built once."""

    def __init__(self, graph: LayerGraph) -> None:
        self.g = graph
        self.succ: dict[str, list[str]] = defaultdict(list)
        self.pred: dict[str, list[str]] = defaultdict(list)
        for s, d in graph.edges:
            if d not in self.succ[s]:
                self.succ[s].append(d)
            if s not in self.pred[d]:
                self.pred[d].append(s)

    def node(self, name: str) -> LayerNode:
        return self.g.nodes[name]


def _map3(shape: Sequence[int]) -> tuple[int, int, int]:
    """A feature shape as a (C, H, W) map: (F,) -> (F, 1, 1); (C, L) -> (C, 1, L)."""
    s = tuple(int(x) for x in shape)
    if len(s) == 0:
        return (1, 1, 1)
    if len(s) == 1:
        return (s[0], 1, 1)
    if len(s) == 2:
        return (s[0], 1, s[1])
    return (int(math.prod(s[:-2])), s[-2], s[-1])


def _linear_map(ag: _Graph, w: LayerNode) -> tuple[tuple[int, int, int], tuple[int, ...] | None]:
    """The map a Linear reads, before any flattening: walk back through reshapes/identities (and
    merges, which add maps of one shape) to the producing node (or the model input); if its output is a (C, H, W) map with C*H*W =
    in_features, the Linear is a conv with kernel H x W over C channels; else a 1 x 1 kernel.

    The second value is the producer's shape when it holds more than ``in_features`` values
    (the Linear then runs on the last dimension only), else ``None``."""
    f = int(w.attrs.get("in_features", math.prod(w.in_shape) if w.in_shape else 1))
    cur = w.name
    while True:
        preds = ag.pred.get(cur, [])
        if not preds:
            return (f, 1, 1), None
        p = preds[0]
        if p == INPUT:
            shape = tuple(ag.g.input_shape)
            break
        pn = ag.node(p)
        # a merge adds maps of one shape: the kernel is that of any of its inputs
        if pn.kind in ("reshape", "identity", "merge"):
            cur = p
            continue
        shape = tuple(pn.out_shape)
        break
    if math.prod(shape) != f:
        return (f, 1, 1), shape
    if len(shape) == 3:
        return (shape[0], shape[1], shape[2]), None
    return (f, 1, 1), None


def _weight_layer(ag: _Graph, w: LayerNode) -> ChipLayer:
    a = w.attrs
    if w.kind == "linear":
        (c_in, h, wd), multi = _linear_map(ag, w)
        return ChipLayer(
            name=w.name,
            weight=w,
            members=[w.name],
            kind="linear",
            in_shape=(c_in, h, wd),
            out_shape=(int(a.get("out_features", w.out_shape[-1] if w.out_shape else 1)), 1, 1),
            c_in=c_in,
            c_out=int(a.get("out_features", 1)),
            kernel=(h, wd),
            bias=bool(a.get("bias", False)),
            linear_input_shape=multi,
        )
    ks = tuple(a.get("kernel_size", (1, 1)))
    nd = len(ks)
    stride = tuple(a.get("stride", (1,) * nd))
    padding = tuple(a.get("padding", (0,) * nd))
    dilation = tuple(a.get("dilation", (1,) * nd))
    c_in = int(a.get("in_channels", w.in_shape[0] if w.in_shape else 1))
    if nd == 1:
        kernel = (1, ks[0])
    elif nd == 2:
        kernel = (ks[0], ks[1])
    else:  # Conv3d: not supported; memory folds depth into the input channels (notional)
        kernel = (ks[-2], ks[-1])
        c_in *= int(math.prod(ks[:-2]))
    return ChipLayer(
        name=w.name,
        weight=w,
        members=[w.name],
        kind="conv",
        in_shape=_map3(w.in_shape),
        out_shape=_map3(w.out_shape),
        c_in=c_in,
        c_out=int(a.get("out_channels", w.out_shape[0] if w.out_shape else 1)),
        kernel=kernel,
        stride=stride,
        padding=padding,
        dilation=dilation,
        groups=int(a.get("groups", 1)),
        bias=bool(a.get("bias", False)),
        padding_mode=str(a.get("padding_mode", "zeros")),
        spatial_dims=nd,
    )


def _walk_destinations(
    ag: _Graph, start: str, claimed: set[str], members: list[str]
) -> list[Destination]:
    """Follow the outputs of ``start`` through pools and pass-through nodes to the next weight
    layers; every distinct (target, pools) path is one destination."""
    found: list[Destination] = []
    seen: set[tuple] = set()

    def walk(name: str, pools: list[LayerNode]) -> None:
        succ = ag.succ.get(name, [])
        if not succ and name != start:
            d = Destination(None, list(pools))
            if d.key not in seen:
                seen.add(d.key)
                found.append(d)
            return
        for s in succ:
            n = ag.node(s)
            if n.kind in _WEIGHT:
                d = Destination(s, list(pools))
                if d.key not in seen:
                    seen.add(d.key)
                    found.append(d)
                continue
            if n.kind == "spiking":
                continue  # a spiking layer without weights: flagged by its node rule
            if n.name not in claimed:
                claimed.add(n.name)
                members.append(n.name)
            if n.kind == "pool":
                walk(s, [*pools, n])
            else:  # identity, reshape, merge, and unsupported pass-through nodes
                walk(s, pools)

    walk(start, [])
    return found


def build_chip_layers(graph: LayerGraph) -> tuple[list[ChipLayer], ChipLayer | None]:
    """Group the graph into chip layers (in call order) and the DVS input layer (or ``None``).

    Grouping never fails: unsupported nodes are passed through (their own rules flag them), so
    every chip layer still gets its memory computed and all violations are reported together.
    """
    ag = _Graph(graph)
    claimed: set[str] = set()
    layers: list[ChipLayer] = []
    spiking_owner: dict[str, str] = {}
    for w in graph:
        # a recurrent neuron layer's own weights are not a core (rule `recurrent` names it)
        if w.kind not in _WEIGHT or "recurrent_of" in w.attrs:
            continue
        layer = _weight_layer(ag, w)
        claimed.add(w.name)
        cur = w.name
        while True:
            succ = ag.succ.get(cur, [])
            if len(succ) != 1:
                layer.blocker = [ag.node(s) for s in succ]
                break
            n = ag.node(succ[0])
            if n.kind == "spiking":
                if n.name in spiking_owner:
                    layer.spiking_shared_with = spiking_owner[n.name]
                else:
                    spiking_owner[n.name] = layer.name
                    layer.spiking = n
                    layer.members.append(n.name)
                    claimed.add(n.name)
                break
            if n.kind in _PASS or n.kind == "pool":
                if n.kind == "pool":
                    layer.pools_before.append(n)
                layer.members.append(n.name)
                claimed.add(n.name)
                cur = n.name
                continue
            layer.blocker = [n]
            break
        layers.append(layer)
    by_name = {layer.name: layer for layer in layers}
    for layer in layers:
        if layer.spiking is not None:
            layer.destinations = _walk_destinations(ag, layer.spiking.name, claimed, layer.members)
    members: list[str] = []
    dvs_dest = _walk_destinations(ag, INPUT, claimed, members)
    dvs: ChipLayer | None = None
    if any(d.pools for d in dvs_dest):
        shape = _map3(graph.input_shape)
        dvs = ChipLayer(
            name="dvs",
            weight=None,
            members=members,
            kind="dvs",
            in_shape=shape,
            out_shape=shape,
            c_in=shape[0],
            c_out=shape[0],
            destinations=dvs_dest,
        )
    input_src = "dvs" if dvs is not None else INPUT
    for d in dvs_dest:
        if d.target in by_name:
            by_name[d.target].sources.append((input_src, d))
    for layer in layers:
        for d in layer.destinations:
            if d.target in by_name:
                by_name[d.target].sources.append((layer.name, d))
    return layers, dvs


# --------------------------------------------------------------------------- core assignment


@dataclass
class CoreAssignment:
    """A maximum matching of chip layers to cores.

    ``core_of[i]`` is the core of layer i (``None``: unassigned); ``candidates[i]`` the cores
    layer i fits, smallest first; ``witnesses`` one Hall-violating set per unassigned layer that
    fits some core: (layers, the only cores they fit), with fewer cores than layers.
    """

    core_of: list[int | None]
    candidates: list[list[int]]
    witnesses: list[tuple[list[int], list[int]]]

    @property
    def complete(self) -> bool:
        return all(c is not None for c in self.core_of)


def assign_cores(needs: Sequence[Sequence[int]], table: CoreTable) -> CoreAssignment:
    """Assign each layer (its (kernel, neuron, bias) need in words) to its own core.

    Maximum bipartite matching by augmenting paths (Kuhn), deterministic: layers in order,
    candidate cores by total capacity ascending (so small cores are used first and large ones
    stay free). If some layer stays unassigned, the layers reachable from it by alternating
    paths fit only the cores matched to them: a set with fewer fitting cores than layers.
    """
    n_cores = len(table)
    cand = [
        sorted(
            (c for c in range(n_cores) if table.fits(need, c)), key=lambda c: (table.total(c), c)
        )
        for need in needs
    ]
    core_of: list[int | None] = [None] * len(needs)
    layer_on: list[int | None] = [None] * n_cores

    def augment(i: int, seen: set[int]) -> bool:
        for c in cand[i]:
            if c in seen:
                continue
            seen.add(c)
            j = layer_on[c]
            if j is None or augment(j, seen):
                layer_on[c] = i
                core_of[i] = c
                return True
        return False

    for i in range(len(needs)):
        if cand[i]:
            augment(i, set())

    witnesses: list[tuple[list[int], list[int]]] = []
    seen_sets: set[tuple[int, ...]] = set()
    for u in range(len(needs)):
        if core_of[u] is not None or not cand[u]:
            continue
        zl, zc, stack = {u}, set(), [u]
        while stack:
            i = stack.pop()
            for c in cand[i]:
                if c in zc:
                    continue
                zc.add(c)
                j = layer_on[c]
                if j is not None and j not in zl:
                    zl.add(j)
                    stack.append(j)
        key = tuple(sorted(zl))
        if key not in seen_sets:
            seen_sets.add(key)
            witnesses.append((sorted(zl), sorted(zc)))
    return CoreAssignment(core_of, cand, witnesses)


# --------------------------------------------------------------------------- formatting


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


def _memory_violations(layer: ChipLayer, cand: list[int], table: CoreTable) -> list[Violation]:
    """A layer that fits no core: name the resource, needed vs the largest core, and changes
    that make it fit."""
    if cand:
        return []
    need = dict(zip(RESOURCES, layer.need, strict=True))
    opts: list[_Option] = []
    for group in _core_groups(table):
        opts += _fit_options(layer, table.caps(group[0]), fmt_cores(group))
    out = []
    for i, r in enumerate(RESOURCES):
        caps = [table.caps(c)[i] for c in range(len(table))]
        top = max(caps)
        if need[r] > top:
            at = [c for c in range(len(table)) if caps[c] == top]
            rel = [o for o in opts if r != "bias" or "bias" in o.text] or opts
            fallback = (
                "remove the bias (bias=False)"
                if r == "bias"
                else "split the layer into smaller layers"
            )
            out.append(
                _v(
                    layer.name,
                    f"{r}-memory",
                    need[r],
                    top,
                    f"{r} memory {fmt_words(need[r])} > {fmt_words(top)} words "
                    f"(largest: core{'s' if len(at) > 1 else ''} {fmt_cores(at)})",
                    _best_hint(rel, fallback),
                )
            )
    if out:
        return out
    per = []
    for i, r in enumerate(RESOURCES):
        if need[r] == 0:
            continue
        have = [c for c in range(len(table)) if table.caps(c)[i] >= need[r]]
        per.append(
            f"{r} {fmt_words(need[r])} (core{'s' if len(have) > 1 else ''} {fmt_cores(have)})"
        )
    return [
        _v(
            layer.name,
            "memory-combination",
            ", ".join(f"{r} {fmt_words(need[r])}" for r in RESOURCES),
            "one core with all three",
            "no core has enough memory for all of " + ", ".join(per),
            _best_hint(opts, "split the layer into smaller layers"),
        )
    ]


def _hall_violation(
    layers: list[ChipLayer], zl: list[int], zc: list[int], table: CoreTable
) -> Violation:
    """Explain a missing assignment: ``zl`` layers fit only the ``zc`` cores, |zc| < |zl|."""
    names = ", ".join(layers[i].name for i in zl)
    k = len(zl)
    best = None
    for ri, r in enumerate(RESOURCES):
        m = min(layers[i].need[ri] for i in zl)
        if m == 0:
            continue
        have = [c for c in range(len(table)) if table.caps(c)[ri] >= m]
        if len(have) < k and (best is None or len(have) < len(best[2])):
            best = (r, m, have)
    if best is not None:
        r, m, have = best
        msg = (
            f"{k} layers ({names}) need >= {fmt_words(m)} {r} memory, but only {len(have)} "
            f"core{'s' if len(have) != 1 else ''} ({fmt_cores(have)}) have it"
        )
    else:
        msg = (
            f"{k} layers ({names}) fit only on {len(zc)} cores ({fmt_cores(zc)}); the other "
            "cores lack their kernel, neuron or bias memory"
        )
    outside = [c for c in range(len(table)) if c not in zc]
    opts: list[_Option] = []
    for group in _core_groups(table, outside):
        for i in zl:
            opts += _fit_options(layers[i], table.caps(group[0]), fmt_cores(group))
    surplus = k - len(zc)
    fallback = f"remove or merge {surplus} of these layers"
    hint = _best_hint(opts, fallback)
    if opts:
        hint = f"make one of them fit another core: {hint}; or {fallback}"
    return _v(names.replace(" ", ""), "core-assignment", k, len(zc), msg, hint)


# --------------------------------------------------------------------------- report


class DynapcnnFitReport(FitReport):
    """A :class:`FitReport` whose ``str()`` also shows the chip layers and their cores."""

    def __str__(self) -> str:
        text = super().__str__()
        if self.layers is None or not len(self.layers):
            return text
        rows = []
        for name, r in self.layers.iterrows():

            def mem(col: str, r: Any = r) -> str:
                v = r[col]
                return "-" if pd.isna(v) else fmt_words(int(v))

            def pct(col: str, r: Any = r) -> str:
                v = r[col]
                return "-" if pd.isna(v) else f"{v:.0f}%"

            rows.append(
                [
                    str(name),
                    r["core"] or "none",
                    _shape(r["in_shape"]),
                    _shape(r["out_shape"]),
                    f"{mem('kernel_mem_words')}/{mem('kernel_limit_words')}",
                    f"{mem('neuron_mem_words')}/{mem('neuron_limit_words')}",
                    f"{mem('bias_mem_words')}/{mem('bias_limit_words')}",
                    pct("kernel_util_pct"),
                    pct("neuron_util_pct"),
                ]
            )
        head = ["layer", "core", "in", "out", "kernel", "neuron", "bias", "kernel%", "neuron%"]
        widths = [max(len(h), *(len(row[i]) for row in rows)) for i, h in enumerate(head)]
        lines = ["  " + "  ".join(h.ljust(w) for h, w in zip(head, widths, strict=True))]
        lines += [
            "  " + "  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)) for row in rows
        ]
        return text + "\n  chip layers (memory used/core capacity, words):\n" + "\n".join(lines)


def _dedupe(vs: list[Violation]) -> list[Violation]:
    seen: set[tuple] = set()
    out = []
    for v in vs:
        key = (v.layer, v.rule, v.message)
        if key not in seen:
            seen.add(key)
            out.append(v)
    return out


def map_dynapcnn(
    graph: LayerGraph, profile: ChipProfile, analysis: Any = None
) -> DynapcnnFitReport:
    """Check ``graph`` against a DYNAP-CNN-family chip: every rule, memory, core assignment.

    ``analysis`` (activity) is accepted for the common mapper signature but not used: no
    per-core SynOps/s limit is published for these chips.
    """
    table = CoreTable.from_profile(profile)
    layers, dvs = build_chip_layers(graph)
    ctx = _Ctx(profile, table, graph, layers, dvs)
    notes: list[str] = []
    violations: list[Violation] = []

    for node in graph:
        if "recurrent_of" in node.attrs:
            continue
        for nrule in NODE_RULES:
            violations += nrule(node, ctx)
    units = ([dvs] if dvs is not None else []) + layers
    for unit in units:
        for rule in LAYER_RULES:
            violations += rule(unit, ctx)
    violations += rule_sinabs_discretize(layers, ctx)

    n_cores = len(table)
    if len(layers) > n_cores:
        violations.append(
            _v(
                "model",
                "layer-count",
                len(layers),
                n_cores,
                f"{len(layers)} chip layers (weight layer + IAF each) > {n_cores} cores",
                f"remove or merge {len(layers) - n_cores} layer{'s' if len(layers) - n_cores > 1 else ''} (e.g. fold two convs into one, or "
                "drop a layer and widen its neighbour)",
            )
        )
    assignment = assign_cores([layer.need for layer in layers], table)
    for layer, cand in zip(layers, assignment.candidates, strict=True):
        violations += _memory_violations(layer, cand, table)
    for zl, zc in assignment.witnesses:
        if len(layers) > n_cores and len(zc) == n_cores:
            continue  # the same fact as layer-count
        violations.append(_hall_violation(layers, zl, zc, table))
    violations = _dedupe(violations)

    # notes
    for unit in units:
        for d in unit.destinations:
            for p in d.pools:
                if p.attrs.get("pool_type") == "avg":
                    k = max(p.attrs.get("kernel_size", (1, 1)))
                    to = f" ('{d.target}')" if d.target else ""
                    notes.append(
                        f"AvgPool2d '{p.name}' ({k}x{k}) runs as SumPool on the chip: the next "
                        f"layer's weights{to} must be divided by k*k = {k * k} (sinabs does this "
                        "when converting)"
                    )
    for layer in layers:
        if layer.kind == "linear" and layer.kernel != (1, 1):
            notes.append(
                f"Linear '{layer.name}' runs as a conv with a {layer.kernel[0]}x{layer.kernel[1]} "
                f"kernel over its {_shape(layer.in_shape)} input map"
            )
    if analysis is not None:
        notes.append("activity not used: no per-core SynOps/s limit is published for this chip")
    notes.append(
        "memory words by sinabs' formulas: kernel = c_in * 2^(ceil(log2(kx*ky)) + "
        "ceil(log2(c_out))), neuron = c_out * 2^(ceil(log2(H_out)) + ceil(log2(W_out))), bias = c_out"
    )
    notes.append(
        "utilisation_pct = neuron memory needed by all chip layers / neuron memory of all cores"
    )

    layers_df = _layers_frame(units, layers, assignment, table)
    cores_df = _cores_frame(layers, assignment, table)
    errors = [v for v in violations if v.severity == ERROR]
    summary = _summary(layers, assignment, table, errors)
    summary["violations"] = len(violations)
    return DynapcnnFitReport(
        chip=profile.name,
        family=FAMILY,
        layers=layers_df,
        cores=cores_df,
        violation_list=violations,
        summary=summary,
        notes=list(dict.fromkeys(notes)),
    )


LAYER_COLUMNS = [
    "members",
    "core",
    "n_cores",
    "type",
    "in_shape",
    "out_shape",
    "kernel_size",
    "stride",
    "padding",
    "pooling",
    "destinations",
    "fits_cores",
    "kernel_mem_words",
    "neuron_mem_words",
    "bias_mem_words",
    "kernel_limit_words",
    "neuron_limit_words",
    "bias_limit_words",
    "kernel_util_pct",
    "neuron_util_pct",
]


def _layers_frame(
    units: list[ChipLayer], layers: list[ChipLayer], a: CoreAssignment, table: CoreTable
) -> pd.DataFrame:
    index = {layer.name: i for i, layer in enumerate(layers)}
    rows = []
    for u in units:
        i = index.get(u.name)
        core = a.core_of[i] if i is not None else None
        caps = table.caps(core) if core is not None else (None, None, None)
        k, n, b = u.need
        rows.append(
            {
                "members": ",".join(u.members),
                "core": "dvs" if not u.is_core else ("" if core is None else str(core)),
                "n_cores": 0 if core is None else 1,
                "type": u.kind,
                "in_shape": tuple(u.in_shape),
                "out_shape": tuple(u.out_shape),
                "kernel_size": max(u.kernel) if u.is_core else 0,
                "stride": max(u.stride) if u.kind == "conv" else 1,
                "padding": max(u.padding, default=0) if u.kind == "conv" else 0,
                "pooling": ",".join(str(d.factor) for d in u.destinations)
                if u.destinations
                else "",
                "destinations": ",".join(d.target or "out" for d in u.destinations),
                "fits_cores": fmt_cores(a.candidates[i]) if i is not None else "",
                "kernel_mem_words": k,
                "neuron_mem_words": n,
                "bias_mem_words": b,
                "kernel_limit_words": caps[0],
                "neuron_limit_words": caps[1],
                "bias_limit_words": caps[2],
                "kernel_util_pct": 100.0 * k / caps[0] if caps[0] else float("nan"),
                "neuron_util_pct": 100.0 * n / caps[1] if caps[1] else float("nan"),
            }
        )
    df = pd.DataFrame(
        rows, columns=LAYER_COLUMNS, index=pd.Index([u.name for u in units], name="layer")
    )
    for col in ("kernel_limit_words", "neuron_limit_words", "bias_limit_words"):
        df[col] = df[col].astype("Int64")
    for col in ("kernel_util_pct", "neuron_util_pct"):
        df[col] = df[col].astype(float)
    return df


def _cores_frame(layers: list[ChipLayer], a: CoreAssignment, table: CoreTable) -> pd.DataFrame:
    on_core = {c: layers[i] for i, c in enumerate(a.core_of) if c is not None}
    rows = []
    for c in range(len(table)):
        K, N, B = table.caps(c)
        layer = on_core.get(c)
        k, n, b = layer.need if layer is not None else (0, 0, 0)
        rows.append(
            {
                "kernel_capacity_words": K,
                "neuron_capacity_words": N,
                "bias_capacity_words": B,
                "kernel_used_words": k,
                "neuron_used_words": n,
                "bias_used_words": b,
                "kernel_free_words": K - k,
                "neuron_free_words": N - n,
                "bias_free_words": B - b,
                "assigned_layer": layer.name if layer is not None else "",
                "kernel_util_pct": 100.0 * k / K if K else 0.0,
                "neuron_util_pct": 100.0 * n / N if N else 0.0,
            }
        )
    return pd.DataFrame(rows, index=pd.Index(range(len(table)), name="core"))


_BINDING_ORDER = (
    "layer-count",
    "core-assignment",
    "kernel-memory",
    "neuron-memory",
    "bias-memory",
    "memory-combination",
)


def _summary(
    layers: list[ChipLayer], a: CoreAssignment, table: CoreTable, errors: list[Violation]
) -> dict[str, Any]:
    n_cores = len(table)
    used = sum(c is not None for c in a.core_of)
    neuron_need = sum(layer.neuron_mem for layer in layers)
    kernel_need = sum(layer.kernel_mem for layer in layers)
    neuron_cap = sum(table.neuron)
    kernel_cap = sum(table.kernel)
    ratios: list[tuple[float, str]] = [
        (used / n_cores if n_cores else 0.0, f"cores: {used} of {n_cores} used")
    ]
    for layer, c in zip(layers, a.core_of, strict=True):
        if c is None:
            continue
        for ri, r in enumerate(("kernel", "neuron")):
            cap = table.caps(c)[ri]
            need = layer.need[ri]
            if cap:
                ratios.append(
                    (
                        need / cap,
                        f"{r} memory of '{layer.name}' on core {c}: {fmt_words(need)} of "
                        f"{fmt_words(cap)} words ({100 * need / cap:.0f}%)",
                    )
                )
    max_core = max((r for r, _ in ratios[1:]), default=0.0)
    if errors:
        ranked = sorted(
            errors,
            key=lambda v: (
                _BINDING_ORDER.index(v.rule) if v.rule in _BINDING_ORDER else len(_BINDING_ORDER)
            ),
        )
        binding = f"{ranked[0].layer}: {ranked[0].message}"
    else:
        binding = max(ratios, key=lambda t: t[0])[1]
    return {
        "cores_used": used,
        "cores_available": n_cores,
        "chip_layers": len(layers),
        "utilisation_pct": 100.0 * neuron_need / neuron_cap if neuron_cap else 0.0,
        "binding_constraint": binding,
        "kernel_mem_words": kernel_need,
        "neuron_mem_words": neuron_need,
        "kernel_capacity_words": kernel_cap,
        "neuron_capacity_words": neuron_cap,
        "max_core_util_pct": 100.0 * max_core,
    }


register_family(
    FamilySpec(
        name=FAMILY,
        limits=LIMITS,
        mapper=map_dynapcnn,
        description="SynSense DYNAP-CNN / Speck: convolutional cores, each conv -> IAF -> sum pool",
        validate=CoreTable.from_profile,
    )
)
