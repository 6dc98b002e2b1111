"""Shared helpers for the experiment tests (imported by tests/test_experiments_*.py)."""

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
