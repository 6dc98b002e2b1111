"""The ``deepeft`` command line: run and reproduce experiments, render reports, quick answers.

Exit codes (also in ``deepeft --help`` and docs/experiments.md):
  0  success (and every check passed)
  1  the run finished but some theory-vs-simulation checks failed
  2  bad input: unknown name, bad option/parameter/config, or a folder holding a different run
  3  a capability this installation does not have yet (module not importable)
  4  a task or experiment raised an error (finished tasks are saved; rerun with --resume),
     or an unexpected internal error (traceback on stderr)
  5  the Dask cluster could not be reached or started
  130 interrupted (Ctrl-C); finished tasks are saved
"""

from __future__ import annotations

import functools
import json
import math
import sys
from pathlib import Path
from typing import Annotated, Any

import typer

EXIT_OK, EXIT_CHECKS, EXIT_INPUT, EXIT_UNAVAILABLE, EXIT_TASK, EXIT_CLUSTER, EXIT_INTERRUPT = 0, 1, 2, 3, 4, 5, 130

app = typer.Typer(
    name="deepeft",
    help="deepeft: effective theory of deep networks, validated against Monte Carlo ensembles.\n\n"
    "Exit codes: 0 ok · 1 checks failed · 2 bad input · 3 feature unavailable · 4 task error · "
    "5 cluster unreachable · 130 interrupted.",
    add_completion=False,
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    rich_markup_mode=None,
    context_settings={"help_option_names": ["-h", "--help"]},
)


class Unavailable(RuntimeError):
    """A deepeft module the command needs is not importable in this installation."""


# ----------------------------------------------------------------------------------------------
# Output helpers
# ----------------------------------------------------------------------------------------------
def _err(msg: str) -> None:
    typer.echo(f"error: {msg}", err=True)


def _info(msg: str, quiet: bool) -> None:
    if not quiet:
        typer.echo(msg, err=True)


def _jsonable(obj: Any) -> Any:
    """Plain JSON values: dataclasses → dicts, arrays → nested lists, non-finite floats → "inf"/"-inf"/"nan"."""
    import dataclasses

    import numpy as np

    if hasattr(obj, "describe") and callable(obj.describe) and type(obj).__name__ == "Activation":
        return _jsonable(obj.describe())
    if dataclasses.is_dataclass(obj) and not isinstance(obj, type):
        return {f.name: _jsonable(getattr(obj, f.name)) for f in dataclasses.fields(obj)}
    if isinstance(obj, dict):
        return {str(k): _jsonable(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_jsonable(v) for v in obj]
    if isinstance(obj, np.ndarray):
        return _jsonable(obj.tolist())
    if isinstance(obj, np.generic):
        return _jsonable(obj.item())
    if isinstance(obj, float):
        if math.isnan(obj):
            return "nan"
        if math.isinf(obj):
            return "inf" if obj > 0 else "-inf"
        return obj
    if isinstance(obj, (bool, int, str)) or obj is None:
        return obj
    return str(obj)


def _handle_errors(json_flag: str | None = None):
    """Map deepeft exceptions to messages and exit codes (see module docstring)."""

    def deco(fn):
        @functools.wraps(fn)
        def wrapper(*args, **kwargs):
            from .errors import DeepEFTInputError
            from .experiments.executors import ClusterUnavailable, TaskFailed

            as_json = bool(json_flag and kwargs.get(json_flag))
            try:
                return fn(*args, **kwargs)
            except typer.Exit:
                raise
            except DeepEFTInputError as exc:
                code, msg = EXIT_INPUT, str(exc)
            except Unavailable as exc:
                code, msg = EXIT_UNAVAILABLE, str(exc)
            except TaskFailed as exc:
                code, msg = EXIT_TASK, str(exc)
            except ClusterUnavailable as exc:
                code, msg = EXIT_CLUSTER, str(exc)
            except KeyboardInterrupt:
                code, msg = EXIT_INTERRUPT, "interrupted; finished tasks are saved, rerun with --resume to continue."
            except Exception as exc:  # noqa: BLE001 - a bug in an experiment or in deepeft: show where
                import traceback

                traceback.print_exc()
                code, msg = EXIT_TASK, f"unexpected {type(exc).__name__}: {exc} (traceback above; please report it)."
            _err(msg)
            if as_json:
                typer.echo(json.dumps({"error": {"message": msg, "exit_code": code}}))
            raise typer.Exit(code)

        return wrapper

    return deco


class _RichProgress:
    """A rich progress bar on stderr (nothing when quiet)."""

    def __init__(self, quiet: bool):
        self.quiet = quiet
        self._bar = None

    def start(self, label: str, total: int, completed: int) -> None:
        if self.quiet:
            return
        from rich.console import Console
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

        self._bar = Progress(
            TextColumn("{task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            TextColumn("tasks"),
            TimeElapsedColumn(),
            console=Console(stderr=True),
        )
        self._bar.start()
        self._task = self._bar.add_task(label, total=total, completed=completed)

    def advance(self) -> None:
        if self._bar is not None:
            self._bar.advance(self._task)

    def stop(self) -> None:
        if self._bar is not None:
            self._bar.stop()
            self._bar = None


def _need(module: str, *names: str):
    """Import ``names`` from ``module`` lazily; Unavailable (exit 3) if the module is not there yet."""
    import importlib

    try:
        mod = importlib.import_module(module)
        return [getattr(mod, n) for n in names]
    except (ImportError, AttributeError) as exc:
        raise Unavailable(
            f"{module} ({', '.join(names)}) is not available in this installation of deepeft ({exc}). "
            "Update deepeft to a version that provides it."
        ) from None


# ----------------------------------------------------------------------------------------------
# Config handling shared by run and reproduce
# ----------------------------------------------------------------------------------------------
def _read_config(path: Path | None) -> tuple[str | None, dict[str, Any], dict[str, dict[str, Any]]]:
    """(preset, flat params, {experiment: params}) from a TOML file (see docs/experiments.md)."""
    from .errors import DeepEFTInputError
    from .experiments import available_experiments
    from .experiments.config import load_toml

    if path is None:
        return None, {}, {}
    data = load_toml(path)
    preset = data.pop("preset", None)
    if preset is not None and not isinstance(preset, str):
        raise DeepEFTInputError(f"config file {path}: `preset` must be a string like \"quick\", got {preset!r}.")
    known = available_experiments()
    flat, tables = {}, {}
    for key, value in data.items():
        if isinstance(value, dict):
            if key not in known:
                from .errors import suggest

                raise DeepEFTInputError(
                    f"config file {path}: table [{key}] is not an experiment.{suggest(key, known)} "
                    f"Experiments: {', '.join(known)}."
                )
            tables[key] = value
        else:
            flat[key] = value
    return preset, flat, tables


def _out_dir(out: Path | None, default: str) -> Path:
    return out if out is not None else Path("results") / default


# ----------------------------------------------------------------------------------------------
# Commands
# ----------------------------------------------------------------------------------------------
@app.command("list")
@_handle_errors("as_json")
def list_cmd(
    as_json: Annotated[bool, typer.Option("--json", help="machine-readable list with parameters and presets")] = False,
):
    """List the registered experiments: one per line, name then a one-line description."""
    from .experiments import available_experiments, get_experiment, load_errors
    from .experiments.config import describe_params

    names = available_experiments()
    for module, tb in load_errors().items():
        _err(f"experiment module {module} failed to import and is skipped:\n{tb}")
    if as_json:
        rows = []
        for n in names:
            e = get_experiment(n)
            rows.append({"name": n, "description": e.description, "references": e.references,
                         "presets": _jsonable(dict(e.presets)), "params": _jsonable(describe_params(e.Params))})
        typer.echo(json.dumps(rows, indent=2))
        return
    width = max((len(n) for n in names), default=0) + 2
    for n in names:
        typer.echo(f"{n:<{width}}{get_experiment(n).description}")


_PRESET_HELP = "parameter preset: quick (minutes on 2 cores) or paper (the sources' full parameters) [default: quick]"
_SET_HELP = "override one parameter, KEY=VALUE (TOML syntax; lists as a,b,c or [a, b]); repeatable"
_SCHED_HELP = "address of an existing Dask scheduler (tcp://host:port) to send tasks to"
_WORKERS_HELP = "start a local Dask cluster with N worker processes (default: run in-process)"
_RESUME_HELP = "continue the run stored in --out, skipping finished tasks (the configuration must match)"
_OVERWRITE_HELP = "discard a run with a different configuration stored in --out"
_QUIET_HELP = "no progress or info on stderr; stdout gets only the report path"


def _summary_line(s: dict) -> str:
    ok = s["n_checks"] - s["n_failed"]
    return f"{s['experiment']}: {ok}/{s['n_checks']} checks pass ({s['timing']['total_s']:.1f} s)"


@app.command()
@_handle_errors()
def run(
    name: Annotated[str, typer.Argument(help="experiment name (see `deepeft list`)")],
    preset: Annotated[str | None, typer.Option(help=_PRESET_HELP, show_default=False)] = None,
    set_: Annotated[list[str] | None, typer.Option("--set", help=_SET_HELP)] = None,
    config: Annotated[Path | None, typer.Option(help="TOML file with parameters (see docs/experiments.md)")] = None,
    out: Annotated[Path | None, typer.Option(help="output folder [default: results/NAME-PRESET]")] = None,
    scheduler: Annotated[str | None, typer.Option(help=_SCHED_HELP)] = None,
    workers: Annotated[int | None, typer.Option(help=_WORKERS_HELP, min=1)] = None,
    resume: Annotated[bool, typer.Option("--resume", help=_RESUME_HELP)] = False,
    overwrite: Annotated[bool, typer.Option("--overwrite", help=_OVERWRITE_HELP)] = False,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help=_QUIET_HELP)] = False,
):
    """Run one experiment: data.zarr, figures, summary.json and report.html in --out."""
    from .errors import DeepEFTInputError
    from .experiments import get_experiment, open_executor, resolve_params, run_experiment
    from .experiments.config import parse_assignments
    from .experiments.runner import preflight

    exp = get_experiment(name)
    file_preset, flat, tables = _read_config(config)
    if "experiment" in flat:
        if flat.pop("experiment") != name:
            raise DeepEFTInputError(f"config file {config} is for another experiment; remove its `experiment` key.")
    file_values = {**flat, **tables.get(name, {})}
    preset = preset or file_preset or "quick"
    overrides = parse_assignments(set_ or [])
    out_dir = _out_dir(out, f"{name}-{preset}")
    params = resolve_params(exp, preset, file_values, overrides)
    preflight(exp, out_dir, preset, params, resume=resume, overwrite=overwrite)  # refuse before starting workers
    with open_executor(scheduler, workers) as executor:
        _info(f"{name}: preset {preset}, {executor.description}, output {out_dir}", quiet)
        outcome = run_experiment(
            exp, out_dir, preset=preset, params=params, executor=executor,
            resume=resume, overwrite=overwrite, progress=_RichProgress(quiet), log=lambda m: _info(m, quiet),
        )
    s = outcome.summary
    _info(_summary_line(s), quiet)
    typer.echo(f"{'' if quiet else 'report: '}{out_dir / 'report.html'}")
    if not s["passed"]:
        failed = [c["name"] for c in s["checks"] if not c["pass"]]
        _err(f"{len(failed)} of {s['n_checks']} checks failed (first: {', '.join(failed[:3])}); see the report.")
        raise typer.Exit(EXIT_CHECKS)


@app.command()
@_handle_errors()
def reproduce(
    preset: Annotated[str | None, typer.Option(help=_PRESET_HELP, show_default=False)] = None,
    out: Annotated[Path | None, typer.Option(help="output folder [default: results/PRESET]")] = None,
    only: Annotated[list[str] | None, typer.Option(help="run only these experiments (comma list; repeatable)")] = None,
    set_: Annotated[
        list[str] | None, typer.Option("--set", help="override EXPERIMENT.KEY=VALUE (repeatable)")
    ] = None,
    config: Annotated[Path | None, typer.Option(help="TOML file with one [experiment-name] table each")] = None,
    scheduler: Annotated[str | None, typer.Option(help=_SCHED_HELP)] = None,
    workers: Annotated[int | None, typer.Option(help=_WORKERS_HELP, min=1)] = None,
    resume: Annotated[bool, typer.Option("--resume", help=_RESUME_HELP)] = False,
    overwrite: Annotated[bool, typer.Option("--overwrite", help=_OVERWRITE_HELP)] = False,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help=_QUIET_HELP)] = False,
):
    """Run every registered experiment and write one combined report (what `make run` does)."""
    from .errors import DeepEFTInputError
    from .experiments import available_experiments, get_experiment, open_executor
    from .experiments import reproduce as _reproduce
    from .experiments.config import parse_assignments
    from .experiments.runner import plan_reproduction

    file_preset, flat, tables = _read_config(config)
    if flat:
        raise DeepEFTInputError(
            f"config file {config}: reproduce needs parameters inside [experiment-name] tables; "
            f"move {', '.join(sorted(flat))} under e.g. [{available_experiments()[0]}]."
        )
    preset = preset or file_preset or "quick"
    names = [n.strip() for item in (only or []) for n in item.split(",") if n.strip()] or None
    for n in names or []:
        get_experiment(n)
    overrides: dict[str, dict[str, Any]] = {}
    for key, value in parse_assignments(set_ or []).items():
        exp_name, dot, pkey = key.partition(".")
        if not dot or not pkey:
            raise DeepEFTInputError(
                f"reproduce --set takes EXPERIMENT.KEY=VALUE (e.g. gaussian-moments.n_samples=1000), got {key!r}."
            )
        overrides.setdefault(exp_name, {})[pkey] = value
    out_dir = _out_dir(out, preset)
    plan = plan_reproduction(out_dir, preset=preset, names=names, file_values=tables, overrides=overrides,
                             resume=resume, overwrite=overwrite)  # validate everything before starting workers
    with open_executor(scheduler, workers) as executor:
        _info(f"reproduce: preset {preset}, {executor.description}, output {out_dir}", quiet)
        s = _reproduce(
            out_dir, preset=preset, plan=plan, executor=executor,
            resume=resume, overwrite=overwrite, progress=_RichProgress(quiet), log=lambda m: _info(m, quiet),
        )
    for e in s["experiments"]:
        status = "ERROR" if e.get("error") else f"{e['n_checks'] - e['n_failed']}/{e['n_checks']} checks pass"
        _info(f"  {e['name']}: {status}", quiet)
    typer.echo(f"{'' if quiet else 'report: '}{out_dir / 'report.html'}")
    errors = [e["name"] for e in s["experiments"] if e.get("error")]
    if errors:
        _err(f"experiments that failed to run: {', '.join(errors)} (details in the report); rerun with --resume.")
        raise typer.Exit(EXIT_TASK)
    if not s["passed"]:
        _err(f"{s['n_failed']} of {s['n_checks']} checks failed; see the report.")
        raise typer.Exit(EXIT_CHECKS)


@app.command()
@_handle_errors()
def report(
    folder: Annotated[Path, typer.Argument(help="output folder of `deepeft run` or `deepeft reproduce`")],
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help=_QUIET_HELP)] = False,
):
    """(Re)render report.html from a run or reproduce folder's summary.json and figures."""
    from .experiments import write_report

    path = write_report(folder)
    typer.echo(f"{'' if quiet else 'report: '}{path}")


def _activation_from(name: str, params: list[str] | None):
    from .activations import activation
    from .experiments.config import parse_assignments

    return activation(name, **parse_assignments(params or [], option="--param"))


def _short(v) -> str:
    """A value for human-readable output: long lists are elided (``--json`` has them in full)."""
    if isinstance(v, list) and len(v) > 8:
        return f"[{len(v)} values; see --json]"
    return json.dumps(v, ensure_ascii=False) if isinstance(v, (list, dict)) else str(v)


def _text_lines(value, indent: str) -> list[str]:
    if not isinstance(value, dict):
        return [indent + _short(value)]
    lines = []
    for k, v in value.items():
        if isinstance(v, dict) and v:
            lines += [f"{indent}{k}:", *_text_lines(v, indent + "  ")]
        else:
            lines.append(f"{indent}{k}: {_short(v)}")
    return lines


def _emit(payload: dict, as_json: bool, text_lines: list[str]) -> None:
    if as_json:
        typer.echo(json.dumps(_jsonable(payload), indent=2, ensure_ascii=False))
    else:
        for line in text_lines:
            typer.echo(line)


@app.command()
@_handle_errors("as_json")
def criticality(
    activation_name: Annotated[str, typer.Argument(metavar="ACTIVATION", help="activation name, e.g. tanh, relu")],
    param_: Annotated[
        list[str] | None, typer.Option("--param", help="activation parameter KEY=VALUE, e.g. slope=0.2")
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="print one JSON object (format: docs/experiments.md)")] = False,
):
    """Critical initialization (C_b, C_W), universality class and exponents of an activation (§5.3)."""
    from . import __version__

    act = _activation_from(activation_name, param_)
    (crit,) = _need("deepeft.theory.criticality", "criticality")
    result = _jsonable(crit(act))
    payload = {"command": "criticality", "deepeft_version": __version__,
               "input": {"activation": act.name, "params": act.param_dict}, "result": result}
    _emit(payload, as_json, [f"criticality of {act!r}", *_text_lines(result, "  ")])


def _read_inputs(path: Path):
    import numpy as np

    from .errors import DeepEFTInputError

    if not path.is_file():
        raise DeepEFTInputError(f"input file {str(path)!r} does not exist; pass a .npy or .csv file of shape (N, n0).")
    suffix = path.suffix.lower()
    try:
        if suffix == ".npy":
            X = np.load(path, allow_pickle=False)
        elif suffix == ".csv":
            try:
                X = np.loadtxt(path, delimiter=",", ndmin=2)
            except ValueError:
                X = np.loadtxt(path, delimiter=",", ndmin=2, skiprows=1)  # one header line
        else:
            raise DeepEFTInputError(f"input file {str(path)!r}: use a .npy or .csv file (rows = samples), not {suffix!r}.")
    except (ValueError, OSError) as exc:
        if isinstance(exc, DeepEFTInputError):
            raise
        raise DeepEFTInputError(f"could not read {str(path)!r} as a numeric matrix: {exc}.") from None
    if X.ndim == 1:
        X = X[None, :]
    return X


def _floats(text: str, name: str):
    from .errors import DeepEFTInputError

    try:
        vals = [float(t) for t in text.split(",") if t.strip()]
    except ValueError:
        raise DeepEFTInputError(f"{name} must be a number or a comma list of numbers (one per layer), got {text!r}.") from None
    if not vals:
        raise DeepEFTInputError(f"{name} is empty; give a number like 1.0.")
    return vals[0] if len(vals) == 1 else vals


@app.command()
@_handle_errors("as_json")
def kernel(
    inputs: Annotated[Path, typer.Argument(help="inputs X of shape (N, n0): a .npy file or a .csv (rows = samples)")],
    activation_name: Annotated[str, typer.Option("--activation", help="activation name")] = "relu",
    param_: Annotated[list[str] | None, typer.Option("--param", help="activation parameter KEY=VALUE")] = None,
    depth: Annotated[int, typer.Option(help="number of layers L (hidden layers + output)", min=1)] = 2,
    width: Annotated[int, typer.Option(help="hidden width (unused by infinite-width results)", min=1)] = 1000,
    C_W: Annotated[str, typer.Option("--C-W", help="weight variance C_W (number or per-layer list)")] = "1.0",
    C_b: Annotated[str, typer.Option("--C-b", help="bias variance C_b (number or per-layer list)")] = "0.0",
    lambda_W: Annotated[str, typer.Option("--lambda-W", help="weight learning-rate scale λ_W (8.6)")] = "1.0",
    lambda_b: Annotated[str, typer.Option("--lambda-b", help="bias learning-rate scale λ_b (8.6)")] = "1.0",
    ntk: Annotated[bool, typer.Option("--ntk", help="frozen NTK Θ (9.5) instead of the kernel K (4.118)")] = False,
    save: Annotated[Path | None, typer.Option(help="also save the (L, N, N) array to this .npy file")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="print one JSON object (format: docs/experiments.md)")] = False,
):
    """Infinite-width kernel K^(ℓ) (4.118) or frozen NTK Θ^(ℓ) (9.5) of an MLP on inputs from a file."""
    import numpy as np

    from . import __version__
    from .network import MLP

    X = _read_inputs(inputs)
    act = _activation_from(activation_name, param_)
    net = MLP(input_dim=X.shape[1] if X.ndim == 2 else 1, widths=[width] * (depth - 1), output_dim=1,
              activation=act, C_b=_floats(C_b, "--C-b"), C_W=_floats(C_W, "--C-W"),
              lambda_b=_floats(lambda_b, "--lambda-b"), lambda_W=_floats(lambda_W, "--lambda-W"))
    X = net.check_inputs(X)
    quantity, eq = ("frozen_ntk", "(9.5)") if ntk else ("kernel", "(4.118)")
    (fn,) = _need("deepeft.theory.kernel", quantity)
    value = np.asarray(fn(net, X), dtype=np.float64)
    if save is not None:
        np.save(save, value)
    payload = {
        "command": "kernel", "quantity": quantity, "equation": eq, "deepeft_version": __version__,
        "network": {"L": net.L, "n": list(net.n), "activation": act.name, "activation_params": act.param_dict,
                    **{k: list(v) for k, v in net.arrays().items()}},
        "inputs": {"path": str(inputs), "N": int(X.shape[0]), "n0": int(X.shape[1])},
        "shape": list(value.shape), "value": value,
    }
    lines = [f"{quantity} {eq} of {net!r} on {X.shape[0]} inputs from {inputs}:"]
    with np.printoptions(precision=6, suppress=False, linewidth=120):
        for layer in range(value.shape[0]):
            lines += [f"layer {layer + 1}:", str(value[layer])]
    _emit(payload, as_json, lines)


from .cli_learning_rates import register as register_learning_rates  # noqa: E402

register_learning_rates(app)
from .cli_learning import register as _register_learning  # noqa: E402  (predict, evidence: issue 12)

_register_learning(app)


def main(argv: list[str] | None = None) -> None:
    """Entry point of the ``deepeft`` script."""
    app(args=argv, prog_name="deepeft")


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
