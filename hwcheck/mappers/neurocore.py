"""Many-core neuromorphic chips: Intel Loihi / Loihi 2, IBM TrueNorth, SpiNNaker 1 / 2.

These chips are grids of identical cores. A core holds a slice of one layer's neurons together
with the synapses *into* those neurons (synapses live with the post-synaptic neuron), so a layer
is split over as many cores as its per-core needs require:

* neurons per core (Loihi: 1024 compartments; TrueNorth: 256; SpiNNaker: a software default),
* distinct input axons per core (the pre-synaptic sources that reach the core's neurons),
* synapse memory per core (nonzero synapses times the bits of the synapse encoding),
* output axons per core (one per (source neuron, destination core) pair).

Where the profile has ``conv_population_axons`` (Loihi, as nengo-loihi builds convolutions), a
convolution that mixes channels is read through population axons: one input axon per source
position, one output axon (``conv_population_axon_slots`` slots) per (source position,
destination core), and weights stored once per distinct weight list -- the in-channel atoms
times the neurons of the core a position reaches -- shared by positions that reach the same
neurons (relative to the first) through the same taps, in the same window of
``conv_population_base_compartments`` compartments (:meth:`reach.ConvTerm.counts`).

The mapper walks back from every neuron layer through pooling, reshapes and the weight layer to
the source neuron layers (pooling is folded into the weight layer's connectivity). For any block
of neurons it counts the synapses each source sends into the block: in closed form from the
layer's structure where :mod:`hwcheck.mappers.reach` covers it (conv / pool chains, pooled or
sparse linear layers), else by autograd on the layer's connectivity as a linear map with 0/1
weights (1 where the weight is nonzero). Layers are split readers first, so that a layer's
output axons (one per destination core of each neuron) are known when it is split. Neurons are
split greedily into contiguous blocks in one of two orders (flat ``(C, H, W)`` order or
position-major ``(H, W, C)`` order, whichever needs fewer cores). For feasibility tests that only
grow with the block (all but population weight memory), greedy is the fewest-cores contiguous
split; ``tests/test_neurocore.py`` checks it against a brute-force search. Population weight
memory can shrink as a block grows (a block that completes rows or channel planes shares more
lists), so for such layers splits kept to whole rows / planes are tried too and the fewest
cores kept (within one core of the brute-force optimum on the tests, pinned where not equal).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np
import pandas as pd
import torch
import torch.nn.functional as F

from hwcheck import progress
from hwcheck.graph import INPUT, LayerGraph, LayerNode
from hwcheck.mappers.base import ERROR, WARNING, FitReport, Violation
from hwcheck.mappers.reach import (
    ConvTerm,
    LinearTerm,
    PlaneTouch,
    Reach,
    conv_map_of,
    identity_map,
    op_map,
    pooled_members,
)
from hwcheck.profiles import ChipProfile, FamilySpec, FigureSpec, register_family

__all__ = [
    "FAMILY",
    "LIMITS",
    "CoreLimits",
    "CoreUse",
    "Population",
    "build_populations",
    "core_limits",
    "map_neurocore",
    "partition",
    "row_bits",
    "synapse_bits",
]

FAMILY = "neurocore"

LIMITS: dict[str, FigureSpec] = {
    "cores_per_chip": FigureSpec("int", True, "neuron cores per chip"),
    "neurons_per_core": FigureSpec(
        "int", False, "neurons (compartments) one core holds; absent = unknown, no core count"
    ),
    "input_axons_per_core": FigureSpec("int", False, "distinct input axons one core accepts"),
    "output_axons_per_core": FigureSpec(
        "int", False, "output axons of one core: one per (neuron, destination core) pair"
    ),
    "synapse_memory_bits_per_core": FigureSpec("int", False, "synapse memory of one core"),
    "weight_bits": FigureSpec("int", False, "bits of one stored weight"),
    "synapse_overhead_bits": FigureSpec(
        "int", False, "bits per stored synapse beyond the weight in the sparse encoding (index)"
    ),
    "synapse_row_header_bits": FigureSpec(
        "int", False, "bits of fixed fields per synapse row (one row per input axon and block)"
    ),
    "synapse_row_synapses": FigureSpec("int", False, "most synapses one row holds"),
    "synapse_word_bits": FigureSpec("int", False, "each row is rounded up to this many bits"),
    "fan_in_per_core": FigureSpec(
        "int", False, "most inputs one neuron may read (TrueNorth: the 256 axons of its core)"
    ),
    "crossbar_binary": FigureSpec("bool", False, "synapses are 1-bit crossbar connections"),
    "synapse_index_bits_by_block": FigureSpec(
        "bool",
        False,
        "the sparse encoding's index bits are sized to the core's neurons (at most "
        "synapse_overhead_bits)",
    ),
    "conv_population_axons": FigureSpec(
        "bool",
        False,
        "convolutions use population axons: one input axon per input position, the channel "
        "travels with the spike; their weights are stored once per distinct weight list",
    ),
    "conv_population_axon_slots": FigureSpec(
        "int", False, "output-axon slots one population axon takes (default 1)"
    ),
    "conv_population_base_compartments": FigureSpec(
        "int",
        False,
        "the compartment base of a population axon is below this; weight lists are shared only "
        "by axons whose first target lies in the same window of this many compartments",
    ),
    "chips_max": FigureSpec("int", False, "most chips a system offers; absent = not checked"),
    "timestep_s": FigureSpec("number", False, "length of one time step (global tick)"),
}

#: Limits that are checked when present; each one missing gets a "not checked" note.
CHECKED_LIMITS = (
    "neurons_per_core",
    "input_axons_per_core",
    "output_axons_per_core",
    "synapse_memory_bits_per_core",
)

POPULATION_KINDS = ("spiking", "neuron", "activation")
SOURCE_KINDS = (*POPULATION_KINDS, "unknown")
ORDERS = ("C,H,W", "H,W,C")

_RESOURCE_LABEL = {
    "neurons": "neurons per core",
    "axons_in": "input axons per core",
    "axons_out": "output axons per core",
    "synapse_bits": "synapse memory per core",
}


# --------------------------------------------------------------------------------------------
# Core limits and the synapse encoding
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class CoreLimits:
    """Per-core capacities (None = unknown, not checked) and the synapse encoding.

    Synapse memory follows the row format published in nengo-loihi (``SynapseConfig.
    bits_per_axon``): each input axon stores its synapses into the core in rows of at most
    ``row_synapses`` entries; a row costs ``n * bits_per_synapse + row_header_bits`` rounded up
    to ``word_bits``. With ``overhead_bits > 0`` (index bits of the sparse encoding) the cheaper
    of the sparse encoding (only nonzero synapses, ``weight_bits + overhead_bits`` each) and the
    dense encoding (one ``weight_bits`` entry per neuron of the core, zeros included) is used.
    """

    neurons: int | None = None
    axons_in: int | None = None
    axons_out: int | None = None
    synapse_bits: int | None = None
    fan_in: int | None = None
    weight_bits: int = 8
    overhead_bits: int = 0
    row_header_bits: int = 0
    row_synapses: int | None = None
    word_bits: int = 1
    population_axons: bool = False
    index_bits_by_block: bool = False
    population_axon_slots: int = 1
    population_base: int | None = None

    @property
    def partitionable(self) -> bool:
        return any(x is not None for x in (self.neurons, self.axons_in, self.synapse_bits))


def core_limits(profile: ChipProfile) -> CoreLimits:
    """The per-core limits of a neurocore profile."""
    wb = profile.limit("weight_bits")
    return CoreLimits(
        neurons=profile.limit("neurons_per_core"),
        axons_in=profile.limit("input_axons_per_core"),
        axons_out=profile.limit("output_axons_per_core"),
        synapse_bits=profile.limit("synapse_memory_bits_per_core"),
        fan_in=profile.limit("fan_in_per_core"),
        weight_bits=8 if wb is None else int(wb),
        overhead_bits=int(profile.limit("synapse_overhead_bits", 0)),
        row_header_bits=int(profile.limit("synapse_row_header_bits", 0)),
        row_synapses=profile.limit("synapse_row_synapses"),
        word_bits=max(1, int(profile.limit("synapse_word_bits", 1))),
        population_axons=bool(profile.limit("conv_population_axons", False)),
        index_bits_by_block=bool(profile.limit("synapse_index_bits_by_block", False)),
        population_axon_slots=max(1, int(profile.limit("conv_population_axon_slots", 1))),
        population_base=profile.limit("conv_population_base_compartments"),
    )


_BLOCK_LIMITS: dict[tuple[CoreLimits, int], CoreLimits] = {}


def block_limits(lim: CoreLimits, k: int) -> CoreLimits:
    """``lim`` with the sparse encoding's index bits of a core of ``k`` neurons: with
    ``index_bits_by_block``, as few as address ``k`` compartments (0 for one, else at least 6,
    nengo-loihi's ``Synapse.idx_bits`` over ``INDEX_BITS_MAP``), at most ``overhead_bits``."""
    if not lim.index_bits_by_block or lim.overhead_bits <= 0:
        return lim
    bits = 0 if k <= 1 else min(lim.overhead_bits, max(6, math.ceil(math.log2(k))))
    key = (lim, bits)
    got = _BLOCK_LIMITS.get(key)
    if got is None:
        got = _BLOCK_LIMITS[key] = replace(lim, overhead_bits=bits, index_bits_by_block=False)
    return got


def row_bits(n: np.ndarray | int, bits_per_synapse: int, lim: CoreLimits) -> np.ndarray:
    """Bits used by input axons that store ``n`` synapses each (0 for axons with none)."""
    n = np.asarray(n, dtype=np.int64)
    w = lim.word_bits

    def rounded(k: np.ndarray) -> np.ndarray:
        raw = k * bits_per_synapse + lim.row_header_bits
        return -(-raw // w) * w

    if lim.row_synapses is None:
        return np.where(n > 0, rounded(n), 0)
    r = int(lim.row_synapses)
    full, rem = n // r, n % r
    return full * rounded(np.int64(r)) + np.where(rem > 0, rounded(rem), 0)


def index_bits(max_index: int, lim: CoreLimits) -> int:
    """Index bits of the sparse encoding for a synapse list whose largest compartment index is
    ``max_index``: with ``index_bits_by_block`` as nengo-loihi's ``Synapse.idx_bits`` (0 for
    index 0, else ``ceil(log2(max_index + 1))``, at least 6), at most ``overhead_bits``."""
    if not lim.index_bits_by_block or lim.overhead_bits <= 0:
        return lim.overhead_bits
    need = math.ceil(math.log2(max_index + 1)) if max_index > 0 else 0
    return 0 if need == 0 else min(lim.overhead_bits, max(6, need))


def population_bits(entries: np.ndarray, max_index: int, lim: CoreLimits) -> int:
    """Synapse memory of a convolution read through population axons in one core: one sparse
    row set (weight + index bits per entry, rows of ``row_synapses``) per distinct weight list of
    ``entries[i]`` entries (atoms x targets), as nengo-loihi stores population weights
    (``set_population_weights``: compression 0, ``Synapse.bits``)."""
    entries = np.asarray(entries, dtype=np.int64)
    return int(row_bits(entries, lim.weight_bits + index_bits(max_index, lim), lim).sum())


def synapse_bits(counts: np.ndarray, n_neurons: int, lim: CoreLimits) -> int:
    """Synapse memory of one core: ``counts[i]`` synapses from input axon ``i`` into the core's
    ``n_neurons`` neurons. Cheaper of the sparse and (when it differs) the dense encoding."""
    counts = np.asarray(counts, dtype=np.int64)
    used = counts[counts > 0]
    sparse = int(row_bits(used, lim.weight_bits + lim.overhead_bits, lim).sum())
    if lim.overhead_bits <= 0:
        return sparse
    dense = int(len(used) * row_bits(np.int64(n_neurons), lim.weight_bits, lim))
    return min(sparse, dense)


# --------------------------------------------------------------------------------------------
# Populations: a neuron layer and the linear map that feeds it
# --------------------------------------------------------------------------------------------


class _Unsupported(Exception):
    def __init__(self, node: str, message: str, hint: str) -> None:
        super().__init__(message)
        self.node, self.message, self.hint = node, message, hint


@dataclass
class Population:
    """A neuron layer as the chip sees it.

    ``forward(env)`` maps source activity ``{source: (B, n_source)}`` to the layer input
    ``(B, neurons)`` through the structural linear map (weight 1 where the model's weight is
    nonzero, sum pooling), so ``forward(ones)`` counts synapses per neuron and the gradient of
    ``forward`` counts the synapses each source sends into a block of neurons.
    """

    name: str
    kind: str
    shape: tuple[int, ...]
    members: tuple[str, ...]
    weight_nodes: tuple[str, ...]
    sources: dict[str, int]
    forward: Callable[[Mapping[str, torch.Tensor]], torch.Tensor]
    exact: bool = True
    folded_pools: tuple[str, ...] = ()
    chain_sources: tuple[str, ...] = ()
    notes: list[str] = field(default_factory=list)
    fast: Reach | None = None
    #: destination cores that read each neuron (flat index), once the readers are split: the
    #: split then keeps every core's output axons within the limit
    out_cost: np.ndarray | None = None
    #: output axons that population axons need per position of the layer (slots x destination
    #: cores reading the position), with the layer's channels and positions: a core needs them
    #: once for every position it holds a neuron of, whatever its channels
    out_pos: tuple[np.ndarray, int, int] | None = None
    _out_prefix: dict[str, np.ndarray] = field(default_factory=dict, repr=False)
    _syn: np.ndarray | None = None

    @property
    def n(self) -> int:
        return int(math.prod(self.shape))

    def synapses_per_neuron(self) -> np.ndarray:
        """Nonzero synapses of every neuron (an upper bound when ``exact`` is False)."""
        if self._syn is None and self.fast is not None:
            self._syn = self.fast.per_neuron(self.n)
        if self._syn is None:
            with torch.no_grad():
                env = {s: torch.ones(1, k) for s, k in self.sources.items()}
                y = self.forward(env).reshape(-1) if self.sources else torch.zeros(self.n)
            self._syn = np.rint(y.double().numpy()).astype(np.int64)
        return self._syn

    def reach(self, masks: torch.Tensor) -> dict[str, np.ndarray]:
        """Synapses from each source element into each block: ``{source: (B, n_source)}``.

        ``masks`` is ``(B, neurons)`` with 1 for the neurons of block b. Counts are exact path
        counts of the structural map; ``> 0`` marks the input axons the block needs.
        """
        if not self.sources:
            return {}
        b = masks.shape[0]
        env = {s: torch.zeros(b, k, requires_grad=True) for s, k in self.sources.items()}
        y = self.forward(env).reshape(b, -1)
        grads = torch.autograd.grad(y, list(env.values()), grad_outputs=masks, allow_unused=True)
        out = {}
        for (s, k), g in zip(self.sources.items(), grads, strict=True):
            out[s] = (
                np.zeros((b, k), np.int64) if g is None else np.rint(g.numpy()).astype(np.int64)
            )
        return out

    def _prefix(self, order: str) -> np.ndarray:
        pre = self._out_prefix.get(order)
        if pre is None:
            pre = np.zeros(self.n + 1, np.int64)
            np.cumsum(self.out_cost[self.order(order)], out=pre[1:])
            self._out_prefix[order] = pre
        return pre

    def out_axons(self, order: str, a: int, e: int) -> int:
        """Output axons of neurons ``[a, e)`` in ``order`` (0 before the readers are split)."""
        got = 0
        if self.out_cost is not None:
            pre = self._prefix(order)
            got = int(pre[e] - pre[a])
        if self.out_pos is not None:
            got += int(self._pos_axons(order, a, e))
        return got

    def _pos_axons(self, order: str, a: int, e: int | np.ndarray) -> Any:
        """Population output axons of neurons ``[a, e)`` (``e`` one end or an array of ends):
        the cost of every position held."""
        cost, c, plane = self.out_pos
        pre = self._out_prefix.get("positions")
        if pre is None:
            pre = self._out_prefix["positions"] = np.zeros(plane + 1, np.int64)
            np.cumsum(cost, out=pre[1:])
        if order == "H,W,C" and len(self.shape) >= 2:  # positions a // C .. (e - 1) // C
            return pre[(np.asarray(e) - 1) // c + 1] - pre[a // c]
        o0, p0 = divmod(a, plane)
        if not isinstance(e, np.ndarray):  # one end: plain integers
            o1, p1 = divmod(e - 1, plane)
            if o1 == o0:
                return int(pre[p1 + 1] - pre[p0])
            if o1 - o0 >= 2 or p1 + 1 >= p0:
                return int(pre[plane])
            return int(pre[plane] - pre[p0] + pre[p1 + 1])
        last = e - 1
        o1, p1 = np.divmod(last, plane)
        whole = (o1 - o0 >= 2) | ((o1 > o0) & (p1 + 1 >= p0))
        return np.where(
            o1 == o0,
            pre[p1 + 1] - pre[p0],
            np.where(whole, pre[plane], pre[plane] - pre[p0] + pre[p1 + 1]),
        )

    def out_axon_end(self, order: str, a: int, limit: int, hi: int | None = None) -> int:
        """The largest end ``e`` (at most ``hi``) with the output axons of ``[a, e)`` within
        ``limit``."""
        hi = self.n if hi is None else hi
        if self.out_cost is None and self.out_pos is None:
            return hi
        if self.out_pos is None:
            pre = self._prefix(order)
            got = max(a + 1, int(np.searchsorted(pre, pre[a] + limit, side="right")) - 1)
            return min(hi, got)
        ends = np.arange(a + 1, hi + 1)  # output axons only grow with the block
        total = self._pos_axons(order, a, ends)
        if self.out_cost is not None:
            pre = self._prefix(order)
            total = total + pre[ends] - pre[a]
        return a + max(1, int(np.searchsorted(total, limit, side="right")))

    def order(self, name: str) -> np.ndarray:
        """Neuron indices (flat ``(C, *spatial)`` indices) in partition order ``name``."""
        n = self.n
        if name == "C,H,W" or len(self.shape) < 2:
            return np.arange(n)
        c = self.shape[0]
        return np.arange(n).reshape(c, -1).T.reshape(-1)


def _numel(shape: Sequence[int]) -> int:
    return int(math.prod(shape)) if len(shape) else 1


def _weight_mask(node: LayerNode) -> torch.Tensor:
    """1 where the layer has a nonzero weight (all ones when the module is not available)."""
    w = getattr(node.module, "weight", None)
    a = node.attrs
    if node.kind == "linear":
        shape: tuple[int, ...] = (int(a["out_features"]), int(a["in_features"]))
    else:
        k = tuple(int(x) for x in a["kernel_size"])
        shape = (int(a["out_channels"]), int(a["in_channels"]) // int(a.get("groups", 1)), *k)
    if isinstance(w, torch.Tensor) and tuple(w.shape) == shape:
        return (w.detach() != 0).cpu()
    return torch.ones(shape, dtype=torch.bool)


def _apply(node: LayerNode, x: torch.Tensor, mask: torch.Tensor | None) -> torch.Tensor:
    """One op of the structural map on ``x`` of shape ``(B, *node.in_shape)``."""
    a = node.attrs
    if mask is not None:
        mask = mask.to(x.dtype)
    if node.kind == "linear":
        return F.linear(x, mask)
    if node.kind == "conv":
        d = len(a["kernel_size"])
        pad = tuple(int(p) for p in a.get("padding", (0,) * d))
        mode = a.get("padding_mode", "zeros")
        if mode != "zeros" and any(pad):
            pairs = [p for q in reversed(pad) for p in (q, q)]
            x = F.pad(x, pairs, mode=mode)
            pad = (0,) * d
        conv = {1: F.conv1d, 2: F.conv2d, 3: F.conv3d}[d]
        return conv(
            x,
            mask,
            None,
            tuple(a.get("stride", (1,) * d)),
            pad,
            tuple(a.get("dilation", (1,) * d)),
            int(a.get("groups", 1)),
        )
    if node.kind == "pool":
        if "kernel_size" not in a:
            raise _Unsupported(
                node.name,
                f"`{node.name}`: pooling without a known kernel size",
                "use nn.AvgPool2d / sinabs SumPool2d with an explicit kernel",
            )
        k = tuple(int(v) for v in a["kernel_size"])
        d = len(k)
        s = tuple(int(v) for v in (a.get("stride") or k))
        p = tuple(int(v) for v in (a.get("padding") or (0,) * d))
        ceil = bool(a.get("ceil_mode", False))
        if d == 1:
            y = F.avg_pool2d(x.unsqueeze(-2), (1, *k), (1, *s), (0, *p), ceil, True, 1)
            return y.squeeze(-2)
        pool = {2: F.avg_pool2d, 3: F.avg_pool3d}[d]
        return pool(x, k, s, p, ceil, True, 1)
    return x


def _combine(node: LayerNode, inputs: list[torch.Tensor], b: int) -> torch.Tensor:
    """The input of ``node`` from the outputs of its predecessors (add or channel concat)."""
    target = tuple(node.in_shape)
    n_in = _numel(target)
    flat = [t.reshape(b, -1) for t in inputs]
    if len(flat) == 1 or node.kind == "merge" or all(f.shape[1] == n_in for f in flat):
        if any(f.shape[1] != n_in for f in flat):
            raise _Unsupported(
                node.name,
                f"`{node.name}`: inputs of {[f.shape[1] for f in flat]} elements do not add up "
                f"to its input shape {target}",
                "use inputs of equal shape for additions (pad before merging)",
            )
        return sum(flat[1:], flat[0]).reshape(b, *target)
    if sum(f.shape[1] for f in flat) == n_in and len(target) >= 1:
        rest = _numel(target[1:])
        parts = [f.reshape(b, -1, *target[1:]) for f in flat if f.shape[1] % rest == 0]
        if len(parts) == len(flat):
            return torch.cat(parts, dim=1)
    raise _Unsupported(
        node.name,
        f"`{node.name}`: cannot tell how its {len(flat)} inputs combine into shape {target}",
        "combine branches with an addition of equal shapes or a channel concatenation",
    )


def _build(graph: LayerGraph, target: str, readout: bool) -> Population:
    """The population of neuron node ``target`` (or of a weight node read out directly)."""
    tnode = graph[target]
    # 1) walk back to the sources; the first weight node on a path is synaptic, any weight node
    #    behind it is a source (a weight -> weight chain the chip cannot run).
    region: set[str] = set()
    sources: dict[str, int] = {}
    chain_sources: set[str] = set()
    synaptic: set[str] = set()
    stack: list[tuple[str, bool]] = [(target, readout)]
    seen: set[tuple[str, bool]] = set()
    while stack:
        name, past_weight = stack.pop()
        if (name, past_weight) in seen:
            continue
        seen.add((name, past_weight))
        node = graph[name]
        region.add(name)
        if node.has_weights:
            if name != target or readout:
                synaptic.add(name)
            past_weight = True
        for p in graph.predecessors(name):
            if p == INPUT:
                sources.setdefault(INPUT, 0)
                continue
            pn = graph[p]
            if pn.kind in SOURCE_KINDS and p != target:
                sources.setdefault(p, _numel(pn.out_shape))
            elif pn.has_weights and past_weight:
                chain_sources.add(p)
                sources.setdefault(p, _numel(pn.out_shape))
            else:
                stack.append((p, past_weight))
    if synaptic & chain_sources:
        raise _Unsupported(
            target,
            f"`{target}`: a weight layer reaches it both directly and through another weight layer",
            "put neurons between consecutive weight layers",
        )
    # the model input's size, from the node that reads it
    if INPUT in sources:
        readers = [n for n in region if INPUT in graph.predecessors(n)]
        sizes = {_numel(graph[n].in_shape) for n in readers if len(graph.predecessors(n)) == 1}
        if len(sizes) != 1:
            raise _Unsupported(
                target,
                f"`{target}`: cannot tell the size of the model input it reads",
                "feed the input to a single layer",
            )
        sources[INPUT] = sizes.pop()
    order = [n for n in graph.nodes if n in region]
    masks = {n: _weight_mask(graph[n]) for n in order if graph[n].has_weights and n in synaptic}
    exact = True
    folded: list[str] = []
    notes: list[str] = []
    for n in order:
        node = graph[n]
        if node.kind == "pool":
            folded.append(n)
            k = node.attrs.get("kernel_size", ())
            s = node.attrs.get("stride") or k
            if any(int(si) < int(ki) for si, ki in zip(s, k, strict=False)):
                exact = False
        if node.kind == "conv" and node.attrs.get("padding_mode", "zeros") != "zeros":
            exact = False
    # merged branches count a source twice only when both branches reach it
    upstream: dict[str, set[str]] = {}
    for n in order:
        branches = [
            ({p} if p in sources else upstream.get(p, set())) for p in graph.predecessors(n)
        ]
        upstream[n] = set().union(*branches) if branches else set()
        if any(a & b for i, a in enumerate(branches) for b in branches[i + 1 :]):
            exact = False
    recurrent = bool(tnode.attrs.get("recurrent")) and not readout
    rec_mask = None
    if recurrent:
        n_self = _numel(tnode.out_shape)
        from hwcheck.layers import recurrent_module

        found = recurrent_module(tnode.module) if tnode.module is not None else None
        rec = found[1] if found else None
        w = getattr(rec, "weight", None)
        if (
            isinstance(rec, torch.nn.Linear)
            and isinstance(w, torch.Tensor)
            and tuple(w.shape) == (n_self, n_self)
        ):
            rec_mask = (w.detach() != 0).to(torch.float32)
        else:
            rec_mask = torch.ones(n_self, n_self)
            notes.append(
                f"`{target}`: recurrent connections counted as all-to-all ({n_self} x {n_self})"
            )
        sources[target] = n_self

    def forward(env: Mapping[str, torch.Tensor]) -> torch.Tensor:
        b = next(iter(env.values())).shape[0]
        out: dict[str, torch.Tensor] = {}

        def value(p: str) -> torch.Tensor:
            return env[p] if p in env and (p not in out) else out[p]

        for n in order:
            node = graph[n]
            preds = graph.predecessors(n)
            if n == target and not readout:
                x = _combine(node, [value(p) for p in preds], b)
                y = x.reshape(b, -1)
                if rec_mask is not None:
                    y = y + F.linear(env[target], rec_mask)
                return y
            x = _combine(node, [value(p) for p in preds], b)
            y = _apply(node, x, masks.get(n))
            out[n] = y.reshape(b, *node.out_shape)
        return out[target].reshape(b, -1)

    members = tuple(n for n in order if n not in chain_sources)
    pop = Population(
        name=target,
        kind="readout" if readout else tnode.kind,
        shape=tuple(tnode.out_shape),
        members=members,
        weight_nodes=tuple(n for n in order if n in synaptic),
        sources=sources,
        forward=forward,
        exact=exact,
        folded_pools=tuple(folded),
        chain_sources=tuple(n for n in graph.nodes if n in chain_sources),
        notes=notes,
    )
    pop.fast = _structural_reach(graph, pop, readout, masks, rec_mask)
    return pop


def _size(graph: LayerGraph, name: str, sources: Mapping[str, int]) -> int:
    return sources[name] if name == INPUT else _numel(graph[name].out_shape)


def _chains(
    graph: LayerGraph, pop: Population, readout: bool
) -> list[tuple[str, list[str]]] | None:
    """Every path from a source into the population's input as ``(source, ops)``, the ops
    (conv, linear, pool nodes) in forward order; ``None`` for a concatenation."""
    sources = pop.sources

    def into(name: str) -> list[tuple[str, list[str]]] | None:
        preds = graph.predecessors(name)
        n_in = _numel(graph[name].in_shape)
        if len(preds) > 1 and any(_size(graph, p, sources) != n_in for p in preds):
            return None  # not an addition
        out: list[tuple[str, list[str]]] = []
        for p in preds:
            if p in sources and p != pop.name:
                out.append((p, []))
                continue
            got = feed(p)
            if got is None:
                return None
            out += got
        return out

    def feed(name: str) -> list[tuple[str, list[str]]] | None:
        got = into(name)
        if got is None:
            return None
        if graph[name].kind in ("conv", "linear", "pool"):
            return [(s, [*ops, name]) for s, ops in got]
        return got

    return feed(pop.name) if readout else into(pop.name)


def _structural_reach(
    graph: LayerGraph,
    pop: Population,
    readout: bool,
    masks: Mapping[str, torch.Tensor],
    rec_mask: torch.Tensor | None,
) -> Reach | None:
    """The population's connectivity in closed form (see :mod:`hwcheck.mappers.reach`), or
    ``None`` where only the general map can count it."""
    chains = _chains(graph, pop, readout)
    if chains is None:
        return None
    seen = [s for s, _ in chains] + ([pop.name] if rec_mask is not None else [])
    if len(set(seen)) != len(seen):
        return None  # a source reached on two paths
    terms: list[ConvTerm | LinearTerm] = []
    for src, ops in chains:
        term = _term(graph, pop, src, ops, masks)
        if term is None:
            return None
        terms.append(term)
    if rec_mask is not None:
        rec = rec_mask != 0
        terms.append(
            LinearTerm.of(pop.name, rec, perm_of=pop.order)
        )
    return Reach(terms)


def _term(
    graph: LayerGraph,
    pop: Population,
    src: str,
    ops: list[str],
    masks: Mapping[str, torch.Tensor],
) -> ConvTerm | LinearTerm | None:
    """One source's path as a convolution or a (pooled) linear map."""
    n_src = pop.sources[src]
    if not ops:  # fed straight through: neuron i reads source element i
        if n_src != pop.n:
            return None
        return ConvTerm(src, identity_map(pop.shape))
    nodes = [graph[o] for o in ops]
    size = n_src
    for nd in nodes:  # reshapes in between keep the flat order, so only sizes must agree
        if _numel(nd.in_shape) != size:
            return None
        size = _numel(nd.out_shape)
    if size != pop.n:
        return None
    weights = [i for i, nd in enumerate(nodes) if nd.kind in ("conv", "linear")]
    if len(weights) > 1:
        return None
    if weights and nodes[weights[0]].kind == "linear":
        i = weights[0]
        if i != len(nodes) - 1:
            return None
        mask = masks[ops[i]]
        if i == 0:
            return LinearTerm.of(src, mask, perm_of=pop.order)
        pools = [_node_map(nd, masks) for nd in nodes[:i]]
        pooled = conv_map_of(pools) if all(p is not None for p in pools) else None
        found = pooled_members(pooled, n_src) if pooled is not None else None
        if found is None:
            return None
        mult, members = found
        if mask.shape[1] != len(mult):
            return None
        return LinearTerm.of(src, mask, mult, members, perm_of=pop.order)
    maps = [_node_map(nd, masks) for nd in nodes]
    if any(m is None for m in maps):
        return None
    cmap = conv_map_of(maps)
    if cmap is None:
        return None
    if len(pop.shape) >= 2 and int(pop.shape[0]) != cmap.out_shape[0]:
        return None  # the position-major order would not match the map's channels
    return ConvTerm(src, cmap)


def _node_map(node: LayerNode, masks: Mapping[str, torch.Tensor]):
    mask = masks.get(node.name)
    if node.kind == "conv" and mask is None:
        mask = _weight_mask(node)
    return op_map(
        node.kind,
        node.attrs,
        tuple(node.in_shape),
        tuple(node.out_shape),
        None if mask is None else (mask != 0).numpy(),
    )


def build_populations(graph: LayerGraph) -> tuple[list[Population], list[Violation], list[str]]:
    """Every neuron layer of the graph as a :class:`Population`, plus the weight layers that
    no neuron layer follows (counted as non-spiking readout compartments) and the weight layers
    that feed another weight layer directly (counted as if neurons were put after them)."""
    pops: list[Population] = []
    violations: list[Violation] = []
    notes: list[str] = []
    covered: set[str] = set()
    chained: dict[str, str] = {}
    for node in graph:
        if node.kind not in POPULATION_KINDS:
            continue
        pop = _try_build(graph, node.name, False, violations)
        if pop is None:
            continue
        pops.append(pop)
        covered.update(pop.members)
        for src in pop.chain_sources:
            chained.setdefault(src, pop.weight_nodes[0] if pop.weight_nodes else pop.name)
    # recurrent weights of a neuron layer are part of that layer's population
    pending = [
        n for n in graph if n.has_weights and n.name not in covered and "recurrent_of" not in n.attrs
    ]
    while pending:
        node = pending.pop(0)
        if node.name in covered:
            continue
        pop = _try_build(graph, node.name, True, violations)
        if pop is None:
            covered.add(node.name)
            continue
        if node.name in chained:
            pop.kind = "chained"
        pops.append(pop)
        covered.update(pop.members)
        for src in pop.chain_sources:
            chained.setdefault(src, node.name)
            if src not in covered:
                pending.append(graph[src])
    for src, dst in chained.items():
        violations.append(
            Violation(
                src,
                "weight_chain",
                "weight -> weight",
                "weight -> neurons -> weight",
                f"`{src}` feeds weight layer `{dst}` without neurons in between; synapses on "
                "many-core chips only connect neurons (counted here as if neurons followed "
                f"`{src}`)",
                f"put a spiking layer after `{src}`, or merge `{src}` and `{dst}` into one layer "
                "(two linear maps in a row are one linear map)",
            )
        )
    order = list(graph.nodes)
    pops.sort(key=lambda p: order.index(p.name))
    uncovered = [n.name for n in graph if n.kind == "pool" and n.name not in covered]
    if uncovered:
        notes.append(
            f"not mapped: {', '.join(uncovered)} (after the last neuron layer; done off-chip)"
        )
    return pops, violations, notes


def _try_build(
    graph: LayerGraph, name: str, readout: bool, violations: list[Violation]
) -> Population | None:
    """Build a population and run its map once; a failure becomes a violation."""
    try:
        pop = _build(graph, name, readout)
        pop.synapses_per_neuron()
        return pop
    except _Unsupported as exc:
        violations.append(_unsupported_connectivity(exc))
    except (RuntimeError, ValueError, KeyError) as exc:
        violations.append(
            _unsupported_connectivity(
                _Unsupported(
                    name,
                    f"`{name}`: its connectivity could not be traced ({type(exc).__name__}: {exc})",
                    "check the layers between this neuron layer and its sources (supported: conv, "
                    "linear, avg/sum pooling, reshape, identity, addition, channel concatenation)",
                )
            )
        )
    return None


def _unsupported_connectivity(exc: _Unsupported) -> Violation:
    return Violation(
        exc.node, "unsupported_connectivity", "unsupported", "add or concat", exc.message, exc.hint
    )


# --------------------------------------------------------------------------------------------
# Partition
# --------------------------------------------------------------------------------------------


@dataclass
class CoreUse:
    """One core: a contiguous block ``[start, end)`` of a population in a given order."""

    layer: str
    start: int
    end: int
    neurons: int
    axons_in: int
    synapse_bits: int
    synapses: int
    feasible: bool
    touched: Callable[[], dict[str, Any]] | None = field(default=None, repr=False)

    def inputs(self) -> dict[str, np.ndarray | PlaneTouch | None]:
        """The source elements this core reads, per source: flat indices, a
        :class:`PlaneTouch`, or ``None`` for all of them."""
        return self.touched() if self.touched is not None else {}


class _RowBits:
    """``row_bits`` of every count up to the largest seen, for one encoding (a lookup table)."""

    def __init__(self, lim: CoreLimits) -> None:
        self.lim = lim
        self.table = np.zeros(1, np.int64)
        self._dense: dict[int, int] = {}

    def dense(self, k: int) -> int:
        """Bits of one dense row over ``k`` neurons (every neuron stored, zeros included)."""
        got = self._dense.get(k)
        if got is None:
            got = self._dense[k] = int(row_bits(np.int64(k), self.lim.weight_bits, self.lim))
        return got

    def __call__(self, m: int) -> np.ndarray:
        if m >= len(self.table):
            n = max(m + 1, 2 * len(self.table))
            bps = self.lim.weight_bits + self.lim.overhead_bits
            self.table = row_bits(np.arange(n, dtype=np.int64), bps, self.lim)
        return self.table


_LUTS: dict[CoreLimits, _RowBits] = {}


class _PopulationBits:
    """:func:`population_bits` under one set of limits (the format ``reach`` stores with)."""

    def __init__(self, lim: CoreLimits) -> None:
        self.lim, self.base = lim, lim.population_base

    def __call__(self, entries: np.ndarray, max_index: int) -> int:
        return population_bits(entries, max_index, self.lim)


_POPS: dict[CoreLimits, _PopulationBits] = {}


def _use(pop: Population, a: int, e: int, axons: int, bits: int, synapses: int,
         lim: CoreLimits, touched: Callable[[], dict[str, Any]], order: str) -> CoreUse:
    k = e - a
    ok = (
        (lim.neurons is None or k <= lim.neurons)
        and (lim.axons_in is None or axons <= lim.axons_in)
        and (lim.synapse_bits is None or bits <= lim.synapse_bits)
        and (lim.axons_out is None or pop.out_axons(order, a, e) <= lim.axons_out)
    )
    return CoreUse(pop.name, a, e, k, axons, bits, synapses, ok, touched)


def _evaluate(
    pop: Population,
    perm: np.ndarray,
    blocks: Sequence[tuple[int, int]],
    lim: CoreLimits,
    order: str = "C,H,W",
) -> list[CoreUse]:
    """Needs of each block ``[start, end)`` of neurons taken in order ``perm`` (``order``)."""
    if pop.fast is not None:
        fmt = None
        if lim.population_axons:
            fmt = _POPS.get(lim)
            if fmt is None:
                fmt = _POPS[lim] = _PopulationBits(lim)
        out = []
        for a, e in blocks:
            blim = block_limits(lim, e - a)
            lut = _LUTS.get(blim)
            if lut is None:
                lut = _LUTS[blim] = _RowBits(blim)
            got = pop.fast.block(order, a, e, lut, fmt)
            bits = got.sparse_bits
            if blim.overhead_bits > 0 and got.axons:
                bits = min(bits, got.axons * lut.dense(e - a))
            bits += got.population_bits
            axons = got.axons + got.population_axons
            out.append(_use(pop, a, e, axons, bits, got.synapses, lim, got.touched, order))
        return out
    n = pop.n
    masks = torch.zeros(len(blocks), n)
    for i, (a, e) in enumerate(blocks):
        masks[i, torch.from_numpy(perm[a:e])] = 1.0
    counts = pop.reach(masks)
    result = []
    for i, (a, e) in enumerate(blocks):
        per_src = {s: c[i] for s, c in counts.items()}
        allc = np.concatenate(list(per_src.values())) if per_src else np.zeros(0, np.int64)
        hit = {s: np.flatnonzero(c) for s, c in per_src.items()}
        result.append(
            _use(
                pop,
                a,
                e,
                int(np.count_nonzero(allc)),
                synapse_bits(allc, e - a, block_limits(lim, e - a)),
                int(allc.sum()),
                lim,
                lambda hit=hit: hit,
                order,
            )
        )
    return result


def partition(
    pop: Population,
    lim: CoreLimits,
    order: str = "C,H,W",
    batch: int = 32,
    max_cores: int | None = None,
    unit: int | None = None,
) -> list[CoreUse]:
    """Greedy contiguous split of ``pop`` (in ``order``) into the fewest cores under ``lim``.

    Every core takes the longest feasible block from where the previous one ended. Where
    feasibility only gets harder as a block grows (every limit but the synapse memory of
    population weights), this is the minimum over all contiguous splits. A single neuron that
    fits no core gets a core of its own, marked ``feasible=False``.

    With ``unit`` (closed-form counts only), cores end at multiples of ``unit`` neurons (whole
    rows or channel planes, where population weight lists are complete and shared) or at the
    layer's end; a core that cannot hold one unit takes the longest feasible block instead.

    Speed: the next cores usually have the size of the previous one, so up to ``2 * batch`` of
    them are checked speculatively in one batch (size feasible, size + 1 not); a search runs
    only where that guess fails. The result is the same as checking every core on its own.
    With ``max_cores``, stops (returning what it has) once more cores than that are used.
    """
    perm = pop.order(order)
    n = pop.n
    if pop.fast is not None:
        return _partition_one_by_one(pop, perm, lim, order, max_cores, unit)
    cap = max(2, min(2 * batch, (1 << 24) // max(n, 1)))  # masks of at most 64 MiB per batch

    def hi_of(a: int) -> int:
        return n if lim.neurons is None else min(n, a + lim.neurons)

    cores: list[CoreUse] = []
    start = 0
    prev = 0  # size of the previous core
    spec = 2  # cores to guess in the next speculative batch
    while start < n:
        if max_cores is not None and len(cores) > max_cores:
            break
        if prev:
            blocks, owners = [], []
            a = start
            for _ in range(max(1, min(spec, cap // 2))):
                if a >= n:
                    break
                e = min(a + prev, hi_of(a))
                blocks.append((a, e))
                owners.append(a)
                if e < hi_of(a):
                    blocks.append((a, e + 1))
                    owners.append(a)
                a = e
            res = _evaluate(pop, perm, blocks, lim, order)
            accepted = 0
            by_start: dict[int, list[CoreUse]] = {}
            for o, r in zip(owners, res, strict=True):
                by_start.setdefault(o, []).append(r)
            while start in by_start:
                rs = by_start[start]
                fit = rs[0]
                maximal = fit.end == hi_of(start) or (len(rs) > 1 and not rs[1].feasible)
                if not (fit.feasible and maximal):
                    break
                cores.append(fit)
                start = fit.end
                accepted += 1
            if accepted:
                spec = min(spec * 2, batch)
                continue
            spec = 2
        good = _search(pop, perm, start, hi_of(start), prev, lim, max(2, batch // 4), order)
        cores.append(good)
        prev = good.end - start
        start = good.end
    return cores


def _partition_one_by_one(
    pop: Population,
    perm: np.ndarray,
    lim: CoreLimits,
    order: str,
    max_cores: int | None,
    unit: int | None = None,
) -> list[CoreUse]:
    """:func:`partition` where each block is cheap to count on its own (a closed-form reach):
    the next core starts from the previous core's size and gallops up or down to the longest
    feasible block, which takes a few counts per core when sizes repeat."""
    n = pop.n

    def count(a: int, e: int) -> CoreUse:
        return _evaluate(pop, perm, [(a, e)], lim, order)[0]

    def aligned(start: int, hi: int) -> CoreUse | None:
        """The longest feasible block ending at a multiple of ``unit`` (or at ``n``), by
        bisection over the number of units."""
        first = (start // unit + 1) * unit
        ends = [] if first > hi else list(range(first, hi + 1, unit))
        if hi == n and (not ends or ends[-1] != n):
            ends.append(n)
        found, lo, top = None, -1, len(ends)  # ends[lo] feasible, ends[top] not
        while top - lo > 1:
            mid = top - 1 if found is None and lo == -1 and top == len(ends) else (lo + top) // 2
            r = count(start, ends[mid])
            if r.feasible:
                found, lo = r, mid
            else:
                top = mid
        return found

    cores: list[CoreUse] = []
    start, prev = 0, 0
    while start < n:
        if max_cores is not None and len(cores) > max_cores:
            break
        hi = n if lim.neurons is None else min(n, start + lim.neurons)
        if lim.axons_out is not None:  # output axons only grow with the block: cut there
            hi = pop.out_axon_end(order, start, lim.axons_out, hi)
        if unit is not None:
            got = aligned(start, hi)
            if got is not None:
                cores.append(got)
                prev = got.end - start
                start = got.end
                continue
        good: CoreUse | None = None  # longest block known feasible
        bad = hi + 1  # shortest end known infeasible
        guess = min(hi, start + prev) if prev else hi
        first = count(start, guess)
        if first.feasible:
            good, step = first, 1
            while good.end < hi:  # gallop up
                r = count(start, min(hi, good.end + step))
                if not r.feasible:
                    bad = r.end
                    break
                good, step = r, 2 * step
        else:
            bad, step = guess, 1
            while bad > start + 1:  # gallop down
                r = count(start, max(start + 1, bad - step))
                if r.feasible:
                    good = r
                    break
                bad, step = r.end, 2 * step
        if good is None:  # not even one neuron fits: a core of its own, marked infeasible
            good = count(start, start + 1)
        while bad - good.end > 1:  # bisect between the longest feasible and shortest infeasible
            r = count(start, (good.end + bad) // 2)
            if r.feasible:
                good = r
            else:
                bad = r.end
        cores.append(good)
        prev = good.end - start
        start = good.end
    return cores


def _search(
    pop: Population,
    perm: np.ndarray,
    start: int,
    hi: int,
    prev: int,
    lim: CoreLimits,
    batch: int,
    order: str = "C,H,W",
) -> CoreUse:
    """The longest feasible block from ``start`` (at most ``hi``), by batched bisection."""
    guesses = {e for e in range(start + prev - 2, start + prev + 3) if start < e < hi}
    low, bad = start, hi + 1  # longest end known feasible (start = empty) / shortest infeasible
    good: CoreUse | None = None
    ends = sorted(guesses | {hi})
    while True:
        for r in _evaluate(pop, perm, [(start, e) for e in ends], lim, order):
            if r.feasible and r.end > low:
                low, good = r.end, r
            elif not r.feasible and r.end < bad:
                bad = r.end
        if low == hi or bad - low <= 1:
            break
        m = min(batch, bad - low - 1)
        ends = sorted(
            {
                low + max(1, min(bad - low - 1, round((i + 1) * (bad - low) / (m + 1))))
                for i in range(m)
            }
        )
    if good is None:
        good = _evaluate(pop, perm, [(start, start + 1)], lim, order)[0]
    return good


def worst_neuron(pop: Population, lim: CoreLimits) -> CoreUse:
    """The needs of the neuron with the most synapses, alone in a core (exact)."""
    syn = pop.synapses_per_neuron()
    i = int(np.argmax(syn)) if len(syn) else 0
    return _evaluate(pop, np.arange(pop.n), [(i, i + 1)], lim)[0]


def relaxed_limits(pop: Population, lim: CoreLimits) -> tuple[CoreLimits, CoreUse]:
    """``lim`` without the per-core limits that even one neuron of ``pop`` exceeds.

    Such a layer cannot be mapped as it is (a violation says so); counting its cores without
    the impossible limit gives the core count it would need once that is fixed, instead of one
    core per neuron.
    """
    one = worst_neuron(pop, lim)
    changes: dict[str, Any] = {}
    if lim.axons_in is not None and one.axons_in > lim.axons_in:
        changes["axons_in"] = None
    if lim.synapse_bits is not None and one.synapse_bits > lim.synapse_bits:
        changes["synapse_bits"] = None
    return (replace(lim, **changes) if changes else lim), one


# --------------------------------------------------------------------------------------------
# The mapper
# --------------------------------------------------------------------------------------------


def _range(ids: Sequence[int]) -> str:
    if not len(ids):
        return ""
    lo, hi = min(ids), max(ids)
    return str(lo) if lo == hi else f"{lo}-{hi}"


def _best_partition(pop: Population, lim: CoreLimits) -> tuple[str, list[CoreUse]]:
    """The order (and its split) that needs fewer cores; ties go to the flat (C,H,W) order.

    The order that looks better on its first cores is split first; the other one is only
    followed while it can still need fewer cores.
    """
    orders = ORDERS if len(pop.shape) >= 2 else ORDERS[:1]
    floor = 1 if lim.neurons is None else math.ceil(pop.n / lim.neurons)
    if len(orders) > 1:
        rate = {}
        for o in orders:
            head = partition(pop, lim, o, max_cores=3)
            rate[o] = sum(c.neurons for c in head) / len(head)
        orders = tuple(sorted(orders, key=lambda o: (-rate[o], ORDERS.index(o))))
    best: tuple[str, list[CoreUse]] | None = None

    def keep(o: str, unit: int | None) -> None:
        nonlocal best
        cores = partition(
            pop, lim, o, max_cores=None if best is None else len(best[1]), unit=unit
        )
        complete = sum(c.neurons for c in cores) == pop.n
        if best is None or (
            complete and (len(cores), ORDERS.index(o)) < (len(best[1]), ORDERS.index(best[0]))
        ):
            best = (o, cores)

    for o in orders:
        if best is not None and len(best[1]) <= floor:
            break  # no order can beat the neuron count
        keep(o, None)
    assert best is not None
    # population weight memory is not monotone in the block: blocks of whole rows or channel
    # planes share more weight lists, so splits that keep to them are tried as well -- where
    # synapse memory is what ends a core (else greedy is already the fewest cores)
    tries = [(o, u) for o in orders for u in _units(pop, lim, o)]
    if tries and len(best[1]) > floor and _memory_binds(pop, lim, *best):
        for o, unit in tries:
            if len(best[1]) <= floor:
                break
            # followed only when a whole unit fits a core mid-layer and its first cores hold
            # more neurons than the best split's average core (layers are alike along their
            # length)
            mid = (pop.n // 2) // unit * unit
            one = _evaluate(pop, pop.order(o), [(mid, min(pop.n, mid + unit))], lim, o)[0]
            if not one.feasible:
                continue
            head = partition(pop, lim, o, max_cores=3, unit=unit)
            if sum(c.neurons for c in head) / len(head) > pop.n / len(best[1]):
                keep(o, unit)
    return best


def _memory_binds(pop: Population, lim: CoreLimits, order: str, cores: list[CoreUse]) -> bool:
    """Whether synapse memory alone ends a core of the split: one neuron more would fit every
    other limit (which only grow with the block). Checked on up to 64 cores spread over the
    layer (a layer's cores are alike along its length)."""
    perm = pop.order(order)
    step = max(1, len(cores) // 64)
    ends = [(c.start, c.end + 1) for c in cores[::step] if c.end < pop.n]
    for r in _evaluate(pop, perm, ends, lim, order):
        monotone_ok = (
            (lim.neurons is None or r.neurons <= lim.neurons)
            and (lim.axons_in is None or r.axons_in <= lim.axons_in)
            and (lim.axons_out is None or pop.out_axons(order, r.start, r.end) <= lim.axons_out)
        )
        if monotone_ok and not r.feasible:
            return True
    return False


def _units(pop: Population, lim: CoreLimits, order: str) -> list[int]:
    """Block lengths (in ``order``) that complete population weight lists: channel planes and
    rows in the flat order, rows of positions and positions in the position-major order; none
    unless the layer reads a convolution through population axons and synapse memory is
    limited."""
    if not (lim.population_axons and lim.synapse_bits is not None and pop.fast is not None):
        return []
    if len(pop.shape) < 2 or not pop.fast.has_population_terms():
        return []
    c, w, plane = int(pop.shape[0]), int(pop.shape[-1]), int(math.prod(pop.shape[1:]))
    units = (plane, w) if order == "C,H,W" else (c * w, c)
    cap = pop.n if lim.neurons is None else lim.neurons
    return [u for u in dict.fromkeys(units) if 1 < u <= cap]


def _structural_violations(graph: LayerGraph, profile: ChipProfile) -> list[Violation]:
    out: list[Violation] = []
    chip = profile.name
    for node in graph:
        if node.kind == "norm":
            out.append(
                Violation(
                    node.name,
                    "batchnorm",
                    node.type_name,
                    "folded into weights",
                    f"`{node.name}`: {node.type_name} is not folded; {chip} has no normalisation "
                    "on chip",
                    "fold BatchNorm into the preceding conv/linear (scale its weights and bias) "
                    "before mapping",
                )
            )
        elif node.kind == "activation":
            out.append(
                Violation(
                    node.name,
                    "unsupported_layer",
                    node.type_name,
                    "spiking neurons",
                    f"`{node.name}`: {node.type_name} is not a spiking neuron; {chip} runs spiking "
                    "neurons only (counted here as if it were one)",
                    "convert the ANN to an SNN (e.g. sinabs.from_model, or replace the activation by "
                    "IAF/LIF neurons)",
                )
            )
        elif node.kind == "unknown":
            out.append(
                Violation(
                    node.name,
                    "unsupported_layer",
                    node.type_name,
                    "known layer",
                    f"`{node.name}`: {node.type_name} is not a layer hwcheck knows how to map "
                    f"onto {chip}",
                    "replace it by a supported layer or register it in hwcheck.layers",
                )
            )
        elif node.kind == "pool" and node.attrs.get("pool_type") == "max":
            out.append(
                Violation(
                    node.name,
                    "max_pool",
                    "max pooling",
                    "sum or average pooling",
                    f"`{node.name}`: max pooling has no synaptic equivalent on {chip}",
                    "use AvgPool/SumPool (folded into the next weight layer) instead of MaxPool",
                )
            )
    return out


def _partition_population(
    pop: Population,
    lim: CoreLimits,
    parts: dict[str, tuple[str, list[CoreUse]]],
    singles: dict[str, CoreUse],
    notes: list[str],
) -> None:
    """Split one population into cores (under limits relaxed where one neuron exceeds them)."""
    if not lim.partitionable or pop.n == 0:
        return
    pop_lim, singles[pop.name] = relaxed_limits(pop, lim)
    if pop_lim != lim:
        dropped = [
            k
            for k in ("axons_in", "synapse_bits")
            if getattr(pop_lim, k) is None and getattr(lim, k) is not None
        ]
        notes.append(
            f"`{pop.name}`: cores counted without the {' and '.join(_RESOURCE_LABEL[k] for k in dropped)} "
            "limit, which a single neuron of it already exceeds"
        )
    parts[pop.name] = _best_partition(pop, pop_lim)


def map_neurocore(graph: LayerGraph, profile: ChipProfile, analysis: Any = None) -> FitReport:
    """Partition every neuron layer into cores and check the many-core chip's limits."""
    lim = core_limits(profile)
    cpc = int(profile.limit("cores_per_chip"))
    chips_max = profile.limit("chips_max")
    chip = profile.name
    violations = _structural_violations(graph, profile)
    pops, conn_violations, notes = build_populations(graph)
    violations += conn_violations

    for key in CHECKED_LIMITS:
        if profile.limit(key) is None:
            notes.append(f"not checked: {key} unknown for {chip}")
    if not lim.partitionable:
        notes.append(
            f"no core count for {chip}: no per-core limit is known; set one with an override "
            "(e.g. limits.neurons_per_core=256)"
        )

    # --- partition each population, keeping the order that needs fewer cores
    parts: dict[str, tuple[str, list[CoreUse]]] = {}
    singles: dict[str, CoreUse] = {}
    readers = _ReaderCount(pops) if lim.axons_out is not None else None
    with progress.bar(sum(p.n for p in pops), f"mapping onto {chip}", "neuron") as shown:
        # readers first: a layer's output axons depend on how the layers it feeds are split
        for pop in reversed(pops):
            if readers is not None:
                pop.out_cost = readers.cost(pop.name)
                pop.out_pos = readers.positions(pop.name, lim.population_axon_slots)
                if pop.n and readers.worst(pop) > lim.axons_out:
                    # one neuron alone is over: reported by the rule below
                    pop.out_cost, pop.out_pos = None, None
            _partition_population(pop, lim, parts, singles, notes)
            if readers is not None and pop.name in parts:
                for c in parts[pop.name][1]:
                    readers.add(c.inputs(), pop.name)
            shown.update(pop.n)

    # --- global core numbering and chips
    core_rows: list[dict[str, Any]] = []
    core_of: dict[str, np.ndarray] = {}
    next_core = 0
    pop_cores: dict[str, list[int]] = {}
    for pop in pops:
        if pop.name not in parts:
            continue
        order, cores = parts[pop.name]
        perm = pop.order(order)
        owner = np.empty(pop.n, np.int64)
        ids = []
        for c in cores:
            owner[perm[c.start : c.end]] = next_core
            ids.append(next_core)
            core_rows.append(
                {
                    "core": next_core,
                    "chip": next_core // cpc,
                    "layer": pop.name,
                    "use": c,
                    "members": perm[c.start : c.end],
                }
            )
            next_core += 1
        core_of[pop.name] = owner
        pop_cores[pop.name] = ids
    cores_used = next_core
    chips_needed = max(1, math.ceil(cores_used / cpc)) if cores_used else 0

    # --- output axons (one per (source neuron, destination core), population axons one per
    #     (source position, destination core)) and inter-chip pairs
    planes = {p.name: _plane_of(p) for p in pops}
    tally = _AxonTally(core_of, cpc, planes)
    for row in core_rows:
        use: CoreUse = row["use"]
        for src, touch in use.inputs().items():
            tally.add(row["chip"], src, touch)
    out_axons, remote_pairs, pos_axons = tally.result()
    per_neuron_out = dict(out_axons)  # output axons of each neuron alone (for the rule's hint)
    for src, per_pos in pos_axons.items():
        per_neuron_out[src] = per_neuron_out[src] + lim.population_axon_slots * np.tile(
            per_pos, planes[src][0]
        )
    for row in core_rows:
        members = row.pop("members")
        got = int(out_axons[row["layer"]][members].sum())
        if row["layer"] in pos_axons:
            plane = planes[row["layer"]][1]
            held = np.unique(members % plane)
            got += lim.population_axon_slots * int(pos_axons[row["layer"]][held].sum())
        row["axons_out"] = got

    # --- tables
    def pct(v: float, limit: int | None) -> float:
        return float("nan") if not limit else 100.0 * v / limit

    cores_df = pd.DataFrame(
        [
            {
                "core": r["core"],
                "chip": r["chip"],
                "layer": r["layer"],
                "neurons": r["use"].neurons,
                "axons_in": r["use"].axons_in,
                "axons_out": r["axons_out"],
                "synapses": r["use"].synapses,
                "synapse_bits": r["use"].synapse_bits,
                "neurons_pct": pct(r["use"].neurons, lim.neurons),
                "axons_in_pct": pct(r["use"].axons_in, lim.axons_in),
                "axons_out_pct": pct(r["axons_out"], lim.axons_out),
                "synapse_bits_pct": pct(r["use"].synapse_bits, lim.synapse_bits),
            }
            for r in core_rows
        ],
        columns=[
            "core",
            "chip",
            "layer",
            "neurons",
            "axons_in",
            "axons_out",
            "synapses",
            "synapse_bits",
            "neurons_pct",
            "axons_in_pct",
            "axons_out_pct",
            "synapse_bits_pct",
        ],
    )
    pct_cols = ["neurons_pct", "axons_in_pct", "axons_out_pct", "synapse_bits_pct"]
    if len(cores_df):
        filled = cores_df[pct_cols].astype(float)
        cores_df["utilisation_pct"] = filled.max(axis=1, skipna=True)
        cores_df["binding"] = [
            _RESOURCE_LABEL[c.removesuffix("_pct")] if not math.isnan(u) else ""
            for c, u in zip(
                filled.fillna(-1.0).idxmax(axis=1), cores_df["utilisation_pct"], strict=True
            )
        ]
    else:
        cores_df["utilisation_pct"] = pd.Series(dtype=float)
        cores_df["binding"] = pd.Series(dtype=object)
    cores_df = cores_df.set_index("core")

    spikes = _spikes_out(analysis)
    layer_rows = []
    for pop in pops:
        order, cores = parts.get(pop.name, ("", []))
        ids = pop_cores.get(pop.name, [])
        sub = cores_df.loc[ids] if ids else cores_df.iloc[0:0]
        syn = pop.synapses_per_neuron()
        row: dict[str, Any] = {
            "layer": pop.name,
            "members": ",".join(pop.members),
            "kind": pop.kind,
            "neurons": pop.n,
            "n_cores": len(ids),
            "core": _range(ids),
            "chip": _range([i // cpc for i in ids]),
            "order": order,
            "synapses": int(syn.sum()),
            "fan_in_max": int(syn.max()) if len(syn) else 0,
            "axons_in_max_per_core": int(sub["axons_in"].max()) if len(sub) else 0,
            "axons_out_max_per_core": int(sub["axons_out"].max()) if len(sub) else 0,
            "synapse_bits_max_per_core": int(sub["synapse_bits"].max()) if len(sub) else 0,
            "split_by": sub["binding"].mode().iloc[0] if len(sub) and sub["binding"].any() else "",
            "interchip_axons": remote_pairs.get(pop.name, 0),
        }
        if spikes is not None:
            s = spikes.get(pop.name)
            row["interchip_spikes_per_sample"] = (
                float("nan")
                if s is None
                else float(s) * remote_pairs.get(pop.name, 0) / max(pop.n, 1)
            )
        layer_rows.append(row)
        notes.extend(pop.notes)
    layer_cols = [
        "members",
        "kind",
        "neurons",
        "n_cores",
        "core",
        "chip",
        "order",
        "synapses",
        "fan_in_max",
        "axons_in_max_per_core",
        "axons_out_max_per_core",
        "synapse_bits_max_per_core",
        "split_by",
        "interchip_axons",
    ]
    if spikes is not None:
        layer_cols.append("interchip_spikes_per_sample")
    layers_df = pd.DataFrame(layer_rows, columns=["layer", *layer_cols]).set_index("layer")

    # --- rules
    violations += _per_neuron_rules(pops, singles, lim, profile)
    violations += _output_axon_rule(pops, parts, core_rows, per_neuron_out, core_of, lim, profile)
    violations += _crossbar_rule(graph, pops, profile)
    violations += _chip_rules(pops, pop_cores, cores_used, chips_needed, cpc, chips_max, profile)
    for pop in pops:
        if pop.kind == "readout":
            violations.append(
                Violation(
                    pop.name,
                    "readout_without_neurons",
                    "no neurons after weights",
                    "neuron layer",
                    f"`{pop.name}`: no neuron layer follows it; counted as {pop.n} non-spiking "
                    "readout compartments",
                    f"add a neuron layer of {pop.n} neurons after `{pop.name}` (or read its "
                    "input spikes out and apply it on the host)",
                    WARNING,
                )
            )

    # --- notes
    folded = sorted({p for pop in pops for p in pop.folded_pools})
    if folded:
        notes.append(
            f"pooling folded into the next weight layer's connectivity: {', '.join(folded)} "
            "(each source in a pooling window gets its own synapse)"
        )
    if any(not p.exact for p in pops):
        names = ", ".join(p.name for p in pops if not p.exact)
        notes.append(
            f"synapse counts of {names} are upper bounds (overlapping pooling windows, "
            "merged branches or padding modes reach a source twice)"
        )
    if lim.synapse_bits is not None or lim.overhead_bits:
        notes.append(
            f"synapses: {lim.weight_bits}-bit weights, rows of "
            f"{lim.row_synapses or 'any number of'} synapses + {lim.row_header_bits} header bits "
            f"rounded to {lim.word_bits}-bit words; sparse encoding adds "
            + (f"index bits sized to the core (0 for one neuron, else 6 to {lim.overhead_bits})"
               if lim.index_bits_by_block else f"{lim.overhead_bits} index bits")
            + " per synapse, the dense one stores every neuron of the core; the cheaper "
            "per core is used"
            + (
                "; convolutions are read through population axons and store one weight list "
                "per distinct input-position pattern (shared across positions), sparse-encoded"
                if lim.population_axons
                else ""
            )
        )
    if cores_used:
        notes.append(
            "neurons split in flat (C,H,W) or position-major (H,W,C) order, whichever "
            "needs fewer cores (column `order`)"
        )
    if chips_needed > 1:
        total = sum(remote_pairs.values())
        msg = f"{chips_needed} chips: {total:,} (neuron, remote chip) pairs carry inter-chip spikes"
        if spikes is not None and "interchip_spikes_per_sample" in layers_df:
            per = float(np.nansum(layers_df["interchip_spikes_per_sample"].to_numpy(float)))
            msg += f"; about {per:,.0f} inter-chip spikes per sample (uniform firing per layer)"
        notes.append(msg)

    # --- summary
    cores_available = cpc * (int(chips_max) if chips_max else 1)
    summary: dict[str, Any] = {
        "cores_used": int(cores_used),
        "cores_available": int(cores_available),
        "chips_needed": int(chips_needed),
        "utilisation_pct": 100.0 * cores_used / cores_available if cores_available else 0.0,
        "binding_constraint": _binding(cores_df, cores_used, cores_available, cpc, chips_needed),
        "violations": 0,
        "neurons": int(sum(p.n for p in pops)),
        "synapses": int(layers_df["synapses"].sum()) if len(layers_df) else 0,
        "synapse_bits": int(cores_df["synapse_bits"].sum()) if len(cores_df) else 0,
    }
    ts = profile.limit("timestep_s")
    n_steps = _n_steps(analysis)
    if ts is not None and n_steps:
        summary["latency_s"] = float(ts) * n_steps
        notes.append(f"latency_s = {n_steps} time steps x {ts} s per step (global tick)")
    if spikes is not None and "interchip_spikes_per_sample" in layers_df:
        summary["interchip_spikes_per_sample"] = float(
            np.nansum(layers_df["interchip_spikes_per_sample"].to_numpy(float))
        )
    report = FitReport(chip, FAMILY, layers_df, cores_df, violations, summary, notes)
    report.summary["violations"] = len(violations)
    return report


def _plane_of(pop: Population) -> tuple[int, int] | None:
    """``(channels, positions)`` of a layer of at least two dimensions (flat index
    ``channel * positions + position``), the layout population axons address."""
    if len(pop.shape) < 2:
        return None
    return int(pop.shape[0]), int(math.prod(pop.shape[1:]))


def _population_touch(touch: Any, plane: tuple[int, int] | None) -> bool:
    """Whether ``touch`` is read through population axons laid out as the source layer is."""
    return (
        isinstance(touch, PlaneTouch)
        and touch.population
        and plane is not None
        and (touch.channels, touch.plane) == plane
    )


class _ReaderCount:
    """How many cores read each neuron of each population (its output axons), accumulated as
    the reading populations are split; reads through population axons count per position."""

    def __init__(self, pops: Sequence[Population]) -> None:
        self.n = {p.name: p.n for p in pops}
        self.planes = {p.name: _plane_of(p) for p in pops}
        self.flat: dict[str, np.ndarray] = {}
        self.by_pos: dict[str, tuple[np.ndarray, int]] = {}
        self.pop_pos: dict[str, np.ndarray] = {}

    def add(self, reads: Mapping[str, Any], reader: str) -> None:
        for src, touch in reads.items():
            if src not in self.n or src == reader:  # a layer's own recurrent reads are not known yet
                continue
            if _population_touch(touch, self.planes[src]):
                per = self.pop_pos.setdefault(src, np.zeros(touch.plane, np.int64))
                per[touch.positions] += 1
            elif isinstance(touch, PlaneTouch):
                per, _ = self.by_pos.setdefault(src, (np.zeros(touch.plane, np.int64), touch.channels))
                per[touch.positions] += 1
            else:
                flat = self.flat.setdefault(src, np.zeros(self.n[src], np.int64))
                if touch is None:
                    flat += 1
                else:
                    flat[touch] += 1

    def positions(self, name: str, slots: int) -> tuple[np.ndarray, int, int] | None:
        """Population output axons per position of ``name``: ``(slots x readers, C, plane)``."""
        if name not in self.pop_pos:
            return None
        c, plane = self.planes[name]
        return slots * self.pop_pos[name], c, plane

    def worst(self, pop: Population) -> int:
        """The most output axons one neuron of ``pop`` needs alone."""
        one = np.zeros(pop.n, np.int64) if pop.out_cost is None else pop.out_cost
        if pop.out_pos is not None:
            cost, c, _ = pop.out_pos
            one = one + np.tile(cost, c)
        return int(one.max(initial=0))

    def cost(self, name: str) -> np.ndarray | None:
        if name not in self.flat and name not in self.by_pos:
            return None
        out = self.flat.get(name, np.zeros(self.n[name], np.int64))
        if name in self.by_pos:
            per, channels = self.by_pos[name]
            out = out + np.tile(per, channels)
        return out


class _AxonTally:
    """Output axons (destination cores of every source neuron) and (source neuron, remote
    chip) pairs, from what each core reads. Cores are numbered chip by chip, so one chip's
    reads are collected, counted against the neurons it owns, and cleared before the next."""

    def __init__(
        self,
        core_of: Mapping[str, np.ndarray],
        cpc: int,
        planes: Mapping[str, tuple[int, int] | None] | None = None,
    ) -> None:
        self.core_of, self.cpc = core_of, cpc
        self.planes = planes or {}
        self.cores = {s: np.zeros(len(o), np.int64) for s, o in core_of.items()}
        self.pos_cores: dict[str, np.ndarray] = {}  # population axons: cores reading a position
        self.plane_cores: dict[str, np.ndarray] = {}  # reads of every channel at a position
        self.channels: dict[str, int] = {}
        self.remote = {s: 0 for s in core_of}
        self.chip = 0
        self.whole: set[str] = set()
        self.read: dict[str, np.ndarray] = {}  # this chip's reads, flat / by position
        self.read_pos: dict[str, np.ndarray] = {}
        self.marked: list[tuple[dict[str, np.ndarray], str, np.ndarray]] = []
        self._owned: dict[str, tuple[np.ndarray, np.ndarray]] = {}

    def add(self, chip: int, src: str, touch: np.ndarray | PlaneTouch | None) -> None:
        if src not in self.cores:
            return  # the model input: no output axons on chip
        if chip != self.chip:
            self._close()
            self.chip = chip
        if touch is None:
            self.cores[src] += 1
            self.whole.add(src)
        elif isinstance(touch, PlaneTouch):
            pos = touch.positions
            if src not in self.read_pos:
                self.read_pos[src] = np.zeros(touch.plane, bool)
                self.channels[src] = touch.channels
            if _population_touch(touch, self.planes.get(src)):
                per = self.pos_cores.setdefault(src, np.zeros(touch.plane, np.int64))
            else:
                per = self.plane_cores.setdefault(src, np.zeros(touch.plane, np.int64))
            per[pos] += 1
            self._mark(self.read_pos, src, pos)
        else:
            self.cores[src][touch] += 1  # the indices of one core are distinct
            if src not in self.read:
                self.read[src] = np.zeros(len(self.cores[src]), bool)
            self._mark(self.read, src, touch)

    def _mark(self, seen: dict[str, np.ndarray], src: str, idx: np.ndarray) -> None:
        if src in self.whole:
            return
        new = idx[~seen[src][idx]]
        seen[src][new] = True
        self.marked.append((seen, src, new))

    def _owned_by(self, src: str, chip: int) -> np.ndarray:
        """The neurons of ``src`` that sit on ``chip``."""
        if src not in self._owned:
            chips = self.core_of[src] // self.cpc
            small = np.int16 if chips.max(initial=0) < 2**15 else np.int64
            order = np.argsort(chips.astype(small), kind="stable")  # a radix sort for int16
            self._owned[src] = (order, np.searchsorted(chips[order], np.arange(chips.max() + 2)))
        order, bounds = self._owned[src]
        if chip + 1 >= len(bounds):
            return order[:0]
        return order[bounds[chip] : bounds[chip + 1]]

    def _close(self) -> None:
        srcs = {s for _, s, _ in self.marked} | self.whole
        for src in srcs:
            own = self._owned_by(src, self.chip)
            n = len(self.cores[src])
            if src in self.whole:
                self.remote[src] += n - len(own)
                continue
            by_pos = self.read_pos.get(src)
            flat = self.read.get(src)
            read = 0
            if by_pos is not None:
                read += int(by_pos.sum()) * self.channels[src]
            if flat is not None:
                extra = np.flatnonzero(flat)
                if by_pos is not None:
                    extra = extra[~by_pos[extra % len(by_pos)]]
                read += len(extra)
            hit = np.zeros(len(own), bool)
            if by_pos is not None:
                hit |= by_pos[own % len(by_pos)]
            if flat is not None:
                hit |= flat[own]
            self.remote[src] += read - int(hit.sum())
        for seen, src, idx in self.marked:
            seen[src][idx] = False
        self.marked.clear()
        self.whole.clear()

    def result(self) -> tuple[dict[str, np.ndarray], dict[str, int], dict[str, np.ndarray]]:
        """Output axons per neuron (discrete), (neuron, remote chip) pairs per layer, and the
        destination cores reading each position through population axons."""
        self._close()
        out = dict(self.cores)
        for src, per_pos in self.plane_cores.items():
            out[src] = out[src] + np.tile(per_pos, self.channels[src])
        return out, self.remote, self.pos_cores


def _spikes_out(analysis: Any) -> dict[str, float] | None:
    df = getattr(analysis, "layers", None)
    if not isinstance(df, pd.DataFrame) or "spikes_out" not in df:
        return None
    return {str(k): float(v) for k, v in df["spikes_out"].items()}


def _n_steps(analysis: Any) -> int | None:
    df = getattr(analysis, "layers", None)
    if isinstance(df, pd.DataFrame) and "n_steps" in df and len(df):
        return int(df["n_steps"].max())
    n = getattr(analysis, "n_steps", None)
    if isinstance(n, (int, float, np.integer, np.floating)) and not isinstance(n, bool) and n > 0:
        return int(round(float(n)))
    return None


def _binding(cores_df: pd.DataFrame, used: int, available: int, cpc: int, chips: int) -> str:
    if not used:
        return "none (no core count)"
    if used > available:
        return f"cores: {used:,} > {available:,} ({chips} chips of {cpc} cores)"
    best, best_ratio = f"cores: {used:,} / {available:,}", used / available
    for col, label in (
        ("neurons_pct", "neurons per core"),
        ("axons_in_pct", "input axons per core"),
        ("axons_out_pct", "output axons per core"),
        ("synapse_bits_pct", "synapse memory per core"),
    ):
        vals = cores_df[col].astype(float)
        if vals.notna().any() and vals.max() / 100.0 > best_ratio:
            best_ratio = vals.max() / 100.0
            core = int(vals.idxmax())
            best = (
                f"{label} ({vals.max():.0f} % in core {core}, layer {cores_df.loc[core, 'layer']})"
            )
    return best


def _per_neuron_rules(
    pops: list[Population], singles: Mapping[str, CoreUse], lim: CoreLimits, profile: ChipProfile
) -> list[Violation]:
    """A single neuron that no core can hold: too many inputs or too many synapse bits."""
    out: list[Violation] = []
    chip = profile.name
    for pop in pops:
        one = singles.get(pop.name)
        syn = pop.synapses_per_neuron()
        fan = int(syn.max()) if len(syn) else 0
        if lim.axons_in is not None and one is not None and one.axons_in > lim.axons_in:
            out.append(
                _fan_in_violation(pop, one.axons_in, lim.axons_in, "input axons per core", chip)
            )
        elif lim.fan_in is not None and fan > lim.fan_in:
            out.append(_fan_in_violation(pop, fan, lim.fan_in, "inputs per neuron", chip))
        if lim.synapse_bits is not None and one is not None and one.synapse_bits > lim.synapse_bits:
            per_syn = lim.weight_bits + lim.overhead_bits
            out.append(
                Violation(
                    pop.name,
                    "synapse_memory",
                    one.synapse_bits,
                    lim.synapse_bits,
                    f"`{pop.name}`: the synapses of one neuron need {one.synapse_bits:,} bits > "
                    f"{lim.synapse_bits:,} bits of synapse memory per core ({chip})",
                    f"reduce the fan-in of `{pop.name}` (about {lim.synapse_bits // per_syn:,} "
                    f"synapses of {per_syn} bits fit one core) or use fewer weight bits",
                )
            )
    return out


def _fan_in_violation(pop: Population, needed: int, limit: int, what: str, chip: str) -> Violation:
    return Violation(
        pop.name,
        "fan_in",
        needed,
        limit,
        f"`{pop.name}`: one neuron reads {needed:,} inputs > {limit:,} {what} ({chip})",
        _fan_in_hint(pop, needed, limit),
    )


def _fan_in_hint(pop: Population, needed: int, limit: int) -> str:
    factor = needed / limit
    if len(pop.weight_nodes) == 1 and not pop.folded_pools:
        return (
            f"cut each neuron's inputs by {factor:.2g}x to <= {limit:,}: fewer input channels "
            "or features, a smaller kernel, or groups (e.g. split the layer into "
            f"{math.ceil(factor)} layers of <= {limit:,} inputs and add their outputs in a "
            "further neuron layer)"
        )
    return (
        f"cut each neuron's inputs by {factor:.2g}x to <= {limit:,} (pooling windows folded "
        "in count once per source; smaller pools or fewer channels help)"
    )


def _output_axon_rule(
    pops: list[Population],
    parts: Mapping[str, tuple[str, list[CoreUse]]],
    core_rows: list[dict[str, Any]],
    out_axons: Mapping[str, np.ndarray],
    core_of: Mapping[str, np.ndarray],
    lim: CoreLimits,
    profile: ChipProfile,
) -> list[Violation]:
    if lim.axons_out is None:
        return []
    out: list[Violation] = []
    by_layer: dict[str, list[dict[str, Any]]] = {}
    for r in core_rows:
        if r["axons_out"] > lim.axons_out:
            by_layer.setdefault(r["layer"], []).append(r)
    for layer, rows in by_layer.items():
        worst = max(rows, key=lambda r: r["axons_out"])
        per_neuron = int(out_axons[layer].max())
        k = lim.axons_out // max(per_neuron, 1)
        if k == 0:
            hint = (
                f"a neuron of `{layer}` feeds {per_neuron} cores > {lim.axons_out} output axons "
                "per core, so no split of it helps: make the layers it feeds use fewer, fuller "
                f"cores (at most {lim.axons_out})"
            )
        else:
            hint = (
                f"a neuron of `{layer}` reaches up to {per_neuron} destination cores: put at "
                f"most {k} of its neurons per core (set limits.neurons_per_core={k}) or make the "
                "next layer use fewer, fuller cores"
            )
        out.append(
            Violation(
                layer,
                "output_axons",
                worst["axons_out"],
                lim.axons_out,
                f"`{layer}`: output axons {worst['axons_out']:,} > {lim.axons_out:,} per core "
                f"(core {worst['core']}; {len(rows)} core(s) over) ({profile.name})",
                hint,
            )
        )
    return out


def _crossbar_rule(
    graph: LayerGraph, pops: list[Population], profile: ChipProfile
) -> list[Violation]:
    if not profile.limit("crossbar_binary", False):
        return []
    out = []
    for pop in pops:
        for w in pop.weight_nodes:
            weight = getattr(graph[w].module, "weight", None)
            if not isinstance(weight, torch.Tensor):
                continue
            vals = torch.unique(weight.detach()[weight.detach() != 0])
            if len(vals) > 1:
                out.append(
                    Violation(
                        w,
                        "binary_crossbar",
                        f"{len(vals)} distinct weights",
                        "1 (binary crossbar)",
                        f"`{w}`: {len(vals):,} distinct nonzero weights; {profile.name} synapses are "
                        "binary crossbar bits (the weight comes from the source axon's type)",
                        "binarise the weights (one magnitude, sign via axon type) or quantise them to "
                        "the few per-neuron axon-type weights the chip offers",
                        WARNING,
                    )
                )
    return out


def _chip_rules(
    pops: list[Population],
    pop_cores: Mapping[str, list[int]],
    cores_used: int,
    chips_needed: int,
    cpc: int,
    chips_max: int | None,
    profile: ChipProfile,
) -> list[Violation]:
    out: list[Violation] = []
    for pop in pops:
        n = len(pop_cores.get(pop.name, []))
        if n > cpc:
            out.append(
                Violation(
                    pop.name,
                    "layer_exceeds_chip",
                    n,
                    cpc,
                    f"`{pop.name}`: needs {n:,} cores > {cpc:,} cores per chip "
                    f"({math.ceil(n / cpc)} chips for this layer alone)",
                    f"shrink `{pop.name}` ({pop.n:,} neurons) to about {pop.n * cpc // n:,} neurons "
                    f"to fit one chip, or run it across {math.ceil(n / cpc)} chips",
                    WARNING,
                )
            )
    if chips_needed > 1:
        over = chips_max is not None and chips_needed > int(chips_max)
        limit = int(chips_max) if chips_max is not None else 1
        out.append(
            Violation(
                "(model)",
                "chips",
                chips_needed,
                limit,
                f"needs {chips_needed} chips ({cores_used:,} cores > {cpc:,} per chip)"
                + (f" > {limit} chips available" if over else ""),
                f"reduce the model to <= {cpc * limit:,} cores (largest layers first) or "
                f"use a system of {chips_needed} chips; spikes between chips cost extra energy and "
                "latency",
                ERROR if over else WARNING,
            )
        )
    return out


register_family(
    FamilySpec(
        FAMILY,
        LIMITS,
        map_neurocore,
        "many-core chips: layers split across cores by neurons, axons and synapse memory",
    )
)
