"""Time: how samples and time steps map onto a model's calls and tensor dimensions.

Every figure per sample or per second depends on knowing which dimension of a tensor is the
batch and which is time, and whether one call of ``forward()`` is one time step or a whole
sample. This module decides that once per model (:func:`infer_layout`), turns user data into
model calls (:func:`plan_batch`) and resets neuron state between samples
(:func:`reset_states`), for every framework hwcheck knows.

Layouts (``LayerGraph.layout``):

``"(BT)"``
    batch and time flattened into dim 0 (sinabs ``*Squeeze`` layers);
``"BT"``
    ``(batch, time, ...)``: sinabs layers without Squeeze, ``FlattenTime``;
``"TB"``
    ``(time, batch, ...)``: SpikingJelly multi-step mode, Norse's time-first modules, and
    models whose ``forward()`` loops over ``x[step]`` (snnTorch tutorials);
``"B"``
    one call is one time step of a batch: an ANN, or a *stepped* model that keeps state between
    calls (snnTorch ``init_hidden=True``, SpikingJelly single-step mode). hwcheck drives the time
    loop itself for data with a time dimension, carrying state over the steps of a sample and
    resetting it between batches.

A model whose ``forward()`` runs its own time loop over the same modules is *folded*: one
layer per module, ``LayerGraph.loop_steps`` steps per call (see :mod:`hwcheck.graph`).

Data convention: hwcheck's data are batch-first ``(B, T, *features)`` (what a DataLoader
yields, and what the CLI reads from files). A tensor in the model's own input layout is taken as
it is where the rank tells the two apart; a time-first model's tensors are its own ``(T, B, ...)``
unless ``data_layout="BT"`` says otherwise.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

__all__ = [
    "LAYOUTS",
    "DATA_LAYOUTS",
    "TimeError",
    "infer_layout",
    "squeeze_rows",
    "stepped_model",
    "feature_rank",
    "BatchPlan",
    "plan_batch",
    "reset_states",
]

LAYOUTS = ("(BT)", "BT", "TB", "B")
DATA_LAYOUTS = ("auto", "native", "BT", "TB")


class TimeError(ValueError):
    """The data's time or batch structure does not match the model's."""


def _sinabs_layers() -> Any:
    try:
        import sinabs.layers as sl
    except ImportError:  # pragma: no cover
        return None
    return sl


def _package(m: Any) -> str:
    return type(m).__module__.split(".")[0]


def _is_spikingjelly_multistep(m: Any) -> bool:
    return _package(m) == "spikingjelly" and getattr(m, "step_mode", None) == "m"


def _is_norse_time_first(m: Any) -> bool:
    """Norse's sequence modules (``LIF``, ``LI``, ``LIFRecurrent``...) loop over dim 0; its
    ``*Cell`` classes are one step."""
    return _package(m) == "norse" and hasattr(m, "state_fallback") and not type(m).__name__.endswith("Cell")


def stepped_model(model: Any) -> bool:
    """True when the model keeps neuron state between calls of ``forward()`` (one call = one
    step): snnTorch neurons with ``init_hidden=True``, SpikingJelly nodes in single-step mode."""
    for m in model.modules():
        pkg = _package(m)
        if pkg == "snntorch" and getattr(m, "init_hidden", False):
            return True
        if pkg == "spikingjelly" and hasattr(m, "_memories") and getattr(m, "step_mode", "s") == "s":
            return True
    return False


def infer_layout(model: Any) -> str:
    """The model's input layout, from its layer types (see module docstring).

    A time loop inside ``forward()`` cannot be seen from the modules; :func:`hwcheck.describe`
    recognises it while tracing and turns ``"B"`` into ``"TB"`` when the loop walks dim 0.
    """
    if getattr(model, "hwcheck_layout", None) in LAYOUTS:  # a model that says (hwcheck.nir_import)
        return model.hwcheck_layout
    sl = _sinabs_layers()
    mods = list(model.modules())
    if sl is not None:
        if any(isinstance(m, sl.SqueezeMixin) for m in mods):
            return "(BT)"
        if any(
            (isinstance(m, sl.StatefulLayer) and not isinstance(m, sl.SqueezeMixin))
            or isinstance(m, sl.FlattenTime)
            for m in mods
        ):
            return "BT"
    if any(_is_spikingjelly_multistep(m) or _is_norse_time_first(m) for m in mods):
        return "TB"
    return "B"


def squeeze_rows(model: Any) -> tuple[int | None, int | None]:
    """(batch_size, num_timesteps) declared by the model's Squeeze layers, None when free."""
    batch, steps = None, None
    for m in model.modules():
        if hasattr(m, "squeeze_forward"):
            b, t = getattr(m, "batch_size", -1), getattr(m, "num_timesteps", -1)
            if b and b > 0:
                batch = b
            if t and t > 0:
                steps = t
    return batch, steps


def feature_rank(model: Any) -> int | None:
    """Rank of one sample at one step, from the first layer that fixes it (Linear: 1,
    Conv2d: 3), or None when no layer says."""
    from hwcheck.layers import spec_for

    for m in model.modules():
        spec = spec_for(m)
        if spec is not None and spec.feature_ndim is not None:
            return spec.feature_ndim
    return None


@dataclass(frozen=True)
class BatchPlan:
    """How one batch of data is fed to the model.

    ``calls`` are the model inputs in order; ``samples`` and ``steps`` what they cover (a time
    loop inside ``forward()`` multiplies the steps; the counter measures it per call).
    ``stepped`` means each call is one time step of the same samples (state carries over).
    """

    calls: tuple[Any, ...]
    samples: int
    steps: int
    stepped: bool


def plan_batch(
    model: Any,
    x: Any,
    layout: str,
    *,
    features: int | None = None,
    data_layout: str = "auto",
    has_neurons: bool = True,
) -> BatchPlan:
    """Turn one data tensor into model calls, with its samples and time steps.

    ``features`` is the rank of one sample at one step (``len(graph.input_shape)``), when known.
    ``has_neurons``: a one-step model without neurons (an ANN) takes a ``(B, seq, F)`` tensor
    as it is (dim 1 is then not time).
    """
    if data_layout not in DATA_LAYOUTS:
        raise ValueError(f"data_layout must be one of {DATA_LAYOUTS}, got {data_layout!r}")
    if x.numel() == 0:
        raise TimeError(f"input of shape {tuple(x.shape)} is empty: no samples or no time steps")
    nd = x.dim()
    f = features if features is not None else feature_rank(model)
    timed = f is not None and nd == f + 2  # the tensor carries batch and time
    if f is not None and nd not in (f + 1, f + 2):
        raise TimeError(
            f"input of shape {tuple(x.shape)} has {nd} dimensions; the model's layers take samples of "
            f"{f} dimension(s), so expected {f + 1} (model input) or {f + 2} (batch, time, ...)"
        )
    if layout == "(BT)":
        batch, steps = squeeze_rows(model)
        if timed or data_layout in ("BT", "TB"):
            if not timed:
                raise TimeError(f"data_layout={data_layout!r} needs (batch, time, ...) data; got {tuple(x.shape)}")
            if data_layout == "TB":
                x = x.transpose(0, 1)
            b, t = int(x.shape[0]), int(x.shape[1])
            if steps and t != steps:
                raise TimeError(f"the model's Squeeze layers expect {steps} time steps; the data has {t}")
            if batch and b % batch:
                raise TimeError(
                    f"the model's Squeeze layers take batches of {batch} samples; the data has {b}, not a multiple"
                )
            per = batch or b
            calls = tuple(x[i : i + per].reshape(-1, *x.shape[2:]) for i in range(0, b, per))
            return BatchPlan(calls, b, t, stepped=False)
        rows = int(x.shape[0])
        if batch:
            if rows % batch:
                raise TimeError(f"the model's Squeeze layers take batches of {batch} samples: {rows} rows is not a multiple")
            return BatchPlan((x,), batch, rows // batch, stepped=False)
        if steps:
            if rows % steps:
                raise TimeError(f"the model's Squeeze layers expect {steps} time steps: {rows} rows is not a multiple")
            return BatchPlan((x,), rows // steps, steps, stepped=False)
        return BatchPlan((x,), rows, 1, stepped=False)
    if layout in ("BT", "TB"):
        if f is not None and not timed:
            raise TimeError(
                f"the model takes ({'batch, time' if layout == 'BT' else 'time, batch'}, ...) input; "
                f"got {tuple(x.shape)}"
            )
        given = layout if data_layout in ("auto", "native") else data_layout
        if given != layout:
            x = x.transpose(0, 1)
        b, t = (int(x.shape[0]), int(x.shape[1])) if layout == "BT" else (int(x.shape[1]), int(x.shape[0]))
        return BatchPlan((x,), b, t, stepped=False)
    # "B": one call per time step
    if (timed and has_neurons) or data_layout in ("BT", "TB"):
        if not timed:
            raise TimeError(f"data_layout={data_layout!r} needs (batch, time, ...) data; got {tuple(x.shape)}")
        if data_layout == "TB":
            x = x.transpose(0, 1)
        b, t = int(x.shape[0]), int(x.shape[1])
        return BatchPlan(tuple(x[:, i] for i in range(t)), b, t, stepped=True)
    return BatchPlan((x,), int(x.shape[0]), 1, stepped=False)


# --------------------------------------------------------------------------- state


def state_modules(model: Any) -> list[tuple[str, Any]]:
    """The modules that hold neuron states, with their framework (``"sinabs"``, ``"snntorch"``,
    ``"spikingjelly"``): what :func:`reset_states` walks (it depends on the module types only,
    so a caller may keep it while the model is unchanged)."""
    sl = _sinabs_layers()
    out = []
    for m in model.modules():
        pkg = _package(m)
        if sl is not None and isinstance(m, sl.StatefulLayer):
            out.append(("sinabs", m))
        elif pkg == "snntorch":
            out.append(("snntorch", m))
        elif pkg == "spikingjelly" and hasattr(m, "_memories") and hasattr(m, "reset"):
            out.append(("spikingjelly", m))
    return out


def reset_states(model: Any, batch: int | None = None, modules: list[tuple[str, Any]] | None = None) -> None:
    """Forget every neuron state, so that the next call starts each sample from rest.

    sinabs and snnTorch states are emptied (each framework re-creates them at the new batch
    size on the next call, instead of broadcasting an old batch's state); SpikingJelly memories
    are reset to their registered initial values. A sinabs state that already holds ``batch``
    samples is replaced by zeros of its shape instead (the same rest state, without sinabs'
    re-initialisation). States are replaced, never zeroed in place: the old tensors may be the
    user's, kept to be restored. ``modules`` is :func:`state_modules` of ``model``, if known.
    """
    import torch

    for kind, m in state_modules(model) if modules is None else modules:
        if kind == "sinabs":
            bufs = m._buffers
            for name, buf in list(bufs.items()):
                if buf is None or not buf.numel():  # empty: sinabs creates it on the next call
                    continue
                if batch is not None and buf.dim() and buf.shape[0] == batch:
                    bufs[name] = torch.zeros_like(buf)
                else:
                    bufs[name] = torch.zeros(0, dtype=buf.dtype, device=buf.device)
        elif kind == "snntorch":
            # snnTorch keeps its states (mem, syn, spk...) as non-persistent buffers; its
            # parameters (beta, threshold) are persistent ones
            for name in list(getattr(m, "_non_persistent_buffers_set", ())):
                buf = m._buffers.get(name)
                if buf is not None:
                    m._buffers[name] = torch.zeros(0, dtype=buf.dtype, device=buf.device)
        else:
            m.reset()

