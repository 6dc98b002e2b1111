"""The HTML page of :meth:`deepeft.Advice.to_html`: the report's numbers and warnings and one figure (Agg canvas,
no pyplot state) of K^{(ℓ)}, χ_∥/χ_⊥, V/(n_{ℓ−1}K²) and the learning rates against ℓ, for the given
initialization and — when it differs — the activation's critical initialization as reference."""

from __future__ import annotations

import base64
import html
import io
import pathlib

from ..errors import DeepEFTInputError

__all__ = ["advice_figure", "write_html"]


def advice_figure(advice):
    """A matplotlib Figure with four panels: K, χ's, V/(nK²), λ's against ℓ."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    rec = advice.flow
    ref = advice.reference_flow()
    ell = rec.layers
    fig = Figure(figsize=(10, 7), layout="constrained")
    FigureCanvasAgg(fig)
    axs = fig.subplots(2, 2)
    given = "given init"
    crit = "critical init"

    ax = axs[0, 0]
    ax.plot(ell, rec.K, label=given)
    if ref is not None:
        ax.plot(ell, ref.K, "--", label=crit)
    ax.set_yscale("log")
    ax.set(xlabel="layer ℓ", ylabel="K^(ℓ)", title="kernel (5.108)")
    ax.legend()

    ax = axs[0, 1]
    ax.plot(ell, rec.chi_parallel, label="χ_∥ " + given)
    ax.plot(ell, rec.chi_perp, label="χ_⊥ " + given)
    if ref is not None:
        ax.plot(ell, ref.chi_parallel, "--", label="χ_∥ " + crit)
        ax.plot(ell, ref.chi_perp, ":", label="χ_⊥ " + crit)
    ax.axhline(1.0, color="k", lw=0.5)
    ax.set(xlabel="layer ℓ", ylabel="χ", title="susceptibilities (5.50)–(5.51)")
    ax.legend(fontsize="small")

    ax = axs[1, 0]
    ax.plot(ell, rec.normalized_vertex, label=given)
    if ref is not None:
        ax.plot(ell, ref.normalized_vertex, "--", label=crit)
    ax.legend()
    ax.set(xlabel="layer ℓ", ylabel="V/(n K²)", title="finite-width effects (5.128)")

    ax = axs[1, 1]
    lr = advice.learning_rates
    if lr is not None:
        ax.plot(ell, lr.lambda_b, label="λ_b")
        ax.plot(ell, lr.lambda_W, label="λ_W")
        ax.legend()
        ax.set(title=f"learning rates {lr.equation}")
    ax.set(xlabel="layer ℓ", ylabel="λ")
    return fig


def write_html(advice, path) -> str:
    """Write the page to ``path`` (a .html file; its folder must exist); returns the path as a string."""
    p = pathlib.Path(path)
    if p.suffix.lower() not in (".html", ".htm"):
        raise DeepEFTInputError(f"the HTML report path must end in .html, got {str(p)!r}.")
    if not p.parent.is_dir():
        raise DeepEFTInputError(f"folder {str(p.parent)!r} does not exist; create it or choose another path.")
    fig = advice_figure(advice)
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=100)
    png = base64.b64encode(buf.getvalue()).decode("ascii")
    table = "\n".join(f"<pre>{html.escape(line)}</pre>" for line in str(advice).splitlines())
    page = (
        "<!DOCTYPE html>\n<html><head><meta charset='utf-8'><title>deepeft advise</title>"
        "<style>body{font-family:sans-serif;max-width:1000px;margin:auto} pre{margin:0;white-space:pre-wrap}</style>"
        "</head><body>\n<h1>deepeft advise</h1>\n"
        f"{table}\n<h2>Curves</h2>\n<img alt='K, chi, V/(nK^2) and learning rates against depth' "
        f"src='data:image/png;base64,{png}' style='max-width:100%'>\n"
        "<p>Single-input recursions (5.108)–(5.109) at input norm "
        f"{advice.input_norm:.4g}; dashed: the critical initialization of the same architecture.</p>\n"
        "</body></html>\n"
    )
    try:
        p.write_text(page, encoding="utf-8")
    except OSError as exc:
        raise DeepEFTInputError(f"could not write {str(p)!r} ({exc.strerror or exc}).") from None
    return str(p)

