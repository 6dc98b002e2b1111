"""The lattice-field-theory experiments (lattice-meanfield, lattice-linear, lattice-relu) at reduced size:
every check passes, outputs exist, the printed coefficients are rejected, and the checks do fail when
theory and simulation disagree (the comparisons are not vacuous)."""

from __future__ import annotations

import numpy as np
import pytest

from _expt import assert_complete_run, load_dataset
from deepeft.errors import DeepEFTInputError
from deepeft.experiments import _lattice_common as lc
from deepeft.experiments import available_experiments, get_experiment, resolve_params, run_experiment

SMALL = {
    "lattice-meanfield": {"sigma_w2s": "0.3,1.5", "N": 64, "L": 48, "n_networks": 32, "n_trajectories": 2},
    "lattice-linear": {"sigma_w2s": "0.34,0.9", "N": 100, "L": 128, "n_networks": 48, "d_max": 2},
    "lattice-relu": {"sigma_w2s": "0.66,1.3", "N": 100, "L": 128, "n_networks": 48, "d_max": 1},
}


_load = load_dataset


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    root = tmp_path_factory.mktemp("lattice")
    return {
        name: (run_experiment(name, root / name, preset="quick", overrides=over), root / name)
        for name, over in SMALL.items()
    }


@pytest.mark.parametrize("name", list(SMALL))
def test_all_checks_pass_and_outputs_exist(runs, name):
    res, path = runs[name]
    s = res.summary
    z = [abs(c["z"]) for c in s["checks"] if c["z"] is not None and "printed" not in c["name"]]
    print(f"{name}: {s['n_checks']} checks, {s['n_failed']} failed, max |z| (verified) = {max(z):.2f}")
    assert_complete_run(s, path)


def test_registered_with_presets():
    names = available_experiments()
    for n in SMALL:
        assert n in names
        e = get_experiment(n)
        paper = resolve_params(e, "paper")
        if n == "lattice-meanfield":  # Fig. 1's own parameters
            assert (paper.N, paper.L, paper.sigma_b2, paper.n_networks) == (500, 100, 0.001, 200)
        else:  # the paper's simulation protocol (§5-6, App. 8.3)
            assert (paper.N, paper.L, paper.sigma_b2, paper.n_networks) == (200, 1024, 0.01, 200)
        assert len(e.tasks(paper)) >= 7


def test_printed_coefficients_rejected(runs):
    for name, fig_key in (("lattice-linear", "E1"), ("lattice-relu", "E6")):
        checks = runs[name][0].summary["checks"]
        rej = [c for c in checks if "printed" in c["name"]]
        assert rej and all(fig_key in c["name"] for c in rej)
        for c in rej:
            assert c["pass"] and abs(c["z"]) >= 5, c


def test_linear_dataset_contents(runs):
    ds = _load(runs["lattice-linear"][1])
    p = resolve_params("lattice-linear", "quick", overrides=SMALL["lattice-linear"])
    W = p.L // 2
    assert ds.S_sim.shape == (2, W // 2 + 1) and ds.traj_r.shape == (2, p.n_trajectories, p.L)
    # printed (14) read as the precision doubles every variance (E1)
    np.testing.assert_allclose(ds.C_printed.values, 2 * ds.C_theory.values, rtol=1e-10)
    # the windowed theory spectrum approaches S(q) (15) away from q = 0
    d = ds.sel(sigma_w2=0.34)
    np.testing.assert_allclose(d.S_window.values[4:], d.S_theory.values[4:], rtol=0.05)
    # exact E[r^2] trajectory = N q^l of the linear q-map; at late layers = r*^2
    np.testing.assert_allclose(d.r2_theory.values[-1], float(d.r_star) ** 2, rtol=1e-10)


def test_relu_dataset_contents(runs):
    ds = _load(runs["lattice-relu"][1])
    C = ds.C_theory.sel(sigma_w2=0.66, lag=0).values
    np.testing.assert_allclose(C[2, 2], 0.25, rtol=1e-10)  # Var ε̃_k = ¼ (E6)
    np.testing.assert_allclose(C[0, 0], 1.25 / (1 - 0.33**2), rtol=1e-8)
    assert ds.C_printed.sel(sigma_w2=0.66, lag=0, field="k", field2="k") > 0.35


def test_checks_are_not_vacuous():
    """The same statistics fail against a wrong theory: a 10% error in C(0), a biased spectrum."""
    rng = np.random.default_rng(0)
    M, W, a = 200, 256, 0.7
    x = np.zeros((M, W + 200))
    for l in range(1, W + 200):  # AR(1) with unit innovation: C(0) = 1/(1 − a²)
        x[:, l] = a * x[:, l - 1] + rng.standard_normal(M)
    x = x[:, 200:]
    from deepeft.lattice import estimate_lagged_covariance

    C = estimate_lagged_covariance(x, 0)
    c0 = 1 / (1 - a * a)
    assert lc.laplace_check("ok", c0, C.value[0], C.stderr[0], n_gap=100, min_n_gap=10).passed
    assert not lc.laplace_check("wrong", 1.1 * c0, C.value[0], C.stderr[0], n_gap=100, min_n_gap=10).passed
    q = 2 * np.pi * np.arange(W) / W
    S = 1 / (1 + a * a - 2 * a * np.cos(q))
    good = lc.band_spectra(x, S)
    bad = lc.band_spectra(x, 1.15 * S)
    for b in range(2):
        zg = (good["value"][b, 0, 0] - good["theory"][b, 0, 0]) / good["stderr"][b, 0, 0]
        zb = (bad["value"][b, 0, 0] - bad["theory"][b, 0, 0]) / bad["stderr"][b, 0, 0]
        assert abs(zg) < 5 and abs(zb) > 5
    # a non-zero mean in some modes is detected by the Fig. 9a statistic
    t2, th, se = lc.mode_mean_statistic(x)
    assert abs(t2 - th) / se < 5
    t2b, th, se = lc.mode_mean_statistic(x + 0.3 * np.cos(2 * np.pi * 5 * np.arange(W) / W))
    assert (t2b - th) / se > 5
    # outside the Laplace regime the systematic allowance is added and the name says so
    c = lc.laplace_check("near-critical", 1.0, 1.2, 0.01, n_gap=4, min_n_gap=10)
    assert c.passed and "beyond Laplace regime" in c.name and c.stderr > 0.2


def test_bad_parameters_rejected():
    with pytest.raises(DeepEFTInputError, match="detail_sigma_w2"):
        resolve_params("lattice-linear", "quick", overrides={"detail_sigma_w2": 0.5})
    with pytest.raises(DeepEFTInputError, match="sigma_w2s"):
        resolve_params("lattice-relu", "quick", overrides={"sigma_w2s": "0.5,2.5"})
    with pytest.raises(DeepEFTInputError, match="d_max"):
        resolve_params("lattice-linear", "quick", overrides={"L": 32, "d_max": 8})
