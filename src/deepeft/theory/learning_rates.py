"""Learning-rate equivalence principle (PDLT §9.4, (9.94)–(9.96)): per-layer λ_b^{(ℓ)}, λ_W^{(ℓ)} such that
every layer — and within it the bias and the weight group — contributes equally to the frozen NTK
Θ^{(L)} (9.28), so that training is depth-independent at leading order.

    scale-invariant (C_b = 0, C_W = 1/A₂):  λ_b = λ̃_b/L,  λ_W = λ̃_W/L                           (9.94)
    K* = 0 class (C_b = 0, C_W = 1/σ₁²):    λ_b = λ̃_b ℓ^{−p⊥} L^{p⊥−1},  λ_W = λ̃_W (L/ℓ)^{p⊥−1}  (9.95)
                                            (tanh, sin: p⊥ = 1, λ_b = λ̃_b/ℓ, λ_W = λ̃_W)           (9.96)

(the digest's erratum: (9.94) prints the per-weight step with 1/n_{ℓ−1} inside λ_W; (9.95) is the
consistent form — λ_W here is the NTK normalisation of (8.6)). For any other activation or
initialisation (rule ``"equal-contribution"``, also available for the two classes) the principle is
solved numerically from the formal solution Θ^{(L)} = Σ_ℓ [λ_b^{(ℓ)} + λ_W^{(ℓ)} g^{(ℓ−1)}] Π_{ℓ'=ℓ}^{L−1} χ_⊥^{(ℓ')}
(9.28) along the single-input kernel trajectory of a reference input (norm (1/n_0)|x|², default 1):

    λ_b^{(ℓ)} = λ̃_b / (L Π_ℓ),   λ_W^{(ℓ)} = λ̃_W / (L Π_ℓ g^{(ℓ−1)}),   Π_ℓ = Π_{ℓ'=ℓ}^{L−1} χ_⊥^{(ℓ')},

(g^{(0)} = the input norm), so Θ^{(L)} = λ̃_b + λ̃_W exactly for every depth, each layer and group giving
λ̃/L. For the K* = 0 class this reproduces the ℓ- and L-scaling of (9.95) asymptotically; for the
scale-invariant class it is (9.94) with λ̃_W rescaled by 1/(A₂K*).

Plain SGD (what a practitioner types): with θ ← θ − η ∂𝓛/∂θ per parameter group, the tensorial rule
(7.11), (8.6) is a per-group step: ηλ_b^{(ℓ)} for b^{(ℓ)}, ηλ_W^{(ℓ)}/n_{ℓ−1} for W^{(ℓ)} (parameters in the
standard parametrisation W ~ N(0, C_W/n_{ℓ−1}), as in deepeft.simulate and torch.nn.Linear with that init).

References: Roberts, Yaida, Hanin, *The Principles of Deep Learning Theory*, arXiv:2106.10165, §9.4.
"""

from __future__ import annotations

import dataclasses

import numpy as np

from .. import _validate as v
from ..errors import DeepEFTInputError
from ..network import MLP, check_net
from .criticality import criticality
from .single_input import single_input

__all__ = ["LearningRates", "learning_rates"]

_RULES = ("equivalence", "equal-contribution", "constant")


@dataclasses.dataclass(frozen=True)
class LearningRates:
    """Per-layer λ_b^{(ℓ)}, λ_W^{(ℓ)} (L,), layer ℓ at index ℓ − 1, and how they were obtained."""

    net: MLP
    rule: str
    universality_class: str
    equation: str
    lambda_b: np.ndarray
    lambda_W: np.ndarray
    p_perp: float | None
    lambda_b_tilde: float
    lambda_W_tilde: float

    def apply(self) -> MLP:
        """The network with these λ's (for de.frozen_ntk, ntk_fluctuations, training)."""
        return self.net.replace(lambda_b=tuple(self.lambda_b), lambda_W=tuple(self.lambda_W))

    def sgd_steps(self, eta: float = 1.0) -> list[dict]:
        """Per-parameter-group step sizes of plain SGD: [{"layer", "bias", "weight"}], bias = ηλ_b, weight = ηλ_W/n_{ℓ−1}."""
        eta = v.finite_scalar(eta, "eta", minimum=0.0, strict=True)
        n = self.net.n
        return [
            {"layer": l + 1, "bias": float(eta * self.lambda_b[l]), "weight": float(eta * self.lambda_W[l] / n[l])}
            for l in range(self.net.L)
        ]

    def pytorch(self, eta: float = 1.0, model: str = "model") -> str:
        """A PyTorch snippet: torch.optim.SGD with one parameter group per tensor (layers = the nn.Linear list)."""
        lines = [f"linears = [m for m in {model}.modules() if isinstance(m, torch.nn.Linear)]", "groups = []"]
        for s in self.sgd_steps(eta):
            i = s["layer"] - 1
            lines.append(f"groups += [{{'params': [linears[{i}].weight], 'lr': {s['weight']:.10g}}}, "
                         f"{{'params': [linears[{i}].bias], 'lr': {s['bias']:.10g}}}]")
        lines.append("opt = torch.optim.SGD(groups, lr=0.0)")
        return "\n".join(lines)

    def jax(self, eta: float = 1.0) -> str:
        """A JAX snippet: params = [(W, b), ...]; one plain-SGD update with per-layer step sizes."""
        steps = self.sgd_steps(eta)
        w = ", ".join(f"{s['weight']:.10g}" for s in steps)
        b = ", ".join(f"{s['bias']:.10g}" for s in steps)
        return (f"lr_W = [{w}]\nlr_b = [{b}]\n"
                "params = [(W - lw * gW, b - lb * gb) for (W, b), (gW, gb), lw, lb in zip(params, grads, lr_W, lr_b)]")


def _equal_contribution(net: MLP, norm: float, lb_t: float, lw_t: float):
    """λ_b = λ̃_b/(LΠ_ℓ), λ_W = λ̃_W/(LΠ_ℓ g^{(ℓ−1)}) from the reference trajectory (module doc, (9.28))."""
    si = single_input(net, norm=norm)
    L = net.L
    chi = si.chi_perp[: L - 1]  # χ_⊥^{(ℓ')} at K^{(ℓ')} with C_W^{(ℓ'+1)}, ℓ' = 1..L−1
    if not np.all(np.isfinite(chi)) or np.any(chi <= 0):
        raise DeepEFTInputError("χ_⊥ is not finite and positive along the kernel trajectory; check C_W, C_b and the activation.")
    Pi = np.ones(L)
    for l in range(L - 2, -1, -1):  # Π_ℓ = Π_{ℓ'=ℓ}^{L−1} χ_⊥^{(ℓ')}, Π_L = 1
        Pi[l] = Pi[l + 1] * chi[l]
    g_prev = np.concatenate([[norm], si.g[: L - 1]])  # ⟨σσ⟩ at K^{(ℓ−1)}; layer 1 sees x·x/n_0
    if np.any(g_prev <= 0):
        raise DeepEFTInputError("⟨σσ⟩ vanishes at some layer: the weight group does not contribute to Θ; use another input norm.")
    return lb_t / (L * Pi), lw_t / (L * Pi * g_prev)


def learning_rates(net: MLP, rule: str = "equivalence", *, lambda_b_tilde=1.0, lambda_W_tilde=1.0, norm=1.0) -> LearningRates:
    """Per-layer learning rates λ_b^{(ℓ)}, λ_W^{(ℓ)} for ``net``'s activation, depth and initialisation.

    ``rule``: ``"equivalence"`` — (9.94) for the scale-invariant class, (9.95)/(9.96) for the K* = 0 class
    (with p⊥ = b₁/a₁ from the Taylor data), the numerical equal-contribution rule otherwise;
    ``"equal-contribution"`` — the numerical rule for any activation; ``"constant"`` — λ_b = λ̃_b, λ_W = λ̃_W.
    ``norm``: (1/n_0)|x|² of the reference input (numerical rule only). The widths, C_b, C_W of ``net`` are used;
    its own λ's are ignored (the result's :meth:`LearningRates.apply` sets them).
    """
    net = check_net(net)
    if rule not in _RULES:
        raise DeepEFTInputError(f"unknown rule {rule!r}; use one of {_RULES}.")
    lb_t = v.finite_scalar(lambda_b_tilde, "lambda_b_tilde", minimum=0.0)
    lw_t = v.finite_scalar(lambda_W_tilde, "lambda_W_tilde", minimum=0.0)
    norm = v.finite_scalar(norm, "norm", minimum=0.0, strict=True)
    L = net.L
    ell = np.arange(1, L + 1, dtype=np.float64)
    crit = criticality(net.activation, exponents=False)  # class, critical point and Taylor data only
    cls = crit.universality_class
    cp = crit.critical
    tuned = cp is not None and np.allclose(net.C_b[1:], cp.C_b, rtol=1e-9, atol=1e-12) and np.allclose(
        net.C_W[1:], cp.C_W, rtol=1e-9, atol=1e-12
    )  # layers 2..L at the critical point (layer 1's C's only set K^{(1)})
    if not tuned and cls in ("scale-invariant", "K*=0") and rule == "equivalence":
        cls += " (off criticality: numerical rule)"
    pp = None
    if rule == "constant":
        lb, lw, eq = np.full(L, lb_t), np.full(L, lw_t), "constant"
    elif rule == "equivalence" and cls == "scale-invariant":
        lb, lw, eq = np.full(L, lb_t / L), np.full(L, lw_t / L), "(9.94)"
    elif rule == "equivalence" and cls == "K*=0" and crit.taylor is not None and crit.taylor.p_perp is not None:
        pp = float(crit.taylor.p_perp)
        lb = lb_t * ell ** (-pp) * L ** (pp - 1)
        lw = lw_t * (L / ell) ** (pp - 1)
        eq = "(9.96)" if abs(pp - 1) < 1e-12 else "(9.95)"
    else:
        lb, lw = _equal_contribution(net, norm, lb_t, lw_t)
        eq = "equal contribution to (9.28)"
        if crit.taylor is not None and crit.taylor.p_perp is not None and cls == "K*=0":
            pp = float(crit.taylor.p_perp)
    return LearningRates(net, rule, cls, eq, np.asarray(lb, float), np.asarray(lw, float), pp, lb_t, lw_t)
