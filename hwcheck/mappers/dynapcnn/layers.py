"""The layer graph grouped into chip layers (weight layer -> IAF -> pooling per destination), with
the shapes each core sees.
"""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field

from hwcheck.graph import INPUT, LayerGraph, LayerNode
from hwcheck.mappers.dynapcnn.memory import (
    _PASS,
    _WEIGHT,
    bias_memory_words,
    kernel_memory_words,
    neuron_memory_words,
)


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
