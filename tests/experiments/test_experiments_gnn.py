"""gnn-oversmoothing at reduced size: every check passes, the check counts follow the sweep, and the checks fail
when the theory is perturbed (node correlations shifted by 3 %, or the spectral-gap rate by 5 %)."""

from __future__ import annotations

import numpy as np
import pytest

from deepeft.experiments import resolve_params, run_experiment

pytestmark = pytest.mark.slow

SMALL = {"graphs": "karate", "cw_gamma": "1.0,0.0,1.0,0.6", "depth": 6, "width": 32, "n_networks": 64, "groups": 3,
         "fit_layers": 3, "theory_depth": 30, "train_depths": "2", "train_settings": "1", "train_networks": 8,
         "train_steps": 100, "train_width": 16}


def test_gnn_oversmoothing_small_run(tmp_path):
    res = run_experiment("gnn-oversmoothing", tmp_path, overrides=SMALL, render=True)
    s = res.summary
    assert s["n_checks"] > 0 and s["n_failed_all"] == 0, [c for c in s["checks"] if not c["pass"]][:5]
    p = resolve_params("gnn-oversmoothing", "quick", overrides=SMALL)
    n_tasks = len(p.graphs) * len(p.cw_gamma) // 2
    assert s["n_checks"] == n_tasks * ((p.depth - 1) + 2)  # per layer ℓ ≥ 2, ensemble rate, asymptotic rate
    n_train = len(p.train_depths) * len(p.train_settings)  # karate only: trained accuracy above chance (findings)
    assert s["kinds"]["finding"]["n_checks"] == n_train
    for f in ("collapse.png", "phase.png", "training.png"):
        assert (tmp_path / f).exists()


def test_gnn_oversmoothing_fails_for_perturbed_theory(tmp_path, monkeypatch):
    import deepeft.theory.gnn as gnn
    import deepeft.theory.kernel as kmod

    real = kmod.kernel

    def shifted(net, X, *a, **k):  # off-diagonal correlations 3 % smaller
        K = np.array(real(net, X, *a, **k))
        d = np.einsum("lii->li", K).copy()
        K *= 0.97
        idx = np.arange(K.shape[-1])
        K[:, idx, idx] = d
        return K

    monkeypatch.setattr(kmod, "kernel", shifted)
    s = run_experiment("gnn-oversmoothing", tmp_path / "a", overrides=SMALL, render=False).summary
    assert any(not c["pass"] and c["kind"] == "prediction" and "1−ρ̄^(" in c["name"] for c in s["checks"])
    monkeypatch.setattr(kmod, "kernel", real)

    rate = gnn.collapse_rate

    def faster(*a, **k):
        out = rate(*a, **k)
        return type(out)(out.k, out.chi_perp, out.r * 1.05, out.r_inf * 1.05, out.xi)

    monkeypatch.setattr(gnn, "collapse_rate", faster)
    s = run_experiment("gnn-oversmoothing", tmp_path / "b", overrides=SMALL, render=False).summary
    assert any(not c["pass"] and "asymptotic slope" in c["name"] for c in s["checks"])
