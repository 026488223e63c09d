"""Partition: a population split into the fewest contiguous cores under the per-core limits.

Each core is a block of neurons in one of two orders (flat ``(C, H, W)`` or position-major
``(H, W, C)``); its needs (neurons, input axons, synapse memory, output axons) come from
:meth:`Population.reach` or the closed-form counts, and the split is greedy (with speculative
batches or galloping), plus splits kept to whole rows / planes where population weight memory is
what ends a core. Separate from the mapper so the split can be tested against brute force on its
own (``tests/test_neurocore.py``, ``tests/test_reach.py``).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np
import torch

from hwcheck.mappers.neurocore.limits import (
    CoreLimits,
    block_limits,
    population_bits,
    row_bits,
    synapse_bits,
)
from hwcheck.mappers.neurocore.population import Population
from hwcheck.mappers.reach import PlaneTouch

ORDERS = ("C,H,W", "H,W,C")

_RESOURCE_LABEL = {
    "neurons": "neurons per core",
    "axons_in": "input axons per core",
    "axons_out": "output axons per core",
    "synapse_bits": "synapse memory per core",
}


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
