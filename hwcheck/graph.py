"""The layer graph: what a model is made of, from shapes alone.

``describe(model, input_shape)`` runs one forward pass on a tiny zero input with forward hooks on
every leaf layer and a torch-function mode that follows tensors between layers, so arbitrary
``forward()`` code (residual adds, concatenation, a module called twice) gives the right
data-flow edges. Each call of a module is its own node: ``conv`` for the first call, ``conv:2``
for the second.

Shapes in a node are *feature* shapes: the leading batch and time dimensions are stripped
(``lead_dims`` says how many there were), so a Conv2d node has ``in_shape == (C, H, W)`` whether
the model runs on ``(B*T, C, H, W)`` or ``(B, C, H, W)``.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

__all__ = ["LayerNode", "LayerGraph", "INPUT", "KINDS"]

INPUT = "input"

#: Layer kinds, as assigned by the registry in :mod:`hwcheck.layers`.
KINDS = (
    "conv",  # Conv1d / Conv2d (weights)
    "linear",  # Linear (weights)
    "pool",  # AvgPool / SumPool / MaxPool; attrs["pool_type"] says which
    "spiking",  # spiking neurons (IAF, LIF, ALIF, snnTorch Leaky ...)
    "neuron",  # stateful non-spiking neurons (ExpLeak)
    "activation",  # ReLU, NeuromorphicReLU
    "norm",  # BatchNorm: must be folded before deployment
    "reshape",  # Flatten, FlattenTime, UnflattenTime
    "identity",  # Identity, Dropout
    "merge",  # sinabs Merge
    "unknown",  # a module the registry does not describe
)


@dataclass(frozen=True)
class LayerNode:
    """One call of one layer.

    Attributes:
        name: unique node name: the module path, with ``:k`` appended for the k-th call (k >= 2).
        module_path: dotted path of the module in the model (``""`` for the model itself).
        call_index: 0 for the first call of the module in one forward pass, 1 for the second...
        kind: one of :data:`KINDS`.
        type_name: the module's class name (``"Conv2d"``, ``"IAFSqueeze"``).
        in_shape: feature shape of the first input (batch/time stripped).
        in_shapes: feature shapes of all tensor inputs.
        out_shape: feature shape of the output.
        lead_dims: number of leading batch/time dimensions that were stripped from the output.
        params: number of parameters of the module (counted on its first call only).
        neurons: neurons in the layer (spiking and neuron kinds: numel of out_shape), else 0.
        synapses: connections of a weight layer (sum over outputs of their fan-in), else 0.
        synapses_nonzero: connections whose weight is nonzero.
        fan_in_max: largest number of inputs one output reads (weight layers; pools: window).
        fan_out_max: largest number of outputs one input reaches.
        fan_out_max_nonzero: the same, counting only nonzero weights.
        attrs: kind-specific plain facts (see :mod:`hwcheck.layers`), e.g. for conv:
            in_channels, out_channels, kernel_size, stride, padding, dilation, groups, bias;
            for linear: in_features, out_features, bias; for pool: pool_type, kernel_size,
            stride, padding, ceil_mode, count_include_pad; for spiking / neuron: neuron_model,
            tau_mem, tau_syn, synaptic_states, threshold, reset, recurrent, squeeze, leak.
        module: the module object itself (for mappers that need weights); not compared.
    """

    name: str
    module_path: str
    call_index: int
    kind: str
    type_name: str
    in_shape: tuple[int, ...]
    in_shapes: tuple[tuple[int, ...], ...]
    out_shape: tuple[int, ...]
    lead_dims: int = 1
    params: int = 0
    neurons: int = 0
    synapses: int = 0
    synapses_nonzero: int = 0
    fan_in_max: int = 0
    fan_out_max: int = 0
    fan_out_max_nonzero: int = 0
    attrs: Mapping[str, Any] = field(default_factory=dict)
    module: Any = field(default=None, compare=False, repr=False)

    @property
    def has_weights(self) -> bool:
        return self.kind in ("conv", "linear")


@dataclass
class LayerGraph:
    """Nodes in data-flow (call) order plus the edges between them.

    ``edges`` are ``(src, dst)`` node names; the model input is the pseudo-node :data:`INPUT`.
    An edge means the output of ``src`` reaches an input of ``dst`` through any chain of plain
    tensor operations (add, cat, view...) that are not themselves layers.
    """

    nodes: dict[str, LayerNode]
    edges: list[tuple[str, str]]
    input_shape: tuple[int, ...]
    layout: str = "B"
    warnings: list[str] = field(default_factory=list)
    outputs: list[str] = field(default_factory=list)

    def __iter__(self) -> Iterator[LayerNode]:
        return iter(self.nodes.values())

    def __len__(self) -> int:
        return len(self.nodes)

    def __getitem__(self, name: str) -> LayerNode:
        return self.nodes[name]

    def predecessors(self, name: str) -> list[str]:
        """Nodes (or :data:`INPUT`) whose output feeds ``name``, in edge order."""
        return [s for s, d in self.edges if d == name]

    def successors(self, name: str) -> list[str]:
        """Nodes fed by the output of ``name``, in edge order."""
        return [d for s, d in self.edges if s == name]

    def by_kind(self, *kinds: str) -> list[LayerNode]:
        return [n for n in self.nodes.values() if n.kind in kinds]

    def calls_of(self, module_path: str) -> list[LayerNode]:
        """All nodes that are calls of the same module (length > 1 for a shared module)."""
        return [n for n in self.nodes.values() if n.module_path == module_path]
