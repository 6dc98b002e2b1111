"""``deepeft diagnose MODEL``: per-layer weight-spectrum diagnostics and criticality verdicts (issue 17).

    deepeft diagnose model.pt --activation relu          # terminal table
    deepeft diagnose model.pt --json                      # one JSON object on stdout
    deepeft diagnose run.zarr --html report.html          # a recorded checkpoint series: its last checkpoint

Registered in :mod:`deepeft.cli` by :func:`register`. Exit codes as ``deepeft --help``.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer

from ._cli_common import handle_errors, jsonable

__all__ = ["register"]


@handle_errors("as_json")
def diagnose(
    model: Annotated[Path, typer.Argument(help="a PyTorch checkpoint (.pt/.pth/.ckpt) or a Zarr checkpoint folder")],
    activation: Annotated[str | None, typer.Option("--activation", help="activation between layers (needed for a "
                                                   "state dict; read from a whole module)")] = None,
    level: Annotated[float, typer.Option("--level", help="Tracy–Widom test level: 0.1, 0.05 or 0.01")] = 0.01,
    html_out: Annotated[Path | None, typer.Option("--html", help="write an HTML page with the spectra")] = None,
    trust_pickle: Annotated[bool, typer.Option("--trust-pickle", help="allow loading a pickled nn.Module (runs code "
                                               "from the file)")] = False,
    as_json: Annotated[bool, typer.Option("--json", help="print the result as one JSON object on stdout")] = False,
    precision: Annotated[str, typer.Option("--precision", help="float64 (default) or float32 eigendecompositions "
                                           "(≈ 1.5× cheaper, absolute error ~1e-6 λ_max)")] = "float64",
):
    """Weight spectra (Marchenko–Pastur fit, outliers, tail exponent α, stable rank) and criticality per layer."""
    from .diagnostics.diagnose import diagnose as run_diagnose
    from .diagnostics.diagnose import diagnose_series
    from .diagnostics.load import load_model
    from .diagnostics.render import diagnosis_html, diagnosis_rows, diagnosis_table
    from .diagnostics.series import load_series

    if Path(model).is_dir():  # a recorded checkpoint series: the last checkpoint plus the DBM analysis
        ds = diagnose_series(load_series(model), level=level, activation=activation)
    else:
        ds = run_diagnose(load_model(model, activation, trust_pickle=trust_pickle), level=level, precision=precision)
    written = []
    if html_out is not None:
        Path(html_out).write_text(diagnosis_html(ds, f"deepeft diagnose {Path(model).name}"), encoding="utf-8")
        written.append(str(html_out))
    if as_json:
        typer.echo(json.dumps(jsonable({"model": str(model), "attrs": dict(ds.attrs), "layers": diagnosis_rows(ds),
                                        "written": written})))
    else:
        typer.echo(diagnosis_table(ds))
        for w in written:
            typer.echo(f"wrote {w}", err=True)


def register(app: typer.Typer) -> None:
    app.command("diagnose")(diagnose)
