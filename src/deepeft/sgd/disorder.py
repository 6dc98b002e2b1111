"""The disordered-system reading of the MSE loss (Park, Lucini & Aarts 2025, §2.1–2.4, (2.7)–(2.10), (2.24)).

With a linear, bias-free output layer ŷ_α = W^{(L)} φ_α, the loss (2.6) is an energy of the "soft spins"
φ_jα = φ(z_j^{(L−1)}(x_α)):

    ℒ = (1/2|D|) Σ_α Σ_ij J_ij φ_iα φ_jα − (1/|D|) Σ_α Σ_j h_jα φ_jα + C                                   (2.7)
    J = W^{(L)ᵀ} W^{(L)},   h_jα = Σ_i y_iα W^{(L)}_ij,   C = (1/2|D|) Σ_α |y_α|²                              (2.8)

At initialisation W^{(L)} ~ N(0, σ_W²/n_{L−1}) makes J a Wishart matrix (2.24):

    E[J_ij] = (n_L/n_{L−1}) σ_W² δ_ij,    Cov[J_ij, J_kl] = (n_L/n_{L−1}²) σ_W⁴ (δ_ik δ_jl + δ_il δ_jk).

[derived] In the paper's teacher–student setting the output layer is the teacher's (frozen, W̄^{(L)}) and the labels are
the teacher's outputs y_α = W̄^{(L)} φ̄_α, so h_α = J φ̄_α and ℒ = (1/2|D|) Σ_α (φ_α − φ̄_α)ᵀ J (φ_α − φ̄_α): a *planted*
(Mattis-like) model whose ground state is the teacher's features; J is rank n_L (= 1 in the paper) and carries the
teacher's C_W, not the student's σ_W — the disorder strength σ_W enters through the features φ (via W^{(L−1)}).

References:
  Park, Lucini & Aarts, Phase diagram and eigenvalue dynamics of stochastic gradient descent in multilayer neural
  networks (2025), arXiv:2509.01349
"""

from __future__ import annotations

import dataclasses

import numpy as np

from .. import _validate as v
from ..errors import DeepEFTInputError
from .teacher_student import Problem, TeacherStudent

__all__ = ["Disorder", "WishartClasses", "disorder", "energy", "energy_at_init", "last_layer_weights", "wishart_classes",
           "wishart_moments"]


@dataclasses.dataclass(frozen=True)
class Disorder:
    """Couplings J (…, n_{L−1}, n_{L−1}), fields h (…, N, n_{L−1}) and constant C (…) of (2.8)."""

    J: np.ndarray
    h: np.ndarray
    C: np.ndarray


def disorder(W_last, y) -> Disorder:
    """J = WᵀW, h_α = Wᵀ y_α, C = (1/2|D|) Σ_α |y_α|² (2.8) for W (…, n_L, n_{L−1}) and labels y (…, N, n_L)."""
    W = np.asarray(W_last, dtype=np.float64)
    y = np.asarray(y, dtype=np.float64)
    if W.ndim < 2 or y.ndim < 2 or y.shape[-1] != W.shape[-2]:
        raise DeepEFTInputError(
            f"W_last must be (…, n_L, n_(L−1)) and y (…, N, n_L) with the same n_L; got {W.shape}, {y.shape}."
        )
    J = np.einsum("...ki,...kj->...ij", W, W)
    h = np.einsum("...ak,...kj->...aj", y, W)
    C = 0.5 * np.mean(np.sum(y**2, axis=-1), axis=-1)
    return Disorder(J, h, C)


def energy(J, h, phi, C=0.0) -> np.ndarray:
    """ℒ = (1/2|D|) Σ_α φ_αᵀ J φ_α − (1/|D|) Σ_α h_α·φ_α + C (2.7); φ, h (…, N, n_{L−1}), J (…, n, n) → (…)."""
    J, h, phi = (np.asarray(a, dtype=np.float64) for a in (J, h, phi))
    quad = np.einsum("...ai,...ij,...aj->...a", phi, J, phi)
    return 0.5 * quad.mean(axis=-1) - np.einsum("...ai,...ai->...a", h, phi).mean(axis=-1) + np.asarray(C)


def wishart_moments(sigma_W2: float, n_L: int, n_prev: int) -> tuple[np.ndarray, np.ndarray]:
    """(E[J] (n, n), Cov[J_ij, J_kl] (n, n, n, n)) of J = WᵀW, W (n_L × n_prev) iid N(0, σ_W²/n_prev) (2.24)."""
    s2 = v.finite_scalar(sigma_W2, "sigma_W2", strict=True)
    nL, n = v.positive_int(n_L, "n_L"), v.positive_int(n_prev, "n_prev")
    e = np.eye(n)
    cov = nL / n**2 * s2**2 * (np.einsum("ik,jl->ijkl", e, e) + np.einsum("il,jk->ijkl", e, e))
    return nL / n * s2 * e, cov


@dataclasses.dataclass(frozen=True)
class WishartClasses:
    """Per-sample symmetry-class averages of J (S, 6): columns ``names``; the (2.24) values in ``theory``."""

    names: tuple[str, ...]
    samples: np.ndarray
    theory: np.ndarray


def wishart_classes(J, sigma_W2: float, n_L: int) -> WishartClasses:
    """Reduce sampled couplings J (S, n, n) to the six symmetry classes of (2.24), per sample (so that the mean over the
    S independent samples, with its standard error, estimates each class):

    mean J_ii, mean J_ij (i ≠ j), mean (J_ii − μ)², mean J_ij² (i < j), mean (J_ii − μ)(J_jj − μ) (i ≠ j),
    mean (J_ii − μ) J_ij (i ≠ j), with μ = (n_L/n) σ_W²; (2.24) gives μ, 0, 2n_Lσ_W⁴/n², n_Lσ_W⁴/n², 0, 0."""
    J = np.asarray(J, dtype=np.float64)
    if J.ndim != 3 or J.shape[1] != J.shape[2] or J.shape[1] < 2:
        raise DeepEFTInputError(f"J must be (samples, n, n) with n ≥ 2, got {J.shape}.")
    n = J.shape[1]
    mean, cov = wishart_moments(sigma_W2, n_L, n)
    mu = mean[0, 0]
    d = np.einsum("sii->si", J) - mu
    off = ~np.eye(n, dtype=bool)
    iu = np.triu_indices(n, 1)
    cols = [
        d.mean(axis=1) + mu,
        J[:, off].mean(axis=1),
        (d**2).mean(axis=1),
        (J[:, iu[0], iu[1]] ** 2).mean(axis=1),
        ((d.sum(1) ** 2 - (d**2).sum(1)) / (n * (n - 1))),
        (d[:, :, None] * J)[:, off].mean(axis=1),
    ]
    theory = np.array([mu, 0.0, cov[0, 0, 0, 0], cov[0, 1, 0, 1], 0.0, 0.0])
    names = ("E J_ii", "E J_ij (i≠j)", "Var J_ii", "Var J_ij (i≠j)", "Cov(J_ii, J_jj)", "Cov(J_ii, J_ij)")
    return WishartClasses(names, np.stack(cols, axis=1), theory)


def last_layer_weights(setup: TeacherStudent, problem: Problem, sigma_W=None) -> tuple[np.ndarray, float]:
    """The output-layer weights W^{(L)} (M, n_L, n_{L−1}) at initialisation and their variance scale σ² (W ~ N(0, σ²/n_{L−1})):
    the teacher's (frozen; σ² = teacher C_W^{(L)}) or, for a trainable output layer, the student's at ``sigma_W``."""
    L = setup.L
    if L not in setup.trainable:
        return np.asarray(problem.frozen[-1]["W"], dtype=np.float64), float(setup.teacher.C_W[L - 1])
    if sigma_W is None:
        raise DeepEFTInputError("the output layer is trainable: pass sigma_W (the student's initial scale).")
    s = v.finite_scalar(sigma_W, "sigma_W", strict=True)
    noise = np.asarray(problem.init_noise[-1]["W"], dtype=np.float64)  # (M, n_{L−1}, n_L)
    return np.swapaxes(noise, 1, 2) * s / np.sqrt(setup.n[L - 1]), s * s


def energy_at_init(setup: TeacherStudent, problem: Problem, sigma_W, *, test: bool = True) -> tuple[np.ndarray, np.ndarray]:
    """(MSE loss (2.6), energy (2.7)) of the students at initialisation, per member and σ_W: two arrays (M, P).

    The loss comes from the student's forward pass (:func:`~.teacher_student.losses`), the energy from J, h, C of the
    output layer and the features φ; they agree when the output layer is linear and bias-free (the paper's setting).
    """
    import jax.numpy as jnp

    from .teacher_student import init_params, mse, student_outputs

    if setup.bias:
        raise DeepEFTInputError(
            "the energy form (2.7) assumes a bias-free output layer (the paper's setting); use bias=False."
        )
    sW = jnp.atleast_1d(jnp.asarray(sigma_W, dtype=problem.a_train.dtype))
    a_all, y_all = (problem.a_test, problem.y_test) if test else (problem.a_train, problem.y_train)

    def pick(tree, k):
        return tuple(None if z is None else {key: (None if val is None else val[k]) for key, val in z.items()} for z in tree)

    P = sW.shape[0]
    loss, en = [], []
    for k in range(a_all.shape[0]):
        params = init_params(pick(problem.init_noise, k), sW, setup)
        phi, out = student_outputs(setup, params, pick(problem.frozen, k), a_all[k])
        loss.append(np.asarray(mse(out, y_all[k]), dtype=np.float64))
        if setup.L in setup.trainable:
            W = np.moveaxis(np.asarray(params[-1]["W"], dtype=np.float64), (0, 1, 2), (2, 0, 1))  # (P, n_L, n_{L−1})
        else:
            Wk = np.asarray(problem.frozen[-1]["W"][k], dtype=np.float64)
            W = np.broadcast_to(Wk, (P, *Wk.shape))
        yk = np.asarray(y_all[k], dtype=np.float64)
        d = disorder(W, np.broadcast_to(yk, (P, *yk.shape)))
        en.append(energy(d.J, d.h, np.swapaxes(np.asarray(phi, dtype=np.float64), 0, 1), d.C))
    return np.stack(loss), np.stack(en)
