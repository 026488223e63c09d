"""PNG plots for reports: core memory use per core, synops per layer, energy per chip."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

__all__ = ["save_plots"]


def _plt() -> Any:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def save_plots(report: Any, directory: Path) -> list[Path]:
    """Write the plots that have data; returns the files written."""
    plt = _plt()
    written: list[Path] = []

    cores = report.cores
    util_cols = [c for c in cores.columns if c.endswith("util_pct")]
    if len(cores) and util_cols:
        fig, ax = plt.subplots(figsize=(8, 3.5))
        labels = [f"{r['chip']}:{r['core']}" for _, r in cores.iterrows()]
        width = 0.8 / len(util_cols)
        for i, col in enumerate(util_cols):
            vals = [0.0 if (isinstance(v, float) and math.isnan(v)) else float(v) for v in cores[col]]
            ax.bar([x + i * width for x in range(len(labels))], vals, width, label=col.replace("_util_pct", ""))
        ax.axhline(100, color="red", lw=1, ls="--")
        ax.set_xticks([x + width * (len(util_cols) - 1) / 2 for x in range(len(labels))])
        ax.set_xticklabels(labels, rotation=60, ha="right", fontsize=7)
        ax.set_ylabel("memory used (% of core)")
        ax.set_title("Core memory utilisation")
        ax.legend(fontsize=7)
        fig.tight_layout()
        path = directory / "core_utilisation.png"
        fig.savefig(path, dpi=110)
        plt.close(fig)
        written.append(path)

    if report.analysis is not None:
        df = report.analysis.layers
        w = df[df["kind"].isin(["conv", "linear"])]
        if len(w):
            fig, ax = plt.subplots(figsize=(7, 3.5))
            ax.bar(range(len(w)), w["synops"], label="synops (event-driven)")
            ax.bar(range(len(w)), w["synops_effective"], alpha=0.6, label="synops_effective (nonzero weights)")
            ax.set_xticks(range(len(w)))
            ax.set_xticklabels([str(i) for i in w.index], rotation=45, ha="right", fontsize=8)
            ax.set_ylabel("synaptic operations per inference")
            ax.set_title("Synops per layer")
            ax.legend(fontsize=7)
            fig.tight_layout()
            path = directory / "layer_synops.png"
            fig.savefig(path, dpi=110)
            plt.close(fig)
            written.append(path)

    s = report.summary
    known = s[s["energy_per_inference_uJ"].notna()]
    if len(known):
        fig, ax = plt.subplots(figsize=(7, 3.5))
        ax.bar(range(len(known)), known["energy_per_inference_uJ"], color=["tab:green" if f else "tab:gray" for f in known["fits"]])
        lo = known["energy_per_inference_uJ"] - known["energy_low_uJ"]
        hi = known["energy_high_uJ"] - known["energy_per_inference_uJ"]
        ax.errorbar(range(len(known)), known["energy_per_inference_uJ"], yerr=[lo, hi], fmt="none", color="k", capsize=3)
        ax.set_yscale("log")
        ax.set_xticks(range(len(known)))
        ax.set_xticklabels(list(known.index), rotation=30, ha="right")
        ax.set_ylabel("energy per inference (uJ, log)")
        ax.set_title("Energy per inference by chip (green: fits; unknown omitted)")
        fig.tight_layout()
        path = directory / "chip_energy.png"
        fig.savefig(path, dpi=110)
        plt.close(fig)
        written.append(path)
    return written
