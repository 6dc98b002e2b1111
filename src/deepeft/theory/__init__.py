"""Theory: the book's recursions and the learning predictions built on them (import via ``deepeft``).

Learning at infinite width (this package's public learning surface):
``nngp_posterior``, ``log_evidence``, ``posterior_from_kernels``, ``log_evidence_from_kernel``,
``evidence_grid`` (:mod:`.bayes`, Ch. 6) and ``gd_prediction``, ``gd_from_kernels``, ``last_layer_only``,
``kernel_regression``, ``newton_step``, ``max_stable_eta`` (:mod:`.kernel_learning`, Ch. 10).
"""

from .bayes import (
    Posterior,
    evidence_grid,
    evidence_optimal,
    log_evidence,
    log_evidence_from_kernel,
    nngp_posterior,
    posterior_from_kernels,
)
from .kernel_learning import (
    GDPrediction,
    gd_from_kernels,
    gd_prediction,
    kernel_regression,
    last_layer_only,
    max_stable_eta,
    newton_step,
    ridge_regression,
)

__all__ = [
    "GDPrediction",
    "Posterior",
    "evidence_grid",
    "evidence_optimal",
    "gd_from_kernels",
    "gd_prediction",
    "kernel_regression",
    "last_layer_only",
    "log_evidence",
    "log_evidence_from_kernel",
    "max_stable_eta",
    "newton_step",
    "nngp_posterior",
    "posterior_from_kernels",
    "ridge_regression",
]
