"""The ``deepeft`` command line: run and reproduce experiments, render reports, quick answers.

Exit codes (also in ``deepeft --help`` and docs/experiments.md):
  0  success (and every check passed)
  1  the run finished but some theory-vs-simulation checks failed
  2  bad input: unknown name, bad option/parameter/config, or a folder holding a different run
  3  a capability this installation does not have yet (module not importable)
  4  a task or experiment raised an error (finished tasks are saved; rerun with --resume), an
     experiment module failed to import,
     or an unexpected internal error (traceback on stderr)
  5  the Dask cluster could not be reached or started
  130 interrupted (Ctrl-C); finished tasks are saved
"""

from __future__ import annotations

import json
import os
import signal
import sys
import warnings
from pathlib import Path
from typing import Annotated, Any

import typer

from ._cli_common import (  # noqa: F401  (EXIT_* and Unavailable are part of deepeft.cli's surface)
    EXIT_CHECKS,
    EXIT_CLUSTER,
    EXIT_INPUT,
    EXIT_INTERRUPT,
    EXIT_OK,
    EXIT_TASK,
    EXIT_UNAVAILABLE,
    INTERRUPT_MESSAGE,
    INTERRUPTED,
    Unavailable,
    err,
    handle_errors,
    jsonable,
    number_or_list,
    read_matrix,
)

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


# ----------------------------------------------------------------------------------------------
# Output helpers
# ----------------------------------------------------------------------------------------------
def _info(msg: str, quiet: bool) -> None:
    if not quiet:
        typer.echo(msg, err=True)


class _RichProgress:
    """A rich progress bar on stderr (nothing when quiet)."""

    def __init__(self, quiet: bool):
        self.quiet = quiet
        self._bar: Any = None  # a rich.progress.Progress while running (rich is imported lazily)

    def start(self, label: str, total: int, completed: int) -> None:
        if self.quiet:
            return
        from rich.console import Console
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

        bar = Progress(
            TextColumn("{task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            TextColumn("tasks"),
            TimeElapsedColumn(),
            console=Console(stderr=True),
        )
        bar.start()
        self._task = bar.add_task(label, total=total, completed=completed)
        self._bar = bar

    def advance(self) -> None:
        _raise_if_interrupted()
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


def _probe_write(folder: Path, what: str) -> None:
    """Really try to create (and remove) a file in ``folder``: permission bits alone mislead (root ignores
    them, read-only mounts and quotas do not show in them)."""
    import tempfile

    from .errors import DeepEFTInputError

    try:
        fd, probe = tempfile.mkstemp(dir=folder, prefix=".deepeft-write-test-")
        os.close(fd)
        os.unlink(probe)
    except OSError as exc:
        raise DeepEFTInputError(
            f"{what}: cannot write in {str(folder)!r} ({exc.strerror or exc}); choose a location you can write to."
        ) from None


def _check_out_folder(path: Path, option: str = "--out") -> None:
    """Refuse, before any work, an output folder that names a file or cannot be created or written."""
    from .errors import DeepEFTInputError

    what = f"{option} {str(path)!r}"
    if path.exists() and not path.is_dir():
        raise DeepEFTInputError(f"{what} is an existing file, not a folder; give a folder (created if missing).")
    existing = path
    while not existing.exists() and existing != existing.parent:
        existing = existing.parent
    if not existing.is_dir():
        raise DeepEFTInputError(f"{what} cannot be created: {str(existing)!r} is a file, not a folder.")
    _probe_write(existing, what)


def _check_out_file(path: Path, option: str, suffix: str) -> None:
    """Refuse, before any work, an output file name that is a folder, lacks ``suffix`` or cannot be written."""
    from .errors import DeepEFTInputError

    what = f"{option} {str(path)!r}"
    if path.is_dir():
        raise DeepEFTInputError(f"{what} is a folder; give a file name, e.g. {str(path / ('K' + suffix))!r}.")
    if path.suffix.lower() != suffix:
        raise DeepEFTInputError(f"{what}: give a file name ending in {suffix}, e.g. {str(path.with_suffix(suffix))!r}.")
    if not path.parent.is_dir():
        raise DeepEFTInputError(f"{what}: {str(path.parent)!r} is not an existing folder; create it first.")
    _probe_write(path.parent, what)


# ----------------------------------------------------------------------------------------------
# Commands
# ----------------------------------------------------------------------------------------------
@app.command("list")
@handle_errors("as_json")
def list_cmd(
    as_json: Annotated[bool, typer.Option("--json", help="machine-readable list with parameters and presets")] = False,
):
    """List the registered experiments: one per line, name then a one-line description."""
    from .experiments import available_experiments, get_experiment, load_errors
    from .experiments.config import describe_params

    names = available_experiments()
    for module, tb in load_errors().items():
        err(f"experiment module {module} failed to import and is skipped:\n{tb}")
    if as_json:
        rows = []
        for n in names:
            e = get_experiment(n)
            rows.append({"name": n, "description": e.description, "references": e.references,
                         "presets": jsonable(dict(e.presets)), "params": jsonable(describe_params(e.Params))})
        typer.echo(json.dumps(rows, indent=2))
        return
    width = max((len(n) for n in names), default=0) + 2
    for n in names:
        typer.echo(f"{n:<{width}}{get_experiment(n).description}")


_PRESET_HELP = "parameter preset: quick (minutes on 2 cores) or paper (the sources' full parameters) [default: quick]"
_SET_HELP = "override one parameter, KEY=VALUE (TOML syntax; lists as a,b,c or [a, b]); repeatable"
_SCHED_HELP = "address of an existing Dask scheduler (tcp://host:port) to send tasks to"
_SCHED_TIMEOUT_HELP = "seconds to wait for --scheduler to answer before giving up (exit 5)"
_WORKERS_HELP = "start a local Dask cluster with N worker processes (default: run in-process)"
_RESUME_HELP = "continue the run stored in --out, skipping finished tasks (the configuration must match)"
_OVERWRITE_HELP = "discard a run with a different configuration stored in --out"
_QUIET_HELP = "no progress or info on stderr; stdout gets only the report path"


def _summary_line(s: dict) -> str:
    from .experiments.checks import headline_text

    return f"{s['experiment']}: {headline_text(s)} ({s['timing']['total_s']:.1f} s)"


@app.command()
@handle_errors()
def run(
    name: Annotated[str, typer.Argument(help="experiment name (see `deepeft list`)")],
    preset: Annotated[str | None, typer.Option(help=_PRESET_HELP, show_default=False)] = None,
    set_: Annotated[list[str] | None, typer.Option("--set", help=_SET_HELP)] = None,
    config: Annotated[Path | None, typer.Option(help="TOML file with parameters (see docs/experiments.md)")] = None,
    out: Annotated[Path | None, typer.Option(help="output folder [default: results/NAME-PRESET]")] = None,
    scheduler: Annotated[str | None, typer.Option(help=_SCHED_HELP)] = None,
    scheduler_timeout: Annotated[float, typer.Option(help=_SCHED_TIMEOUT_HELP, min=0.1)] = 10.0,
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
    _check_out_folder(out_dir)
    preflight(exp, out_dir, preset, params, resume=resume, overwrite=overwrite)  # refuse before starting workers
    with open_executor(scheduler, workers, scheduler_timeout) as executor:
        _info(f"{name}: preset {preset}, {executor.description}, output {out_dir}", quiet)
        outcome = run_experiment(
            exp, out_dir, preset=preset, params=params, executor=executor,
            resume=resume, overwrite=overwrite, progress=_RichProgress(quiet), log=lambda m: _info(m, quiet),
        )
    s = outcome.summary
    _info(_summary_line(s), quiet)
    typer.echo(f"{'' if quiet else 'report: '}{out_dir / 'report.html'}")
    if s.get("load_errors"):
        err(f"experiment modules failed to import: {', '.join(s['load_errors'])} (tracebacks in the report).")
        raise typer.Exit(EXIT_TASK)
    if not s["passed"]:
        failed = [c["name"] for c in s["checks"] if not c["pass"]]
        err(f"{len(failed)} of {s['n_checks_all']} checks failed (first: {', '.join(failed[:3])}); see the report.")
        raise typer.Exit(EXIT_CHECKS)


@app.command()
@handle_errors()
def reproduce(
    preset: Annotated[str | None, typer.Option(help=_PRESET_HELP, show_default=False)] = None,
    out: Annotated[Path | None, typer.Option(help="output folder [default: results/PRESET]")] = None,
    only: Annotated[list[str] | None, typer.Option(help="run only these experiments (comma list; repeatable)")] = None,
    set_: Annotated[
        list[str] | None, typer.Option("--set", help="override EXPERIMENT.KEY=VALUE (repeatable)")
    ] = None,
    config: Annotated[Path | None, typer.Option(help="TOML file with one [experiment-name] table each")] = None,
    scheduler: Annotated[str | None, typer.Option(help=_SCHED_HELP)] = None,
    scheduler_timeout: Annotated[float, typer.Option(help=_SCHED_TIMEOUT_HELP, min=0.1)] = 10.0,
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
    _check_out_folder(out_dir)
    plan = plan_reproduction(out_dir, preset=preset, names=names, file_values=tables, overrides=overrides,
                             resume=resume, overwrite=overwrite)  # validate everything before starting workers
    with open_executor(scheduler, workers, scheduler_timeout) as executor:
        _info(f"reproduce: preset {preset}, {executor.description}, output {out_dir}", quiet)
        s = _reproduce(
            out_dir, preset=preset, plan=plan, executor=executor,
            resume=resume, overwrite=overwrite, progress=_RichProgress(quiet), log=lambda m: _info(m, quiet),
        )
    from .experiments.checks import headline_text

    _info(f"reproduce: {headline_text(s)}", quiet)
    for e in s["experiments"]:
        status = "ERROR" if e.get("error") else headline_text(e)
        _info(f"  {e['name']}: {status}", quiet)
    typer.echo(f"{'' if quiet else 'report: '}{out_dir / 'report.html'}")
    errors = [e["name"] for e in s["experiments"] if e.get("error")] + list(s.get("load_errors", {}))
    if errors:
        err(f"experiments that failed to run: {', '.join(errors)} (details in the report); rerun with --resume.")
        raise typer.Exit(EXIT_TASK)
    if not s["passed"]:
        err(f"{s['n_failed_all']} of {s['n_checks_all']} checks failed ({s['n_failed']} of {s['n_checks']} "
             "predictions); see the report.")
        raise typer.Exit(EXIT_CHECKS)


@app.command()
@handle_errors()
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
        typer.echo(json.dumps(jsonable(payload), indent=2, ensure_ascii=False))
    else:
        for line in text_lines:
            typer.echo(line)


@app.command()
@handle_errors("as_json")
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
    analysis = crit(act)
    result = jsonable(analysis)
    payload = {"command": "criticality", "deepeft_version": __version__,
               "input": {"activation": act.name, "params": act.param_dict}, "result": result}
    details = {k: v for k, v in result.items() if k != "activation"}
    _emit(payload, as_json, [_criticality_headline(analysis), f"  {act!r}: {analysis.reason}",
                             "details (all of it: --json):", *_text_lines(details, "  ")])


def _criticality_headline(c) -> str:
    """One line: the initialization to use and the universality class, e.g.
    "critical: C_b = 0, C_W = 1, universality class K* = 0"."""
    cls = {"K*=0": "K* = 0"}.get(c.universality_class, c.universality_class)
    p = c.critical
    if p is None:
        return f"not critical: {c.activation.name} has no physical critical initialization (class {cls!r})"
    where = ("any K*: a line of fixed points" if p.K_star is None else
             "" if p.K_star == 0 else f"K* = {p.K_star:.6g}, {p.stability}")
    others = [q for q in c.points if q is not p and q.physical]
    more = f"; {len(others)} more critical point(s) below" if others else ""
    return (f"critical: C_b = {p.C_b:.6g}, C_W = {p.C_W:.6g}, universality class {cls}"
            + (f" ({where})" if where else "") + more)


def _version_callback(value: bool) -> None:
    if value:
        from . import __version__

        typer.echo(f"deepeft {__version__}")
        raise typer.Exit(EXIT_OK)


@app.callback()
def _root(
    version: Annotated[bool, typer.Option("--version", help="print the version and exit", is_eager=True,
                                          callback=_version_callback)] = False,
) -> None:
    """deepeft: effective theory of deep networks, validated against Monte Carlo ensembles."""


def _default_initialization(act, C_b: str | None, C_W: str | None):
    """(C_b, C_W) from the options; what is not given comes from the activation's critical point (§5.3),
    announced on stderr — loudly when the activation has none (then C_b = 0, C_W = 1)."""
    given_b = number_or_list(C_b, "--C-b") if C_b is not None else None
    given_W = number_or_list(C_W, "--C-W") if C_W is not None else None
    if given_b is not None and given_W is not None:
        return given_b, given_W
    (crit,) = _need("deepeft.theory.criticality", "criticality")
    result = crit(act)
    points = [p for p in result.points if p.physical]
    if points:
        p = points[0]
        typer.echo(f"note: {act.name}: using its critical initialization C_b = {p.C_b:.6g}, C_W = {p.C_W:.6g} "
                   f"(universality class {result.universality_class}, §5.3) for what --C-b/--C-W do not set.", err=True)
        return (p.C_b if given_b is None else given_b), (p.C_W if given_W is None else given_W)
    typer.echo(f"WARNING: {act.name} has no critical initialization ({getattr(result, 'reason', '') or 'none found'});"
               " using C_b = 0, C_W = 1 for what --C-b/--C-W do not set: the kernel will change exponentially with"
               " depth.", err=True)
    return (0.0 if given_b is None else given_b), (1.0 if given_W is None else given_W)


@app.command()
@handle_errors("as_json")
def kernel(
    inputs: Annotated[Path, typer.Argument(help="inputs X of shape (N, n0): a .npy file or a .csv (rows = samples)")],
    activation_name: Annotated[str, typer.Option("--activation", help="activation name")] = "relu",
    param_: Annotated[list[str] | None, typer.Option("--param", help="activation parameter KEY=VALUE")] = None,
    depth: Annotated[int, typer.Option(help="number of layers L (hidden layers + output)", min=1)] = 2,
    width: Annotated[int, typer.Option(help="hidden width (unused by infinite-width results)", min=1)] = 1000,
    C_W: Annotated[str | None, typer.Option(
        "--C-W", help="weight variance C_W (number or per-layer list) [default: critical for the activation]",
        show_default=False)] = None,
    C_b: Annotated[str | None, typer.Option(
        "--C-b", help="bias variance C_b (number or per-layer list) [default: critical for the activation]",
        show_default=False)] = None,
    lambda_W: Annotated[str, typer.Option("--lambda-W", help="weight learning-rate scale λ_W (8.6)")] = "1.0",
    lambda_b: Annotated[str, typer.Option("--lambda-b", help="bias learning-rate scale λ_b (8.6)")] = "1.0",
    ntk: Annotated[bool, typer.Option("--ntk", help="frozen NTK Θ (9.5) instead of the kernel K (4.118)")] = False,
    save: Annotated[Path | None, typer.Option(help="also save the (L, N, N) array to this .npy file")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="print one JSON object (format: docs/experiments.md)")] = False,
):
    """Infinite-width kernel K^(ℓ) (4.118) or frozen NTK Θ^(ℓ) (9.5) of an MLP on inputs from a file."""
    import numpy as np

    from . import __version__
    from .errors import DeepEFTInputError, DeepEFTWarning
    from .network import MLP

    if save is not None:
        _check_out_file(save, "--save", ".npy")
    X = read_matrix(inputs)
    act = _activation_from(activation_name, param_)
    C_b_value, C_W_value = _default_initialization(act, C_b, C_W)
    net = MLP(input_dim=X.shape[1], widths=[width] * (depth - 1), output_dim=1,
              activation=act, C_b=C_b_value, C_W=C_W_value,
              lambda_b=number_or_list(lambda_b, "--lambda-b"), lambda_W=number_or_list(lambda_W, "--lambda-W"))
    X = net.check_inputs(X)
    quantity, eq = ("frozen_ntk", "(9.5)") if ntk else ("kernel", "(4.118)")
    (fn,) = _need("deepeft.theory.kernel", quantity)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", DeepEFTWarning)
        value = np.asarray(fn(net, X), dtype=np.float64)
    notes = [str(w.message) for w in caught if issubclass(w.category, DeepEFTWarning)]
    for note in notes:
        typer.echo(f"warning: {note}", err=True)
    if save is not None:
        try:
            with open(save, "wb") as fh:  # np.save(str) would append ".npy" to any other name
                np.save(fh, value)
        except OSError as exc:
            raise DeepEFTInputError(f"--save {str(save)!r}: could not write ({exc.strerror or exc}).") from None
    payload = {
        "command": "kernel", "quantity": quantity, "equation": eq, "deepeft_version": __version__,
        "network": {"L": net.L, "n": list(net.n), "activation": act.name, "activation_params": act.param_dict,
                    **{k: list(v) for k, v in net.arrays().items()}},
        "inputs": {"path": str(inputs), "N": int(X.shape[0]), "n0": int(X.shape[1])},
        "shape": list(value.shape), "value": value, "warnings": notes,
    }
    lines = [f"{quantity} {eq} of {net!r} on {X.shape[0]} inputs from {inputs}:"]
    with np.printoptions(precision=6, suppress=False, linewidth=120):
        for layer in range(value.shape[0]):
            lines += [f"layer {layer + 1}:", str(value[layer])]
    _emit(payload, as_json, lines)


def _exit_now(code: int) -> None:
    """Flush and leave without interpreter shutdown: with JAX, Dask or progress-bar threads still alive,
    finalization after Ctrl-C can crash (SIGSEGV) instead of exiting 130. Every finished task is already
    fsynced (store.py), so nothing is lost by skipping finalizers."""
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except Exception:  # noqa: BLE001 - a closed pipe must not change the exit code
            pass
    os._exit(code)


_RAISED: list[bool] = []  # KeyboardInterrupt has been raised for it
_DUPLICATE_S = 1.0  # a SIGINT this soon after the first is the same Ctrl-C (`timeout` sends it twice)
_SWALLOWING = {"__del__", "_xla_gc_callback"}  # Python prints and drops exceptions raised in these


def _in_swallowing_frame(frame) -> bool:
    for _ in range(4):
        if frame is None:
            return False
        if frame.f_code.co_name in _SWALLOWING:
            return True
        frame = frame.f_back
    return False


def _on_sigint(signum, frame) -> None:
    """Ctrl-C: KeyboardInterrupt, which unwinds (progress bar stopped, Dask futures cancelled, cluster
    closed) to ``handle_errors`` → exit 130. Inside a finalizer or gc callback, where Python would drop
    the exception, the signal is re-sent 20 ms later instead. A repeat within ``_DUPLICATE_S`` is ignored
    so that cleanup completes; a later one (cleanup hangs) exits 130 at once."""
    import threading
    import time

    now = time.monotonic()
    if _RAISED:
        if now - INTERRUPTED[0] > _DUPLICATE_S:
            err("interrupted again; exiting now.")
            _exit_now(EXIT_INTERRUPT)
        return
    if not INTERRUPTED:
        INTERRUPTED.append(now)
    if _in_swallowing_frame(frame):
        threading.Timer(0.02, os.kill, (os.getpid(), signal.SIGINT)).start()
        return
    _RAISED.append(True)
    raise KeyboardInterrupt


def _raise_if_interrupted() -> None:
    """A KeyboardInterrupt raised inside a finalizer or gc callback is swallowed by Python; catch up here."""
    if INTERRUPTED:
        raise KeyboardInterrupt


from .cli_learning import register as _register_learning  # noqa: E402  (registers on the app defined above)

_register_learning(app)  # predict, evidence (issue 12)

from .cli_learning_rates import register as _register_learning_rates  # noqa: E402

_register_learning_rates(app)  # learning-rates (issue 13)

from .cli_advise import register as _register_advise  # noqa: E402

_register_advise(app)  # advise (issue 15)


def main(argv: list[str] | None = None) -> None:
    """Entry point of the ``deepeft`` script. An interrupted command always exits 130 (see ``_exit_now``)."""
    try:
        signal.signal(signal.SIGINT, _on_sigint)
        app(args=argv, prog_name="deepeft")
    except SystemExit as exc:
        if exc.code == EXIT_INTERRUPT:
            _exit_now(EXIT_INTERRUPT)
        if INTERRUPTED:  # the interrupt was swallowed (see _raise_if_interrupted) and the command finished
            err(INTERRUPT_MESSAGE)
            _exit_now(EXIT_INTERRUPT)
        raise
    except KeyboardInterrupt:  # outside a command (e.g. while parsing options)
        err("interrupted.")
        _exit_now(EXIT_INTERRUPT)


if __name__ == "__main__":  # pragma: no cover
    main()
    sys.exit(EXIT_OK)
