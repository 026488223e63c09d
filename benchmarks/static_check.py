"""How long does a static fit check take? describe + DYNAP-CNN map of a DVS-size model (CPU).

The model: 9 chip layers (7 convs, 2 linears, sinabs ``IAFSqueeze`` neurons, sum pooling) on a
2 x 128 x 128 input, which fills all 9 Speck 2f cores. A static check is shapes only: one
``hwcheck.describe`` (a forward pass on a zero input, plus exact connectivity counts) and one
``map_dynapcnn`` (grouping, rules, memory, core matching, tables). Target: < 100 ms in total.
``describe`` is timed as a fresh trace; ``describe_cached`` is a repeated call on the unchanged
model, served from the graph cache.

Usage::

    python benchmarks/static_check.py            # 20 timed repeats after 2 warm-up runs
    python benchmarks/static_check.py --repeats 5
"""

from __future__ import annotations

import argparse
import platform
import statistics
import time
from collections import OrderedDict

import sinabs.layers as sl
import torch
import torch.nn as nn

from hwcheck.graph import describe
from hwcheck.mappers.dynapcnn import map_dynapcnn
from hwcheck.profiles import load_profile

TARGET_MS = 100.0
INPUT_SHAPE = (2, 128, 128)


def nine_layer_model() -> nn.Sequential:
    """9 chip layers that fill the 9 Speck cores (the same model as the tests)."""

    def iaf() -> nn.Module:
        return sl.IAFSqueeze(batch_size=1)

    layers = [
        ("c1", nn.Conv2d(2, 8, 2, stride=2, bias=False)), ("s1", iaf()),
        ("c2", nn.Conv2d(8, 16, 3, padding=1, bias=False)), ("s2", iaf()), ("p2", sl.SumPool2d(2)),
        ("c3", nn.Conv2d(16, 32, 3, padding=1, bias=False)), ("s3", iaf()),
        ("c4", nn.Conv2d(32, 32, 3, padding=1, bias=False)), ("s4", iaf()), ("p4", sl.SumPool2d(2)),
        ("c5", nn.Conv2d(32, 64, 3, padding=1, bias=False)), ("s5", iaf()),
        ("c6", nn.Conv2d(64, 64, 3, padding=1, bias=False)), ("s6", iaf()), ("p6", sl.SumPool2d(2)),
        ("c7", nn.Conv2d(64, 64, 3, padding=1, bias=False)), ("s7", iaf()), ("p7", sl.SumPool2d(2)),
        ("flat", nn.Flatten()),
        ("f8", nn.Linear(64 * 4 * 4, 16, bias=False)), ("s8", iaf()),
        ("f9", nn.Linear(16, 10, bias=False)), ("s9", iaf()),
    ]  # fmt: skip
    return nn.Sequential(OrderedDict(layers))


def run(repeats: int = 20, warmup: int = 2) -> dict[str, list[float]]:
    """Wall-clock milliseconds per stage, one entry per repeat."""
    model = nine_layer_model()
    profile = load_profile("speck2f")
    times: dict[str, list[float]] = {"describe": [], "map_dynapcnn": [], "total": [], "describe_cached": []}
    for i in range(warmup + repeats):
        t0 = time.perf_counter()
        graph = describe(model, INPUT_SHAPE, cache=False)  # a fresh trace, as on a first check
        t1 = time.perf_counter()
        report = map_dynapcnn(graph, profile)
        t2 = time.perf_counter()
        assert report.fits and report.summary["cores_used"] == 9, str(report)
        t3 = time.perf_counter()
        describe(model, INPUT_SHAPE)  # a repeated check of the unchanged model
        t4 = time.perf_counter()
        if i >= warmup:
            times["describe_cached"].append(1e3 * (t4 - t3))
            times["describe"].append(1e3 * (t1 - t0))
            times["map_dynapcnn"].append(1e3 * (t2 - t1))
            times["total"].append(1e3 * (t2 - t0))
    return times


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeats", type=int, default=20)
    ap.add_argument("--warmup", type=int, default=2)
    args = ap.parse_args()
    times = run(args.repeats, args.warmup)
    print(
        f"static check of a 9-layer {'x'.join(map(str, INPUT_SHAPE))} model on speck2f "
        f"({args.repeats} repeats after {args.warmup} warm-up; torch {torch.__version__}, "
        f"{torch.get_num_threads()} threads, {platform.processor() or platform.machine()})"
    )
    print(f"{'stage':<14}{'median_ms':>11}{'min_ms':>9}{'max_ms':>9}")
    for stage, ts in times.items():
        print(f"{stage:<14}{statistics.median(ts):>11.1f}{min(ts):>9.1f}{max(ts):>9.1f}")
    total = statistics.median(times["total"])
    verdict = "met" if total < TARGET_MS else "NOT met"
    print(f"target < {TARGET_MS:.0f} ms for describe + map (median): {verdict} ({total:.1f} ms)")


if __name__ == "__main__":
    main()
