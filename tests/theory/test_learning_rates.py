"""Learning-rate equivalence principle (9.94)–(9.96): closed forms, depth independence of Θ^{(L)}, the
numerical equal-contribution rule, plain-SGD step sizes, CLI."""

from __future__ import annotations

import json

import numpy as np
import pytest
from typer.testing import CliRunner

import deepeft as de
from deepeft.cli import app

X = np.array([[1.0, -0.5, 0.3, 0.8]])


def _theta_L(lr):
    return de.frozen_ntk(lr.apply(), X)[-1, 0, 0]


def test_scale_invariant_9_94_and_depth_independence():
    thetas = []
    for L in (4, 16, 64):
        lr = de.learning_rates(de.MLP(4, [32] * (L - 1), 1, "relu", C_W=2.0), lambda_b_tilde=0.7, lambda_W_tilde=1.3)
        assert lr.equation == "(9.94)" and lr.universality_class == "scale-invariant"
        np.testing.assert_allclose(lr.lambda_b, 0.7 / L)
        np.testing.assert_allclose(lr.lambda_W, 1.3 / L)
        thetas.append(_theta_L(lr))
    K = 2.0 * np.mean(X**2)
    np.testing.assert_allclose(thetas, 0.7 + 1.3 * K / 2, rtol=1e-12)  # Θ = λ̃_b + λ̃_W A₂K* for every L


def test_tanh_9_96_theta_depth_independent_vs_constant():
    eq, const = [], []
    for L in (16, 64, 256):
        net = de.MLP(4, [32] * (L - 1), 1, "tanh", C_W=1.0)
        lr = de.learning_rates(net)
        assert lr.equation == "(9.96)" and lr.p_perp == pytest.approx(1.0)
        np.testing.assert_allclose(lr.lambda_b, 1.0 / np.arange(1, L + 1))
        np.testing.assert_allclose(lr.lambda_W, 1.0)
        eq.append(_theta_L(lr))
        const.append(_theta_L(de.learning_rates(net, "constant")))
    eq, const = np.array(eq), np.array(const)
    dev = np.abs(eq / 1.5 - 1)  # → c = λ̃_b + λ̃_W/2 (9.71): measured 5.2 %, 1.1 %, 0.04 % at L = 16, 64, 256
    assert np.all(np.diff(dev) < 0) and dev[0] < 0.06 and dev[-1] < 0.005
    assert const[-1] / const[0] > 3  # constant rates: Θ grows with depth


def test_k_star_zero_general_p_perp_9_95():
    L = 32
    net = de.MLP(4, [32] * (L - 1), 1, "erf", C_W=de.criticality("erf").critical.C_W)
    lr = de.learning_rates(net)
    pp = lr.p_perp
    ell = np.arange(1, L + 1)
    np.testing.assert_allclose(lr.lambda_b, ell ** (-pp) * L ** (pp - 1))
    np.testing.assert_allclose(lr.lambda_W, (L / ell) ** (pp - 1))


@pytest.mark.parametrize("act, C_b, C_W", [("gelu", 0.1729223907560664, 1.983058257437547), ("tanh", 0.0, 1.3)])
def test_equal_contribution_exact_theta(act, C_b, C_W):
    """Numerical rule: Θ^{(L)} = λ̃_b + λ̃_W exactly at every depth (each layer and group λ̃/L)."""
    for L in (3, 12):
        net = de.MLP(4, [16] * (L - 1), 1, act, C_b=C_b, C_W=C_W)
        lr = de.learning_rates(net, "equal-contribution", lambda_b_tilde=0.4, lambda_W_tilde=0.9, norm=float(np.mean(X**2)))
        np.testing.assert_allclose(_theta_L(lr), 1.3, rtol=1e-10)
        # only the biases: Θ = λ̃_b
        lr_b = de.learning_rates(net, "equal-contribution", lambda_b_tilde=0.4, lambda_W_tilde=0.0, norm=float(np.mean(X**2)))
        np.testing.assert_allclose(_theta_L(lr_b), 0.4, rtol=1e-10)


def test_equal_contribution_reproduces_9_96_scaling_for_tanh():
    L = 512
    lr = de.learning_rates(de.MLP(4, [16] * (L - 1), 1, "tanh", C_W=1.0), "equal-contribution")
    ell = np.arange(1, L + 1)
    x = lr.lambda_b * ell  # (9.96): λ_b ∝ 1/ℓ
    assert abs(x[255] / x[127] - 1) < 0.02
    y = lr.lambda_W
    assert abs(y[255] / y[127] - 1) < 0.02  # λ_W → const


def test_off_criticality_uses_numerical_rule_and_sgd_steps():
    net = de.MLP(4, [20, 30], 2, "tanh", C_W=1.5)
    lr = de.learning_rates(net)
    assert "off criticality" in lr.universality_class
    steps = lr.sgd_steps(0.1)
    for s, n_prev in zip(steps, net.n[:-1], strict=True):
        l = s["layer"] - 1
        assert s["bias"] == pytest.approx(0.1 * lr.lambda_b[l])
        assert s["weight"] == pytest.approx(0.1 * lr.lambda_W[l] / n_prev)
    assert "torch.optim.SGD" in lr.pytorch(0.1) and "lr_W" in lr.jax(0.1)
    with pytest.raises(de.DeepEFTInputError, match="unknown rule"):
        de.learning_rates(net, "equivalense")


def test_sgd_steps_reproduce_the_lambda_weighted_ntk():
    """Σ_μ step_μ (∂f/∂θ_μ)² with the per-parameter steps equals η Ĥ of the λ-weighted NTK (8.6)."""
    import jax
    import jax.numpy as jnp

    from deepeft.simulate.forward import forward_preactivations, sample_params

    net = de.MLP(4, [8, 8], 1, "tanh", C_W=1.0)
    lr = de.learning_rates(net)
    net2 = lr.apply()
    params = sample_params(net2, seed=1, dtype="float64")
    H = de.empirical_ntk(net2, X, params, dtype="float64")[0, 0, 0, 0]

    def f(p):
        return forward_preactivations(net2, p, jnp.asarray(X))[-1][0, 0]

    from deepeft._x64 import x64

    with x64():
        g = jax.grad(f)(tuple((jnp.asarray(W), jnp.asarray(b)) for W, b in params))
        tot = sum(
            s["weight"] * float(jnp.sum(gW**2)) + s["bias"] * float(jnp.sum(gb**2))
            for s, (gW, gb) in zip(lr.sgd_steps(0.5), g, strict=True)
        )
    np.testing.assert_allclose(tot, 0.5 * H, rtol=1e-10)


def test_cli_learning_rates():
    r = CliRunner().invoke(app, ["learning-rates", "--activation", "relu", "--depth", "5", "--json", "--eta", "0.2"])
    assert r.exit_code == 0, r.output
    out = json.loads(r.output)
    assert out["equation"] == "(9.94)"
    np.testing.assert_allclose(out["lambda_b"], 0.2 * 5 / 5 / 0.2 * np.full(5, 1 / 5))
    r = CliRunner().invoke(app, ["learning-rates", "--activation", "tanh", "--depth", "3"])
    assert r.exit_code == 0 and "(9.96)" in r.output and "torch.optim.SGD" in r.output
    r = CliRunner().invoke(app, ["learning-rates", "--activation", "tanh", "--rule", "bogus"])
    assert r.exit_code == 2
    # softplus has no critical point: "critical" C_W / C_b exits 2 with a message, explicit values work
    r = CliRunner().invoke(app, ["learning-rates", "--activation", "softplus", "--depth", "3"])
    assert r.exit_code == 2 and "no critical point" in r.output
    r = CliRunner().invoke(
        app,
        [
            "learning-rates",
            "--activation",
            "softplus",
            "--depth",
            "3",
            "--C-W",
            "1.0",
            "--C-b",
            "0.1",
            "--rule",
            "constant",
            "--json",
        ],
    )
    assert r.exit_code == 0, r.output
