"""One real network's trained output at finite width, (∞.141): the matrix-free contraction against the closed form
on brute-force autodiff tensors (11.8), (∞.5), (∞.7), and against actually training the network with GD."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import deepeft as de
from deepeft import DeepEFTInputError
from deepeft._x64 import x64
from deepeft.losses import mse_loss
from deepeft.simulate.forward import forward_preactivations
from deepeft.simulate.trained_output import trained_output
from deepeft.simulate.training import gd_update
from deepeft.theory.finite_width_solution import trained_output_from_tensors


def _unfuse(F, n, N):
    k = F.ndim
    T = F.reshape((n, N) * k)
    return np.transpose(T, [2 * s for s in range(k)] + [2 * s + 1 for s in range(k)])


def _brute_tensors(net, params, X):
    """NTK, dNTK, ddNTKs of one tiny network straight from their definitions with full Hessians / third
    derivatives (λ-weighted per (8.6)): dĤ_{0;12} = Σλλ ∂²z0 ∂z1 ∂z2, dd_IĤ = Σλλλ ∂³z0 ∂z1 ∂z2 ∂z3,
    dd_IIĤ_{1234} = Σλλλ ∂²z1 ∂²z2 ∂z3 ∂z4 with the pairing of (∞.7)."""
    with x64():
        p = [(jnp.asarray(W, jnp.float64), jnp.asarray(b, jnp.float64)) for W, b in params]
        theta = jnp.concatenate([jnp.concatenate([W.ravel(), b.ravel()]) for W, b in p])
        lam = np.concatenate(
            [np.r_[np.full(W.size, net.lambda_W[l] / net.n[l]), np.full(b.size, net.lambda_b[l])] for l, (W, b) in enumerate(p)]
        )

        def unflat(t):
            out, o = [], 0
            for W, b in p:
                out.append((t[o : o + W.size].reshape(W.shape), t[o + W.size : o + W.size + b.size]))
                o += W.size + b.size
            return out

        Xj = jnp.asarray(X, jnp.float64)

        def f(t):
            return forward_preactivations(net, unflat(t), Xj)[-1].T.reshape(-1)

        z, J, Hz, T3 = (
            np.asarray(a)
            for a in jax.jit(lambda t: (f(t), jax.jacrev(f)(t), jax.hessian(f)(t), jax.jacfwd(jax.hessian(f))(t)))(theta)
        )
    G = J * lam
    n, N = net.n[-1], X.shape[0]
    HG = np.einsum("apq,cq->acp", Hz, G)
    tensors = (
        G @ J.T,
        np.einsum("apq,bp,cq->abc", Hz, G, G),
        np.einsum("apqr,bp,cq,dr->abcd", T3, G, G, G),
        np.einsum("acp,p,bdp->abcd", HG, lam, HG),
    )
    return (z.reshape(n, N).T,) + tuple(_unfuse(T, n, N) for T in tensors)


@pytest.mark.parametrize("n_out, widths", [(2, [3]), (1, [3, 2])])
def test_matrix_free_equals_closed_form_on_brute_force_tensors(n_out, widths):
    """One hidden layer with two outputs, and depth 3 (where the layer-wise pass carries second and third
    derivatives through a hidden layer); each first call compiles five small programs."""
    net = de.MLP(2, widths, n_out, "tanh", C_W=1.5, lambda_b=0.7, lambda_W=1.3)
    params = de.sample_params(net, seed=1, dtype="float64")
    rng = np.random.default_rng(0)
    X, Y = rng.standard_normal((5, 2)), rng.standard_normal((3, n_out))
    z, H, dH, dI, dII = _brute_tensors(net, params, X)
    for algorithm, eta in (("gd", 0.05), ("ode", None), ("two_step", None)):
        ref = trained_output_from_tensors(H, dH, dI, dII, z, Y, np.arange(3), np.arange(3, 5), eta=eta, algorithm=algorithm)
        got = trained_output(params, net, X[:3], Y, X[3:], eta=eta, algorithm=algorithm)
        for part in ("ntk", "dntk", "ddntk_I", "ddntk_II"):
            a, b = getattr(got, part), getattr(ref, part)
            np.testing.assert_allclose(a, b, rtol=1e-10, atol=1e-12 * (1 + np.max(np.abs(b))))
        assert np.max(np.abs(ref.ddntk_I)) > 1e-2 and np.max(np.abs(ref.dntk)) > 1e-2  # nontrivial parts
    # the same closed form on the tensors of deepeft.simulate.ntk_tensors (same layouts, independent code)
    t = de.empirical_ddntk(net, params, X)
    lib = trained_output_from_tensors(t.ntk, t.dntk, t.dd_I, t.dd_II, t.z.T, Y, np.arange(3), np.arange(3, 5), eta=0.05)
    got = trained_output(params, net, X[:3], Y, X[3:], eta=0.05)
    np.testing.assert_allclose(got.output, lib.output, rtol=1e-10, atol=1e-12)


def test_input_chunking_of_the_layer_wise_pass_changes_nothing(monkeypatch):
    """The layer-wise pass splits the inputs into chunks when M²·N·width is large: force 2-input chunks (with a
    padded last chunk) and compare D²z, the summed D³z and a gradient through them (the Z_IA path) with one chunk."""
    import deepeft.simulate.trained_output as to

    net = de.MLP(2, [4, 3], 2, "gelu", C_W=1.3)
    rng = np.random.default_rng(1)
    with x64():
        theta = to._flatten(to._check_params(net, de.sample_params(net, seed=2, dtype="float64")))
        X = jnp.asarray(rng.standard_normal((7, 2)))
        Gq, Ws = jnp.asarray(rng.standard_normal((3, theta.size))), jnp.asarray(rng.standard_normal((3, 3, 3)))

        def run():  # traced afresh, with the chunk size in force
            def f(t):
                T2, S = to._taylor(net, t, X, Gq, Ws)
                return T2, S, jax.grad(lambda u: jnp.sum(to._taylor(net, u, X, Gq)[0] ** 2))(t)

            return tuple(np.asarray(a) for a in jax.jit(f)(theta))

        ref = run()
        monkeypatch.setattr(to, "TAYLOR_CHUNK_BYTES", 2 * 8 * 3 * 3 * max(net.n))
        got = run()
    for a, b in zip(got, ref, strict=True):
        np.testing.assert_allclose(a, b, rtol=1e-12, atol=1e-13 * np.max(np.abs(b)))
    assert ref[0].shape == (3, 3, 14) and np.max(np.abs(ref[1])) > 1e-3


def _train(net, params, X, Y, eta, steps):
    with x64():
        p = tuple((jnp.asarray(W, jnp.float64), jnp.asarray(b, jnp.float64)) for W, b in params)
        Xa, Ya = jnp.asarray(X, jnp.float64), jnp.asarray(Y, jnp.float64)
        pT = jax.jit(lambda q: jax.lax.fori_loop(0, steps, lambda i, r: gd_update(net, mse_loss, r, Xa, Ya, eta), q))(p)
        return pT


@pytest.mark.slow
def test_prediction_beats_frozen_ntk_against_actual_training():
    """Width-96 tanh MLP (depth 2, 6 training / 6 test inputs) trained by full-batch GD at η = ½·2/λ_max to a
    training residual < 1e-5: the finite-width prediction (∞.141) misses the trained test outputs by several times
    less than the frozen-NTK (linearized) prediction with the same network's NTK (finding at width 128:
    error ratios 4–12 over three seeds; width 256: 6–16)."""
    net = de.MLP(3, [96, 96], 1, "tanh", C_b=0.0, C_W=1.0)
    rng = np.random.default_rng(0)
    X = rng.standard_normal((12, 3))
    Y = np.sin(X[:6, :1] + X[:6, 1:2])
    ratios = []
    for seed in range(2):
        params = de.sample_params(net, seed=seed, dtype="float64")
        eta = 0.5 * trained_output(params, net, X[:6], Y, X[6:], algorithm="ode").max_stable_eta
        pred = trained_output(params, net, X[:6], Y, X[6:], eta=eta)
        pT = _train(net, params, X[:6], Y, eta, 4000)
        with x64():
            zA = np.asarray(forward_preactivations(net, pT, jnp.asarray(X[:6]))[-1])
            zB = np.asarray(forward_preactivations(net, pT, jnp.asarray(X[6:]))[-1])
        assert np.max(np.abs(zA - Y)) < 1e-5
        err_fw, err_ntk = np.max(np.abs(zB - pred.output)), np.max(np.abs(zB - pred.ntk))
        ratios.append(err_ntk / err_fw)
    assert min(ratios) > 2.0 and max(ratios) > 4.0, ratios


def test_kinked_activation_refused_with_actionable_message():
    for act in ("relu", "leaky_relu"):
        net = de.MLP(2, [4], 1, act)
        params = de.sample_params(net, dtype="float64")
        with pytest.raises(DeepEFTInputError, match=r"smooth activation.*'tanh', 'gelu'"):
            trained_output(params, net, np.ones((2, 2)), np.zeros((2, 1)), np.ones((1, 2)), algorithm="ode")


def test_trained_output_bad_input():
    net = de.MLP(2, [4], 1, "tanh")
    params = de.sample_params(net, dtype="float64")
    X = np.random.default_rng(0).standard_normal((3, 2))
    with pytest.raises(DeepEFTInputError, match="Y_train must be"):
        trained_output(params, net, X, np.zeros((2, 1)), X[:1], algorithm="ode")
    with pytest.raises(DeepEFTInputError, match="NaN"):
        trained_output(params, net, X, np.full((3, 1), np.nan), X[:1], algorithm="ode")
    with pytest.raises(DeepEFTInputError, match="expected W"):
        trained_output(params[::-1], net, X, np.zeros((3, 1)), X[:1], algorithm="ode")
    with pytest.raises(DeepEFTInputError, match="largest stable"):
        trained_output(params, net, X, np.zeros((3, 1)), X[:1], eta=1e3)
