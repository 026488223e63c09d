"""Populations: a neuron layer and the structural linear map that feeds it.

The layer graph is walked back from every neuron layer (and from weight layers no neuron layer
follows) to its source neuron layers, folding pooling, reshapes, additions and concatenations
into one 0/1 map, so that synapses per neuron and the synapses a block of neurons reads from each
source can be counted: in closed form via :mod:`hwcheck.mappers.reach` where the structure allows,
else by autograd. Connectivity the chip cannot run becomes a violation here, before any core is
counted.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from hwcheck.graph import INPUT, LayerGraph, LayerNode
from hwcheck.mappers.base import Violation
from hwcheck.mappers.reach import (
    ConvTerm,
    LinearTerm,
    Reach,
    conv_map_of,
    identity_map,
    op_map,
    pooled_members,
)

POPULATION_KINDS = ("spiking", "neuron", "activation")
SOURCE_KINDS = (*POPULATION_KINDS, "unknown")


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
