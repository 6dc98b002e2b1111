"""Shared helpers for the experiment tests (imported by tests/test_experiments_*.py)."""

from __future__ import annotations

import json

import xarray as xr

from deepeft.experiments import run_experiment

CHECK_FIELDS = {"name", "kind", "theory", "simulation", "stderr", "z", "pass", "rule"}


def load_dataset(path):
    """The assembled data.zarr of an experiment output folder, loaded into memory."""
    return xr.open_zarr(path / "data.zarr", zarr_format=3, consolidated=False).load()


def assert_complete_run(summary, path):
    """Every check passes and has the summary.json fields with a rule; every output file exists."""
    # every kind must pass (n_checks/n_failed count predictions only: the headline)
    assert summary["n_checks_all"] > 0 and summary["n_failed_all"] == 0, [c for c in summary["checks"] if not c["pass"]][:5]
    for c in summary["checks"]:
        assert set(c) == CHECK_FIELDS and c["rule"], c
    assert summary["figures"]
    for f in ("summary.json", "report.html", "data.zarr", *summary["figures"]):
        assert (path / f).exists(), f
    assert json.loads((path / "summary.json").read_text())["n_checks"] == summary["n_checks"]


class Runs:
    """Each experiment runs once per test process, on first use, at its quick preset with ``small[name]`` as
    overrides (pytest-xdist workers only run what they need): ``runs[name]`` → (result, output folder)."""

    def __init__(self, root, small):
        self.root, self.small, self.done = root, small, {}

    def __getitem__(self, name):
        if name not in self.done:
            res = run_experiment(name, self.root / name, preset="quick", overrides=self.small[name])
            self.done[name] = (res, self.root / name)
        return self.done[name]


# -- sharing expensive work between tests ----------------------------------------------------------------------


class SharedEnsembles:
    """``deepeft.simulate.ensemble.sample_ensemble`` memoised on its exact arguments (:meth:`describe`: the
    network, inputs, size, seed and options), for tests that run one experiment several times with different *theory*
    (mutation tests): the ensembles are sampled once, while every run still calls the (perturbed) theory
    through the experiment's own code path. A perturbation that changes what is simulated (a network, a seed)
    changes the key and samples afresh. Install with :meth:`install` on a ``pytest.MonkeyPatch``."""

    def __init__(self):
        self.cache: dict[bytes, object] = {}
        self.hits = 0

    @classmethod
    def describe(cls, x):
        """An exact, hashable description of an argument: arrays by dtype, shape and bytes, dataclasses (the
        networks) field by field, floats by their exact repr; other objects (an activation) by their repr."""
        import dataclasses

        import numpy as np

        if isinstance(x, (list, tuple)):
            return (type(x).__name__, *map(cls.describe, x))
        if isinstance(x, dict):
            return ("dict", *sorted((str(k), cls.describe(v)) for k, v in x.items()))
        if dataclasses.is_dataclass(x) and not isinstance(x, type):
            return (type(x).__qualname__, *((f.name, cls.describe(getattr(x, f.name))) for f in dataclasses.fields(x)))
        if hasattr(x, "__array__") and not isinstance(x, (int, float, str, bool)):
            a = np.asarray(x)
            return ("array", a.dtype.str, a.shape, a.tobytes())
        return (type(x).__qualname__, repr(x))

    def install(self, mp) -> SharedEnsembles:
        import hashlib

        from deepeft.simulate import ensemble

        real = ensemble.sample_ensemble

        def shared(*a, **k):
            key = hashlib.sha256(repr(self.describe((a, k))).encode()).digest()
            if key in self.cache:
                self.hits += 1
            else:
                self.cache[key] = real(*a, **k)
            return self.cache[key]

        mp.setattr(ensemble, "sample_ensemble", shared)
        return self


def quick_summary_problems(s: dict) -> list[str]:
    """Why the top-level summary.json ``s`` of a `reproduce --preset quick` run cannot stand for this code (empty
    when it can): not the quick preset, made by other code (source_sha256 differs from
    :func:`~deepeft.experiments.source_fingerprint`), not every registered experiment ran. The one rule of
    :func:`quick_run` and the docs-number test (tests/interfaces/test_docs_numbers.py)."""
    from deepeft.experiments import available_experiments, source_fingerprint

    names = sorted(str(e.get("name")) for e in s.get("experiments", []))
    return [what for what, bad in (
        ("preset is not quick", s.get("preset") != "quick"),
        ("made by other code (source_sha256 differs)", s.get("source_sha256") != source_fingerprint()),
        ("not every registered experiment ran", names != sorted(available_experiments())),
    ) if bad]  # fmt: skip


def quick_run(name: str):
    """(summary, folder) of experiment ``name`` from the complete `reproduce --preset quick` that
    $DEEPEFT_QUICK_SUMMARY names (CI runs `make run` first), or None when that variable is unset or the run
    cannot stand for this code: not the quick preset, made by other code (source_sha256 differs from
    :func:`~deepeft.experiments.source_fingerprint`), not every registered experiment ran, or this
    experiment's folder lacks its summary or ran with other parameters than the quick preset's. Tests that
    only assert "every check of a complete quick-size run passes" read it instead of running the experiment
    again; with None they run it themselves (at reduced size). The run-level rules: :func:`quick_summary_problems`."""
    import os
    from pathlib import Path

    from deepeft.experiments import resolve_params
    from deepeft.experiments.config import params_to_dict

    given = os.environ.get("DEEPEFT_QUICK_SUMMARY")
    if not given or not Path(given).is_file():
        return None
    s = json.loads(Path(given).read_text())
    if quick_summary_problems(s):
        return None
    entry = next(e for e in s["experiments"] if e["name"] == name)
    folder = Path(given).parent / entry.get("dir", name)
    f = folder / "summary.json"
    if not f.is_file():
        return None
    sub = json.loads(f.read_text())
    quick = json.loads(json.dumps(params_to_dict(resolve_params(name, "quick"))))  # as summary.json stores them
    if sub.get("preset") != "quick" or sub.get("params") != quick:
        return None
    return sub, folder


def quick_or_run(name: str, path, overrides, **kw):
    """(summary, folder): the quick-preset run of $DEEPEFT_QUICK_SUMMARY when :func:`quick_run` accepts it (CI),
    else ``run_experiment(name, path, preset="quick", overrides=overrides, **kw)`` (a reduced-size run here)."""
    q = quick_run(name)
    if q is not None:
        return q
    return run_experiment(name, path, preset="quick", overrides=overrides, **kw).summary, path
