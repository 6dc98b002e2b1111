"""Design advice for a concrete network: ``de.advise(net)`` (PDLT §5.3–§5.4, §9.4, App. A; issue 15 item 4).

For an :class:`~deepeft.MLP` (or a PyTorch ``nn.Sequential`` of Linear + activation layers) the report says

* the activation's universality class and critical point (C_b*, C_W*) — :func:`~deepeft.criticality`
  (5.55)–(5.105);
* whether the given initialization is critical: χ_∥, χ_⊥ of the last step between hidden layers (L − 2 → L − 1)
  and the depth scale ξ = 1/|log χ| over which the kernel (χ_∥) and the difference between inputs (χ_⊥) drift —
  from :func:`~deepeft.theory.criticality.phase` along the single-input recursion (5.108)–(5.109). Near a fixed
  point δK^{(ℓ+1)} ≈ χ δK^{(ℓ)}, so a deviation changes by a factor e every ξ layers [derived]; at criticality
  χ − 1 = O(1/ℓ) and ξ grows with ℓ (power laws, §5.3) instead of staying fixed;
* the aspect ratio r = L/n (0.19) against the optimal r* = [4/(20 + 3n_L)]/ν (A.73) of the activation's
  class (ν = 2/3 for K* = 0, 3A₄/A₂² − 1 for scale-invariant σ, (A.68)–(A.70));
* the predicted size of finite-width effects at the output, V^{(L)}/(n_{L−1}K^{(L)}²) (5.128) from the
  single-input vertex recursion (5.109);
* the per-layer learning rates of the equivalence principle (9.94)–(9.96) — :func:`~deepeft.learning_rates`;
* warnings that say what to change.

Every number comes from those theory functions; this module only compares and words them.

References: Roberts, Yaida, Hanin, *The Principles of Deep Learning Theory*, arXiv:2106.10165, §5.3–§5.4,
§9.4, App. A (A.68)–(A.74).
"""

from __future__ import annotations

import dataclasses
import math
import warnings
from typing import TYPE_CHECKING, Any, NamedTuple

import numpy as np

from . import _validate as v
from .errors import DeepEFTInputError, DeepEFTWarning
from .network import MLP
from .network_residual import ResidualMLP

if TYPE_CHECKING:
    from .theory.criticality import PhaseReport

__all__ = ["Advice", "AdviceItem", "DepthFlow", "advise"]

# An aspect ratio more than this factor above (below) r* counts as "≫ r*" ("≪ r*").
ASPECT_RATIO_FACTOR = 2.0
# |log χ| below this is χ = 1 to rounding (e.g. ReLU at C_W = 2: A₂C_W = 1 ± 1 ulp): no drift, ξ = ∞.
_CHI_ONE = 1e-12
# Default relative tolerance for "the given (C_b, C_W) is the critical point".
CRITICAL_RTOL = 1e-6
# For a network read from its weights (PyTorch): C_W within this many sampling standard errors counts as critical.
SAMPLING_SIGMAS = 3.0


class AdviceItem(NamedTuple):
    """One warning of the report: ``topic`` ("criticality", "phase", "aspect ratio", "finite width",
    "learning rates") and a ``message`` that says what to change."""

    topic: str
    message: str


@dataclasses.dataclass(frozen=True)
class DepthFlow:
    """Single-input quantities against depth, layer ℓ = 1..L at index ℓ − 1: the kernel K^{(ℓ)} (5.108), the
    susceptibilities χ_∥, χ_⊥ of the step ℓ → ℓ + 1 (5.50)–(5.51), and V^{(ℓ)}/(n_{ℓ−1}K^{(ℓ)}²) (5.128)."""

    layers: np.ndarray
    K: np.ndarray
    chi_parallel: np.ndarray
    chi_perp: np.ndarray
    normalized_vertex: np.ndarray


@dataclasses.dataclass(frozen=True, eq=False)
class Advice:
    """The report of :func:`advise`. ``to_dict()`` is its JSON form (docs/advise.md), ``str()`` a terminal
    table, ``to_html(path)`` a short page with the K, χ and V/(nK²) curves.

    ``critical_point``: the :class:`~deepeft.theory.criticality.CriticalPoint` to use (None: the activation has
    none). χ's, e-folds (L − 1)·log χ, K_out, V/(nK²) at the output and the regime are those of
    :func:`~deepeft.theory.criticality.phase` (χ's of the last step between hidden layers, L − 2 → L − 1:
    :func:`~deepeft.theory.criticality.regime_step`); ``depth_scale_*`` = ξ = 1/|log χ| (∞: no drift)."""

    net: MLP | ResidualMLP
    criticality: Any  # deepeft.theory.criticality.Criticality of the activation
    critical_point: Any
    at_critical_point: bool
    verdict: str
    regime: str
    chi_parallel: float
    chi_perp: float
    depth_scale_parallel: float
    depth_scale_perp: float
    efolds_parallel: float
    efolds_perp: float
    K_out: float
    aspect_ratio: float
    normalized_vertex_out: float
    optimal_aspect_ratio: float | None
    nu: float | None
    learning_rates: Any  # deepeft.LearningRates, or None when the rule has no answer for this network
    warnings: tuple[AdviceItem, ...]
    flow: DepthFlow
    input_norm: float = 1.0
    source: str = "MLP"
    gamma: float = 0.0
    critical_init: tuple[tuple[float, ...], tuple[float, ...]] | None = None

    @property
    def universality_class(self) -> str:
        return self.criticality.universality_class

    def reference_flow(self) -> DepthFlow | None:
        """The same architecture and input at the critical point (None when there is none or ``net`` is there)."""
        if self.critical_init is None or self.at_critical_point:
            return None
        Cb, CW = self.critical_init
        return _flow(self.net.replace(C_b=Cb, C_W=CW), self.input_norm)[0]

    def to_dict(self) -> dict[str, Any]:
        """Plain Python values (JSON-ready: no NaN/inf; an infinite depth scale is None = no drift)."""
        net, cp, fl, lr = self.net, self.critical_point, self.flow, self.learning_rates
        return {
            "network": {
                "source": self.source,
                "gamma": float(self.gamma),
                "L": net.L,
                "n": list(net.n),
                "activation": net.activation.name,
                "activation_params": dict(net.activation.param_dict),
                "C_b": [float(c) for c in net.C_b],
                "C_W": [float(c) for c in net.C_W],
            },
            "universality_class": self.universality_class,
            "class_reason": self.criticality.reason,
            "critical_point": None if cp is None else {
                "C_b": float(cp.C_b), "C_W": float(cp.C_W),
                "K_star": None if cp.K_star is None else float(cp.K_star), "stability": cp.stability,
            },
            "criticality": {
                "verdict": self.verdict,
                "at_critical_point": bool(self.at_critical_point),
                "regime": self.regime,
                "chi_parallel": _finite(self.chi_parallel),
                "chi_perp": _finite(self.chi_perp),
                "depth_scale_parallel": _finite(self.depth_scale_parallel),
                "depth_scale_perp": _finite(self.depth_scale_perp),
                "efolds_parallel": _finite(self.efolds_parallel),
                "efolds_perp": _finite(self.efolds_perp),
                "K_out": _finite(self.K_out),
                "input_norm": float(self.input_norm),
            },
            "aspect_ratio": {
                "r": float(self.aspect_ratio),
                "depth": net.L,
                "width": _finite(net.L / self.aspect_ratio) if self.aspect_ratio > 0 else None,
                "output_dim": net.output_dim,
                "r_star": self.optimal_aspect_ratio,
                "nu": self.nu,
            },
            "finite_width": {
                "normalized_vertex_out": _finite(self.normalized_vertex_out),
                "excess_kurtosis_out": _finite(3.0 * self.normalized_vertex_out),
            },
            "learning_rates": None if lr is None else {
                "rule": lr.rule, "equation": lr.equation, "universality_class": lr.universality_class,
                "p_perp": lr.p_perp, "lambda_b": [float(x) for x in lr.lambda_b],
                "lambda_W": [float(x) for x in lr.lambda_W],
            },
            "warnings": [{"topic": w.topic, "message": w.message} for w in self.warnings],
            "curves": {
                "layer": [int(i) for i in fl.layers],
                "K": [_finite(x) for x in fl.K],
                "chi_parallel": [_finite(x) for x in fl.chi_parallel],
                "chi_perp": [_finite(x) for x in fl.chi_perp],
                "normalized_vertex": [_finite(x) for x in fl.normalized_vertex],
            },
        }

    def __str__(self) -> str:
        return "\n".join(_table(self))

    def to_html(self, path) -> str:
        """Write a short self-contained HTML page (numbers, warnings, one embedded figure of K^{(ℓ)}, χ_∥, χ_⊥,
        V/(nK²) and λ's against ℓ, with the critical initialization as reference); returns the path."""
        from .plots.advice import write_html

        return write_html(self, path)


def _finite(x) -> float | None:
    x = float(x)
    return x if math.isfinite(x) else None


def _depth_scale(chi: float) -> float:
    """ξ = 1/|log χ| [derived from δK^{(ℓ+1)} ≈ χ δK^{(ℓ)}]: layers per factor e of drift (∞ at χ = 1)."""
    if not chi > 0:
        return 0.0
    lg = abs(math.log(chi))
    return math.inf if lg <= _CHI_ONE else 1.0 / lg


def _describe(net) -> str:
    """A short one-line description: widths with runs collapsed ("[10, 100 × 99, 1]"), activation."""
    runs: list[list[int]] = []
    for w in net.n:
        if runs and runs[-1][0] == w:
            runs[-1][1] += 1
        else:
            runs.append([w, 1])
    n = ", ".join(f"{w} × {k}" if k > 1 else f"{w}" for w, k in runs)
    if isinstance(net, MLP):
        return f"MLP n = [{n}] (L = {net.L}), {net.activation!r}"
    return f"ResidualMLP n = [{n}] (L = {net.L}), {net.activation!r}, γ = {_fmt(net.gamma[1:-1] or net.gamma)}, " \
           f"ξ = {_fmt(net.xi)}"


def _fmt(values) -> str:
    """One value, a short per-layer list, or the range of a long one."""
    vals = [float(x) for x in values]
    if len(set(vals)) == 1:
        return f"{vals[0]:g}"
    if len(vals) <= 4:
        return "[" + ", ".join(f"{x:g}" for x in vals) + "]"
    return f"{min(vals):.4g}…{max(vals):.4g} (per layer)"


# ----------------------------------------------------------------------------------------------
# Call sites for pieces that other issue-15 work provides (one place each, so they can be swapped)
# ----------------------------------------------------------------------------------------------


def _optimal_aspect_ratio(act, output_dim: int, gamma: float) -> tuple[float | None, float | None]:
    """(r*, ν) from :func:`deepeft.optimal_aspect_ratio` (A.68)–(A.73), (B.36) and its ν, or (None, None) for a
    class without a closed form (half-stable, none). The one place r* enters the report."""
    from .theory.information import optimal_aspect_ratio, vertex_coefficient

    try:
        return float(optimal_aspect_ratio(act, output_dim, gamma)), float(vertex_coefficient(act, gamma))
    except DeepEFTInputError:
        return None, None


def _mlp_from_torch(module) -> MLP:
    """An :class:`MLP` from a PyTorch module (widths, activation, empirical C_W = n_in·Var(W), C_b = Var(b)) through
    :func:`deepeft.from_torch` — the one importer of torch modules (it names any unsupported layer)."""
    from .interop import from_torch

    return _imported_net(from_torch(module))


def _imported_net(model) -> MLP:
    """The :class:`MLP` spec of an imported model (``de.from_torch`` & co. return one with ``.net``)."""
    net = getattr(model, "net", model)
    if not isinstance(net, MLP):
        raise DeepEFTInputError(f"expected an imported model with an MLP spec, got {type(model).__name__}.")
    return net


def _is_torch_module(obj) -> bool:
    return any(c.__module__.startswith("torch.nn") and c.__name__ == "Module" for c in type(obj).__mro__)


# ----------------------------------------------------------------------------------------------
# The analysis
# ----------------------------------------------------------------------------------------------


def _judged(values) -> tuple:
    """The layers whose C_b, C_W decide criticality: 2..L − 1 (layer 1's only set K^{(1)} (5.2), the output
    layer's only rescale K^{(L)}); all layers 2..L when there is at most one hidden layer."""
    vals = tuple(values)
    return vals[1:-1] if len(vals) >= 3 else (vals[1:] or vals)


def _tuned(Cb, CW, target, rtol: np.ndarray) -> bool:
    """Judged layers (:func:`_judged`) at the critical point: |C_W − C_W*| ≤ rtol·C_W* and |C_b − C_b*| ≤ rtol·C_W*,
    with per-layer (L,) arrays (``target`` = (C_b*, C_W*) per layer, or None: no critical point)."""
    if target is None:
        return False
    tb, tw, tol = (np.asarray(_judged(t), dtype=np.float64) for t in (target[0], target[1], rtol))
    tol = tol * tw
    cb, cw = np.asarray(_judged(Cb)), np.asarray(_judged(CW))
    return bool(np.all(np.abs(cw - tw) <= tol) and np.all(np.abs(cb - tb) <= tol))


def _sampling_rtol(net: MLP | ResidualMLP) -> np.ndarray:
    """Per-layer relative tolerance for C_W measured from one network's weights, C_W = n_{ℓ−1}·Var(W^{(ℓ)}):
    ``SAMPLING_SIGMAS`` standard errors of a variance estimated from n_{ℓ−1}n_ℓ Gaussian draws, √(2/(n_{ℓ−1}n_ℓ))."""
    n = np.asarray(net.n, dtype=np.float64)
    return SAMPLING_SIGMAS * np.sqrt(2.0 / (n[:-1] * n[1:]))


def _flow(net, norm: float) -> tuple[DepthFlow, PhaseReport]:
    """The single-input recursion of ``net`` at input norm ``norm`` and :func:`~deepeft.theory.criticality.phase`'s
    report on it (which dispatches a ResidualMLP to ``residual_phase``: the residual recursion (B.12)–(B.26)): the
    χ's of the step that classifies the network, its e-folds, regime and warnings (kept in ``PhaseReport.warnings``,
    not emitted); V/(n_{ℓ−1}K²) per layer ((B.22) for a ResidualMLP) for the curves."""
    from .theory.criticality import phase

    # errstate: K^(L) = 0 (a zero-initialised head) makes V/(nK²) NaN
    with warnings.catch_warnings(), np.errstate(invalid="ignore", divide="ignore"):
        warnings.simplefilter("ignore", DeepEFTWarning)
        ph = phase(net, norm=norm)
        rec = ph.recursion
        if isinstance(net, MLP):
            nv = rec.normalized_vertex() if net.widths else np.zeros(net.L)
        else:
            nv = rec.V / (np.concatenate([[np.inf], np.asarray(net.widths, dtype=np.float64)]) * rec.K**2)  # V^(1) = 0
    return DepthFlow(np.arange(1, net.L + 1), rec.K, rec.chi_parallel, rec.chi_perp, nv), ph


def _critical_target(net, crit, gamma: float):
    """(CriticalPoint shown in the report, per-layer (C_b*, C_W*) in ``net``'s own parametrisation, or None).

    MLP: the activation's critical point on every layer. ResidualMLP: C_b = 0, C_W(γ_ℓ) (B.20)–(B.21) on each
    layer ℓ with its own γ_ℓ (γ = 0: the MLP's point), divided by ξ_ℓ² (the block weight, (B.6))."""
    cp = crit.critical
    if isinstance(net, MLP):
        return cp, (None if cp is None else ((cp.C_b,) * net.L, (cp.C_W,) * net.L))
    from .theory.criticality import CriticalPoint
    from .theory.residual import residual_critical_point

    try:
        pts = {g: residual_critical_point(net.activation, g) for g in set(net.gamma)}
    except DeepEFTInputError:
        return None, None
    xi2 = np.asarray(net.xi, dtype=np.float64) ** 2
    Cb = tuple(float(pts[g].C_b / x) for g, x in zip(net.gamma, xi2, strict=True))
    CW = tuple(float(pts[g].C_W / x) for g, x in zip(net.gamma, xi2, strict=True))
    shown = pts[gamma]
    K_star = None if cp is None else cp.K_star
    return CriticalPoint(shown.C_b, shown.C_W, K_star, f"residual γ = {gamma:g} (B.20)–(B.21)"), (Cb, CW)


def _criticality_items(net, crit, cp, target, tuned: bool, ph: PhaseReport, xi_par: float, xi_perp: float,
                       torch: bool, gamma: float) -> list[AdviceItem]:
    act = net.activation.name
    L = net.L
    items = []
    where = f"at the step {ph.step} → {ph.step + 1}" + (" (the last between hidden layers)" if L >= 3 else "")
    drift = (f"χ_∥ = {ph.chi_parallel:.6g}, χ_⊥ = {ph.chi_perp:.6g} {where}: "
             f"the kernel drifts by a factor e every ξ_∥ = {xi_par:.3g} layers and the difference between inputs "
             f"every ξ_⊥ = {xi_perp:.3g} layers (L = {L})")
    if cp is None:
        why = (crit.reason if crit.critical is None else
               f"App. B gives no residual critical point for class {crit.universality_class}")
        items.append(AdviceItem("criticality", (
            f"{act} has no critical initialization ({why}); {drift}. Use an activation with a critical point, "
            "e.g. tanh (C_b = 0, C_W = 1) or relu (C_b = 0, C_W = 2).")))
    elif not tuned:
        Cb, CW = _judged(net.C_b), _judged(net.C_W)
        given = f"C_b = {_fmt(Cb)}, C_W = {_fmt(CW)}"
        line = " (any K*: a line of critical points)" if cp.K_star is None else ""
        if gamma:
            mlp = crit.critical
            want = (f"use C_b = 0, C_W = C_W(γ) = (1 − γ²)·C_W* = {cp.C_W:.6g} on the layers with γ = {gamma:g} "
                    f"(B.20)–(B.21)" + (f" and C_W = {mlp.C_W:.6g} where γ = 0" if mlp is not None else ""))
        else:
            want = f"use C_b = {cp.C_b:.6g}, C_W = {cp.C_W:.6g}"
        items.append(AdviceItem("criticality", (
            f"{given} is not critical for {act}{f' with γ = {gamma:g}' if gamma else ''}; {want} "
            f"(universality class {crit.universality_class}{line}). {drift}.")))
        if torch:
            bias = ("torch.nn.init.zeros_(m.bias)" if cp.C_b == 0 else
                    f"torch.nn.init.normal_(m.bias, std={math.sqrt(cp.C_b):.6g})")
            items.append(AdviceItem("criticality", (
                "in PyTorch, for every nn.Linear m: "
                f"torch.nn.init.normal_(m.weight, std=({cp.C_W:.6g} / m.in_features) ** 0.5); {bias}.")))
    return items


def _aspect_items(net: MLP | ResidualMLP, r: float, r_star: float | None, nv: float) -> list[AdviceItem]:
    if r_star is None or r <= 0:
        return []
    L = net.L
    f = ASPECT_RATIO_FACTOR
    if r > f * r_star:
        n_min = math.ceil(L / r_star)
        L_max = max(int(math.floor(r_star * L / r)), 1)
        return [AdviceItem("aspect ratio", (
            f"L/n = {r:.3g} ≫ r* ≈ {r_star:.3g}: finite-width effects dominate (V/(nK²) = {nv:.3g} at the output); "
            f"widen to n ≥ {n_min} or use L ≤ {L_max} layers at this width (App. A, (A.73)).")
        )]
    if r < r_star / f:
        L_opt = max(int(round(r_star * L / r)), 1)
        return [AdviceItem("aspect ratio", (
            f"L/n = {r:.3g} ≪ r* ≈ {r_star:.3g}: close to infinite width, so little representation learning "
            f"(App. A); the optimum at this width is L ≈ {L_opt} layers (or n ≈ {max(math.ceil(L / r_star), 1)} "
            f"at this depth).")
        )]
    return []


def advise(net, x=None, *, norm=None, rtol: float = CRITICAL_RTOL, learning_rate_rule: str = "equivalence") -> Advice:
    """Design advice for ``net``: criticality, aspect ratio, finite-width effects, learning rates, warnings.

    ``net``: a :class:`~deepeft.MLP`, or a PyTorch ``nn.Sequential`` of Linear + activation layers (read by
    ``de.from_torch``: widths, activation, empirical C_W = n_in·Var(W), C_b = Var(b)), or the ``ImportedModel``
    that ``de.from_torch`` / ``de.from_flax`` / ``de.from_arrays`` returned.
    ``x`` / ``norm``: the reference input (or its (1/n₀)|x|²; default 1) of the single-input recursion.
    ``rtol``: relative tolerance for "the given C_W (and C_b, in units of C_W) is the critical point"; for a
    network read from its weights at least ``SAMPLING_SIGMAS`` = 3 standard errors of the measured C_W^{(ℓ)},
    3√(2/(n_{ℓ−1}n_ℓ)) per layer.
    ``learning_rate_rule``: passed to :func:`~deepeft.learning_rates` ("equivalence", "equal-contribution").

    Returns an :class:`Advice`; ``.to_dict()`` for JSON, ``str()`` for a table, ``.to_html(path)`` for a page.
    """
    from .theory.criticality import criticality
    from .theory.learning_rates import learning_rates
    from .theory.single_input import input_norm

    kinds = (MLP, ResidualMLP)
    source = "MLP"
    measured = False  # C_b, C_W read from one network's weights: compare with sampling tolerance
    if _is_torch_module(net):
        net, source, measured = _mlp_from_torch(net), f"torch {type(net).__name__}", True
    elif not isinstance(net, kinds) and isinstance(getattr(net, "net", None), MLP):  # de.from_torch(...) & co.
        net, source, measured = net.net, f"imported ({getattr(net, 'source', 'weights')})", True
    elif not isinstance(net, MLP) and isinstance(net, kinds):
        source = "ResidualMLP"
    if not isinstance(net, kinds):
        raise DeepEFTInputError(
            f"advise takes a deepeft.MLP, a deepeft.ResidualMLP or a torch.nn.Sequential of Linear + activation "
            f"layers, got {type(net).__name__}; build one with de.MLP(input_dim, widths, output_dim, activation, "
            "C_b=..., C_W=...)."
        )
    gamma = 0.0 if isinstance(net, MLP) else float(max(net.gamma))
    if gamma >= 1.0:
        raise DeepEFTInputError(
            f"γ = {gamma:g} ≥ 1: the residual path alone keeps or grows the kernel (K⁺ = γ²K + …) and the critical "
            "C_W(γ) = (1 − γ²)/A₂ (or (1 − γ²)/σ₁²) is ≤ 0, so there is no critical initialization (B.20)–(B.21); "
            "use 0 ≤ γ < 1 (e.g. γ² = 0.5)."
        )
    tol = np.full(net.L, v.finite_scalar(rtol, "rtol", minimum=0.0))
    if measured:
        tol = np.maximum(tol, _sampling_rtol(net))
    nrm = input_norm(net, x, norm)
    crit = criticality(net.activation, exponents=False)
    cp, target = _critical_target(net, crit, gamma)
    tuned = _tuned(net.C_b, net.C_W, target, tol)
    flow, ph = _flow(net, nrm)
    xi_par, xi_perp = _depth_scale(ph.chi_parallel), _depth_scale(ph.chi_perp)
    steps = max(net.L - 1, 1)
    if tuned:
        verdict = "critical"
    elif min(xi_par, xi_perp) >= steps:
        verdict = "near-critical (drift depth ≥ L)" if cp is not None else "no drift over this depth"
    elif ph.regime != "critical":
        verdict = f"not critical ({ph.regime})"
    else:
        verdict = f"not critical (drifts over ξ = {min(xi_par, xi_perp):.3g} < L layers)"
    r_star, nu = _optimal_aspect_ratio(net.activation, net.output_dim, gamma)

    items = _criticality_items(net, crit, cp, target, tuned, ph, xi_par, xi_perp, source.startswith("torch"), gamma)
    items += [AdviceItem("phase", m) for m in ph.warnings]
    items += _aspect_items(net, net.aspect_ratio, r_star, ph.normalized_vertex_out)
    lr = None
    if isinstance(net, MLP):
        try:
            with warnings.catch_warnings(record=True):
                warnings.simplefilter("always", DeepEFTWarning)
                lr = learning_rates(net, learning_rate_rule, norm=nrm)
        except DeepEFTInputError as exc:
            items.append(AdviceItem("learning rates", f"no learning rates for this network: {exc}"))
    return Advice(
        net=net, criticality=crit, critical_point=cp, at_critical_point=tuned, verdict=verdict, regime=ph.regime,
        chi_parallel=ph.chi_parallel, chi_perp=ph.chi_perp, depth_scale_parallel=xi_par, depth_scale_perp=xi_perp,
        efolds_parallel=ph.efolds_parallel, efolds_perp=ph.efolds_perp, K_out=ph.K_out,
        aspect_ratio=net.aspect_ratio, normalized_vertex_out=ph.normalized_vertex_out, optimal_aspect_ratio=r_star,
        nu=nu, learning_rates=lr, warnings=tuple(items), flow=flow, input_norm=nrm, source=source, gamma=gamma,
        critical_init=target,
    )


# ----------------------------------------------------------------------------------------------
# Terminal table
# ----------------------------------------------------------------------------------------------


def _table(a: Advice) -> list[str]:
    d = a.to_dict()
    net, cp = a.net, a.critical_point
    c, ar, fw = d["criticality"], d["aspect_ratio"], d["finite_width"]

    def num(x, fmt=".4g"):
        return "∞" if x is None else format(x, fmt)

    rows = [
        ("network", _describe(net)),
        ("universality class", a.universality_class),
        ("critical point", "none" if cp is None else
         f"C_b* = {cp.C_b:.6g}, C_W* = {cp.C_W:.6g}" + ("" if cp.K_star is None else f", K* = {cp.K_star:.6g}")),
        ("given (hidden layers)", f"C_b = {_fmt(_judged(net.C_b))}, C_W = {_fmt(_judged(net.C_W))}"),
        ("verdict", c["verdict"]),
        ("χ_∥, χ_⊥ (last hidden step)", f"{num(c['chi_parallel'], '.6g')}, {num(c['chi_perp'], '.6g')}"),
        ("drift depth ξ_∥, ξ_⊥", f"{num(c['depth_scale_parallel'])}, {num(c['depth_scale_perp'])} layers"),
        ("aspect ratio r = L/n", f"{ar['r']:.4g}"
         + ("" if ar["r_star"] is None else f"   (r* = {ar['r_star']:.4g} for n_L = {ar['output_dim']}, ν = {ar['nu']:.4g})")),
        ("V/(nK²) at the output", f"{num(fw['normalized_vertex_out'])}   (excess kurtosis {num(fw['excess_kurtosis_out'])})"),
    ]
    lr = a.learning_rates
    if lr is not None:
        def span(arr):
            return f"{arr[0]:.4g} … {arr[-1]:.4g}" if len(arr) > 1 else f"{arr[0]:.4g}"

        rows.append(("learning rates " + lr.equation, f"λ_b^(ℓ): {span(lr.lambda_b)};  λ_W^(ℓ): {span(lr.lambda_W)}"))
    w = max(len(k) for k, _ in rows)
    lines = [f"{k:<{w}}  {val}" for k, val in rows]
    if a.warnings:
        lines.append("")
        lines.append(f"warnings ({len(a.warnings)}):")
        lines += [f"  [{it.topic}] {it.message}" for it in a.warnings]
    else:
        lines += ["", "no warnings."]
    return lines
