"""How long does a static fit check take? (CPU, shapes only, no data.)

Part 1, DYNAP-CNN: describe + map of a DVS-size model. The model: 9 chip layers (7 convs, 2 linears, sinabs ``IAFSqueeze`` neurons, sum pooling) on a
2 x 128 x 128 input, which fills all 9 Speck 2f cores. A static check is shapes only: one
``hwcheck.describe`` (a forward pass on a zero input, plus exact connectivity counts) and one
``map_dynapcnn`` (grouping, rules, memory, core matching, tables). Target: < 100 ms in total.
``describe`` is timed as a fresh trace; ``describe_cached`` is a repeated call on the unchanged
model, served from the graph cache.

Part 2, many-core chips (``--many-core``, on by default): the time to partition large networks
onto Loihi (``map_neurocore`` after a ``describe``), each timed once after a warm-up on a smaller
net, and a static ``hwcheck.report(model, "all")`` of a 2-conv model with a 1100 x 64 x 64
layer (4.5 M neurons) against every bundled chip. Targets: <= 1 s to partition a 1 M-neuron
conv net and a 100 M-synapse MLP on Loihi; <= 10 s for the report on all chips.

Usage::

    python benchmarks/static_check.py            # both parts
    python benchmarks/static_check.py --repeats 5 --no-many-core
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
PARTITION_TARGET_S = 1.0
ALL_CHIPS_TARGET_S = 10.0


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


def _iaf() -> nn.Module:
    return sl.IAFSqueeze(batch_size=1)


def conv_stack(c_in: int, channels: int, layers: int, hw: int) -> tuple[nn.Module, tuple]:
    """``layers`` 3x3 convolutions (padding 1) of ``channels`` channels at ``hw x hw``."""
    mods: list[nn.Module] = []
    c = c_in
    for _ in range(layers):
        mods += [nn.Conv2d(c, channels, 3, padding=1, bias=False), _iaf()]
        c = channels
    return nn.Sequential(*mods), (c_in, hw, hw)


def mlp(n_in: int, width: int, layers: int) -> tuple[nn.Module, tuple]:
    mods: list[nn.Module] = []
    f = n_in
    for _ in range(layers):
        mods += [nn.Linear(f, width, bias=False), _iaf()]
        f = width
    return nn.Sequential(*mods), (n_in,)


def many_core_nets() -> dict[str, tuple[nn.Module, tuple]]:
    torch.manual_seed(0)
    return {
        "MLP 784-1000x10": mlp(784, 1000, 10),
        "MLP 256-10000-10000 (103 M synapses)": mlp(256, 10000, 2),
        "CNN 2x128x128, 16 ch x 4 (1.05 M neurons)": conv_stack(2, 16, 4, 128),
        "CNN 2x32x32, 64 ch x 12": conv_stack(2, 64, 12, 32),
        "CNN 2x32x32, 128 ch x 8": conv_stack(2, 128, 8, 32),
        "CNN 2x32x32, 128 ch x 16": conv_stack(2, 128, 16, 32),
    }


def run_many_core() -> list[dict[str, object]]:
    from hwcheck.mappers.neurocore import map_neurocore

    loihi = load_profile("loihi")
    warm, shape = conv_stack(2, 8, 2, 16)
    map_neurocore(describe(warm, shape, cache=False), loihi)
    rows = []
    for name, (model, shape) in many_core_nets().items():
        t0 = time.perf_counter()
        graph = describe(model, shape, cache=False)
        t1 = time.perf_counter()
        fit = map_neurocore(graph, loihi)
        t2 = time.perf_counter()
        rows.append(
            {
                "network": name,
                "neurons": fit.summary["neurons"],
                "synapses": fit.summary["synapses"],
                "cores": fit.summary["cores_used"],
                "describe_s": t1 - t0,
                "partition_s": t2 - t1,
            }
        )
    return rows


def run_all_chips() -> tuple[float, int]:
    import hwcheck

    model = nn.Sequential(
        nn.Conv2d(2, 1100, 3, padding=1, bias=False), _iaf(),
        nn.Conv2d(1100, 16, 3, padding=1, bias=False), _iaf(),
    )  # fmt: skip
    t0 = time.perf_counter()
    rep = hwcheck.report(model, "all", input_shape=(2, 64, 64), progress=False)
    return time.perf_counter() - t0, len(rep.summary)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeats", type=int, default=20)
    ap.add_argument("--warmup", type=int, default=2)
    ap.add_argument("--many-core", action=argparse.BooleanOptionalAction, default=True)
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
    if not args.many_core:
        return
    print()
    print("many-core partition on loihi (one run each, after a warm-up)")
    print(f"{'network':<44}{'neurons':>11}{'synapses':>14}{'cores':>8}{'describe_s':>12}{'partition_s':>13}")
    rows = run_many_core()
    for r in rows:
        print(
            f"{r['network']:<44}{r['neurons']:>11,}{r['synapses']:>14,}{r['cores']:>8,}"
            f"{r['describe_s']:>12.2f}{r['partition_s']:>13.2f}"
        )
    big = [r for r in rows if "M neurons" in str(r["network"]) or "M synapses" in str(r["network"])]
    worst = max(float(r["partition_s"]) for r in big)
    verdict = "met" if worst <= PARTITION_TARGET_S else "NOT met"
    print(f"target <= {PARTITION_TARGET_S:.0f} s to partition the 1 M-neuron / 100 M-synapse nets: {verdict} ({worst:.2f} s)")
    secs, n_chips = run_all_chips()
    verdict = "met" if secs <= ALL_CHIPS_TARGET_S else "NOT met"
    print(
        f"static report on all {n_chips} chips, 2-conv model with a 1100x64x64 layer: {secs:.1f} s "
        f"(target <= {ALL_CHIPS_TARGET_S:.0f} s: {verdict})"
    )


if __name__ == "__main__":
    main()
