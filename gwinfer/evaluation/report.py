"""A one-page HTML report: the error table (with the paper's row) and the figures."""

from __future__ import annotations

import html
import json
from pathlib import Path
from typing import Any

from gwinfer.evaluation.quantiles import PAPER_TABLE, QUANTITIES, format_table
from gwinfer.provenance import atomic_path


def _table_html(results: dict[str, Any], reference: dict[str, Any] | None) -> str:
    """The error table as HTML: one row per quantity and source (this run, then the paper's)."""
    cols = ("min", "q1", "median", "q3", "max")
    rows = ["<tr><th>quantity</th><th>source</th>" + "".join(f"<th>{c}</th>" for c in cols) + "</tr>"]
    for q in QUANTITIES:
        for source, table in (("gwinfer", results["table"]), ("paper", (reference or {}).get("table"))):
            if table and q in table:
                label = q if q == "overlap" else f"&Delta; {q}"
                rows.append(
                    f"<tr><td>{label}</td><td>{source}</td>"
                    + "".join(f"<td>{table[q][c]:.4f}</td>" for c in cols)
                    + "</tr>"
                )
    return "<table>" + "".join(rows) + "</table>"


def write_report(
    out_dir: str | Path, results: dict[str, Any], figures: list[Path], title: str = "gwinfer evaluation"
) -> Path:
    """Write ``out_dir/index.html`` (and ``table.md``) from results.json content and figure files."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    frac = results.get("overlap_fraction_below", {})
    ref = PAPER_TABLE
    ref_frac = ref.get("overlap_fraction_below", {})
    frac_rows = "".join(
        f"<tr><td>overlap {'<' if k == '0.85' else '&le;'} {k}</td><td>{v:.2%}</td>"
        f"<td>{ref_frac.get(k, float('nan')):.2%}</td></tr>"
        for k, v in frac.items()
    )
    prov = html.escape(json.dumps(results.get("provenance", {}), indent=1, default=str)[:6000])
    figs = "".join(
        f'<figure><img src="{p.name}" style="max-width:100%"><figcaption>{p.stem}</figcaption></figure>'
        for p in figures
    )
    page = f"""<!doctype html><html><head><meta charset="utf-8"><title>{html.escape(title)}</title>
<style>body{{font-family:sans-serif;max-width:1200px;margin:auto}} table{{border-collapse:collapse}}
td,th{{border:1px solid #ccc;padding:3px 8px;text-align:right}}</style></head><body>
<h1>{html.escape(title)}</h1>
<p>n = {results.get("n")} test waveforms; errors are prediction &minus; truth; overlaps over the catalogue's full window.</p>
{_table_html(results, ref)}
<h2>Fraction of low overlaps</h2><table><tr><th></th><th>gwinfer</th><th>paper</th></tr>{frac_rows}</table>
{figs}
<h2>Provenance</h2><pre>{prov}</pre></body></html>"""
    with atomic_path(out / "index.html") as tmp:
        tmp.write_text(page)
    with atomic_path(out / "table.md") as tmp:
        tmp.write_text(format_table(results, reference=ref) + "\n")
    return out / "index.html"
