"""Per-network NTK, dNTK and ddNTKs by automatic differentiation (PDLT (11.7), (11.8), (∞.5), (∞.7)).

All tensors carry the learning-rate tensor (8.6) — step ηλ_b^{(ℓ)} for biases and ηλ_W^{(ℓ)}/n_{ℓ−1} for
weights (:func:`.training.lambda_tree`, the λ of the GD update). Write θ for the parameters of layers
1..ℓ, λ for the diagonal of (8.6) and, for one neural-sample pair k = (i, δ) of layer ℓ, the λ-weighted
gradient v_k = λ ∇_θ z^{(ℓ)}_{i;δ} (the direction a GD step moves θ in, (∞.2)). Then

    Ĥ_{i1i2;δ1δ2}            = v_1·∇z_2 = Σ_μ λ_μ ∂_μ z_1 ∂_μ z_2                                  (11.7)
    dĤ_{i0i1i2;δ0δ1δ2}        = ∂²z_0[v_1, v_2]     (second directional derivative)                (11.8)
    dd_IĤ_{i0i1i2i3;δ0…δ3}    = ∂³z_0[v_1, v_2, v_3]                                              (∞.5)
    dd_IIĤ_{i1i2i3i4;δ1…δ4}   = Σ_μ λ_μ (∇²z_1 v_3)_μ (∇²z_2 v_4)_μ                                (∞.7)

computed as Hessian-vector products (forward-over-reverse: ``jax.linearize`` of ``jax.jacrev``) and a
nested ``jax.jvp`` for the third derivative, jitted, in float64 by default. Symmetries (tested):
dĤ is symmetric under (i1,δ1) ↔ (i2,δ2) only; dd_IĤ is totally symmetric in its last three pairs;
dd_IIĤ only under the joint swap (i1,δ1) ↔ (i2,δ2) with (i3,δ3) ↔ (i4,δ4) (digest erratum to (∞.7)).
All vanish at layer 1 (z^{(1)} is linear in θ).

Layouts: neural indices first, then sample indices, in the order the book prints them —
dNTK (n, n, n, N, N, N) = [i0, i1, i2, δ0, δ1, δ2]; dd_I and dd_II (n, n, n, n, N, N, N, N) =
[i0, i1, i2, i3, δ0, δ1, δ2, δ3] (dd_II's first index is the book's i1). ``neurons=(a, b, …)`` restricts
every neural index to those neurons of layer ℓ (in that order), so wide layers can be probed without
n⁴ memory; cost ~ (mN)² gradient evaluations for m neurons and N inputs.

One GD step with MSE (θ ← θ − ηλ∇ℒ, ε = z − y, :func:`one_step_prediction`) changes the output by
(∞.4) Δz = −ηĤε + (η²/2)dĤεε − (η³/6)dd_Iεεε + O(η⁴), the NTK by (∞.6) and the dNTK by (∞.9).

Ensemble statistics (the measurable projections, with standard errors from independent networks) —
e.g. for the theory tests::

    st = de.simulate.dntk_statistics(net, X, n_networks=4096, seed=0)         # P, Q of (11.45)
    st.P.value[l - 1], st.P.stderr[l - 1]                                      # P^{(ℓ)}_{δ0δ1δ2δ3}
    dd = de.simulate.ddntk_statistics(net, X, n_networks=4096, seed=0)         # R, S, T, U of (∞.11)–(∞.12)
    dd.T.value[l - 1][d1, d3, d4, d2]                                          # T^{(ℓ)}_{δ1δ3δ4δ2}

All are n_{ℓ−1} × the expectation of a neuron-pair pattern (pairs a ≠ b of the first ``neurons``
neurons of layer ℓ, averaged), i.e. the tensors with the 1/n_{ℓ−1} of (11.45)/(∞.11)/(∞.12) taken out,
the normalisation of :func:`deepeft.ntk_fluctuations`:

    P_{δ0δ1δ2δ3} = n_{ℓ−1} E[dĤ_{abb;δ0δ1δ2} z_{a;δ3}],   Q_{δ0δ1δ2δ3} = n_{ℓ−1} E[dĤ_{aab;δ0δ1δ2} z_{b;δ3}]   (11.45)
    R_{δ0δ1δ2δ3} = n_{ℓ−1} E[dd_IĤ_{aabb;δ0δ1δ2δ3}]                                                      (∞.11)
    S_{δ1δ2δ3δ4} = n_{ℓ−1} E[dd_IIĤ_{aabb;δ1δ2δ3δ4}],  T_{δ1δ3δ4δ2} = n_{ℓ−1} E[dd_IIĤ_{abab;δ1δ2δ3δ4}],
    U_{δ1δ4δ2δ3} = n_{ℓ−1} E[dd_IIĤ_{abba;δ1δ2δ3δ4}]                                                      (∞.12)

(exact definitions at finite width; the theory gives them at leading order in 1/n). Arrays (L, N, N, N, N),
layer ℓ at index ℓ − 1, indices in the printed order (T[ℓ−1, δ1, δ3, δ4, δ2] = T^{(ℓ)}_{δ1δ3δ4δ2});
layer 1 is exactly zero (SE 0).

References:
  Roberts, Yaida, Hanin, *The Principles of Deep Learning Theory* (arXiv:2106.10165), (8.6), (11.7)–(11.10),
  (11.45), (∞.1)–(∞.12).
"""

from __future__ import annotations

import dataclasses
import functools

import jax
import jax.numpy as jnp
import numpy as np
from jax.flatten_util import ravel_pytree

from .. import _validate as v
from .._x64 import x64
from ..errors import DeepEFTInputError
from ..losses import mse_loss
from ..network import MLP
from ..statistics import Estimate
from . import estimators as est
from . import forward as fw
from .training import gd_update, lambda_tree

__all__ = [
    "DDNTKStatistics",
    "DNTKStatistics",
    "NTKTensors",
    "OneStepPrediction",
    "compare_step",
    "ddntk_statistics",
    "dntk_statistics",
    "empirical_ddntk",
    "empirical_dntk",
    "empirical_tensors",
    "error_factor",
    "expansion_terms",
    "mse_step",
    "one_step_prediction",
]

_MB_BUDGET_FLOATS = 2**24  # working set of one micro-batch of networks (≈ 128 MB in float64)


# -- the per-network core (pure JAX) ------------------------------------------------------------


def _flat_problem(net: MLP, layer: int, params, X, sel: tuple[int, ...]):
    """(θ, λ, z) for layer ℓ: flat parameters of layers 1..ℓ, their (8.6) step factors, and
    z(θ) = z^{(ℓ)}_{i;δ} for i in ``sel`` flattened with k = position(i)·N + δ."""
    p = tuple(params[:layer])
    theta, unravel = ravel_pytree(p)
    lam_tree = tuple(
        (jnp.full(W.shape, lw, theta.dtype), jnp.full(b.shape, lb, theta.dtype))
        for (W, b), (lw, lb) in zip(p, lambda_tree(net)[:layer], strict=True)
    )
    lam, _ = ravel_pytree(lam_tree)
    idx = np.asarray(sel, dtype=np.int32)

    def z(t):
        zl = fw.forward_preactivations(net, unravel(t), X)[layer - 1]  # (N, n_ℓ)
        return zl[:, idx].T.reshape(-1)

    return theta, lam, z


def _first_order(theta, lam, z):
    """J (K, P), V = λJ (the directions v_k), Ĥ = V Jᵀ (K, K) (11.7), M[k1, k0] = ∇²z_{k0} v_{k1} (K, K, P)."""
    jac = jax.jacrev(z)
    J = jac(theta)
    V = J * lam
    _, hvp = jax.linearize(jac, theta)
    M = jax.vmap(hvp)(V)
    return J, V, M


def _dntk_flat(V, M):
    """dĤ[k0, k1, k2] = (∇²z_{k0} v_{k1})·v_{k2} (11.8)."""
    return jnp.einsum("bam,cm->abc", M, V)


def _ddII_flat(lam, M):
    """dd_IIĤ[k1, k2, k3, k4] = Σ_μ λ_μ (∇²z_{k1} v_{k3})_μ (∇²z_{k2} v_{k4})_μ (∞.7)."""
    return jnp.einsum("cam,dbm->abcd", M, M * lam)


def _third_slices(theta, z, V, U, W):
    """For direction pairs (u_p, w_p): out[p, k0, k1] = ∂³z_{k0}[u_p, w_p, v_{k1}] (∞.5), lax.map over p."""
    jac = jax.jacrev(z)

    def one(uw):
        u, w = uw
        d2J = jax.jvp(lambda t: jax.jvp(jac, (t,), (u,))[1], (theta,), (w,))[1]  # (K0, P)
        return d2J @ V.T

    return jax.lax.map(one, (U, W))


def _unflatten(T, m: int, N: int):
    """(K,)*r with k = i·N + δ → (m,)*r + (N,)*r (neural indices first)."""
    r = T.ndim
    T = T.reshape((m, N) * r)
    return T.transpose(tuple(range(0, 2 * r, 2)) + tuple(range(1, 2 * r, 2)))


def _tensors_one(net: MLP, layer: int, sel: tuple[int, ...], want_dd: bool, params, X):
    """z (m, N), Ĥ, dĤ and (optionally) dd_IĤ, dd_IIĤ of one network, in the public layouts."""
    m, N = len(sel), X.shape[0]
    theta, lam, z = _flat_problem(net, layer, params, X, sel)
    J, V, M = _first_order(theta, lam, z)
    out = {
        "z": z(theta).reshape(m, N),
        "ntk": _unflatten(V @ J.T, m, N),
        "dntk": _unflatten(_dntk_flat(V, M), m, N),
    }
    if want_dd:
        K = m * N
        U = jnp.repeat(V, K, axis=0)  # pair p = (k2, k3) → u = v_{k2}, w = v_{k3}
        Wd = jnp.tile(V, (K, 1))
        s = _third_slices(theta, z, V, U, Wd).reshape(K, K, K, K)  # [k2, k3, k0, k1]
        out["dd_I"] = _unflatten(s.transpose(2, 3, 0, 1), m, N)
        out["dd_II"] = _unflatten(_ddII_flat(lam, M), m, N)
    return out


@functools.lru_cache(maxsize=64)
def _jitted_tensors(net: MLP, layer: int, sel: tuple[int, ...], want_dd: bool):
    return jax.jit(functools.partial(_tensors_one, net, layer, sel, want_dd))


# -- public per-network API ---------------------------------------------------------------------


@dataclasses.dataclass(frozen=True, eq=False)
class NTKTensors:
    """One network's layer-ℓ tensors on ``neurons`` (m of them) and N inputs (NumPy, float64 by default).

    ``z`` (m, N) = z_{i;δ}; ``ntk`` (m, m, N, N) (11.7); ``dntk`` (m, m, m, N, N, N) (11.8);
    ``dd_I`` (m,)*4 + (N,)*4 (∞.5) and ``dd_II`` (m,)*4 + (N,)*4 (∞.7), indices as printed in the book.
    """

    layer: int
    neurons: tuple[int, ...]
    z: np.ndarray
    ntk: np.ndarray
    dntk: np.ndarray
    dd_I: np.ndarray | None = None
    dd_II: np.ndarray | None = None


def _check_layer(net: MLP, layer) -> int:
    if layer is None:
        return net.L
    if isinstance(layer, bool) or not isinstance(layer, (int, np.integer)) or not 1 <= layer <= net.L:
        raise DeepEFTInputError(f"layer must be an integer in 1..L = 1..{net.L} (None: the output layer), got {layer!r}.")
    return int(layer)


def _check_neurons(net: MLP, layer: int, neurons) -> tuple[int, ...]:
    n_l = net.n[layer]
    if neurons is None:
        return tuple(range(n_l))
    try:
        sel = tuple(int(i) for i in np.atleast_1d(np.asarray(neurons)))
        ok = all(i == j for i, j in zip(sel, np.atleast_1d(np.asarray(neurons)), strict=True))
    except (TypeError, ValueError):
        ok, sel = False, ()
    if not ok or not sel or len(set(sel)) != len(sel) or not all(0 <= i < n_l for i in sel):
        raise DeepEFTInputError(
            f"neurons must be distinct integers in 0..{n_l - 1} (layer {layer} has width {n_l}), got {neurons!r}."
        )
    return sel


def _resolve(net, params, X, seed, index, dtype):
    net = fw.check_net(net)
    X = net.check_inputs(X)
    dt = fw.DTYPES[fw.check_dtype(dtype)]
    p = fw.network_params(net, params, seed, index, dt)
    return net, p, jnp.asarray(X, dt)


def _tensors(net, params, X, layer, neurons, want_dd, seed, index, dtype) -> NTKTensors:
    with x64():
        net, p, Xj = _resolve(net, params, X, seed, index, dtype)
        layer = _check_layer(net, layer)
        sel = _check_neurons(net, layer, neurons)
        out = _jitted_tensors(net, layer, sel, want_dd)(p, Xj)
        out = {k: np.asarray(a) for k, a in out.items()}
    return NTKTensors(layer=layer, neurons=sel, **out)


def empirical_dntk(net: MLP, params, X, *, layer: int | None = None, neurons=None, seed: int = 0, index: int = 0,
                   dtype="float64") -> np.ndarray:
    """The dNTK dĤ^{(ℓ)}_{i0i1i2;δ0δ1δ2} (11.8) of one network, by autodiff with the λ of (8.6).

    Parameters
    ----------
    net, params, X : the architecture, its (W, b) pairs (:func:`~deepeft.simulate.forward.sample_params`;
        ``None``: network ``index`` of the ensemble with ``seed``) and the inputs (N, n_0).
    layer : ℓ in 1..L (default L, the output).
    neurons : neuron indices of layer ℓ to keep (default: all n_ℓ).
    dtype : ``"float64"`` (default) or ``"float32"``.

    Returns
    -------
    (m, m, m, N, N, N) array [i0, i1, i2, δ0, δ1, δ2]; symmetric under (i1,δ1) ↔ (i2,δ2).
    One GD step changes the NTK by ΔĤ_{i1i2;δ1δ2} = −η Σ_{j,α}(dĤ_{i1i2j;δ1δ2α} + dĤ_{i2i1j;δ2δ1α}) ε_{j;α} + O(η²) (11.10).
    """
    return _tensors(net, params, X, layer, neurons, False, seed, index, dtype).dntk


def empirical_tensors(net: MLP, params, X, *, layer: int | None = None, neurons=None, ddntk: bool = True, seed: int = 0,
                      index: int = 0, dtype="float64") -> NTKTensors:
    """z, Ĥ, dĤ and (``ddntk=True``) dd_IĤ, dd_IIĤ of one network in one call: :class:`NTKTensors`.

    Arguments as :func:`empirical_dntk`; ``ddntk=False`` leaves ``dd_I``/``dd_II`` as None (cost ~ (mN)
    Hessian-vector products instead of (mN)² third derivatives)."""
    return _tensors(net, params, X, layer, neurons, bool(ddntk), seed, index, dtype)


def empirical_ddntk(net: MLP, params, X, *, layer: int | None = None, neurons=None, seed: int = 0, index: int = 0,
                    dtype="float64") -> NTKTensors:
    """The ddNTKs dd_IĤ (∞.5) and dd_IIĤ (∞.7) of one network (with z, Ĥ and dĤ of the same call).

    Arguments as :func:`empirical_dntk`. Returns an :class:`NTKTensors` whose ``.dd_I`` and ``.dd_II`` are
    (m, m, m, m, N, N, N, N) arrays [i0, i1, i2, i3, δ0, δ1, δ2, δ3] (for dd_II the book's i1..i4, δ1..δ4).
    Cost ~ (mN)² third-order directional derivatives; memory ~ (mN)³ × #parameters in the intermediate —
    use ``neurons`` for wide layers.
    """
    return _tensors(net, params, X, layer, neurons, True, seed, index, dtype)


# -- one GD step ---------------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True, eq=False)
class OneStepPrediction:
    """One full-batch GD step with MSE on (X, Y) of one network: measured changes and their expansions.

    Layer ℓ (default the output), all n_ℓ neurons, all N training inputs, error factor ε^{(ℓ)} (∞.3).
    ``dz_actual`` (n, N) and ``dz_terms`` (3, n, N): the η, η², η³ terms of (∞.4) (the prediction is
    their sum); ``dH_actual`` (n, n, N, N) and ``dH_terms`` (2, …): the η and η² terms of (∞.6);
    ``ddH_actual`` (n,)*3 + (N,)*3 and ``ddH_terms`` (1, …): the η term of (∞.9). The remainders are
    O(η⁴), O(η³) and O(η²). Without the ddNTKs (``ddntk=False``) the terms they enter are left out:
    2, 1 and 0 terms.
    """

    eta: float
    dz_actual: np.ndarray
    dz_terms: np.ndarray
    dH_actual: np.ndarray
    dH_terms: np.ndarray
    ddH_actual: np.ndarray
    ddH_terms: np.ndarray

    @property
    def dz_predicted(self) -> np.ndarray:
        """(∞.4) through O(η³)."""
        return self.dz_terms.sum(0)

    @property
    def dH_predicted(self) -> np.ndarray:
        """(∞.6) through O(η²)."""
        return self.dH_terms.sum(0)

    @property
    def ddH_predicted(self) -> np.ndarray:
        """(∞.9) through O(η)."""
        return self.ddH_terms.sum(0)


def expansion_terms(t: NTKTensors, eps: np.ndarray, eta: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The terms of (∞.4), (∞.6), (∞.9) from one network's layer-ℓ tensors and the error factor ε^{(ℓ)} (n_ℓ, N).

    ``t`` holds the tensors of all n_ℓ neurons on the training inputs. Returns (dz_terms, dH_terms, ddH_terms):
    with ddNTKs (3, n, N), (2, n, n, N, N), (1, n, n, n, N, N, N); without (``t.dd_I is None``) only the
    terms they do not enter: (2, …), (1, …), (0, …)."""
    H, dH, d1, d2 = t.ntk, t.dntk, t.dd_I, t.dd_II
    if (d1 is None) != (d2 is None):
        raise DeepEFTInputError("NTKTensors must hold both ddNTKs (dd_I and dd_II) or neither; got only one.")
    dz = [-eta * np.einsum("ijab,jb->ia", H, eps), 0.5 * eta**2 * np.einsum("ijkabc,jb,kc->ia", dH, eps, eps)]
    dHt = [-eta * (np.einsum("ijkabc,kc->ijab", dH, eps) + np.einsum("jikbac,kc->ijab", dH, eps))]
    ddHt = []
    if d1 is not None and d2 is not None:
        dz.append(-(eta**3) / 6 * np.einsum("ijklabcd,jb,kc,ld->ia", d1, eps, eps, eps))
        dHt.append(0.5 * eta**2 * (np.einsum("ijklabcd,kc,ld->ijab", d1, eps, eps)
                                   + np.einsum("jiklbacd,kc,ld->ijab", d1, eps, eps))
                   + eta**2 * np.einsum("ijklabcd,kc,ld->ijab", d2, eps, eps))
        ddHt.append(-eta * (np.einsum("ijklabcd,ld->ijkabc", d1, eps) + np.einsum("ijklabcd,ld->ijkabc", d2, eps)
                            + np.einsum("ikjlacbd,ld->ijkabc", d2, eps)))
    empty = np.zeros((0,) + dH.shape)
    return np.stack(dz), np.stack(dHt), (np.stack(ddHt) if ddHt else empty)


def error_factor(net: MLP, params, X, Y, layer: int) -> np.ndarray:
    """ε^{(ℓ)}_{j;α} = dℒ/dz^{(ℓ)}_{j;α} (∞.3) for MSE, as (n_ℓ, N): ε^{(L)} = z − y, backpropagated by
    ε^{(ℓ)} = (ε^{(ℓ+1)} W^{(ℓ+1)}) σ′(z^{(ℓ)}) (the chain rule (11.3))."""
    zs = fw.forward_preactivations(net, params, X)
    eps = zs[-1] - Y
    for l in range(net.L - 1, layer - 1, -1):
        eps = (eps @ params[l][0]) * net.activation.derivative(1)(zs[l - 1])
    return eps.T


@functools.lru_cache(maxsize=32)
def _jitted_step(net: MLP):
    return jax.jit(lambda p, X, Y, eta: gd_update(net, mse_loss, p, X, Y, eta))


def mse_step(net: MLP, params, X, Y, eta: float):
    """One full-batch GD step with MSE (:func:`~deepeft.simulate.training.gd_update`), float64, jitted:
    ((W, b), ...) NumPy → the same after the step."""
    with x64():
        p = fw.as_params(net, params, jnp.float64)
        Yj = jnp.asarray(_check_Y(Y, np.shape(X)[0], net.output_dim))
        p1 = _jitted_step(net)(p, jnp.asarray(X, jnp.float64), Yj, eta)
        return tuple((np.asarray(W), np.asarray(b)) for W, b in p1)


def one_step_prediction(net: MLP, params, X, Y, eta: float, *, layer: int | None = None, ddntk: bool = True,
                        seed: int = 0, index: int = 0, dtype="float64") -> OneStepPrediction:
    """Take one real GD step (MSE, λ of (8.6), :func:`~deepeft.simulate.training.gd_update`) on (X, Y)
    and compare the changes of z^{(ℓ)}, Ĥ^{(ℓ)} and dĤ^{(ℓ)} (all n_ℓ neurons, training inputs) with the
    expansions (∞.4), (∞.6), (∞.9) in the tensors before the step, contracted with the layer-ℓ error factor
    ε^{(ℓ)} (∞.3) (:func:`error_factor`; ε = z − y at the output). ``params=None``: network ``index`` of ``seed``.

    ``layer``: ℓ (default L; a hidden layer gives the change of the features). ``ddntk=False`` skips the
    ddNTKs (cost (n_ℓN)² third derivatives): then only the terms without them are returned (see
    :class:`OneStepPrediction`) and the remainders are O(η³), O(η²) and — for dĤ — the whole change.
    The remainders fall as η⁴, η³, η² (tested).
    """
    eta = v.finite_scalar(eta, "eta", strict=True)
    t0 = _tensors(net, params, X, layer, None, bool(ddntk), seed, index, dtype)
    with x64():
        net, p, Xj = _resolve(net, params, X, seed, index, dtype)
        Yj = jnp.asarray(_check_Y(Y, Xj.shape[0], net.output_dim), Xj.dtype)
        eps = np.asarray(error_factor(net, p, Xj, Yj, t0.layer))
        p1 = _jitted_step(net)(p, Xj, Yj, eta)
        p1 = tuple((np.asarray(W), np.asarray(b)) for W, b in p1)
    t1 = _tensors(net, p1, X, layer, None, False, seed, index, dtype)
    return compare_step(t0, t1, eps, eta)


def compare_step(t0: NTKTensors, t1: NTKTensors, eps, eta: float) -> OneStepPrediction:
    """:class:`OneStepPrediction` from the tensors before (``t0``) and after (``t1``) one GD step of size η
    and the error factor ε^{(ℓ)} (n_ℓ, N) of the step (:func:`error_factor`): for reusing ``t0`` over many η."""
    eps = np.asarray(eps, dtype=np.float64)
    dz, dHt, ddHt = expansion_terms(t0, eps, eta)
    return OneStepPrediction(eta=eta, dz_actual=t1.z - t0.z, dz_terms=dz, dH_actual=t1.ntk - t0.ntk, dH_terms=dHt,
                             ddH_actual=t1.dntk - t0.dntk, ddH_terms=ddHt)


def _check_Y(Y, N: int, n_L: int) -> np.ndarray:
    """Targets (N, n_L) as float64 (a 1-d vector is accepted for n_L = 1); clear errors otherwise."""
    try:
        Y = np.asarray(Y, dtype=np.float64)
    except (TypeError, ValueError):
        raise DeepEFTInputError(f"Y must be a numeric array of shape (N, n_L) = ({N}, {n_L}).") from None
    if Y.ndim == 1 and n_L == 1 and Y.shape[0] == N:
        Y = Y[:, None]
    if Y.shape != (N, n_L) or not np.all(np.isfinite(Y)):
        raise DeepEFTInputError(f"Y must be a finite array of shape (N, n_L) = ({N}, {n_L}), got shape {Y.shape}.")
    return Y


# -- ensemble statistics ------------------------------------------------------------------------

_DNTK_FIELDS = ("P", "Q")
_DDNTK_FIELDS = ("P", "Q", "R", "S", "T", "U")


def _pattern_stats(net: MLP, layer: int, m: int, fields: tuple[str, ...], params, X):
    """One network's pair-pattern averages (a ≠ b over the first m neurons of layer ℓ), in the book's layouts.

    From M[k1, k0] = ∇²z_{k0}v_{k1} and V without forming the full tensors (cost m² N⁴ #θ)."""
    N = X.shape[0]
    theta, lam, z = _flat_problem(net, layer, params, X, tuple(range(m)))
    _, V, M = _first_order(theta, lam, z)
    P_ = V.shape[-1]
    Mv = M.reshape(m, N, m, N, P_)  # [c, δ_c (direction), a, δ_a (differentiated z), μ]
    Vv = V.reshape(m, N, P_)
    ar = jnp.arange(m)
    Dg = Mv[ar, :, ar]  # [a, δ (direction), δ' (z), μ] = ∇²z_{a;δ'} v_{a;δ}
    off = 1.0 - jnp.eye(m, dtype=V.dtype)
    pairs = m * (m - 1)
    out = {}
    if "P" in fields:
        Z = z(theta).reshape(m, N)
        # P: dĤ_{abb;δ0δ1δ2} z_{a;δ3} = (∇²z_{a;δ0} v_{b;δ1})·v_{b;δ2} z_{a;δ3}
        out["P"] = jnp.einsum("byaxm,bzm,aw,ab->xyzw", Mv, Vv, Z, off) / pairs
        # Q: dĤ_{aac;δ0δ1δ2} z_{c;δ3}
        out["Q"] = jnp.einsum("ayxm,czm,cw,ac->xyzw", Dg, Vv, Z, off) / pairs
    if "R" in fields:
        # R: dd_IĤ_{aabb;δ0δ1δ2δ3} = ∂³z_{a;δ0}[v_{a;δ1}, v_{b;δ2}, v_{b;δ3}]
        U = jnp.broadcast_to(Vv[:, :, None, :], (m, N, N, P_)).reshape(-1, P_)
        Wd = jnp.broadcast_to(Vv[:, None, :, :], (m, N, N, P_)).reshape(-1, P_)
        s = _third_slices(theta, z, V, U, Wd).reshape(m, N, N, m, N, m, N)  # [b, δ2, δ3, a, δ0, a', δ1]
        sd = s[:, :, :, ar, :, ar, :]  # [a, b, δ2, δ3, δ0, δ1] (advanced axes first)
        out["R"] = jnp.einsum("abyzwx,ab->wxyz", sd, off) / pairs
        Ml = Mv * lam
        # dd_IIĤ_{abcd;δ1δ2δ3δ4} = Σ_μ λ_μ (∇²z_{a;δ1} v_{c;δ3})_μ (∇²z_{b;δ2} v_{d;δ4})_μ
        out["S"] = jnp.einsum("cyawm,czaxm,ac->wxyz", Mv, Ml, off) / pairs  # aacc → S_{δ1δ2δ3δ4}
        rawT = jnp.einsum("aywm,bzxm,ab->wxyz", Dg, Dg * lam, off) / pairs  # abab
        out["T"] = jnp.einsum("psqr->pqrs", rawT)  # T_{δ1δ3δ4δ2}
        rawU = jnp.einsum("byawm,azbxm,ab->wxyz", Mv, Ml, off) / pairs  # abba
        out["U"] = jnp.einsum("prsq->pqrs", rawU)  # U_{δ1δ4δ2δ3}
    return out


@functools.lru_cache(maxsize=32)
def _stats_program(net: MLP, layers: tuple[int, ...], ms: tuple[int, ...], fields: tuple[str, ...], dt):
    """Jitted: keys (k, B, 2), mask (k, B) → per micro-batch Σ_s x_s and Σ_s x_s² of every statistic (k, ...)."""

    def one(key, X):
        p = fw.init_params(net, key, dt)
        return [_pattern_stats(net, l, m, fields, p, X) for l, m in zip(layers, ms, strict=True)]

    def micro(keys, mask, X):
        st = jax.vmap(one, in_axes=(0, None))(keys, X)
        w = mask.astype(dt)

        def sums(a):
            wa = w.reshape((-1,) + (1,) * (a.ndim - 1)) * a
            return jnp.stack([wa.sum(0), (wa * a).sum(0)])

        return jax.tree_util.tree_map(sums, st)

    def run(keys, mask, X):
        return jax.lax.map(lambda km: micro(km[0], km[1], X), (keys, mask))

    return jax.jit(run)


def _per_network_floats(net: MLP, layers, ms, N: int) -> int:
    P = sum(net.n[l] * (net.n[l - 1] + 1) for l in range(1, max(layers) + 1))
    return int(sum(4 * (m * N) ** 2 * P + 8 * m * N * P for m in ms))


@dataclasses.dataclass(frozen=True, eq=False)
class DNTKStatistics:
    """Ensemble estimates of P and Q (11.45), n_{ℓ−1} × E[pair pattern] (module docstring): Estimates
    (L, N, N, N, N), layer ℓ at index ℓ − 1, [ℓ−1, δ0, δ1, δ2, δ3]; layer 1 exactly 0 (SE 0, always); layers
    not sampled (width 1 or not requested) NaN. ``neurons``: per layer, how many neurons (pairs a ≠ b)."""

    net: MLP
    X: np.ndarray
    n_networks: int
    seed: int
    neurons: tuple[int, ...]
    P: Estimate
    Q: Estimate


@dataclasses.dataclass(frozen=True, eq=False)
class DDNTKStatistics(DNTKStatistics):
    """Ensemble estimates of R (∞.11) and S, T, U (∞.12) (n_{ℓ−1} × E[pair pattern]): Estimates (L, N, N, N, N)
    in the printed index order — R[ℓ−1, δ0, δ1, δ2, δ3], S[ℓ−1, δ1, δ2, δ3, δ4], T[ℓ−1, δ1, δ3, δ4, δ2],
    U[ℓ−1, δ1, δ4, δ2, δ3]; layer 1 exactly 0; layers not sampled NaN. Also P and Q of the same networks
    (the fields of :class:`DNTKStatistics`; the ddNTK recursions need them)."""

    R: Estimate
    S: Estimate
    T: Estimate
    U: Estimate


def _ensemble(net, X, n_networks, fields, *, seed, layer, neurons, micro_batch, chunk_size, dtype):
    net = fw.check_net(net)
    X = net.check_inputs(X, "X")
    n_networks = v.positive_int(n_networks, "n_networks", minimum=2)
    seed = fw.check_seed(seed)
    max_m = v.positive_int(neurons, "neurons", minimum=2)
    dt = fw.DTYPES[fw.check_dtype(dtype)]
    L, N = net.L, X.shape[0]
    if layer is None:
        layers = tuple(l for l in range(2, L + 1) if net.n[l] >= 2)
    else:
        layer = _check_layer(net, layer)
        if net.n[layer] < 2:
            raise DeepEFTInputError(f"layer {layer} has width {net.n[layer]}; pair statistics need at least 2 neurons.")
        layers = (layer,) if layer >= 2 else ()
    ms = tuple(min(net.n[l], max_m) for l in layers)
    shape = (L,) + (N,) * 4
    vals = {f: np.full(shape, np.nan) for f in fields}
    ses = {f: np.full(shape, np.nan) for f in fields}
    for f in fields:  # the first layer: dĤ = dd_IĤ = dd_IIĤ = 0 exactly (z^{(1)} linear in θ)
        vals[f][0], ses[f][0] = 0.0, 0.0
    if layers:
        if micro_batch is None:
            B = max(1, _MB_BUDGET_FLOATS // _per_network_floats(net, layers, ms, N))
            B = min(64, 2 ** int(np.floor(np.log2(B))), 2 ** int(np.ceil(np.log2(n_networks))))
        else:
            B = v.positive_int(micro_batch, "micro_batch")
        k = max(1, (v.positive_int(chunk_size, "chunk_size") // B) if chunk_size is not None else 8)
        run = _stats_program(net, layers, ms, fields, dt)
        n_micro = -(-n_networks // B)
        acc = None
        with x64():
            Xj = jnp.asarray(X, dt)
            base = jax.random.PRNGKey(seed)
            k = min(k, n_micro)  # every chunk has k micro-batches (the last padded, masked): one compilation
            for c0 in range(0, n_micro, k):
                kc = min(k, n_micro - c0)
                idx = np.arange(c0 * B, (c0 + k) * B)
                keys = jax.vmap(lambda i: jax.random.fold_in(base, i))(jnp.asarray(idx, jnp.uint32))
                mask = jnp.asarray(idx < n_networks).reshape(k, B)
                out = run(keys.reshape(k, B, -1), mask, Xj)
                out = jax.tree_util.tree_map(lambda a: np.asarray(a, np.float64), out)
                for j in range(kc):  # micro-batch by micro-batch, in network order: chunk-size independent
                    part = jax.tree_util.tree_map(lambda a, j=j: a[j], out)
                    acc = part if acc is None else jax.tree_util.tree_map(np.add, acc, part)
        assert acc is not None  # n_networks ≥ 1
        for li, l in enumerate(layers):
            for f in fields:
                s = acc[li][f]
                mean, se = est.mean_and_se(n_networks, 0.0, s[0], s[1])
                vals[f][l - 1], ses[f][l - 1] = net.n[l - 1] * mean, net.n[l - 1] * se
    used = tuple(ms[layers.index(l)] if l in layers else 0 for l in range(1, L + 1))
    return net, X, n_networks, seed, used, {f: Estimate(vals[f], ses[f]) for f in fields}


def dntk_statistics(net: MLP, X, n_networks: int, *, seed: int = 0, layer: int | None = None, neurons: int = 8,
                    micro_batch: int | None = None, chunk_size: int | None = None,
                    dtype="float64") -> DNTKStatistics:
    """Estimate the dNTK–preactivation tensors P, Q (11.45) of every layer from ``n_networks`` random networks.

    Network s is ``sample_params(net, seed, s)``. Per network and layer ℓ, the pair patterns of the module
    docstring are averaged over the ordered pairs a ≠ b of the first ``neurons`` neurons (all if fewer);
    the ensemble mean × n_{ℓ−1} is returned with its standard error from the independent networks.
    ``layer``: only that layer (default: every layer 2..L of width ≥ 2; layer 1 is exactly 0).
    Networks run in micro-batches of ``micro_batch`` (vmapped; default from a memory budget) and chunks of
    ``chunk_size`` networks per compiled call; results are bit-identical for every chunk size.
    Cost per network and layer ~ (mN)² Hessian-vector products, m = min(n_ℓ, neurons).
    """
    net, X, n, seed, used, r = _ensemble(net, X, n_networks, _DNTK_FIELDS, seed=seed, layer=layer, neurons=neurons,
                                         micro_batch=micro_batch, chunk_size=chunk_size, dtype=dtype)
    return DNTKStatistics(net=net, X=X, n_networks=n, seed=seed, neurons=used, **r)


def ddntk_statistics(net: MLP, X, n_networks: int, *, seed: int = 0, layer: int | None = None, neurons: int = 8,
                     micro_batch: int | None = None, chunk_size: int | None = None,
                     dtype="float64") -> DDNTKStatistics:
    """Estimate the ddNTK tensors R (∞.11) and S, T, U (∞.12) (and P, Q (11.45)) of every layer from
    ``n_networks`` random networks.

    Arguments and estimator as :func:`dntk_statistics` (pair patterns aabb, aabb, abab, abba of the
    module docstring). Cost per network and layer ~ m N² third-order directional derivatives of the
    Jacobian plus (mN)² Hessian-vector products.
    """
    net, X, n, seed, used, r = _ensemble(net, X, n_networks, _DDNTK_FIELDS, seed=seed, layer=layer, neurons=neurons,
                                         micro_batch=micro_batch, chunk_size=chunk_size, dtype=dtype)
    return DDNTKStatistics(net=net, X=X, n_networks=n, seed=seed, neurons=used, **r)
