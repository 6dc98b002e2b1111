"""The Ch. 4–5 effective-theory experiments (vertex-vs-ensemble, criticality) at reduced size: every check
passes, the outputs exist, the check counts are what the sweep implies, and the checks fail when the theory is
perturbed (the comparisons are not vacuous)."""

from __future__ import annotations

import math

import numpy as np
import pytest

from _expt import load_dataset
from deepeft.errors import DeepEFTInputError
from deepeft.experiments import available_experiments, get_experiment, resolve_params, run_experiment
from deepeft.experiments.criticality_curves import BOOK_CONSTANTS, _half_ulp
from deepeft.experiments.vertex_vs_ensemble import arch_label, arch_widths, vertex_pairs

SMALL = {
    "vertex-vs-ensemble": {
        "activations": "relu,tanh_bump",
        "widths": "16,48",
        "unequal_widths": "24,16,32",
        "cw_profile": "1.0,1.3,0.75",
        "depth": 3,
        "n_networks": 4096,
    },
    "criticality": {"activations": "tanh", "depth": 6, "width": 32, "n_networks": 2048},
}


_load = load_dataset


class _Runs:
    """Each experiment runs once per test process, on first use."""

    def __init__(self, root):
        self.root, self.done = root, {}

    def __getitem__(self, name):
        if name not in self.done:
            res = run_experiment(name, self.root / name, preset="quick", overrides=SMALL[name])
            self.done[name] = (res, self.root / name, _load(self.root / name))
        return self.done[name]


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    return _Runs(tmp_path_factory.mktemp("vertex-exps"))


def _params(name):
    return resolve_params(name, "quick", overrides=SMALL[name])


@pytest.mark.parametrize("name", list(SMALL))
def test_all_checks_pass_and_outputs_exist(runs, name):
    res, path, _ = runs[name]
    s = res.summary
    z = [abs(c["z"]) for c in s["checks"] if c["z"] is not None]
    print(f"{name}: {s['n_checks']} checks, {s['n_failed']} failed, max |z| = {max(z):.2f}, {s['timing']['total_s']:.1f} s")
    assert s["n_checks"] > 0 and s["n_failed"] == 0, [c for c in s["checks"] if not c["pass"]][:5]
    for f in ("summary.json", "report.html", "data.zarr", *s["figures"]):
        assert (path / f).exists(), f
    assert s["figures"]


def test_registered_in_order():
    names = available_experiments()
    assert names.index("kernel-vs-ensemble") < names.index("vertex-vs-ensemble") < names.index("criticality")
    for n in SMALL:
        assert resolve_params(get_experiment(n), "paper").seed == 0


def test_vertex_check_counts_and_figures(runs):
    res, _, ds = runs["vertex-vs-ensemble"]
    p = _params("vertex-vs-ensemble")
    n_arch = len(p.widths) + 1
    per_layer = 6 + 21  # metric α ≤ β and the distinct V_(α1α2)(α3α4) for N = 3
    exp = get_experiment("vertex-vs-ensemble")
    resolved = [exp.residual_fits(p, ds, a)["resolved"] for a in p.activations]
    assert resolved[0]  # ReLU's off-diagonal G1 is resolved even here
    fits = len(p.activations) * 6 + sum(resolved)  # intercepts per entry + one slope where resolved
    assert res.summary["n_checks"] == len(p.activations) * n_arch * (p.depth - 1) * per_layer + fits
    assert set(res.summary["figures"]) == {"metric_vertex.png", "vertex_collapse.png", "residual.png", "zscores.png"}
    # the unequal architecture carries its own widths: n_{ℓ−1} = (n0, 24, 16)
    assert list(ds.n_prev.sel(activation="relu", arch="24-16-32").values) == [p.input_dim, 24, 16]
    # ReLU at criticality: V_(αα)(αα) = 5 K_αα² Σ_{ℓ'<ℓ} n_{ℓ−1}/n_ℓ' (docs/criticality.md), every input
    pt = ds.sel(activation="relu", arch="24-16-32", layer=3)
    Kd = np.diagonal(pt.K.values)
    Vd = np.array([pt.V.values[a, a, a, a] for a in range(3)])
    np.testing.assert_allclose(Vd / 16, 5 * Kd**2 * (1 / 24 + 1 / 16), rtol=1e-8)


def test_vertex_checks_fail_for_perturbed_theory(runs):
    _, _, ds = runs["vertex-vs-ensemble"]
    exp = get_experiment("vertex-vs-ensemble")
    p = _params("vertex-vs-ensemble")
    bad = ds.copy()
    bad["V"] = ds.V * 1.5  # a 50% wrong vertex
    failed = [c for c in exp.analyze(p, bad) if not c.passed]
    assert sum("V^(" in c.name for c in failed) > 10
    bad = ds.copy()
    bad["G"] = ds.G + 0.05 * ds.K  # metric off by 5% of K
    failed = [c for c in exp.analyze(p, bad) if not c.passed]
    assert sum("E[zz]" in c.name for c in failed) > 5
    bad = ds.copy()
    bad["G"] = ds.K + 4 * (ds.G - ds.K)  # G1 four times too large: the intercept fits reject it (|z| ≥ Z_MAX = 5)
    checks = [c for c in exp.analyze(p, bad) if "intercept" in c.name]
    print("intercept z with G1 × 4:", [round(c.z, 2) for c in checks])
    assert sum(not c.passed for c in checks) >= 1


def test_criticality_constants_and_counts(runs):
    res, _, ds = runs["criticality"]
    p = _params("criticality")
    n_phase = len(p.activations) * len(p.cw_ratios) * (p.depth - 1)  # E[z²] per layer ℓ ≥ 2
    n_locate = len(p.activations) * (len(p.cw_ratios) + 1)  # χ_⊥ probe per ratio + the located C_W*
    assert res.summary["n_checks_all"] == n_phase + n_locate + len(BOOK_CONSTANTS)
    for f in ("fig5_1.png", "fig5_2.png", "fig5_3.png", "kernel_phases.png"):
        assert f in res.summary["figures"]
    # below / at / above critical: tanh K^(L) ordered, and the ensemble follows
    last = ds.isel(layer=-1).sel(activation="tanh")
    assert np.all(np.diff(last.K.values) > 0) and np.all(np.diff(last.simulation.values) > 0)
    names = [c["name"] for c in res.summary["checks"] if c["name"].startswith("book")]
    assert any("SWISH K*" in n for n in names) and any("tanh V/K² ℓ=100" in n for n in names)


def test_criticality_checks_fail_for_perturbed_theory(runs):
    _, _, ds = runs["criticality"]
    exp = get_experiment("criticality")
    p = _params("criticality")
    bad = ds.copy()
    bad["G"] = ds.G * 1.05
    failed = [c for c in exp.analyze(p, bad) if not c.passed]
    assert sum("E[z²]" in c.name for c in failed) >= 5
    bad = ds.copy()
    comp = ds.const_computed.values.copy()
    i = list(ds.constant.values).index("SWISH K*")
    comp[i] += 1e-7  # the 9th digit of (5.101) is resolved
    bad["const_computed"] = (("constant",), comp)
    failed = [c.name for c in exp.analyze(p, bad) if not c.passed]
    assert failed == ["book SWISH K* (5.101)"]


def test_helpers():
    assert _half_ulp("0.627") == pytest.approx(5e-4)
    assert _half_ulp("-2.84979219e-6") == pytest.approx(5e-15)
    assert _half_ulp("64.8") == pytest.approx(0.05)
    q = vertex_pairs(3)
    assert len(q) == 21 and len(set(q)) == 21 and len(vertex_pairs(4)) == 55
    assert arch_label((32,) * 4) == "32" and arch_widths("32", 4) == (32,) * 4
    assert arch_widths(arch_label((64, 32, 96)), 3) == (64, 32, 96)
    assert math.isclose(float(BOOK_CONSTANTS[0][1]), 14.32017362)


def test_parameter_errors():
    with pytest.raises(DeepEFTInputError, match="unequal_widths"):
        resolve_params("vertex-vs-ensemble", "quick", overrides={"depth": 5})
    with pytest.raises(DeepEFTInputError, match="tanh_bump"):
        resolve_params("vertex-vs-ensemble", "quick", overrides={"activations": "tanhh"})
    exp = get_experiment("criticality")
    with pytest.raises(DeepEFTInputError, match="critical point"):
        exp.tasks(resolve_params(exp, "quick", overrides={"activations": "softplus"}))
