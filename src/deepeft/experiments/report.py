"""``report.html``: one static page (inline CSS, no scripts, no network) rendered from ``summary.json`` —
for one experiment folder or a ``reproduce`` folder (which links the per-experiment summaries).

Every check table has the same columns, with the same meaning in every experiment (:data:`COLUMNS`):
kind · theory · measurement ± stderr · z · rule · pass. ``theory`` is a predicted (or printed) value of the
measured quantity, never a threshold (thresholds live in ``rule``); ``z`` is always
(measurement − theory)/stderr, or empty. :func:`column_violations` tests that. Failed checks come first;
long tables are folded. Figures up to :data:`INLINE_MAX_BYTES` are embedded as data URIs, larger ones are
linked (the PNG next to the report) so that the page stays light.
"""

from __future__ import annotations

import base64
import html
import json
from pathlib import Path
from typing import Any

from ..errors import DeepEFTInputError
from .checks import headline_text

__all__ = ["write_report", "render_report", "load_summary", "column_violations", "COLUMNS", "KINDS"]

COLUMNS = ("check", "kind", "theory", "measurement ± stderr", "z", "rule", "pass")
KINDS = ("prediction", "resolution", "finding", "regression")
INLINE_MAX_BYTES = 60_000  # larger figures are linked, not embedded
FOLD_ROWS = 25  # check tables longer than this start folded
_Z_RTOL = 1e-6

_CSS = """
body{font-family:system-ui,-apple-system,"Segoe UI",Roboto,sans-serif;margin:0;color:#1d2330;background:#f6f7f9}
main{max-width:1100px;margin:0 auto;padding:24px}
h1{font-size:1.6em;margin:.2em 0}h2{margin-top:0}
section,header{background:#fff;border:1px solid #dde1e7;border-radius:8px;padding:18px 22px;margin:18px 0}
.meta{color:#5a6372;font-size:.92em}
.badge{display:inline-block;padding:2px 10px;border-radius:12px;font-weight:600;font-size:.9em}
.ok{background:#d8f3e0;color:#126b32}.bad{background:#fbdcdc;color:#9b1c1c}
table{border-collapse:collapse;width:100%;font-size:.88em;margin:8px 0}
th,td{border-bottom:1px solid #e6e8ec;padding:4px 8px;text-align:left;vertical-align:top}
td.num{text-align:right;font-variant-numeric:tabular-nums;font-family:ui-monospace,monospace}
tr.fail td{background:#fff1f1}
figure{margin:12px 0}figure img{max-width:100%;height:auto;border:1px solid #e6e8ec}
figcaption{color:#5a6372;font-size:.85em}
details summary{cursor:pointer;font-weight:600;margin:8px 0}
.err{white-space:pre-wrap;background:#fff1f1;border:1px solid #f0b4b4;padding:8px;border-radius:6px}
"""


def load_summary(folder: str | Path) -> dict[str, Any]:
    path = Path(folder) / "summary.json"
    if not path.is_file():
        raise DeepEFTInputError(
            f"{str(folder)!r} has no summary.json: it is not a finished run. Run `deepeft run NAME --out "
            f"{folder}` (or add --resume to finish an interrupted run), or `deepeft reproduce --out {folder}`."
        )
    try:
        return json.loads(path.read_text())
    except json.JSONDecodeError as exc:
        raise DeepEFTInputError(f"{path} is not valid JSON ({exc}); rerun the experiment to regenerate it.") from None


def _e(x) -> str:
    return html.escape(str(x))


def _num(x) -> str:
    if x is None:
        return "—"
    if isinstance(x, bool):
        return "yes" if x else "no"
    if isinstance(x, float):
        return f"{x:.6g}"
    return _e(x)


def _badge(passed: bool, text: str) -> str:
    return f'<span class="badge {"ok" if passed else "bad"}">{_e(text)}</span>'


def _kv_table(rows: dict[str, Any]) -> str:
    body = "".join(
        f"<tr><th>{_e(k)}</th><td>{_e(json.dumps(v) if isinstance(v, (list, dict)) else _num(v))}</td></tr>"
        for k, v in rows.items()
    )
    return f"<table>{body}</table>"


def _fmt(x, digits: int = 6) -> str:
    return "—" if x is None else f"{x:.{digits}g}"


def _theory_text(c: dict) -> str:
    """Theory, with round-off of an exact zero shown as 0 (|theory| ≤ 1e-12 × the measurement's scale)."""
    t = c.get("theory")
    if t is None:
        return "—"
    scale = max(abs(c.get("simulation") or 0.0), c.get("stderr") or 0.0)
    if t != 0 and abs(t) <= 1e-12 * scale:
        return "0"
    return _fmt(t)


def _measurement_text(c: dict) -> str:
    m, se = c.get("simulation"), c.get("stderr")
    if m is None:
        return "—"
    return f"{m:.6g} ± {se:.2g}" if se else f"{m:.6g}"


def _z_text(c: dict) -> str:
    z = c.get("z")
    return "—" if z is None else f"{z:+.2f}"


def column_violations(checks: list[dict]) -> list[str]:
    """Checks whose fields would change a column's meaning: ``z`` other than (measurement − theory)/stderr,
    an unknown ``kind``, an empty rule. Empty list when every row means the same as every other."""
    bad = []
    for c in checks:
        where = f"{c.get('experiment', '')}: {c.get('name')}".lstrip(": ")
        kind = c.get("kind", "prediction")
        if kind not in KINDS:
            bad.append(f"{where}: kind {kind!r} is not one of {', '.join(KINDS)}")
        if not str(c.get("rule", "")).strip():
            bad.append(f"{where}: empty rule")
        z, t, m, se = c.get("z"), c.get("theory"), c.get("simulation"), c.get("stderr")
        if z is None:
            continue
        if t is None or m is None or not se:
            bad.append(f"{where}: z = {z} without theory, measurement and stderr")
        elif abs(z - (m - t) / se) > _Z_RTOL * max(1.0, abs(z)):
            bad.append(f"{where}: z = {z:.6g} is not (measurement − theory)/stderr = {(m - t) / se:.6g}")
    return bad


def _checks_table(checks: list[dict], with_experiment: bool = False) -> str:
    head = ("<th>experiment</th>" if with_experiment else "") + "".join(f"<th>{_e(h)}</th>" for h in COLUMNS)
    rows = []
    for c in sorted(checks, key=lambda c: bool(c["pass"])):  # failed first, otherwise in order
        exp = f"<td>{_e(c.get('experiment', ''))}</td>" if with_experiment else ""
        rows.append(
            f'<tr class="{"pass" if c["pass"] else "fail"}">{exp}<td>{_e(c["name"])}</td>'
            f'<td>{_e(c.get("kind", "prediction"))}</td>'
            f'<td class="num">{_e(_theory_text(c))}</td><td class="num">{_e(_measurement_text(c))}</td>'
            f'<td class="num">{_e(_z_text(c))}</td>'
            f'<td>{_e(c["rule"])}</td><td>{"✔" if c["pass"] else "✘ FAIL"}</td></tr>'
        )
    return f'<table class="checks"><thead><tr>{head}</tr></thead><tbody>{"".join(rows)}</tbody></table>'


def _figure(path: Path, href: str) -> str:
    """Embedded when small; a link to the PNG (loaded from disk, not inlined) when large."""
    size = path.stat().st_size
    if size <= INLINE_MAX_BYTES:
        src = "data:image/png;base64," + base64.b64encode(path.read_bytes()).decode("ascii")
        note = ""
    else:
        src = href
        note = f' · <a href="{_e(href)}">{size / 1e6:.1f} MB, open full size</a>'
    return (
        f'<figure><img src="{_e(src)}" alt="{_e(path.name)}">'
        f"<figcaption>{_e(path.name)}{note}</figcaption></figure>"
    )


def _experiment_section(s: dict, folder: Path, anchor: str, prefix: str = "") -> str:
    status = _badge(s["passed"], headline_text(s))
    refs = f'<p class="meta">References: {_e(s["references"])}</p>' if s.get("references") else ""
    figs = "".join(_figure(folder / f, prefix + f) for f in s.get("figures", []) if (folder / f).is_file())
    failed = [c for c in s["checks"] if not c["pass"]]
    failed_html = f"<h3>Failed checks ({len(failed)})</h3>{_checks_table(failed)}" if failed else ""
    bad_columns = column_violations(s["checks"])
    columns_html = (f'<div class="err">Checks whose columns mean something else: {_e("; ".join(bad_columns))}</div>'
                    if bad_columns else "")
    fold = "" if len(s["checks"]) > FOLD_ROWS else " open"
    return (
        f'<section id="{_e(anchor)}"><h2>{_e(s["experiment"])} {status}</h2>'
        f'<p>{_e(s["description"])}</p>{refs}'
        f'<p class="meta">preset {_e(s["preset"])} · {s["n_tasks"]} tasks · seed {s["seed"]} · '
        f'{_e(s["executor"])} · deepeft {_e(s["deepeft_version"])} · {_e(s["created"])}</p>'
        f"{failed_html}{columns_html}{figs}"
        f'<details{fold}><summary>All {s["n_checks"]} checks (failed first)</summary>{_checks_table(s["checks"])}</details>'
        f"<details><summary>Parameters</summary>{_kv_table(s['params'])}</details>"
        f"<details><summary>Timing (seconds)</summary>{_kv_table(s['timing'])}</details>"
        f"<details><summary>Data</summary><p>data.zarr dims: {_e(json.dumps(s.get('dims', {})))}</p></details>"
        "</section>"
    )


_LEGEND = (
    '<p class="meta">Check columns (the same in every experiment): <b>kind</b> prediction (theory vs measurement), '
    "resolution (agreement within a stated grid/resolution), finding (a measured statement), regression (against a "
    "stored number) · <b>theory</b> the predicted or printed value, — when there is none (a threshold is part of the "
    "rule, never a theory value) · <b>measurement ± stderr</b> what deepeft measured or computed, with its standard "
    "error · <b>z</b> = (measurement − theory)/stderr, — when undefined · <b>rule</b> the pass criterion.</p>"
)
def _load_errors(s: dict) -> str:
    errs = s.get("load_errors") or {}
    body = "".join(f"<h3>{_e(m)}</h3><div class=\"err\">{_e(tb)}</div>" for m, tb in errs.items())
    if not errs:
        return ""
    return f'<section id="load-errors"><h2>Experiment modules that failed to import {_badge(False, "error")}</h2>{body}</section>'


def _page(title: str, body: str) -> str:
    return (
        '<!DOCTYPE html><html lang="en"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f'<link rel="icon" href="data:,"><title>{_e(title)}</title><style>{_CSS}</style></head>'
        f"<body><main>{body}</main></body></html>\n"
    )


def render_report(folder: str | Path) -> str:
    """The HTML of ``folder``'s report (a run folder or a reproduce folder)."""
    folder = Path(folder)
    s = load_summary(folder)
    if not s.get("reproduce"):
        header = (
            f"<header><h1>deepeft report</h1>"
            f'<p class="meta">one experiment run · folder {_e(folder.name)} · '
            f'total {_num(s["timing"]["total_s"])} s</p>{_LEGEND}</header>'
        )
        return _page(f"deepeft report: {s['experiment']}",
                     header + _load_errors(s) + _experiment_section(s, folder, s["experiment"]))
    rows, sections = [], []
    for e in sorted(s["experiments"], key=lambda e: bool(e["passed"])):  # failed experiments first
        sub = folder / e["dir"]
        status = _badge(e["passed"], "error" if e.get("error") else headline_text(e))
        rows.append(
            f'<tr><td><a href="#{_e(e["name"])}">{_e(e["name"])}</a></td><td>{_e(e["description"])}</td>'
            f'<td>{status}</td><td class="num">{_num(e.get("total_s"))}</td></tr>'
        )
        if e.get("error"):
            sections.append(
                f'<section id="{_e(e["name"])}"><h2>{_e(e["name"])} {_badge(False, "error")}</h2>'
                f'<div class="err">{_e(e["error"])}</div></section>'
            )
        else:
            sections.append(_experiment_section(load_summary(sub), sub, e["name"], prefix=f"{e['dir']}/"))
    overall = _badge(s["passed"], headline_text(s))
    header = (
        f"<header><h1>deepeft reproduction · preset {_e(s['preset'])} {overall}</h1>"
        f'<p class="meta">deepeft {_e(s["deepeft_version"])} · {_e(s["executor"])} · {_e(s["created"])} · '
        f'total {_num(s["timing"]["total_s"])} s</p>'
        "<table><thead><tr><th>experiment</th><th>description</th><th>checks</th><th>seconds</th></tr></thead>"
        f"<tbody>{''.join(rows)}</tbody></table>{_LEGEND}</header>"
    )
    return _page(f"deepeft reproduction ({s['preset']})", header + _load_errors(s) + "".join(sections))


def write_report(folder: str | Path) -> Path:
    """Render ``folder/report.html`` from its summary.json; returns the path."""
    from .store import atomic_write_bytes

    path = Path(folder) / "report.html"
    atomic_write_bytes(path, render_report(folder).encode("utf-8"))
    return path
