"""Event recordings as data: ``(x, y, t, p)`` events binned to the model's time step.

DVS cameras give events, not frames. This module reads recordings -- structured numpy arrays
as Tonic uses them (fields ``x``, ``y``, ``t``, ``p``; ``t`` in microseconds), ``.npy`` /
``.npz`` event lists and AEDAT4 files (through the ``aedat`` decoder) -- and bins them with
Tonic's :class:`tonic.transforms.ToFrame` into frames ``(T, P, H, W)`` of one time step ``dt``
each. A folder or glob of recordings is a :class:`RecordingDataset`: a torch ``Dataset`` that
reads and bins one recording per item, so a whole dataset is streamed sample by sample in
bounded memory.

Tonic and aedat are optional (``pip install "hwcheck[datasets]"``) and imported only here, when
events are actually binned or decoded.
"""

from __future__ import annotations

import glob as _glob
import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

__all__ = [
    "EVENT_DTYPE",
    "EVENT_SUFFIXES",
    "RecordingDataset",
    "is_event_array",
    "is_event_source",
    "load_recording",
    "make_events",
    "recordings",
    "sensor_size_for",
    "synthetic_recording",
    "to_frames",
]

# Tonic's dtype for DVS events (``tonic.io.make_structured_array``): t in microseconds
EVENT_DTYPE = np.dtype([("x", "<i2"), ("y", "<i2"), ("t", "<i8"), ("p", "<i1")])
EVENT_SUFFIXES = (".npy", ".npz", ".aedat4", ".h5", ".hdf5")


class EventError(ValueError):
    """A recording that cannot be read or binned (the message names the file and why)."""


def _need_tonic() -> Any:
    try:
        import tonic.transforms as tt
    except ImportError as exc:  # pragma: no cover - exercised only without the extra
        raise ImportError(
            'binning event recordings needs Tonic: pip install "hwcheck[datasets]" (or pip install tonic)'
        ) from exc
    return tt


def make_events(x: Any, y: Any, t: Any, p: Any) -> np.ndarray:
    """A Tonic-style structured event array from four equal-length sequences (``t`` in us)."""
    x, y, t, p = (np.asarray(a) for a in (x, y, t, p))
    if not (len(x) == len(y) == len(t) == len(p)):
        raise EventError(f"x, y, t, p must have one length, got {len(x)}, {len(y)}, {len(t)}, {len(p)}")
    ev = np.empty(len(x), dtype=EVENT_DTYPE)
    ev["x"], ev["y"], ev["t"], ev["p"] = x, y, t, p
    return ev


def is_event_array(obj: Any) -> bool:
    """True for a structured numpy array with at least the fields ``x``, ``t`` and ``p``."""
    return isinstance(obj, np.ndarray) and obj.dtype.names is not None and {"x", "t", "p"} <= set(obj.dtype.names)


def _paths(source: str | Path | Sequence[str | Path]) -> list[Path]:
    """Recording files of a file, a folder (its event files, sorted) or a glob pattern."""
    if isinstance(source, (list, tuple)):
        return [p for s in source for p in _paths(s)]
    text = str(source)
    p = Path(text)
    if p.is_dir():
        files = sorted(f for f in p.iterdir() if f.is_file() and f.suffix in EVENT_SUFFIXES)
    elif p.is_file():
        files = [p]
    elif _glob.has_magic(text):
        files = sorted(Path(f) for f in _glob.glob(text, recursive=True) if Path(f).is_file())
    else:
        raise EventError(f"no recording at {text}: not a file, a folder or a glob pattern that matches")
    if not files:
        raise EventError(f"{text}: no recordings ({', '.join(EVENT_SUFFIXES)}) found")
    return files


def is_event_source(source: Any) -> bool:
    """True when ``source`` (a path, folder or glob) names event recordings rather than one dense
    tensor file: a folder, a glob, an ``.aedat4`` file, or an ``.npy``/``.npz`` holding events."""
    if not isinstance(source, (str, Path)):
        return False
    text = str(source)
    p = Path(text)
    if p.is_dir() or (not p.exists() and _glob.has_magic(text)):
        return True
    if p.suffix in (".aedat4", ".h5", ".hdf5"):
        return True
    if p.is_file() and p.suffix in (".npy", ".npz"):
        try:
            if p.suffix == ".npy":
                arr = np.load(p, mmap_mode="r", allow_pickle=False)
                return is_event_array(arr)
            with np.load(p, allow_pickle=False) as z:
                return {"x", "t", "p"} <= set(z.files) or any(is_event_array(z[k]) for k in z.files[:1])
        except Exception:
            return False
    return False


def load_recording(path: str | Path) -> np.ndarray:
    """One recording as a Tonic structured event array, sorted by time.

    ``.npy``: a structured array with fields x, y, t, p (or a plain ``(N, 4)`` array in that
    column order); ``.npz``: arrays ``x``, ``y``, ``t``, ``p`` (or one structured array);
    ``.aedat4``: the polarity events of the file (``aedat`` decoder; t in microseconds);
    ``.h5``/``.hdf5``: the first event list in the file, a structured dataset with fields x, y,
    t, p (e.g. ``events`` or ``CD/events``) or a group of datasets ``x``, ``y``, ``t``, ``p``.
    """
    p = Path(path)
    try:
        if p.suffix == ".aedat4":
            ev = _read_aedat4(p)
        elif p.suffix in (".h5", ".hdf5"):
            ev = _read_hdf5(p)
        elif p.suffix == ".npy":
            ev = _from_array(np.load(p, allow_pickle=False), p)
        elif p.suffix == ".npz":
            with np.load(p, allow_pickle=False) as z:
                if {"x", "t", "p"} <= set(z.files):
                    y = z["y"] if "y" in z.files else np.zeros(len(z["x"]), dtype=np.int16)
                    ev = make_events(z["x"], y, z["t"], z["p"])
                elif z.files:
                    ev = _from_array(z[z.files[0]], p)
                else:
                    raise EventError(f"{p}: the .npz archive holds no arrays")
        else:
            raise EventError(f"{p}: unknown recording type {p.suffix or '(none)'}; expected {', '.join(EVENT_SUFFIXES)}")
    except EventError:
        raise
    except Exception as exc:
        first = (str(exc).splitlines() or [type(exc).__name__])[0]
        raise EventError(f"cannot read recording {p}: {first}") from exc
    if len(ev) > 1 and np.any(np.diff(ev["t"]) < 0):
        ev = ev[np.argsort(ev["t"], kind="stable")]
    return ev


def _from_array(arr: np.ndarray, p: Path) -> np.ndarray:
    if is_event_array(arr):
        if "y" not in arr.dtype.names:
            return make_events(arr["x"], np.zeros(len(arr), dtype=np.int16), arr["t"], arr["p"])
        return make_events(arr["x"], arr["y"], arr["t"], arr["p"])
    if arr.ndim == 2 and arr.shape[1] == 4:
        return make_events(arr[:, 0], arr[:, 1], arr[:, 2], arr[:, 3])
    raise EventError(
        f"{p}: expected events (a structured array with fields x, y, t, p, or an (N, 4) array), "
        f"got an array of shape {arr.shape} and dtype {arr.dtype}"
    )


def _read_hdf5(p: Path) -> np.ndarray:
    import h5py

    found: list[np.ndarray] = []

    def visit(name: str, obj: Any) -> None:
        if found:
            return
        if isinstance(obj, h5py.Dataset) and obj.dtype.names and {"x", "t", "p"} <= set(obj.dtype.names):
            arr = obj[()]
            y = arr["y"] if "y" in obj.dtype.names else np.zeros(len(arr), dtype=np.int16)
            found.append(make_events(arr["x"], y, arr["t"], arr["p"]))
        elif isinstance(obj, h5py.Group) and {"x", "t", "p"} <= set(obj.keys()):
            y = obj["y"][()] if "y" in obj else np.zeros(len(obj["x"]), dtype=np.int16)
            found.append(make_events(obj["x"][()], y, obj["t"][()], obj["p"][()]))

    with h5py.File(p, "r") as f:
        visit("/", f)
        f.visititems(visit)
    if not found:
        raise EventError(f"{p}: no event list in the file (a dataset with fields x, y, t, p, or a group of x, y, t, p)")
    return found[0]


def _read_aedat4(p: Path) -> np.ndarray:
    try:
        import aedat
    except ImportError as exc:  # pragma: no cover - exercised only without the extra
        raise ImportError('reading AEDAT4 needs the aedat decoder: pip install "hwcheck[datasets]"') from exc
    parts = [packet["events"] for packet in aedat.Decoder(str(p)) if "events" in packet]
    if not parts:
        return np.empty(0, dtype=EVENT_DTYPE)
    ev = np.concatenate(parts)
    return make_events(ev["x"], ev["y"], ev["t"], ev["on"] if "on" in ev.dtype.names else ev["p"])


def sensor_size_for(input_shape: Sequence[int]) -> tuple[int, int, int]:
    """Tonic's ``sensor_size`` (W, H, P) for a model input of shape (P, H, W) (or (P, W))."""
    shape = tuple(int(s) for s in input_shape)
    if len(shape) == 3:
        return (shape[2], shape[1], shape[0])
    if len(shape) == 2:
        return (shape[1], 1, shape[0])
    raise EventError(f"event frames need a model input of (polarities, height, width); got {shape}")


def _window_us(dt: float, t_unit_s: float) -> float:
    w = dt / t_unit_s
    if not math.isfinite(w) or w <= 0:
        raise EventError(f"dt must be a time step in seconds > 0, got {dt!r}")
    r = round(w)
    return float(r) if r and abs(w - r) <= 1e-9 * r else w  # 1e-3 / 1e-6 is 1000.0000000000001


def to_frames(
    events: np.ndarray,
    sensor_size: tuple[int, int, int],
    dt: float,
    *,
    steps: int | None = None,
    t_unit_s: float = 1e-6,
) -> np.ndarray:
    """Bin one recording into frames ``(T, P, H, W)`` of ``dt`` seconds each (Tonic's ``ToFrame``).

    The first step starts at the first event; without ``steps`` the recording is covered to its
    last event (no event is dropped), with ``steps`` it is cut or zero-padded to that many steps.
    ``t_unit_s`` is the unit of the timestamps (Tonic: microseconds).
    """
    tt = _need_tonic()
    if not is_event_array(events):
        raise EventError("events must be a structured array with fields x, y, t, p (Tonic's layout)")
    w_, h_, p_ = sensor_size
    window = _window_us(dt, t_unit_s)
    if len(events) == 0:
        return np.zeros((steps or 1, p_, h_, w_), dtype=np.float32)
    p_max = 2 if p_ == 1 else p_  # a one-polarity sensor: Tonic folds p in {0, 1} into one channel
    bad = (events["x"] < 0) | (events["x"] >= w_) | (events["p"] < 0) | (events["p"] >= p_max)
    if "y" in events.dtype.names:
        bad |= (events["y"] < 0) | (events["y"] >= h_)
    if bad.any():
        i = int(np.argmax(bad))
        raise EventError(
            f"event {i} (x={events['x'][i]}, y={events['y'][i] if 'y' in events.dtype.names else 0}, "
            f"p={events['p'][i]}) lies outside the sensor (W, H, P) = {sensor_size}"
        )
    t0 = float(events["t"][0])
    n = steps
    if n is None:  # every event inside: the last one before the end of the last step
        n = int(math.floor((float(events["t"][-1]) - t0) / window)) + 1
        while t0 + n * window <= float(events["t"][-1]):
            n += 1
    frames = tt.ToFrame(
        sensor_size=tuple(sensor_size),
        time_window=window,
        include_incomplete=True,
        start_time=t0,
        end_time=t0 + n * window,
    )(events.copy())  # ToFrame may rewrite p for a one-polarity sensor
    frames = np.asarray(frames, dtype=np.float32)
    if frames.ndim == 3:  # a sensor without y: (T, P, W) -> (T, P, 1, W)
        frames = frames[:, :, None, :]
    if len(frames) < n:  # Tonic drops trailing empty windows in some versions
        frames = np.concatenate([frames, np.zeros((n - len(frames), *frames.shape[1:]), np.float32)])
    return frames[:n]


class RecordingDataset:
    """A torch-style ``Dataset`` of event recordings: item ``i`` is recording ``i`` binned to
    frames ``(T, P, H, W)`` (a float32 tensor), read from disk only when asked for.

    Args:
        source: a file, a folder (its ``.npy``/``.npz``/``.aedat4`` files, sorted), a glob
            pattern, or a list of these.
        input_shape: the model's input ``(P, H, W)``; it fixes the sensor size.
        dt: time step in seconds (one frame per step).
        steps: cut or pad every recording to this many steps (default: each its own length).
    """

    def __init__(
        self,
        source: str | Path | Sequence[str | Path],
        input_shape: Sequence[int],
        dt: float,
        *,
        steps: int | None = None,
        t_unit_s: float = 1e-6,
    ) -> None:
        self.files = _paths(source)
        self.input_shape = tuple(int(s) for s in input_shape)
        self.sensor_size = sensor_size_for(self.input_shape)
        self.dt = float(dt)
        self.steps = steps
        self.t_unit_s = t_unit_s

    def __len__(self) -> int:
        return len(self.files)

    def __getitem__(self, i: int) -> Any:
        import torch

        frames = to_frames(load_recording(self.files[i]), self.sensor_size, self.dt, steps=self.steps, t_unit_s=self.t_unit_s)
        return torch.from_numpy(frames).reshape(len(frames), *self.input_shape)

    def __repr__(self) -> str:
        return f"RecordingDataset({len(self)} recordings, sensor {self.sensor_size}, dt={self.dt:g} s)"


def recordings(source: Any, input_shape: Sequence[int], dt: float, *, steps: int | None = None) -> RecordingDataset:
    """The recordings at ``source`` (file, folder, glob or list) as a :class:`RecordingDataset`."""
    return RecordingDataset(source, input_shape, dt, steps=steps)


def shape_from_recording(source: Any) -> tuple[int, int, int]:
    """A model input shape ``(P, H, W)`` guessed from the first recording (its largest x, y, p)."""
    ev = load_recording(_paths(source)[0])
    if not len(ev):
        raise EventError(f"{source}: the first recording is empty; give --input-shape")
    p_ = max(int(ev["p"].max()) + 1, 2)
    return (p_, int(ev["y"].max()) + 1, int(ev["x"].max()) + 1)


def synthetic_recording(
    input_shape: Sequence[int] = (2, 32, 32),
    duration_s: float = 0.05,
    rate_hz: float = 100.0,
    seed: int = 0,
) -> np.ndarray:
    """A generated DVS recording (no download): Poisson events at ``rate_hz`` per pixel and
    polarity for ``duration_s`` seconds, uniform in time, t in microseconds, sorted."""
    p_, h_, w_ = (int(s) for s in input_shape)
    rng = np.random.default_rng(seed)
    n = int(rng.poisson(rate_hz * duration_s * p_ * h_ * w_))
    t = np.sort(rng.integers(0, int(duration_s * 1e6), n))
    return make_events(rng.integers(0, w_, n), rng.integers(0, h_, n), t, rng.integers(0, p_, n))
