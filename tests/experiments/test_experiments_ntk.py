"""The NTK experiments (ntk-fluctuations, learning-rate-equivalence) at reduced size: every check passes,
outputs exist, and the checks can fail (a perturbed theory / a non-collapsing rule is rejected)."""

from __future__ import annotations

import dataclasses

import pytest

from _expt import assert_complete_run, load_dataset
from deepeft.experiments import get_experiment, resolve_params, run_experiment

pytestmark = pytest.mark.slow  # ~2.5 min: two experiment runs (the quick presets run in `make run`)

SMALL = {
    "ntk-fluctuations": {"cases": "relu,tanh@0.1:1.2", "widths": "12,24,48", "n_networks": 512, "table_networks": 256},
    "learning-rate-equivalence": {"activations": "relu", "depths": "3,12", "width": 48, "n_networks": 16, "steps": 32},
}


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    root = tmp_path_factory.mktemp("ntk-exps")
    out = {}
    for name, ov in SMALL.items():
        res = run_experiment(name, root / name, preset="quick", overrides=ov)
        out[name] = (res, root / name, load_dataset(root / name))
    return out


@pytest.mark.parametrize("name", list(SMALL))
def test_all_checks_pass_and_outputs_exist(runs, name):
    res, path, _ = runs[name]
    s = res.summary
    print(f"{name}: {s['n_checks']} checks, {s['n_failed']} failed, {s['timing']['total_s']:.1f} s")
    assert_complete_run(s, path)


def test_ntk_fluctuations_checks_can_fail(runs):
    """Theory scaled by 1.05 must fail at the exact layer 2 (and the table's theory is the digest's)."""
    _res, _, ds = runs["ntk-fluctuations"]
    p = resolve_params("ntk-fluctuations", "quick", overrides=SMALL["ntk-fluctuations"])
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
    _, _, ds = runs["learning-rate-equivalence"]
    p = resolve_params("learning-rate-equivalence", "quick", overrides=SMALL["learning-rate-equivalence"])
    exp = get_experiment("learning-rate-equivalence")
    swapped = ds.assign_coords(rule=list(ds.rule.values[::-1]))
    assert any(not c.passed for c in exp.analyze(p, swapped))
    p2 = dataclasses.replace(p, collapse_tol=0.0, max_z=0.0)
    assert any(not c.passed for c in exp.analyze(p2, ds))
