"""The ``hwcheck`` command line.

Exit status: 0 -- the model fits every chip named; 1 -- it does not fit at least one;
2 -- a usage or input error (message on stderr; the traceback too with ``--debug``, same status).
"""

from __future__ import annotations

import argparse
import importlib
import importlib.util
import math
import os
import re
import sys
import textwrap
from collections.abc import Sequence
from pathlib import Path
from typing import Any

EXIT_FITS, EXIT_NO_FIT, EXIT_ERROR = 0, 1, 2


class UsageError(ValueError):
    """A problem with the command line or its inputs: reported in one line, exit status 2."""


# --------------------------------------------------------------------------- parsing helpers


def parse_shape(text: str) -> tuple[int, ...]:
    """``"2,128,128"`` (or ``2x128x128``) -> ``(2, 128, 128)``."""
    parts = [p for p in re.split(r"[,\s]+|(?<=\d)x(?=\d)", text.strip()) if p]
    try:
        shape = tuple(int(p) for p in parts)
    except ValueError:
        shape = ()
    if not shape or any(s <= 0 for s in shape):
        raise UsageError(f"--input-shape {text!r}: expected positive integers like 2,128,128")
    if math.prod(shape) > 2**31:
        raise UsageError(f"--input-shape {text!r}: {math.prod(shape):.3g} values per sample and step is too large")
    return shape


_DT_UNITS = {"s": 1.0, "ms": 1e-3, "us": 1e-6, "µs": 1e-6, "ns": 1e-9}


def parse_dt(text: str) -> float:
    """``"1ms"`` / ``"0.001"`` / ``"100us"`` -> seconds (a bare number is seconds)."""
    m = re.fullmatch(r"\s*([0-9.eE+-]+)\s*([a-zµ]*)\s*", text)
    if m:
        unit = m.group(2) or "s"
        try:
            value = float(m.group(1))
        except ValueError:
            value = -1.0
        if unit in _DT_UNITS and math.isfinite(value) and value > 0:
            if not m.group(2) and value >= 0.1:
                print(
                    f"hwcheck: warning: --dt {text} is {value:g} s per time step (a bare number is seconds); "
                    f"for milliseconds write --dt {text.strip()}ms",
                    file=sys.stderr,
                )
            return value * _DT_UNITS[unit]
    raise argparse.ArgumentTypeError(f"{text!r}: expected a positive duration like 1ms, 100us or 0.001 (seconds)")


def parse_steps(text: str) -> int:
    try:
        v = int(text)
    except ValueError:
        v = 0
    if v < 1:
        raise argparse.ArgumentTypeError(f"{text!r}: expected a whole number of time steps >= 1")
    return v


def parse_rate(text: str) -> float:
    try:
        v = float(text)
    except ValueError:
        v = -1.0
    if not math.isfinite(v) or v < 0:
        raise argparse.ArgumentTypeError(f"{text!r}: expected a finite rate in Hz >= 0")
    return v


def parse_set(items: Sequence[str]) -> dict[str, Any]:
    """``["energy.synop_pJ=12"]`` -> ``{"energy.synop_pJ": 12.0}``."""
    out: dict[str, Any] = {}
    for item in items:
        key, sep, raw = item.partition("=")
        if not sep or "." not in key or not raw.strip():
            raise UsageError(f"--set {item!r}: expected SECTION.KEY=VALUE, e.g. energy.synop_pJ=12")
        raw = raw.strip()
        value: Any
        if raw.lower() in ("true", "false"):
            value = raw.lower() == "true"
        else:
            try:
                value = int(raw)
            except ValueError:
                try:
                    value = float(raw)
                except ValueError:
                    value = raw
        out[key.strip()] = value
    return out


def _run_user_import(target: str, folder: Path, load: Any) -> Any:
    """Run the user's import ``load()`` with ``folder`` on ``sys.path``; every way it can fail
    (a missing module, an exception, ``sys.exit``) becomes a UsageError that names ``target``."""
    sys.path.insert(0, str(folder))
    try:
        return load()
    except ModuleNotFoundError as exc:
        raise UsageError(f"cannot import model module {target!r}: {exc}") from exc
    except SystemExit as exc:
        raise UsageError(f"{target} called sys.exit({exc.code!r}) while being imported") from exc
    except Exception as exc:
        raise UsageError(f"while importing {target}: {type(exc).__name__}: {exc}") from exc
    finally:
        sys.path.pop(0)


def _only_model(file: Path) -> str:
    """For ``hwcheck check file.py`` without ``:attr``: the one model the file defines (an
    ``nn.Module`` instance, an ``nn.Module`` class or a function of the file), or a UsageError
    that lists the candidates. Runs the file, as ``file.py:attr`` would."""
    import inspect

    import torch

    name = f"_hwcheck_user_{file.stem}"
    mod_spec = importlib.util.spec_from_file_location(name, file)
    if mod_spec is None or mod_spec.loader is None:
        raise UsageError(f"cannot import {file}")
    module = importlib.util.module_from_spec(mod_spec)
    _run_user_import(str(file), file.resolve().parent, lambda: mod_spec.loader.exec_module(module))
    found = []
    for attr, value in vars(module).items():
        if attr.startswith("_"):
            continue
        own = getattr(value, "__module__", None) == name
        if isinstance(value, torch.nn.Module):
            found.append(attr)
        elif own and inspect.isclass(value) and issubclass(value, torch.nn.Module):
            found.append(attr)
        elif own and inspect.isfunction(value):
            found.append(attr)
    if len(found) == 1:
        print(f"hwcheck: using {file}:{found[0]}, the only model in the file", file=sys.stderr)
        return found[0]
    listed = f"; candidates: {', '.join(found)}" if found else "; it defines no nn.Module or factory"
    raise UsageError(f"{file} is a Python file: say which model with {file}:ATTR (a module or a factory){listed}")


def load_model(spec: str, trust_pickle: bool = False) -> Any:
    """A model from ``pkg.module:attr``, ``path/file.py:attr`` or a pickle (a TorchScript file
    is named and refused).

    ``attr`` may be a module instance or a factory called without arguments. Loading a Python
    file runs its code.
    """
    import torch

    path = Path(spec)
    if path.suffix == ".py" and path.is_file():
        spec = f"{spec}:{_only_model(path)}"
        path = Path(spec)
    if ":" in spec and not path.exists():
        target, _, attr = spec.rpartition(":")
        if target.endswith(".py"):
            file = Path(target)
            if not file.is_file():
                raise UsageError(f"model file not found: {target}")
            mod_spec = importlib.util.spec_from_file_location(f"_hwcheck_user_{file.stem}", file)
            if mod_spec is None or mod_spec.loader is None:
                raise UsageError(f"cannot import {target}")
            module = importlib.util.module_from_spec(mod_spec)
            _run_user_import(target, file.resolve().parent, lambda: mod_spec.loader.exec_module(module))
        else:
            # the current folder first: `hwcheck check mymodels:net` next to mymodels.py
            module = _run_user_import(target, Path.cwd(), lambda: importlib.import_module(target))
        if not hasattr(module, attr):
            raise UsageError(f"{target} has no attribute {attr!r}")
        obj = getattr(module, attr)
        if not isinstance(obj, torch.nn.Module) and callable(obj):
            try:
                obj = obj()
            except SystemExit as exc:
                raise UsageError(f"{spec}() called sys.exit({exc.code!r})") from exc
            except Exception as exc:
                raise UsageError(f"while building the model {spec}(): {type(exc).__name__}: {exc}") from exc
        if not isinstance(obj, torch.nn.Module):
            raise UsageError(f"{spec} is not a torch.nn.Module (nor a factory returning one)")
        return obj
    if not path.is_file():
        raise UsageError(
            f"model not found: {spec!r} (expected pkg.module:attr, path/file.py:attr, or a model file)"
        )
    from hwcheck.nir_import import NIRError, is_nir_source, read_nir

    if is_nir_source(path):  # HDF5 content (or a .nir name): a nir.NIRGraph, made a model in _nir_model
        try:
            return read_nir(path)
        except NIRError as exc:
            raise UsageError(str(exc)) from exc
    try:
        torch.jit.load(str(path), map_location="cpu")
    except Exception:
        pass
    else:
        raise UsageError(
            f"{spec} is a TorchScript file: hwcheck needs the eager model (forward hooks do not run "
            "on scripted code). Pass its Python definition as file.py:attr instead."
        )
    try:
        obj = torch.load(str(path), map_location="cpu", weights_only=not trust_pickle)
    except Exception as exc:
        hint = "" if trust_pickle else " (a pickled nn.Module needs --trust-pickle; only use it on files you trust)"
        raise UsageError(f"cannot load model file {spec}: {str(exc).splitlines()[0]}{hint}") from exc
    if not isinstance(obj, torch.nn.Module):
        raise UsageError(f"{spec} holds a {type(obj).__name__}, not a model (a state dict needs its model code)")
    return obj


def load_data(path: str) -> Any:
    """An event tensor from ``.pt`` / ``.npy`` / ``.npz``, laid out (T, C, H, W) or (B, T, C, H, W)."""
    import numpy as np
    import torch

    p = Path(path)
    if not p.is_file():
        raise UsageError(f"--data file not found: {path}")
    if p.suffix not in (".npy", ".npz", ".pt", ".pth"):
        raise UsageError(f"--data {path}: unknown file type {p.suffix or '(none)'}; expected .npy, .npz or .pt")
    try:
        if p.suffix == ".npy":
            arr = torch.from_numpy(np.load(p, allow_pickle=False))
        elif p.suffix == ".npz":
            with np.load(p, allow_pickle=False) as z:
                if not z.files:
                    raise UsageError(f"--data {path}: the .npz archive holds no arrays")
                arr = torch.from_numpy(z[z.files[0]])
        else:
            arr = torch.load(p, map_location="cpu", weights_only=True)
    except UsageError:
        raise
    except Exception as exc:
        first = (str(exc).splitlines() or [type(exc).__name__])[0]
        raise UsageError(f"cannot read --data {path}: {first}") from exc
    if not isinstance(arr, torch.Tensor):
        raise UsageError(f"--data {path}: expected one tensor/array, got {type(arr).__name__}")
    if arr.dtype.is_complex:
        raise UsageError(f"--data {path}: complex values are not events")
    return arr.float()


def batches_for(model: Any, events: Any, input_shape: tuple[int, ...]) -> list[Any]:
    """An event tensor (T, *shape) or (B, T, *shape) as one batch-first (B, T, *shape) batch;
    :func:`hwcheck.analyze` lays it out for the model (``data_layout="BT"``)."""
    nd = len(input_shape)
    if events.dim() < nd or tuple(events.shape[-nd:]) != tuple(input_shape):
        raise UsageError(
            f"--data has shape {tuple(events.shape)}, which does not end in --input-shape {input_shape}"
        )
    if events.dim() == nd + 1:
        events = events.unsqueeze(0)
    if events.dim() != nd + 2:
        raise UsageError(f"--data must be (T, {', '.join(map(str, input_shape))}) or (B, T, ...); got {tuple(events.shape)}")
    if events.shape[1] == 0 or events.shape[0] == 0:
        raise UsageError(f"--data has no samples or no time steps: shape {tuple(events.shape)}")
    return [events]


def synthetic(model: Any, input_shape: tuple[int, ...], timesteps: int, rate_hz: float, dt: float, seed: int = 0) -> list[Any]:
    """Seeded Poisson events in the model's layout: one sample, or one batch where the model's
    Squeeze layers fix the batch size."""
    from hwcheck.examples import synthetic_events
    from hwcheck.graph import infer_layout, squeeze_rows

    b = (squeeze_rows(model)[0] or 1) if infer_layout(model) == "(BT)" else 1
    ev = synthetic_events(timesteps, b, rate_hz, dt, input_shape, seed)
    return batches_for(model, ev.reshape(b, timesteps, *input_shape), input_shape)


# --------------------------------------------------------------------------- commands


def _print_layers(report: Any) -> None:
    import pandas as pd

    df = report.layers
    if "kind" in df:
        df = df[df["kind"] != "identity"]
    cols = [c for c in ("kind", "type", "out_shape", "neurons", "firing_rate", "synops", "ops_dense") if c in df]
    cols += [c for c in ("synops_p95", "events_peak_per_step") if c in df]  # a dataset's spread
    if "synops" not in df:  # a static check: what is known without data
        cols += [c for c in ("params", "synapses", "fan_in_max") if c in df]
    cols += [c for c in df.columns if c.startswith("core_")]
    if not len(df) or not cols:
        return
    with pd.option_context("display.width", 160, "display.max_columns", 20, "display.float_format", "{:.4g}".format):
        print(df[cols].to_string())


def _print_unknown_energy(report: Any) -> None:
    """One note per set of missing figures, naming every chip that lacks them."""
    groups: dict[tuple[str, ...], list[str]] = {}
    for r in report.results:
        if r.energy is not None and r.energy.missing:
            groups.setdefault(tuple(r.energy.missing), []).append(r.energy.chip)
    for missing, chips in groups.items():
        print(
            f"\nnote: dynamic energy unknown for {', '.join(chips)}: no published {', '.join(missing)} "
            "(calibrate with `hwcheck calibrate` or set with --set energy.<figure>=...)"
        )


def _print_violations(report: Any) -> None:
    v = report.violations
    for _, r in v.iterrows():
        print(f"  [{r['chip']}] {r['severity']}: {r['layer']}: {r['message']}\n      hint: {r['hint']}")


def _output_plan(args: argparse.Namespace) -> tuple[tuple[str, ...], Path | None]:
    """Formats and report folder, validated before any long work starts."""
    from hwcheck.report import FORMATS
    from hwcheck.safe_write import OutputError, check_name, check_target

    formats = tuple(f.strip() for f in args.format.split(",") if f.strip())
    unknown = sorted(set(formats) - set(FORMATS))
    if unknown or not formats:
        raise UsageError(f"--format {args.format!r}: unknown {unknown or 'empty'}; expected some of {','.join(FORMATS)}")
    if args.no_save:
        return formats, None
    try:
        check_name(args.name)
        out = Path(args.out) if args.out else Path("reports") / args.name
        check_target(out)
    except OutputError as exc:
        raise UsageError(str(exc)) from exc
    return formats, out


def _run_report(
    args: argparse.Namespace, model: Any, data: Any, input_shape: tuple[int, ...], notes: list[str]
) -> int:
    from hwcheck.check import report as make_report

    formats, out_dir = _output_plan(args)
    analysis = None
    processes = getattr(args, "processes", 1)
    if processes > 1 and data is not None:
        if not (args.data and _is_recordings(args.data)):
            raise UsageError("--processes needs --data with event recordings (a folder, a glob or files)")
        from hwcheck.dataset import analyze_dataset

        analysis = analyze_dataset(model, data, args.dt, input_shape=input_shape, processes=processes,
                                   progress=False if args.quiet else None)
        data = None
    rep = make_report(
        model,
        args.chip,
        data,
        analysis=analysis,
        input_shape=input_shape,
        dt=args.dt,
        name=args.name,
        overrides=parse_set(args.set),
        progress=False if args.quiet else None,
        notes=notes,
        layout=getattr(args, "layout", None),
        data_layout="BT",
    )
    print(rep.verdict())
    if not args.quiet:
        print()
        _print_layers(rep)
        if len(rep.violations):
            print("\nviolations:")
            _print_violations(rep)
        _print_unknown_energy(rep)
    if out_dir is not None:
        out = rep.save(out_dir, formats)
        if not args.quiet:
            print(f"\nreport written to {out}/")
    if "all" in (args.chip or []):
        # "which chip can take it?": success when at least one neuromorphic chip fits (the dense
        # CPU/GPU/ARM baselines take any model and answer nothing)
        return EXIT_FITS if any(r.fit.fits and r.fit.family != "dense" for r in rep.results) else EXIT_NO_FIT
    return EXIT_FITS if rep.fits else EXIT_NO_FIT


def default_name(spec: str) -> str:
    """A report name from a model spec: ``path/mynet.py:net`` -> ``mynet-net``."""
    target, _, attr = spec.rpartition(":") if ":" in spec else (spec, "", "")
    stem = Path(target).stem if target.endswith((".py", ".pt", ".pth", ".nir")) else target.rsplit(".", 1)[-1]
    name = "-".join(p for p in (stem, attr) if p)
    name = re.sub(r"[^A-Za-z0-9_.-]+", "_", name).lstrip(".") or "report"
    return name


def _input_shape(args: argparse.Namespace, model: Any, events: Any) -> tuple[int, ...]:
    """``--input-shape``, or the trailing dims of ``--data`` as many as the model's first layer
    takes (Linear: 1, Conv2d: 3)."""
    if args.input_shape is not None:
        return parse_shape(args.input_shape)
    if getattr(model, "nir_nodes", None) is not None:  # a NIR file says its input shape
        return tuple(model.input_shape)
    if events is None:
        raise UsageError("--input-shape is needed without --data (one sample at one step, e.g. 2,128,128)")
    from hwcheck.timing import feature_rank

    rank = feature_rank(model)
    if rank is None:
        raise UsageError("give --input-shape: the model's first layer does not say how many "
                         f"of the dims of --data {tuple(events.shape)} are one sample")
    if events.dim() < rank + 1:
        raise UsageError(f"--data has shape {tuple(events.shape)}: expected (T, ...) or (B, T, ...) "
                         f"with {rank} feature dim(s) for this model")
    return tuple(int(d) for d in events.shape[-rank:])


def _nir_model(model: Any, args: argparse.Namespace) -> Any:
    """A NIR graph read by :func:`load_model` as a model: taus at ``--dt``, ``--nir-convention``."""
    from hwcheck.nir_import import NIRError, NIRModel, from_nir, is_nir_source

    if isinstance(model, NIRModel) or not is_nir_source(model):
        return model
    shape = parse_shape(args.input_shape) if args.input_shape is not None else None
    try:
        return from_nir(model, args.dt, input_shape=shape, convention=getattr(args, "nir_convention", "nir"))
    except NIRError as exc:
        raise UsageError(f"{args.model}: {exc}") from exc


def _is_recordings(source: str) -> bool:
    from hwcheck.events import is_event_source

    return is_event_source(source)


def _recordings(args: argparse.Namespace, model: Any) -> tuple[Any, tuple[int, ...], list[str]]:
    """``--data`` naming event recordings (a file, folder or glob) as a streamed dataset."""
    from hwcheck.events import EventError, recordings, shape_from_recording

    try:
        shape = parse_shape(args.input_shape) if args.input_shape is not None else shape_from_recording(args.data)
        data = recordings(args.data, shape, args.dt)
    except (EventError, ImportError) as exc:
        raise UsageError(f"--data {args.data}: {exc}") from exc
    notes = [f"model: {args.model}", f"input: {len(data)} event recording(s) from {args.data}, binned to dt with Tonic's ToFrame"]
    return data, shape, notes


def cmd_check(args: argparse.Namespace) -> int:
    args.name = args.name if args.name is not None else default_name(args.model)
    if args.input_shape is not None:
        parse_shape(args.input_shape)  # a bad shape is named before the model is loaded
    model = _nir_model(load_model(args.model, args.trust_pickle), args)
    if args.data and _is_recordings(args.data):  # event recordings: binned at --dt, streamed
        return _run_report(args, model, *_recordings(args, model))
    events = load_data(args.data) if args.data else None
    input_shape = _input_shape(args, model, events)
    notes = [f"model: {args.model}"]
    if events is not None:
        data = batches_for(model, events, input_shape)
        notes.append(f"input: events from {args.data}")
    elif args.timesteps:
        data = synthetic(model, input_shape, args.timesteps, args.input_rate, args.dt, args.seed)
        notes.append(
            f"input: synthetic Poisson events, {args.input_rate:g} Hz per input, {args.timesteps} steps, seed {args.seed}"
        )
        if args.input_rate * args.dt > 1:
            msg = (
                f"input: {args.input_rate:g} Hz at dt {args.dt:g} s asks for more than one event per input and "
                f"step; the synthetic input saturates at one event per step ({1 / args.dt:g} Hz)"
            )
            notes.append(msg)
            print(f"hwcheck: warning: {msg}", file=sys.stderr)
    else:
        data = None
        notes.append("input: none (static check; give --data or --timesteps for energy and bandwidth)")
    return _run_report(args, model, data, input_shape, notes)


def cmd_demo(args: argparse.Namespace) -> int:
    from hwcheck.examples import INPUT_SHAPE, TIMESTEPS, dvs_gesture_cnn

    model = dvs_gesture_cnn()
    data = synthetic(model, INPUT_SHAPE, TIMESTEPS, args.input_rate, args.dt)
    notes = [
        "model: hwcheck.examples.dvs_gesture_cnn (random weights, seed 0)",
        f"input: synthetic Poisson events, {args.input_rate:g} Hz per pixel and polarity, {TIMESTEPS} steps, seed 0",
    ]
    args.chip = args.chip or ["speck2f", "cpu"]
    args.name = args.name or "demo"
    return _run_report(args, model, data, INPUT_SHAPE, notes)


def cmd_chips(args: argparse.Namespace) -> int:
    from hwcheck.profiles import list_profiles, load_profile

    names = list_profiles()
    if not names:
        from hwcheck.profiles import profile_dirs

        raise UsageError(
            "no chip profiles found in " + ", ".join(str(d) for d in profile_dirs())
            + " (is hwcheck installed with its package data?)"
        )
    print(f"{'name':<14} {'family':<10} {'energy/synop':>14}  {'static power':>14}  title")
    for name in names:
        p = load_profile(name)
        syn = p.energy.get("synop_pJ")
        st = p.energy.get("static_power_mW")
        syn_s = f"{syn.value:g} pJ" if syn else "unknown"
        st_s = f"{st.value:g} mW" if st else "unknown"
        print(f"{name:<14} {p.family:<10} {syn_s:>14}  {st_s:>14}  {p.title}")
    return EXIT_FITS


def cmd_chip(args: argparse.Namespace) -> int:
    from hwcheck.profiles import load_profile

    p = load_profile(args.name)
    print(f"{p.name}: {p.title}  (family {p.family}; file {p.path})")
    if p.description:
        print(textwrap.fill(p.description, 100))
    print(f"synaptic ops counted as: {p.synop_convention}; neuron updates: {p.neuron_update}")
    for section, fig in p.figures():
        rng = f" [{fig.low if fig.low is not None else fig.value:g} .. {fig.high if fig.high is not None else fig.value:g}]" if fig.is_range else ""
        print(f"\n  {section}.{fig.key} = {fig.value} {fig.unit}{rng}  ({fig.kind})")
        print(textwrap.fill(f"source: {fig.source}", 96, initial_indent="      ", subsequent_indent="      "))
        if fig.note:
            print(textwrap.fill(f"note: {fig.note}", 96, initial_indent="      ", subsequent_indent="      "))
    return EXIT_FITS


def cmd_calibrate(args: argparse.Namespace) -> int:
    from hwcheck.check import calibrate

    model = _nir_model(load_model(args.model, args.trust_pickle), args)
    events = load_data(args.data) if args.data else None
    input_shape = _input_shape(args, model, events)
    if events is not None:
        data = batches_for(model, events, input_shape)
    else:
        data = synthetic(model, input_shape, args.timesteps, args.input_rate, args.dt, args.seed)
    if (args.power_mW is None) == (args.energy_uJ is None):
        raise UsageError("give exactly one of --power-mW or --energy-uJ")
    try:
        prof, path = calibrate(
            model,
            data,
            args.chip,
            dt=args.dt,
            measured_power_mW=args.power_mW,
            measured_energy_uJ=args.energy_uJ,
            description=args.description,
            out_path=args.out,
            data_layout="BT",
        )
    except ValueError as exc:
        raise UsageError(str(exc)) from exc
    fig = prof.energy["synop_pJ"]
    print(f"energy.synop_pJ = {fig.value:.6g} pJ  ({fig.source})")
    print(f"calibrated profile written to {path}")
    return EXIT_FITS


# --------------------------------------------------------------------------- parser


def _add_nir_option(p: argparse.ArgumentParser) -> None:
    p.add_argument("--nir-convention", choices=("nir", "sinabs", "snntorch", "norse"), default="nir",
                   help="a .nir MODEL: how its equations are stepped (default nir: taus in seconds at --dt, "
                   "forward Euler); sinabs: taus in steps, exact decay, multi-spike; snntorch: dt 0.1 ms, "
                   "delayed reset; norse: reset to zero (see README, 'Checking a NIR file')")


def _add_run_options(p: argparse.ArgumentParser, chip_required: bool) -> None:
    p.add_argument("--chip", action="append", required=chip_required, metavar="NAME",
                   help="chip profile name or .toml path; repeat for a side-by-side summary; 'all' for every profile "
                   "(then exit 0 when at least one fits)")
    p.add_argument("--dt", type=parse_dt, default=1e-3, metavar="DURATION", help="time step, e.g. 1ms (default), 100us, 0.001")
    p.add_argument("--input-rate", type=parse_rate, default=200.0, metavar="HZ", help="synthetic input: events per second per input (default 200)")
    p.add_argument("--out", metavar="DIR", help="report folder (default reports/NAME)")
    p.add_argument("--format", default="csv,json,md,png,html",
                   help="report files: any of csv,json,md,png,html (default all)")
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                   help="override a profile figure, e.g. energy.synop_pJ=12 (repeatable)")
    p.add_argument("--no-save", action="store_true", help="print only, write no report files")
    p.add_argument("-q", "--quiet", action="store_true", help="print only the verdict; no progress bar")
    p.add_argument("--layout", choices=("(BT)", "BT", "TB", "B"),
                   help="how the model takes time (default: inferred): (BT) batch*time in dim 0 (sinabs "
                   "Squeeze), BT batch-first, TB time-first (SpikingJelly multi-step, loops over x[t]), "
                   "B one step per call (the time loop is run by hwcheck)")


def _version() -> str:
    from hwcheck import __version__

    return __version__


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="hwcheck",
        description="Check a spiking neural network against neuromorphic chips before deploying it: "
        "does it fit, where not and what to change, how much traffic it makes and how much energy it "
        "spends. Exit status: 0 fits every chip named, 1 does not fit, 2 usage or input error. Models: sinabs, snnTorch, SpikingJelly, Norse or plain torch (see --layout).",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog="examples:\n  hwcheck demo\n  hwcheck check hwcheck.examples:dvs_gesture_cnn --chip speck2f --input-shape 2,128,128 --timesteps 100\n"
        "  hwcheck chips\n  hwcheck chip speck2f",
    )
    parser.add_argument("--debug", action="store_true", help="show tracebacks on errors")
    parser.add_argument("--version", action="version", version=f"hwcheck {_version()}")
    parser.add_argument("--profiles", action="append", metavar="DIR", default=[],
                        help="a folder of chip profiles (*.toml) to add to the bundled ones; "
                        "repeatable; also $HWCHECK_PROFILES")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")

    p = sub.add_parser(
        "check",
        help="check a model against one or more chips and write a report",
        description="Check MODEL against chip profiles: fit (static), and with --data or --timesteps also "
        "activity, bandwidth and energy. MODEL is pkg.module:attr, path/to/file.py:attr (attr: a module or a "
        "factory; loading a .py file runs its code), or a pickled model (--trust-pickle). TorchScript "
        "files are refused: give the eager model.",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog="examples (the first runs as it is, on the bundled example model):\n"
        "  hwcheck check hwcheck.examples:dvs_gesture_cnn --chip speck2f --chip cpu --input-shape 2,128,128 "
        "--timesteps 100 --input-rate 200 --dt 1ms\n"
        "  hwcheck check mynet.py:net --chip all --input-shape 16 --data events.npy   (your file.py:attr)",
    )
    p.add_argument("model", help="pkg.module:attr, file.py:attr, a .nir file (NIR graph) or pickled model")
    _add_nir_option(p)
    p.add_argument("--input-shape", metavar="C,H,W",
                   help="one sample at one time step, e.g. 2,128,128 (default: from --data)")
    src = p.add_mutually_exclusive_group()
    src.add_argument("--data", metavar="FILE", help="events (.pt/.npy/.npz) laid out (T, ...) or (B, T, ...), or event "
                     "recordings (x, y, t, p): an .npy/.npz/.aedat4 file, a folder or a glob, binned at --dt")
    src.add_argument("--timesteps", type=parse_steps, metavar="T", help="synthetic Poisson input of T steps (seeded)")
    p.add_argument("--processes", type=parse_steps, default=1, metavar="N",
                   help="analyse event recordings in N local processes (gloo; the figures equal one process's)")
    p.add_argument("--seed", type=int, default=0, help="seed of the synthetic input (default 0)")
    p.add_argument("--name", default=None,
                   help="report name: folder reports/NAME (default: from the model, e.g. 'mynet-net' for mynet.py:net)")
    p.add_argument("--trust-pickle", action="store_true", help="allow torch.load of a pickled model (runs code from the file)")
    _add_run_options(p, chip_required=True)
    p.set_defaults(func=cmd_check)

    p = sub.add_parser(
        "demo",
        help="run the bundled example (DVS-gesture-size CNN) against speck2f and cpu",
        description="Analyse the bundled sinabs CNN (2x128x128 input, 100 steps of synthetic events) and check it "
        "against Speck 2f and a CPU; writes reports/demo/.",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog="example:\n  hwcheck demo\n  hwcheck demo --chip all --out /tmp/demo",
    )
    p.add_argument("--name", default="demo", help="report name (default 'demo')")
    _add_run_options(p, chip_required=False)
    p.set_defaults(func=cmd_demo)

    p = sub.add_parser("chips", help="list the chip profiles with their key figures",
                       description="List every chip profile found (bundled and $HWCHECK_PROFILES).",
                       epilog="example:\n  hwcheck chips", formatter_class=argparse.RawDescriptionHelpFormatter)
    p.set_defaults(func=cmd_chips)

    p = sub.add_parser("chip", help="show one chip profile with every source",
                       description="Show every figure of one profile with its unit, kind and source.",
                       epilog="example:\n  hwcheck chip speck2f", formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("name", help="profile name or .toml path")
    p.set_defaults(func=cmd_chip)

    p = sub.add_parser(
        "calibrate",
        help="fit a chip's energy per synop to your power measurement",
        description="Run MODEL on the data, then fit energy.synop_pJ so that the estimate reproduces your measured "
        "average power (or energy per inference); writes a user profile with the measurement as its source.",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog="example:\n  hwcheck calibrate hwcheck.examples:dvs_gesture_cnn --chip speck2f --input-shape 2,128,128 --timesteps 100 "
        "--power-mW 3.8 --out my-speck2f.toml --description 'devkit rails, gesture test set'",
    )
    p.add_argument("model")
    p.add_argument("--chip", required=True, help="profile to calibrate")
    p.add_argument("--input-shape", metavar="C,H,W", help="one sample at one time step (default: from --data)")
    src = p.add_mutually_exclusive_group()
    src.add_argument("--data", metavar="FILE")
    src.add_argument("--timesteps", type=parse_steps, default=100, metavar="T")
    p.add_argument("--input-rate", type=parse_rate, default=200.0, metavar="HZ")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--dt", type=parse_dt, default=1e-3, metavar="DURATION")
    p.add_argument("--power-mW", type=float, dest="power_mW", help="measured average power during inference")
    p.add_argument("--energy-uJ", type=float, dest="energy_uJ", help="measured energy per inference")
    p.add_argument("--description", default="user measurement", help="what was measured, how (goes into the source)")
    p.add_argument("--out", required=True, metavar="FILE.toml", help="where to write the calibrated profile")
    p.add_argument("--trust-pickle", action="store_true")
    _add_nir_option(p)
    p.set_defaults(func=cmd_calibrate)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        parser.print_help()
        return EXIT_ERROR
    for folder in args.profiles:
        if not Path(folder).is_dir():
            print(f"hwcheck: error: --profiles {folder}: not a folder", file=sys.stderr)
            return EXIT_ERROR
    if args.profiles:  # looked up before the bundled profiles, as $HWCHECK_PROFILES is
        old = os.environ.get("HWCHECK_PROFILES", "")
        os.environ["HWCHECK_PROFILES"] = os.pathsep.join([*args.profiles, *([old] if old else [])])
    try:
        return int(args.func(args))
    except KeyboardInterrupt:
        print("hwcheck: interrupted", file=sys.stderr)
        return EXIT_ERROR
    except Exception as exc:  # report input problems in one line
        if args.debug:
            import traceback

            traceback.print_exc()
            return EXIT_ERROR
        from hwcheck.graph import ModelError
        from hwcheck.profiles import ProfileError
        from hwcheck.safe_write import OutputError
        from hwcheck.timing import TimeError

        if isinstance(exc, (UsageError, ProfileError, FileNotFoundError, TimeError, ModelError, OutputError)):
            print(f"hwcheck: error: {exc}", file=sys.stderr)
        else:
            print(f"hwcheck: error: {type(exc).__name__}: {exc} (run with --debug for the traceback)", file=sys.stderr)
        return EXIT_ERROR


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
