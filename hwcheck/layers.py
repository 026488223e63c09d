"""How each module type is described: its kind, its plain facts and its connectivity.

A :class:`LayerSpec` says what hwcheck needs to know about one module class:

* ``kind`` -- one of :data:`hwcheck.graph.KINDS`;
* ``attrs(module)`` -- plain facts (kernel size, neuron model, time constants...) for mappers;
* ``connect(module, x, weight)`` -- for layers that are linear in their input (weight layers,
  sum/avg pooling): the layer's connection pattern applied to ``x``, with ``weight`` replacing the
  layer's own weights (all ones, or a 0/1 mask of the nonzero weights). The exact fan-out of every
  input position is then the vector-Jacobian product of this map with ones -- a transposed
  convolution of ones for a conv, exact at borders, with padding, stride, dilation and groups;
* ``feature_ndim`` -- how many trailing dimensions of the input are features (the rest are batch
  and time).

Users describe their own classes with :func:`register_layer` or :func:`register_neuron`.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

__all__ = ["LayerSpec", "register_layer", "register_neuron", "spec_for", "recurrent_module", "REGISTRY"]

Connect = Callable[[nn.Module, torch.Tensor, "torch.Tensor | None"], torch.Tensor]


@dataclass(frozen=True)
class LayerSpec:
    """What hwcheck knows about one module class (see module docstring)."""

    kind: str
    attrs: Callable[[nn.Module], dict[str, Any]] = lambda m: {}
    connect: Connect | None = None
    feature_ndim: int | None = None
    counts_spikes: bool = False

    def __post_init__(self) -> None:
        from hwcheck.graph import KINDS

        if self.kind not in KINDS:
            raise ValueError(f"unknown layer kind {self.kind!r}; expected one of {KINDS}")


REGISTRY: dict[type, LayerSpec] = {}
# Specs for classes of optional packages, keyed by (top-level package, class name), so that the
# package is never imported just to describe it.
NAMED_REGISTRY: dict[tuple[str, str], LayerSpec] = {}


#: bumped on every registration, so cached layer graphs of earlier descriptions are not reused
REGISTRY_VERSION = [0]


def register_layer(cls: type, spec: LayerSpec) -> None:
    """Describe a module class (and its subclasses, unless they have their own spec)."""
    if not isinstance(cls, type) or not issubclass(cls, nn.Module):
        raise TypeError(f"register_layer expects an nn.Module subclass, got {cls!r}")
    REGISTRY[cls] = spec
    REGISTRY_VERSION[0] += 1


def register_neuron(
    cls: type,
    neuron_model: str,
    *,
    spiking: bool = True,
    attrs: Callable[[nn.Module], dict[str, Any]] | None = None,
    synaptic_states: int = 1,
    leak: bool = True,
) -> None:
    """Describe a user neuron class: hwcheck then counts its neurons, spikes and updates.

    ``attrs`` may return tau_mem / tau_syn (in time steps), threshold, reset, recurrent.
    The first tensor the module returns is taken as its spike output.
    """

    def _attrs(m: nn.Module) -> dict[str, Any]:
        base = {
            "neuron_model": neuron_model,
            "tau_mem": None,
            "tau_syn": None,
            "synaptic_states": synaptic_states,
            "threshold": None,
            "reset": None,
            "recurrent": False,
            "leak": leak,
            "squeeze": False,
        }
        if attrs is not None:
            base.update(attrs(m))
        return base

    register_layer(cls, LayerSpec("spiking" if spiking else "neuron", _attrs, counts_spikes=spiking))


def spec_for(module: nn.Module) -> LayerSpec | None:
    """The spec of the nearest registered class in the module's MRO, or None."""
    for klass in type(module).__mro__:
        spec = REGISTRY.get(klass)
        if spec is not None:
            return spec
        pkg = klass.__module__.split(".")[0]
        spec = NAMED_REGISTRY.get((pkg, klass.__name__))
        if spec is not None:
            return spec
    return None


def recurrent_module(module: nn.Module) -> tuple[str, nn.Module] | None:
    """(attribute name, module) of a recurrent neuron layer's recurrent weights, if it has any:
    sinabs ``rec_connect``, snnTorch ``recurrent``."""
    for name in ("rec_connect", "recurrent"):
        child = module._modules.get(name)
        if isinstance(child, nn.Module):
            return name, child
    return None


# --------------------------------------------------------------------------- weight layers


def _tuple(v: Any, n: int) -> tuple:
    return tuple(v) if isinstance(v, (tuple, list)) else (v,) * n


def _conv_padding(m: nn.modules.conv._ConvNd) -> tuple[int, ...]:
    """Padding per spatial dim (before side), with 'same'/'valid' resolved."""
    nd = len(m.kernel_size)
    if isinstance(m.padding, str):
        if m.padding == "valid":
            return (0,) * nd
        # 'same': total padding d*(k-1), the smaller half before (as torch does)
        return tuple(d * (k - 1) // 2 for k, d in zip(m.kernel_size, m.dilation))
    return _tuple(m.padding, nd)


def _conv_attrs(m: nn.modules.conv._ConvNd) -> dict[str, Any]:
    return {
        "in_channels": m.in_channels,
        "out_channels": m.out_channels,
        "kernel_size": tuple(m.kernel_size),
        "stride": tuple(m.stride),
        "padding": _conv_padding(m),
        "padding_spec": m.padding if isinstance(m.padding, str) else tuple(m.padding),
        "dilation": tuple(m.dilation),
        "groups": m.groups,
        "bias": m.bias is not None,
        "padding_mode": m.padding_mode,
    }


def _conv_connect(m: nn.Module, x: torch.Tensor, w: torch.Tensor | None) -> torch.Tensor:
    return m._conv_forward(x, m.weight if w is None else w, None)


def _linear_attrs(m: nn.Linear) -> dict[str, Any]:
    return {"in_features": m.in_features, "out_features": m.out_features, "bias": m.bias is not None}


def _linear_connect(m: nn.Module, x: torch.Tensor, w: torch.Tensor | None) -> torch.Tensor:
    return F.linear(x, m.weight if w is None else w)


# --------------------------------------------------------------------------- pooling


def _pool_attrs(pool_type: str, nd: int) -> Callable[[nn.Module], dict[str, Any]]:
    def attrs(m: nn.Module) -> dict[str, Any]:
        k = _tuple(m.kernel_size, nd)
        s = getattr(m, "stride", None)
        s = k if s is None or s == () or s == [] else _tuple(s, nd)
        pad = _tuple(getattr(m, "padding", 0), nd)
        return {
            "pool_type": pool_type,
            "kernel_size": k,
            "stride": s,
            "padding": pad,
            "ceil_mode": bool(getattr(m, "ceil_mode", False)),
            "count_include_pad": bool(getattr(m, "count_include_pad", True)),
            "dilation": _tuple(getattr(m, "dilation", 1), nd),
        }

    return attrs


def _sum_pool_connect(nd: int) -> Connect:
    """Sum-pool geometry of an avg/sum pool: each input position is delivered, with weight 1, to
    every window that contains it (divisor 1, padding contributes nothing)."""

    def connect(m: nn.Module, x: torch.Tensor, w: torch.Tensor | None) -> torch.Tensor:
        a = _pool_attrs("sum", nd)(m)
        if nd == 1:
            y = F.avg_pool2d(
                x.unsqueeze(-2),
                (1, a["kernel_size"][0]),
                (1, a["stride"][0]),
                (0, a["padding"][0]),
                ceil_mode=a["ceil_mode"],
                divisor_override=1,
            )
            return y.squeeze(-2)
        return F.avg_pool2d(
            x, a["kernel_size"], a["stride"], a["padding"], ceil_mode=a["ceil_mode"], divisor_override=1
        )

    return connect


# --------------------------------------------------------------------------- neurons


def _tau(v: Any) -> float | None:
    """A time constant (in time steps) as one float; mean over neurons if it is per neuron."""
    if v is None:
        return None
    if isinstance(v, torch.Tensor):
        if v.numel() == 0:
            return None
        return float(v.detach().float().mean())
    return float(v)


def _sinabs_neuron_attrs(model_name: str) -> Callable[[nn.Module], dict[str, Any]]:
    def attrs(m: nn.Module) -> dict[str, Any]:
        reset = None
        reset_fn = getattr(m, "reset_fn", None)
        if reset_fn is not None:
            rname = type(reset_fn).__name__
            reset = "subtract" if "Subtract" in rname else "zero" if "Reset" in rname else rname
        tau_mem = None if model_name == "IAF" else _tau(getattr(m, "tau_mem", None))
        tau_syn = _tau(getattr(m, "tau_syn", None))
        spike_fn = getattr(m, "spike_fn", None)
        return {
            "neuron_model": model_name,
            "tau_mem": tau_mem,
            "tau_syn": tau_syn,
            "synaptic_states": 1,
            # ALIF keeps its base threshold in b0; its spike_threshold is the adaptive state
            "threshold": _tau(getattr(m, "b0" if model_name == "ALIF" else "spike_threshold", None)),
            "min_v_mem": _tau(getattr(m, "min_v_mem", None)),
            "reset": reset,
            "recurrent": hasattr(m, "rec_connect"),
            "leak": model_name != "IAF",
            "squeeze": hasattr(m, "squeeze_forward"),
            "batch_size": getattr(m, "batch_size", None),
            "num_timesteps": getattr(m, "num_timesteps", None),
            "multi_spike": spike_fn is not None and "Multi" in getattr(spike_fn, "__name__", ""),
        }

    return attrs


def _snntorch_attrs(model_name: str) -> Callable[[nn.Module], dict[str, Any]]:
    def decay_to_tau(d: Any) -> float | None:
        d = _tau(d)
        if d is None or d <= 0 or d >= 1:
            return None if d is None or d <= 0 else math.inf
        return -1.0 / math.log(d)

    def attrs(m: nn.Module) -> dict[str, Any]:
        tau_mem = decay_to_tau(getattr(m, "beta", None))
        return {
            "neuron_model": model_name,
            "tau_mem": tau_mem,
            "tau_syn": decay_to_tau(getattr(m, "alpha", None))
            if model_name in ("Synaptic", "RSynaptic", "Alpha")
            else None,
            "synaptic_states": 2 if model_name in ("Synaptic", "RSynaptic", "Alpha") else 1,
            "threshold": _tau(getattr(m, "threshold", None)),
            "reset": {"subtract": "subtract", "zero": "zero", "none": "none"}.get(
                getattr(m, "reset_mechanism", None), getattr(m, "reset_mechanism", None)
            ),
            "recurrent": model_name.startswith("R"),
            "stateful_calls": bool(getattr(m, "init_hidden", False)),
            "leak": True,
            "squeeze": False,
        }

    return attrs


def _spikingjelly_attrs(m: nn.Module) -> dict[str, Any]:
    """SpikingJelly nodes: ``tau`` in steps (LIF), ``v_threshold``; ``v_reset=None`` is a soft
    (subtractive) reset, a number a hard reset to it."""
    name = type(m).__name__
    tau = getattr(m, "tau", None)
    if tau is None and hasattr(m, "w"):  # ParametricLIFNode: tau = 1 / sigmoid(w)
        tau = 1.0 / float(torch.sigmoid(m.w.detach()).mean())
    v_reset = getattr(m, "v_reset", None)
    return {
        "neuron_model": "IAF" if name.startswith("IF") else "LIF",
        "tau_mem": _tau(tau),
        "tau_syn": None,
        "synaptic_states": 1,
        "threshold": _tau(getattr(m, "v_threshold", None)),
        "reset": "subtract" if v_reset is None else "zero",
        "v_reset": None if v_reset is None else _tau(v_reset),
        "recurrent": False,
        "leak": not name.startswith("IF"),
        "squeeze": False,
        "step_mode": getattr(m, "step_mode", None),
    }


def _norse_attrs(model_name: str, spiking: bool = True) -> Callable[[nn.Module], dict[str, Any]]:
    """Norse cells: time constants as inverse seconds in ``p``, integration step ``dt`` (s)."""

    def attrs(m: nn.Module) -> dict[str, Any]:
        p = getattr(m, "p", None)
        dt = float(getattr(m, "dt", 1e-3) or 1e-3)

        def steps(inv: Any) -> float | None:
            v = _tau(inv)
            return None if v is None or v <= 0 else 1.0 / (v * dt)

        return {
            "neuron_model": model_name,
            "tau_mem": steps(getattr(p, "tau_mem_inv", None)),
            "tau_syn": steps(getattr(p, "tau_syn_inv", None)),
            "synaptic_states": 2,
            "threshold": _tau(getattr(p, "v_th", None)) if spiking else None,
            "reset": "zero" if spiking else None,
            "v_reset": _tau(getattr(p, "v_reset", None)),
            "recurrent": "Recurrent" in type(m).__name__,
            "leak": True,
            "squeeze": False,
            "norse_dt": dt,
        }

    return attrs


def _register_builtins() -> None:
    for cls, nd in ((nn.Conv1d, 2), (nn.Conv2d, 3), (nn.Conv3d, 4)):
        register_layer(cls, LayerSpec("conv", _conv_attrs, _conv_connect, nd))
    register_layer(nn.Linear, LayerSpec("linear", _linear_attrs, _linear_connect, 1))
    register_layer(nn.AvgPool1d, LayerSpec("pool", _pool_attrs("avg", 1), _sum_pool_connect(1), 2))
    register_layer(nn.AvgPool2d, LayerSpec("pool", _pool_attrs("avg", 2), _sum_pool_connect(2), 3))
    register_layer(nn.MaxPool1d, LayerSpec("pool", _pool_attrs("max", 1), None, 2))
    register_layer(nn.MaxPool2d, LayerSpec("pool", _pool_attrs("max", 2), None, 3))
    for cls in (nn.BatchNorm1d, nn.BatchNorm2d, nn.BatchNorm3d, nn.LayerNorm, nn.GroupNorm):
        register_layer(cls, LayerSpec("norm", lambda m: {"norm_type": type(m).__name__}))
    for cls in (nn.ReLU, nn.LeakyReLU, nn.Sigmoid, nn.Tanh, nn.GELU, nn.ELU, nn.Softmax, nn.ReLU6):
        register_layer(cls, LayerSpec("activation", lambda m: {"activation": type(m).__name__}))
    register_layer(nn.Flatten, LayerSpec("reshape", lambda m: {"start_dim": m.start_dim, "end_dim": m.end_dim}))
    register_layer(nn.Unflatten, LayerSpec("reshape", lambda m: {"dim": m.dim}))
    for cls in (nn.Identity, nn.Dropout, nn.Dropout1d, nn.Dropout2d, nn.Dropout3d, nn.AlphaDropout):
        register_layer(cls, LayerSpec("identity"))

    try:  # sinabs is a dependency, but describe plain torch models even without it
        import sinabs.layers as sl
    except ImportError:  # pragma: no cover
        return
    register_layer(sl.SumPool2d, LayerSpec("pool", _pool_attrs("sum", 2), _sum_pool_connect(2), 3))
    register_layer(sl.SpikingMaxPooling2dLayer, LayerSpec("pool", lambda m: {"pool_type": "max"}))
    register_layer(
        sl.NeuromorphicReLU,
        LayerSpec(
            "activation",
            lambda m: {"activation": "NeuromorphicReLU", "quantize": bool(m.quantize)},
            counts_spikes=True,
        ),
    )
    register_layer(sl.Merge, LayerSpec("merge"))
    register_layer(sl.FlattenTime, LayerSpec("reshape", lambda m: {"time": "flatten"}))
    register_layer(sl.UnflattenTime, LayerSpec("reshape", lambda m: {"time": "unflatten", "batch_size": m.batch_size}))
    # Order matters only through the MRO: IAF and ExpLeak subclass LIF.
    for cls, name in (
        (sl.LIF, "LIF"),
        (sl.LIFRecurrent, "LIF"),
        (sl.IAF, "IAF"),
        (sl.IAFRecurrent, "IAF"),
        (sl.ALIF, "ALIF"),
        (sl.ALIFRecurrent, "ALIF"),
    ):
        register_layer(cls, LayerSpec("spiking", _sinabs_neuron_attrs(name), counts_spikes=True))
    register_layer(sl.ExpLeak, LayerSpec("neuron", _sinabs_neuron_attrs("ExpLeak")))

    for name in ("Leaky", "Synaptic", "RLeaky", "RSynaptic", "Lapicque", "Alpha"):
        NAMED_REGISTRY[("snntorch", name)] = LayerSpec(
            "spiking", _snntorch_attrs(name), counts_spikes=True
        )
    # SpikingJelly: every spiking node derives from BaseNode (IFNode, LIFNode, ParametricLIFNode)
    NAMED_REGISTRY[("spikingjelly", "BaseNode")] = LayerSpec("spiking", _spikingjelly_attrs, counts_spikes=True)
    # Norse: feed-forward cells and their time-first sequence modules. Norse's recurrent cells
    # hold their input and recurrent weights inside the neuron module and are not described.
    for name, model_name in (
        ("LIFCell", "LIF"),
        ("LIF", "LIF"),
        ("LIFBoxCell", "LIF"),
        ("LIFBox", "LIF"),
        ("IAFCell", "IAF"),
    ):
        NAMED_REGISTRY[("norse", name)] = LayerSpec("spiking", _norse_attrs(model_name), counts_spikes=True)
    for name in ("LICell", "LI", "LIBoxCell", "LIBox"):
        NAMED_REGISTRY[("norse", name)] = LayerSpec("neuron", _norse_attrs("LI", spiking=False))


_register_builtins()
