"""Which phase of the SGD phase diagram a training run is in: ordered, paramagnetic or jamming (Park, Lucini & Aarts 2025, §3.2).

The paper names the three regions of its T = ε/|B| – 1/σ_W diagram by what a trained network looks like there:

* **ordered** (ferromagnetic; low T, small σ_W) — the loss is driven down (the student fits the teacher);
* **jamming** (spin glass; large σ_W) — the loss stays high and the features remember their initial values:
  G(t_f, 0) (3.4) stays close to its value at t = 0 (saturated soft spins, slow dynamics);
* **paramagnetic** (T ≳ 1) — the loss stays high and the SGD noise erases the memory of the initial features.

:func:`sgd_regime` is that reading made explicit, for any run whose loss at initialisation and at t_f, and whose
feature memory (the correlation coefficient of the last hidden layer's features at t_f with those at t = 0) are
measured — a teacher–student ensemble (:func:`deepeft.sgd.train_ensemble`) or a user's own run. The two thresholds
are conventions, not theory values: ``LEARNED_LOSS_RATIO`` = 10⁻² is the paper's "loss ≥ 100× lower" between the
ordered and the other corners (the ``loss_ratio`` of ``sgd-phase-diagram``), ``MEMORY_THRESHOLD`` = 0.8 separates
the jamming corner (memory ≥ 0.9 at t_f = 2·10⁴ steps of the paper setup) from the paramagnetic one (≤ 0.4 at
T ≥ 1). The regions meet in smooth crossovers (docs/sgd.md), so a run near a boundary may fall either way; the
verdict carries its inputs so that the caller can see how close it is.

The only theory line of the diagram is the jamming boundary σ_z² = σ_W² q = ½ of tanh soft spins (§2.3,
:func:`deepeft.sgd.jamming_inv_sigma_W`); it is reported beside the verdict (``sigma_z2``) but does not decide it:
measured, the loss of the paper setup rises only well below that line (docs/diagnose.md).

References:
  Park, Lucini & Aarts, Phase diagram and eigenvalue dynamics of stochastic gradient descent in multilayer neural networks (2025)
    arXiv:2509.01349
"""

from __future__ import annotations

import dataclasses
import math

import numpy as np

from .. import _validate as v
from ..errors import DeepEFTInputError

__all__ = ["REGIMES", "LEARNED_LOSS_RATIO", "MEMORY_THRESHOLD", "RegimeVerdict", "sgd_regime", "regime_codes",
           "feature_memory"]

REGIMES = ("ordered", "paramagnetic", "jamming")
LEARNED_LOSS_RATIO = 1e-2  # loss(t_f)/loss(0) at or below this: the run has learned (the paper's 100× corner ratio)
MEMORY_THRESHOLD = 0.8  # feature memory at or above this: the features are frozen at their initial values


@dataclasses.dataclass(frozen=True)
class RegimeVerdict:
    """The regime of one run and the numbers that decided it."""

    regime: str
    loss_ratio: float
    memory: float
    reason: str


def regime_codes(loss_ratio, memory, *, learned: float = LEARNED_LOSS_RATIO,
                 memory_threshold: float = MEMORY_THRESHOLD) -> np.ndarray:
    """The rule of :func:`sgd_regime` on arrays (unvalidated; for phase-diagram grids): index into ``REGIMES`` —
    0 (ordered) where loss_ratio ≤ ``learned``, else 2 (jamming) where memory ≥ ``memory_threshold``, else 1."""
    r, m = np.asarray(loss_ratio, np.float64), np.asarray(memory, np.float64)
    return np.where(r <= learned, 0, np.where(m >= memory_threshold, 2, 1))


def sgd_regime(loss_init, loss_final, memory, *, learned: float = LEARNED_LOSS_RATIO,
               memory_threshold: float = MEMORY_THRESHOLD) -> RegimeVerdict:
    """Classify a run into the paper's regimes from its loss at t = 0 and t_f and its feature memory (§3.2).

    loss_init, loss_final: the training loss (or the test loss of a realisable problem such as the teacher–student
    one) at initialisation and at the end; memory: correlation of the last hidden layer's features at t_f with
    their initial values (:func:`feature_memory`; for the teacher–student runs G(t_f, 0)/√(G(t_f, t_f) G(0, 0)),
    (3.4)). Rule: loss_final/loss_init ≤ ``learned`` → "ordered"; else memory ≥ ``memory_threshold`` → "jamming";
    else "paramagnetic".
    """
    L0 = v.finite_scalar(loss_init, "loss_init")
    L1 = v.finite_scalar(loss_final, "loss_final")
    if L0 == 0:
        raise DeepEFTInputError("loss_init is 0: the run starts at a perfect fit, so its regime cannot be read "
                                "from the loss; pass the loss of an untrained model.")
    m = v.finite_scalar(memory, "memory", minimum=None)
    if not -1.0 - 1e-9 <= m <= 1.0 + 1e-9:
        raise DeepEFTInputError(f"memory is a correlation coefficient in [−1, 1], got {memory!r}.")
    lo = v.finite_scalar(learned, "learned")
    mt = v.finite_scalar(memory_threshold, "memory_threshold")
    ratio = L1 / L0
    code = int(regime_codes(ratio, m, learned=lo, memory_threshold=mt))
    if code == 0:
        return RegimeVerdict("ordered", ratio, m, f"loss fell to {ratio:.3g} of its initial value (≤ {lo:g})")
    if code == 2:
        return RegimeVerdict("jamming", ratio, m, f"loss ratio {ratio:.3g} > {lo:g} and the features kept their "
                                                  f"initial values (memory {m:.3f} ≥ {mt:g})")
    return RegimeVerdict("paramagnetic", ratio, m, f"loss ratio {ratio:.3g} > {lo:g} and the initial features were "
                                                   f"erased (memory {m:.3f} < {mt:g})")


def feature_memory(phi_t, phi_0, *, center: bool = False) -> float:
    """Correlation coefficient Σ φ(t)φ(0)/√(Σφ(t)² Σφ(0)²) of features (data × units) at two times (3.4), normalised.

    center=True subtracts each unit's mean over the data first: needed for features that are not odd functions of
    a symmetric pre-activation (ReLU: two independent ReLU feature maps have an uncentred correlation of ≈ 1/π).
    """
    a = np.asarray(phi_t, np.float64)
    b = np.asarray(phi_0, np.float64)
    if a.shape != b.shape or a.ndim != 2:
        raise DeepEFTInputError(f"phi_t and phi_0 must be (data, units) arrays of one shape, got {a.shape}, {b.shape}.")
    if not (np.all(np.isfinite(a)) and np.all(np.isfinite(b))):
        raise DeepEFTInputError("the features contain NaN or inf; check the model's weights.")
    if center:
        a = a - a.mean(0)
        b = b - b.mean(0)
    den = math.sqrt(float((a * a).sum()) * float((b * b).sum()))
    if den == 0:
        raise DeepEFTInputError("the features are identically zero (dead units?): their memory is undefined.")
    return float((a * b).sum() / den)
