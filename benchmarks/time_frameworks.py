"""What do hwcheck's time handling, stepped driving and state reset cost? (CPU)

Two snnTorch networks (700-256-256-20 Leaky neurons, batch 16, 100 time steps, 5 % input density):

* ``stepped``  -- an ``nn.Sequential`` with ``init_hidden=True``: one call per step. ``plain`` is
  the user's own loop (``snntorch.utils.reset`` then ``net(x[:, t])`` for every t);
* ``loop``     -- the snnTorch tutorial model whose ``forward()`` loops over ``x[step]`` of a
  ``(T, B, F)`` input. ``plain`` is one ``model(x)`` call.

For each, three ways run interleaved (round robin, rotated order, after a warm-up round), on
deep copies of one model, under ``torch.no_grad()``:

* ``plain``                    -- nothing attached;
* ``counter attached``         -- an :class:`hwcheck.ActivityCounter` attached around ``plain``;
* ``hwcheck.analyze(graph=g)`` -- one ``analyze`` call per batch: plans the batch, resets every
  state, drives the steps (stepped) or checks the loop's step count (loop), reads the counter out.

The table gives the median seconds per batch and the ratio to ``plain``; the difference between
``counter attached`` and ``analyze`` is what time handling and state reset cost.

Usage::

    python benchmarks/time_frameworks.py            # 15 rounds
    python benchmarks/time_frameworks.py --quick    # 3 rounds, 20 steps
"""

from __future__ import annotations

import argparse
import copy
import statistics
import time
from collections.abc import Callable

import pandas as pd
import snntorch as snn
import torch
from snntorch import utils as su
from torch import nn

import hwcheck

B, F, H1, H2, OUT = 16, 700, 256, 256, 20


def stepped_net() -> nn.Sequential:
    torch.manual_seed(0)
    return nn.Sequential(
        nn.Linear(F, H1), snn.Leaky(beta=0.9, init_hidden=True),
        nn.Linear(H1, H2), snn.Leaky(beta=0.9, init_hidden=True),
        nn.Linear(H2, OUT), snn.Leaky(beta=0.9, init_hidden=True),
    )  # fmt: skip


class LoopNet(nn.Module):
    def __init__(self, steps: int) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.steps = steps
        self.fc1, self.lif1 = nn.Linear(F, H1), snn.Leaky(beta=0.9)
        self.fc2, self.lif2 = nn.Linear(H1, H2), snn.Leaky(beta=0.9)
        self.fc3, self.lif3 = nn.Linear(H2, OUT), snn.Leaky(beta=0.9)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        m1, m2, m3 = self.lif1.reset_mem(), self.lif2.reset_mem(), self.lif3.reset_mem()
        out = []
        for step in range(self.steps):
            s1, m1 = self.lif1(self.fc1(x[step]), m1)
            s2, m2 = self.lif2(self.fc2(s1), m2)
            s3, m3 = self.lif3(self.fc3(s2), m3)
            out.append(s3)
        return torch.stack(out)


def workload(kind: str, steps: int) -> tuple[nn.Module, torch.Tensor, Callable[[nn.Module, torch.Tensor], None]]:
    g = torch.Generator().manual_seed(1)
    if kind == "stepped":
        x = (torch.rand(B, steps, F, generator=g) < 0.05).float()

        def plain(net: nn.Module, x: torch.Tensor) -> None:
            su.reset(net)
            for t in range(x.shape[1]):
                net(x[:, t])

        return stepped_net(), x, plain
    x = (torch.rand(steps, B, F, generator=g) < 0.05).float()
    return LoopNet(steps), x, lambda net, x: net(x)


def measure(kind: str, steps: int, rounds: int) -> pd.DataFrame:
    model, x, plain = workload(kind, steps)
    graph = hwcheck.describe(model, (F,), layout="TB" if kind == "loop" else None, timesteps=steps)
    nets = {name: copy.deepcopy(model) for name in ("plain", "counter attached", "hwcheck.analyze(graph=g)")}
    counter = hwcheck.ActivityCounter(nets["counter attached"], graph)
    counter.attach()
    runs: dict[str, Callable[[], None]] = {
        "plain": lambda: plain(nets["plain"], x),
        "counter attached": lambda: plain(nets["counter attached"], x),
        "hwcheck.analyze(graph=g)": lambda: hwcheck.analyze(
            nets["hwcheck.analyze(graph=g)"], x, graph=graph, progress=False
        ),
    }
    times: dict[str, list[float]] = {k: [] for k in runs}
    names = list(runs)
    with torch.no_grad():
        for r in range(rounds + 1):
            order = names[r % len(names) :] + names[: r % len(names)]
            for name in order:
                t0 = time.perf_counter()
                runs[name]()
                if r:  # round 0 warms up
                    times[name].append(time.perf_counter() - t0)
    counter.detach()
    base = statistics.median(times["plain"])
    return pd.DataFrame(
        [
            {"workload": kind, "way": k, "s_per_batch": statistics.median(v), "ratio_to_plain": statistics.median(v) / base}
            for k, v in times.items()
        ]
    )


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--quick", action="store_true", help="3 rounds, 20 steps")
    p.add_argument("--threads", type=int, default=1, help="torch threads (default 1)")
    args = p.parse_args(argv)
    torch.set_num_threads(args.threads)
    steps, rounds = (20, 3) if args.quick else (100, 15)
    table = pd.concat([measure(k, steps, rounds) for k in ("stepped", "loop")], ignore_index=True)
    print(f"hwcheck {hwcheck.__file__}; torch {torch.__version__}; {args.threads} thread(s); B={B}, T={steps}, {rounds} rounds")
    with pd.option_context("display.float_format", "{:.4g}".format, "display.width", 120):
        print(table.to_string(index=False))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
