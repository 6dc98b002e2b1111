"""The learning experiments (kernel-gd-vs-trained, bayes-posterior, evidence-criticality, generalization,
cross-entropy-vs-trained) at
reduced size: every check passes and outputs exist; and a theory perturbed by a few percent (monkeypatched
into the experiment module) makes checks fail, so the comparisons are not vacuous."""

from __future__ import annotations

import importlib

import numpy as np
import pytest

from _expt import Runs, assert_complete_run
from deepeft.errors import DeepEFTInputError
from deepeft.experiments import resolve_params, run_experiment

SMALL = {
    "kernel-gd-vs-trained": {"n_networks": 1024, "times": "0,1,3,10"},
    "bayes-posterior": {"n_networks": 2048},
    "evidence-criticality": {"n_networks": 4000, "tanh_C_W": "0.6,1.6,0.1", "depths": "2,4,8,16,32,64"},
    "generalization": {"depths": "2"},
    "cross-entropy-vs-trained": {"n_networks": 512, "steps": "0,5,20", "theory_samples": 8192},
}
PERTURBED = {
    "kernel-gd-vs-trained": {"n_networks": 2048, "widths": "1024,2048", "times": "0,10"},
    "bayes-posterior": {"n_networks": 4096},
    "evidence-criticality": {"depths": "2,4", "relu_C_W": "1.0,1.6,0.01", "tanh_C_W": "0.8,1.2,0.2"},
    "generalization": {"depths": "2", "activations": "tanh"},
}


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    return Runs(tmp_path_factory.mktemp("learning"), SMALL)


def _z_summary(s):
    z = [abs(c["z"]) for c in s["checks"] if c["z"] is not None]
    return f"{s['n_checks']} checks, {s['n_failed']} failed, max |z| = {max(z):.2f}"


@pytest.mark.parametrize("name", list(SMALL))
def test_all_checks_pass(runs, name):
    res, path = runs[name]
    print(_z_summary(res.summary))
    assert_complete_run(res.summary, path)
    kinds = {c["kind"] for c in res.summary["checks"]}
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


def _scale_theory(factor):
    def wrap(f):
        def g(*a, **k):
            return tuple(factor * x for x in f(*a, **k))

        return g

    return wrap


def test_bayes_posterior_fails_for_perturbed_theory(tmp_path, monkeypatch):
    """m^∞ and 𝕂 scaled by 1.05: the n → ∞ intercepts (quadratic fits in 1/n, se ≈ 0.4–1 %) must reject them."""
    s = _perturbed_run(tmp_path, monkeypatch, "bayes-posterior", "bayes_posterior", "_theory", _scale_theory(1.05))
    failed = [c["name"] for c in s["checks"] if not c["pass"]]
    print(len(failed), "failed of", s["n_checks"], failed[:4])
    assert sum("n → ∞" in f for f in failed) >= 4


def test_evidence_fails_for_perturbed_theory(tmp_path, monkeypatch):
    """log evidence scaled by 1.03 (the evidence itself off by ≈ 5 %): the Monte Carlo checks must fail."""

    def wrap(f):
        return lambda *a, **k: 1.03 * f(*a, **k)

    s = _perturbed_run(tmp_path, monkeypatch, "evidence-criticality", "evidence_criticality", "_log_evidence", wrap)
    failed = [c["name"] for c in s["checks"] if not c["pass"]]
    print(len(failed), "failed of", s["n_checks"], failed[:4])
    assert sum("Monte Carlo" in f for f in failed) == 2


def test_generalization_fails_for_perturbed_theory(tmp_path, monkeypatch):
    """Every theory number (robustness, variances, *-polation means) scaled by 1.03: checks must fail."""
    s = _perturbed_run(tmp_path, monkeypatch, "generalization", "generalization", "_theory", _scale_theory(1.03))
    failed = [c["name"] for c in s["checks"] if not c["pass"]]
    print(len(failed), "failed of", s["n_checks"], failed[:4])
    assert sum("*-polation mean" in f for f in failed) >= 2


def test_cross_entropy_fails_for_perturbed_theory(runs):
    """The stored small run re-analysed (a) with the per-network infinite-width trajectories off by 3 % (resid
    shifted by −0.03·p_∞: the sharp control-variate checks of the dynamics must fail), and (b) with the
    prior-averaged p_∞ scaled by 1.10 (the plain ensemble means resolve p_∞ only to ≈ ±5·0.006 at 512 networks)."""
    import xarray as xr

    from deepeft.experiments import get_experiment

    _, path = runs["cross-entropy-vs-trained"]
    exp = get_experiment("cross-entropy-vs-trained")
    p = resolve_params("cross-entropy-vs-trained", "quick", overrides=SMALL["cross-entropy-vs-trained"])
    ds = xr.open_zarr(path / "data.zarr").load()
    assert all(c.passed for c in exp.analyze(p, ds))
    bad = ds.assign(theory_prob=1.10 * ds.theory_prob)
    failed = [c.name for c in exp.analyze(p, bad) if not c.passed]
    assert sum("n → ∞" in f and "p^∞" not in f for f in failed) >= 2, failed
    bad = ds.assign(resid=ds.resid - 0.03 * ds.theory_prob)
    failed = [c.name for c in exp.analyze(p, bad) if not c.passed]
    assert sum("p^∞ (own initialization)" in f for f in failed) >= 3, failed


def test_random_feature_posterior_equals_bayes_module():
    """The batched last-layer posterior of one feature draw = theory.bayes.posterior_from_kernels on its kernel."""
    from deepeft.experiments.bayes_posterior import random_feature_posterior
    from deepeft.theory.bayes import posterior_from_kernels

    rng = np.random.default_rng(3)
    phi = np.abs(rng.standard_normal((2, 6, 10)))
    Y = rng.standard_normal((4, 1))
    m, c = random_feature_posterior(phi, 0.3, 1.7, 4, Y, 0.05)
    for s in range(2):
        k = 0.3 + 1.7 / 10 * phi[s] @ phi[s].T
        post = posterior_from_kernels(k[:4, :4], k[4:, :4], k[4:, 4:], Y, 0.05)
        np.testing.assert_allclose(m[s], post.mean[:, 0], rtol=1e-10, atol=1e-12)
        np.testing.assert_allclose(c[s], post.cov, rtol=1e-10, atol=1e-12)


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
        ("bayes-posterior", {"widths": "32,64,128"}, "four distinct"),
        ("generalization", {"widths": "512"}, "two distinct"),
        ("cross-entropy-vs-trained", {"widths": "64"}, "two distinct"),
        ("cross-entropy-vs-trained", {"steps": "5,10"}, "start at 0"),
    ],
)
def test_bad_parameters_rejected(name, over, msg):
    with pytest.raises(DeepEFTInputError, match=msg):
        resolve_params(name, "quick", overrides=over)
