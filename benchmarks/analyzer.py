"""What does counting activity cost? hwcheck vs sinabs on a DVS-size CNN (CPU).

A 9-weight-layer sinabs CNN (``IAFSqueeze``, batch 4, 100 time steps, 2x128x128 input of
Bernoulli events) runs one batch at a time in five ways:

* ``plain``               -- ``model(x)`` under ``torch.no_grad()``, nothing attached;
* ``hwcheck``             -- an :class:`hwcheck.ActivityCounter` attached (steady state: the layer
                             graph and counter are built once, outside the timed region);
* ``hwcheck.analyze``     -- one ``hwcheck.analyze(model, x, graph=g)`` call per batch (counter
                             construction and read-out included in every call);
* ``sinabs.SNNAnalyzer``  -- ``sinabs.synopcounter.SNNAnalyzer`` attached (deprecated in sinabs);
* ``sinabs.hooks``        -- ``sinabs.hooks.register_synops_hooks`` + ``firing_rate_hook`` on every
                             spiking layer, per-batch values summed into running totals.

Every timed step resets the neuron states and runs one forward pass (plus, for sinabs.hooks,
the bookkeeping a user needs to keep totals over batches, since its hooks overwrite their values
on every pass). Variants run interleaved (round robin, rotated order, after a warm-up round) on
separate deep copies of one model, so no variant's hooks touch another's pass.

Memory: each variant runs 1 and N batches in a fresh subprocess
(``python benchmarks/analyzer.py --child VARIANT N``) that reports its peak resident memory above
the resident memory just before its first batch (the kernel's high-water mark is reset there
through ``/proc/self/clear_refs`` where Linux allows it). The input batch is refilled in place, as
a data loader with a reused buffer would, so 1 and N batches hold the same input memory.

Usage::

    python benchmarks/analyzer.py             # full run (20 timed rounds, 1 vs 20 batches)
    python benchmarks/analyzer.py --quick     # 20 time steps, 3 rounds, 1 vs 5 batches
    python benchmarks/analyzer.py --suite     # the workload table (see below)
    python benchmarks/analyzer.py --suite --quick   # the same, smaller (5 rounds, no T = 100)

``--suite`` times, on one torch thread, 7 workloads (a Squeeze CNN at T = 5, 20, 100, four times
wider, 10 batches in one call, as an ANN with ReLU at B = 16, and a LIF 700-256-256-20 MLP) in
six ways: a plain forward, ``hwcheck.analyze(model, x)`` (graph from the trace cache), the same
with ``graph=`` prebuilt, an attached ``ActivityCounter``, sinabs' ``SNNAnalyzer`` and
``sinabs.hooks``, and prints each one's median ratio to the plain forward with the goals
(<= 1.25x at T = 5, <= 1.10x at T >= 20, never slower than SNNAnalyzer). ``--no-kernels`` runs
hwcheck on torch alone (``HWCHECK_KERNELS=0``: no compiled one-pass reductions).
"""

from __future__ import annotations

import argparse
import copy
import gc
import json
import os
import platform
import resource
import statistics
import subprocess
import sys
import time
import warnings
from collections.abc import Callable, Iterator
from datetime import date
from typing import Any

import pandas as pd
import torch
from torch import nn

BATCH = 4
STEPS = 100
INPUT_SHAPE = (2, 128, 128)
INPUT_P = 0.03  # probability of an event per pixel, polarity and time step
SEED = 0
# Per-layer weight gains (x N(0, 1/fan_in)), found by bisection on the seed-0 model so that every
# spiking layer fires at ~5 % of its neurons per time step (sparse, nonzero; a few multi-spikes).
GAINS = (2.41, 1.35, 0.63, 0.41, 1.55, 1.6, 0.42, 1.63, 1.7)

VARIANTS = ("plain", "hwcheck", "hwcheck.analyze", "sinabs.SNNAnalyzer", "sinabs.hooks")
TARGET_OVERHEAD_PCT = 10.0
MIB = 2**20


# --------------------------------------------------------------------------- model and data


def build_model(seed: int = SEED) -> nn.Sequential:
    """The benchmark CNN: 6 convs (with sum/avg pooling) + 3 linears, IAFSqueeze after each."""
    import sinabs.layers as sl

    def iaf() -> nn.Module:
        return sl.IAFSqueeze(batch_size=BATCH, min_v_mem=-1.0)

    model = nn.Sequential(
        nn.Conv2d(2, 8, 2, stride=2, bias=False), iaf(),  # 8x64x64
        nn.Conv2d(8, 16, 3, padding=1, bias=False), iaf(), sl.SumPool2d(2),  # 16x32x32
        nn.Conv2d(16, 16, 3, padding=1, bias=False), iaf(), sl.SumPool2d(2),  # 16x16x16
        nn.Conv2d(16, 32, 3, padding=1, bias=False), iaf(), nn.AvgPool2d(2),  # 32x8x8
        nn.Conv2d(32, 32, 3, padding=1, bias=False), iaf(),  # 32x8x8
        nn.Conv2d(32, 64, 3, padding=1, bias=False), iaf(), sl.SumPool2d(2),  # 64x4x4
        nn.Flatten(),
        nn.Linear(64 * 4 * 4, 256, bias=False), iaf(),
        nn.Linear(256, 128, bias=False), iaf(),
        nn.Linear(128, 10, bias=False), iaf(),
    )  # fmt: skip
    gen = torch.Generator().manual_seed(seed)
    weighted = [m for m in model if isinstance(m, (nn.Conv2d, nn.Linear))]
    assert len(weighted) == len(GAINS) == 9
    with torch.no_grad():
        for gain, m in zip(GAINS, weighted, strict=True):
            fan_in = m.weight[0].numel()
            m.weight.copy_(torch.randn(m.weight.shape, generator=gen) * gain / fan_in**0.5)
    return model.eval()


def new_batch(gen: torch.Generator, steps: int) -> torch.Tensor:
    """Bernoulli events, shape (batch*steps, 2, 128, 128): the IAFSqueeze layout."""
    return (torch.rand(BATCH * steps, *INPUT_SHAPE, generator=gen) < INPUT_P).float()


def refilled(n: int, steps: int, seed: int) -> Iterator[torch.Tensor]:
    """``n`` batches of fresh events in one reused buffer (constant input memory)."""
    gen = torch.Generator().manual_seed(seed)
    buf = torch.empty(BATCH * steps, *INPUT_SHAPE)
    for _ in range(n):
        buf.bernoulli_(INPUT_P, generator=gen)
        yield buf


def reset_states(model: nn.Module) -> None:
    import sinabs.layers as sl

    for m in model.modules():
        if isinstance(m, sl.StatefulLayer):
            m.reset_states()


# --------------------------------------------------------------------------- variants


class Runner:
    """One way of running the model: ``setup`` (one-off), ``step`` (per batch), ``readout``."""

    name = "plain"

    def __init__(self, model: nn.Module, steps: int) -> None:
        self.model = model
        self.steps = steps

    def setup(self) -> None:
        pass

    def step(self, x: torch.Tensor) -> None:
        reset_states(self.model)
        self.model(x)

    def run_many(self, batches: Iterator[torch.Tensor]) -> None:
        for x in batches:
            self.step(x)

    def readout(self) -> Any:
        return None


class HwcheckCounter(Runner):
    name = "hwcheck"

    def setup(self) -> None:
        import hwcheck

        self.graph = hwcheck.describe(self.model, INPUT_SHAPE)
        self.counter = hwcheck.ActivityCounter(self.model, self.graph, dt=1e-3)
        self.counter.attach()

    def readout(self) -> Any:
        return self.counter.analysis().summary()


class HwcheckAnalyze(Runner):
    name = "hwcheck.analyze"

    def setup(self) -> None:
        import hwcheck

        self.graph = hwcheck.describe(self.model, INPUT_SHAPE)
        self.result: Any = None

    def step(self, x: torch.Tensor) -> None:
        import hwcheck

        a = hwcheck.analyze(self.model, x, dt=1e-3, graph=self.graph, progress=False)
        self.result = a if self.result is None else self.result + a

    def run_many(self, batches: Iterator[torch.Tensor]) -> None:
        import hwcheck

        self.result = hwcheck.analyze(
            self.model, batches, dt=1e-3, graph=self.graph, progress=False
        )

    def readout(self) -> Any:
        return self.result.summary()


class SinabsAnalyzer(Runner):
    name = "sinabs.SNNAnalyzer"

    def setup(self) -> None:
        from sinabs.synopcounter import SNNAnalyzer

        with warnings.catch_warnings():
            warnings.simplefilter("ignore", DeprecationWarning)
            self.analyzer = SNNAnalyzer(self.model, dt=1.0)

    def readout(self) -> Any:
        return (
            self.analyzer.get_model_statistics(average=True),
            self.analyzer.get_layer_statistics(average=True),
        )


class SinabsHooks(Runner):
    name = "sinabs.hooks"

    def setup(self) -> None:
        import sinabs.layers as sl
        from sinabs import hooks

        hooks.register_synops_hooks(self.model, dt=1e-3)
        self.spiking = [m for m in self.model.modules() if isinstance(m, sl.StatefulLayer)]
        for m in self.spiking:
            m.register_forward_hook(hooks.firing_rate_hook)
        self.batches = 0
        self.synops: Any = 0.0
        self.rates: list[Any] = [0.0] * len(self.spiking)

    def step(self, x: torch.Tensor) -> None:
        super().step(x)
        # the hooks overwrite their values on every pass: keep running sums for data-set figures
        self.batches += 1
        self.synops = self.synops + self.model.hook_data["total_synops_per_timestep"]
        for i, m in enumerate(self.spiking):
            self.rates[i] = self.rates[i] + m.hook_data["firing_rate"]

    def readout(self) -> Any:
        n = max(self.batches, 1)
        return float(self.synops) / n, [float(r) / n for r in self.rates]


RUNNERS: dict[str, Callable[[nn.Module, int], Runner]] = {
    "plain": Runner,
    "hwcheck": HwcheckCounter,
    "hwcheck.analyze": HwcheckAnalyze,
    "sinabs.SNNAnalyzer": SinabsAnalyzer,
    "sinabs.hooks": SinabsHooks,
}


# --------------------------------------------------------------------------- timing


def timed(fn: Callable[[], Any]) -> tuple[float, Any]:
    t0 = time.perf_counter()
    out = fn()
    return time.perf_counter() - t0, out


def measure_time(steps: int, rounds: int) -> tuple[pd.DataFrame, Any]:
    """Per-batch wall time of every variant, interleaved round robin; plus one-off costs."""
    base = build_model()
    runners = {}
    setup_s = {}
    for name in VARIANTS:
        r = RUNNERS[name](copy.deepcopy(base), steps)
        setup_s[name], _ = timed(r.setup)
        runners[name] = r
    gen = torch.Generator().manual_seed(SEED + 1)
    times: dict[str, list[float]] = {n: [] for n in VARIANTS}
    with torch.no_grad():
        for k in range(rounds + 1):  # round 0 is the warm-up
            x = new_batch(gen, steps)
            order = VARIANTS[k % len(VARIANTS) :] + VARIANTS[: k % len(VARIANTS)]
            for name in order:
                gc.collect()
                dt, _ = timed(lambda r=runners[name], x=x: r.step(x))
                if k > 0:
                    times[name].append(dt)
            del x
        readout_s = {}
        for name in VARIANTS:
            readout_s[name], out = timed(runners[name].readout)
            if name == "hwcheck":
                summary = out
    plain = statistics.median(times["plain"])
    rows = []
    for name in VARIANTS:
        med = statistics.median(times[name])
        rows.append(
            {
                "variant": name,
                "median_ms": med * 1e3,
                "min_ms": min(times[name]) * 1e3,
                "overhead_pct": (med / plain - 1) * 100,
                "setup_ms": setup_s[name] * 1e3,
                "readout_ms": readout_s[name] * 1e3,
            }
        )
    return pd.DataFrame(rows).set_index("variant"), summary


def describe_time(steps: int) -> float:
    """One-off cost of building the layer graph (median of 3 fresh traces, ms; a later call on
    the unchanged model is served from the graph cache)."""
    import hwcheck

    model = build_model()
    ts = [timed(lambda: hwcheck.describe(model, INPUT_SHAPE, cache=False))[0] for _ in range(3)]
    return statistics.median(ts) * 1e3


# --------------------------------------------------------------------------- memory


def _status_kib(key: str) -> int | None:
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith(key + ":"):
                    return int(line.split()[1])
    except OSError:
        pass
    return None


def _maxrss_kib() -> int:
    r = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return r // 1024 if sys.platform == "darwin" else r  # bytes on macOS, KiB on Linux


def child(variant: str, n_batches: int, steps: int) -> dict[str, Any]:
    """Run one variant over ``n_batches`` in this (fresh) process; report its peak memory."""
    model = build_model()
    with torch.no_grad():  # touch the library code a pass needs, so it is not counted as data
        model(torch.zeros(BATCH, *INPUT_SHAPE))
        reset_states(model)
    runner = RUNNERS[variant](model, steps)
    runner.setup()
    gc.collect()
    hwm_reset = False
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")  # reset the peak-RSS high-water mark to the current RSS
        hwm_reset = True
    except OSError:
        pass
    rss0 = _status_kib("VmRSS") or _maxrss_kib()
    t0 = time.perf_counter()
    with torch.no_grad():
        runner.run_many(refilled(n_batches, steps, SEED + 2))
        runner.readout()
    seconds = time.perf_counter() - t0
    gc.collect()
    peak = _maxrss_kib()
    rss1 = _status_kib("VmRSS") or peak
    return {
        "variant": variant,
        "batches": n_batches,
        "peak_MiB": (peak - rss0) / 1024,
        "retained_MiB": (rss1 - rss0) / 1024,
        "baseline_MiB": rss0 / 1024,
        "seconds": seconds,
        "hwm_reset": hwm_reset,
    }


def measure_memory(steps: int, n_batches: int, threads: int) -> pd.DataFrame:
    """Peak RSS above the pre-run baseline for 1 and ``n_batches`` batches, one process each."""
    results = []
    for variant in VARIANTS:
        for n in (1, n_batches):
            cmd = [
                sys.executable,
                os.path.abspath(__file__),
                "--child",
                variant,
                str(n),
                "--steps",
                str(steps),
                "--threads",
                str(threads),
            ]
            # glibc: return every freed block >= 64 KiB to the OS at once, so RSS follows live
            # tensors instead of allocator caching (no effect on other C libraries)
            env = {**os.environ, "MALLOC_MMAP_THRESHOLD_": "65536"}
            proc = subprocess.run(cmd, capture_output=True, text=True, check=False, env=env)
            if proc.returncode != 0:
                raise RuntimeError(f"child {variant} {n} failed:\n{proc.stderr[-3000:]}")
            results.append(json.loads(proc.stdout.strip().splitlines()[-1]))
    df = pd.DataFrame(results)
    if not df["hwm_reset"].all():
        print("note: could not reset the peak-RSS mark; peaks include model setup", file=sys.stderr)
    one = df[df["batches"] == 1].set_index("variant")
    many = df[df["batches"] == n_batches].set_index("variant")
    return pd.DataFrame(
        {
            "peak_MiB_1": one["peak_MiB"],
            f"peak_MiB_{n_batches}": many["peak_MiB"],
            f"growth_MiB_1_to_{n_batches}": many["peak_MiB"] - one["peak_MiB"],
            f"retained_MiB_{n_batches}": many["retained_MiB"],
        }
    ).loc[list(VARIANTS)]


# --------------------------------------------------------------------------- workload suite
#
# The issue-10 table: ratio of each way of counting to a plain forward pass, on workloads of
# several sizes. Each variant runs on its own deep copy of the workload's model; rounds are
# interleaved (rotated order, one warm-up round) and each round's time is divided by the same
# round's plain forward, so slow phases of a shared machine cancel; the table shows the median
# of those ratios. Times are process CPU time (one torch thread: the same as wall time on an idle
# machine, but not inflated by other processes on a busy one).

SUITE_P = 0.1  # input event density of the suite's workloads
SUITE_VARIANTS = ("plain", "hwcheck.analyze", "prebuilt graph", "counter attached",
                  "sinabs.SNNAnalyzer", "sinabs.hooks")  # fmt: skip
# goals for hwcheck.analyze(model, x): ratio to plain by time steps
SUITE_GOALS = {5: 1.25, 20: 1.10, 100: 1.10}


def _seeded(model: nn.Module, gain: float, seed: int = SEED) -> nn.Module:
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, (nn.Conv2d, nn.Linear)):
                m.weight.copy_(torch.randn(m.weight.shape, generator=gen) * gain / m.weight[0].numel() ** 0.5)
    return model.eval()


def squeeze_cnn(batch: int, width: int = 1, spiking: bool = True) -> nn.Module:
    """The suite's CNN: 2x128x128 input, 8-64 channels (x ``width``), 6 weight layers, sum/avg
    pools; ``IAFSqueeze`` after each weight layer, or ReLU (``spiking=False``)."""
    import sinabs.layers as sl

    def act() -> nn.Module:
        return sl.IAFSqueeze(batch_size=batch, min_v_mem=-1.0) if spiking else nn.ReLU()

    c = [8 * width, 16 * width, 32 * width, 64 * width]
    model = nn.Sequential(
        nn.Conv2d(2, c[0], 2, stride=2, bias=False), act(),  # c0 x 64 x 64
        nn.Conv2d(c[0], c[1], 3, padding=1, bias=False), act(), sl.SumPool2d(2),  # c1 x 32 x 32
        nn.Conv2d(c[1], c[2], 3, padding=1, bias=False), act(), sl.SumPool2d(2),  # c2 x 16 x 16
        nn.Conv2d(c[2], c[3], 3, padding=1, bias=False), act(), nn.AvgPool2d(2),  # c3 x 8 x 8
        nn.Flatten(), nn.Linear(c[3] * 64, 128, bias=False), act(), nn.Linear(128, 10, bias=False), act(),
    )  # fmt: skip
    return _seeded(model, 2.0)


def lif_mlp() -> nn.Module:
    """700-256-256-20 with sinabs LIF neurons, (batch, time, 700) input (SHD-like)."""
    import sinabs.layers as sl

    model = nn.Sequential(
        nn.Linear(700, 256, bias=False), sl.LIF(tau_mem=20.0),
        nn.Linear(256, 256, bias=False), sl.LIF(tau_mem=20.0),
        nn.Linear(256, 20, bias=False), sl.LIF(tau_mem=20.0),
    )  # fmt: skip
    return _seeded(model, 3.0)


def suite_workloads(quick: bool = False) -> dict[str, tuple[nn.Module, list[torch.Tensor], int | None]]:
    """name -> (model, batches of one call, time steps or None for an ANN)."""
    gen = torch.Generator().manual_seed(SEED + 3)

    def events(*shape: int) -> torch.Tensor:
        return (torch.rand(*shape, generator=gen) < SUITE_P).float()

    b = 2
    out: dict[str, tuple[nn.Module, list[torch.Tensor], int | None]] = {}
    for t in (5, 20) if quick else (5, 20, 100):
        out[f"T = {t}"] = (squeeze_cnn(b), [events(b * t, *INPUT_SHAPE)], t)
    out["width x4, T = 20"] = (squeeze_cnn(b, width=4), [events(b * 20, *INPUT_SHAPE)], 20)
    out["10 batches in one call, T = 20"] = (squeeze_cnn(b), [events(b * 20, *INPUT_SHAPE) for _ in range(10)], 20)
    analog = torch.rand(16, *INPUT_SHAPE, generator=gen) * events(16, *INPUT_SHAPE)
    out["ANN conv/relu B = 16"] = (squeeze_cnn(16, spiking=False), [analog], None)
    t = 20 if quick else 100
    out[f"LIF 700-256-256-20, T = {t}"] = (lif_mlp(), [events(b, t, 700)], t)
    return out


def suite_variants(model: nn.Module, batches: list[torch.Tensor]) -> dict[str, Callable[[], Any]]:
    """One callable per variant, each on its own copy of ``model``; every call covers all
    ``batches`` (resetting neuron states before each) and reads out what the variant counts."""
    import sinabs.layers as sl

    import hwcheck

    data: Any = batches[0] if len(batches) == 1 else batches
    spiking = any(isinstance(m, sl.StatefulLayer) for m in model.modules())

    def forward_all(m: nn.Module) -> None:
        for x in batches:
            reset_states(m)
            m(x)

    out: dict[str, Callable[[], Any]] = {}
    m_plain = copy.deepcopy(model)
    out["plain"] = lambda: forward_all(m_plain)
    m_an = copy.deepcopy(model)
    # an Analysis holds every figure (raw sums); its tables are presentation, not counting
    out["hwcheck.analyze"] = lambda: hwcheck.analyze(m_an, data, progress=False)
    m_g = copy.deepcopy(model)
    g = hwcheck.describe(m_g, tuple(batches[0].shape[-len(INPUT_SHAPE) :]) if batches[0].dim() == 4 else (700,))
    out["prebuilt graph"] = lambda: hwcheck.analyze(m_g, data, graph=g, progress=False)
    m_c = copy.deepcopy(model)
    counter = hwcheck.ActivityCounter(m_c, hwcheck.describe(m_c, g.input_shape), dt=1e-3)
    counter.attach()
    out["counter attached"] = lambda: forward_all(m_c)
    if spiking:
        from sinabs import hooks
        from sinabs.synopcounter import SNNAnalyzer

        m_s = copy.deepcopy(model)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", DeprecationWarning)
            analyzer = SNNAnalyzer(m_s, dt=1.0)

        def sinabs_analyzer() -> Any:
            forward_all(m_s)
            return analyzer.get_model_statistics(average=True)

        out["sinabs.SNNAnalyzer"] = sinabs_analyzer
        m_h = copy.deepcopy(model)
        hooks.register_synops_hooks(m_h, dt=1e-3)
        neurons = [m for m in m_h.modules() if isinstance(m, sl.StatefulLayer)]
        for m in neurons:
            m.register_forward_hook(hooks.firing_rate_hook)

        def sinabs_hooks() -> Any:
            total: Any = 0.0
            rates = [0.0] * len(neurons)
            for x in batches:  # the hooks overwrite their values: keep totals over batches
                reset_states(m_h)
                m_h(x)
                total = total + m_h.hook_data["total_synops_per_timestep"]
                rates = [r + float(m.hook_data["firing_rate"]) for r, m in zip(rates, neurons)]
            return float(total), rates

        out["sinabs.hooks"] = sinabs_hooks
    return out


def measure_suite(rounds: int, quick: bool = False) -> pd.DataFrame:
    """Median ratio to the plain forward pass of every variant on every workload."""
    rows = []
    for name, (model, batches, steps) in suite_workloads(quick).items():
        variants = suite_variants(model, batches)
        keys = list(variants)
        times: dict[str, list[float]] = {k: [] for k in keys}
        with torch.no_grad():
            for k in range(rounds + 1):  # round 0 is the warm-up
                for v in keys[k % len(keys) :] + keys[: k % len(keys)]:
                    gc.collect()
                    t0 = time.process_time()
                    variants[v]()
                    dt = time.process_time() - t0
                    if k > 0:
                        times[v].append(dt)
        row: dict[str, Any] = {"workload": name, "steps": steps, "plain_ms": statistics.median(times["plain"]) * 1e3}
        for v in SUITE_VARIANTS[1:]:
            row[v] = (
                statistics.median(a / p for a, p in zip(times[v], times["plain"])) if v in times else float("nan")
            )
        rows.append(row)
        print(f"# {name}: done", file=sys.stderr, flush=True)
    return pd.DataFrame(rows).set_index("workload")


def suite_verdicts(table: pd.DataFrame) -> list[str]:
    out = []
    for name, r in table.iterrows():
        hw = r["hwcheck.analyze"]
        steps = r["steps"]
        if steps is not None and not pd.isna(steps):
            goal = SUITE_GOALS.get(int(steps), SUITE_GOALS[20] if steps >= 20 else SUITE_GOALS[5])
            ok = hw <= goal
            out.append(f"[{'PASS' if ok else 'FAIL'}] {name}: hwcheck.analyze {hw:.2f}x plain (goal <= {goal:.2f})")
        sin = r["sinabs.SNNAnalyzer"]
        if not pd.isna(sin):
            ok = hw <= sin
            out.append(
                f"[{'PASS' if ok else 'FAIL'}] {name}: hwcheck.analyze {hw:.2f}x vs sinabs SNNAnalyzer {sin:.2f}x (goal: no slower)"
            )
    return out


# --------------------------------------------------------------------------- report


def verdicts(table: pd.DataFrame, n_batches: int | None) -> list[str]:
    out = []
    hw = table.loc["hwcheck"]
    ok = hw["overhead_pct"] <= TARGET_OVERHEAD_PCT
    out.append(
        f"[{'PASS' if ok else 'FAIL'}] hwcheck within {TARGET_OVERHEAD_PCT:.0f}% of the plain "
        f"forward: overhead {hw['overhead_pct']:+.1f}% (median {hw['median_ms']:.0f} ms vs "
        f"{table.loc['plain', 'median_ms']:.0f} ms)"
    )
    sin = table.loc[["sinabs.SNNAnalyzer", "sinabs.hooks"], "median_ms"]
    ok = bool((hw["median_ms"] <= sin).all())
    vs = ", ".join(f"{k} {v:.0f} ms" for k, v in sin.items())
    out.append(
        f"[{'PASS' if ok else 'FAIL'}] hwcheck no slower than sinabs: hwcheck {hw['median_ms']:.0f} ms; {vs}"
    )
    if n_batches is not None:
        g = f"growth_MiB_1_to_{n_batches}"
        growth = table.loc["hwcheck", g]
        peak1 = table.loc["hwcheck", "peak_MiB_1"]
        tol = max(16.0, 0.05 * peak1)  # allocator noise: 16 MiB or 5 % of the 1-batch peak
        ok = growth <= tol
        growth_a = table.loc["hwcheck.analyze", g]
        out.append(
            f"[{'PASS' if ok else 'FAIL'}] hwcheck memory flat in the number of batches: peak "
            f"{peak1:.0f} MiB (1 batch) -> {table.loc['hwcheck', f'peak_MiB_{n_batches}']:.0f} MiB "
            f"({n_batches}), growth {growth:+.0f} MiB (tolerance {tol:.0f}); hwcheck.analyze "
            f"streaming {n_batches} batches: growth {growth_a:+.0f} MiB"
        )
    return out


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--quick", action="store_true", help="20 time steps, 3 rounds, 1 vs 5 batches")
    p.add_argument(
        "--steps", type=int, default=None, help=f"time steps per sample (default {STEPS})"
    )
    p.add_argument("--repeats", type=int, default=None, help="timed rounds (default 20, quick 3)")
    p.add_argument(
        "--batches", type=int, default=None, help="batches for the memory run (default 20, quick 5)"
    )
    p.add_argument("--threads", type=int, default=None, help="torch threads (default: all cores)")
    p.add_argument("--no-memory", action="store_true", help="skip the memory subprocesses")
    p.add_argument(
        "--suite",
        action="store_true",
        help="the workload table: ratio to a plain forward of hwcheck.analyze (with and "
        "without a prebuilt graph), an attached counter and sinabs, on 7 workloads (1 torch thread)",
    )
    p.add_argument(
        "--no-kernels", action="store_true", help="hwcheck on torch alone (HWCHECK_KERNELS=0)"
    )
    p.add_argument("--child", nargs=2, metavar=("VARIANT", "N"), help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.no_kernels:
        os.environ["HWCHECK_KERNELS"] = "0"

    cores = (
        len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1
    )
    threads = args.threads or cores
    torch.set_num_threads(threads)
    steps = args.steps or (20 if args.quick else STEPS)

    if args.child:
        variant, n = args.child[0], int(args.child[1])
        if variant not in RUNNERS:
            p.error(f"unknown variant {variant!r}; one of {', '.join(VARIANTS)}")
        print(json.dumps(child(variant, n, steps)))
        return 0

    if args.suite:
        return run_suite(args)
    rounds = args.repeats or (3 if args.quick else 20)
    n_batches = args.batches or (5 if args.quick else 20)
    import sinabs

    import hwcheck

    where = os.path.dirname(os.path.dirname(os.path.abspath(hwcheck.__file__)))
    git = subprocess.run(
        ["git", "-C", where, "describe", "--always", "--dirty"],
        capture_output=True,
        text=True,
        check=False,
    )
    rev = f" (git {git.stdout.strip()})" if git.returncode == 0 and git.stdout.strip() else ""
    print(
        f"# hwcheck activity-counting benchmark, {date.today().isoformat()}\n"
        f"# machine: {platform.machine()} {platform.processor() or ''} {cores} cores, "
        f"{threads} torch threads; python {platform.python_version()}, torch {torch.__version__}, "
        f"sinabs {sinabs.__version__}\n"
        f"# hwcheck from {where}{rev}\n"
        f"# model: 9 weight layers (6 conv + 3 linear), IAFSqueeze; input {BATCH}x{steps} steps x "
        f"{'x'.join(map(str, INPUT_SHAPE))}, events p={INPUT_P}; {rounds} timed rounds after 1 warm-up"
    )
    load0 = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    t0 = time.perf_counter()
    table, summary = measure_time(steps, rounds)
    describe_ms = describe_time(steps)
    if not args.no_memory:
        table = table.join(measure_memory(steps, n_batches, threads))
    print(
        f"# activity per sample (hwcheck): input events {summary['input_events']:.0f}, spikes "
        f"{summary['spikes']:.0f}, firing rate {summary['firing_rate']:.4f} /neuron/step, "
        f"synops {summary['synops']:.3g}"
    )
    print(f"# hwcheck.describe (one-off, part of the hwcheck rows' setup_ms): {describe_ms:.1f} ms")
    print()
    with pd.option_context("display.width", 200, "display.max_columns", 20):
        print(table.to_string(float_format=lambda v: f"{v:,.1f}"))
    print()
    for line in verdicts(table, None if args.no_memory else n_batches):
        print(line)
    load1 = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    print(
        f"# total benchmark time {time.perf_counter() - t0:.0f} s; 1-min load average "
        f"{load0:.1f} at start, {load1:.1f} at end (above {cores} means other work shared the cores)"
    )
    return 0


def run_suite(args: argparse.Namespace) -> int:
    import sinabs

    from hwcheck import kernels

    torch.set_num_threads(args.threads or 1)
    rounds = args.repeats or (5 if args.quick else 21)
    print(
        f"# hwcheck activity counting: ratio to a plain forward pass, {date.today().isoformat()}\n"
        f"# machine: {platform.machine()} {platform.processor() or ''}, {torch.get_num_threads()} torch "
        f"thread(s); python {platform.python_version()}, torch {torch.__version__}, sinabs "
        f"{sinabs.__version__}; compiled kernels: {'on' if kernels.available() else 'off'}\n# median over {rounds} interleaved rounds of (variant / plain) process "
        f"time; Squeeze CNN 2x128x128, 8-64 channels, 6 weight layers, B = 2, {SUITE_P:.0%} input events"
    )
    load0 = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    table = measure_suite(rounds, quick=args.quick)
    print()
    with pd.option_context("display.width", 200, "display.max_columns", 20):
        print(table.drop(columns="steps").to_string(float_format=lambda v: f"{v:,.2f}", na_rep="-"))
    print()
    for line in suite_verdicts(table):
        print(line)
    load1 = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    print(f"# 1-min load average {load0:.1f} at start, {load1:.1f} at end")
    return 0


if __name__ == "__main__":
    sys.exit(main())
