"""The layer graph: what a model is made of, from shapes alone.

``describe(model, input_shape)`` runs one forward pass on a tiny zero input with forward hooks on
every leaf layer and a torch-function mode that follows tensors between layers, so arbitrary
``forward()`` code (residual adds, concatenation, a module called twice) gives the right
data-flow edges. Each call of a module is its own node: ``conv`` for the first call, ``conv:2``
for the second -- except a time loop inside ``forward()``, which is folded into one node per
module and ``loop_steps`` steps. Recurrent weights of a neuron layer are nodes of their own,
joined to it by ``recurrent_edges``.

Shapes in a node are *feature* shapes: the leading batch and time dimensions are stripped
(``lead_dims`` says how many there were), so a Conv2d node has ``in_shape == (C, H, W)`` whether
the model runs on ``(B*T, C, H, W)`` or ``(B, C, H, W)``.
"""

from __future__ import annotations

import math
import weakref
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

__all__ = ["LayerNode", "LayerGraph", "INPUT", "KINDS", "ModelError"]


class ModelError(RuntimeError):
    """The model's own forward() raised: the message names the model and the input it got."""


def model_error(model: Any, x: Any, exc: BaseException) -> ModelError:
    shape = tuple(x.shape) if hasattr(x, "shape") else type(x).__name__
    first = (str(exc).splitlines() or [""])[0]
    return ModelError(f"in forward of {type(model).__name__} (input {shape}): {type(exc).__name__}: {first}")

#: Name of the model-input pseudo-node in edges. Module paths are dotted Python-style names, so a
#: submodule called ``input`` (as in every nirtorch model) never collides with it;
#: :func:`describe` refuses a model that really has a submodule named ``<input>``.
INPUT = "<input>"

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
    #: steps of a time loop inside ``forward()`` folded into this graph (None: no loop)
    loop_steps: int | None = None
    #: edges that carry a spike to the next time step (recurrent weights): kept out of
    #: ``edges``, which stay acyclic
    recurrent_edges: list[tuple[str, str]] = field(default_factory=list)
    #: how the time structure was read (for reports)
    notes: list[str] = field(default_factory=list)

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

    def to_frame(self) -> Any:
        """One row per layer: kind, type, shapes, params, neurons, synapses, fan-in/out."""
        from hwcheck.activity import static_layers

        return static_layers(self)

    def __repr__(self) -> str:
        import pandas as pd

        head = (
            f"LayerGraph: {len(self.nodes)} layers, input {tuple(self.input_shape)}, layout "
            f"{self.layout}" + (f", time loop of {self.loop_steps} steps" if self.loop_steps else "")
        )
        if not self.nodes:
            return head
        cols = ["kind", "type", "out_shape", "params", "neurons", "synapses", "fan_in_max"]
        with pd.option_context("display.width", 120, "display.max_rows", 60):
            return f"{head}\n{self.to_frame()[cols].to_string()}"

    def calls_of(self, module_path: str) -> list[LayerNode]:
        """All nodes that are calls of the same module (length > 1 for a shared module)."""
        return [n for n in self.nodes.values() if n.module_path == module_path]


# --------------------------------------------------------------------------- tracing

# tensor functions that keep values and their order: a weight layer's events may be counted
# before them (e.g. AvgPool -> x.view(B, -1) -> Linear)
_RESHAPE_FUNCS = {
    "view",
    "reshape",
    "flatten",
    "unflatten",
    "squeeze",
    "unsqueeze",
    "contiguous",
    "view_as",
    "reshape_as",
    "clone",
    "detach",
    "float",
    "to",
    "type",
}


@dataclass
class _TensorInfo:
    sources: frozenset[str]
    lead: int
    node: str | None = None  # the node whose output this tensor is, exactly
    reshape_of: int | None = None  # id() of the tensor this is a pure reshape of


@dataclass
class _CallRecord:
    name: str
    module: Any
    module_path: str
    call_index: int
    spec: Any
    inputs: list[Any]
    output: Any = None
    # provenance of each input as it was when the call started (a layer that returns its input
    # tensor itself, like Identity, overwrites the tensor's entry afterwards)
    in_infos: list[Any] = field(default_factory=list)


from hwcheck.timing import LAYOUTS, infer_layout, squeeze_rows  # noqa: E402  (re-exported)


def example_input(
    model: Any, input_shape: tuple[int, ...], layout: str, device: Any = None, steps: int | None = None
) -> Any:
    """A zero input of the smallest batch the model accepts, for tracing shapes."""
    import torch

    if layout == "(BT)":
        batch, squeeze_steps = squeeze_rows(model)
        steps = squeeze_steps or steps
        rows = (batch or 1) * (steps or 1)
        shape: tuple[int, ...] = (rows, *input_shape)
    elif layout == "BT":
        # sinabs UnflattenTime(batch_size=b) can only unflatten a multiple of b rows
        batch = max(
            (int(getattr(m, "batch_size", 1) or 1) for m in model.modules() if type(m).__name__ == "UnflattenTime"),
            default=1,
        )
        shape = (batch, steps or 1, *input_shape)
    elif layout == "TB":
        shape = (steps or 1, 1, *input_shape)
    else:
        shape = (1, *input_shape)
    return torch.zeros(shape, device=device)


def _model_dtype(model: Any) -> Any:
    """The floating dtype of the model's weights (float32 when it has none)."""
    import torch

    for t in model.parameters():
        if t.is_floating_point():
            return t.dtype
    return torch.float32


def _model_device(model: Any) -> Any:
    for t in model.parameters():
        return t.device
    for t in model.buffers():
        return t.device
    return None


def _tensors_in(obj: Any) -> list[Any]:
    import torch

    out = []
    if isinstance(obj, torch.Tensor):
        out.append(obj)
    elif isinstance(obj, (list, tuple)):
        for o in obj:
            out.extend(_tensors_in(o))
    elif isinstance(obj, dict):
        for o in obj.values():
            out.extend(_tensors_in(o))
    return out


def _unknown_warning(path: str, m: Any) -> str:
    where = f"module '{path}'" if path else "the model itself"
    return (
        f"{where} ({type(m).__name__}) is not known to hwcheck and carries weights or state: its "
        "synapses and neurons are NOT counted. Describe it with hwcheck.register_layer / "
        "hwcheck.register_neuron."
    )


def _keeps_state(m: Any) -> bool:
    """Parameters, buffers, or tensors kept in plain attributes (SpikingJelly memories)."""
    import torch

    if m._parameters or any(b is not None for b in m._buffers.values()):
        return True
    for v in m.__dict__.values():
        if isinstance(v, torch.Tensor) or (
            isinstance(v, dict) and any(isinstance(t, torch.Tensor) for t in v.values())
        ):
            return True
    return False


def leaf_modules(model: Any) -> tuple[dict[Any, tuple[str, Any]], list[str]]:
    """Modules that become graph nodes: registered classes, and unknown leaves.

    Returns ``{module: (path, spec or None)}`` and warnings for unknown modules that carry
    parameters or state (they are counted as ``unknown``, never silently as zero). The model
    itself is a node when it is a single layer. The recurrent weights of a recurrent neuron
    (sinabs ``rec_connect``, snnTorch ``recurrent``) are nodes of their own.
    """
    from hwcheck.layers import recurrent_module, spec_for

    leaves: dict[Any, tuple[str, Any]] = {}
    warnings: list[str] = []
    skip_prefixes: list[str] = []
    for path, m in model.named_modules():
        if path == INPUT:
            raise ValueError(f"the model has a submodule named {INPUT!r}, a name hwcheck reserves")
        if any(path.startswith(p) for p in skip_prefixes):
            continue
        spec = spec_for(m)
        has_children = any(True for _ in m.children())
        own_state = bool(m._parameters) or any(b is not None for b in m._buffers.values())
        root = path == ""
        if spec is not None or not has_children or (own_state and not root):
            if m in leaves:
                continue
            leaves[m] = (path, spec)
            skip_prefixes.append(path + "." if path else "")
            if spec is None and (own_state or any(True for _ in m.parameters()) or _keeps_state(m)):
                warnings.append(_unknown_warning(path, m))
            rec = recurrent_module(m) if spec is not None and spec.kind == "spiking" else None
            if rec is not None:
                child, rec_mod = rec
                rec_spec = spec_for(rec_mod)
                if rec_spec is not None and rec_spec.connect is not None:
                    leaves[rec_mod] = (f"{path}.{child}" if path else child, rec_spec)
                else:
                    warnings.append(
                        f"recurrent weights '{child}' of '{path or type(m).__name__}' "
                        f"({type(rec_mod).__name__}) are not a layer hwcheck can count: their "
                        "synapses and synops are NOT counted."
                    )
    if model not in leaves and model._parameters:
        warnings.append(
            f"the model itself ({type(model).__name__}) holds parameters of its own "
            f"({', '.join(model._parameters)}), used outside any layer: they are NOT counted."
        )
    if model in leaves and leaves[model][1] is None and not _keeps_state(model):
        from torch import nn

        if isinstance(model, (nn.Sequential, nn.ModuleList, nn.ModuleDict)):
            raise ValueError(f"the model ({type(model).__name__}) has no layers")
    return leaves, warnings


def _check_model(model: Any) -> None:
    """The model must be an eager torch module."""
    import torch

    if not isinstance(model, torch.nn.Module):
        what = f"the path {model!r}" if isinstance(model, str) else f"a {type(model).__name__}"
        raise TypeError(
            f"expected a torch.nn.Module, got {what}"
            + ("; load the model first (the CLI takes file.py:attr)" if isinstance(model, str) else "")
        )
    _check_scriptable(model)


def _check_scriptable(model: Any) -> None:
    import torch

    if isinstance(model, torch.jit.ScriptModule):
        raise TypeError(
            "hwcheck cannot analyse a TorchScript module: forward hooks do not run on scripted "
            "code. Pass the eager nn.Module (the model object before torch.jit.script/trace), "
            "e.g. load it from its Python definition and state dict."
        )


#: per model: (signature, {(registry version, shape, layout, steps, example shape): graph})
_GRAPHS: weakref.WeakKeyDictionary[Any, tuple[tuple, dict[tuple, LayerGraph]]] = weakref.WeakKeyDictionary()


def model_signature(model: Any) -> tuple:
    """What a layer graph depends on: the modules (identity, type, plain settings such as a
    Squeeze layer's batch size, a convolution's padding or a SpikingJelly step mode), every
    parameter's identity, shape and version (an in-place weight update bumps it) and pruning
    masks (``torch.nn.utils.prune``). Neuron states are not part of it."""
    return signature_and_modules(model)[0]


def signature_and_modules(model: Any) -> tuple[tuple, list[Any]]:
    """:func:`model_signature` and the model's modules in :meth:`~torch.nn.Module.modules`
    order, from one walk (callers that need both walk once)."""
    global _MODULE_KEYS
    if _MODULE_KEYS is None:
        import torch

        _MODULE_KEYS = frozenset(torch.nn.Module().__dict__)  # torch's own bookkeeping
    parts: list[Any] = []
    add = parts.append
    mods: list[Any] = []
    seen: set[int] = set()
    stack: list[tuple[str, Any]] = [("", model)]
    while stack:  # depth first, children in order, each module once (as Module.named_modules)
        path, m = stack.pop()
        if id(m) in seen:
            continue
        seen.add(id(m))
        mods.append(m)
        d = m.__dict__
        own = d.keys() - _MODULE_KEYS  # (a set difference in C: most attributes are torch's)
        settings = tuple(sorted((k, v) for k in own if isinstance(v := d[k], _PLAIN) or _plain_tuple(v))) if own else ()
        add((path, id(m), type(m), settings))
        for name, p in m._parameters.items():
            if p is not None:
                add((name, id(p), p.shape, p._version, p.data_ptr(), p.dtype))
                if name.endswith("_orig"):  # pruned: which weights are zero is in the mask
                    mask = m._buffers.get(name[:-5] + "_mask")
                    if mask is not None:
                        add((name[:-5] + "_mask", id(mask), mask._version))
        children = m._modules
        if children:
            prefix = path + "." if path else ""
            stack.extend((prefix + k, c) for k, c in reversed(children.items()) if c is not None)
    return tuple(parts), mods


def _plain_tuple(v: Any) -> bool:
    """A tuple setting that decides the graph (a convolution's padding): numbers, strings, flags."""
    return type(v) is tuple and all(isinstance(e, _PLAIN) for e in v)


_PLAIN = (bool, int, float, str, type(None))
_MODULE_KEYS: frozenset[str] | None = None


def describe(
    model: Any,
    input_shape: tuple[int, ...] | list[int] | None = None,
    layout: str | None = None,
    *,
    timesteps: int | None = None,
    example: Any = None,
    cache: bool = True,
) -> LayerGraph:
    """Build the :class:`LayerGraph` of ``model`` for one input sample of ``input_shape``.

    ``model`` may also be a ``nir.NIRGraph`` or a ``.nir`` file (:mod:`hwcheck.nir_import`),
    whose input shape is the default. Graphs are cached per model, input shape, layout and model
    signature (:func:`model_signature`): a second call on an unchanged model costs no trace. A
    cached graph is shared; treat it as read-only. ``cache=False`` always traces.
    """
    from hwcheck.layers import REGISTRY_VERSION
    from hwcheck.nir_import import as_model

    model, input_shape = as_model(model, input_shape)
    _check_model(model)
    key = (
        REGISTRY_VERSION[0],
        _whole_shape(input_shape),
        layout,
        timesteps,
        None if example is None else tuple(example.shape),
        model_signature(model),
    )
    if not cache:
        return _describe(model, input_shape, layout, timesteps=timesteps, example=example)
    sig, graphs = _GRAPHS.get(model, (None, {}))
    if sig != key[-1]:  # the model changed: its earlier graphs are stale
        sig, graphs = key[-1], {}
        _GRAPHS[model] = (sig, graphs)
    g = graphs.get(key[:-1])
    if g is None:
        g = _describe(model, input_shape, layout, timesteps=timesteps, example=example)
        if not holds_model(g, model):
            graphs[key[:-1]] = g
    return g


def holds_model(graph: LayerGraph, model: Any) -> bool:
    """The model is itself one of the graph's layers (a model that is one layer). Such a graph
    is not cached beside the model: the weakly keyed cache would keep the model alive."""
    return any(n.module is model for n in graph.nodes.values())


def _describe(
    model: Any,
    input_shape: tuple[int, ...] | list[int],
    layout: str | None = None,
    *,
    timesteps: int | None = None,
    example: Any = None,
) -> LayerGraph:
    """Trace ``model`` into its :class:`LayerGraph` (see :func:`describe`).

    ``input_shape`` is the shape of one sample at one time step, without batch and time
    dimensions (e.g. ``(2, 128, 128)``). ``layout`` defaults to :func:`infer_layout`.
    ``timesteps`` is the number of steps to trace a time-first model with (a model whose
    ``forward()`` loops over ``x[step]`` needs at least as many as it loops); ``example`` an
    input tensor to trace with instead of zeros. The model's outputs, parameters, states and
    training flag are left as they were.
    """
    import torch

    _check_model(model)
    input_shape = _whole_shape(input_shape)
    declared = layout
    layout = layout or infer_layout(model)
    if layout not in LAYOUTS:
        raise ValueError(f"layout must be one of {LAYOUTS}, got {layout!r}")
    if layout == "(BT)" and not any(hasattr(m, "squeeze_forward") for m in model.modules()):
        raise ValueError(
            "layout '(BT)' (batch x time rows in dim 0) needs sinabs *Squeeze layers to tell samples "
            f"from steps; the model has none (inferred layout: {infer_layout(model)!r})"
        )
    device = _model_device(model)
    if example is not None:
        x = torch.zeros(example.shape, dtype=_model_dtype(model), device=device)
    else:
        x = example_input(model, input_shape, layout, device, steps=timesteps).to(_model_dtype(model))
    tracer = _Tracer(model, layout)
    notes: list[str] = []
    with preserved_state(model), torch.no_grad():
        try:
            records, out = tracer.run(x)
        except IndexError as exc:
            # a forward() that loops over x[step] for a fixed number of steps: the input was too
            # short. Trace time-first with enough steps (never reinterpret a declared layout).
            if declared is not None or example is not None or layout != "B":
                raise model_error(model, x, exc) from exc
            x = _trace_time_first(model, input_shape, device, timesteps)
            tracer = _Tracer(model, "TB")
            layout = "TB"
            try:
                records, out = tracer.run(x)
            except Exception as exc2:
                raise model_error(model, x, exc2) from exc2
        except (ModelError, ValueError, TypeError) as exc:
            if isinstance(exc, ModelError) or _ours(exc):
                raise
            raise model_error(model, x, exc) from exc
        except Exception as exc:
            raise model_error(model, x, exc) from exc
            notes.append(
                f"forward() indexes its input by time step: read as time-first (T, B, ...), traced with "
                f"T={x.shape[0]}"
            )
    graph = tracer.build(records, out, input_shape)
    if graph.loop_steps and graph.layout == "B" and x.dim() == len(input_shape) + 2:
        # the loop walks dim 0 of a (T, B, ...) input
        graph.layout = "TB"
        notes.append("forward() loops over dim 0 of its input: read as time-first (T, B, ...)")
    graph.notes[:0] = notes + list(getattr(model, "hwcheck_notes", ()))  # e.g. how a NIR file was read
    graph.warnings += list(getattr(model, "hwcheck_warnings", ()))
    return graph


def _ours(exc: BaseException) -> bool:
    """An error hwcheck raised itself (from its own modules), not the model's."""
    tb = exc.__traceback__
    last = None
    while tb is not None:
        last = tb
        tb = tb.tb_next
    return last is not None and "/hwcheck/" in last.tb_frame.f_code.co_filename.replace("\\", "/")


def _whole_shape(shape: Any) -> tuple[int, ...]:
    """A feature shape of positive whole numbers, or a ValueError naming the bad value."""
    try:
        dims = tuple(shape)
    except TypeError:
        raise ValueError(f"input_shape must be a sequence of positive whole numbers, got {shape!r}") from None
    out = []
    for d in dims:
        if isinstance(d, bool) or not (hasattr(d, "__index__") or (isinstance(d, float) and d.is_integer())):
            raise ValueError(f"input_shape must be positive whole numbers, got {dims!r} ({d!r})")
        out.append(int(d))
    if not out or any(d <= 0 for d in out):
        raise ValueError(f"input_shape must be positive whole numbers, got {dims!r}")
    return tuple(out)


def _trace_time_first(model: Any, input_shape: tuple[int, ...], device: Any, timesteps: int | None) -> Any:
    """Find the shortest time-first input (T, 1, ...) a fixed-length time loop accepts."""
    import torch

    candidates = [timesteps] if timesteps else [2**k for k in range(1, 13)]
    last: Exception | None = None
    for t in candidates:
        x = torch.zeros((t, 1, *input_shape), device=device, dtype=_model_dtype(model))
        try:
            with preserved_state(model):
                model(x)
        except IndexError as exc:
            last = exc
            continue
        return x
    raise ValueError(
        f"the model raised IndexError for every input tried ((1, {input_shape}) and time-first "
        f"(T, 1, ...) up to T={candidates[-1]}); give the layout and time steps (layout=, timesteps=)"
    ) from last


class preserved_state:
    """Context manager: restore buffers (neuron states) and training flags after a pass."""

    def __init__(self, model: Any, eval_mode: bool = True, modules: list[Any] | None = None) -> None:
        self.model = model
        self.eval_mode = eval_mode
        self.modules = modules  # model.modules(), where the caller has them

    def __enter__(self) -> preserved_state:
        mods = self.modules if self.modules is not None else list(self.model.modules())
        # shallow copies: the objects stay the user's, a pass only rebinds names to new ones
        self.attrs = [(m, dict(m.__dict__), dict(m._buffers)) for m in mods]
        # SpikingJelly keeps its states in a dict that it changes in place
        self.memories = [(m, dict(m.__dict__["_memories"])) for m in mods if isinstance(m.__dict__.get("_memories"), dict)]
        if self.eval_mode:
            self.model.eval()
        return self

    def __exit__(self, *exc: Any) -> None:
        for m, d, buffers in self.attrs:
            cur = m.__dict__
            if cur.keys() != d.keys():
                # drop plain attributes the pass added (e.g. sinabs NeuromorphicReLU.activity)
                for k in [k for k in cur if k not in d]:
                    del cur[k]
            cur.update(d)  # also the training flag
            if m._buffers.keys() != buffers.keys() or any(m._buffers[k] is not v for k, v in buffers.items()):
                m._buffers.clear()
                m._buffers.update(buffers)
        for m, mem in self.memories:
            m.__dict__["_memories"].clear()
            m.__dict__["_memories"].update(mem)


def _merged_avg_pool_notes(nodes: dict[str, LayerNode], edges: list[tuple[str, str]]) -> list[str]:
    """Weight layers fed by a merge with an average-pooled branch that does not start at a
    neuron layer: their input events are counted after the merge, where that branch carries
    averages, not event counts."""

    def back(n: str) -> str:
        while True:
            ps = [s for s, d in edges if d == n]
            if len(ps) != 1 or ps[0] not in nodes or nodes[ps[0]].kind not in ("reshape", "identity"):
                return ps[0] if len(ps) == 1 else ""
            n = ps[0]

    out = []
    for w in nodes.values():
        if w.kind not in ("conv", "linear") or w.attrs.get("event_chain"):
            continue
        m = back(w.name)
        if m not in nodes or nodes[m].kind != "merge":
            continue
        branches = [s for s, d in edges if d == m]
        # counted exactly (from the spikes before the pool) where the branch starts at neurons
        pooled = [
            q for q in branches
            if q in nodes and nodes[q].kind == "pool" and nodes[q].attrs.get("pool_type") == "avg"
            and not (back(q) in nodes and nodes[back(q)].kind in ("spiking", "activation"))
        ]
        if pooled:
            out.append(
                f"`{w.name}` reads a merge of an average-pooled branch ({', '.join(pooled)}): its "
                "input events and synops are counted after the merge, where that branch carries "
                "window averages, so they are under-counted (use SumPool2d, or pool after the merge)"
            )
    return out


def _check_finite_weights(rec: _CallRecord) -> None:
    """NaN or infinite weights make every count and check meaningless: name the layer."""
    import torch

    for pname, p in rec.module.named_parameters(recurse=False):
        # a finite sum means every value is finite (NaN and inf propagate); one cheap pass
        if p.is_floating_point() and not bool(torch.isfinite(p.detach().sum())) and not bool(
            torch.isfinite(p.detach()).all()
        ):
            bad = int((~torch.isfinite(p.detach())).sum())
            raise ValueError(
                f"layer '{rec.name}' ({type(rec.module).__name__}): {bad} NaN or infinite value(s) in "
                f"its {pname}; fix the weights before checking the model"
            )


def _is_inner(path: str, leaves: dict[Any, tuple[str, Any]]) -> bool:
    """True for a leaf that lives inside another leaf (a neuron's recurrent weights)."""
    return any(p and path.startswith(p + ".") for p, _ in leaves.values())


class _Tracer:
    def __init__(self, model: Any, layout: str) -> None:
        self.model = model
        self.layout = layout
        self.leaves, self.warnings = leaf_modules(model)
        # recurrent weights inside a neuron layer: traced although they are called by a layer
        self.inner = {m for m, (path, spec) in self.leaves.items() if _is_inner(path, self.leaves)}
        self.info: dict[int, _TensorInfo] = {}
        # traced tensors by id(), kept alive so that an id() is never reused during the trace
        self.tensors: dict[int, Any] = {}
        self.depth = 0

    def _lead_of(self, t: Any, default: int) -> int:
        i = self.info.get(id(t))
        return default if i is None else i.lead

    def run(self, x: Any) -> tuple[list[_CallRecord], Any]:
        from torch.overrides import TorchFunctionMode

        tracer = self
        records: list[_CallRecord] = []
        calls: dict[Any, int] = {}
        in_lead = 2 if self.layout in ("BT", "TB") else 1
        self.info[id(x)] = _TensorInfo(frozenset([INPUT]), in_lead, node=INPUT)
        self.tensors[id(x)] = x
        handles = []

        stack: list[_CallRecord | None] = []

        def pre_hook(module: Any, args: tuple) -> None:
            # a layer's own calls of its sublayers are not nodes, except recurrent weights
            if tracer.depth == 0 or module in tracer.inner:
                path, spec = tracer.leaves[module]
                k = calls.get(module, 0)
                calls[module] = k + 1
                base = path or type(module).__name__
                name = base if k == 0 else f"{base}:{k + 1}"
                ins = list(_tensors_in(args))
                infos = [tracer.info.get(id(t)) for t in ins]
                rec = _CallRecord(name, module, path, k, spec, ins, in_infos=infos)
                records.append(rec)
                stack.append(rec)
            else:
                stack.append(None)
            tracer.depth += 1

        def post_hook(module: Any, args: tuple, output: Any) -> None:
            tracer.depth -= 1
            rec = stack.pop()
            if rec is not None:
                rec.output = output
                outs = _tensors_in(output)
                sources = frozenset([rec.name])
                lead = tracer._output_lead(rec, outs)
                if tracer.depth:  # recurrent weights: their output stays inside the layer
                    return
                for i, t in enumerate(outs):
                    tracer.info[id(t)] = _TensorInfo(sources, lead, node=rec.name if i == 0 else None)
                    tracer.tensors[id(t)] = t

        class Mode(TorchFunctionMode):
            def __torch_function__(self, func, types, args=(), kwargs=None):
                kwargs = kwargs or {}
                out = func(*args, **kwargs)
                if tracer.depth == 0:
                    ins = _tensors_in(list(args)) + _tensors_in(kwargs)
                    srcs: frozenset[str] = frozenset()
                    leads = []
                    for t in ins:
                        i = tracer.info.get(id(t))
                        if i is not None:
                            srcs = srcs | i.sources
                            leads.append(i.lead)
                    if srcs:
                        outs = _tensors_in(out)
                        fname = getattr(func, "__name__", "")
                        pure = fname in _RESHAPE_FUNCS and len(ins) == 1
                        for t in outs:
                            if id(t) in tracer.info and tracer.info[id(t)].sources == srcs:
                                continue  # in-place op or the same tensor returned
                            lead = min(min(leads), max(t.dim() - 1, 0)) if leads else 1
                            tracer.info[id(t)] = _TensorInfo(
                                srcs, lead, reshape_of=id(ins[0]) if pure else None
                            )
                            tracer.tensors[id(t)] = t
                return out

        try:
            for m in self.leaves:
                handles.append(m.register_forward_pre_hook(pre_hook))
                handles.append(m.register_forward_hook(post_hook))
            with Mode():
                out = self.model(x)
        finally:
            for h in handles:
                h.remove()
        return records, out

    def _output_lead(self, rec: _CallRecord, outs: list[Any]) -> int:
        spec = rec.spec
        inp = rec.inputs[0] if rec.inputs else None
        in_lead = self._lead_of(inp, 1) if inp is not None else 1
        if spec is not None and spec.feature_ndim is not None and inp is not None:
            in_lead = max(inp.dim() - spec.feature_ndim, 0)
        if not outs:
            return in_lead
        if getattr(rec.module, "step_mode", None) == "m":
            # SpikingJelly multi-step wrappers keep (T, B) in front of whatever they compute
            return in_lead
        out = outs[0]
        attrs = spec.attrs(rec.module) if spec is not None else {}
        if attrs.get("time") == "flatten":
            return max(in_lead - 1, 1)
        if attrs.get("time") == "unflatten":
            return in_lead + 1
        if "start_dim" in attrs:  # nn.Flatten
            sd = attrs["start_dim"] % max(inp.dim(), 1) if inp is not None else 1
            return min(in_lead, sd)
        return min(in_lead, max(out.dim() - 1, 0)) if out.dim() else 0

    def fold(self, records: list[_CallRecord]) -> tuple[list[_CallRecord], dict[str, str], int | None, list]:
        """Recognise a time loop inside ``forward()``: the same modules, neurons among them, called
        in the same order k >= 2 times, each repetition reading the model input afresh (not the
        previous repetition's output, which would be a module genuinely applied twice). Modules
        called once before or after the loop stay as they are.

        Returns the records to keep (the first step of the loop), a map from every dropped call's
        name to its first-step name, the number of steps (None: no loop) and the dropped records.
        """
        n = len(records)
        counts: dict[int, int] = {}
        for r in records:
            counts[id(r.module)] = counts.get(id(r.module), 0) + 1
        a, b = 0, n
        while a < n and counts[id(records[a].module)] == 1:
            a += 1
        while b > a and counts[id(records[b - 1].module)] == 1:
            b -= 1
        mid = records[a:b]
        size = len(mid)
        period = None
        for p in range(1, size // 2 + 1):
            if size % p == 0 and all(mid[i].module is mid[i % p].module for i in range(size)):
                period = p
                break
        if period is None:
            return records, {}, None, []
        steps = size // period
        if not any(r.spec is not None and r.spec.kind in ("spiking", "neuron") for r in mid[:period]):
            return records, {}, None, []  # no state: a layer applied twice, not a time loop
        outside = {INPUT} | {r.name for r in records[:a]}

        def sources(r: _CallRecord) -> frozenset[str]:
            out: frozenset[str] = frozenset()
            for i in r.in_infos:
                if i is not None:
                    out = out | i.sources
            return out

        fed = [i for i in range(period) if sources(mid[i]) and sources(mid[i]) <= outside]
        if not fed:
            return records, {}, None, []
        for j in range(1, steps):
            for i in fed:
                if not sources(mid[j * period + i]) <= outside:
                    return records, {}, None, []
        name_map = {mid[j * period + i].name: mid[i].name for j in range(1, steps) for i in range(period)}
        dropped = mid[period:]
        return records[:a] + mid[:period] + records[b:], name_map, steps, dropped

    def build(self, records: list[_CallRecord], out: Any, input_shape: tuple[int, ...]) -> LayerGraph:
        from hwcheck.connectivity import weight_stats

        records, name_map, loop_steps, dropped = self.fold(records)
        nodes: dict[str, LayerNode] = {}
        edges: list[tuple[str, str]] = []
        self._records = {rec.name: rec for rec in records}
        counted_params: set[int] = set()
        for rec in records:
            spec = rec.spec
            kind = spec.kind if spec is not None else "unknown"
            inp = rec.inputs[0] if rec.inputs else None
            outs = _tensors_in(rec.output)
            o = outs[0] if outs else None
            if spec is not None and spec.feature_ndim is not None and inp is not None:
                in_lead = max(inp.dim() - spec.feature_ndim, 0)
            else:
                in_lead = self._lead_of(inp, 1) if inp is not None else 0
            out_lead = self.info[id(o)].lead if o is not None and id(o) in self.info else in_lead
            in_shapes = tuple(tuple(t.shape[self._feature_lead(t, in_lead, spec):]) for t in rec.inputs)
            in_shape = in_shapes[0] if in_shapes else ()
            out_shape = tuple(o.shape[out_lead:]) if o is not None else ()
            params = 0
            if id(rec.module) not in counted_params:
                params = sum(p.numel() for p in rec.module.parameters())
                counted_params.add(id(rec.module))
            attrs = dict(spec.attrs(rec.module)) if spec is not None else {}
            neurons = 0
            if kind in ("spiking", "neuron"):
                neurons = int(math.prod(out_shape)) if out_shape else 1
            stats = {}
            _check_finite_weights(rec)
            if spec is not None and spec.connect is not None and inp is not None:
                stats = weight_stats(rec.module, spec, in_shape)
            # data-flow edges: every node (or the input) whose output reaches one of our inputs
            srcs: set[str] = set()
            for i in rec.in_infos:
                if i is not None:
                    srcs |= {name_map.get(x, x) for x in i.sources}
            srcs.discard(rec.name)
            for s in sorted(srcs, key=lambda n: -1 if n == INPUT else list(nodes).index(n)):
                edges.append((s, rec.name))
            attrs["event_chain"] = self._event_chain(rec, nodes) if kind in ("conv", "linear") else ()
            if rec.module in self.inner:
                # recurrent weights of a neuron layer: they carry its spikes to its next step
                owner = rec.module_path.rsplit(".", 1)[0]
                attrs["recurrent_of"] = next(
                    (m.name for m in nodes.values() if m.module_path == owner and m.call_index == 0), owner
                )
            nodes[rec.name] = LayerNode(
                name=rec.name,
                module_path=rec.module_path,
                call_index=rec.call_index,
                kind=kind,
                type_name=type(rec.module).__name__,
                in_shape=in_shape,
                in_shapes=in_shapes,
                out_shape=out_shape,
                lead_dims=out_lead,
                params=params,
                neurons=neurons,
                synapses=stats.get("synapses", 0) if kind in ("conv", "linear") else 0,
                synapses_nonzero=stats.get("synapses_nonzero", 0) if kind in ("conv", "linear") else 0,
                fan_in_max=stats.get("fan_in_max", 0),
                fan_out_max=stats.get("fan_out_max", 0),
                fan_out_max_nonzero=stats.get("fan_out_max_nonzero", 0),
                attrs=attrs,
                module=rec.module,
            )
        outputs = []
        for t in _tensors_in(out):
            i = self.info.get(id(t))
            if i is not None:
                mapped = sorted({name_map.get(s, s) for s in i.sources})
                outputs.extend(s for s in mapped if s not in outputs)
        # edges that reach a later time step: state carried by the model's own code across the
        # loop, and the recurrent weights of neuron layers
        recurrent: list[tuple[str, str]] = []
        for rec in dropped:
            dst = name_map[rec.name]
            for i in rec.in_infos:
                for s in () if i is None else i.sources:
                    src = name_map.get(s, s)
                    if src != dst and (src, dst) not in edges and (src, dst) not in recurrent:
                        recurrent.append((src, dst))
        edges = [e for e in edges if "recurrent_of" not in nodes[e[1]].attrs]
        for n in nodes.values():
            owner = n.attrs.get("recurrent_of")
            if owner in nodes:
                recurrent += [(owner, n.name), (n.name, owner)]
        notes = []
        if loop_steps:
            notes.append(
                f"forward() runs a time loop of {loop_steps} steps over the same layers: folded into one "
                "layer per module, counts summed over the steps"
            )
        notes += _merged_avg_pool_notes(nodes, edges)
        return LayerGraph(
            nodes=nodes,
            edges=edges,
            input_shape=input_shape,
            layout=self.layout,
            warnings=list(self.warnings),
            outputs=outputs,
            loop_steps=loop_steps,
            recurrent_edges=recurrent,
            notes=notes,
        )


    def _feature_lead(self, t: Any, in_lead: int, spec: Any) -> int:
        if spec is not None and spec.feature_ndim is not None:
            return max(t.dim() - spec.feature_ndim, 0)
        return self._lead_of(t, in_lead)

    def _event_chain(self, rec: _CallRecord, nodes: dict[str, LayerNode]) -> tuple:
        """Steps from where events enter to this weight layer, through sum/avg pools and reshapes.

        Returns ``()`` when the layer's own input is where events are counted, else a tuple of
        steps in forward order: ``("pool", node_name)`` or ``("reshape", feature_shape)``; the
        events are then counted at the input of the first pool node.
        """
        if not rec.inputs:
            return ()
        steps: list[tuple] = []
        cur = rec.inputs[0]
        info = rec.in_infos[0] if rec.in_infos else None
        first_pool = None
        for _ in range(len(self._records) + len(self.tensors) + 1):  # each step moves back
            if info is None:
                break
            if info.reshape_of is not None:
                steps.append(("reshape", tuple(cur.shape[info.lead:])))
                cur = self.tensors.get(info.reshape_of)
                if cur is None:
                    break
                info = self.info.get(id(cur))
                continue
            node = nodes.get(info.node) if info.node not in (None, INPUT) else None
            if node is None:
                break
            if node.kind == "pool" and node.attrs.get("pool_type") in ("avg", "sum"):
                steps.append(("pool", node.name))
                first_pool = node.name
            elif node.kind in ("reshape", "identity"):
                steps.append(("reshape", node.out_shape))
            else:
                break
            prev = self._records.get(node.name)
            if prev is None or not prev.inputs:
                break
            cur, info = prev.inputs[0], (prev.in_infos[0] if prev.in_infos else None)
        if first_pool is None:
            return ()
        # keep the steps from the first pool on, in forward order
        steps.reverse()
        idx = steps.index(("pool", first_pool))
        return tuple(steps[idx:])
