"""Which inputs a block of neurons reads, counted from the layer's structure.

A many-core chip stores in each core the synapses into the core's neurons, so partitioning a
layer asks, for thousands of candidate blocks of contiguous neurons: which source elements
(input axons) does the block read, and how many synapses does each carry into it? This module
answers from the connectivity itself, in time proportional to what the block reads rather than
to the size of the layer:

* a chain of pooling and convolution ops from one source is one convolution with an integer
  kernel (its path counts); a block of neurons is a few boxes ``channels x rows x columns``, and
  the counts of a box are ``A_rows @ K(channels) @ A_cols^T`` with ``K`` summed over the box's
  output channels from prefix sums;
* a linear layer (after optional non-overlapping pooling) is a 0/1 matrix; a block's counts are
  a running column sum over its rows (constant when the matrix is dense);
* read through population axons (Loihi), a convolution's block stores one weight list per
  input position; the distinct lists are found from the (kernel tap, output position) pairs of
  the block, cached with its counts (:meth:`ConvTerm.counts`).

Structures outside these forms (concatenations, a source reached on two paths, 3-D ops, padding
modes other than zeros, overlapping pools before a padded convolution) return ``None`` from
:func:`build_reach`, and the caller counts them with its general (autograd) map instead.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Protocol

import numpy as np

__all__ = [
    "BlockCounts",
    "ConvMap",
    "ConvTerm",
    "LinearTerm",
    "PlaneTouch",
    "PopulationFormat",
    "Reach",
    "box_split",
    "conv_map_of",
    "count_summary",
    "flat_indices",
    "identity_map",
    "op_map",
    "pooled_members",
]

#: Largest composite kernel (entries) kept as prefix sums; beyond it the general map is used.
MAX_KERNEL_ENTRIES = 1 << 26

#: Counts of uniform convolution maps, shared by maps of one geometry (see ConvTerm).
_SHARED: dict[tuple, dict] = {}


# --------------------------------------------------------------------------------------------
# Counts of one block
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class PlaneTouch:
    """Every channel of a source read at the same plane positions (a uniform convolution),
    kept as the positions alone: a core of a wide layer reads ``channels`` times as many.

    ``population``: the positions are read through population axons (one axon per position,
    the channel travels with the spike as its atom), so a source core needs one output axon per
    (position it holds, destination core), not one per neuron."""

    positions: np.ndarray  # distinct flat ``y * W + x`` indices
    channels: int
    plane: int  # H * W of the source
    population: bool = False

    def flat(self) -> np.ndarray:
        """The flat ``(C, H, W)`` source indices read."""
        return (np.arange(self.channels)[:, None] * self.plane + self.positions[None, :]).reshape(-1)


class PopulationFormat(Protocol):
    """How a core stores population weights: ``base`` bounds the compartment base of an axon
    (None: no bound); calling it with the entries of every distinct weight list and the largest
    compartment index stored gives the bits (see ``neurocore.population_bits``)."""

    base: int | None

    def __call__(self, entries: np.ndarray, max_index: int) -> int: ...


def flat_indices(touch: np.ndarray | PlaneTouch | None, n: int) -> np.ndarray:
    """Any form of :class:`BlockCounts` ``touched`` entry as sorted flat indices."""
    if touch is None:
        return np.arange(n)
    return np.sort(touch.flat() if isinstance(touch, PlaneTouch) else touch)


def count_summary(
    counts: np.ndarray | int, mult: np.ndarray | int, n: int, lut: Callable[[int], np.ndarray]
) -> tuple[int, int, int]:
    """``(axons, synapses, sparse_bits)`` of source elements with synapse ``counts``, each
    standing for ``mult`` elements (``counts`` one integer: ``n`` entries alike); ``lut(m)``
    maps counts ``0..m`` to the bits of their rows."""
    if isinstance(counts, np.ndarray):
        if not counts.size:
            return 0, 0, 0
        table = lut(int(counts.max()))
        if isinstance(mult, np.ndarray):
            return (
                int((mult * (counts > 0)).sum()),
                int((counts * mult).sum()),
                int((table[counts] * mult).sum()),
            )
        return (
            int(np.count_nonzero(counts)) * mult,
            int(counts.sum()) * mult,
            int(table[counts].sum()) * mult,
        )
    total = int(mult.sum()) if isinstance(mult, np.ndarray) else n * int(mult)
    if counts <= 0:
        return 0, 0, 0
    return total, int(counts) * total, int(lut(int(counts))[int(counts)]) * total


class BlockCounts:
    """What a block reads: ``axons`` (discrete input axons), ``synapses``, ``sparse_bits`` (of
    the discrete axons' rows) and, on demand (:meth:`touched`), the source elements read per
    source. Convolutions read through population axons (when the caller asks for them) count
    apart: ``population_axons`` (input positions read; all channels of one position share an
    axon) and ``population_bits`` (their shared weights, see :meth:`ConvTerm.counts`)."""

    __slots__ = (
        "axons", "synapses", "sparse_bits", "population_axons", "population_bits", "_touch",
    )  # fmt: skip

    def __init__(
        self,
        axons: int,
        synapses: int,
        sparse_bits: int,
        population_axons: int,
        population_bits: int,
        touch: list,
    ) -> None:
        self.axons, self.synapses, self.sparse_bits = axons, synapses, sparse_bits
        self.population_axons, self.population_bits = population_axons, population_bits
        self._touch = touch  # (source, term, state) for each term

    def touched(self) -> dict[str, np.ndarray | PlaneTouch | None]:
        """Per source: flat indices, a :class:`PlaneTouch`, or ``None`` for every element."""
        return {src: term.touched(state) for src, term, state in self._touch}


# --------------------------------------------------------------------------------------------
# Convolution chains
# --------------------------------------------------------------------------------------------


@dataclass
class ConvMap:
    """Neuron ``(o, y, x)`` reads source ``(c, sy*y - py + ky, sx*x - px + kx)`` through
    ``kernel[o, c, ky, kx]`` paths (``kernel[o, ky, kx]`` with ``c = o`` when depthwise).

    Source positions outside ``plane`` are never read (zero padding, or pixels a pooling window
    drops); flat source indices use the source's own ``src_plane``.
    """

    kernel: np.ndarray
    depthwise: bool
    stride: tuple[int, int]
    padding: tuple[int, int]
    plane: tuple[int, int]
    src_plane: tuple[int, int]
    in_channels: int
    out_shape: tuple[int, int, int]
    _prefix: np.ndarray | None = field(default=None, repr=False)
    _uniform: bool | None = field(default=None, repr=False)

    @property
    def ksize(self) -> tuple[int, int]:
        return int(self.kernel.shape[-2]), int(self.kernel.shape[-1])

    @property
    def uniform(self) -> bool:
        """Every (output, input) channel pair has the same kernel: a dense convolution (or
        pooling composed with one), whose counts do not depend on which channels a block has."""
        if self._uniform is None:
            k = self.kernel
            self._uniform = (not self.depthwise) and bool(np.all(k == k[:1, :1]))
        return self._uniform

    def signature(self) -> tuple:
        """What a uniform map's counts depend on (maps with equal signatures share counts)."""
        return (
            self.kernel[0, 0].tobytes(),
            self.kernel.shape,
            self.stride,
            self.padding,
            self.plane,
            self.out_shape,
        )

    def prefix(self) -> np.ndarray:
        """Kernel sums over the first ``o`` output channels, ``(Co + 1, Ci, KH, KW)``."""
        if self._prefix is None:
            k = self.kernel
            p = np.zeros((k.shape[0] + 1, *k.shape[1:]), np.int64)
            np.cumsum(k, axis=0, out=p[1:])
            self._prefix = p
        return self._prefix


def _ints(v: object, n: int, default: int) -> tuple[int, ...] | None:
    """An int or a sequence of ``n`` ints as a tuple (``None`` when it is neither)."""
    if v is None:
        return (default,) * n
    if isinstance(v, (int, np.integer)) and not isinstance(v, bool):
        return (int(v),) * n
    if isinstance(v, (tuple, list)) and len(v) == n:
        try:
            return tuple(int(x) for x in v)
        except (TypeError, ValueError):
            return None
    return None


def op_map(
    kind: str,
    attrs: Mapping,
    in_shape: Sequence[int],
    out_shape: Sequence[int],
    mask: np.ndarray | None,
) -> ConvMap | None:
    """One conv or pool node as a :class:`ConvMap` (``None`` when not a 1-D/2-D zero-padded op)."""
    if len(in_shape) not in (2, 3) or len(out_shape) != len(in_shape):
        return None
    d = len(in_shape) - 1
    ci, co = int(in_shape[0]), int(out_shape[0])
    h, w = (int(in_shape[1]), int(in_shape[2])) if d == 2 else (1, int(in_shape[1]))
    ho, wo = (int(out_shape[1]), int(out_shape[2])) if d == 2 else (1, int(out_shape[1]))

    def two(v: object, default: int, neutral: int) -> tuple[int, int] | None:
        t = _ints(v, d, default)
        if t is None:
            return None
        return (t[0], t[1]) if d == 2 else (neutral, t[0])

    if kind == "conv":
        pad = two(attrs.get("padding"), 0, 0)
        stride, dil = two(attrs.get("stride"), 1, 1), two(attrs.get("dilation"), 1, 1)
        if mask is None or pad is None or stride is None or dil is None:
            return None
        if any(pad) and attrs.get("padding_mode", "zeros") != "zeros":
            return None
        m = mask.astype(np.int64)
        if d == 1:
            m = m[:, :, None, :]
        if m.ndim != 4:
            return None
        if dil != (1, 1):
            kh, kw = m.shape[-2:]
            big = np.zeros((*m.shape[:2], dil[0] * (kh - 1) + 1, dil[1] * (kw - 1) + 1), np.int64)
            big[:, :, :: dil[0], :: dil[1]] = m
            m = big
        groups = int(attrs.get("groups", 1))
        if groups == ci == co and m.shape[1] == 1:
            return ConvMap(m[:, 0], True, stride, pad, (h, w), (h, w), ci, (co, ho, wo))
        if groups > 1:
            if co * ci * m.shape[2] * m.shape[3] > MAX_KERNEL_ENTRIES:
                return None
            cpg, opg = ci // groups, co // groups
            full = np.zeros((co, ci, *m.shape[2:]), np.int64)
            for g in range(groups):
                full[g * opg : (g + 1) * opg, g * cpg : (g + 1) * cpg] = m[g * opg : (g + 1) * opg]
            m = full
        return ConvMap(m, False, stride, pad, (h, w), (h, w), ci, (co, ho, wo))
    if kind == "pool":
        if "kernel_size" not in attrs or ci != co:
            return None
        k = two(attrs["kernel_size"], 1, 1)
        s = two(attrs.get("stride") or attrs["kernel_size"], 1, 1)
        p = two(attrs.get("padding") or 0, 0, 0)
        if k is None or s is None or p is None:
            return None
        return ConvMap(np.ones((ci, *k), np.int64), True, s, p, (h, w), (h, w), ci, (co, ho, wo))
    return None


def identity_map(shape: Sequence[int]) -> ConvMap:
    """Element ``i`` read by neuron ``i`` (a layer fed straight from its source), as a 1x1
    depthwise map over ``shape`` read as ``(C, H, W)`` (``(C, 1, L)`` or ``(1, 1, N)``)."""
    dims = [int(d) for d in shape] or [1]
    if len(dims) == 1:
        c, h, w = 1, 1, dims[0]
    elif len(dims) == 2:
        c, h, w = dims[0], 1, dims[1]
    else:
        c, h, w = dims[0], math.prod(dims[1:-1]), dims[-1]
    return ConvMap(np.ones((c, 1, 1), np.int64), True, (1, 1), (0, 0), (h, w), (h, w), c, (c, h, w))


def _compose(a: ConvMap, b: ConvMap) -> ConvMap | None:
    """``a`` then ``b`` as one map, where that is exact (``None`` otherwise).

    Exact when ``b`` pads nothing, or along each padded axis ``a`` has non-overlapping windows
    without padding (then the pixels ``a`` drops are cropped from the plane).
    """
    if (b.in_channels, *b.plane) != a.out_shape or (a.depthwise is False and b.depthwise is False):
        return None
    plane = list(a.plane)
    for ax in (0, 1):
        if b.padding[ax]:
            if a.padding[ax] or a.ksize[ax] != a.stride[ax]:
                return None
            plane[ax] = min(plane[ax], a.stride[ax] * a.out_shape[1 + ax])
    (ka_y, ka_x), (kb_y, kb_x) = a.ksize, b.ksize
    (sa_y, sa_x) = a.stride
    ky, kx = sa_y * (kb_y - 1) + ka_y, sa_x * (kb_x - 1) + ka_x
    if a.depthwise and b.depthwise:
        shape: tuple[int, ...] = (a.in_channels, ky, kx)
    elif a.depthwise:
        shape = (b.out_shape[0], a.in_channels, ky, kx)
    else:
        shape = (a.out_shape[0], a.in_channels, ky, kx)
    if math.prod(shape) > MAX_KERNEL_ENTRIES:
        return None
    k = np.zeros(shape, np.int64)
    for jy in range(kb_y):
        for jx in range(kb_x):
            ys, xs = slice(sa_y * jy, sa_y * jy + ka_y), slice(sa_x * jx, sa_x * jx + ka_x)
            if a.depthwise and b.depthwise:
                k[:, ys, xs] += b.kernel[:, jy, jx][:, None, None] * a.kernel
            elif a.depthwise:
                k[:, :, ys, xs] += b.kernel[:, :, jy, jx][:, :, None, None] * a.kernel[None]
            else:
                k[:, :, ys, xs] += b.kernel[:, jy, jx][:, None, None, None] * a.kernel
    return ConvMap(
        k,
        a.depthwise and b.depthwise,
        (sa_y * b.stride[0], sa_x * b.stride[1]),
        (sa_y * b.padding[0] + a.padding[0], sa_x * b.padding[1] + a.padding[1]),
        (plane[0], plane[1]),
        a.src_plane,
        a.in_channels,
        b.out_shape,
    )


def conv_map_of(ops: Sequence[ConvMap]) -> ConvMap | None:
    """A chain of maps (source first) as one map, or ``None`` where that is not exact."""
    cur = ops[0]
    for nxt in ops[1:]:
        cur = _compose(cur, nxt)
        if cur is None:
            return None
    return cur


def box_split(
    order: str, a: int, e: int, shape: tuple[int, int, int]
) -> list[tuple[int, int, int, int, int, int]]:
    """Neurons ``[a, e)`` of a ``(C, H, W)`` layer in partition order ``order`` as boxes
    ``(c0, c1, y0, y1, x0, x1)``: at most three channel pieces of at most three row boxes."""
    c, h, w = shape
    hw = h * w
    out: list[tuple[int, int, int, int, int, int]] = []

    def rows(c0: int, c1: int, p0: int, p1: int) -> None:
        """Positions ``[p0, p1)`` (flat ``y * W + x``) of channels ``[c0, c1)``."""
        if p0 >= p1 or c0 >= c1:
            return
        y0, y1 = p0 // w, (p1 - 1) // w
        if y0 == y1:
            out.append((c0, c1, y0, y0 + 1, p0 % w, (p1 - 1) % w + 1))
            return
        first = y0
        if p0 % w:
            out.append((c0, c1, y0, y0 + 1, p0 % w, w))
            first = y0 + 1
        last = y1 + 1 if (p1 % w == 0) else y1
        if last > first:
            out.append((c0, c1, first, last, 0, w))
        if p1 % w:
            out.append((c0, c1, y1, y1 + 1, 0, p1 % w))

    if order == "H,W,C":
        q0, q1 = a // c, (e - 1) // c
        if q0 == q1:
            rows(a % c, (e - 1) % c + 1, q0, q0 + 1)
        else:
            rows(a % c, c, q0, q0 + 1)
            rows(0, c, q0 + 1, q1)
            rows(0, (e - 1) % c + 1, q1, q1 + 1)
    else:
        k0, k1 = a // hw, (e - 1) // hw
        if k0 == k1:
            rows(k0, k0 + 1, a % hw, (e - 1) % hw + 1)
        else:
            rows(k0, k0 + 1, a % hw, hw)
            rows(k0 + 1, k1, 0, hw)
            rows(k1, k1 + 1, 0, (e - 1) % hw + 1)
    return out


def _axis_map(lo_out: int, hi_out: int, s: int, p: int, k: int, n: int) -> tuple[int, np.ndarray]:
    """``(first, A)``: ``A[i, j] = 1`` when an output in ``[lo_out, hi_out)`` reads source
    position ``first + i`` through kernel tap ``j``."""
    first = max(0, lo_out * s - p)
    last = min(n, (hi_out - 1) * s - p + k)
    if last <= first:
        return first, np.zeros((0, k), np.int64)
    t = np.arange(first, last)[:, None] + p - np.arange(k)[None, :]
    q = t // s
    ok = (t >= 0) & (t % s == 0) & (q >= lo_out) & (q < hi_out)
    return first, ok.astype(np.int64)


def _mix(x: np.ndarray) -> np.ndarray:
    """A 64-bit mixing function (splitmix64's finaliser), element-wise on ``uint64``."""
    with np.errstate(over="ignore"):
        x = (x ^ (x >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
        x = (x ^ (x >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
        return x ^ (x >> np.uint64(31))


@dataclass
class ConvTerm:
    """A source read through a :class:`ConvMap`.

    A block's counts only depend on its boxes relative to its first row and on how far the
    kernel hangs over the plane's top and bottom edges, so blocks that differ by a shift of
    whole rows share one computation (``_cache``): the interior of a layer is counted once per
    distinct block shape.

    Read through population axons (``pop`` given to :meth:`counts`, for maps that mix channels),
    the term is stored the way nengo-loihi builds a convolution (``conv2d_loihi_weights``,
    ``split_blocks.set_new_synapse_weights``): one input axon per source position read, and one
    weight list per input position, ``in_channels`` atoms x the block's neurons it reaches
    (zeros included: every atom lists the same targets). Positions whose lists are equal share
    one copy: same kernel taps onto the same neurons relative to the first one, and the first
    one in the same window of ``pop.base`` compartments (the compartment base of a population
    axon is below ``pop.base``, the rest of the offset goes into the stored indices).
    """

    source: str
    map: ConvMap
    _cache: dict = field(default_factory=dict, repr=False)
    _tables: tuple | None = field(default=None, repr=False)

    def __post_init__(self) -> None:
        m = self.map
        if m.uniform:  # dense layers of one geometry (e.g. a conv stack) share counts
            if len(_SHARED) > 64:
                _SHARED.clear()
            self._cache = _SHARED.setdefault(m.signature(), {})
        (kh, kw), (sy, sx), (py, px), (h, w) = m.ksize, m.stride, m.padding, m.plane
        # the kernel hangs over the top / bottom / left / right edge for these box limits
        self._edges = (sy, py, kh - h, sx, px, kw - w)
        self._copies = m.in_channels if m.uniform else 1  # uniform: one plane for all channels

    def counts(
        self,
        order: str,
        a: int,
        e: int,
        lut: Callable[[int], np.ndarray],
        pop: PopulationFormat | None = None,
    ) -> tuple:
        """``((axons, synapses, sparse_bits, population_axons, population_bits), state)`` of
        neurons ``[a, e)`` in ``order``; with ``pop``, a map that mixes channels is read
        through population axons (its axons and bits are the population ones)."""
        m = self.map
        boxes = box_split(order, a, e, m.out_shape)
        by = bx = 1 << 62
        ly = lx = -1
        for b in boxes:
            by, bx = min(by, b[2]), min(bx, b[4])
            ly, lx = max(ly, b[3]), max(lx, b[5])
        sy, py, over_y, sx, px, over_x = self._edges
        uniform = m.uniform
        key = (
            order,  # the neurons' order within the block names the population weight lists
            tuple(
                (c1 - c0 if uniform else (c0, c1), y0 - by, y1 - by, x0 - bx, x1 - bx)
                for c0, c1, y0, y1, x0, x1 in boxes
            ),
            min(0, by * sy - py),
            max(0, (ly - 1) * sy - py + over_y),
            min(0, bx * sx - px),
            max(0, (lx - 1) * sx - px + over_x),
        )
        hit = self._cache.get(key)
        if hit is None:
            if len(self._cache) > 4096:
                self._cache.clear()
            hit = self._cache[key] = [*self._compute(boxes, by * sy, bx * sx), {}, {}]
        population = pop is not None and not m.depthwise
        sid = (id(lut), id(pop)) if population else id(lut)
        summary = hit[4].get(sid)
        if summary is None:
            acc = hit[0]
            if population:
                lists = hit[5].get(pop.base)
                if lists is None:
                    lists = hit[5][pop.base] = self._population(order, a, e, pop.base)
                positions, entries, max_index = lists
                synapses = int(acc.sum()) * self._copies
                summary = (0, synapses, 0, positions, pop(entries, max_index))
            else:
                summary = (*count_summary(acc.reshape(-1), self._copies, 0, lut), 0, 0)
            hit[4][sid] = summary
        return summary, (hit, by * sy, bx * sx, population)

    def touched(self, state: tuple) -> np.ndarray | PlaneTouch:
        (acc, ch0, r_rel, q_rel, *_), row_base, col_base, population = state
        hs, ws = self.map.src_plane
        if population:  # the positions read, each through one population axon
            r, x = np.nonzero(acc.any(axis=0))
            pos = (r + r_rel + row_base) * ws + (x + q_rel + col_base)
            return PlaneTouch(pos, self.map.in_channels, hs * ws, population=True)
        c, r, x = np.nonzero(acc)
        flat = ((c + ch0) * hs + (r + r_rel + row_base)) * ws + (x + q_rel + col_base)
        return PlaneTouch(flat, self._copies, hs * ws) if self.map.uniform else flat

    def _support_tables(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Per kernel tap (flat ``ky * KW + kx``) over output channels ``o`` (``0..Co``): the
        first channel ``>= o`` the tap reaches with a nonzero weight (``Co``: none), the last
        one ``< o`` (-1: none), and how many lie below ``o``; a tap reaches channel ``o`` when
        some input channel has a nonzero weight there."""
        if self._tables is None:
            m = self.map
            co = m.out_shape[0]
            k = m.kernel
            if m.uniform:
                s = np.broadcast_to(k[0, 0] > 0, (co, *k.shape[-2:]))
            else:
                s = k.any(axis=1) if k.ndim == 4 else k > 0
            s = s.reshape(co, -1).T  # (taps, Co)
            o = np.arange(co)
            nxt = np.full((s.shape[0], co + 1), co, np.int64)
            nxt[:, :co] = np.minimum.accumulate(np.where(s, o, co)[:, ::-1], axis=1)[:, ::-1]
            prv = np.full((s.shape[0], co + 1), -1, np.int64)
            prv[:, 1:] = np.maximum.accumulate(np.where(s, o, -1), axis=1)
            cnt = np.zeros((s.shape[0], co + 1), np.int64)
            np.cumsum(s, axis=1, out=cnt[:, 1:])
            self._tables = (nxt, prv, cnt)
        return self._tables

    def _population(
        self, order: str, a: int, e: int, base: int | None
    ) -> tuple[int, np.ndarray, int]:
        """``(positions, entries, max_index)`` of neurons ``[a, e)`` read through population
        axons: the source positions read, the entries (atoms x targets) of every distinct
        weight list, and the largest compartment index the lists store (``base`` bounds the
        compartment base of an axon; None: no bound).

        Counted over the (kernel tap, output position) pairs of the block's bounding box: a
        position's list is named by the channel range each of its taps reaches (a hash of the
        set, 128 bits) and its base window."""
        m = self.map
        co, ho, wo = m.out_shape
        plane = ho * wo
        (kh, kw), (sy, sx), (py, px), (h, w) = m.ksize, m.stride, m.padding, m.plane
        ws = m.src_plane[1]
        boxes = box_split(order, a, e, m.out_shape)
        y0, y1 = min(b[2] for b in boxes), max(b[3] for b in boxes)
        x0, x1 = min(b[4] for b in boxes), max(b[5] for b in boxes)
        # every (tap, output position) pair of the bounding box that lands on the plane
        ky, kx = np.divmod(np.arange(kh * kw), kw)
        ys, xs = np.arange(y0, y1), np.arange(x0, x1)
        qy = ys[None, :] * sy - py + ky[:, None]  # (taps, rows)
        qx = xs[None, :] * sx - px + kx[:, None]  # (taps, cols)
        ok = ((qy >= 0) & (qy < h))[:, :, None] & ((qx >= 0) & (qx < w))[:, None, :]
        tap, yi, xi = np.nonzero(ok)
        pos = (y0 + yi) * wo + (x0 + xi)
        q = qy[tap, yi] * ws + qx[tap, xi]
        # the block's output channels at each output position: a range [lo, hi]
        if order == "H,W,C":
            pa, ca = divmod(a, co)
            pe, ce = divmod(e - 1, co)
            inside = (pos >= pa) & (pos <= pe)
            lo = np.where(inside, np.where(pos == pa, ca, 0), co)
            hi = np.where(inside, np.where(pos == pe, ce, co - 1), -1)
        else:
            oa, pa = divmod(a, plane)
            oe, pe = divmod(e - 1, plane)
            lo = np.where(pos >= pa, oa, oa + 1)
            hi = np.where(pos <= pe, oe, oe - 1)
        nxt, prv, cnt = self._support_tables()
        below = cnt[tap, np.maximum(hi + 1, 0)] - cnt[tap, np.minimum(lo, co)]
        count = np.where(hi >= lo, below, 0)
        keep = count > 0
        if not keep.any():
            return 0, np.zeros(0, np.int64), -1
        tap, pos, q, lo, hi, count = tap[keep], pos[keep], q[keep], lo[keep], hi[keep], count[keep]
        first, last = nxt[tap, lo], prv[tap, hi + 1]
        if order == "H,W,C":
            lmin, lmax = pos * co + first - a, pos * co + last - a
        else:
            lmin, lmax = first * plane + pos - a, last * plane + pos - a
        # per source position, over its pairs (sorted by position)
        by = np.argsort(q, kind="stable")
        q, tap, first, last = q[by], tap[by], first[by], last[by]
        lmin, lmax, count = lmin[by], lmax[by], count[by]
        starts = np.flatnonzero(np.r_[True, q[1:] != q[:-1]])
        m_q = np.minimum.reduceat(lmin, starts)
        big_q = np.maximum.reduceat(lmax, starts)
        entries = np.add.reduceat(count, starts) * m.in_channels
        name = (tap.astype(np.uint64) * np.uint64(co + 1) + first.astype(np.uint64)) * np.uint64(
            co + 1
        ) + last.astype(np.uint64)
        h1 = np.add.reduceat(_mix(name), starts)
        h2 = np.add.reduceat(_mix(name ^ np.uint64(0x5BD1E9955BD1E995)), starts)
        if base:
            window, max_index = m_q // base, int((big_q - m_q % base).max())
        else:
            window, max_index = np.zeros_like(m_q), int((big_q - m_q).max())
        desc = np.stack([h1, h2, window.astype(np.uint64)], axis=1)
        rows = desc.view(np.dtype((np.void, desc.dtype.itemsize * 3))).ravel()
        _, idx = np.unique(rows, return_index=True)
        return len(starts), entries[idx], max_index

    def per_neuron(self) -> np.ndarray:
        """Synapses of every neuron (flat ``(C, H, W)`` index): the map applied to ones."""
        import torch
        import torch.nn.functional as F

        m = self.map
        h, w = m.plane
        co, ho, wo = m.out_shape
        (kh, kw), (sy, sx), (py, px) = m.ksize, m.stride, m.padding
        # ones on the plane, zeros past it (a cropped plane), so every output position exists
        big_h = max(h + py, (ho - 1) * sy + kh) - py
        big_w = max(w + px, (wo - 1) * sx + kw) - px
        ones = torch.zeros(1, m.in_channels, big_h, big_w, dtype=torch.float64)
        ones[:, :, :h, :w] = 1.0
        k = torch.from_numpy(m.kernel).to(torch.float64)
        if m.uniform:  # every output channel reads every input channel alike: one plane
            plane = F.conv2d(ones[:, :1], k[:1, :1], None, m.stride, m.padding)[0, 0, :ho, :wo]
            got = np.rint(plane.numpy()).astype(np.int64) * m.in_channels
            return np.broadcast_to(got, (co, ho, wo)).reshape(-1)
        if m.depthwise:
            y = F.conv2d(ones, k[:, None], None, m.stride, m.padding, 1, m.in_channels)
        else:
            y = F.conv2d(ones, k, None, m.stride, m.padding)
        return np.rint(y[0, :, :ho, :wo].numpy()).astype(np.int64).reshape(-1)

    def _compute(
        self, boxes: list, row_base: int, col_base: int
    ) -> tuple[np.ndarray, int, int, int]:
        """Counts of the boxes on their bounding region: ``(acc, channel0, row0 - row_base,
        col0 - col_base)``."""
        m = self.map
        kh, kw = m.ksize
        (sy, sx), (py, px), (h, w) = m.stride, m.padding, m.plane
        pieces = []
        for c0, c1, y0, y1, x0, x1 in boxes:
            r0, ay = _axis_map(y0, y1, sy, py, kh, h)
            q0, ax = _axis_map(x0, x1, sx, px, kw, w)
            if not len(ay) or not len(ax):
                continue
            if m.depthwise:
                kc, ch0 = m.kernel[c0:c1], c0
            elif m.uniform:
                kc, ch0 = (c1 - c0) * m.kernel[:1, 0], 0
            else:
                pre = m.prefix()
                kc, ch0 = pre[c1] - pre[c0], 0
            # (channels, rows, cols) = A_rows @ K @ A_cols^T for every channel
            part = np.matmul(ay, np.matmul(kc, ax.T))
            pieces.append((ch0, r0, q0, part))
        if not pieces:
            return np.zeros((0, 0, 0), np.int64), 0, 0, 0
        if len(pieces) == 1:
            ch0, r0, q0, acc = pieces[0]
        else:
            ch0 = min(p[0] for p in pieces)
            r0 = min(p[1] for p in pieces)
            q0 = min(p[2] for p in pieces)
            ch1 = max(p[0] + p[3].shape[0] for p in pieces)
            r1 = max(p[1] + p[3].shape[1] for p in pieces)
            q1 = max(p[2] + p[3].shape[2] for p in pieces)
            acc = np.zeros((ch1 - ch0, r1 - r0, q1 - q0), np.int64)
            for c_, r_, q_, part in pieces:
                acc[
                    c_ - ch0 : c_ - ch0 + part.shape[0],
                    r_ - r0 : r_ - r0 + part.shape[1],
                    q_ - q0 : q_ - q0 + part.shape[2],
                ] += part
        return acc, ch0, r0 - row_base, q0 - col_base


# --------------------------------------------------------------------------------------------
# Linear layers
# --------------------------------------------------------------------------------------------


@dataclass
class LinearTerm:
    """A 0/1 matrix ``[neuron, v]`` over ``n_v`` inputs, each input ``v`` standing for
    ``mult[v]`` source elements (the pixels of a pooling window before it).

    Stored as the rows of whichever is rarer, its ones or its zeros (``side``); ``cols`` holds
    them row by row (``indptr``). A dense matrix stores nothing. A block's counts are a column
    count over its rows, kept running while the block grows or shrinks from the same start.
    """

    source: str
    n_out: int
    n_v: int
    side: str  # "dense", "ones" or "zeros"
    indptr: np.ndarray
    cols: np.ndarray
    mult: np.ndarray | int = 1
    members: Callable[[np.ndarray | None], np.ndarray | None] = lambda v: v
    perm_of: Callable[[str], np.ndarray] | None = None
    _run: tuple | None = field(default=None, repr=False)

    @classmethod
    def of(
        cls,
        source: str,
        mask: np.ndarray,
        mult: np.ndarray | int = 1,
        members: Callable[[np.ndarray | None], np.ndarray | None] = lambda v: v,
        perm_of: Callable[[str], np.ndarray] | None = None,
    ) -> LinearTerm:
        """From a boolean ``(neurons, inputs)`` mask of nonzero weights (numpy or torch)."""
        import torch

        t = torch.as_tensor(mask, dtype=torch.bool)
        n_out, n_v = t.shape
        ones = int(torch.count_nonzero(t))
        if ones == t.numel():
            side, indptr, cols = "dense", np.zeros(0, np.int64), np.zeros(0, np.int64)
        else:
            side = "ones" if ones <= t.numel() // 2 else "zeros"
            idx = torch.nonzero(t if side == "ones" else ~t).numpy()
            rows, cols = idx[:, 0], idx[:, 1]
            indptr = np.zeros(n_out + 1, np.int64)
            np.cumsum(np.bincount(rows, minlength=n_out), out=indptr[1:])
        return cls(source, n_out, n_v, side, indptr, cols, mult, members, perm_of)

    def _total_mult(self) -> int:
        return int(self.mult.sum()) if isinstance(self.mult, np.ndarray) else self.n_v * self.mult

    def per_neuron(self) -> np.ndarray:
        """Synapses of every neuron (source elements read, with multiplicity)."""
        total = self._total_mult()
        if self.side == "dense":
            return np.full(self.n_out, total, np.int64)
        w = self.mult[self.cols] if isinstance(self.mult, np.ndarray) else None
        rows = np.repeat(np.arange(self.n_out), np.diff(self.indptr))
        got = np.bincount(rows, weights=w, minlength=self.n_out)
        if w is None:
            got = got * self.mult
        got = np.rint(got).astype(np.int64)
        return got if self.side == "ones" else total - got

    def _stored(self, rows: np.ndarray | slice) -> np.ndarray:
        """How many stored entries (ones or zeros) each input has in ``rows``."""
        if isinstance(rows, slice):
            cols = self.cols[self.indptr[rows.start] : self.indptr[rows.stop]]
        else:
            starts, ends = self.indptr[rows], self.indptr[rows + 1]
            lens = ends - starts
            offsets = np.repeat(starts - np.cumsum(lens) + lens, lens)
            cols = self.cols[offsets + np.arange(int(lens.sum()))]
        return np.bincount(cols, minlength=self.n_v)

    def counts(
        self, order: str, a: int, e: int, lut: Callable[[int], np.ndarray], pop: object = None
    ) -> tuple:
        """Like :meth:`ConvTerm.counts`; a linear map is always read through discrete axons."""
        if self.side == "dense":
            return (*count_summary(e - a, self.mult, self.n_v, lut), 0, 0), None
        perm = self.perm_of(order) if self.perm_of is not None else None
        contiguous = perm is None or order == "C,H,W"

        def stored(lo: int, hi: int) -> np.ndarray:
            return self._stored(slice(lo, hi) if contiguous else perm[lo:hi])

        run = self._run
        if run is not None and run[0] == order and run[1] == a:
            _, _, prev_e, got = run
            if e > prev_e:
                got = got + stored(prev_e, e)
            elif e < prev_e:
                got = got - stored(e, prev_e) if e - a > prev_e - e else stored(a, e)
        else:
            got = stored(a, e)
        self._run = (order, a, e, got)
        acc = got if self.side == "ones" else (e - a) - got
        return (*count_summary(acc, self.mult, self.n_v, lut), 0, 0), acc

    def touched(self, acc: np.ndarray | None) -> np.ndarray | None:
        return self.members(None if acc is None else np.flatnonzero(acc))


# --------------------------------------------------------------------------------------------
# A population's reach
# --------------------------------------------------------------------------------------------


@dataclass
class Reach:
    """The terms that feed a population, one per source (sources are distinct)."""

    terms: list[ConvTerm | LinearTerm]

    def has_population_terms(self) -> bool:
        """Whether a term mixes channels through a convolution (read through population
        axons when the caller asks for them)."""
        return any(isinstance(t, ConvTerm) and not t.map.depthwise for t in self.terms)

    def per_neuron(self, n: int) -> np.ndarray:
        """Synapses of every neuron (flat index), all sources together."""
        total = np.zeros(n, np.int64)
        for t in self.terms:
            total += t.per_neuron()
        return total

    def block(
        self,
        order: str,
        a: int,
        e: int,
        lut: Callable[[int], np.ndarray],
        pop: PopulationFormat | None = None,
    ) -> BlockCounts:
        """What neurons ``[a, e)`` in ``order`` read; with ``pop``, convolutions that mix
        channels are read through population axons and stored in ``pop``'s format."""
        if len(self.terms) == 1:
            t = self.terms[0]
            got, state = t.counts(order, a, e, lut, pop)
            return BlockCounts(*got, [(t.source, t, state)])
        total = [0, 0, 0, 0, 0]
        touch = []
        for t in self.terms:
            got, state = t.counts(order, a, e, lut, pop)
            total = [x + y for x, y in zip(total, got)]
            touch.append((t.source, t, state))
        return BlockCounts(*total, touch)


def pooled_members(pool: ConvMap, n_src: int) -> tuple[np.ndarray, Callable] | None:
    """For non-overlapping pooling without padding: how many source elements each pooled
    element stands for, and a function from pooled indices to the source indices they cover."""
    (kh, kw), (sy, sx), (py, px) = pool.ksize, pool.stride, pool.padding
    if not pool.depthwise or (kh, kw) != (sy, sx) or (py, px) != (0, 0):
        return None
    if not np.all(pool.kernel == 1):
        return None
    c, ho, wo = pool.out_shape
    hs, ws = pool.src_plane
    if c * hs * ws != n_src:
        return None
    # source pixels of each pooled element: window rows/cols clipped to the plane
    h, w = pool.plane
    ny = np.minimum(h, (np.arange(ho) + 1) * sy) - np.arange(ho) * sy
    nx = np.minimum(w, (np.arange(wo) + 1) * sx) - np.arange(wo) * sx
    per = np.clip(ny, 0, None)[:, None] * np.clip(nx, 0, None)[None, :]
    mult = np.broadcast_to(per, (c, ho, wo)).reshape(-1).astype(np.int64)
    grid_y = np.arange(kh)[:, None]
    grid_x = np.arange(kw)[None, :]

    def members(v: np.ndarray | None) -> np.ndarray:
        if v is None:
            v = np.arange(c * ho * wo)
        ch, rem = np.divmod(v, ho * wo)
        yy, xx = np.divmod(rem, wo)
        ys = yy[:, None, None] * sy + grid_y[None]
        xs = xx[:, None, None] * sx + grid_x[None]
        ok = (ys < h) & (xs < w)
        flat = (ch[:, None, None] * hs + ys) * ws + xs
        return np.sort(flat[ok])

    return mult, members
