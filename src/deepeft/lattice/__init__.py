"""Random networks as lattice models (Schoenholz, Pennington, Sohl-Dickstein, "A correspondence between
random neural networks and statistical field theory"; digest shared/spec/lattice-field-theory.md).

Samplers (full-weight and exact conditional chain, open chain and ring), lattice energies (9)–(12), (85),
the factorial mean-field baseline, saddle points (13), (20), the Gaussian fluctuation theory (14)–(15),
(21)–(22) with ``coefficients="printed" | "verified"`` (errata E1–E9), the effective field theory
(16)–(17), (23), the analysis pipeline of App. 8.3, and the model beyond J_D = 0 (the loss as a
perturbation, :mod:`.perturbed`: Metropolis-within-Gibbs with R̂/ESS, exact reweighting). See docs/lattice.md.
"""

from .analysis import (
    Estimate,
    ModeStatistics,
    analysis_window,
    estimate_lagged_covariance,
    estimate_step_residual,
    fluctuation_fields,
    median_bin_ratio,
    mode_histograms,
    mode_statistics,
    moments,
)
from .eft import EFT, eft, eft_correlation_length, eft_lattice_comparison, eft_spectrum, symmetry_report
from .energy import energy_chain, energy_linear_radial, energy_relu_fields, energy_ring, energy_single
from .fluctuations import (
    QuadraticTheory,
    auto_laplace,
    covariance_matrix,
    expected_periodogram,
    fluctuation_spectrum,
    hessian_blocks,
    lagged_covariance,
    lattice_correlation_length,
    linear_lagged_covariance,
    linear_spectrum,
    precision_matrix,
    quadratic_theory,
    relu_covariance,
    var_model,
)
from .fluctuations import (
    spectrum as spectrum,  # old name of fluctuation_spectrum
)
from .meanfield import factorial_variance, fixed_point, predicted_norms, q_trajectory, qmap
from .perturbed import (
    PerturbedSample,
    effective_sample_size,
    loss_response,
    loss_response_theory,
    overlaps,
    reweighted_moments,
    sample_perturbed,
    split_rhat,
)
from .saddle import ReluSaddle, saddle_linear, saddle_numeric, saddle_relu, uniform_energy_density
from .samplers import LatticeSample, sample_conditional, sample_full_weights

__all__ = [
    "EFT", "Estimate", "PerturbedSample", "effective_sample_size", "overlaps", "reweighted_moments",
    "sample_perturbed", "split_rhat", "loss_response",
    "loss_response_theory", "LatticeSample", "ModeStatistics", "QuadraticTheory", "ReluSaddle",
    "analysis_window", "auto_laplace", "covariance_matrix", "eft", "eft_correlation_length",
    "eft_lattice_comparison", "eft_spectrum", "energy_chain", "energy_linear_radial", "energy_relu_fields",
    "energy_ring", "energy_single", "estimate_lagged_covariance", "estimate_step_residual", "expected_periodogram",
    "factorial_variance",
    "fixed_point", "fluctuation_fields", "hessian_blocks", "lagged_covariance", "lattice_correlation_length",
    "linear_lagged_covariance", "linear_spectrum", "median_bin_ratio", "mode_histograms", "mode_statistics",
    "moments", "precision_matrix", "predicted_norms", "q_trajectory", "qmap", "quadratic_theory",
    "relu_covariance", "saddle_linear", "saddle_numeric", "saddle_relu", "sample_conditional",
    "sample_full_weights", "fluctuation_spectrum", "symmetry_report", "uniform_energy_density", "var_model",
]
