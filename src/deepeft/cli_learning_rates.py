"""``deepeft learning-rates``: per-layer learning rates of the equivalence principle (9.94)–(9.96) and the
per-parameter step sizes of plain SGD (PyTorch / JAX). Registered on the main app by :func:`register`."""

from __future__ import annotations

import json
from typing import Annotated

import typer

from ._cli_common import handle_errors, number_or_list

__all__ = ["learning_rates_command", "register"]


@handle_errors("as_json")
def learning_rates_command(
    activation_name: Annotated[str, typer.Option("--activation", help="activation name, e.g. tanh, relu")] = "relu",
    depth: Annotated[int, typer.Option(help="number of layers L (hidden layers + output)", min=1)] = 8,
    width: Annotated[int, typer.Option(help="hidden width n", min=1)] = 128,
    input_dim: Annotated[int, typer.Option("--input-dim", help="input dimension n_0", min=1)] = 10,
    output_dim: Annotated[int, typer.Option("--output-dim", help="output dimension n_L", min=1)] = 1,
    C_W: Annotated[
        str, typer.Option("--C-W", help="weight variance C_W; 'critical' = the activation's critical point")
    ] = "critical",
    C_b: Annotated[str, typer.Option("--C-b", help="bias variance C_b; 'critical' = the critical point")] = "critical",
    rule: Annotated[str, typer.Option(help="equivalence | equal-contribution | constant")] = "equivalence",
    lambda_b: Annotated[float, typer.Option("--lambda-b", help="λ̃_b")] = 1.0,
    lambda_W: Annotated[float, typer.Option("--lambda-W", help="λ̃_W")] = 1.0,
    eta: Annotated[float, typer.Option(help="global learning rate η of plain SGD")] = 0.1,
    framework: Annotated[str, typer.Option(help="snippet for: pytorch | jax | none")] = "pytorch",
    as_json: Annotated[bool, typer.Option("--json", help="print one JSON object")] = False,
):
    """Learning rates λ_b^(ℓ), λ_W^(ℓ) of the equivalence principle (9.94)–(9.96) and plain-SGD step sizes."""
    from .errors import DeepEFTInputError
    from .network import MLP
    from .theory.criticality import criticality
    from .theory.learning_rates import learning_rates

    cp = criticality(activation_name).critical if "critical" in (C_W, C_b) else None
    if "critical" in (C_W, C_b) and cp is None:
        raise DeepEFTInputError(f"{activation_name!r} has no critical point; pass --C-W and --C-b explicitly.")
    # cp is not None whenever C_W or C_b is "critical" (checked above)
    cw = cp.C_W if cp is not None and C_W == "critical" else number_or_list(C_W, "--C-W")
    cb = cp.C_b if cp is not None and C_b == "critical" else number_or_list(C_b, "--C-b")
    net = MLP(input_dim, [width] * (depth - 1), output_dim, activation_name, C_b=cb, C_W=cw)
    if framework not in ("pytorch", "jax", "none"):
        raise DeepEFTInputError(f"--framework must be pytorch, jax or none, got {framework!r}.")
    lr = learning_rates(net, rule, lambda_b_tilde=lambda_b, lambda_W_tilde=lambda_W)
    steps = lr.sgd_steps(eta)  # validates eta (> 0, finite)
    snippet = {"pytorch": lr.pytorch(eta), "jax": lr.jax(eta), "none": ""}[framework]
    if as_json:
        payload = {
            "command": "learning-rates", "rule": rule, "equation": lr.equation,
            "universality_class": lr.universality_class, "p_perp": lr.p_perp, "network": repr(net),
            "lambda_b": lr.lambda_b.tolist(), "lambda_W": lr.lambda_W.tolist(), "eta": eta, "sgd_steps": steps,
            "snippet": snippet,
        }
        typer.echo(json.dumps(payload, indent=2, ensure_ascii=False))
        return
    p_perp = f", p_⊥ = {lr.p_perp:g}" if lr.p_perp is not None else ""
    typer.echo(f"{lr.universality_class} — rule {rule} {lr.equation}{p_perp}")
    typer.echo(f"{net!r}")
    typer.echo(f"{'layer':>5} {'λ_b':>12} {'λ_W':>12} {'η·λ_b (bias)':>14} {'η·λ_W/n (weight)':>17}")
    for s, b, w in zip(steps, lr.lambda_b, lr.lambda_W, strict=True):
        typer.echo(f"{s['layer']:>5} {b:>12.6g} {w:>12.6g} {s['bias']:>14.6g} {s['weight']:>17.6g}")
    if snippet:
        typer.echo("")
        typer.echo(snippet)


def register(app: typer.Typer) -> None:
    """Add the ``learning-rates`` command to ``app``."""
    app.command("learning-rates")(learning_rates_command)
