"""The running-couplings and lattice beyond-J_D = 0 experiments at reduced size: every check passes, outputs exist,
and the analysis fails on perturbed theory (the comparisons are not vacuous). Heavy (ensembles, MCMC): slow."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from _expt import assert_complete_run, load_dataset
from deepeft.experiments import get_experiment, resolve_params, run_experiment

SMALL = {
    "running-couplings": {"activations": "tanh", "width": 24, "depth": 3, "n_networks": 4000},
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
    # The smallest robust slips at these sizes (max |z| of the predictions, scanned on one run, seed 0):
    # * running-couplings: the theory 1/g_m × 1.03 and v × 1.2. With the conditional (Rao–Blackwell) correlators
    #   1/g_m is measured to 0.23–0.35 % at layer 2 (4000 networks; the raw neuron moments gave ≈ 1.6–2.6 %, where
    #   only × 1.1 failed): × 1.03 fails at ℓ = 2 with max |z| 7.6–14.5 over 12 ensemble seeds (v × 1.2: |z| 7.4–12.5, v's SE
    #   1.7–2.9 %); unperturbed z over those 12 seeds: 1/g_m sd 1.08 (max |z| 3.1), v sd 0.84, slope sd 0.88.
    # * lattice-perturbed: the exact reference × 1.05 fails 8 predictions (|z| ≤ 8.2; × 1.03: 2 at |z| 5.7).
    # * lattice-finite-n: the leading K × 1.02 fails (|z| 7.6); G1 enters as G1/N, a few SE at N = 100, 400, so
    #   only G1 × 4 fails (|z| 6–8; × 2: max |z| 4.8).
    slips = {"running-couplings": [("inv_g", 1.03), ("v", 1.2)], "lattice-perturbed": [("ref", 1.05)],
             "lattice-finite-n": [("K", 1.02), ("G1", 4.0)]}[name]
    for var, factor in slips:
        bad = ds.copy()
        bad[var] = bad[var] * factor
        failed = [c for c in exp.analyze(p, bad) if not c.passed and c.kind == "prediction"]
        assert failed, f"{name}: {var} × {factor} still passes every prediction"
    if name == "lattice-perturbed":
        assert float(ds.rhat.max()) < 1.01


def test_paper_presets_resolve():
    for name in SMALL:
        p = resolve_params(name, "paper")
        assert dataclasses.is_dataclass(p) and p.seed == 0
    assert resolve_params("running-couplings", "paper").n_networks == 100_000
    assert np.isclose(resolve_params("lattice-finite-n", "paper").Ns[-1], 800)
