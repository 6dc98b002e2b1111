"""SGD phase diagram and Dyson Brownian motion of weight matrices (Park, Lucini & Aarts 2025).

* :mod:`.teacher_student` — the teacher–student ensemble (general widths, depth, activation,
  trainable layers, biases); :meth:`TeacherStudent.paper` is the paper's 3-32-16-1 tanh setup.
* :mod:`.trainer` — all hyperparameter points × members trained in one compiled program
  (SGD (2.28), full-batch GD, Langevin (2.29)), observables recorded at log-spaced times.
* :mod:`.observables` — loss, gradient norm (3.3), G(t, 0) (3.4), alignment (3.5), spectra of
  X = W Wᵀ (4.1), Marchenko–Pastur (4.2), soft-spin feature law (2.21)–(2.22), jamming boundary.
* :mod:`.disorder` — the loss as an energy of soft spins, J = W^{(L)ᵀ}W^{(L)}, h, C (2.7)–(2.9) and the Wishart
  moments of J (2.24).
* :mod:`.dbm` — Dyson-Brownian-motion coefficients K, V (4.4), level spacing (4.5)–(4.8),
  K_S, V_S, D_S (B.7)–(B.9) and the convergence test (4.15) with its 68/95/99.7 % boundaries.

References:
  Park, Lucini & Aarts, Phase diagram and eigenvalue dynamics of stochastic gradient descent in multilayer neural networks (2025)
    arXiv:2509.01349
  (docs/references.md)
"""

from .dbm import (
    DRIFTS,
    DBMResult,
    boundary_temperature,
    convergence_lhs,
    dbm_analysis,
    drift_and_variance,
    integrate_level_spacing,
    level_spacing,
    per_sample_factors,
    spacing_coefficients,
    spacing_drift,
    spacing_finite_differences,
    spacing_rate,
)
from .disorder import (
    Disorder,
    disorder,
    energy,
    energy_at_init,
    last_layer_weights,
    wishart_classes,
    wishart_moments,
)
from .observables import (
    MarchenkoPastur,
    alignment,
    external_field,
    feature_correlation,
    feature_density,
    feature_extrema,
    feature_potential,
    feature_scale,
    gradient_norm,
    jamming_inv_sigma_W,
    marchenko_pastur,
    weight_spectrum,
)
from .observables import (
    spectrum as spectrum,  # old name of weight_spectrum
)
from .teacher_student import Problem, TeacherStudent, losses, sample_problem, student_outputs
from .teacher_student import forward as forward  # old name of student_outputs
from .trainer import (
    METHODS,
    EnsembleRun,
    continue_ensemble,
    gradient_moments,
    phase_grid,
    record_times,
    train_ensemble,
)

__all__ = [
    "DRIFTS",
    "Disorder",
    "disorder",
    "energy",
    "energy_at_init",
    "last_layer_weights",
    "wishart_classes",
    "wishart_moments",
    "DBMResult",
    "EnsembleRun",
    "METHODS",
    "MarchenkoPastur",
    "Problem",
    "TeacherStudent",
    "alignment",
    "boundary_temperature",
    "continue_ensemble",
    "convergence_lhs",
    "dbm_analysis",
    "drift_and_variance",
    "external_field",
    "feature_correlation",
    "feature_density",
    "feature_extrema",
    "feature_potential",
    "feature_scale",
    "student_outputs",
    "gradient_moments",
    "gradient_norm",
    "integrate_level_spacing",
    "jamming_inv_sigma_W",
    "level_spacing",
    "losses",
    "marchenko_pastur",
    "phase_grid",
    "per_sample_factors",
    "record_times",
    "sample_problem",
    "spacing_coefficients",
    "spacing_drift",
    "spacing_finite_differences",
    "spacing_rate",
    "weight_spectrum",
    "train_ensemble",
]
