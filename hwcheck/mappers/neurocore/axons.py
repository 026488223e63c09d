"""Output axons: how many destination cores read each neuron, and which reads cross chips.

A neuron needs one output axon per destination core (population axons: one per source position
and destination core). :class:`_ReaderCount` accumulates this while the readers are split, so a
layer's own split can respect its output-axon limit; :class:`_AxonTally` counts it on the final,
numbered cores, together with the (neuron, remote chip) pairs that carry inter-chip spikes.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from hwcheck.mappers.neurocore.population import Population
from hwcheck.mappers.reach import PlaneTouch


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
