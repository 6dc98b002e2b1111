"""``deepeft predict`` and ``deepeft evidence``: learning at infinite width from the command line (issue 12).

    deepeft predict X_train.npy Y_train.npy X_test.npy --method gd --t 1,10,inf --eta 0.1 --out pred.zarr
    deepeft evidence X.npy Y.npy --C-W 1,1.5,2 --depth 2,4,8 --activation relu,tanh --out grid.zarr

Inputs: .npy or .csv (rows = samples; a .csv may have one header line). Outputs by suffix of ``--out``:
``.zarr`` (xarray Dataset), ``.json`` (one object), ``.npy`` (``STEM.mean.npy`` and ``STEM.cov.npy``;
``evidence`` writes the log-evidence array). ``--json`` prints the result as one JSON object on stdout.
Exit codes as ``deepeft --help`` (one mapping, :func:`deepeft._cli_common.handle_errors`): 0 ok, 2 bad input (the
message says what to change), 4 unexpected error.

Registered in :mod:`deepeft.cli` by :func:`register` (kept separate so the two files evolve independently).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import numpy as np
import typer

from ._cli_common import handle_errors, integers, jsonable, number_or_list, numbers, read_matrix

__all__ = ["register"]

def _net(n0: int, n_out: int, activation: str, depth: int, width: int, C_b: str, C_W: str, lambda_b: str,
         lambda_W: str):
    from .network import MLP

    return MLP(n0, [width] * (depth - 1), n_out, activation,
               C_b=number_or_list(C_b, "--C-b"), C_W=number_or_list(C_W, "--C-W"),
               lambda_b=number_or_list(lambda_b, "--lambda-b"), lambda_W=number_or_list(lambda_W, "--lambda-W"))


def _write(ds, payload: dict, out: Path | None, arrays: dict[str, np.ndarray]) -> list[str]:
    """Write the result by suffix of ``out``; return the written paths."""
    from .errors import DeepEFTInputError

    if out is None:
        return []
    out = Path(out)
    suffix = out.suffix.lower()
    if suffix == ".zarr":
        ds.to_zarr(out, mode="w", zarr_format=3, consolidated=False)
        return [str(out)]
    if suffix == ".json":
        out.write_text(json.dumps(jsonable(payload), indent=2, ensure_ascii=False))
        return [str(out)]
    if suffix == ".npy":
        paths = []
        for key, arr in arrays.items():
            p = out.with_name(f"{out.stem}.{key}.npy")
            np.save(p, arr)
            paths.append(str(p))
        return paths
    raise DeepEFTInputError(f"--out must end in .zarr, .json or .npy, got {str(out)!r}.")


_ACT = Annotated[str, typer.Option("--activation", help="activation name (evidence: a comma list for a grid axis)")]
_DEPTH = Annotated[str, typer.Option("--depth", help="number of layers L (evidence: a comma list)")]
_WIDTH = Annotated[int, typer.Option("--width", help="hidden width (unused at infinite width)", min=1)]
_CW = Annotated[str, typer.Option("--C-W", help="weight variance C_W (predict: number or per-layer list)")]
_CB = Annotated[str, typer.Option("--C-b", help="bias variance C_b (predict: number or per-layer list)")]
_LW = Annotated[str, typer.Option("--lambda-W", help="weight learning-rate scale λ_W (8.6)")]
_LB = Annotated[str, typer.Option("--lambda-b", help="bias learning-rate scale λ_b (8.6)")]
_OUT = Annotated[Path | None, typer.Option("--out", help="write the result: .zarr, .json or .npy")]
_JSON = Annotated[bool, typer.Option("--json", help="print the result as one JSON object on stdout")]


@handle_errors("as_json")
def predict(
    x_train: Annotated[Path, typer.Argument(help="training inputs (N, n0), .npy or .csv")],
    y_train: Annotated[Path, typer.Argument(help="training targets (N,) or (N, n_out), .npy or .csv")],
    x_test: Annotated[Path, typer.Argument(help="test inputs (M, n0), .npy or .csv")],
    method: Annotated[str, typer.Option("--method", help="'bayes' (NNGP posterior (6.57),(6.64)) or 'gd' "
                                        "(frozen-NTK GD (10.39)-(10.41))")] = "gd",
    t: Annotated[str, typer.Option("--t", help="gd: times (comma list, 'inf' allowed): steps with --eta, "
                                   "else gradient-flow time")] = "inf",
    eta: Annotated[float | None, typer.Option("--eta", help="gd: constant learning rate (omit: gradient flow)")] = None,
    noise: Annotated[float, typer.Option("--noise", help="observation-noise variance σ_ε² (NT: relative diag_reg)")] = 0.0,
    conventions: Annotated[str, typer.Option("--conventions", help="'deepeft' or 'neural_tangents'")] = "deepeft",
    activation: _ACT = "relu",
    depth: _DEPTH = "2",
    width: _WIDTH = 1000,
    C_W: _CW = "1.0",
    C_b: _CB = "0.0",
    lambda_W: _LW = "1.0",
    lambda_b: _LB = "1.0",
    out: _OUT = None,
    as_json: _JSON = False,
):
    """Infinite-width prediction (mean, covariance) at test inputs after Bayesian inference or GD training."""
    import xarray as xr

    from . import __version__
    from .errors import DeepEFTInputError
    from .theory.bayes import nngp_posterior
    from .theory.kernel_learning import gd_prediction

    XA = read_matrix(x_train, "X_train")
    YA = read_matrix(y_train, "Y_train", "(N, n_out) or (N,)", column_ok=True)
    XB = read_matrix(x_test, "X_test", "(M, n0)")
    depths = integers(depth, "--depth")
    if len(depths) != 1:
        raise DeepEFTInputError(f"predict takes one --depth (a whole number >= 1), got {depth!r}.")
    L = depths[0]
    net = _net(XA.shape[1], YA.shape[1], activation, L, width, C_b, C_W, lambda_b, lambda_W)
    info = {"command": "predict", "method": method, "deepeft_version": __version__, "network": repr(net),
            "conventions": conventions, "noise": noise, "N_train": int(XA.shape[0]), "N_test": int(XB.shape[0])}
    if method == "bayes":
        post = nngp_posterior(net, XA, YA, XB, noise, conventions=conventions)
        ds = xr.Dataset({"mean": (("test", "output"), post.mean), "cov": (("test", "test_"), post.cov)},
                        attrs={**info, "log_evidence": post.log_evidence, "equation": "(6.57), (6.64), (6.34)"})
        payload = {**info, "log_evidence": post.log_evidence, "mean": post.mean, "cov": post.cov}
        lines = [f"NNGP posterior (6.57),(6.64) of {net!r}", f"log evidence (6.34): {post.log_evidence:.6g}",
                 "mean:", str(post.mean), "variance:", str(post.var)]
    elif method == "gd":
        times = np.array(numbers(t, "--t", allow_inf=True))
        pred = gd_prediction(net, XA, YA, XB, times, eta, noise, conventions=conventions)
        cov = pred.cov
        assert cov is not None  # compute_cov=True (the default)
        ds = xr.Dataset(
            {"mean": (("time", "test", "output"), pred.mean), "cov": (("time", "test", "test_"), cov),
             "train_loss": (("time",), pred.train_loss)},
            coords={"time": times}, attrs={**info, "eta": "flow" if eta is None else eta,
                                           "max_stable_eta": pred.max_stable_eta, "equation": "(10.39)-(10.41)"})
        payload = {**info, "t": times, "eta": eta, "max_stable_eta": pred.max_stable_eta, "mean": pred.mean,
                   "cov": cov, "train_loss": pred.train_loss}
        lines = [f"frozen-NTK GD ensemble (10.39)-(10.41) of {net!r}; 2/λ_max = {pred.max_stable_eta:.6g}"]
        for i, tv in enumerate(times):
            lines += [f"t = {tv:g}: mean", str(pred.mean[i]), "variance", str(np.diagonal(cov[i]))]
    else:
        raise DeepEFTInputError(f"--method must be 'bayes' or 'gd', got {method!r}.")
    written = _write(ds, payload, out, {"mean": ds["mean"].values, "cov": ds["cov"].values})
    if as_json:
        typer.echo(json.dumps(jsonable({**payload, "written": written})))
    else:
        with np.printoptions(precision=6, linewidth=120):
            for line in lines:
                typer.echo(line)
        for p in written:
            typer.echo(f"wrote {p}", err=True)


@handle_errors("as_json")
def evidence(
    x: Annotated[Path, typer.Argument(help="inputs (N, n0), .npy or .csv")],
    y: Annotated[Path, typer.Argument(help="targets (N,) or (N, n_out), .npy or .csv")],
    activation: _ACT = "relu",
    depth: _DEPTH = "2",
    width: _WIDTH = 1000,
    C_W: Annotated[str, typer.Option("--C-W", help="weight variances (comma list: a grid axis)")] = "1.0",
    C_b: Annotated[str, typer.Option("--C-b", help="bias variances (comma list: a grid axis)")] = "0.0",
    noise: Annotated[str, typer.Option("--noise", help="noise variances σ_ε² (comma list: a grid axis)")] = "0.0",
    out: _OUT = None,
    as_json: _JSON = False,
):
    """Log evidence (6.34) over a grid of hypotheses (activation × C_b × C_W × depth × noise); best and Bayes factors."""
    from . import __version__
    from .errors import DeepEFTInputError
    from .theory.bayes import evidence_grid, evidence_optimal

    X, Y = read_matrix(x, "X"), read_matrix(y, "Y", "(N, n_out) or (N,)", column_ok=True)
    depths = integers(depth, "--depth")
    acts = [a.strip() for a in activation.split(",") if a.strip()]
    if not acts:
        raise DeepEFTInputError(f"--activation must name at least one activation, got {activation!r}.")
    base = _net(X.shape[1], Y.shape[1], acts[0], max(depths), width, "0.0", "1.0", "1.0", "1.0")
    ds = evidence_grid(base, X, Y, activation=acts, C_b=numbers(C_b, "--C-b"), C_W=numbers(C_W, "--C-W"),
                       depth=depths, noise=numbers(noise, "--noise"))
    best = evidence_optimal(ds)
    ds.attrs.update({"command": "evidence", "deepeft_version": __version__})
    payload = {"command": "evidence", "deepeft_version": __version__, "best": best,
               "dims": list(ds["log_evidence"].dims),
               "coords": {d: ds.coords[d].values for d in ds["log_evidence"].dims},
               "log_evidence": ds["log_evidence"].values, "posterior": ds["posterior"].values}
    written = _write(ds, payload, out, {"log_evidence": ds["log_evidence"].values})
    if as_json:
        typer.echo(json.dumps(jsonable({**payload, "written": written})))
    else:
        typer.echo(f"log evidence (6.34) over {dict(ds['log_evidence'].sizes)}")
        typer.echo("evidence-optimal: " + ", ".join(f"{k}={v}" for k, v in best.items()))
        flat = ds["log_bayes_factor"].to_series().sort_values(ascending=False)
        for idx, val in flat.head(10).items():
            typer.echo(f"  {idx}: log Bayes factor vs best {val:.4g}")
        for p in written:
            typer.echo(f"wrote {p}", err=True)


def register(app: typer.Typer) -> None:
    """Add ``predict`` and ``evidence`` to the ``deepeft`` app."""
    app.command("predict")(predict)
    app.command("evidence")(evidence)
