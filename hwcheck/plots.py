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
        cores = cores[cores[util_cols].notna().any(axis=1)]
    if len(cores) and util_cols:
        if len(cores) > 48:  # many-core chips: the 48 fullest cores are what a reader needs
            key = cores[util_cols].max(axis=1)
            cores = cores.loc[key.sort_values(ascending=False).index[:48]]
        fig, ax = plt.subplots(figsize=(max(6.0, 0.25 * len(cores) + 3), 3.8))
        labels = [f"{r['chip']}:{r['core']}" for _, r in cores.iterrows()]
        width = 0.8 / len(util_cols)
        for i, col in enumerate(util_cols):
            vals = [0.0 if (isinstance(v, float) and math.isnan(v)) else float(v) for v in cores[col]]
            ax.bar([x + i * width for x in range(len(labels))], vals, width, label=col.replace("_util_pct", ""))
        ax.axhline(100, color="red", lw=1, ls="--")
        ax.set_xticks([x + width * (len(util_cols) - 1) / 2 for x in range(len(labels))])
        ax.set_xticklabels(labels, rotation=60, ha="right", fontsize=7)
        ax.set_ylabel("memory used (% of core)")
        ax.set_title("Core memory utilisation" + (" (48 fullest cores)" if len(cores) == 48 else ""))
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
            fig, ax = plt.subplots(figsize=(max(6.0, 0.6 * len(w) + 2), 3.8))
            xs = range(len(w))
            bw = 0.4
            ax.bar([x - bw / 2 for x in xs], w["synops"].clip(lower=1e-9), bw, color="tab:blue",
                   label="synops (every connection of each event)")
            ax.bar([x + bw / 2 for x in xs], w["synops_effective"].clip(lower=1e-9), bw, color="tab:orange",
                   label="synops_effective (nonzero weights only)")
            ax.set_yscale("log")
            ax.set_xticks(list(xs))
            ax.set_xticklabels([f"{i} ({t})" for i, t in zip(w.index, w["type"])], rotation=45, ha="right", fontsize=8)
            ax.set_ylabel("synaptic operations per inference (log)")
            ax.set_title("Synops per weight layer")
            fig.legend(fontsize=7, loc="lower center", ncol=2, frameon=False)
            fig.tight_layout(rect=(0, 0.07, 1, 1))
            path = directory / "layer_synops.png"
            fig.savefig(path, dpi=110)
            plt.close(fig)
            written.append(path)

    s = report.summary
    # a chip whose dynamic energy is unknown still has a known static part: show it as a lower
    # bound (hatched) instead of leaving the chip out
    total = s["energy_per_inference_uJ"]
    static = s["static_energy_uJ"] if "static_energy_uJ" in s else total * math.nan
    shown = s[total.notna() | (static.notna() & (static > 0))]
    if len(shown):
        fig, ax = plt.subplots(figsize=(max(6.0, 0.7 * len(shown) + 2), 3.8))
        for x, (_chip, r) in enumerate(shown.iterrows()):
            color = "tab:green" if r["fits"] else "tab:gray"
            if not math.isnan(r["energy_per_inference_uJ"]):
                ax.bar(x, r["energy_per_inference_uJ"], color=color)
                lo = r["energy_per_inference_uJ"] - r["energy_low_uJ"]
                hi = r["energy_high_uJ"] - r["energy_per_inference_uJ"]
                ax.errorbar(x, r["energy_per_inference_uJ"], yerr=[[lo], [hi]], fmt="none", color="k", capsize=3)
            else:
                ax.bar(x, r["static_energy_uJ"], color="white", edgecolor=color, hatch="//")
            ann = r.get("ann_energy_uJ", math.nan)
            if isinstance(ann, float) and not math.isnan(ann):
                ax.plot([x - 0.4, x + 0.4], [ann, ann], color="tab:purple", lw=2)
        ax.set_yscale("log")
        ax.set_xticks(range(len(shown)))
        ax.set_xticklabels(list(shown.index), rotation=30, ha="right")
        ax.set_ylabel("energy per inference (uJ, log)")
        ax.set_title("Energy per inference (green: fits; hatched: static only, dynamic unknown;\n"
                     "purple line: the ANN run once)", fontsize=9)
        fig.tight_layout()
        path = directory / "chip_energy.png"
        fig.savefig(path, dpi=110)
        plt.close(fig)
        written.append(path)
    return written
