"""``deepeft advise``: is my network critical, and is it too deep for its width? (issue 15 item 4).

The terminal table, ``--json`` (:meth:`deepeft.advice.Advice.to_dict`) and ``--html PATH`` (a short page with
the K, χ and V/(nK²) curves) of :func:`deepeft.advise`. Registered on the main app by :func:`register`.
Imports stay inside the command so that ``deepeft advise`` starts fast.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Annotated

import typer

from ._cli_common import EXIT_CHECKS, handle_errors, integers, jsonable, number_or_list

__all__ = ["advise_command", "register"]


def _enable_compilation_cache() -> None:
    """JAX's persistent compilation cache (DEEPEFT_JAX_CACHE, default ~/.cache/deepeft/jax; "0" turns it off), so
    a second ``deepeft advise`` in a new process skips XLA compilation. When it cannot be set up (a read-only home,
    a JAX without the option) the command still runs, without the cache, and warns once on stderr what to do."""
    where = os.environ.get("DEEPEFT_JAX_CACHE", str(Path.home() / ".cache" / "deepeft" / "jax"))
    if where in ("", "0"):
        return
    try:
        Path(where).mkdir(parents=True, exist_ok=True)
        if not os.access(where, os.W_OK):
            raise PermissionError(f"{where} is not writable")
        import jax

        jax.config.update("jax_compilation_cache_dir", where)
        jax.config.update("jax_persistent_cache_min_compile_time_secs", 0.0)
        jax.config.update("jax_persistent_cache_min_entry_size_bytes", 0)
    except (OSError, AttributeError, ValueError) as exc:  # run without the cache, and say so
        import warnings

        from .errors import DeepEFTWarning

        warnings.warn(
            f"JAX's persistent compilation cache is off ({type(exc).__name__}: {exc}), so every run compiles again "
            "(~0.5 s). Set DEEPEFT_JAX_CACHE to a writable folder (e.g. DEEPEFT_JAX_CACHE=/tmp/deepeft-jax), or "
            "DEEPEFT_JAX_CACHE=0 to run without the cache and without this warning.",
            DeepEFTWarning,
            stacklevel=2,
        )


@handle_errors("as_json")
def advise_command(
    activation_name: Annotated[str, typer.Option("--activation", help="activation name, e.g. tanh, relu")] = "relu",
    param_: Annotated[
        list[str] | None, typer.Option("--param", help="activation parameter KEY=VALUE, e.g. slope=0.2")
    ] = None,
    depth: Annotated[int, typer.Option(help="number of layers L (hidden layers + output)", min=1)] = 8,
    width: Annotated[int, typer.Option(help="hidden width n (all hidden layers)", min=1)] = 128,
    widths: Annotated[str | None, typer.Option(
        help="hidden widths n_1,…,n_(L−1) as a comma list (overrides --width and --depth)", show_default=False)] = None,
    input_dim: Annotated[int, typer.Option("--input-dim", help="input dimension n_0", min=1)] = 10,
    output_dim: Annotated[int, typer.Option("--output-dim", help="output dimension n_L", min=1)] = 1,
    C_W: Annotated[str, typer.Option(
        "--C-W", help="weight variance C_W (number or per-layer list); 'critical' = the activation's critical point")
    ] = "critical",
    C_b: Annotated[str, typer.Option(
        "--C-b", help="bias variance C_b (number or per-layer list); 'critical' = the critical point")] = "critical",
    gamma: Annotated[float, typer.Option(
        help="residual strength γ of z⁺ = ξ[b + Wσ(z)] + γz (B.3); 0 = plain MLP; 0 ≤ γ < 1")] = 0.0,
    norm: Annotated[float, typer.Option(help="input norm (1/n_0)|x|² of the reference input")] = 1.0,
    as_json: Annotated[bool, typer.Option("--json", help="print one JSON object (schema: docs/advise.md)")] = False,
    html: Annotated[Path | None, typer.Option(
        "--html", help="also write a short HTML page with the K, χ and V/(nK²) curves to this .html file",
        show_default=False)] = None,
    strict: Annotated[bool, typer.Option(help="exit 1 when the report has any warning")] = False,
):
    """Design advice: universality class and critical point, whether the initialization is critical (χ_∥, χ_⊥,
    drift depth), aspect ratio L/n vs r*, finite-width effects V/(nK²), learning rates, and what to change."""
    from .errors import DeepEFTInputError

    if not (0.0 <= gamma < 1.0):
        raise DeepEFTInputError(
            f"--gamma must satisfy 0 ≤ γ < 1, got {gamma:g}: at γ ≥ 1 the residual path alone keeps (or grows) the "
            "kernel, K⁺ = γ²K + …, and the critical C_W(γ) = (1 − γ²)/A₂ (or (1 − γ²)/σ₁²) is ≤ 0, so there is no "
            "critical initialization (B.20)–(B.21); use γ < 1 (e.g. γ² = 0.5)."
        )
    if html is not None and html.suffix.lower() not in (".html", ".htm"):
        raise DeepEFTInputError(f"--html must name a .html file, got {str(html)!r}.")
    if html is not None and not html.parent.is_dir():
        raise DeepEFTInputError(f"--html {str(html)!r}: folder {str(html.parent)!r} does not exist; create it first.")
    _enable_compilation_cache()
    from .activations import activation
    from .advice import advise
    from .network import MLP
    from .network_residual import ResidualMLP
    from .theory.criticality import criticality

    act = activation(activation_name)
    if param_:
        from .experiments.config import parse_assignments

        act = activation(activation_name, **parse_assignments(param_, option="--param"))
    hidden = integers(widths, "--widths") if widths is not None else [width] * (depth - 1)
    cp = criticality(act, exponents=False).critical if "critical" in (C_W, C_b) else None
    if "critical" in (C_W, C_b) and cp is None:
        raise DeepEFTInputError(f"{act.name!r} has no critical point; pass --C-W and --C-b explicitly.")
    cw = cp.C_W if cp is not None and C_W == "critical" else number_or_list(C_W, "--C-W")
    cb = cp.C_b if cp is not None and C_b == "critical" else number_or_list(C_b, "--C-b")
    net: object  # an MLP, or a ResidualMLP for γ > 0
    if gamma == 0.0:
        net = MLP(input_dim, hidden, output_dim, act, C_b=cb, C_W=cw)
    else:
        if cp is not None and C_W == "critical":  # C_W(γ) (B.20)–(B.21) on the hidden layers 2..L−1 that carry γ
            from .theory.residual import residual_critical_point

            L = len(hidden) + 1
            cw = [cp.C_W] + [residual_critical_point(act, gamma).C_W] * (L - 2) + [cp.C_W] if L >= 3 else cp.C_W
        net = ResidualMLP(input_dim, hidden, output_dim, act, C_b=cb, C_W=cw, gamma=gamma)
    report = advise(net, norm=norm)
    path = report.to_html(html) if html is not None else None
    if as_json:
        payload = {"command": "advise", **report.to_dict(), "html": path}
        typer.echo(json.dumps(jsonable(payload), indent=2, ensure_ascii=False))
    else:
        typer.echo(str(report))
        if path is not None:
            typer.echo(f"\nHTML report: {path}")
    if strict and report.warnings:
        raise typer.Exit(EXIT_CHECKS)


def register(app: typer.Typer) -> None:
    """Add the ``advise`` command to ``app``."""
    app.command("advise")(advise_command)
