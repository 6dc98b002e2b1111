"""``de.advise`` on residual MLPs (issue 15 items 1 + 4): the residual critical C_W(γ) (B.20)–(B.21), the residual
single-input recursion (B.12)–(B.26), r*(γ) (B.36) against the digest's numbers, γ ≥ 1 refused, ``--gamma`` in the CLI.
"""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
from typer.testing import CliRunner

import deepeft as de

ResidualMLP = de.ResidualMLP

pytestmark = pytest.mark.filterwarnings("ignore::deepeft.DeepEFTWarning")
G = math.sqrt(0.5)  # γ² = 0.5


def _res(act, C_W_hidden, C_W_ends, *, L=12, n=64, n_out=1, gamma=G):
    return ResidualMLP(4, [n] * (L - 1), n_out, act, C_b=0.0, C_W=[C_W_ends] + [C_W_hidden] * (L - 2) + [C_W_ends],
                       gamma=gamma)


def test_critical_residual_numbers_come_from_the_residual_theory():
    from deepeft.theory.residual import residual_critical_point
    from deepeft.theory.residual_recursions import residual_single_input

    net = _res("tanh", 0.5, 1.0)  # C_W(γ) = (1 − γ²)/σ₁² = 0.5 (B.21)
    a = de.advise(net)
    assert a.verdict == "critical" and a.at_critical_point and a.source == "ResidualMLP"
    assert a.critical_point.C_W == pytest.approx(residual_critical_point("tanh", G).C_W, rel=1e-14)
    assert a.critical_point.C_W == pytest.approx(0.5, rel=1e-12)
    rec = residual_single_input(net)
    L = net.L
    assert a.chi_parallel == rec.chi_parallel[L - 3] and a.chi_perp == rec.chi_perp[L - 3]
    assert a.normalized_vertex_out == pytest.approx(rec.V[-1] / (64 * rec.K[-1] ** 2), rel=1e-14)
    assert a.learning_rates is None and a.to_dict()["network"]["gamma"] == pytest.approx(G)
    json.dumps(a.to_dict(), allow_nan=False)


@pytest.mark.parametrize("act, n_out, r_star", [("tanh", 10, 0.16), ("tanh", 1, 4 / 23 / 0.5)])
def test_residual_optimal_aspect_ratio(act, n_out, r_star):
    """r*(γ) = [4/(20 + 3n_L)]/ν(γ), ν = (2/3)(1 − γ⁴) for K* = 0 (B.35)–(B.36); digest: r*(γ² = 0.5) = 0.16 at n_L = 10."""
    a = de.advise(_res(act, 0.5, 1.0, L=4, n_out=n_out))
    assert a.optimal_aspect_ratio == pytest.approx(r_star, rel=1e-9)
    assert a.nu == pytest.approx(0.5, rel=1e-12)


def test_mlp_critical_C_W_is_not_critical_with_a_skip():
    a = de.advise(_res("relu", 2.0, 2.0, L=30))  # χ = γ² + C_W/2 = 1.5 per hidden step (B.15)
    assert not a.at_critical_point and "exploding kernel" in a.verdict
    assert a.chi_parallel == pytest.approx(1.5, rel=1e-10)
    msg = next(w.message for w in a.warnings if w.topic == "criticality")
    assert "C_W = C_W(γ) = (1 − γ²)·C_W* = 1 on the layers with γ" in msg


def test_gamma_one_and_bad_class():
    with pytest.raises(de.DeepEFTInputError, match="no critical initialization"):
        de.advise(_res("tanh", 0.0, 1.0, gamma=1.0))
    a = de.advise(_res("gelu", 1.0, 1.0, L=5))  # App. B has no residual critical point for half-stable σ
    assert a.critical_point is None and a.optimal_aspect_ratio is None
    assert "no critical initialization" in a.warnings[0].message


def test_cli_gamma_builds_a_critical_residual_net(tmp_path, monkeypatch):
    from deepeft.cli import app

    monkeypatch.setenv("DEEPEFT_JAX_CACHE", "0")
    r = CliRunner().invoke(app, ["advise", "--activation", "relu", "--depth", "8", "--width", "32", "--gamma",
                                 str(G), "--json", "--html", str(tmp_path / "r.html")])
    assert r.exit_code == 0, r.output
    d = json.loads(r.stdout)
    assert d["network"]["source"] == "ResidualMLP" and d["criticality"]["verdict"] == "critical"
    np.testing.assert_allclose(d["network"]["C_W"][1:-1], 1.0, rtol=1e-12)  # (1 − γ²)/A₂ = 0.5·2 (B.20)
    assert (tmp_path / "r.html").is_file()


@pytest.mark.parametrize("C_W, C_b, regime", [(3.0, 0.0, "collapsing kernel, chaotic (exploding gradients)"),
                                             (0.05, 0.3, "collapsing kernel, ordered (vanishing gradients)")])
def test_residual_regime_and_warnings_are_de_phase(C_W, C_b, regime):
    """advise on a ResidualMLP takes its regime and phase warnings from de.phase (residual_phase, (B.15)–(B.16)),
    as for an MLP: a tanh net far from C_W(γ) = 0.5 is not "critical" because K^(L)/K^(L−1) → 1 at its fixed point."""
    net = ResidualMLP(4, [64] * 39, 1, "tanh", C_b=C_b, C_W=[1.0] + [C_W] * 38 + [1.0], gamma=G)
    a, ph = de.advise(net), de.phase(net)
    assert a.regime == ph.regime == regime and a.verdict == f"not critical ({regime})"
    assert [w.message for w in a.warnings if w.topic == "phase"] == list(ph.warnings)
    assert (a.chi_parallel, a.chi_perp, a.normalized_vertex_out) == (ph.chi_parallel, ph.chi_perp, ph.normalized_vertex_out)
