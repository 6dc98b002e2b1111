"""The running-couplings and lattice beyond-J_D = 0 experiments at reduced size: every check passes, outputs exist,
and the analysis fails on perturbed theory (the comparisons are not vacuous). Heavy (ensembles, MCMC): slow."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from _expt import assert_complete_run, load_dataset
from deepeft.experiments import get_experiment, resolve_params, run_experiment

SMALL = {
    "running-couplings": {"activations": "tanh", "width": 24, "depth": 3, "n_networks": 2000},
    "lattice-perturbed": {"N": 8, "L": 3, "J_D": "0,1", "chains": 8, "sweeps": 1600, "burn": 100, "n_reweight": 4096},
    "lattice-finite-n": {"Ns": "100,400", "L": 16, "layers": "7,15", "n_networks": 1500},
}

pytestmark = pytest.mark.slow


@pytest.mark.parametrize("name", list(SMALL))
def test_small_run_passes_and_fails_when_perturbed(tmp_path, name):
    res = run_experiment(name, tmp_path / name, preset="quick", overrides=SMALL[name])
    assert_complete_run(res.summary, tmp_path / name)
    exp, p = get_experiment(name), resolve_params(name, "quick", overrides=SMALL[name])
    ds = load_dataset(tmp_path / name)
    # 1/g_m off by 10% (SE ≈ 1%), the reference overlaps by 50%, G1 by a factor 8 (the O(1/N) term is a few SE)
    var, factor = {"running-couplings": ("inv_g", 1.1), "lattice-perturbed": ("ref", 1.5),
                   "lattice-finite-n": ("G1", 8.0)}[name]
    bad = ds.copy()
    bad[var] = bad[var] * factor
    assert any(not c.passed for c in exp.analyze(p, bad)), f"{name}: perturbed {var} still passes"
    if name == "lattice-perturbed":
        assert float(ds.rhat.max()) < 1.01


def test_paper_presets_resolve():
    for name in SMALL:
        p = resolve_params(name, "paper")
        assert dataclasses.is_dataclass(p) and p.seed == 0
    assert resolve_params("running-couplings", "paper").n_networks == 100_000
    assert np.isclose(resolve_params("lattice-finite-n", "paper").Ns[-1], 800)
