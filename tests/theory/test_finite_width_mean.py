"""Ensemble mean of finite-width trained networks (∞.155)–(∞.160): the moment contraction against a Monte Carlo
average of the per-network closed form (∞.154) over a synthetic ensemble with exactly those moments."""

from __future__ import annotations

import numpy as np
import pytest

import deepeft as de
from conftest import Z_MAX
from deepeft import DeepEFTInputError
from deepeft.theory.algorithm_projectors import dense_projectors
from deepeft.theory.finite_width_mean import finite_width_mean_from_statistics

es = np.einsum


def _statistics(N, seed):
    """Random statistics with the symmetries of the decompositions (K, H PSD; B from features; R, P with the
    symmetry in their last two / middle indices that (∞.11), (11.45) imply)."""
    rng = np.random.default_rng(seed)
    G = rng.standard_normal((N, 2 * N))
    K = G @ G.T / (2 * N) + 0.2 * np.eye(N)
    G = rng.standard_normal((N, 2 * N))
    H = G @ G.T / (2 * N) + 0.5 * np.eye(N)
    Es = [0.5 * (lambda m: m + m.T)(rng.standard_normal((N, N))) for _ in range(3)]  # A = Σ E⊗E
    Fs = [0.5 * rng.standard_normal((N, N)) for _ in range(3)]  # B_{a1a3a2a4} = Σ F12F34 + F21F43
    A = sum(es("ab,cd->abcd", E, E) for E in Es)
    B = sum(es("ac,bd->abcd", F, F) + es("ca,db->abcd", F, F) for F in Fs)
    P = rng.standard_normal((N,) * 4)
    P = 0.5 * (P + P.transpose(0, 2, 1, 3))
    Q = rng.standard_normal((N,) * 4)
    R = rng.standard_normal((N,) * 4)
    R = 0.5 * (R + R.transpose(0, 1, 3, 2))
    S, T, U = (rng.standard_normal((N,) * 4) for _ in range(3))
    return dict(H=H, K=K, A=A, B=B, P=P, Q=Q, R=R, S=S, T=T, U=U), Es, Fs


def _sample(st, Es, Fs, nL, n, rng, n_samples):
    """Synthetic ensemble: z ~ N(0, K) per output; ΔĤ = (δ_ij X + Y)/√n with X = Σ h E, Y = Σ (g_ij F + g_ji Fᵀ)
    (covariance (8.82) with A, B exactly); dĤ linear in z with E[dĤ z] = (11.45) exactly; ddNTKs at their means."""
    N = st["K"].shape[0]
    e = np.eye(nL)
    C = np.linalg.cholesky(st["K"])
    z = es("ab,sib->sia", C, rng.standard_normal((n_samples, nL, N)))  # [s, i, a]
    w = es("ab,sib->sia", np.linalg.inv(st["K"]), z)
    X = sum(es("s,ab->sab", rng.standard_normal(n_samples), E) for E in Es)
    Y = 0
    for F in Fs:
        g = rng.standard_normal((n_samples, nL, nL))
        Y = Y + es("sij,ab->sijab", g, F) + es("sji,ba->sijab", g, F)
    dH_ntk = (es("ij,sab->sijab", e, X) + Y) / np.sqrt(n)
    P, Q = st["P"], st["Q"]
    dH = (es("jk,abce,sie->sijkabc", e, P, w) + es("ij,abce,ske->sijkabc", e, Q, w) + es("ik,acbe,sje->sijkabc", e, Q, w)) / n
    R, S, T, U = st["R"], st["S"], st["T"], st["U"]
    ddI = (es("ij,kl,abcd->ijklabcd", e, e, R) + es("ik,lj,acdb->ijklabcd", e, e, R)
           + es("il,jk,adbc->ijklabcd", e, e, R)) / n  # fmt: skip
    ddII = (es("ij,kl,abcd->ijklabcd", e, e, S) + es("ik,lj,acdb->ijklabcd", e, e, T)
            + es("il,jk,adbc->ijklabcd", e, e, U)) / n  # fmt: skip
    return z, dH_ntk, dH, ddI, ddII


def _book_form(st, z, dH_ntk, dH, ddI, ddII, y, tr, te, Z):
    """(∞.154) transcribed term by term (per sample; mean NTK H in the brackets and projectors), (N_test, n_L)."""
    H = st["H"]
    Hi = np.linalg.inv(H[np.ix_(tr, tr)])
    Pb = H[np.ix_(te, tr)] @ Hi  # H_{βα̃}H̃^{α̃·}
    eps = z[:, :, tr] - y.T[None]  # [s, j, α̃]
    out = z[:, :, te] - es("ba,sia->sib", Pb, eps)

    def br(T, slot):  # bracket on sample slot `slot` (0-based among sample axes) of a per-sample tensor
        k = (T.ndim - 1) // 2
        ax = 1 + k + slot
        Tt = np.take(T, te, axis=ax)
        Ta = np.take(T, tr, axis=ax)
        return Tt - np.moveaxis(np.tensordot(Ta, Pb, axes=([ax], [1])), -1, ax)

    def sub(T, slots_te):  # restrict all sample axes to training inputs except the bracketed one
        k = (T.ndim - 1) // 2
        for s_ in range(k):
            if s_ != slots_te:
                T = np.take(T, tr, axis=1 + k + s_)
        return T

    bD = br(sub(dH_ntk, 0), 0)  # [s, i, j, β, α̃1]
    # the two ΔĤ lines with the corrected signs (printed: + then −; erratum, see docs/finite_width_training.md)
    out = out - es("sijba,ac,sjc->sib", bD, Hi, eps)
    out = out + es("sijba,ac,sjkcd,de,ske->sib", bD, Hi, sub(dH_ntk, -1)[:, :, :, :, :][..., :, :], Hi, eps)
    bA = br(sub(dH, 1), 1)  # dĤ_{j1 i j2; α̃1 β α̃2}
    out = out + es("sjikabc,acde,sjd,ske->sib", bA, Z["Z_A"], eps, eps)
    bB = br(sub(dH, 0), 0)  # dĤ_{i j1 j2; β α̃1 α̃2}
    out = out + es("sijkbac,acde,sjd,ske->sib", bB, Z["Z_B"], eps, eps)
    s_ = z.shape[0]
    I1 = np.broadcast_to(ddI, (s_,) + ddI.shape)
    I2 = np.broadcast_to(ddII, (s_,) + ddII.shape)
    bIA = br(sub(I1, 1), 1)  # dd_I_{j1 i j2 j3; α̃1 β α̃2 α̃3}
    out = out + es("sjiklabcd,acdefg,sje,skf,slg->sib", bIA, Z["Z_IA"], eps, eps, eps, optimize=True)
    bIB = br(sub(I1, 0), 0)
    out = out + es("sijklbacd,acdefg,sje,skf,slg->sib", bIB, Z["Z_IB"], eps, eps, eps, optimize=True)
    bIIA = br(sub(I2, 2), 2)  # dd_II_{j1 j2 i j3; α̃1 α̃2 β α̃3}
    out = out + es("sjkilacbd,acdefg,sje,skf,slg->sib", bIIA, Z["Z_IIA"], eps, eps, eps, optimize=True)
    bIIB = br(sub(I2, 0), 0)
    out = out + es("sijklbacd,acdefg,sje,skf,slg->sib", bIIB, Z["Z_IIB"], eps, eps, eps, optimize=True)
    return np.transpose(out, (0, 2, 1))


@pytest.mark.parametrize("algorithm", ["gd", "two_step"])
def test_mean_matches_monte_carlo_of_per_network_form(algorithm):
    """MC over 3000 synthetic networks (× 4 antithetic sign flips of z and ΔĤ, which cancel the odd terms
    exactly): every part of the mean agrees within Z_MAX standard errors (n_L = 2, N_A = 2, N_B = 2)."""
    N, nL, n = 4, 2, 10.0
    tr, te = np.array([0, 2]), np.array([1, 3])
    st, Es, Fs = _statistics(N, seed=1)
    y = np.random.default_rng(2).standard_normal((2, nL))
    eta = 0.5 * 2 / np.linalg.eigvalsh(st["H"][np.ix_(tr, tr)])[-1]
    res = finite_width_mean_from_statistics(**st, y=y, n_prev=n, train_idx=tr, test_idx=te, eta=eta, algorithm=algorithm)
    Z = dense_projectors(st["H"][np.ix_(tr, tr)], eta, algorithm)
    rng = np.random.default_rng(3)
    samples = []
    for _ in range(3):
        z, dN, dH, ddI, ddII = _sample(st, Es, Fs, nL, n, rng, 1000)
        flips = [_book_form(st, sz * z, sd * dN, sz * dH, ddI, ddII, y, tr, te, Z) for sz in (1, -1) for sd in (1, -1)]
        samples.append(np.mean(flips, axis=0))
    samples = np.concatenate(samples)
    mc, se = samples.mean(0), samples.std(0, ddof=1) / np.sqrt(len(samples))
    zscore = (mc - res.mean) / se
    assert np.max(np.abs(zscore)) < Z_MAX, zscore
    # the finite-width part is resolved (not lost in the noise): |m − m_NTK| ≫ standard error
    assert np.max(np.abs(res.mean - res.m_ntk) / se) > 20


def test_parts_add_up_and_ntk_part_is_kernel_prediction():
    N = 5
    st, _, _ = _statistics(N, seed=4)
    tr, te = np.array([0, 1, 3]), np.array([2, 4])
    y = np.random.default_rng(5).standard_normal((3, 1))
    r = finite_width_mean_from_statistics(**st, y=y, n_prev=50, train_idx=tr, test_idx=te, algorithm="ode")
    H = st["H"]
    np.testing.assert_allclose(r.m_ntk, H[np.ix_(te, tr)] @ np.linalg.solve(H[np.ix_(tr, tr)], y), rtol=1e-12)
    np.testing.assert_allclose(r.mean, r.m_ntk + r.m_delta_ntk + r.m_dntk + r.m_ddntk_I + r.m_ddntk_II, rtol=1e-12)
    # on training inputs every finite-width part vanishes (the network fits its training set)
    rt = finite_width_mean_from_statistics(**st, y=y, n_prev=50, train_idx=tr, test_idx=tr, algorithm="ode")
    np.testing.assert_allclose(rt.mean, y, atol=1e-12)
    # 1/n scaling of the corrections
    r2 = finite_width_mean_from_statistics(**st, y=y, n_prev=100, train_idx=tr, test_idx=te, algorithm="ode")
    np.testing.assert_allclose(r2.mean - r2.m_ntk, 0.5 * (r.mean - r.m_ntk), rtol=1e-12)


@pytest.mark.slow
def test_finite_width_prediction_from_network_statistics():
    """Public path (de.ddntk on the 3 joint inputs is the cost, ~20 s): a tanh net of width 50, depth 2; every
    finite-width part is nonzero and the total correction is O(L/n) ≪ the kernel prediction (finding: ~2 %)."""
    X = np.random.default_rng(0).standard_normal((3, 2))
    Y = np.sin(X[:2, :1])
    net = de.MLP(2, [50], 1, "tanh", C_W=1.0)
    r = de.finite_width_prediction(net, X[:2], Y, X[2:], algorithm="ode")
    corr = r.mean - r.m_ntk
    assert 1e-4 < np.max(np.abs(corr)) < 0.1 * np.max(np.abs(r.m_ntk))
    for part in (r.m_delta_ntk, r.m_dntk, r.m_ddntk_I, r.m_ddntk_II):
        assert np.max(np.abs(part)) > 1e-5


def test_bad_input():
    st, _, _ = _statistics(4, seed=0)
    y = np.zeros((2, 1))
    kw = dict(y=y, n_prev=10, train_idx=np.array([0, 1]), test_idx=np.array([2, 3]))
    with pytest.raises(DeepEFTInputError, match="must have shape"):
        finite_width_mean_from_statistics(**{**st, "R": st["R"][:3]}, **kw, algorithm="ode")
    with pytest.raises(DeepEFTInputError, match="NaN"):
        finite_width_mean_from_statistics(**{**st, "K": st["K"] * np.nan}, **kw, algorithm="ode")
    with pytest.raises(DeepEFTInputError, match="largest stable"):
        finite_width_mean_from_statistics(**st, **kw, eta=50.0)
    with pytest.raises(DeepEFTInputError, match="smooth"):
        de.finite_width_prediction(de.MLP(2, [8], 1, "relu"), np.ones((2, 2)), np.zeros((2, 1)), np.ones((1, 2)), algorithm="ode")
    # N_A beyond the dense six-index projectors: refused before the statistics are computed, with the limit
    X = np.random.default_rng(0).standard_normal((25, 2))
    with pytest.raises(DeepEFTInputError, match=r"N_A = 24 training inputs is too many.*N_A ≤ 20.*at most 20"):
        de.finite_width_prediction(de.MLP(2, [8], 1, "tanh"), X[:24], np.zeros((24, 1)), X[24:], algorithm="ode")


@pytest.mark.parametrize("nL", [1, 2])
@pytest.mark.parametrize("algorithm", ["gd", "ode", "two_step"])
def test_printed_sums_with_errata(algorithm, nL):
    """The printed (∞.157)–(∞.160) equal the term-by-term mean once two errata are applied (findings of this test
    series, docs/finite_width_training.md): (∞.158)'s factor 2 needs Z_B symmetrized under the pair swap
    (12)(34) — the GD projector (∞.143) is not symmetric, the contraction with dĤ only sees its symmetric part;
    (∞.160) swaps the IIB permutations of T and U (correct: T_{δ123} Z_IIB^{312645}, U_{δ123} Z_IIB^{231564})."""
    N, n = 5, 10.0
    tr, te, al = np.array([0, 1, 3]), np.array([2, 4]), np.arange(5)
    st, _, _ = _statistics(N, seed=7)
    y = np.random.default_rng(1).standard_normal((3, nL))
    eta = 0.3 if algorithm == "gd" else None
    r = finite_width_mean_from_statistics(**st, y=y, n_prev=n, train_idx=tr, test_idx=te, eta=eta, algorithm=algorithm)
    H, K, P, Q, R, S, T, U = (st[k] for k in "HKPQRSTU")
    Pd = H[:, tr] @ np.linalg.inv(H[np.ix_(tr, tr)])
    Z = dense_projectors(H[np.ix_(tr, tr)], eta, algorithm)
    ZA, ZB = Z["Z_A"], 0.5 * (Z["Z_B"] + es("badc->abcd", Z["Z_B"]))

    def s(X, *ix):
        return X[np.ix_(*ix)]

    Y, Kt = y.T, K[np.ix_(tr, tr)]
    c1 = 2 * (s(P, al, tr, tr, tr) + s(Q, al, tr, tr, tr) + nL * es("xbac->xabc", s(Q, al, tr, tr, tr)))
    c2 = (
        nL * es("axbc->xabc", s(P, tr, al, tr, tr))
        + es("axbc->xabc", s(Q, tr, al, tr, tr))
        + es("abxc->xabc", s(Q, tr, tr, al, tr))
    )
    c3 = (
        es("axbc->xabc", s(P, tr, al, tr, tr))
        + nL * es("axbc->xabc", s(Q, tr, al, tr, tr))
        + es("abxc->xabc", s(Q, tr, tr, al, tr))
    )
    m_d = -(es("xabc,abcd,id->ix", c1, ZB, Y) + es("xabc,abcd,id->ix", c2, ZA, Y) + es("xabc,abdc,id->ix", c3, ZA, Y)) / n
    Yc = es("id,ef->idef", Y, Y.T @ Y + nL * Kt) + es("ie,fd->idef", Y, Kt) + es("if,de->idef", Y, Kt)
    ZIA, ZIB, ZIIA, ZIIB = (Z[k] for k in ("Z_IA", "Z_IB", "Z_IIA", "Z_IIB"))
    c = "xabc,abcdef,idef->ix"
    m_I = (
        -(
            es(c, s(R, al, tr, tr, tr), ZIB + es("bcaefd->abcdef", ZIB) + es("cabfde->abcdef", ZIB), Yc)
            + es("axbc,abcdef,idef->ix", s(R, tr, al, tr, tr), ZIA, Yc)
            + es("abcx,abcefd,idef->ix", s(R, tr, tr, tr, al), ZIA, Yc)
            + es("acxb,abcfde,idef->ix", s(R, tr, tr, al, tr), ZIA, Yc)
        )
        / n
    )
    m_II = (
        -(
            es(c, s(S, al, tr, tr, tr), ZIIB, Yc)
            + es("xabc,cabfde,idef->ix", s(T, al, tr, tr, tr), ZIIB, Yc)  # printed: Z_IIB^{231564} (erratum)
            + es("xabc,bcaefd,idef->ix", s(U, al, tr, tr, tr), ZIIB, Yc)  # printed: Z_IIB^{312645} (erratum)
            + es("abxc,abcefd,idef->ix", s(S, tr, tr, al, tr), ZIIA, Yc)
            + es("axcb,abcdef,idef->ix", s(T, tr, al, tr, tr), ZIIA, Yc)
            + es("acbx,abcfde,idef->ix", s(U, tr, tr, tr, al), ZIIA, Yc)
        )
        / n
    )
    AB = (
        s(st["A"], al, tr, tr, tr)
        + es("xbac->xabc", s(st["B"], al, tr, tr, tr))
        + nL * es("xcab->xabc", s(st["B"], al, tr, tr, tr))
    )
    Hi = np.linalg.inv(H[np.ix_(tr, tr)])
    m_D = -es("xabc,ab,cd,id->ix", AB, Hi, Hi, Y) / n  # printed (∞.157) without the minus sign (erratum)

    def br(raw):
        return (raw[:, te] - raw[:, tr] @ Pd[te].T).T

    for mine, printed in ((r.m_delta_ntk, m_D), (r.m_dntk, m_d), (r.m_ddntk_I, m_I), (r.m_ddntk_II, m_II)):
        np.testing.assert_allclose(mine, br(printed), rtol=1e-10, atol=1e-13)


def test_delta_ntk_part_against_real_networks_own_ntk():
    """m^ΔNTK (∞.157) against real networks (prediction, Monte Carlo): the second-order ΔĤ part of each network's own
    frozen-NTK prediction Ĥ_{β𝒜}Ĥ⁻¹y (its exact inverse, minus the part linear in ΔĤ = Ĥ − Θ) averaged over 6000
    tanh networks of width 32, depth 2 (E[Ĥ] = Θ and E[ΔĤΔĤ] = (A + 2B)/n exactly at L = 2). Rule: |z| < Z_MAX after
    an allowance 2·(L/n)·|m^ΔNTK| for the O(1/n²) third order of the inverse (measured: −0.0059 ± 0.0004 at n = 16
    against −0.0069, ∝ 1/n² within errors at n = 64). The printed sign of (∞.157) is off by ≳ 20 standard errors."""
    import jax
    import jax.numpy as jnp

    from deepeft._x64 import x64
    from deepeft.simulate.forward import init_params, network_key
    from deepeft.simulate.ntk import ntk_forward

    NA, n, R = 3, 32, 6000
    X = np.random.default_rng(11).standard_normal((NA + 2, 8))
    X *= np.sqrt(8 / (X**2).sum(1, keepdims=True))
    y = np.sin(X[:NA].sum(1, keepdims=True))
    net = de.MLP(8, [n], 1, "tanh", C_b=0.0, C_W=1.0)
    th = de.ntk_fluctuations(net, X)
    Th, zero = th.Theta[-1], np.zeros((NA + 2,) * 4)
    r = finite_width_mean_from_statistics(Th, th.K[-1], th.A[-1], th.B[-1], *(zero,) * 6, y=y, n_prev=n,
                                          train_idx=np.arange(NA), test_idx=np.arange(NA, NA + 2), algorithm="ode")
    with x64():
        keys = jax.vmap(lambda s: network_key(5, s))(jnp.arange(R))
        H = jax.jit(jax.vmap(lambda k: ntk_forward(net, init_params(net, k, jnp.float64), jnp.asarray(X))[-1][0, 0]))(keys)
        H = np.asarray(H)
    Ti = np.linalg.inv(Th[:NA, :NA])
    P = Th[NA:, :NA] @ Ti
    own = es("sba,sac,c->sb", H[:, NA:, :NA], np.linalg.inv(H[:, :NA, :NA]), y[:, 0])
    D = H - Th
    lin = P @ y[:, 0] + es("sba,ac,c->sb", D[:, NA:, :NA] - es("ba,sac->sbc", P, D[:, :NA, :NA]), Ti, y[:, 0])
    m, se = (own - lin).mean(0), (own - lin).std(0, ddof=1) / np.sqrt(R)
    pred = r.m_delta_ntk[:, 0]
    allow = 2 * (2 / n) * np.abs(pred)
    print("m^ΔNTK MC", m, "±", se, "theory", pred, "z", (m - pred) / se, "printed-sign z", (m + pred) / se)
    assert np.all(np.abs(m - pred) < Z_MAX * se + allow), ((m - pred) / se, m, pred)
    assert np.max(np.abs(m + pred) / se) > 20  # the printed sign is resolved as wrong
