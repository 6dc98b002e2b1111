"""The test helpers of tests/_expt.py that let tests reuse work: ``quick_run`` accepts a `make run` summary only
when it stands for this code and the quick preset, and ``SharedEnsembles`` samples an ensemble once per exact
argument set (and anew when anything simulated changes)."""

from __future__ import annotations

import json

import numpy as np
import pytest

from _expt import SharedEnsembles, quick_run, quick_summary_problems
from deepeft import MLP
from deepeft.experiments import available_experiments, resolve_params, source_fingerprint
from deepeft.experiments.config import params_to_dict


def _fake_quick_run(root, name="gaussian-moments", **changes):
    top = {"preset": "quick", "source_sha256": source_fingerprint(),
           "experiments": [{"name": n, "dir": n} for n in available_experiments()]}
    sub = {"experiment": name, "preset": "quick", "params": params_to_dict(resolve_params(name, "quick")), "checks": []}
    for k, v in changes.items():
        (top if k in top else sub)[k] = v
    (root / name).mkdir(parents=True, exist_ok=True)
    (root / name / "summary.json").write_text(json.dumps(sub))
    (root / "summary.json").write_text(json.dumps(top))
    return root / "summary.json"


def test_quick_run_accepts_only_a_current_complete_quick_run(tmp_path, monkeypatch):
    monkeypatch.delenv("DEEPEFT_QUICK_SUMMARY", raising=False)
    assert quick_run("gaussian-moments") is None  # unset: the tests run the experiment themselves
    monkeypatch.setenv("DEEPEFT_QUICK_SUMMARY", str(tmp_path / "missing.json"))
    assert quick_run("gaussian-moments") is None

    good = _fake_quick_run(tmp_path / "good")
    monkeypatch.setenv("DEEPEFT_QUICK_SUMMARY", str(good))
    s, folder = quick_run("gaussian-moments")
    assert folder == tmp_path / "good" / "gaussian-moments" and s["experiment"] == "gaussian-moments"

    p = params_to_dict(resolve_params("gaussian-moments", "quick"))
    stale = [
        {"source_sha256": "0" * 64},  # made by other code
        {"preset": "paper"},  # the top-level run is another preset
        {"experiments": [{"name": "gaussian-moments", "dir": "gaussian-moments"}]},  # not every experiment ran
        {"params": {**p, "n_samples": p["n_samples"] + 1}},  # this experiment ran with overrides
    ]
    for i, change in enumerate(stale):
        monkeypatch.setenv("DEEPEFT_QUICK_SUMMARY", str(_fake_quick_run(tmp_path / f"bad{i}", **change)))
        assert quick_run("gaussian-moments") is None, change


def test_quick_summary_problems_names_each_reason(tmp_path):
    """The run-level rule shared by quick_run and the docs-number test: each stale field is named."""
    good = json.loads(_fake_quick_run(tmp_path).read_text())
    assert quick_summary_problems(good) == []
    bad = {**good, "preset": "paper", "source_sha256": "0" * 64, "experiments": good["experiments"][:1]}
    assert quick_summary_problems(bad) == ["preset is not quick", "made by other code (source_sha256 differs)",
                                           "not every registered experiment ran"]
    assert quick_summary_problems({}) == ["preset is not quick", "made by other code (source_sha256 differs)",
                                          "not every registered experiment ran"]


def test_shared_ensembles_sample_once_per_exact_arguments():
    from deepeft.simulate import ensemble

    net = MLP(2, [4], 1, "tanh", C_W=1.0)
    X = np.array([[0.3, -0.2], [0.1, 0.5]])
    with pytest.MonkeyPatch.context() as mp:
        shared = SharedEnsembles().install(mp)
        a = ensemble.sample_ensemble(net, X, 8, 0, method="metric")
        assert ensemble.sample_ensemble(net, X, 8, 0, method="metric") is a and shared.hits == 1
        b = ensemble.sample_ensemble(net.replace(C_W=1.01), X, 8, 0, method="metric")  # what is simulated changed
        c = ensemble.sample_ensemble(net, X, 8, 1, method="metric")  # another seed
        assert b is not a and c is not a and shared.hits == 1 and len(shared.cache) == 3
        assert not np.array_equal(b.metric.value, a.metric.value)
    assert ensemble.sample_ensemble(net, X, 8, 0, method="metric") is not a  # uninstalled
