"""The empirical neural tangent kernel of one network, two ways (book §8.0).

NTK with the learning-rate tensor (8.6) — λ_b^{(ℓ)} for biases, λ_W^{(ℓ)}/n_{ℓ−1} for weights:

    Ĥ^{(ℓ)}_{i1 i2; α1 α2} = Σ_μ λ_μ (dz^{(ℓ)}_{i1;α1}/dθ_μ)(dz^{(ℓ)}_{i2;α2}/dθ_μ)                 (8.5)–(8.7)

* ``method="forward"``: the forward equation (8.12), started from the deterministic first layer (8.23):
      Ĥ^{(1)} = δ_{i1i2}[λ_b^{(1)} + λ_W^{(1)} (1/n_0) Σ_j x_{j;α1} x_{j;α2}],
      Ĥ^{(ℓ+1)} = δ_{i1i2}[λ_b^{(ℓ+1)} + λ_W^{(ℓ+1)} (1/n_ℓ) Σ_j σ_{j;α1} σ_{j;α2}]
                  + Σ_{j1 j2} W_{i1 j1} W_{i2 j2} σ'_{j1;α1} σ'_{j2;α2} Ĥ^{(ℓ)}_{j1 j2; α1 α2}.
* ``method="autodiff"``: the definition (8.7) with Jacobians from ``jax.jacrev``.

They agree to rounding (tests: ~1e-12 in float64). Arrays are (n_ℓ, n_ℓ, N, N) = [i1, i2, α1, α2].
:func:`ntk_forward` also takes a :class:`~deepeft.ResidualMLP` (B.3): the same recursion with ξ and γ (its docstring).
At kinks σ' is the right derivative (activation convention), identical in both methods.
"""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
import numpy as np

from .._x64 import x64
from ..errors import DeepEFTInputError
from ..network import MLP
from ..network_residual import ResidualMLP
from . import forward as fw

__all__ = ["empirical_ntk", "ntk_autodiff", "ntk_forward"]


def ntk_forward(net: MLP | ResidualMLP, params, X, zs=None) -> tuple[jax.Array, ...]:
    """(Ĥ^{(1)}, ..., Ĥ^{(L)}) by the forward equation (8.12) from (8.23); pure JAX, one network.

    ``zs``: the network's preactivations (default: computed from ``params``). For a
    :class:`~deepeft.ResidualMLP` (B.3) — the same (W, b) layout, plus ξ and γ — the same recursion with the block
    scaled by ξ and the skip's Jacobian γδ added to the chain-rule factor [derived from (B.3), (8.12)]:

        Ĥ^{(ℓ+1)} = ξ²[λ_b + λ_W σσᵀ/n_ℓ] δ + A Ĥ^{(ℓ)} Aᵀ,   A_{ik;α} = ξ W_{ik} σ′_{k;α} + γ δ_{ik};

    an MLP is its case ξ = 1, γ = 0, for which no extra operation is traced (the MLP's program is unchanged).
    """
    if isinstance(net, ResidualMLP):
        xi, gamma = net.xi, net.gamma
        if zs is None:
            zs = fw.residual_forward(net, params, X)  # (B.3)
    else:
        xi, gamma = (1.0,) * net.L, (0.0,) * net.L
        if zs is None:
            zs = fw.forward_preactivations(net, params, X)
    n = net.n
    dsigma = net.activation.derivative(1)
    a = X
    H = None
    out = []
    for l in range(1, net.L + 1):
        W, _ = params[l - 1]
        # first line of (8.12) (for ℓ = 1 this is (8.23) with σ^{(0)} = x)
        diag = net.lambda_b[l - 1] + net.lambda_W[l - 1] * (a @ a.T) / n[l - 1]
        if xi[l - 1] != 1.0:
            diag = float(xi[l - 1]) ** 2 * diag
        Hl = jnp.einsum("ij,ab->ijab", jnp.eye(n[l], dtype=X.dtype), diag)
        if H is not None:
            # second line of (8.12): A_{i j α} = W_{ij} σ'_{j;α} (chain-rule factor (8.10)); residual: ξW, + γδ
            A = W[:, :, None] if xi[l - 1] == 1.0 else float(xi[l - 1]) * W[:, :, None]
            A = A * dsigma(zs[l - 2]).T[None, :, :]
            if gamma[l - 1]:
                A = A + float(gamma[l - 1]) * jnp.eye(n[l], dtype=X.dtype)[:, :, None]
            T = jnp.einsum("ija,jkab->ikab", A, H)
            Hl = Hl + jnp.einsum("ikab,lkb->ilab", T, A)
        out.append(Hl)
        H = Hl
        if l < net.L:
            a = net.activation.fn(zs[l - 1])
    return tuple(out)


def ntk_autodiff(net: MLP, params, X, layer: int | None = None) -> jax.Array:
    """Ĥ^{(ℓ)} (default ℓ = L) from the definition (8.7): Σ_μ λ_μ ∂z_{i1;α1}/∂θ_μ ∂z_{i2;α2}/∂θ_μ."""
    layer = net.L if layer is None else layer
    n = net.n

    def z_of(p):
        return fw.forward_preactivations(net, p, X)[layer - 1]  # (N, n_ℓ)

    J = jax.jacrev(z_of)(params[:layer])  # per layer: (N, n_ℓ, *shape of W or b)
    H = jnp.zeros((), J[0][1].dtype)  # the parameters' dtype (no promotion of float32 runs)
    for lp, (JW, Jb) in enumerate(J, start=1):
        lamW = net.lambda_W[lp - 1] / n[lp - 1]  # (8.6)
        H = H + lamW * jnp.einsum("aixy,bjxy->ijab", JW, JW) + net.lambda_b[lp - 1] * jnp.einsum("aix,bjx->ijab", Jb, Jb)
    return H


@functools.lru_cache(maxsize=64)
def _jitted(net: MLP, method: str, all_layers: bool):
    if method == "forward":

        def f(p, X):
            Hs = ntk_forward(net, p, X)
            return Hs if all_layers else Hs[-1:]
    else:

        def f(p, X):
            layers = range(1, net.L + 1) if all_layers else [net.L]
            return tuple(ntk_autodiff(net, p, X, l) for l in layers)

    return jax.jit(f)


def empirical_ntk(
    net: MLP,
    X,
    params=None,
    *,
    seed: int = 0,
    index: int = 0,
    method: str = "forward",
    all_layers: bool = False,
    dtype="float32",
):
    """The empirical NTK Ĥ of one network at initialization (8.5)–(8.7), (8.12).

    Parameters
    ----------
    net, X : the architecture and inputs (N, n_0).
    params : (W, b) pairs from :func:`~deepeft.simulate.forward.sample_params`; by default network
        ``index`` of the ensemble with ``seed`` (the same networks ``sample_ensemble`` draws).
    method : ``"forward"`` (the forward equation (8.12)) or ``"autodiff"`` (jax.jacrev of (8.7)).
    all_layers : return every layer's Ĥ^{(ℓ)} (a tuple of L arrays) instead of only the output's.
    dtype : ``"float32"`` (default) or ``"float64"``.

    Returns
    -------
    NumPy array (n_L, n_L, N, N) indexed [i1, i2, α1, α2], or a tuple of (n_ℓ, n_ℓ, N, N) arrays.
    Memory grows as n_ℓ² N²; keep widths moderate (a few hundred) for many inputs.
    """
    net = fw.check_net(net)
    X = net.check_inputs(X)
    if method not in ("forward", "autodiff"):
        raise DeepEFTInputError(f"method must be 'forward' (eq. (8.12)) or 'autodiff', got {method!r}.")
    dt = fw.DTYPES[fw.check_dtype(dtype)]
    with x64():
        p = fw.network_params(net, params, seed, index, dt)
        Hs = _jitted(net, method, bool(all_layers))(p, jnp.asarray(X, dt))
        Hs = tuple(np.asarray(H) for H in Hs)
    return Hs if all_layers else Hs[0]
