"""NIR in: a ``nir.NIRGraph`` (or a ``.nir`` file) as a torch module hwcheck describes and runs.

NIR (the Neuromorphic Intermediate Representation) writes a network as plain data: nodes
(``Affine``, ``Conv2d``, ``LIF``...) and edges, with time constants in seconds. hwcheck reads it
by building one :class:`NIRModel`: an ``nn.Module`` whose submodules are named after the NIR nodes
(``1.lif`` becomes the submodule ``lif`` of a container ``1``) and are module types the layer
registry knows, so the tracer, the activity counter and every chip mapper work on it unchanged.

How a NIR graph is read:

* **Time.** A :class:`NIRModel` takes batch-first data ``(B, T, *features)`` (layout ``"BT"``) and
  runs each node over the whole window; neuron state starts from rest on every call, so nothing
  is carried between batches. A NIR time constant ``tau`` in seconds becomes ``tau / dt`` steps.
* **Discretisation.** NIR nodes are differential equations; a framework's export only
  reproduces that framework's counts when it is run the way the framework runs it. A
  :class:`Convention` says how: ``"nir"`` (the default: taus in seconds, forward Euler at ``dt``,
  reset by subtraction as nir 1.0 defines it), ``"sinabs"`` (taus in time steps, exact
  exponential decay, sinabs' default multi-spike), ``"snntorch"`` (forward Euler at the 0.1 ms
  that snnTorch's exporter hard-codes, delayed reset) and ``"norse"`` (forward Euler, reset to
  zero, input current and IF input unscaled by dt). See the README, "Checking a NIR file".
* **Recurrence.** A cycle ``neuron -> Affine/Linear -> the same neuron`` becomes the neuron's
  ``recurrent`` weights (one step late: the spikes of step t arrive at step t + 1), which the
  Xylo and many-core mappers already count. Other cycles are refused with the nodes named.
* **Shapes.** From the graph's ``Input`` node, else from its first layer (an Affine's weight, a
  Conv's ``input_shape``), else from ``input_shape=``; where none tells, an error names the node.
  Leading dimensions of the ``Input`` shape that the first layer does not take (the batch or
  time dimension of an exporter's sample data) are dropped, with a note.

What was read from the file is kept in each node's ``attrs`` (``nir_type``, ``nir_node`` and the
node's values as the file has them, e.g. ``nir_tau`` in the file's unit), so a report shows what
an export changed.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from hwcheck.layers import (
    LayerSpec,
    _conv_attrs,
    _conv_connect,
    _linear_attrs,
    _linear_connect,
    _pool_attrs,
    _sum_pool_connect,
    register_layer,
)

__all__ = [
    "Convention",
    "CONVENTIONS",
    "NIRError",
    "NIRModel",
    "from_nir",
    "read_nir",
    "is_nir_source",
    "as_model",
]

#: the node types hwcheck maps (``nir.I`` is the integrator)
SUPPORTED = (
    "Input", "Output", "Affine", "Linear", "Conv1d", "Conv2d", "SumPool2d", "AvgPool2d", "Flatten",
    "Scale", "Threshold", "IF", "LIF", "CubaLIF", "LI", "I", "Delay", "NIRGraph",
)  # fmt: skip

_HDF5_MAGIC = b"\x89HDF\r\n\x1a\n"


class NIRError(ValueError):
    """A NIR graph or file hwcheck cannot read: the message names the node or the file."""


@dataclass(frozen=True)
class Convention:
    """How the NIR equations are stepped (see the module docstring and the README).

    Attributes:
        name: the preset's name.
        tau_unit: ``"s"`` (NIR: seconds, converted at ``dt``) or ``"steps"`` (sinabs' exports).
        dt: the step the exporter assumed, in seconds, used instead of the analysis ``dt`` to
            convert taus (snnTorch's exporter hard-codes 1e-4); None: the ``dt`` given.
        decay: ``"euler"`` (``v += dt/tau * (v_leak - v + r*I)``) or ``"exact"``
            (``v = v_leak + (v - v_leak) * exp(-dt/tau) + (1 - exp(-dt/tau)) * r*I``).
        li_raw_input: LI adds ``r*I`` unscaled (sinabs ``ExpLeak``, ``norm_input=False``).
        syn_raw_input: CubaLIF's current jumps by ``w_in*S`` unscaled (Norse).
        if_raw_input: IF and I add ``r*I`` per step, not ``dt*r*I`` (Norse ``IAFCell``).
        reset: ``"subtract"`` (nir 1.0: ``v -= v_threshold``) or ``"zero"``.
        reset_delay: the reset is applied one step late (snnTorch's ``reset_delay=True``).
        spike: ``"gt"`` (spike when ``v > threshold``) or ``"ge"`` (``v >= threshold``).
        multi_spike: emit ``floor(v / threshold)`` spikes in a step (sinabs ``MultiSpike``).
    """

    name: str
    tau_unit: str = "s"
    dt: float | None = None
    decay: str = "euler"
    li_raw_input: bool = False
    syn_raw_input: bool = False
    if_raw_input: bool = False
    reset: str = "subtract"
    reset_delay: bool = False
    spike: str = "gt"
    multi_spike: bool = False

    def __post_init__(self) -> None:
        for field_name, allowed in (
            ("tau_unit", ("s", "steps")),
            ("decay", ("euler", "exact")),
            ("reset", ("subtract", "zero")),
            ("spike", ("gt", "ge")),
        ):
            if getattr(self, field_name) not in allowed:
                raise ValueError(
                    f"Convention.{field_name} must be one of {allowed}, got {getattr(self, field_name)!r}"
                )
        if self.dt is not None and not (math.isfinite(self.dt) and self.dt > 0):
            raise ValueError(f"Convention.dt must be a time step in seconds > 0, got {self.dt!r}")

    def replace(self, **changes: Any) -> Convention:
        return dataclasses.replace(self, **changes)


CONVENTIONS: dict[str, Convention] = {
    "nir": Convention("nir"),
    "sinabs": Convention(
        "sinabs", tau_unit="steps", decay="exact", li_raw_input=True, spike="ge", multi_spike=True
    ),
    "snntorch": Convention("snntorch", dt=1e-4, reset_delay=True),
    "norse": Convention("norse", syn_raw_input=True, if_raw_input=True, reset="zero"),
}


def _convention(c: str | Convention) -> Convention:
    if isinstance(c, Convention):
        return c
    if c not in CONVENTIONS:
        raise ValueError(
            f"unknown NIR convention {c!r}; expected one of {sorted(CONVENTIONS)} or a Convention"
        )
    return CONVENTIONS[c]


# --------------------------------------------------------------------------- reading


def _hdf5_offset(path: Path) -> bool:
    """True when the file starts (or has its superblock at 512, 1024... bytes) with HDF5's magic."""
    try:
        with open(path, "rb") as f:
            head = f.read(8)
            if head == _HDF5_MAGIC:
                return True
            for off in (512, 1024, 2048):
                f.seek(off)
                if f.read(8) == _HDF5_MAGIC:
                    return True
    except OSError:
        return False
    return False


def is_nir_source(obj: Any) -> bool:
    """A ``nir.NIRGraph``, or a path to an HDF5 file (NIR files are HDF5; told by content, and a
    path ending in ``.nir`` counts too, so that a broken one gets a NIR error)."""
    if type(obj).__name__ == "NIRGraph" and type(obj).__module__.startswith("nir"):
        return True
    if isinstance(obj, (str, Path)):
        p = Path(obj)
        try:
            if not p.is_file():
                return False
        except (OSError, ValueError):
            return False
        return p.suffix.lower() == ".nir" or _hdf5_offset(p)
    return False


def read_nir(path: str | Path) -> Any:
    """Read a ``.nir`` file into a ``nir.NIRGraph``; a file that is not NIR gets a :class:`NIRError`
    that says what it is."""
    import nir

    p = Path(path)
    if not _hdf5_offset(p):
        raise NIRError(
            f"{p}: not a NIR file (NIR files are HDF5, and this file does not start like one)"
        )
    try:
        import h5py

        with h5py.File(p, "r") as f:
            keys = set(f.keys())
    except Exception as exc:
        raise NIRError(
            f"{p}: a damaged HDF5 file, not readable as NIR: {_first_line(exc)}"
        ) from exc
    if "node" not in keys:
        raise NIRError(
            f"{p}: an HDF5 file, but not a NIR graph (no 'node' group; it holds {sorted(keys)[:5]})"
        )
    try:
        graph = nir.read(p)
    except Exception as exc:
        raise NIRError(
            f"{p}: an HDF5 file whose NIR graph cannot be read: {type(exc).__name__}: {_first_line(exc)}"
        ) from exc
    if not isinstance(graph, nir.NIRGraph):
        raise NIRError(f"{p}: holds a single NIR {type(graph).__name__} node, not a graph")
    return graph


def _first_line(exc: BaseException) -> str:
    return (str(exc).splitlines() or [type(exc).__name__])[0]


# --------------------------------------------------------------------------- node modules


def _t(v: Any) -> torch.Tensor:
    """A NIR value (numpy array, torch tensor or number) as a float32 tensor."""
    if isinstance(v, torch.Tensor):
        return v.detach().to(torch.float32).clone()
    return torch.as_tensor(np.asarray(v, dtype=np.float64), dtype=torch.float32)


def _mean(v: Any) -> float | None:
    if v is None:
        return None
    a = np.asarray(v.detach().cpu().numpy() if isinstance(v, torch.Tensor) else v, dtype=np.float64)
    return float(a.mean()) if a.size else None


def _ints(v: Any, n: int) -> tuple[int, ...]:
    a = np.asarray(v.detach().cpu().numpy() if isinstance(v, torch.Tensor) else v).reshape(-1)
    if a.size == 1:
        return (int(a[0]),) * n
    return tuple(int(x) for x in a)


class _NIRNodeMixin:
    """Provenance of a module built from a NIR node."""

    nir_node: str = ""
    nir_type: str = ""
    nir_values: dict[str, Any]

    def _nir_attrs(self) -> dict[str, Any]:
        return {
            "nir_node": self.nir_node,
            "nir_type": self.nir_type,
            **getattr(self, "nir_values", {}),
        }


def _provenance(m: Any, name: str, node: Any, **values: Any) -> None:
    m.nir_node = name
    m.nir_type = type(node).__name__
    m.nir_values = {f"nir_{k}": v for k, v in values.items()}


class Affine(_NIRNodeMixin, nn.Linear):
    """NIR ``Affine`` (``W x + b``) and ``Linear`` (``W x``)."""


class Conv1d(_NIRNodeMixin, nn.Conv1d):
    """NIR ``Conv1d`` over any leading (batch, time) dimensions."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        lead = x.shape[:-2]
        y = super().forward(x.reshape(-1, *x.shape[-2:]))
        return y.reshape(*lead, *y.shape[1:])


class Conv2d(_NIRNodeMixin, nn.Conv2d):
    """NIR ``Conv2d`` over any leading (batch, time) dimensions."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        lead = x.shape[:-3]
        y = super().forward(x.reshape(-1, *x.shape[-3:]))
        return y.reshape(*lead, *y.shape[1:])


class AvgPool2d(_NIRNodeMixin, nn.AvgPool2d):
    """NIR ``AvgPool2d`` over any leading dimensions."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        lead = x.shape[:-3]
        y = super().forward(x.reshape(-1, *x.shape[-3:]))
        return y.reshape(*lead, *y.shape[1:])


class SumPool2d(AvgPool2d):
    """NIR ``SumPool2d``: an average pool that does not divide (``divisor_override=1``)."""


class Flatten(_NIRNodeMixin, nn.Flatten):
    """NIR ``Flatten``; its dims count from the first feature dimension (batch and time excluded),
    so non-negative ones are shifted by the two leading dimensions here."""


class Scale(_NIRNodeMixin, nn.Module):
    """NIR ``Scale``: ``x * scale`` elementwise. Chips have no such layer: fold it into the
    weight layer in front of it (it is described as kind ``norm``)."""

    def __init__(self, scale: torch.Tensor) -> None:
        super().__init__()
        self.register_buffer("scale", scale, persistent=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * self.scale


class Delay(_NIRNodeMixin, nn.Module):
    """NIR ``Delay``: ``y[t] = x[t - d]`` with ``d`` in whole steps (zeros before the first)."""

    def __init__(self, steps: torch.Tensor) -> None:
        super().__init__()
        self.register_buffer("steps", steps.to(torch.long), persistent=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        t = x.shape[1]
        steps = self.steps.expand(x.shape[2:]) if self.steps.dim() else self.steps
        out = torch.zeros_like(x)
        for d in torch.unique(steps).tolist():
            if d >= t:
                continue
            shifted = torch.zeros_like(x)
            shifted[:, d:] = x[:, : t - d]
            out = torch.where(steps == d, shifted, out) if steps.dim() else shifted
        return out


class _Neuron(_NIRNodeMixin, nn.Module):
    """A NIR neuron run over the window of a ``(B, T, *features)`` input, from rest.

    Membrane update per step: ``v = a*v + c*I + e`` (see :class:`Convention` for a, c and e);
    IF and I have ``a = 1``, ``e = 0``. Spikes are ``v > threshold`` (or ``>=``, or
    ``floor(v / threshold)`` for multi-spike), then the reset. A ``recurrent`` child holds the
    weights of a NIR cycle back into this neuron: the spikes of step t reach step t + 1.
    """

    spiking = True
    synaptic = False

    def __init__(self, conv: Convention, **coeffs: torch.Tensor) -> None:
        super().__init__()
        self.conv = conv
        for k, v in coeffs.items():
            self.register_buffer(k, v, persistent=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, t = x.shape[:2]
        feat = x.shape[2:]
        v = torch.zeros((b, *feat), dtype=x.dtype, device=x.device)
        cur = torch.zeros_like(v) if self.synaptic else None
        z = torch.zeros_like(v)
        z_prev = torch.zeros_like(v)
        rec = self._modules.get("recurrent")
        outs: list[torch.Tensor] = []
        for i in range(t):
            inp = x[:, i]
            if rec is not None:  # the previous step's output (zeros at the first step)
                inp = inp + rec(outs[-1] if outs else torch.zeros_like(v))
            if self.synaptic:
                cur = self.a_syn * cur + self.c_syn * inp
                inp = cur
            v = self.a * v + self.c * inp + self.e
            if not self.spiking:
                outs.append(v)
                continue
            if self.conv.reset_delay:
                v = self._reset(v, z_prev)
            if self.conv.multi_spike:
                z = torch.where(
                    v > 0, torch.div(v, self.threshold, rounding_mode="trunc"), torch.zeros_like(v)
                )
                z = z.clamp_min(0)
            elif self.conv.spike == "ge":
                z = (v >= self.threshold).to(v.dtype)
            else:
                z = (v > self.threshold).to(v.dtype)
            if self.conv.reset_delay:
                z_prev = z
            else:
                v = self._reset(v, z)
            outs.append(z)
        return torch.stack(outs, 1)

    def _reset(self, v: torch.Tensor, z: torch.Tensor) -> torch.Tensor:
        if self.conv.reset == "zero":
            return torch.where(z > 0, torch.zeros_like(v), v)
        return v - z * self.threshold


class IF(_Neuron):
    """NIR ``IF``: ``dv/dt = r*I``, spike and reset."""


class LIF(_Neuron):
    """NIR ``LIF``: ``tau dv/dt = v_leak - v + r*I``, spike and reset."""


class CubaLIF(_Neuron):
    """NIR ``CubaLIF``: a current ``tau_syn dI/dt = -I + w_in*S`` feeding an LIF."""

    synaptic = True


class LI(_Neuron):
    """NIR ``LI``: a leaky integrator, no spikes (its output is its voltage)."""

    spiking = False


class Integrator(_Neuron):
    """NIR ``I``: ``dv/dt = r*I``, no spikes."""

    spiking = False


class Threshold(_NIRNodeMixin, nn.Module):
    """NIR ``Threshold``: ``x > threshold`` (no state)."""

    def __init__(self, conv: Convention, threshold: torch.Tensor) -> None:
        super().__init__()
        self.conv = conv
        self.register_buffer("threshold", threshold, persistent=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return ((x >= self.threshold) if self.conv.spike == "ge" else (x > self.threshold)).to(
            x.dtype
        )


# --------------------------------------------------------------------------- registry


def _with_nir(base: Any) -> Any:
    def attrs(m: Any) -> dict[str, Any]:
        return {**base(m), **m._nir_attrs()}

    return attrs


def _tau_eff(a: torch.Tensor | None) -> float | None:
    """The time constant, in steps, of the decay the module runs (``-1 / ln a``)."""
    if a is None:
        return None
    v = float(a.detach().double().mean())
    if v >= 1:
        return math.inf
    if v <= 0:
        return 0.0
    return -1.0 / math.log(v)


def _neuron_attrs(model_name: str) -> Any:
    def attrs(m: Any) -> dict[str, Any]:
        leak = not isinstance(m, (IF, Integrator))
        spiking = isinstance(m, _Neuron) and m.spiking
        out = {
            "neuron_model": model_name,
            "tau_mem": _tau_eff(getattr(m, "a64", m.a)) if leak else None,
            "tau_syn": _tau_eff(getattr(m, "a_syn64", None)) if m.synaptic else None,
            "synaptic_states": 2 if m.synaptic else 1,
            "threshold": _mean(m.threshold) if spiking else None,
            "reset": (m.conv.reset if spiking else None),
            "recurrent": "recurrent" in m._modules,
            "leak": leak,
            "squeeze": False,
            "multi_spike": bool(spiking and m.conv.multi_spike),
            "nir_convention": m.conv.name,
        }
        out.update(m._nir_attrs())
        return out

    return attrs


def _register() -> None:
    register_layer(Affine, LayerSpec("linear", _with_nir(_linear_attrs), _linear_connect, 1))
    register_layer(Conv1d, LayerSpec("conv", _with_nir(_conv_attrs), _conv_connect, 2))
    register_layer(Conv2d, LayerSpec("conv", _with_nir(_conv_attrs), _conv_connect, 3))
    register_layer(
        AvgPool2d, LayerSpec("pool", _with_nir(_pool_attrs("avg", 2)), _sum_pool_connect(2), 3)
    )
    register_layer(
        SumPool2d, LayerSpec("pool", _with_nir(_pool_attrs("sum", 2)), _sum_pool_connect(2), 3)
    )
    register_layer(
        Flatten,
        LayerSpec("reshape", _with_nir(lambda m: {"start_dim": m.start_dim, "end_dim": m.end_dim})),
    )
    register_layer(
        Scale,
        LayerSpec("norm", _with_nir(lambda m: {"norm_type": "Scale", "scale": _mean(m.scale)})),
    )
    register_layer(
        Delay,
        LayerSpec(
            "identity",
            _with_nir(lambda m: {"delay_steps": int(m.steps.max()) if m.steps.numel() else 0}),
        ),
    )
    for cls, name in ((IF, "IAF"), (LIF, "LIF"), (CubaLIF, "LIF")):
        register_layer(cls, LayerSpec("spiking", _neuron_attrs(name), counts_spikes=True))
    register_layer(LI, LayerSpec("neuron", _neuron_attrs("LI")))
    register_layer(Integrator, LayerSpec("neuron", _neuron_attrs("I")))
    register_layer(
        Threshold,
        LayerSpec(
            "spiking",
            _with_nir(
                lambda m: {
                    "neuron_model": "Threshold",
                    "tau_mem": None,
                    "tau_syn": None,
                    "synaptic_states": 0,
                    "threshold": _mean(m.threshold),
                    "reset": None,
                    "recurrent": False,
                    "leak": False,
                    "squeeze": False,
                }
            ),
            counts_spikes=True,
        ),
    )


_register()


# --------------------------------------------------------------------------- graph -> module


def _flatten_graph(graph: Any, prefix: str = "") -> tuple[dict[str, Any], list[tuple[str, str]]]:
    """Inline nested NIR graphs: their nodes become ``sub.node``, their Input/Output nodes plain
    pass-throughs (kept as nodes, removed later)."""
    import nir

    nodes: dict[str, Any] = {}
    edges: list[tuple[str, str]] = []
    entry: dict[str, list[str]] = {}
    exit_: dict[str, list[str]] = {}
    for name, node in graph.nodes.items():
        full = f"{prefix}{name}"
        if isinstance(node, nir.NIRGraph):
            sub_nodes, sub_edges = _flatten_graph(node, full + ".")
            nodes.update(sub_nodes)
            edges += sub_edges
            entry[name] = [f"{full}.{k}" for k, n in node.nodes.items() if isinstance(n, nir.Input)]
            exit_[name] = [
                f"{full}.{k}" for k, n in node.nodes.items() if isinstance(n, nir.Output)
            ]
            for k in entry[name] + exit_[name]:
                nodes[k] = ("passthrough", nodes[k])
        else:
            nodes[full] = node
    for src, dst in graph.edges:
        srcs = exit_.get(src, [f"{prefix}{src}"])
        dsts = entry.get(dst, [f"{prefix}{dst}"])
        edges += [(s, d) for s in srcs for d in dsts]
    return nodes, edges


def _strip_passthrough(nodes: dict[str, Any], edges: list[tuple[str, str]]) -> tuple[dict, list]:
    for name in [k for k, v in nodes.items() if isinstance(v, tuple) and v[0] == "passthrough"]:
        ins = [s for s, d in edges if d == name]
        outs = [d for s, d in edges if s == name]
        edges = [e for e in edges if name not in e] + [(s, d) for s in ins for d in outs]
        del nodes[name]
    return nodes, list(dict.fromkeys(edges))


def _shape_of(types: Any) -> tuple[int, ...] | None:
    """The shape in a NIR type dict ``{"input": array}``; None when absent or empty."""
    if types is None:
        return None
    vals = list(types.values()) if isinstance(types, dict) else [types]
    if len(vals) != 1 or vals[0] is None:
        return None
    a = np.asarray(vals[0]).reshape(-1)
    if a.size == 0:
        return None
    try:
        return tuple(int(x) for x in a)
    except (TypeError, ValueError):
        return None


def _takes(node: Any) -> tuple[int | None, tuple[int, ...] | None]:
    """(rank of one sample it takes, the shape it fixes) for a first layer."""
    t = type(node).__name__
    if t in ("Affine", "Linear"):
        w = np.asarray(node.weight.shape)
        return 1, (int(w[-1]),)
    if t in ("Conv1d", "Conv2d"):
        nd = 1 if t == "Conv1d" else 2
        c_in = int(node.weight.shape[1]) * int(node.groups)
        shp = node.input_shape
        if shp is None:
            return nd + 1, None
        return nd + 1, (c_in, *_ints(shp, nd))
    if t in ("SumPool2d", "AvgPool2d"):
        return 3, None
    for attr in ("r", "v_threshold", "threshold", "scale", "delay", "tau"):
        if hasattr(node, attr):
            shp = tuple(np.asarray(getattr(node, attr).shape))
            return (len(shp), shp) if shp else (None, None)
    return None, None


class NIRModel(nn.Module):
    """A NIR graph as a torch module that hwcheck describes, runs and maps (see module docstring).

    Attributes:
        input_shape: one sample at one step (the graph's ``Input`` shape, or the one given).
        dt: the time step the taus were converted at, in seconds.
        convention: the :class:`Convention` the neurons run by.
        nir_nodes: NIR node name -> module path (recurrent weights: ``<neuron>.recurrent``).
        hwcheck_layout: ``"BT"``: one call is a whole window of batch-first data.
    """

    hwcheck_layout = "BT"

    def __init__(
        self, graph: Any, dt: float, input_shape: Sequence[int] | None, convention: Convention
    ) -> None:
        super().__init__()
        self.dt = float(dt)
        self.convention = convention
        self.hwcheck_notes: list[str] = []
        self.hwcheck_warnings: list[str] = []
        self.nir_nodes: dict[str, str] = {}
        nodes, edges = _strip_passthrough(*_flatten_graph(graph))
        self._check_types(nodes)
        for s, d in edges:
            for n in (s, d):
                if n not in nodes:
                    raise NIRError(
                        f"NIR edge ({s!r}, {d!r}) names a node '{n}' the graph does not have"
                    )
        inputs = [k for k, n in nodes.items() if type(n).__name__ == "Input"]
        if len(inputs) != 1:
            raise NIRError(
                f"the NIR graph has {len(inputs)} Input nodes ({', '.join(inputs) or 'none'}); hwcheck reads graphs with one"
            )
        self._input = inputs[0]
        self._outputs = [k for k, n in nodes.items() if type(n).__name__ == "Output"]
        edges, recurrent = self._recurrent(nodes, edges)
        rec_nodes = {w: nodes.pop(w) for w in recurrent.values()}
        self._order = self._topo(nodes, edges)
        self._preds = {k: [s for s, d in edges if d == k] for k in nodes}
        self.input_shape = self._input_shape(nodes, edges, input_shape)
        for name in self._order:
            node = nodes[name]
            if type(node).__name__ in ("Input", "Output"):
                continue
            self._place(name, self._module(name, node))
        for neuron, w in recurrent.items():
            mod = self._module(w, rec_nodes[w])
            self._get(neuron).add_module("recurrent", mod)
            self.nir_nodes[w] = f"{self.nir_nodes[neuron]}.recurrent"
        self.hwcheck_notes.insert(
            0,
            f"read from NIR ({len(nodes)} nodes, convention '{convention.name}'): taus converted to steps "
            + (
                "as given (the file's taus are in steps)"
                if convention.tau_unit == "steps"
                else f"at dt = {self._dt_s():g} s"
            ),
        )

    # -- building

    @staticmethod
    def _check_types(nodes: dict[str, Any]) -> None:
        bad = [
            f"'{k}' ({type(n).__name__})"
            for k, n in nodes.items()
            if type(n).__name__ not in SUPPORTED
        ]
        if bad:
            raise NIRError(
                f"NIR node types hwcheck does not map: {', '.join(bad)}; supported: {', '.join(SUPPORTED)}"
            )

    @staticmethod
    def _recurrent(
        nodes: dict[str, Any], edges: list[tuple[str, str]]
    ) -> tuple[list, dict[str, str]]:
        """Take out cycles ``neuron -> weight -> the same neuron``: {neuron: weight node}."""
        neuron_types = ("IF", "LIF", "CubaLIF", "LI", "I")
        rec: dict[str, str] = {}
        for w, node in nodes.items():
            if type(node).__name__ not in ("Affine", "Linear"):
                continue
            ins = [s for s, d in edges if d == w]
            outs = [d for s, d in edges if s == w]
            if len(ins) == 1 and outs == ins and type(nodes[ins[0]]).__name__ in neuron_types:
                if ins[0] in rec:
                    raise NIRError(
                        f"NIR neuron '{ins[0]}' has two recurrent weight nodes ('{rec[ins[0]]}', '{w}')"
                    )
                rec[ins[0]] = w
        edges = [e for e in edges if not (e[0] in rec.values() or e[1] in rec.values())]
        return edges, rec

    @staticmethod
    def _topo(nodes: dict[str, Any], edges: list[tuple[str, str]]) -> list[str]:
        indeg = {k: 0 for k in nodes}
        for _, d in edges:
            indeg[d] += 1
        ready = [k for k in nodes if indeg[k] == 0]
        order: list[str] = []
        while ready:
            k = ready.pop(0)
            order.append(k)
            for s, d in edges:
                if s == k:
                    indeg[d] -= 1
                    if indeg[d] == 0:
                        ready.append(d)
        if len(order) != len(nodes):
            cyc = [k for k in nodes if k not in order]
            raise NIRError(
                f"the NIR graph has a cycle through {', '.join(repr(c) for c in cyc)} that hwcheck does not map: "
                "a recurrent subgraph must be neuron -> Affine/Linear -> the same neuron"
            )
        return order

    def _input_shape(
        self, nodes: dict[str, Any], edges: list[tuple[str, str]], given: Sequence[int] | None
    ) -> tuple[int, ...]:
        first = [d for s, d in edges if s == self._input]
        rank, fixed = None, None
        if first:
            rank, fixed = _takes(nodes[first[0]])
        declared = _shape_of(nodes[self._input].input_type) or _shape_of(
            getattr(nodes[self._input], "output_type", None)
        )
        if given is not None:
            shape = tuple(int(d) for d in given)
            if declared is not None and declared[len(declared) - len(shape) :] != shape:
                raise NIRError(
                    f"input_shape {shape} contradicts the shape {declared} of NIR input node '{self._input}'"
                )
            return shape
        if declared is not None:
            if rank is not None and len(declared) > rank:
                dropped = declared[: len(declared) - rank]
                self.hwcheck_notes.append(
                    f"NIR input node '{self._input}' has shape {declared}, but its first layer '{first[0]}' takes "
                    f"{rank}-dimensional samples: the leading {dropped} (the batch or time dimension of the "
                    f"exporter's sample data) is dropped"
                )
                declared = declared[len(declared) - rank :]
            return declared
        if fixed is not None:
            self.hwcheck_notes.append(
                f"input shape {fixed} taken from NIR node '{first[0]}' (the Input node has none)"
            )
            return fixed
        what = (
            f"its first layer '{first[0]}' ({type(nodes[first[0]]).__name__}) does not fix it"
            if first
            else "nothing reads it"
        )
        raise NIRError(
            f"cannot tell the input shape: NIR input node '{self._input}' has no shape and {what}; "
            "give input_shape= (CLI: --input-shape)"
        )

    def _dt_s(self) -> float:
        return self.convention.dt if self.convention.dt is not None else self.dt

    def _steps(self, tau: Any) -> torch.Tensor:
        """``dt / tau`` as a tensor (a tau in steps: ``1 / tau``)."""
        tau = _t(tau).double()
        step = 1.0 if self.convention.tau_unit == "steps" else self._dt_s()
        return step / tau

    def _decay(self, name: str, tau: Any) -> tuple[torch.Tensor, torch.Tensor]:
        """(a, k): the per-step decay and the input scale of ``tau dv/dt = -v + input``."""
        k = self._steps(tau)
        if bool((~torch.isfinite(k)).any()) or bool((k <= 0).any()):
            raise NIRError(
                f"NIR node '{name}': time constants must be finite and > 0, got tau = {_mean(tau)}"
            )
        if self.convention.decay == "exact":
            a = torch.exp(-k)
            return a, 1 - a
        if bool((k >= 1).any()):
            self.hwcheck_warnings.append(
                f"NIR node '{name}': dt / tau = {float(k.max()):.3g} >= 1, so forward Euler does not decay but "
                "overshoots; are the file's taus in seconds? (sinabs writes steps: convention='sinabs'; "
                "snnTorch assumes dt = 0.1 ms: convention='snntorch')"
            )
        elif self.convention.tau_unit == "s" and float(_t(tau).max()) > 1.0:
            self.hwcheck_warnings.append(
                f"NIR node '{name}': tau = {float(_t(tau).max()):g} s is over a second; if the file's taus are in "
                "time steps (sinabs exports), read it with convention='sinabs'"
            )
        return 1 - k, k

    def _int_step(self) -> float:
        return 1.0 if self.convention.tau_unit == "steps" else self._dt_s()

    def _module(self, name: str, node: Any) -> nn.Module:
        t = type(node).__name__
        c = self.convention
        if t in ("Affine", "Linear"):
            w = _t(node.weight)
            bias = _t(node.bias) if t == "Affine" and node.bias is not None else None
            if bias is not None and not bool(bias.any()):
                bias = None  # an all-zero bias is no bias (sinabs and Norse export zeros for none)
            m = Affine(w.shape[-1], w.shape[-2], bias=bias is not None)
            m.weight.data = w.reshape(m.weight.shape)
            if bias is not None:
                m.bias.data = bias.reshape(m.bias.shape)
            _provenance(m, name, node, bias="zeros" if t == "Affine" and bias is None else None)
        elif t in ("Conv1d", "Conv2d"):
            nd = 1 if t == "Conv1d" else 2
            w = _t(node.weight)
            bias = _t(node.bias) if node.bias is not None else None
            if bias is not None and not bool(bias.any()):
                bias = None
            pad = node.padding.decode() if isinstance(node.padding, bytes) else node.padding
            pad = pad if isinstance(pad, str) else _ints(pad, nd)
            cls = Conv1d if nd == 1 else Conv2d
            groups = int(np.asarray(node.groups).reshape(-1)[0])
            m = cls(
                w.shape[1] * groups, w.shape[0], tuple(w.shape[2:]), stride=_ints(node.stride, nd), padding=pad,
                dilation=_ints(node.dilation, nd), groups=groups, bias=bias is not None,
            )  # fmt: skip
            m.weight.data = w
            if bias is not None:
                m.bias.data = bias.reshape(m.bias.shape)
            _provenance(m, name, node)
        elif t in ("SumPool2d", "AvgPool2d"):
            k, s, p = _ints(node.kernel_size, 2), _ints(node.stride, 2), _ints(node.padding, 2)
            if t == "SumPool2d":
                m = SumPool2d(k, s, p, divisor_override=1)
            else:
                m = AvgPool2d(k, s, p)
            _provenance(m, name, node)
        elif t == "Flatten":
            sd, ed = int(node.start_dim), int(node.end_dim)
            m = Flatten(sd + 2 if sd >= 0 else sd, ed + 2 if ed >= 0 else ed)
            _provenance(m, name, node, start_dim=sd, end_dim=ed)
        elif t == "Scale":
            m = Scale(_t(node.scale))
            _provenance(m, name, node, scale=_mean(node.scale))
        elif t == "Delay":
            d = _t(node.delay).double() / self._int_step()
            steps = torch.round(d)
            if bool((steps < 0).any()):
                raise NIRError(f"NIR node '{name}' (Delay): negative delay {_mean(node.delay)}")
            if bool((abs(d - steps) > 1e-6).any()):
                self.hwcheck_warnings.append(
                    f"NIR node '{name}' (Delay): delays of {_mean(node.delay):g} are not whole steps at dt; rounded"
                )
            self.hwcheck_warnings.append(
                f"NIR node '{name}' (Delay, up to {int(steps.max())} steps) is run, but the chip mappers do not "
                "check delays: its spikes' timing is counted, its delay lines are not"
            )
            m = Delay(steps)
            _provenance(m, name, node, delay=_mean(node.delay))
        elif t == "Threshold":
            m = Threshold(c, _t(node.threshold))
            _provenance(m, name, node, threshold=_mean(node.threshold))
        elif t in ("IF", "I"):
            r = _t(node.r).double()
            step = 1.0 if c.if_raw_input else self._int_step()
            coeffs = {"a": torch.ones_like(r), "c": r * step, "e": torch.zeros_like(r)}
            if t == "IF":
                coeffs["threshold"] = _t(node.v_threshold).double()
            m = (IF if t == "IF" else Integrator)(c, **self._f32(coeffs))
            _provenance(
                m,
                name,
                node,
                r=_mean(node.r),
                **({"v_threshold": _mean(node.v_threshold)} if t == "IF" else {}),
            )
        elif t in ("LIF", "LI", "CubaLIF"):
            tau = node.tau_mem if t == "CubaLIF" else node.tau
            a, k = self._decay(name, tau)
            r, v_leak = _t(node.r).double(), _t(node.v_leak).double()
            raw = t == "LI" and c.li_raw_input
            coeffs = {"a": a, "c": r if raw else k * r, "e": (1 - a) * v_leak}
            values: dict[str, Any] = {
                "tau": _mean(tau),
                "r": _mean(node.r),
                "v_leak": _mean(node.v_leak),
            }
            if t != "LI":
                coeffs["threshold"] = _t(node.v_threshold).double()
                values["v_threshold"] = _mean(node.v_threshold)
            if t == "CubaLIF":
                a_s, k_s = self._decay(name, node.tau_syn)
                w_in = _t(node.w_in).double()
                coeffs["a_syn"] = a_s
                coeffs["c_syn"] = w_in if c.syn_raw_input else k_s * w_in
                values = {
                    "tau_mem": values.pop("tau"),
                    "tau_syn": _mean(node.tau_syn),
                    **values,
                    "w_in": _mean(node.w_in),
                }
            m = {"LIF": LIF, "LI": LI, "CubaLIF": CubaLIF}[t](c, **self._f32(coeffs))
            m.a64, m.a_syn64 = a, coeffs.get("a_syn")  # float64, for the time constants in attrs
            _provenance(m, name, node, **values)
        else:  # pragma: no cover - _check_types refuses these
            raise NIRError(f"NIR node '{name}' ({t}) is not mapped")
        return m

    @staticmethod
    def _f32(coeffs: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        return {k: v.to(torch.float32) for k, v in coeffs.items()}

    def _place(self, name: str, module: nn.Module) -> None:
        """Add ``module`` at the dotted path ``name`` (containers for the dots)."""
        parts = name.split(".")
        if any(not p for p in parts):
            raise NIRError(f"NIR node name {name!r} cannot be a module path")
        parent: nn.Module = self
        for p in parts[:-1]:
            child = parent._modules.get(p)
            if child is None:
                child = nn.Module()
                parent.add_module(p, child)
            parent = child
        if parts[-1] in parent._modules:
            raise NIRError(f"NIR node name {name!r} is used twice (as a node and as a subgraph)")
        try:
            parent.add_module(parts[-1], module)
        except KeyError as exc:
            raise NIRError(f"NIR node name {name!r} cannot be a module name: {exc}") from exc
        self.nir_nodes[name] = name

    def _get(self, name: str) -> nn.Module:
        return self.get_submodule(name)

    # -- running

    def forward(self, x: torch.Tensor) -> Any:
        vals: dict[str, torch.Tensor] = {self._input: x}
        for name in self._order:
            if name == self._input or name in self._outputs:
                continue
            preds = self._preds[name]
            if not preds:
                raise NIRError(f"NIR node '{name}' has no input edge")
            inp = vals[preds[0]]
            for p in preds[1:]:
                inp = inp + vals[p]
            mod = self._get(name)
            try:
                vals[name] = mod(inp)
            except RuntimeError as exc:
                raise NIRError(
                    f"NIR node '{name}' ({mod.nir_type}) cannot take its input of feature shape "
                    f"{tuple(inp.shape[2:])}: {_first_line(exc)}"
                ) from exc
        outs = []
        for o in self._outputs:
            preds = self._preds[o]
            y = vals[preds[0]]
            for p in preds[1:]:
                y = y + vals[p]
            outs.append(y)
        if not outs:
            return vals[self._order[-1]]
        return outs[0] if len(outs) == 1 else tuple(outs)


# --------------------------------------------------------------------------- entry points


def from_nir(
    source: Any,
    dt: float = 1e-3,
    *,
    input_shape: Sequence[int] | None = None,
    convention: str | Convention = "nir",
) -> NIRModel:
    """A ``nir.NIRGraph``, or the path of a ``.nir`` file, as a :class:`NIRModel`.

    ``dt`` is the time step in seconds at which NIR taus (seconds) become steps;
    ``convention`` says how the equations are stepped (``"nir"``, ``"sinabs"``, ``"snntorch"``,
    ``"norse"`` or a :class:`Convention`). ``input_shape`` is one sample at one step, needed
    only where the graph does not say.
    """
    if isinstance(source, NIRModel):
        return source
    dt = float(dt)
    if not (math.isfinite(dt) and dt > 0):
        raise ValueError(f"dt must be a finite time step in seconds > 0, got {dt!r}")
    if isinstance(source, (str, Path)):
        source = read_nir(source)
    if not (type(source).__name__ == "NIRGraph" and type(source).__module__.startswith("nir")):
        raise TypeError(
            f"from_nir expects a nir.NIRGraph or a .nir file, got {type(source).__name__}"
        )
    return NIRModel(source, dt, input_shape, _convention(convention))


def as_model(
    model: Any, input_shape: Sequence[int] | None = None, dt: float = 1e-3
) -> tuple[Any, Any]:
    """The hook of hwcheck's entry points: a NIR graph or ``.nir`` path becomes a
    :class:`NIRModel` (default convention), and a missing ``input_shape`` is its input shape.
    Anything else is returned as it is."""
    if isinstance(model, nn.Module) and not isinstance(model, NIRModel):
        return model, input_shape
    if isinstance(model, NIRModel) or is_nir_source(model):
        m = from_nir(model, dt, input_shape=input_shape)
        return m, (input_shape if input_shape is not None else m.input_shape)
    return model, input_shape
