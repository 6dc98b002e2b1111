"""residual-criticality at reduced size: every check passes, and the checks fail when the theory is perturbed.

Slow (the experiment itself runs at its quick size in `make run`). V × 1.05 must fail, and so must the printed (B.24)
(the three-point feed dropped) — the erratum the experiment documents — and a 3 % slip of the kernel map (B.12).

The three runs share their ensembles (``SharedEnsembles``, one xdist group: the perturbations change the theory
only). With $DEEPEFT_QUICK_SUMMARY (CI, after `make run`) the passing run is read from that quick-preset run.

How V × 1.05 is seen (as in ``vertex-vs-ensemble``): V^{(2)} is exact at any width (layer 1 is Gaussian), so its check
has no allowance, and the ensembles estimate V from the conditional second moments A_i = E[z_i² | layer ℓ − 1]
(Rao–Blackwell; at γ = 0 the MLP's n Cov(Ĝ)), which with 65 536 networks resolves V^{(2)} to 0.55 % (tanh γ² = 0),
0.6 % (ReLU γ² = 0), 0.7 % (ReLU γ² = 0.5). Measured (quick width and depth, deep_depth 3000): V × 1.05 fails those
three V^{(2)} checks at |z| 8.5, 6.1, 6.1 (seed 0), 8.4, 7.8, 7.4 (seed 1), 10.4, 9.7, 6.6 (seed 2); unperturbed,
all 30 predictions pass at seeds 0–2 (V^{(2)} |z| ≤ 2.6); V × 1.03 fails none at seeds 0, 1 (|z| ≤ 4.9) and 2 at
seed 2 (|z| 6.7, 6.2), so 5 % is the smallest robust factor. Before (pair average of
z_i²z_j², 3000 networks, allowance 2(ℓ − 1)/n at every layer) it took V × 1.3. At ℓ ≥ 3 the allowance
4·((ℓ − 2)/n)·V for V's own O(1/n) correction (not computed for residual networks) stays.
"""

from __future__ import annotations

import pytest

from _expt import SharedEnsembles, quick_run
from deepeft.experiments import run_experiment

pytestmark = [pytest.mark.slow, pytest.mark.xdist_group("residual-criticality")]

SMALL = {"deep_depth": 3000}  # quick width, depth and networks (the ReLU findings need n = 128, L = 5; V^(2) 65 536)


@pytest.fixture(scope="module", autouse=True)
def shared_ensembles():
    with pytest.MonkeyPatch.context() as mp:
        yield SharedEnsembles().install(mp)


def _failed(tmp_path, name="run"):
    s = run_experiment("residual-criticality", tmp_path / name, preset="quick", overrides=SMALL, render=False).summary
    return s, [c for c in s["checks"] if not c["pass"]]


def test_residual_criticality_passes(tmp_path):
    q = quick_run("residual-criticality")
    if q is None:
        s, bad = _failed(tmp_path)
    else:  # the quick preset (larger than SMALL) run by `make run` with this code
        s, bad = q[0], [c for c in q[0]["checks"] if not c["pass"]]
    assert s["n_checks"] > 0 and not bad, bad[:3]
    kinds = {c["kind"] for c in s["checks"]}
    assert {"prediction", "finding", "resolution"} <= kinds


@pytest.mark.parametrize("mutation", ["scaled", "printed", "kernel"])
def test_residual_criticality_fails_for_perturbed_theory(tmp_path, monkeypatch, mutation):
    import dataclasses

    from deepeft.theory import residual_recursions as rr

    real = rr.residual_single_input

    def wrong(*a, **k):
        if mutation == "printed":
            return real(*a, **{**k, "three_point": False})
        r = real(*a, **k)
        if mutation == "kernel":  # a 3 % slip of the kernel map (B.12): seen by the exact K^(2) check
            return dataclasses.replace(r, K=1.03 * r.K)
        return dataclasses.replace(r, V=1.05 * r.V)

    monkeypatch.setattr(rr, "residual_single_input", wrong)
    _, bad = _failed(tmp_path, mutation)
    print(f"{mutation}: {len(bad)} failing checks")
    assert any(c["kind"] == "prediction" for c in bad)
    if mutation == "scaled":  # seen where V is exact at any width
        assert any("V^(2)" in c["name"] and abs(c["z"]) > 5 for c in bad), [c["name"] for c in bad]
    if mutation == "kernel":
        assert any("K^(2)" in c["name"] and abs(c["z"]) > 10 for c in bad), [c["name"] for c in bad]
