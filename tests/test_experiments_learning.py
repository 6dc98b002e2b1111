"""The learning experiments (kernel-gd-vs-trained, bayes-posterior, evidence-criticality, generalization) at
reduced size: every check passes and outputs exist; and a theory perturbed by a few percent (monkeypatched
into the experiment module) makes checks fail, so the comparisons are not vacuous."""

from __future__ import annotations

import importlib

import numpy as np
import pytest

from deepeft.errors import DeepEFTInputError
from deepeft.experiments import resolve_params, run_experiment
from _expt import assert_complete_run

SMALL = {
    "kernel-gd-vs-trained": {"n_networks": 1024, "times": "0,1,3,10"},
}
PERTURBED = {
    "kernel-gd-vs-trained": {"n_networks": 2048, "widths": "1024,2048", "times": "0,10"},
}


class _Runs:
    def __init__(self, root):
        self.root, self.done = root, {}

    def __getitem__(self, name):
        if name not in self.done:
            res = run_experiment(name, self.root / name, preset="quick", overrides=SMALL[name])
            self.done[name] = (res, self.root / name)
        return self.done[name]


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    return _Runs(tmp_path_factory.mktemp("learning"))


def _z_summary(s):
    z = [abs(c["z"]) for c in s["checks"] if c["z"] is not None]
    return f"{s['n_checks']} checks, {s['n_failed']} failed, max |z| = {max(z):.2f}"


@pytest.mark.parametrize("name", list(SMALL))
def test_all_checks_pass(runs, name):
    res, path = runs[name]
    print(_z_summary(res.summary))
    assert_complete_run(res.summary, path)
    kinds = {c["rule"].split(":")[0] for c in res.summary["checks"]}
    assert kinds <= {"prediction", "resolution", "finding"}, kinds


def _perturbed_run(tmp_path, monkeypatch, name, module, attr, wrap):
    mod = importlib.import_module(f"deepeft.experiments.{module}")
    monkeypatch.setattr(mod, attr, wrap(getattr(mod, attr)))
    res = run_experiment(name, tmp_path / name, preset="quick", overrides=PERTURBED[name])
    return res.summary


def test_kernel_gd_fails_for_perturbed_theory(tmp_path, monkeypatch):
    """m_t and cov_t scaled by 1.03 (M_t untouched): the mean checks must fail."""

    def wrap(f):
        def g(*a, **k):
            mean, cov, Mt = f(*a, **k)
            return 1.03 * mean, 1.03 * cov, Mt

        return g

    s = _perturbed_run(tmp_path, monkeypatch, "kernel-gd-vs-trained", "kernel_gd_vs_trained", "_theory", wrap)
    failed = [c["name"] for c in s["checks"] if not c["pass"]]
    print(len(failed), "failed of", s["n_checks"], failed[:4])
    assert sum("mean" in f for f in failed) >= 3


def test_kernel_gd_exponent_from_exact_power_law():
    from deepeft.experiments._learning_common import exponent_fit, power_law_check

    n = np.array([512.0, 1024.0, 2048.0])
    p, sp, la, _ = exponent_fit(n, 3.0 / n, 0.01 * 3.0 / n)
    assert abs(p - 1) < 1e-12 and abs(la - np.log(3.0)) < 1e-10 and sp > 0
    ok = power_law_check("D", n, 3.0 / n**1.5, 0.01 * 3.0 / n**1.5, expected=1.0, max_z=5, max_se=0.3)
    assert not ok[0].passed and ok[1].passed


@pytest.mark.parametrize(
    "name, over, msg",
    [
        ("kernel-gd-vs-trained", {"widths": "512"}, "two distinct"),
        ("kernel-gd-vs-trained", {"widths": "256,512"}, ">= 512"),
        ("kernel-gd-vs-trained", {"times": "1,3"}, "start at 0"),
        ("kernel-gd-vs-trained", {"activation": "relux"}, "relu"),
    ],
)
def test_bad_parameters_rejected(name, over, msg):
    with pytest.raises(DeepEFTInputError, match=msg):
        resolve_params(name, "quick", overrides=over)
