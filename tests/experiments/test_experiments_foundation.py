"""The foundation validation experiments (kernel-vs-ensemble, deep-linear-exact, ntk-forward-vs-autodiff)
at reduced size: every check passes, outputs exist, and the checks do fail when theory and simulation
disagree (the comparisons are not vacuous)."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest

from _expt import Runs, load_dataset
from conftest import assert_close
from deepeft.errors import DeepEFTInputError
from deepeft.experiments import available_experiments, get_experiment, resolve_params
from deepeft.experiments._foundation import biased_check, fixed_inputs, intercept_fit

SMALL = {
    "kernel-vs-ensemble": {
        "activations": "relu,erf",
        "widths": "16,32",
        "depth": 3,
        "n_networks": 1024,
    },
    "deep-linear-exact": {"widths": "8,16", "depth": 4, "n_networks": 4096},
    "ntk-forward-vs-autodiff": {"activations": "tanh", "widths": "16", "depth": 3, "n_networks": 1024, "n_check_networks": 1},
}


_load = load_dataset


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    return Runs(tmp_path_factory.mktemp("foundation"), SMALL)


def _print_z(summary):
    z = [c["z"] for c in summary["checks"] if c["z"] is not None]
    print(f"{len(summary['checks'])} checks, {summary['n_failed']} failed, max |z| = {max(map(abs, z)):.2f}")


@pytest.mark.parametrize("name", list(SMALL))
def test_all_checks_pass_and_outputs_exist(runs, name):
    res, path = runs[name]
    s = res.summary
    _print_z(s)
    assert s["n_checks"] > 0 and s["n_failed"] == 0, [c for c in s["checks"] if not c["pass"]][:5]
    for c in s["checks"]:
        assert set(c) == {"name", "kind", "theory", "simulation", "stderr", "z", "pass", "rule"}
    for f in ("summary.json", "report.html", "data.zarr", *s["figures"]):
        assert (path / f).exists(), f
    assert s["figures"], "each experiment draws at least one figure"
    assert json.loads((path / "summary.json").read_text())["n_checks"] == s["n_checks"]


def test_registered_in_order():
    names = available_experiments()
    got = [n for n in names if n in SMALL]
    assert got == ["kernel-vs-ensemble", "deep-linear-exact", "ntk-forward-vs-autodiff"]
    for n in SMALL:
        e = get_experiment(n)
        assert e.presets["paper"] and resolve_params(e, "paper").seed == 0


def test_kernel_checks_count_and_nlo(runs):
    res, path = runs["kernel-vs-ensemble"]
    ds = _load(path)
    p = resolve_params("kernel-vs-ensemble", "quick", overrides=SMALL["kernel-vs-ensemble"])
    per_task = p.depth * p.n_inputs * (p.n_inputs + 1) // 2
    assert np.all(np.isfinite(ds.G_nlo.values))  # always K + G1/n: no silent K-only fallback
    n_slope = len(p.activations) * p.n_inputs * (p.n_inputs + 1) // 2
    assert res.summary["n_checks"] == len(p.activations) * len(p.widths) * per_task + n_slope
    # ReLU at criticality: E[z_α²] = K_αα exactly at any width, so the NLO correction vanishes there
    K = ds.K.sel(activation="relu").isel(width=0)
    d = np.diagonal(ds.G_nlo.sel(activation="relu", width=16).values - K.values, axis1=1, axis2=2)
    assert np.max(np.abs(d)) < 1e-10
    # layer 1: the theory is the Gram matrix (4.8)
    X = fixed_inputs(p.n_inputs, p.input_dim)
    C_b = float(ds.K.sel(activation="relu", layer=1).isel(width=0).values[0, 0]) - 2.0 * X[0] @ X[0] / p.input_dim
    assert abs(C_b) < 1e-12


def test_kernel_checks_fail_for_wrong_theory(runs):
    """Scale the simulated metric by 1.15 (a 15% discrepancy): deep layers must fail."""
    _, path = runs["kernel-vs-ensemble"]
    exp = get_experiment("kernel-vs-ensemble")
    p = resolve_params(exp, "quick", overrides=SMALL["kernel-vs-ensemble"])
    ds = _load(path)
    bad = ds.copy()
    bad["simulation"] = ds.simulation * 1.15
    failed = [c for c in exp.analyze(p, bad) if not c.passed]
    assert len(failed) > 10


def test_deep_linear_checks_fail_for_wrong_width(runs):
    """Theory of a different width (n → 2n) must be rejected by the ensembles of width n."""
    _, path = runs["deep-linear-exact"]
    exp = get_experiment("deep-linear-exact")
    p = resolve_params(exp, "quick", overrides=SMALL["deep-linear-exact"])
    ds = _load(path)
    bad = ds.copy()
    bad["kurtosis_theory"] = ds.kurtosis_theory / 2  # ≈ the excess kurtosis 6(ℓ−1)/n of width 2n
    failed = [c for c in exp.analyze(p, bad) if not c.passed and "kurtosis" in c.name]
    assert len(failed) >= 2
    # exact numbers: (1 + 2/n)^(ℓ−1) − 1 for the normalised connected 4-pt function
    pt = ds.sel(width=8, input=0)
    expect = (1 + 2 / 8) ** (ds.layer.values - 1) - 1
    np.testing.assert_allclose(pt.connected4_theory.values / pt.G2.values**2, expect, rtol=1e-12)


def test_ntk_forward_autodiff_agree_to_rounding(runs):
    res, path = runs["ntk-forward-vs-autodiff"]
    ds = _load(path)
    r = float(ds.rel_diff.max())
    print("max rel diff forward vs autodiff:", r)
    assert 0 <= r < 1e-12
    exp = get_experiment("ntk-forward-vs-autodiff")
    p = resolve_params(exp, "quick", overrides=SMALL["ntk-forward-vs-autodiff"])
    bad = ds.copy()
    bad["theta"] = ds.theta * 1.2
    assert sum(not c.passed for c in exp.analyze(p, bad)) > 3


def test_biased_check_rule():
    ok = biased_check("x", 1.0, 1.04, 0.01, scale=1.0, depth_factor=3, n=100, order=1, coef=1.0, max_z=5.0, what="K")
    assert ok.passed and math.isclose(ok.z, 4.0) and "0.05 + 0.03" in ok.rule
    bad = biased_check("x", 1.0, 1.09, 0.01, scale=1.0, depth_factor=3, n=100, order=1, coef=1.0, max_z=5.0, what="K")
    assert not bad.passed  # 0.09 > 0.05 + 0.03
    nlo = biased_check("x", 1.0, 1.06, 0.01, scale=1.0, depth_factor=3, n=100, order=2, coef=1.0, max_z=5.0, what="G")
    assert not nlo.passed  # allowance (3/100)² = 9e-4 only
    # zero stderr: the rule text states the allowance it applies
    det = biased_check("x", 1.0, 1.05, 0.0, scale=1.0, depth_factor=3, n=10, order=1, coef=1.0, max_z=5.0, what="K")
    assert det.passed and "+ 0.3" in det.rule and "((ℓ−2)₊/n)" in det.rule
    exact = biased_check("x", 2.0, 2.0 + 1e-15, 0.0, scale=1.0, depth_factor=0, n=10, order=1, coef=1.0, max_z=5.0, what="Θ")
    off = biased_check("x", 2.0, 2.001, 0.0, scale=1.0, depth_factor=0, n=10, order=1, coef=1.0, max_z=5.0, what="Θ")
    assert exact.passed and not off.passed


def test_intercept_fit_recovers_line():
    x = np.array([0.1, 0.05, 0.02])
    a, sa, b, sb = intercept_fit(x, 2.0 - 3.0 * x, np.full(3, 0.01))
    assert abs(a - 2.0) < 1e-12 and abs(b + 3.0) < 1e-10 and sa > 0 and sb > 0


def test_fixed_inputs_deterministic():
    X = fixed_inputs(4, 3)
    np.testing.assert_array_equal(X, fixed_inputs(4, 3))
    np.testing.assert_allclose(np.sum(X**2, axis=1) / 3, np.linspace(0.6, 1.4, 4))


@pytest.mark.parametrize(
    "name, over, msg",
    [
        ("kernel-vs-ensemble", {"activations": "relu,tanhh"}, "tanh"),
        ("kernel-vs-ensemble", {"widths": "16,16"}, "repeated"),
        ("ntk-forward-vs-autodiff", {"activations": "relu,relu"}, "repeated"),
        ("deep-linear-exact", {"C_W": 0.0}, "C_W"),
    ],
)
def test_bad_parameters_rejected(name, over, msg):
    with pytest.raises(DeepEFTInputError, match=msg):
        resolve_params(name, "quick", overrides=over)


def test_nlo_metric_fails_loudly(monkeypatch):
    """No silent K-only fallback: an unavailable or non-finite NLO theory raises."""
    import sys

    from deepeft.experiments import _foundation as fd
    from deepeft.theory import vertex as tv

    net = fd.critical_net("tanh", 8, 3, 2)
    X = fixed_inputs(2, 2)
    G = fd.nlo_metric(net, X)
    assert G.shape == (3, 2, 2) and np.all(np.isfinite(G))
    K = tv.vertex_flow(net, X).K
    assert_close(G[:2], K[:2], "exact")  # G1 = 0 at ℓ = 1, 2
    assert np.max(np.abs(G - K)) > 1e-4  # tanh: a non-zero 1/n correction at ℓ = 3

    class Flow:
        def metric(self):
            return np.full((3, 2, 2), np.nan)

    monkeypatch.setattr(tv, "vertex_flow", lambda net, X, nlo: Flow())
    with pytest.raises(RuntimeError, match="not finite"):
        fd.nlo_metric(net, X)
    monkeypatch.setitem(sys.modules, "deepeft.theory.vertex", None)  # import fails
    with pytest.raises(RuntimeError, match="unavailable"):
        fd.nlo_metric(net, X)
    assert not hasattr(fd, "nlo_metric_or_none")


def test_kernel_analysis_refuses_a_store_without_nlo(runs):
    _, path = runs["kernel-vs-ensemble"]
    ds = _load(path)
    p = resolve_params("kernel-vs-ensemble", "quick", overrides=SMALL["kernel-vs-ensemble"])
    bad = ds.copy()
    bad["G_nlo"] = ds.G_nlo * np.nan
    with pytest.raises(RuntimeError, match="never K alone"):
        get_experiment("kernel-vs-ensemble").analyze(p, bad)
