"""Analysing a dataset: samples per second on 1 vs 2 processes, and memory vs samples.

The dataset is a folder of generated DVS recordings (``hwcheck.events.synthetic_recording``:
Poisson events, 2x64x64 sensor, 100 ms at 1 ms steps, 60 Hz per pixel and polarity), saved
as ``.npy`` event lists; the model is ``hwcheck.examples.dvs_gesture_cnn`` shrunk to 2x64x64
input. Every sample is read, binned with Tonic's ``ToFrame`` and analysed one at a time
(:func:`hwcheck.analyze_dataset`).

* **Throughput**: the same N recordings on 1 process and on 2 local processes (gloo,
  ``processes=2``, each with half the CPU threads); wall time includes spawning the workers.
* **Memory**: a fresh subprocess per sample count (``--child N``) reports its peak resident
  memory above the resident memory after one warm-up sample; flat means bounded by one sample.

Usage::

    python benchmarks/dataset.py            # 16 recordings; memory at 4, 16, 64 samples
    python benchmarks/dataset.py --quick    # 4 recordings; memory at 2, 8
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

SHAPE = (2, 64, 64)
DT = 1e-3


def make_dataset(folder: Path, n: int) -> None:
    from hwcheck.events import synthetic_recording

    for i in range(n):
        np.save(folder / f"rec{i:04d}.npy", synthetic_recording(SHAPE, 0.1, 60.0, seed=i))


def model():
    import torch
    from torch import nn

    from hwcheck.examples import dvs_gesture_cnn

    net = dvs_gesture_cnn()
    net[13] = nn.Linear(64 * 2 * 2, 32, bias=False)  # 64x64 input: 64x2x2 before the Linear
    with torch.no_grad():
        net[13].weight.normal_(0, 0.1, generator=torch.Generator().manual_seed(0))
    return net


def child(n: int) -> None:
    """Peak RSS growth (MiB) over analysing n recordings after a warm-up of one."""
    import hwcheck

    with tempfile.TemporaryDirectory() as tmp:
        make_dataset(Path(tmp), n)
        net = model()
        hwcheck.analyze_dataset(net, str(Path(tmp) / "rec0000.npy"), DT, input_shape=SHAPE, progress=False)
        base = _rss_mib()
        try:
            Path("/proc/self/clear_refs").write_text("5")  # reset the high-water mark (Linux)
        except OSError:
            pass
        hwcheck.analyze_dataset(net, tmp, DT, input_shape=SHAPE, progress=False)
        print(json.dumps({"samples": n, "peak_growth_MiB": _peak_mib() - base}))


def _rss_mib() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def _peak_mib() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--child", type=int)
    args = ap.parse_args()
    if args.child is not None:
        child(args.child)
        return
    import pandas as pd

    import hwcheck

    n = 4 if args.quick else 16
    sizes = (2, 8) if args.quick else (4, 16, 64)
    with tempfile.TemporaryDirectory() as tmp:
        make_dataset(Path(tmp), n)
        net = model()
        rows = []
        results = {}
        for procs in (1, 2):
            t0 = time.perf_counter()
            results[procs] = hwcheck.analyze_dataset(net, tmp, DT, input_shape=SHAPE, processes=procs, progress=False)
            wall = time.perf_counter() - t0
            rows.append({"processes": procs, "samples": n, "wall_s": wall, "samples_per_s": n / wall})
        same = results[1].layers.equals(results[2].layers)
        print(pd.DataFrame(rows).to_string(index=False, float_format="{:.3g}".format))
        print(f"figures of 1 and 2 processes identical: {same}")
    mem = []
    for k in sizes:
        out = subprocess.run([sys.executable, __file__, "--child", str(k)], capture_output=True, text=True, check=True)
        mem.append(json.loads(out.stdout.strip().splitlines()[-1]))
    print(pd.DataFrame(mem).to_string(index=False, float_format="{:.1f}".format))


if __name__ == "__main__":
    main()
