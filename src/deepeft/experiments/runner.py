"""Run an experiment (or all of them) into an output folder, resumably.

``run_experiment``: resolve parameters → compare with the folder's stored run (refuse to mix) →
compute unfinished tasks on an executor, storing each atomically → assemble ``data.zarr`` →
analysis (checks) → figures → ``summary.json`` → ``report.html``.
"""

from __future__ import annotations

import dataclasses
import datetime as _dt
import json
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

from ..errors import DeepEFTInputError, suggest
from .base import Experiment
from .checks import headline
from .config import analysis_params, build_params, config_diff, params_to_dict
from .executors import InProcess
from .registry import available_experiments, get_experiment, load_errors
from .seeds import task_seed
from .store import RunStore, atomic_write_json, tasks_digest

__all__ = [
    "plan_reproduction", "preflight", "resolve_params", "run_experiment", "reproduce", "RunOutcome", "NullProgress", "PRESETS",
]

PRESETS = ("quick", "paper")


def _version() -> str:
    from .. import __version__

    return __version__


def source_fingerprint() -> str:
    """SHA-256 over the deepeft package's Python sources (relative path + bytes, sorted): two runs with the
    same fingerprint ran the same code. Recorded in ``reproduce``'s summary.json so a later consumer (the
    docs-number test) can reuse a run only when it was made by the code it checks."""
    import hashlib

    root = Path(__file__).resolve().parents[1]
    h = hashlib.sha256()
    for f in sorted(root.rglob("*.py")):
        h.update(f.relative_to(root).as_posix().encode() + b"\0" + f.read_bytes() + b"\0")
    return h.hexdigest()


class NullProgress:
    """Progress sink that shows nothing (the CLI passes a rich progress bar instead)."""

    def start(self, label: str, total: int, completed: int) -> None: ...

    def advance(self) -> None: ...

    def stop(self) -> None: ...


@dataclasses.dataclass
class RunOutcome:
    name: str
    out_dir: Path
    summary: dict[str, Any]

    @property
    def passed(self) -> bool:
        return bool(self.summary.get("passed"))


def resolve_params(
    exp: Experiment | str,
    preset: str = "quick",
    file_values: Mapping[str, Any] | None = None,
    overrides: Mapping[str, Any] | None = None,
):
    """Params = dataclass defaults < ``presets[preset]`` < config-file values < ``--set`` overrides."""
    exp = get_experiment(exp) if isinstance(exp, str) else exp
    if preset not in exp.presets:
        raise DeepEFTInputError(
            f"unknown preset {preset!r} for {exp.name}.{suggest(preset, exp.presets)} "
            f"Choose one of: {', '.join(exp.presets)}."
        )
    return build_params(
        exp.Params,
        exp.presets[preset],
        dict(file_values or {}),
        dict(overrides or {}),
        where=[f"preset {preset!r}", "--config file", "--set"],
    )


def _record(exp: Experiment, preset: str, params, tasks: list[dict]) -> dict:
    return {
        "experiment": exp.name,
        "preset": preset,
        "params": params_to_dict(params),
        "deepeft_version": _version(),
        "n_tasks": len(tasks),
        "tasks_sha256": tasks_digest(tasks),
    }


def check_compatible(store: RunStore, record: dict, *, resume: bool, overwrite: bool, analysis=()) -> str:
    """Decide what to do with an existing folder: "fresh" (start over) or "resume".

    Refuses (DeepEFTInputError) to mix runs with different configurations. Parameters named in
    ``analysis`` (tolerances, thresholds: see ``param(analysis=True)``) may differ when resuming: the
    stored tasks do not depend on them, so they are re-analysed with the new values.
    """
    old = store.read_record()
    if old is None or overwrite:
        return "fresh"
    where = str(store.root)
    if old.get("experiment") != record["experiment"]:
        raise DeepEFTInputError(
            f"{where} holds a run of experiment {old.get('experiment')!r}, not {record['experiment']!r}. "
            "Choose another --out folder, or pass --overwrite to discard the old run."
        )
    diffs = config_diff(old.get("params", {}), record["params"], ignore=analysis if resume else ())
    if not diffs and old.get("tasks_sha256") != record["tasks_sha256"]:
        diffs = [f"task list: stored {old.get('n_tasks')} tasks (deepeft {old.get('deepeft_version')}), "
                 f"now {record['n_tasks']} tasks (deepeft {record['deepeft_version']})"]
    if diffs:
        only_analysis = not config_diff(old.get("params", {}), record["params"], ignore=analysis)
        hint = (" Only analysis parameters differ: pass --resume to re-analyse the stored tasks with them."
                if only_analysis and old.get("tasks_sha256") == record["tasks_sha256"] else "")
        raise DeepEFTInputError(
            f"{where} holds a run of {record['experiment']} with a different configuration; mixing them would "
            "corrupt the results. Differences: " + "; ".join(diffs) + ". Rerun with the stored parameters "
            f"(see {store.record_path}), choose another --out folder, or pass --overwrite to discard the old run."
            + hint
        )
    return "resume" if resume else "fresh"


def preflight(exp: Experiment, out_dir: str | Path, preset: str, params, *, resume: bool, overwrite: bool):
    """Validate a planned run before any work starts: (tasks, run record, "fresh" | "resume")."""
    tasks = exp.tasks(params)
    if not tasks:
        raise DeepEFTInputError(f"{exp.name}: these parameters give an empty sweep; widen the swept lists.")
    record = _record(exp, preset, params, tasks)
    mode = check_compatible(RunStore(out_dir), record, resume=resume, overwrite=overwrite,
                            analysis=analysis_params(exp.Params))
    return tasks, record, mode


def run_experiment(
    exp: Experiment | str,
    out_dir: str | Path,
    *,
    preset: str = "quick",
    params=None,
    file_values: Mapping[str, Any] | None = None,
    overrides: Mapping[str, Any] | None = None,
    executor=None,
    resume: bool = False,
    overwrite: bool = False,
    progress=None,
    log: Callable[[str], None] | None = None,
    render: bool = True,
) -> RunOutcome:
    """Run ``exp`` into ``out_dir``; returns the summary. Raises DeepEFTInputError on bad input or a
    configuration that differs from the one stored in ``out_dir``; TaskFailed when a task raises."""
    exp = get_experiment(exp) if isinstance(exp, str) else exp
    params = params if params is not None else resolve_params(exp, preset, file_values, overrides)
    executor = executor or InProcess()
    progress = progress or NullProgress()
    log = log or (lambda msg: None)
    t_start = time.perf_counter()
    store = RunStore(out_dir)
    tasks, record, mode = preflight(exp, out_dir, preset, params, resume=resume, overwrite=overwrite)
    old = store.read_record()
    if mode == "resume" and old and old.get("deepeft_version") != record["deepeft_version"]:
        log(f"{exp.name}: note: the stored tasks were computed with deepeft {old.get('deepeft_version')}, "
            f"this is {record['deepeft_version']} (same parameters and task list)")
    if mode == "fresh":
        store.clear()
    store.write_record(record)
    store.prepare()
    done = store.finished()
    pending = [(i, t) for i, t in enumerate(tasks) if i not in done]
    if done:
        log(f"{exp.name}: resuming, {len(done)}/{len(tasks)} tasks already finished in {store.root}")

    t0 = time.perf_counter()
    task_seconds = []
    progress.start(exp.name, len(tasks), len(done))
    try:
        for index, result, seconds in executor.map(exp, params, pending):
            store.write_task(index, result, {"task": tasks[index], "seed": task_seed(params.seed, index),
                                             "seconds": seconds})
            task_seconds.append(seconds)
            progress.advance()
    finally:
        progress.stop()
    t_tasks = time.perf_counter() - t0

    t0 = time.perf_counter()
    results = [store.read_task(i)[0] for i in range(len(tasks))]
    ds = exp.assemble(params, tasks, results)
    ds.attrs.update(
        {
            "experiment": exp.name,
            "description": exp.description,
            "preset": preset,
            "config": json.dumps(record["params"], sort_keys=True),
            "deepeft_version": record["deepeft_version"],
            "seed": int(params.seed),
            "seed_derivation": "numpy.random.SeedSequence(seed, spawn_key=(task_index,))",
            "task_seeds": [task_seed(params.seed, i) for i in range(len(tasks))],
        }
    )
    store.write_dataset(ds)
    ds = store.open_dataset()  # analyse exactly what is stored
    t_assemble = time.perf_counter() - t0

    t0 = time.perf_counter()
    checks = [c.to_json() for c in exp.analyze(params, ds)]
    t_analysis = time.perf_counter() - t0

    t0 = time.perf_counter()
    figure_files = []
    for fname, fig in exp.figures(params, ds).items():
        fig.savefig(store.root / fname, dpi=110, bbox_inches="tight")
        figure_files.append(fname)
    t_figures = time.perf_counter() - t0

    broken = load_errors()  # an experiment module that failed to import fails every run: nothing hides it
    summary = {
        "experiment": exp.name,
        "description": exp.description,
        "references": exp.references,
        "preset": preset,
        "params": record["params"],
        "deepeft_version": record["deepeft_version"],
        "seed": int(params.seed),
        "n_tasks": len(tasks),
        "dims": {k: int(v) for k, v in ds.sizes.items()},
        "executor": executor.description,
        "created": _dt.datetime.now(_dt.UTC).isoformat(timespec="seconds"),
        **headline(checks),  # passed; n_checks/n_failed: predictions only; kinds; n_checks_all/n_failed_all
        "load_errors": broken,
        "checks": checks,
        "figures": figure_files,
        "timing": {
            "total_s": round(time.perf_counter() - t_start, 3),
            "tasks_s": round(t_tasks, 3),
            "tasks_run": len(pending),
            "tasks_resumed": len(done),
            "task_mean_s": round(sum(task_seconds) / len(task_seconds), 4) if task_seconds else None,
            "assemble_s": round(t_assemble, 3),
            "analysis_s": round(t_analysis, 3),
            "figures_s": round(t_figures, 3),
        },
    }
    if broken:
        summary["passed"] = False
    atomic_write_json(store.root / "summary.json", summary)
    if render:
        from .report import write_report

        write_report(store.root)
    return RunOutcome(exp.name, store.root, summary)


def plan_reproduction(
    out_dir: str | Path,
    *,
    preset: str = "quick",
    names: Sequence[str] | None = None,
    file_values: Mapping[str, Mapping[str, Any]] | None = None,
    overrides: Mapping[str, Mapping[str, Any]] | None = None,
    resume: bool = False,
    overwrite: bool = False,
) -> list[tuple[Experiment, Any]]:
    """Resolve and validate the parameters of every experiment to reproduce (nothing runs yet)."""
    out = Path(out_dir)
    names = list(names) if names else available_experiments()
    file_values, overrides = dict(file_values or {}), dict(overrides or {})
    for source, table in (("--config file", file_values), ("--set", overrides)):
        for key in table:
            if key not in names:
                raise DeepEFTInputError(
                    f"{source} names experiment {key!r}, which is not being reproduced.{suggest(key, names)} "
                    f"Experiments in this run: {', '.join(names)}."
                )
    plan = []
    for name in names:
        exp = get_experiment(name)
        params = resolve_params(exp, preset, file_values.get(name), overrides.get(name))
        preflight(exp, out / name, preset, params, resume=resume, overwrite=overwrite)
        plan.append((exp, params))
    return plan


def reproduce(
    out_dir: str | Path,
    *,
    preset: str = "quick",
    names: Sequence[str] | None = None,
    file_values: Mapping[str, Mapping[str, Any]] | None = None,
    overrides: Mapping[str, Mapping[str, Any]] | None = None,
    plan: list[tuple[Experiment, Any]] | None = None,
    executor=None,
    resume: bool = False,
    overwrite: bool = False,
    progress=None,
    log: Callable[[str], None] | None = None,
) -> dict[str, Any]:
    """Run every registered experiment (or ``names``) into ``out_dir/NAME`` and write one combined
    ``summary.json`` + ``report.html`` at ``out_dir``. An experiment that fails is recorded and the
    others still run. Parameters of all experiments are validated before anything runs
    (:func:`plan_reproduction`; pass its result as ``plan`` to skip doing it twice)."""
    from .executors import TaskFailed

    out = Path(out_dir)
    log = log or (lambda msg: None)
    if plan is None:
        plan = plan_reproduction(out, preset=preset, names=names, file_values=file_values, overrides=overrides,
                                 resume=resume, overwrite=overwrite)
    t_start = time.perf_counter()
    entries: list[dict[str, Any]] = []
    checks: list[dict[str, Any]] = []
    for exp, params in plan:
        entry: dict[str, Any] = {"name": exp.name, "dir": exp.name, "description": exp.description}
        try:
            outcome = run_experiment(
                exp, out / exp.name, preset=preset, params=params, executor=executor, resume=resume,
                overwrite=overwrite, progress=progress, log=log,
            )
        except Exception as exc:  # noqa: BLE001 - one broken experiment must not stop the others
            msg = str(exc) if isinstance(exc, TaskFailed) else f"{exp.name} failed: {type(exc).__name__}: {exc}"
            entry.update(passed=False, error=msg, **{k: v for k, v in headline([]).items() if k != "passed"})
            log(msg)
        else:
            s = outcome.summary
            entry.update(passed=s["passed"], total_s=s["timing"]["total_s"],
                         **{k: s[k] for k in ("n_checks", "n_failed", "n_checks_all", "n_failed_all", "kinds")})
            checks.extend(dict(c, experiment=exp.name) for c in s["checks"])
        entries.append(entry)
    summary = {
        "reproduce": True,
        "preset": preset,
        "deepeft_version": _version(),
        "source_sha256": source_fingerprint(),
        "created": _dt.datetime.now(_dt.UTC).isoformat(timespec="seconds"),
        "executor": (executor or InProcess()).description,
        **headline(checks),
        "passed": all(e["passed"] for e in entries) and bool(entries) and not load_errors(),
        "load_errors": load_errors(),
        "experiments": entries,
        "checks": checks,
        "timing": {"total_s": round(time.perf_counter() - t_start, 3)},
    }
    atomic_write_json(out / "summary.json", summary)
    from .report import write_report

    write_report(out)
    return summary
