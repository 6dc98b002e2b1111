"""``de.criticality`` and ``de.phase`` for a :class:`~deepeft.ResidualMLP` (book App. B), through :mod:`deepeft.dispatch`.

* :func:`residual_criticality` — the activation's analysis (:func:`~deepeft.criticality`) with the critical point
  moved by the skip: C_b = 0, C_W(γ) = (1 − γ²)/A₂ (scale-invariant) or (1 − γ²)/σ₁² (K* = 0) (B.20)–(B.21)
  (:func:`~deepeft.residual_critical_point`), and ν(γ) (B.29)/(B.35) in ``constants``;
* :func:`residual_phase` — :func:`~deepeft.theory.criticality.phase`'s regime test on the residual single-input
  flow (B.12), (B.15)–(B.16), (B.26) (:func:`~deepeft.theory.residual_recursions.residual_single_input`).

γ = 0 gives the MLP's results. References: Roberts, Yaida, Hanin, *The Principles of Deep Learning Theory*, App. B
(arXiv:2106.10165).
"""

from __future__ import annotations

import dataclasses
import math
import warnings

import numpy as np

from .. import _validate as v
from .. import dispatch
from ..errors import DeepEFTInputError, DeepEFTWarning
from ..network_residual import ResidualMLP, check_residual
from .criticality import Criticality, CriticalPoint, PhaseReport, criticality, phase_report
from .residual import residual_critical_point
from .residual_recursions import residual_single_input

__all__ = ["hidden_gamma", "residual_criticality", "residual_phase"]


def hidden_gamma(net: ResidualMLP) -> float:
    """The one γ of the hidden layers ℓ = 2..L − 1 (all layers for L ≤ 2); a DeepEFTInputError when they differ."""
    hidden = net.gamma[1:-1] if net.L >= 3 else net.gamma
    if len(set(hidden)) > 1:
        raise DeepEFTInputError(
            f"the hidden layers have different γ ({sorted(set(hidden))}): a critical point belongs to one γ. Use "
            "de.residual_critical_point(activation, gamma) for each γ, or a scalar gamma in de.ResidualMLP."
        )
    return float(hidden[0]) if hidden else 0.0


@dispatch.register("criticality", ResidualMLP)
def residual_criticality(net: ResidualMLP, *, K_range=(1e-3, 1e3), n_grid: int = 241, exponents: bool = True,
                         fit_depth: int | None = None, **activation_params) -> Criticality:
    """:func:`~deepeft.criticality` of ``net.activation`` with its critical point replaced by the residual one,
    C_b = 0, C_W(γ) (B.20)–(B.21) at the hidden layers' γ (K* as for the MLP: 0, or any on the scale-invariant
    line); ``constants`` gain ``gamma``, ``nu`` = ν(γ) (B.29)/(B.35) and ``nu_three_point``. ``exponents`` are
    not fitted for a residual network (None); a class without a residual critical point (App. B gives none for
    half-stable activations) and γ ≥ 1 raise a DeepEFTInputError saying so."""
    net = check_residual(net)
    if activation_params:
        raise DeepEFTInputError(f"activation parameters {sorted(activation_params)} cannot be passed with a network: "
                                "set them in the network's activation.")
    del exponents, fit_depth  # the residual recursion's exponents are not fitted; ν(γ) is in constants
    g = hidden_gamma(net)
    base = criticality(net.activation, K_range=K_range, n_grid=n_grid, exponents=False)
    cp = residual_critical_point(net.activation, g)  # raises for γ ≥ 1 and classes App. B does not cover
    mlp = base.critical
    point = CriticalPoint(cp.C_b, cp.C_W, None if mlp is None else mlp.K_star,
                          "line" if mlp is None or mlp.K_star is None else mlp.stability)
    reason = (f"residual MLP with γ = {g:g}: C_b = 0, C_W(γ) = (1 − γ²)·C_W* = {cp.C_W:.6g} (B.20)–(B.21); "
              f"activation: {base.reason}")
    constants = {**base.constants, "gamma": g, "nu": cp.nu, "nu_three_point": cp.nu_three_point}
    return dataclasses.replace(base, reason=reason, points=(point,), rejected=(), exponents=None, constants=constants)


@dispatch.register("phase", ResidualMLP)
def residual_phase(net: ResidualMLP, x=None, *, norm=None, threshold: float = math.log(100.0)) -> PhaseReport:
    """:func:`~deepeft.theory.criticality.phase` for a residual MLP: χ_∥ = γ² + C_W g′(K), χ_⊥ = γ² + C_W⟨σ′σ′⟩
    (B.15)–(B.16) along the single-input flow (B.12), V/(n_{L−1}K²) at the output from (B.26).

    The step that stands for all L − 1 steps is the MLP's (:func:`~deepeft.theory.criticality.regime_step`): the
    last one between hidden layers, L − 2 → L − 1 — the output layer's own C_W and γ (a scalar ``gamma``: the
    output layer has no skip, so its step C_W g′ ≠ 1) only rescale the output. γ = 0 equals
    :func:`~deepeft.theory.criticality.phase` of ``net.mlp``."""
    net = check_residual(net)
    thr = v.finite_scalar(threshold, "threshold", minimum=0.0, strict=True)
    if x is not None and norm is not None:
        raise DeepEFTInputError("pass either x or norm, not both.")
    with warnings.catch_warnings(), np.errstate(invalid="ignore", divide="ignore", over="ignore"):
        warnings.simplefilter("ignore", DeepEFTWarning)
        rec = residual_single_input(net, x, norm=norm)
    L = net.L
    nv = float(rec.V[-1] / (net.n[L - 1] * rec.K[-1] ** 2)) if (net.widths and L > 1) else 0.0
    return phase_report(net, rec, nv, thr, stacklevel=4)
