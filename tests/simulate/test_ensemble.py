"""Monte Carlo ensembles: exact finite-width results, z-scores, determinism, bounded memory, errors.

Theory is NOT imported (independent paths): the exact results below are derived in the tests.
"""

import dataclasses

import numpy as np
import pytest

import deepeft as de
from conftest import Z_MAX
from deepeft.simulate.ensemble import sample_ensemble
from deepeft.simulate.forward import preactivations
from deepeft.statistics import Estimate

X2 = np.array([[1.0, 0.5, -0.3], [0.2, -1.0, 0.7]])
ZMAX = Z_MAX


def fields(r):
    return {f.name: getattr(r, f.name) for f in dataclasses.fields(r) if isinstance(getattr(r, f.name), Estimate)}


def linear_exact(net, X):
    """Exact finite-width G^{(ℓ)} and V^{(ℓ)} of a linear MLP (σ(z) = z), any C_b, C_W, widths.

    Ĝ^{(ℓ+1)} = C_b + C_W M^{(ℓ)}, M = (1/n_ℓ) Σ_j z_j z_j and, given Ĝ^{(ℓ)}, the rows z_j are iid N(0, Ĝ^{(ℓ)}),
    so Cov(M_12, M_34) = Cov(Ĝ_12, Ĝ_34) + (E[Ĝ_13 Ĝ_24] + E[Ĝ_14 Ĝ_23]) / n_ℓ.
    """
    n = net.n
    G = net.C_b[0] + net.C_W[0] * X @ X.T / n[0]
    C = np.zeros(G.shape * 2)
    Gs, Vs = [G], [C.copy()]
    for l in range(1, net.L):
        T = C + np.einsum("ab,cd->abcd", G, G)  # E[Ĝ ⊗ Ĝ]
        C = net.C_W[l] ** 2 * (C + (T.transpose(0, 2, 1, 3) + T.transpose(0, 3, 2, 1)) / n[l])
        G = net.C_b[l] + net.C_W[l] * G
        Gs.append(G)
        Vs.append(n[l] * C)
    return np.array(Gs), np.array(Vs)


def test_linear_exact_single_input_formula_matches_recursion():
    # brief's closed form for C_b = 0, one input: V^{(ℓ)} = n_{ℓ−1} ((Π_{ℓ'<ℓ} (1 + 2/n_ℓ')) − 1) G^{(ℓ)}²
    net = de.MLP(3, [4, 7, 5], 1, activation="linear", C_W=[1.0, 1.3, 0.8, 1.1])
    G, V = linear_exact(net, X2[:1])
    for l in range(1, net.L + 1):
        prod = np.prod([1 + 2 / net.n[k] for k in range(1, l)])
        assert np.isclose(V[l - 1, 0, 0, 0, 0], net.n[l - 1] * (prod - 1) * G[l - 1, 0, 0] ** 2)


@pytest.mark.parametrize("method", ["weights", "metric"])
def test_linear_network_vertex_and_metric_match_exact_finite_width(method):
    net = de.MLP(3, [6, 10, 8], 5, activation="linear", C_W=[1.0, 1.2, 0.9, 1.1], C_b=[0.3, 0.1, 0.0, 0.2])
    r = sample_ensemble(net, X2, 4000, seed=11, method=method)
    G, V = linear_exact(net, X2)
    zs = {
        "metric": r.metric.z(G),
        "stochastic_metric": r.stochastic_metric.z(G)[1:],  # layer 1 is deterministic: compared below
        "vertex": r.vertex.z(V),
        "vertex_kurtosis": r.vertex_kurtosis.z(np.einsum("laaaa->la", V)),
        "vertex_pairs": r.vertex_pairs.z(np.einsum("laaaa->la", V)),
        "z2": r.z2.z(np.einsum("laa->la", G)),
    }
    for name, z in zs.items():
        z = np.nan_to_num(z, nan=0.0)  # layer 1 of vertex/stochastic metric is exact (stderr 0, z = 0)
        print(method, name, "max |z| =", np.abs(z).max())
        assert np.abs(z).max() < ZMAX, name
    # layer 1: exact zero vertex, deterministic stochastic metric
    assert np.all(r.vertex.value[0] == 0) and np.all(r.stochastic_metric.stderr[0] == 0)
    np.testing.assert_allclose(r.stochastic_metric.value[0], G[0], rtol=1e-14)  # C_b + C_W x·x/n_0, to rounding
    # stochastic metric is the lower-variance (conditional-expectation) estimator of G
    assert np.all(r.stochastic_metric.stderr[1:] < r.metric.stderr[1:])


def test_relu_criticality_preserves_second_moment_exactly_at_every_layer():
    # C_W = 2, C_b = 0: E[z²] = K^{(1)} at every layer, at any width (E[ReLU(z)²] = E[z²]/2)
    net = de.MLP(3, [12, 12, 12, 12], 3, activation="relu", C_W=2.0, C_b=0.0)
    r = sample_ensemble(net, X2, 4000, seed=2, vertex=False)
    K = 2 * np.sum(X2**2, axis=1) / 3
    z = r.z2.z(K[None, :])
    print("ReLU E[z²]/K per layer:", (r.z2.value / K).round(4).tolist(), "z:", z.round(2).tolist())
    assert np.abs(z).max() < ZMAX
    assert r.vertex is None


def test_ensemble_ntk_mean_matches_exact_linear_recursion():
    # linear σ: E[Ĥ^{(ℓ+1)}_{ii}] = λ_b + λ_W G^{(ℓ)} + C_W E[Ĥ^{(ℓ)}_{jj}] exactly (8.12) with E[W W] = C_W/n
    net = de.MLP(3, [5, 6], 4, activation="linear", C_W=[1.0, 1.5, 0.7], C_b=0.2,
                 lambda_b=[0.5, 1.0, 2.0], lambda_W=[1.0, 0.3, 1.5])
    r = sample_ensemble(net, X2, 600, seed=5, ntk=True, vertex=False)
    G, _ = linear_exact(net, X2)
    theta = [net.lambda_b[0] + net.lambda_W[0] * X2 @ X2.T / 3]
    for l in range(1, net.L):
        theta.append(net.lambda_b[l] + net.lambda_W[l] * G[l - 1] + net.C_W[l] * theta[-1])
    z = r.ntk.z(np.array(theta))[1:]
    print("ensemble NTK z-scores:", np.abs(z).max())
    assert np.abs(z).max() < ZMAX
    # first-layer NTK is deterministic (8.23): exact value, zero error
    np.testing.assert_allclose(r.ntk.value[0], theta[0], rtol=1e-14)
    assert np.all(r.ntk.stderr[0] == 0)


def test_bit_identical_for_any_chunk_size_and_kept_preactivations_match_single_networks():
    net = de.MLP(3, [8, 8], 2, activation="tanh", C_W=1.5, C_b=0.1)
    kw = dict(seed=7, micro_batch=8, ntk=True, keep_preactivations=(10, 3))
    runs = [sample_ensemble(net, X2, 45, chunk_size=cs, **kw) for cs in (8, 24)]
    for r in runs[1:]:
        for name, e in fields(r).items():
            np.testing.assert_array_equal(e.value, fields(runs[0])[name].value, err_msg=name)
            np.testing.assert_array_equal(e.stderr, fields(runs[0])[name].stderr, err_msg=name)
    other = sample_ensemble(net, X2, 45, chunk_size=8, **{**kw, "seed": 8})
    assert not np.array_equal(other.metric.value, runs[0].metric.value)
    kept = runs[0].preactivations
    assert [k.shape for k in kept] == [(10, 2, 3), (10, 2, 3), (10, 2, 2)]
    for s in (0, 9):
        zs = preactivations(net, X2, seed=7, index=s)
        for l in range(net.L):
            np.testing.assert_allclose(kept[l][s], zs[l][:, :3], rtol=1e-5, atol=1e-6)


def test_memory_structure_does_not_grow_with_n_networks():
    from deepeft.simulate import ensemble as ens

    net = de.MLP(3, [4], 1, activation="tanh")
    n_networks = 1237
    r = sample_ensemble(net, X2, n_networks, seed=0, micro_batch=16, chunk_size=64)
    for name, e in fields(r).items():
        for a in (e.value, e.stderr):
            assert n_networks not in np.shape(a), name
    # accumulators are fixed-size: they depend on the configuration, never on n_networks
    cfg = ens._Config(net, 2, "weights", "float32", 16, True, False)
    assert sum(a.size for a in ens._zero_acc(cfg).values()) < 10_000
    assert r.n_networks == n_networks and r.preactivations is None


def test_layer_one_observable_vertex_is_zero_within_errors():
    net = de.MLP(3, [50], 1, activation="tanh")
    r = sample_ensemble(net, X2, 2000, seed=3, method="metric")
    z = r.vertex_pairs.z(0.0)[0]
    print("layer-1 vertex_pairs z:", z)
    assert np.abs(z).max() < ZMAX
    assert np.all(np.isnan(r.vertex_pairs.value[-1]))  # width-1 output layer has no neuron pairs
    assert np.all(np.isfinite(r.kurtosis.value))


@pytest.mark.parametrize(
    "kwargs, fragment",
    [
        (dict(n_networks=1), "n_networks must be >= 2"),
        (dict(n_networks=10, micro_batch=4, chunk_size=6), "multiple of micro_batch = 4"),
        (dict(n_networks=10, method="metric", ntk=True), "method='weights'"),
        (dict(n_networks=10, method="exact"), "method must be one of"),
        (dict(n_networks=10, keep_preactivations=(20, 2)), "n_networks = 10"),
        (dict(n_networks=10, keep_preactivations="all"), "keep_preactivations must be"),
        (dict(n_networks=10, dtype="half"), "dtype must be"),
    ],
)
def test_bad_input_raises_actionable_error(kwargs, fragment):
    net = de.MLP(3, [4], 1)
    n = kwargs.pop("n_networks")
    with pytest.raises(de.DeepEFTInputError, match=fragment):
        sample_ensemble(net, X2, n, **kwargs)


def test_vertex_memory_guard():
    net = de.MLP(3, [4], 1)
    X = np.random.default_rng(0).normal(size=(100, 3))
    with pytest.raises(de.DeepEFTInputError, match="grows as N\\^4"):
        sample_ensemble(net, X, 10, vertex=True)
