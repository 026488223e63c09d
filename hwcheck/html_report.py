"""``report.html``: the whole report in one self-contained file (styles and plots inline), so a
CI artifact viewer or a browser opens it directly with nothing else to fetch."""

from __future__ import annotations

import base64
import html
import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pandas as pd

__all__ = ["render_html"]

#: Rows shown per table; longer tables point to their CSV file.
MAX_ROWS = 64

_STYLE = """
body { font-family: system-ui, -apple-system, "Segoe UI", sans-serif; margin: 2em auto;
       max-width: 1200px; padding: 0 1em; color: #1b1f24; line-height: 1.4; }
h1 { font-size: 1.6em; margin-bottom: 0.2em; }
h2 { font-size: 1.2em; margin-top: 1.8em; border-bottom: 1px solid #d0d7de; padding-bottom: 0.2em; }
pre.verdict { background: #f6f8fa; padding: 0.8em 1em; border-radius: 6px; overflow-x: auto; }
.fits { color: #1a7f37; font-weight: 600; }
.nofit { color: #cf222e; font-weight: 600; }
.scroll { overflow-x: auto; }
table { border-collapse: collapse; font-size: 0.85em; margin: 0.5em 0; }
th, td { border: 1px solid #d0d7de; padding: 0.25em 0.6em; text-align: right; white-space: nowrap; }
th { background: #f6f8fa; }
td.text, th.text { text-align: left; }
tr:nth-child(even) td { background: #fbfcfd; }
img { max-width: 100%; border: 1px solid #d0d7de; margin: 0.5em 0; }
ul.notes li { margin: 0.15em 0; }
.muted { color: #57606a; font-size: 0.9em; }
"""


def _cell(v: Any) -> str:
    if isinstance(v, float):
        return "-" if math.isnan(v) else f"{v:.4g}"
    if isinstance(v, bool):
        return "yes" if v else "no"
    return html.escape(str(v))


def _table(df: pd.DataFrame, csv: str | None = None) -> str:
    """A DataFrame as an HTML table (index included), at most MAX_ROWS rows."""
    df = df.reset_index() if df.index.name is not None or not isinstance(df.index, pd.RangeIndex) else df
    note = ""
    if len(df) > MAX_ROWS:
        where = f" (all of them in <code>{csv}</code>)" if csv else ""
        note = f'<p class="muted">The first {MAX_ROWS} of {len(df):,} rows{where}.</p>'
        df = df.head(MAX_ROWS)
    text_cols = {c for c in df.columns if df[c].dtype == object}
    head = "".join(
        f'<th class="{"text" if c in text_cols else ""}">{html.escape(str(c))}</th>' for c in df.columns
    )
    rows = []
    for rec in df.itertuples(index=False):
        cells = "".join(
            f'<td class="{"text" if c in text_cols else ""}">{_cell(v)}</td>'
            for c, v in zip(df.columns, rec, strict=True)
        )
        rows.append(f"<tr>{cells}</tr>")
    return f'{note}<div class="scroll"><table><thead><tr>{head}</tr></thead><tbody>{"".join(rows)}</tbody></table></div>'


def _image(path: Path, alt: str) -> str:
    data = base64.b64encode(path.read_bytes()).decode("ascii")
    return f'<img alt="{html.escape(alt)}" src="data:image/png;base64,{data}">'


def _badges(report: Any) -> str:
    """Which chips fit and which do not, at a glance."""
    fit = [r.fit.chip for r in report.results if r.fit.fits]
    bad = [r.fit.chip for r in report.results if not r.fit.fits]
    parts = []
    if fit:
        parts.append(f'<span class="fits">fits: {html.escape(", ".join(fit))}</span>')
    if bad:
        parts.append(f'<span class="nofit">does not fit: {html.escape(", ".join(bad))}</span>')
    return f"<p>{' &nbsp; '.join(parts)}</p>"


def render_html(report: Any, plots: Sequence[Path] = ()) -> str:
    """The report as one HTML page: verdict, summary, layers, violations, cores, bandwidth,
    the plots (embedded), and every note and source."""
    out = [
        "<!DOCTYPE html>",
        '<html lang="en"><head><meta charset="utf-8">',
        f"<title>hwcheck report: {html.escape(report.name)}</title>",
        f"<style>{_STYLE}</style></head><body>",
        f"<h1>hwcheck report: {html.escape(report.name)}</h1>",
        _badges(report),
        "<h2>Verdict</h2>",
        f'<pre class="verdict">{html.escape(report.verdict())}</pre>',
        "<h2>Summary (one row per chip)</h2>",
        _table(report.summary, "summary.csv"),
    ]
    if report.analysis is not None:
        s = report.analysis.summary().to_frame("value")
        s.index.name = "figure"
        out += ["<h2>Model totals (per inference)</h2>", _table(s)]
    layers = report.layers
    if len(layers):
        title = "Layers" if report.analysis is not None else "Layers (static: shapes and counts, no data)"
        out += [f"<h2>{title}</h2>", _table(layers, "layers.csv")]
    v = report.violations
    out += ["<h2>Violations</h2>", _table(v, "violations.csv") if len(v) else "<p>None.</p>"]
    for r in report.results:
        c = r.fit.cores
        if len(c):
            if "utilisation_pct" in c and len(c) > MAX_ROWS:
                c = c.sort_values("utilisation_pct", ascending=False, kind="stable")
                out.append(f"<h2>Cores: {html.escape(r.fit.chip)} (fullest first)</h2>")
            else:
                out.append(f"<h2>Cores: {html.escape(r.fit.chip)}</h2>")
            out.append(_table(c, "cores.csv"))
    b = report.bandwidth_checked
    if len(b):
        out += ["<h2>Bandwidth (against published limits)</h2>", _table(b, "bandwidth.csv")]
    if plots:
        out.append("<h2>Plots</h2>")
        out += [_image(p, p.stem.replace("_", " ")) for p in plots]
    out += ["<h2>Assumptions and sources</h2>", '<ul class="notes">']
    for line in report.note_lines():
        out.append(f"<li>{html.escape(line)}</li>")
    out += ["</ul>", "</body></html>"]
    return "\n".join(x for x in out if x)
