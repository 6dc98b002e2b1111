"""The output-layer NTK statistics route (backpropagated Jacobians, batched GEMMs) of ``ntk_statistics``.

Independent paths: the per-network NTK by autodiff of the definition (8.7) (``jax.jacrev``), and the
ensemble estimator E[(1/n_L) Σ_i Ĥ_ii] of ``sample_ensemble(ntk=True)`` (forward equation (8.12)) on the
same networks. Plus the streaming contract: results do not depend on the micro-batch size.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import deepeft as de
from deepeft._x64 import x64
from deepeft.simulate import forward as fw
from deepeft.simulate.ensemble import sample_ensemble
from deepeft.simulate.ntk import ntk_autodiff
from deepeft.simulate.ntk_statistics import output_ntk_jacobian

X3 = np.random.default_rng(0).normal(size=(3, 5))
NET = de.MLP(5, [12, 10, 14], 4, "tanh", C_W=1.3, C_b=0.1, lambda_b=[0.5, 1, 2, 0.3], lambda_W=[1, 2, 0.5, 1])


@pytest.mark.parametrize("act", ["tanh", "relu"])
def test_output_jacobian_ntk_equals_autodiff(act):
    """Ĥ^{(L)} = Σ_ℓ [λ_b + λ_W σ·σ/n_{ℓ−1}] G^{(ℓ)}G^{(ℓ)ᵀ} equals jacrev's Σ_μ λ_μ ∂z∂z (8.7) to 1e-10 (float64),
    per-layer λ's and unequal widths, 3 networks; a wrong λ on one layer is caught."""
    net = NET if act == "tanh" else de.MLP(5, [12, 10, 14], 4, "relu", C_W=2.0, lambda_b=[0.5, 1, 2, 0.3])
    def both(net_jac, key):
        p = fw.init_params(net, key, jnp.float64)
        Xj = jnp.asarray(X3)
        return output_ntk_jacobian(net_jac, p, Xj, fw.forward_preactivations(net, p, Xj)), ntk_autodiff(net, p, Xj)

    with x64():
        for s in range(3):
            H, ref = map(np.asarray, jax.jit(both, static_argnums=0)(net, fw.network_key(7, s)))
            scale = np.abs(ref).max()
            assert np.abs(H - ref).max() <= 1e-10 * scale
            assert np.abs(ref).min() < scale  # off-diagonal (i ≠ j) entries present and compared
    other = de.MLP(5, [12, 10, 14], 4, net.activation.name, C_W=net.C_W[0], C_b=net.C_b[0],
                   lambda_b=net.lambda_b, lambda_W=[*net.lambda_W[:2], 1.1 * net.lambda_W[2], net.lambda_W[3]])
    with x64():
        bad, ref = map(np.asarray, jax.jit(both, static_argnums=0)(other, fw.network_key(7, 0)))
    assert np.abs(bad - ref).max() > 1e-3 * np.abs(ref).max()


def test_output_statistics_do_not_depend_on_micro_batch():
    """Network s is always fold_in(PRNGKey(seed), s) and sums run in network order: micro-batches of 2 and
    4 (padded: 9 networks per block) give the same A, B, D, F, E[Ĥ] and SEs (bit-identical on this machine; asserted to 1e-12)."""
    runs = [de.ntk_statistics(NET, X3, 36, seed=5, blocks=4, micro_batch=m, layers="output") for m in (2, 4)]
    assert all(r.n_networks == 36 for r in runs)
    for k in ("A", "B", "D", "F", "H"):
        a, b = (getattr(r, k) for r in runs)
        np.testing.assert_allclose(b.value[-1], a.value[-1], rtol=1e-12, atol=1e-14)
        np.testing.assert_allclose(b.stderr[-1], a.stderr[-1], rtol=1e-10, atol=1e-14)
    # a different network set (seed) changes them: the comparison can fail
    other = de.ntk_statistics(NET, X3, 36, seed=6, blocks=4, micro_batch=4, layers="output")
    assert np.abs(other.A.value[-1] - runs[0].A.value[-1]).max() > 1e-6


def test_output_ntk_mean_and_se_equal_sample_ensemble():
    """E[(1/n_L) Σ_i Ĥ_ii] of the output layer: ntk_statistics (Jacobian route, delete-one jackknife with one
    network per block) and sample_ensemble(ntk=True) (forward equation, delta-method SE s/√S) on the same 24
    networks agree in value (1e-10) and standard error (the delete-one jackknife of a mean is exactly s/√S)."""
    S = 24
    st = de.ntk_statistics(NET, X3, S, seed=3, blocks=S, micro_batch=8, layers="output")
    ens = sample_ensemble(NET, X3, S, seed=3, ntk=True, dtype="float64", vertex=False)
    np.testing.assert_allclose(st.H.value[-1], ens.ntk.value[-1], rtol=1e-10)
    np.testing.assert_allclose(st.H.stderr[-1], ens.ntk.stderr[-1], rtol=1e-8)
    np.testing.assert_allclose(st.metric.value[-1], ens.metric.value[-1], rtol=1e-10)
