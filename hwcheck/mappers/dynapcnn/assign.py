"""Chip layers to cores: maximum bipartite matching of memory needs to core sizes."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from hwcheck.mappers.dynapcnn.memory import CoreTable


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
