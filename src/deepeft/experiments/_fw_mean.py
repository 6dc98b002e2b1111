"""The finite-width correction to the mean trained output, measured on an ensemble of networks trained by full-batch
GD (the Monte Carlo side of the ensemble-mean check of ``finite-width-training``, PDLT (∞.155)).

Network s starts from ``init_params(net, network_key(seed, s))`` and is trained by MSE gradient descent with the
λ's of (8.6) at one step η for the whole ensemble (the projectors of (∞.155) depend on η) until every training
residual max|z_𝒜 − y| < tol. Its test outputs z_β(T) give an unbiased estimate of the correction
m_β − m^NTK_β = E[z_β(T)] − Θ_{βα̃}Θ̃⁻¹y (Θ the frozen NTK on which the prediction is built) through

    e_s = z_β(T) − [z_β − P_βα̃ (z_α̃ − y)] + b_βα̃ Θ̃⁻¹ (z − y)_α̃,   P = Θ_{β𝒜}Θ̃⁻¹,  b = ΔĤ_{β𝒜} − P ΔĤ_{𝒜𝒜},

with z, ΔĤ = Ĥ − Θ the network's own initial outputs and NTK (control variates, derived here):

* E[z] = 0 exactly (parity of the last layer), so the bracket only removes the O(1) network-to-network spread of
  the linearized prediction;
* b Θ̃⁻¹ z has mean 0 (ΔĤ is even, z odd under the last layer's sign flip); b Θ̃⁻¹ y has mean 0 at L = 2, where
  E[Ĥ] = Θ exactly (the first-layer preactivations are Gaussian). At L ≥ 3 its mean is the NLO NTK mean H^{1}
  inside the printed m^NTK = H_{βα̃}H̃⁻¹y (§∞.2.3, footnote 7: O(1/n), not O(L/n), and not computed by deepeft),
  so e_s then estimates the other O(1/n) parts — exactly what :func:`deepeft.finite_width_prediction` adds to m^NTK.
  Removing the linear ΔĤ term this way leaves the second-order one, whose mean is m^ΔNTK (∞.157);
* antithetic pairs: each network is trained again with its last layer's W and b negated (an equally likely
  initialization) and the pair's mean is one sample; this cancels the odd terms (z, dĤ·yy, …) exactly.

What remains fluctuates at O(1/n) like the signal itself, so the significance of the correction does not fall with
the width; the standard error is the spread of the pair means over √(pairs).
"""

from __future__ import annotations

import functools

import numpy as np

from ..network import MLP

__all__ = ["default_batch", "trained_mean_correction"]

CHUNK = 250  # GD steps per compiled call between residual checks


@functools.lru_cache(maxsize=8)
def _programs(net: MLP, n_train: int):
    import jax
    import jax.numpy as jnp

    from ..losses import mse_loss
    from ..simulate.forward import forward_preactivations, init_params, network_key
    from ..simulate.ntk import ntk_autodiff
    from ..simulate.training import gd_update

    def init(seed, ids, flip):
        p = jax.vmap(lambda s: init_params(net, network_key(seed, s), jnp.float64))(ids)
        sgn = jnp.where(flip, -1.0, 1.0)
        return tuple(p[:-1]) + ((sgn * p[-1][0], sgn * p[-1][1]),)

    def at_init(p, X):  # z (B, N), Ĥ (B, N, N) of the (single) output
        one = lambda q: (forward_preactivations(net, q, X)[-1][:, 0], ntk_autodiff(net, q, X)[0, 0])  # noqa: E731
        return jax.vmap(one)(p)

    def advance(p, X, Y, eta):
        step = lambda q: jax.lax.fori_loop(0, CHUNK, lambda i, r: gd_update(net, mse_loss, r, X[:n_train], Y, eta), q)  # noqa: E731
        q = jax.vmap(step)(p)
        z = jax.vmap(lambda r: forward_preactivations(net, r, X)[-1][:, 0])(q)
        return q, z

    return jax.jit(init, static_argnums=0), jax.jit(at_init), jax.jit(advance)


def default_batch(net: MLP, N: int) -> int:
    """Networks vmapped together: a power of two in [8, 256] keeping the N × (#parameters) Jacobians ≲ 2²⁴ floats."""
    n_par = sum(net.n[l] * net.n[l - 1] + net.n[l] for l in range(1, net.L + 1))
    b = 256
    while b > 8 and b * N * n_par > 2**24:
        b //= 2
    return b


def trained_mean_correction(net: MLP, X_train, Y_train, X_test, Theta, *, eta: float, n_pairs: int, seed: int,
                            tol: float, max_steps: int, batch: int | None = None) -> dict:
    """Estimate E[z_β(T)] − Θ_{β𝒜}Θ̃⁻¹y on the test inputs (one output, n_L = 1) from ``n_pairs`` antithetic pairs.

    ``Theta``: the frozen NTK (N_A + N_B)² on the joint inputs (train first). Returns ``{"mean", "stderr"}``
    (N_B,), ``"residual"`` (largest final training residual), ``"steps"`` (largest step count).
    """
    import jax.numpy as jnp

    from .._x64 import x64

    NA = X_train.shape[0]
    y = np.asarray(Y_train, dtype=np.float64)[:, 0]
    Th = np.asarray(Theta, dtype=np.float64)
    Thi = np.linalg.inv(Th[:NA, :NA])
    P = Th[NA:, :NA] @ Thi
    init, at_init, advance = _programs(net, NA)
    batch = min(default_batch(net, NA + X_test.shape[0]) if batch is None else batch, n_pairs)
    est = np.zeros((2, n_pairs, X_test.shape[0]))
    worst, steps_max = 0.0, 0
    with x64():
        X = jnp.asarray(np.concatenate([X_train, X_test]), jnp.float64)
        Yj = jnp.asarray(y[:, None])
        for start in range(0, n_pairs, batch):
            ids = jnp.arange(start, start + batch)
            for f in (0, 1):
                p = init(seed, ids, bool(f))
                z0, H = (np.asarray(a) for a in at_init(p, X))
                steps, res = 0, np.inf
                while steps < max_steps:
                    p, zT = advance(p, X, Yj, eta)
                    steps += CHUNK
                    zT = np.asarray(zT)
                    res = float(np.max(np.abs(zT[:, :NA] - y)))
                    if not np.isfinite(res) or res < tol:
                        break
                if not res < tol:
                    raise RuntimeError(
                        f"ensemble mean (n={net.n[1]}, L={net.L}): GD reached max|z_A − y| = {res:.3g} after {steps} "
                        f"steps at η = {eta:.4g}, not below tol = {tol:g}; lower eta_frac or raise max_steps."
                    )
                worst, steps_max = max(worst, res), max(steps_max, steps)
                eps = z0[:, :NA] - y
                dH = H - Th
                b = dH[:, NA:, :NA] - np.einsum("ba,sac->sbc", P, dH[:, :NA, :NA])
                e = zT[:, NA:] - z0[:, NA:] + eps @ P.T + np.einsum("sba,ac,sc->sb", b, Thi, eps)
                k = min(batch, n_pairs - start)
                est[f, start : start + k] = e[:k]
    pair = est.mean(axis=0)
    return {"mean": pair.mean(axis=0), "stderr": pair.std(axis=0, ddof=1) / np.sqrt(n_pairs),
            "residual": worst, "steps": steps_max}
