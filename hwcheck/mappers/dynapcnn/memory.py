"""DYNAP-CNN memory per core: the limit names (profile schema), the word counts of kernel, neuron
and bias memory with sinabs' power-of-two rounding, and the table of core sizes.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from hwcheck.profiles import ChipProfile, FigureSpec, ProfileError

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
