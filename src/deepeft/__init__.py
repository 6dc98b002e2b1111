"""deepeft — a laboratory for the statistical physics of deep neural networks.

Theory (effective field theory of MLPs, book: The Principles of Deep Learning Theory) and matching
experiments (ensembles of random and trained networks), validated against each other.

    import deepeft as de
    net = de.MLP(input_dim=5, widths=[512] * 6, activation="relu", C_W=2.0)
    K = de.kernel(net, X)                      # (L, N, N) K^(ℓ)   (4.118)
    ens = de.sample_ensemble(net, X, 10_000)   # Monte Carlo with standard errors

Subpackages: ``deepeft.gaussian`` (Wick, cumulants, expectation engine), ``deepeft.theory``,
``deepeft.simulate``, ``deepeft.lattice``, ``deepeft.sgd``, ``deepeft.experiments``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from ._lazy import attach

# Every public name is imported on first use (PEP 562), so ``import deepeft`` does not import JAX, SciPy or
# xarray; ``deepeft.<name>`` and ``from deepeft import <name>`` work as if the block below ran eagerly.
if TYPE_CHECKING:
    from .activations import Activation, activation, available_activations, require_smooth
    from .advice import Advice, advise
    from .diagnostics import WeightSpectrum, diagnose, weight_spectrum
    from .errors import DeepEFTInputError, DeepEFTWarning
    from .gaussian.action import ExactCorrelators, NearlyGaussianAction
    from .gaussian.cumulants import connected, moment
    from .gaussian.engine import Factor, expect, two_point, two_point_maps
    from .gaussian.wick import gaussian_moment, pairings, wick_tensor
    from .graph import GCN, normalize_adjacency
    from .interop import ImportedModel, from_arrays, from_equinox, from_flax, from_torch
    from .network import MLP
    from .network_residual import ResidualMLP
    from .simulate.couplings import ensemble_couplings, fit_couplings
    from .simulate.ensemble import EnsembleResult, sample_ensemble
    from .simulate.forward import preactivations, sample_params
    from .simulate.metric_cumulants import MetricCumulants, metric_cumulants
    from .simulate.ntk import empirical_ntk
    from .simulate.ntk_statistics import NTKStatistics, ntk_statistics
    from .simulate.ntk_tensors import ddntk_statistics, dntk_statistics, empirical_ddntk, empirical_dntk, one_step_prediction
    from .simulate.susceptibility import empirical_chi_perp
    from .simulate.trained_output import trained_output
    from .simulate.training import TrainedEnsemble, train_ensemble
    from .statistics import Estimate, jackknife
    from .theory import deep_linear
    from .theory.algorithm_projectors import AlgorithmProjectors, algorithm_projectors
    from .theory.bayes import Posterior, evidence_grid, log_evidence, nngp_posterior
    from .theory.bayes_finite_width import finite_width_posterior, hebbian_conditional_moment, representation_update
    from .theory.complexity import count_reals, six_point_vertex_relu
    from .theory.conventions import from_mean_field, from_neural_tangents, to_neural_tangents
    from .theory.couplings import RunningCouplings, running_couplings
    from .theory.criticality import Criticality, CriticalPoint, criticality, phase
    from .theory.ddntk import DDNTK, ddntk
    from .theory.dntk import DNTK, dntk
    from .theory.dntk_single_input import DDNTKSingleInput, DNTKSingleInput, ddntk_single_input, dntk_single_input
    from .theory.finite_width_mean import FiniteWidthPrediction, finite_width_prediction
    from .theory.finite_width_solution import TrainedOutput, trained_output_from_tensors
    from .theory.function_space_gd import FunctionSpaceGD, function_space_gd
    from .theory.information import (
        finite_width_information,
        gaussian_entropy,
        gaussian_kl,
        gaussian_mutual_information,
        max_mutual_information,
        optimal_aspect_ratio,
        vertex_coefficient,
    )
    from .theory.kernel import Kernels, frozen_ntk, kernel, kernel_and_ntk, kernels
    from .theory.kernel_learning import GDPrediction, gd_prediction, last_layer_only
    from .theory.learning_rates import LearningRates, learning_rates
    from .theory.nlo_metric import nlo_metric
    from .theory.ntk_fluctuations import NTKFluctuations, ntk_fluctuations
    from .theory.ntk_single_input import NTKSingleInput, ntk_single_input
    from .theory.residual import critical_xi, residual_aspect_ratio, residual_critical_point, residual_gamma_for_aspect_ratio
    from .theory.single_input import helper_functions, single_input, single_input_recursion
    from .theory.vertex import VertexFlow, connected_four_point, four_point_vertex, vertex_flow

def _version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("deepeft")
    except PackageNotFoundError:  # pragma: no cover - running from a source tree without install
        return "0.0.0"


__getattr__, __dir__ = attach(globals(), extra=("lattice", "sgd", "experiments", "plots"), computed={"__version__": _version})

__all__ = [
    "GCN",
    "normalize_adjacency",
    "count_reals",
    "metric_cumulants",
    "MetricCumulants",
    "six_point_vertex_relu",
    "finite_width_information",
    "gaussian_entropy",
    "gaussian_kl",
    "gaussian_mutual_information",
    "max_mutual_information",
    "optimal_aspect_ratio",
    "vertex_coefficient",
    "DDNTKSingleInput",
    "DNTKSingleInput",
    "ddntk_single_input",
    "dntk_single_input",
    "MLP",
    "ImportedModel",
    "WeightSpectrum",
    "weight_spectrum",
    "diagnose",
    "from_arrays",
    "from_equinox",
    "from_flax",
    "from_torch",
    "ResidualMLP",
    "critical_xi",
    "residual_aspect_ratio",
    "residual_critical_point",
    "residual_gamma_for_aspect_ratio",
    "algorithm_projectors",
    "AlgorithmProjectors",
    "trained_output",
    "finite_width_prediction",
    "FiniteWidthPrediction",
    "trained_output_from_tensors",
    "TrainedOutput",
    "Activation",
    "Advice",
    "advise",
    "Criticality",
    "CriticalPoint",
    "DeepEFTInputError",
    "DeepEFTWarning",
    "EnsembleResult",
    "TrainedEnsemble",
    "VertexFlow",
    "Estimate",
    "GDPrediction",
    "Posterior",
    "ExactCorrelators",
    "Factor",
    "NearlyGaussianAction",
    "__version__",
    "activation",
    "available_activations",
    "require_smooth",
    "connected",
    "connected_four_point",
    "four_point_vertex",
    "dntk",
    "DNTK",
    "ddntk",
    "DDNTK",
    "nlo_metric",
    "NTKFluctuations",
    "NTKStatistics",
    "ntk_fluctuations",
    "NTKSingleInput",
    "ntk_single_input",
    "LearningRates",
    "learning_rates",
    "ntk_statistics",
    "one_step_prediction",
    "dntk_statistics",
    "ddntk_statistics",
    "nngp_posterior",
    "finite_width_posterior",
    "hebbian_conditional_moment",
    "representation_update",
    "vertex_flow",
    "RunningCouplings",
    "running_couplings",
    "ensemble_couplings",
    "fit_couplings",
    "criticality",
    "deep_linear",
    "empirical_chi_perp",
    "empirical_ddntk",
    "empirical_dntk",
    "empirical_ntk",
    "evidence_grid",
    "expect",
    "from_mean_field",
    "from_neural_tangents",
    "frozen_ntk",
    "gd_prediction",
    "function_space_gd",
    "FunctionSpaceGD",
    "gaussian_moment",
    "helper_functions",
    "jackknife",
    "kernel",
    "kernel_and_ntk",
    "kernels",
    "Kernels",
    "last_layer_only",
    "log_evidence",
    "moment",
    "pairings",
    "phase",
    "preactivations",
    "sample_ensemble",
    "sample_params",
    "single_input",
    "single_input_recursion",
    "to_neural_tangents",
    "train_ensemble",
    "two_point",
    "two_point_maps",
    "wick_tensor",
]
