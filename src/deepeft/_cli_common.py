"""What every ``deepeft`` command shares (one place, imported by cli.py, cli_learning.py, cli_learning_rates.py):
exit codes, the exception → message + exit-code mapping, JSON conversion, reading a matrix from .npy/.csv,
and parsing comma lists of numbers. Names here are public to the CLI modules; the module itself is internal.
"""

from __future__ import annotations

import functools
import json
import math
import os
import sys
import warnings
from pathlib import Path
from typing import Any

import typer

__all__ = [
    "EXIT_CHECKS",
    "EXIT_CLUSTER",
    "EXIT_INPUT",
    "EXIT_INTERRUPT",
    "EXIT_OK",
    "EXIT_TASK",
    "EXIT_UNAVAILABLE",
    "INTERRUPTED",
    "INTERRUPT_MESSAGE",
    "Unavailable",
    "err",
    "handle_errors",
    "integers",
    "jsonable",
    "number_or_list",
    "numbers",
    "read_matrix",
]

EXIT_OK, EXIT_CHECKS, EXIT_INPUT, EXIT_UNAVAILABLE, EXIT_TASK, EXIT_CLUSTER, EXIT_INTERRUPT = 0, 1, 2, 3, 4, 5, 130
INTERRUPTED: list[float] = []  # monotonic time of the first Ctrl-C of this process (set by cli._on_sigint)
INTERRUPT_MESSAGE = "interrupted; finished tasks are saved, rerun with --resume to continue."


class Unavailable(RuntimeError):
    """A deepeft module the command needs is not importable in this installation."""


def err(msg: str) -> None:
    typer.echo(f"error: {msg}", err=True)


def jsonable(obj: Any) -> Any:
    """Plain JSON values: dataclasses → dicts, arrays → nested lists, non-finite floats → "inf"/"-inf"/"nan"."""
    import dataclasses

    import numpy as np

    if hasattr(obj, "describe") and callable(obj.describe) and type(obj).__name__ == "Activation":
        return jsonable(obj.describe())
    if dataclasses.is_dataclass(obj) and not isinstance(obj, type):
        return {f.name: jsonable(getattr(obj, f.name)) for f in dataclasses.fields(obj)}
    if isinstance(obj, dict):
        return {str(k): jsonable(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [jsonable(v) for v in obj]
    if isinstance(obj, np.ndarray):
        return jsonable(obj.tolist())
    if isinstance(obj, np.generic):
        return jsonable(obj.item())
    if isinstance(obj, float):
        if math.isnan(obj):
            return "nan"
        if math.isinf(obj):
            return "inf" if obj > 0 else "-inf"
        return obj
    if isinstance(obj, (bool, int, str)) or obj is None:
        return obj
    return str(obj)


def handle_errors(json_flag: str | None = None):
    """Map exceptions to one ``error: …`` line and an exit code: DeepEFTInputError 2, Unavailable 3, TaskFailed 4,
    ClusterUnavailable 5, Ctrl-C 130, a closed stdout pipe 0, anything else (a bug) traceback + 4. With
    ``json_flag`` naming a boolean option that is set, the error is also printed as one JSON object on stdout."""

    def deco(fn):
        @functools.wraps(fn)
        def wrapper(*args, **kwargs):
            from .errors import DeepEFTInputError

            as_json = bool(json_flag and kwargs.get(json_flag))
            try:
                return fn(*args, **kwargs)
            except typer.Exit:
                raise
            except DeepEFTInputError as exc:
                code, msg = EXIT_INPUT, str(exc)
            except Unavailable as exc:
                code, msg = EXIT_UNAVAILABLE, str(exc)
            except BrokenPipeError:  # stdout closed early (e.g. `| head`): not an error of the command
                try:
                    os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
                except (OSError, ValueError, AttributeError):
                    pass
                raise typer.Exit(EXIT_OK) from None
            except KeyboardInterrupt:
                code, msg = EXIT_INTERRUPT, INTERRUPT_MESSAGE
            except Exception as exc:  # noqa: BLE001 - a bug in an experiment or in deepeft: show where
                # imported only here: deepeft.experiments is not needed by commands that succeed (e.g. advise)
                from .experiments.executors import ClusterUnavailable, TaskFailed

                if isinstance(exc, TaskFailed):
                    code, msg = EXIT_TASK, str(exc)
                elif isinstance(exc, ClusterUnavailable):
                    code, msg = EXIT_CLUSTER, str(exc)
                else:
                    import traceback

                    traceback.print_exc()
                    code, msg = EXIT_TASK, f"unexpected {type(exc).__name__}: {exc} (traceback above; please report it)."
            if INTERRUPTED and code != EXIT_INTERRUPT:  # Ctrl-C surfaced as another error (e.g. inside JAX)
                code, msg = EXIT_INTERRUPT, INTERRUPT_MESSAGE
            err(msg)
            if as_json:
                typer.echo(json.dumps({"error": {"message": msg, "exit_code": code}}))
            raise typer.Exit(code)

        return wrapper

    return deco


def read_matrix(path: Path, what: str = "X", shape: str = "(N, n0)", *, column_ok: bool = False):
    """A non-empty real matrix from a .npy or .csv file (rows = samples; a .csv may have one header line), as
    float64. ``column_ok``: a 1-D array is read as one column (targets (N,)). Otherwise DeepEFTInputError that
    says what the file should contain."""
    import numpy as np

    from .errors import DeepEFTInputError

    path = Path(path)
    should = (f"it should contain a matrix {what} of shape {shape}: one row per sample "
              f"(.npy: numpy.save(path, {what}) with {what}.ndim == 2; .csv: one line of comma-separated numbers "
              "per row, one optional header line)")
    where = f"{'input' if what == 'X' else what} file {str(path)!r}"
    if not path.is_file():
        raise DeepEFTInputError(f"{where} does not exist; pass a .npy or .csv file of shape {shape}.")
    suffix = path.suffix.lower()
    if suffix not in (".npy", ".csv"):
        raise DeepEFTInputError(f"{where}: use a .npy or .csv file (rows = samples), not {suffix!r}.")
    if suffix == ".npy":
        try:
            A = np.load(path, allow_pickle=False)
        except (ValueError, OSError, EOFError):
            head = path.read_bytes()[:6]
            kind = "an object (pickled) array" if head == b"\x93NUMPY" else "not a NumPy .npy file"
            hint = " (a text file? name it .csv)" if head != b"\x93NUMPY" else ""
            raise DeepEFTInputError(f"{where} is {kind}{hint}; {should}.") from None
    else:
        text = path.read_text(errors="replace")
        rows = [line for line in text.splitlines() if line.strip()]
        if not rows:
            raise DeepEFTInputError(f"{where} is empty; {should}.")
        A = None
        for skip in (0, 1):  # one header line allowed
            lengths = {len(r.split(",")) for r in rows[skip:]}
            if len(lengths) > 1:
                raise DeepEFTInputError(
                    f"{where}: rows have different numbers of columns ({', '.join(map(str, sorted(lengths)))}); "
                    f"{should}."
                )
            try:
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore")
                    A = np.loadtxt(path, delimiter=",", ndmin=2, skiprows=skip)
                break
            except ValueError:
                continue
        if A is None:
            raise DeepEFTInputError(f"{where} holds entries that are not numbers; {should}.")
    if A.dtype.kind not in "biuf":
        raise DeepEFTInputError(f"{where} holds a {A.dtype} array, not real numbers; {should}.")
    if A.ndim == 1 and column_ok:
        A = A[:, None]
    if A.ndim != 2:
        extra = (f" (for one input of dimension {A.shape[0]}, save {what}[None, :] of shape (1, {A.shape[0]}))"
                 if A.ndim == 1 else "")
        raise DeepEFTInputError(f"{where} holds an array of shape {A.shape}{extra}; {should}.")
    if A.size == 0:
        raise DeepEFTInputError(f"{where} holds an empty array of shape {A.shape}; {should}.")
    return np.asarray(A, dtype=np.float64)


def numbers(text: str, name: str, *, allow_inf: bool = False) -> list[float]:
    """A non-empty comma list of numbers (finite unless ``allow_inf``) from an option's text."""
    from .errors import DeepEFTInputError

    try:
        vals = [float(t) for t in str(text).split(",") if t.strip()]
    except ValueError:
        raise DeepEFTInputError(f"{name} must be a number or a comma list of numbers, got {text!r}.") from None
    if not vals:
        raise DeepEFTInputError(f"{name} is empty; give a number like 1.0.")
    if any(math.isnan(v) or (math.isinf(v) and not allow_inf) for v in vals):
        raise DeepEFTInputError(f"{name} must hold finite numbers, got {text!r}.")
    return vals


def number_or_list(text: str, name: str):
    """One number, or a list (one per layer), from an option's text."""
    vals = numbers(text, name)
    return vals[0] if len(vals) == 1 else vals


def integers(text: str, name: str, *, minimum: int = 1) -> list[int]:
    """A comma list of whole numbers >= ``minimum`` (``2.5`` is an error, not 2)."""
    from .errors import DeepEFTInputError

    vals = numbers(text, name)
    if any(v != int(v) or v < minimum for v in vals):
        raise DeepEFTInputError(f"{name} must be whole numbers >= {minimum}, got {text!r}.")
    return [int(v) for v in vals]
