"""The NTK experiments (ntk-fluctuations, learning-rate-equivalence) at reduced size: every check passes,
outputs exist, and the checks can fail (a perturbed theory / a non-collapsing rule is rejected)."""

from __future__ import annotations

import dataclasses

import pytest

from _expt import assert_complete_run, load_dataset, quick_run
from deepeft.experiments import get_experiment, resolve_params, run_experiment

# ~2.5 min: two experiment runs at SMALL; none with $DEEPEFT_QUICK_SUMMARY (CI, after `make run`): the tests then
# read the quick-preset runs (same cases, larger) that `make run` made with this code.
pytestmark = pytest.mark.slow

SMALL = {
    "ntk-fluctuations": {"cases": "relu,tanh@0.1:1.2", "widths": "12,24,48", "n_networks": 512, "table_networks": 256},
    "learning-rate-equivalence": {"activations": "relu", "depths": "3,12", "width": 48, "n_networks": 16, "steps": 32},
}


class _Runs:
    """runs[name] → (summary, folder, dataset, params): the quick run of $DEEPEFT_QUICK_SUMMARY when it stands for
    this code (``quick_run``), else a run at SMALL made on first use."""

    def __init__(self, root):
        self.root, self.done = root, {}

    def __getitem__(self, name):
        if name not in self.done:
            q = quick_run(name)
            if q is not None:
                s, path, p = q[0], q[1], resolve_params(name, "quick")
            else:
                path, p = self.root / name, resolve_params(name, "quick", overrides=SMALL[name])
                s = run_experiment(name, path, preset="quick", overrides=SMALL[name]).summary
            self.done[name] = (s, path, load_dataset(path), p)
        return self.done[name]


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    return _Runs(tmp_path_factory.mktemp("ntk-exps"))


@pytest.mark.parametrize("name", list(SMALL))
def test_all_checks_pass_and_outputs_exist(runs, name):
    s, path, _, _ = runs[name]
    print(f"{name}: {s['n_checks']} checks, {s['n_failed']} failed, {s['timing']['total_s']:.1f} s")
    assert_complete_run(s, path)


def test_ntk_fluctuations_checks_can_fail(runs):
    """Theory scaled by 1.05 must fail at the exact layer 2 (and the table's theory is the digest's)."""
    _, _, ds, p = runs["ntk-fluctuations"]
    exp = get_experiment("ntk-fluctuations")
    names = {c.name for c in exp.analyze(p, ds)}
    assert any("ReLU table: theory var_H11" in n for n in names)
    bad = ds.copy()
    for k in "ABDF":
        bad[k] = bad[k] * 1.05
    failed = [c for c in exp.analyze(p, bad) if not c.passed]
    assert any("^(2)" in c.name for c in failed)
    assert len(failed) >= 5  # 9 of them at the Z_MAX = 5 policy (A, B, D, F entries at layer 2)


def test_learning_rate_equivalence_checks_can_fail(runs):
    """Swapping the rules' data (constant rates labelled 'equivalence') fails the collapse check."""
    _, _, ds, p = runs["learning-rate-equivalence"]
    exp = get_experiment("learning-rate-equivalence")
    swapped = ds.assign_coords(rule=list(ds.rule.values[::-1]))
    assert any(not c.passed for c in exp.analyze(p, swapped))
    p2 = dataclasses.replace(p, collapse_tol=0.0, max_z=0.0)
    assert any(not c.passed for c in exp.analyze(p2, ds))
