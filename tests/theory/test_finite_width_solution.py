"""The trained network at finite width (PDLT §∞.2): algorithm projectors (∞.107)–(∞.153) and the closed-form
trained output (∞.141)/(∞.154), checked against direct iteration of the difference equations (∞.81)–(∞.83)."""

from __future__ import annotations

import itertools

import numpy as np
import pytest

from conftest import assert_close
from deepeft import DeepEFTInputError
from deepeft.theory.algorithm_projectors import (
    PROJECTOR_NAMES,
    algorithm_projectors,
    dense_projectors,
    inverting_tensors,
    single_input_projectors,
)
from deepeft.theory.finite_width_solution import iterate_truncated_dynamics, trained_output_from_tensors


def _spd(M, seed=0):
    rng = np.random.default_rng(seed)
    A = rng.standard_normal((M, 2 * M))
    return A @ A.T / (2 * M) + 0.3 * np.eye(M)


def _unfuse(F, n, N):
    """Fused (i, δ) (i-major) → [i0.., δ0..] layout of the public tensors."""
    k = F.ndim
    T = F.reshape((n, N) * k)
    return np.transpose(T, [2 * s for s in range(k)] + [2 * s + 1 for s in range(k)])


def _synthetic(n, N, scale, seed=0):
    """Random NTK and differentials with the definitional symmetries: dĤ symmetric in its last two (i, δ)
    pairs (11.8); dd_IĤ in its last three (∞.5); dd_IIĤ under the joint swap (1↔2)(3↔4) (∞.7), digest erratum."""
    rng = np.random.default_rng(seed)
    M = n * N
    H = _spd(M, seed + 1)
    D = rng.standard_normal((M,) * 3)
    D = 0.5 * (D + D.transpose(0, 2, 1))
    dI = rng.standard_normal((M,) * 4)
    dI = sum(dI.transpose((0,) + tuple(1 + np.array(p))) for p in itertools.permutations(range(3))) / 6
    dII = rng.standard_normal((M,) * 4)
    dII = 0.5 * (dII + dII.transpose(1, 0, 3, 2))
    z0 = rng.standard_normal((N, n))
    y = rng.standard_normal((N, n))
    return _unfuse(H, n, N), _unfuse(scale * D, n, N), _unfuse(scale * dI, n, N), _unfuse(scale * dII, n, N), z0, y


def _fuse(T):
    """[i0.., δ0..] → fused (i, δ) indices (inverse of :func:`_unfuse`)."""
    k = T.ndim // 2
    n, N = T.shape[0], T.shape[-1]
    return np.transpose(T, [ax for s in range(k) for ax in (s, k + s)]).reshape((n * N,) * k)


TR, TE = np.array([0, 2, 3]), np.array([1, 4])


# ------------------------------------------------------------------------------------------ projectors


@pytest.mark.parametrize("algorithm", ["gd", "ode", "two_step"])
def test_spectral_projectors_equal_dense_index_expressions(algorithm):
    """The eigenbasis weights reproduce the book's index expressions with dense X_II, X_III inverses."""
    H = _spd(4)
    eta = 1.5 / np.linalg.eigvalsh(H)[-1]
    P = algorithm_projectors(H, eta, algorithm)
    D = dense_projectors(H, eta, algorithm)
    for name in PROJECTOR_NAMES:
        assert_close(P.dense(name), D[name], atol=1e-12 * np.max(np.abs(D[name])) + 1e-300)


def test_inverting_tensors_solve_their_defining_equations():
    """(∞.107), (∞.110): X_II and X_III invert the GD operators; X_I = H̃⁻¹ (∞.108)."""
    H, eta = _spd(3), 0.4
    X1, X2, X3 = inverting_tensors(H, eta)
    I = np.eye(3)
    assert_close(X1 @ H, I, atol=1e-12)
    O2 = np.einsum("ac,bd->abcd", H, I) + np.einsum("ac,bd->abcd", I, H) - eta * np.einsum("ac,bd->abcd", H, H)
    assert_close(np.einsum("abcd,cdef->abef", X2, O2), np.einsum("ae,bf->abef", I, I), atol=1e-12)
    # X_III in the eigenbasis: 1/(Σλ − ηΣλλ + η²λλλ) with the (1,4)(2,5)(3,6) pairing
    lam, V = np.linalg.eigh(H)
    lp, lq, lr = np.meshgrid(lam, lam, lam, indexing="ij")
    d = lp + lq + lr - eta * (lp * lq + lp * lr + lq * lr) + eta**2 * lp * lq * lr
    ref = np.einsum("ap,bq,cr,dp,eq,fr,pqr->abcdef", V, V, V, V, V, V, 1 / d)
    assert_close(X3, ref, atol=1e-12)


@pytest.mark.parametrize("eta", [0.2, 0.9, 1.4])
@pytest.mark.parametrize("algorithm", ["gd", "ode", "two_step"])
def test_single_input_forms(algorithm, eta):
    """N_A = 1: (∞.163) (ODE), (∞.164) (Z_A, Z_B at finite η), the derived finite-η ddNTK forms, (∞.148)."""
    H = 1.3
    P = algorithm_projectors(np.array([[H]]), eta, algorithm)
    ref = single_input_projectors(H, eta, algorithm)
    for name in PROJECTOR_NAMES:
        assert_close(float(np.ravel(getattr(P, name))[0]), ref[name])
    if algorithm == "ode":  # the printed (∞.163)
        assert_close([ref["Z_A"], ref["Z_IA"], ref["Z_IIB"]], [1 / (2 * H**2), -1 / (6 * H**3), -1 / (2 * H**3)])


def test_gd_projectors_tend_to_ode_linearly_in_eta():
    H = _spd(3)
    ode = algorithm_projectors(H, None, "ode")
    diffs = [np.max(np.abs(algorithm_projectors(H, e, "gd").Z_IIB - ode.Z_IIB)) for e in (1e-2, 5e-3)]
    assert 1.8 < diffs[0] / diffs[1] < 2.2  # O(η)


# ------------------------------------------------------------------------------------------ trained output


@pytest.mark.parametrize("n", [1, 2])
def test_closed_form_matches_iterated_dynamics_to_second_order(n):
    """KEY TEST: iterate (∞.81)–(∞.83) (z, Ĥ, dĤ evolving; ddNTKs constant) to convergence with differentials
    of size s; the closed form (∞.141) misses only O(s²): log-log slope of the error 2 ± 0.2. The frozen-NTK part
    alone misses O(s) (slope 1), so the dNTK/ddNTK terms are what brings the error down."""
    N, s_list = 5, ([0.004, 0.002, 0.001] if n == 1 else [0.002, 0.001, 0.0005])
    err, err_ntk = [], []
    for s in s_list:
        H, dH, dI, dII, z0, yall = _synthetic(n, N, s)
        y = yall[TR]
        eta = 0.5 * trained_output_from_tensors(H, dH, dI, dII, z0, y, TR, TE, algorithm="ode").max_stable_eta
        res = trained_output_from_tensors(H, dH, dI, dII, z0, y, TR, TE, eta=eta)
        z = iterate_truncated_dynamics(H, dH, dI, dII, z0, y, TR, eta, 2000)
        assert np.max(np.abs(z[TR] - y)) < 1e-12  # converged
        err.append(np.max(np.abs(z[TE] - res.output)))
        err_ntk.append(np.max(np.abs(z[TE] - res.ntk)))
    slope = np.polyfit(np.log(s_list), np.log(err), 1)[0]
    slope_ntk = np.polyfit(np.log(s_list), np.log(err_ntk), 1)[0]
    assert abs(slope - 2.0) < 0.2, (slope, err)
    assert abs(slope_ntk - 1.0) < 0.1
    assert err[-1] < 0.05 * err_ntk[-1]


def test_free_part_is_exact_without_differentials():
    """dĤ = dd_IĤ = dd_IIĤ = 0: the closed form is the frozen-NTK solution (∞.93), exact."""
    H, dH, dI, dII, z0, yall = _synthetic(2, 5, 0.0)
    y = yall[TR]
    eta = 0.6 * trained_output_from_tensors(H, dH, None, None, z0, y, TR, TE, algorithm="ode").max_stable_eta
    res = trained_output_from_tensors(H, dH, None, None, z0, y, TR, TE, eta=eta)
    z = iterate_truncated_dynamics(H, dH, None, None, z0, y, TR, eta, 3000)
    assert_close(res.output, z[TE], "solve")
    assert np.all(res.dntk == 0) and np.all(res.ddntk_I == 0)


@pytest.mark.parametrize("algorithm", ["gd", "ode", "two_step"])
def test_brackets_vanish_on_training_inputs(algorithm):
    """(∞.141): every bracket vanishes for δ ∈ 𝒜 — the predicted output on the training set is y exactly."""
    H, dH, dI, dII, z0, yall = _synthetic(2, 5, 0.3)
    y = yall[TR]
    res = trained_output_from_tensors(H, dH, dI, dII, z0, y, TR, TR, eta=0.1, algorithm=algorithm)
    assert_close(res.ntk, y, atol=1e-12)
    for part in (res.dntk, res.ddntk_I, res.ddntk_II):
        assert np.max(np.abs(part)) < 1e-12
    # while on test inputs they do not vanish (the check can fail)
    res_te = trained_output_from_tensors(H, dH, dI, dII, z0, y, TR, TE, eta=0.1, algorithm=algorithm)
    assert np.max(np.abs(res_te.dntk + res_te.ddntk_I + res_te.ddntk_II)) > 1e-3


@pytest.mark.parametrize("algorithm", ["gd", "ode", "two_step"])
def test_dense_reference_contraction_agrees(algorithm):
    H, dH, dI, dII, z0, yall = _synthetic(2, 5, 0.1, seed=3)
    a = trained_output_from_tensors(H, dH, dI, dII, z0, yall[TR], TR, TE, eta=0.2, algorithm=algorithm)
    b = trained_output_from_tensors(H, dH, dI, dII, z0, yall[TR], TR, TE, eta=0.2, algorithm=algorithm, method="dense")
    assert_close(a.output, b.output, atol=1e-12)
    assert_close(a.ddntk_II, b.ddntk_II, atol=1e-12)


def test_gd_tends_to_ode_and_ode_to_small_eta_iteration():
    H, dH, dI, dII, z0, yall = _synthetic(1, 5, 0.05, seed=4)
    y = yall[TR]
    ode = trained_output_from_tensors(H, dH, dI, dII, z0, y, TR, TE, algorithm="ode")
    gd = [trained_output_from_tensors(H, dH, dI, dII, z0, y, TR, TE, eta=e).output for e in (0.02, 0.01)]
    d = [np.max(np.abs(g - ode.output)) for g in gd]
    assert 1.8 < d[0] / d[1] < 2.2
    # finite-η algorithm dependence is real: GD at half the stable η differs from the ODE limit
    big = trained_output_from_tensors(H, dH, dI, dII, z0, y, TR, TE, eta=0.5 * ode.max_stable_eta)
    assert np.max(np.abs(big.output - ode.output)) > 10 * d[0]


def _two_step_direct(H, dH, dI, dII, z0, y, tr):
    """Apply the generalized updates (∞.68)–(∞.70) literally (fused indices): a giant leap with ηκ = Ĥ⁻¹
    (∞.71) (z, Ĥ updated by (∞.4), (∞.6)), then a small step with ηκ = Ĥ(t=1)⁻¹ (∞.77)."""
    n, N = H.shape[0], H.shape[2]
    Hf, D, I1, I2 = (_fuse(T) for T in (H, dH, dI, dII))
    t = (np.arange(n)[:, None] * N + tr[None, :]).reshape(-1)
    z = z0.T.reshape(-1)
    yf = y.T.reshape(-1)

    def step(z, Hf, u):
        dz = (
            -Hf[:, t] @ u
            + 0.5 * np.einsum("dab,a,b->d", D[:, t][:, :, t], u, u)
            - np.einsum("dabc,a,b,c->d", I1[:, t][:, :, t][:, :, :, t], u, u, u) / 6
        )
        Da = D[:, :, t] @ u
        dd = (I1 + I1.transpose(1, 0, 2, 3) + 2 * I2)[:, :, t][:, :, :, t]
        return z + dz, Hf - (Da + Da.T) + 0.5 * np.einsum("xyab,a,b->xy", dd, u, u)

    u1 = np.linalg.solve(Hf[np.ix_(t, t)], z[t] - yf)
    z1, H1 = step(z, Hf, u1)
    u2 = np.linalg.solve(H1[np.ix_(t, t)], z1[t] - yf)
    z2, _ = step(z1, H1, u2)
    return z2.reshape(n, N).T


def test_two_step_closed_form_matches_direct_updates():
    """(∞.79)/(∞.148) vs the two generalized second-order updates applied literally: error O(s²)."""
    s_list, err = [0.004, 0.002, 0.001], []
    for s in s_list:
        H, dH, dI, dII, z0, yall = _synthetic(2, 5, s, seed=6)
        y = yall[TR]
        res = trained_output_from_tensors(H, dH, dI, dII, z0, y, TR, TE, algorithm="two_step")
        err.append(np.max(np.abs(_two_step_direct(H, dH, dI, dII, z0, y, TR)[TE] - res.output)))
    assert abs(np.polyfit(np.log(s_list), np.log(err), 1)[0] - 2.0) < 0.2, err


# ------------------------------------------------------------------------------------------ bad input


def test_eta_outside_stable_range_names_largest_stable_eta():
    H = np.diag([0.5, 2.0])
    for eta in (1.0, 1.5, -0.1, 0.0, np.nan):
        with pytest.raises(DeepEFTInputError, match=r"largest stable learning rate is 2/λ_max = 1\b"):
            algorithm_projectors(H, eta, "gd")
    with pytest.raises(DeepEFTInputError, match="needs the global learning rate"):
        algorithm_projectors(H, None, "gd")
    algorithm_projectors(H, 0.99, "gd")  # just inside


def test_bad_projector_inputs():
    with pytest.raises(DeepEFTInputError, match="algorithm must be one of"):
        algorithm_projectors(np.eye(2), 0.1, "adam")
    with pytest.raises(DeepEFTInputError, match="positive definite"):
        algorithm_projectors(np.diag([1.0, 0.0]), None, "ode")
    with pytest.raises(DeepEFTInputError, match="NaN"):
        algorithm_projectors(np.array([[np.nan]]), None, "ode")
    with pytest.raises(DeepEFTInputError, match="symmetric"):
        algorithm_projectors(np.array([[1.0, 0.5], [0.0, 1.0]]), None, "ode")
    with pytest.raises(DeepEFTInputError, match="square"):
        algorithm_projectors(np.ones((2, 3)), None, "ode")


def test_too_many_training_inputs_for_memory():
    with pytest.raises(DeepEFTInputError, match=r"N_A = 40 .*GiB.*spectral path"):
        inverting_tensors(np.eye(40))
    with pytest.raises(DeepEFTInputError, match=r"too many.*fewer training inputs"):
        algorithm_projectors(np.eye(400), None, "ode")


def test_trained_output_bad_input():
    H, dH, dI, dII, z0, yall = _synthetic(1, 5, 0.1)
    y = yall[TR]
    with pytest.raises(DeepEFTInputError, match="dH must be"):
        trained_output_from_tensors(H, dH[..., :4], dI, dII, z0, y, TR, TE, algorithm="ode")
    with pytest.raises(DeepEFTInputError, match="y must be the training targets"):
        trained_output_from_tensors(H, dH, dI, dII, z0, yall, TR, TE, algorithm="ode")
    with pytest.raises(DeepEFTInputError, match="NaN"):
        trained_output_from_tensors(H, dH, dI, dII, z0 * np.nan, y, TR, TE, algorithm="ode")
    with pytest.raises(DeepEFTInputError, match="test_idx must index"):
        trained_output_from_tensors(H, dH, dI, dII, z0, y, TR, np.array([7]), algorithm="ode")
    with pytest.raises(DeepEFTInputError, match="repeated"):
        trained_output_from_tensors(H, dH, dI, dII, z0, y, np.array([0, 0, 2]), TE, algorithm="ode")
    with pytest.raises(DeepEFTInputError, match="largest stable"):
        trained_output_from_tensors(H, dH, dI, dII, z0, y, TR, TE, eta=100.0)
    with pytest.raises(DeepEFTInputError, match="method must be"):
        trained_output_from_tensors(H, dH, dI, dII, z0, y, TR, TE, algorithm="ode", method="fast")
