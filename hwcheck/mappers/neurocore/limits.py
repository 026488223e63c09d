"""Neurocore limit names (the profile schema) and the per-core limits with the synapse encoding.

A profile's figures become one frozen :class:`CoreLimits`; the functions here turn synapse counts
into bits of synapse memory (rows, words, sparse / dense and population-axon encodings), so the
partition and the rules can count a core's memory without knowing the profile. Kept apart because
everything else in the package depends on it and it depends on nothing in the package.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace

import numpy as np

from hwcheck.profiles import ChipProfile, FigureSpec

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
