"""PNG plots for reports: core use per chip, synops per layer, energy per chip."""

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

    path = _core_plot(plt, report, directory)
    if path is not None:
        written.append(path)

    if report.analysis is not None:
        df = report.analysis.layers
        w = df[df["kind"].isin(["conv", "linear"])]
        if len(w):
            fig, ax = plt.subplots(figsize=(max(6.0, 0.6 * len(w) + 2), 3.8))
            xs = range(len(w))
            differ = not w["synops"].equals(w["synops_effective"])
            bw = 0.4 if differ else 0.7
            ax.bar([x - bw / 2 if differ else x for x in xs], w["synops"].clip(lower=1e-9), bw,
                   color="tab:blue", label="synops (every connection of each event)"
                   + ("" if differ else "; with nonzero weights only the same"))
            if differ:
                ax.bar([x + bw / 2 for x in xs], w["synops_effective"].clip(lower=1e-9), bw,
                       color="tab:orange", label="synops_effective (nonzero weights only)")
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


#: Chips with more cores than this get a histogram of per-core use instead of one bar per core.
MAX_CORE_BARS = 48


def _core_plot(plt: Any, report: Any, directory: Path) -> Path | None:
    """One panel per chip: a bar per core and resource (few cores), or a histogram of the
    fullest resource of every core (many-core chips), with the over-limit cores counted."""
    panels = []
    for r in report.results:
        cores = r.fit.cores
        cols = [c for c in cores.columns if c.endswith("_pct") and c != "utilisation_pct"]
        if not len(cores) or not cols:
            continue
        vals = cores[cols].astype(float)
        used = vals.notna().any(axis=1) & (vals.fillna(0).max(axis=1) > 0)
        if used.any():
            panels.append((r.fit.chip, cores[used], vals[used], cols))
    if not panels:
        return None
    fig, axes = plt.subplots(len(panels), 1, figsize=(9.0, 2.9 * len(panels)), squeeze=False)
    for ax, (chip, cores, vals, cols) in zip(axes[:, 0], panels, strict=True):
        names = [c.removesuffix("_pct").removesuffix("_util") for c in cols]
        if len(cores) <= MAX_CORE_BARS:
            width = 0.8 / len(cols)
            for i, (col, name) in enumerate(zip(cols, names, strict=True)):
                xs = [x + i * width for x in range(len(cores))]
                ax.bar(xs, vals[col].fillna(0.0), width, label=name)
            ax.set_xticks([x + width * (len(cols) - 1) / 2 for x in range(len(cores))])
            labels = [str(i) for i in cores.index]
            ax.set_xticklabels(labels, fontsize=7, rotation=90 if len(cores) > 16 else 0)
            ax.set_xlabel("core")
            ax.set_ylabel("% of the core's limit")
            ax.axhline(100, color="red", lw=1, ls="--")
            ax.legend(fontsize=7, ncol=len(cols), loc="upper right")
            ax.set_title(f"{chip}: use of each core ({len(cores)} cores in use)", fontsize=9)
        else:
            worst = vals.max(axis=1, skipna=True)
            binding = vals.idxmax(axis=1, skipna=True).map(dict(zip(cols, names, strict=True)))
            bins = [*range(0, 101, 5), 103, 113]  # the last bin holds the cores over their limit
            over = int((worst > 100).sum())
            shown = worst.where(worst <= 100, 108.0)
            bottom = None
            for name in names:
                part = shown[binding == name]
                if len(part):
                    counts, edges, _ = ax.hist(part, bins=bins, label=f"{name} binds ({len(part):,})",
                                               bottom=bottom, alpha=0.9)
                    bottom = counts if bottom is None else bottom + counts
            ax.set_xticks([0, 20, 40, 60, 80, 100, 108])
            ax.set_xticklabels(["0", "20", "40", "60", "80", "100", ">100"])
            ax.set_xlabel("use of the fullest resource of a core (% of its limit)")
            ax.set_ylabel("cores")
            ax.legend(fontsize=7, loc="upper left")
            extra = f"; {over:,} over the limit" if over else ""
            ax.set_title(f"{chip}: {len(cores):,} cores in use, median {worst.median():.0f} % full{extra}",
                         fontsize=9)
    fig.tight_layout()
    path = directory / "core_utilisation.png"
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path
