"""Renderings of a :func:`~deepeft.diagnostics.diagnose` Dataset: a terminal table, JSON rows, an HTML page with spectra."""

from __future__ import annotations

import base64
import html
import io
import math

import numpy as np

__all__ = ["SERIES_COLUMNS", "TABLE_COLUMNS", "diagnosis_rows", "diagnosis_table", "diagnosis_html"]

TABLE_COLUMNS = (  # (variable, header, format)
    ("name", "layer", "{}"), ("n_out", "n_out", "{:d}"), ("n_in", "n_in", "{:d}"), ("C_W", "C_W", "{:.3f}"),
    ("C_b", "C_b", "{:.3g}"), ("mp_sigma2", "MP s²", "{:.3g}"), ("aspect_ratio", "q fit", "{:.3f}"),
    ("shape_ratio", "q", "{:.3f}"), ("bulk_edge", "λ+", "{:.3g}"), ("lambda_max", "λmax", "{:.3g}"),
    ("num_outliers", "out", "{:d}"), ("ks_statistic", "KS", "{:.3f}"), ("alpha", "α", "{:.2f}"),
    ("alpha_stderr", "±", "{:.2f}"), ("stable_rank", "srank", "{:.1f}"), ("chi_perp", "χ⊥", "{:.3f}"),
    ("verdict", "verdict", "{}"),
)
SERIES_COLUMNS = (("name", "layer", "{}"), ("K_S", "K_S", "{:.3g}"), ("TV_S", "T·V_S", "{:.3g}"), ("TD_S", "T·D_S", "{:.3g}"),
                  ("dbm_lhs", "(4.15) lhs", "{:.3g}"), ("dbm_rhs", "−K_S/(T·V_S)", "{:.3g}"), ("dbm_verdict", "DBM", "{}"))


def diagnosis_rows(ds) -> list[dict]:
    """One plain dict per layer (the scalar variables; JSON-ready floats, NaN as None)."""
    rows = []
    for i in range(ds.sizes["layer"]):
        row: dict = {"layer": int(ds.layer.values[i]), "name": str(ds.name.values[i])}
        for k, var in ds.data_vars.items():
            if var.dims != ("layer",):
                continue
            x = var.values[i]
            if isinstance(x, (np.integer, int)):
                row[k] = int(x)
            elif isinstance(x, (np.floating, float)):
                row[k] = None if not math.isfinite(float(x)) else float(x)
            else:
                row[k] = str(x)
        rows.append(row)
    return rows


def _cell(fmt: str, x) -> str:
    if x is None or (isinstance(x, float) and not math.isfinite(x)):
        return "—"
    try:
        return fmt.format(int(x) if fmt == "{:d}" else x)
    except (TypeError, ValueError):
        return str(x)


def _text_table(rows, columns) -> list[str]:
    cells = [[h for _, h, _ in columns]] + [[_cell(f, r.get(k)) for k, _, f in columns] for r in rows]
    widths = [max(len(c[j]) for c in cells) for j in range(len(columns))]
    lines = ["  ".join(c[j].rjust(widths[j]) if j else c[j].ljust(widths[j]) for j in range(len(widths))) for c in cells]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return lines


def diagnosis_table(ds) -> str:
    """A fixed-width text table (one line per layer) plus the network-level verdict (and the DBM table of a series)."""
    rows = diagnosis_rows(ds)
    lines = _text_table(rows, TABLE_COLUMNS)
    if "dbm_verdict" in ds:
        lines += ["", f"Dyson Brownian motion over the late half of {ds.attrs.get('series_records')} checkpoints "
                  f"(steps {ds.attrs.get('series_steps')}): Ṡ = K_S + V_S T/S + √(2TD_S)η (4.8); "
                  "converging when (4.15) lhs ≤ −K_S/(T·V_S)", *_text_table(rows, SERIES_COLUMNS)]
    a = ds.attrs
    crit = a.get("C_W_critical", float("nan"))
    lines += [
        "",
        f"activation {a.get('activation')} ({a.get('universality_class')}); critical C_W* = "
        f"{crit:.4g}, C_b* = {a.get('C_b_critical', float('nan')):.4g}" if math.isfinite(crit) else
        f"activation {a.get('activation')} ({a.get('universality_class')}): no critical point — "
        f"{a.get('criticality_note') or 'the criticality analysis gave no reason'}",
        f"network regime (de.phase, empirical C_W, C_b): {a.get('regime')}",
        f"outliers: Tracy–Widom test at level {a.get('tw_level')}; α: Clauset–Hill power-law MLE of the spectrum's tail",
    ]
    return "\n".join(lines)


def _figure_png(ds, i: int) -> str:
    from ..plots.spectrum import plot_weight_spectrum

    fig = plot_weight_spectrum(ds.eigenvalues.values[i], float(ds.mp_sigma2.values[i]), float(ds.shape_ratio.values[i]),
                               float(ds.bulk_edge.values[i]), int(ds.num_outliers.values[i]),
                               f"{ds.name.values[i]}  ({ds.verdict.values[i]})")
    buf = io.BytesIO()
    fig.savefig(buf, format="png")
    return base64.b64encode(buf.getvalue()).decode("ascii")


def diagnosis_html(ds, title: str = "deepeft diagnose") -> str:
    """A self-contained HTML page: the table, the network verdict, and each layer's spectrum with its MP fit."""
    rows = diagnosis_rows(ds)
    head = "".join(f"<th>{html.escape(h)}</th>" for _, h, _ in TABLE_COLUMNS)
    body = "".join(
        "<tr>" + "".join(f"<td>{html.escape(_cell(f, r.get(k)))}</td>" for k, _, f in TABLE_COLUMNS) + "</tr>" for r in rows
    )
    figs = "".join(f'<img alt="spectrum of layer {i + 1}" src="data:image/png;base64,{_figure_png(ds, i)}">'
                   for i in range(ds.sizes["layer"]))
    summary = html.escape(diagnosis_table(ds).split("\n\n")[-1]).replace("\n", "<br>")
    return (
        f"<!doctype html><html><head><meta charset='utf-8'><title>{html.escape(title)}</title>"
        "<style>body{font-family:sans-serif;margin:1em}table{border-collapse:collapse;font-size:12px}"
        "td,th{border:1px solid #ccc;padding:2px 6px;text-align:right}img{margin:4px}</style></head><body>"
        f"<h1>{html.escape(title)}</h1><p>{summary}</p><table><tr>{head}</tr>{body}</table>"
        "<h2>Spectra (histogram of the eigenvalues of WᵀW/n, fitted Marchenko–Pastur law, bulk edge, outliers)</h2>"
        f"{figs}</body></html>"
    )
