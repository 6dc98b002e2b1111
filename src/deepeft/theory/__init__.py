"""The effective theory of MLPs in the book's notation, one module per quantity (each cites its equations):

* :mod:`.kernel` — K^{(ℓ)} (4.118) and the frozen NTK Θ^{(ℓ)} (9.5), many inputs, one pass;
* :mod:`.single_input`, :mod:`.two_input` — the single-input recursions and helper functions (§5.1, §5.4),
  the bootstrapped and finite-angle two-input recursions (§5.2, §5.5);
* :mod:`.vertex`, :mod:`.nlo_metric` (step in :mod:`.nlo_recursion`) — V^{(ℓ)} (4.119) and G^{1} (4.115);
* :mod:`.criticality` — critical points, universality classes, exponents (§5.3);
* :mod:`.deep_linear` — exact finite-width deep linear networks (ch. 3);
* :mod:`.dntk_single_input` — single-input dNTK P, Q and ddNTK R, S, T, U statistics (§11.3, §∞.1);
* :mod:`.bayes`, :mod:`.kernel_learning`, :mod:`.generalization` — learning at infinite width: NNGP
  posterior and evidence (Ch. 6), frozen-NTK gradient descent, Newton, ridge (Ch. 10), generalization (§10.3);
* :mod:`.function_space_gd` — infinite-width GD for any loss (cross-entropy) averaged over the prior (10.3)–(10.6);
* :mod:`.algorithm_projectors`, :mod:`.finite_width_solution` — the trained network at finite width (§∞.2);
* :mod:`.information`, :mod:`.information_exact` — entropy, mutual and tripartite information, optimal aspect
  ratio (App. A); the exact information of the single-input scale-mixture law; :mod:`.metric_moments` — moments of
  the single-input stochastic metric Ĝ to NLO (x = V/(nG²) with V's 1/n correction);
* :mod:`.complexity` — counting of data-dependent couplings and the ReLU six-point vertex (Ch. ε);
* :mod:`.conventions` — neural-tangents and mean-field conventions at the edges.

The functions named like their modules (``kernel``, ``criticality``, ``single_input``, ``nlo_metric``) are
``deepeft.kernel`` etc. at the top level; here those names stay the modules (``deepeft.theory.kernel.kernel``),
so that ``import deepeft.theory.kernel`` and ``from deepeft.theory import kernel`` mean the module.
"""

from typing import TYPE_CHECKING

from .._lazy import attach

if TYPE_CHECKING:  # imported on first use (PEP 562, deepeft._lazy)
    from . import complexity, deep_linear, dntk_single_input, gnn, information, information_exact
    from .algorithm_projectors import AlgorithmProjectors, algorithm_projectors
    from .bayes import (
        Posterior,
        evidence_grid,
        evidence_optimal,
        log_evidence,
        log_evidence_from_kernel,
        nngp_posterior,
        posterior_from_kernels,
    )
    from .bayes_finite_width import (
        FiniteWidthPosterior,
        RepresentationUpdate,
        finite_width_posterior,
        hebbian_conditional_moment,
        representation_update,
    )
    from .conventions import from_mean_field, from_neural_tangents, to_neural_tangents
    from .couplings import RunningCouplings, coupling_tensors, running_couplings
    from .criticality import Criticality, CriticalPoint, phase
    from .ddntk import DDNTK, ddntk
    from .dntk import DNTK, dntk
    from .dntk_single_input import (
        DDNTKSingleInput,
        DNTKSingleInput,
        ddntk_deep_linear,
        ddntk_k_star_zero_asymptotics,
        ddntk_single_input,
        dntk_k_star_zero_asymptotics,
        dntk_scale_invariant,
    )
    from .finite_width_mean import FiniteWidthPrediction, finite_width_mean_from_statistics, finite_width_prediction
    from .finite_width_solution import TrainedOutput, trained_output_from_tensors
    from .function_space_gd import FunctionSpaceGD, function_space_gd, function_space_gd_from_kernels, function_space_outputs
    from .generalization import (
        bias_variance,
        delta_ntk_recursion,
        finite_angle_ntk,
        robustness,
        star_polation,
    )
    from .kernel import Kernels, frozen_ntk, kernel_and_ntk, kernels
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
    from .metric_moments import MetricMoments, stochastic_metric_moments
    from .nearly_kernel import meta_kernel, nearly_kernel_prediction, quadratic_model
    from .residual import (
        critical_xi,
        residual_aspect_ratio,
        residual_critical_point,
        residual_gamma_for_aspect_ratio,
        residual_nu,
    )
    from .residual_recursions import residual_single_input, residual_vertex_flow
    from .single_input import HelperFunctions, SingleInputRecursion, helper_functions, single_input_recursion
    from .two_input import BootstrappedKernel, FiniteAngle, bootstrapped_recursion, finite_angle_recursion
    from .vertex import VertexFlow, connected_four_point, excess_kurtosis, four_point_vertex, vertex_flow

__getattr__, __dir__ = attach(globals())

__all__ = [
    "MetricMoments",
    "stochastic_metric_moments",
    "FunctionSpaceGD",
    "function_space_gd",
    "function_space_gd_from_kernels",
    "function_space_outputs",
    "algorithm_projectors",
    "AlgorithmProjectors",
    "trained_output_from_tensors",
    "finite_width_mean_from_statistics",
    "meta_kernel",
    "nearly_kernel_prediction",
    "quadratic_model",
    "finite_width_prediction",
    "FiniteWidthPrediction",
    "TrainedOutput",
    "DDNTK",
    "ddntk",
    "DNTK",
    "dntk",
    "DDNTKSingleInput",
    "DNTKSingleInput",
    "ddntk_deep_linear",
    "ddntk_k_star_zero_asymptotics",
    "ddntk_single_input",
    "dntk_k_star_zero_asymptotics",
    "dntk_scale_invariant",
    "bias_variance",
    "finite_width_posterior",
    "FiniteWidthPosterior",
    "hebbian_conditional_moment",
    "representation_update",
    "RepresentationUpdate",
    "bootstrapped_recursion",
    "BootstrappedKernel",
    "connected_four_point",
    "Criticality",
    "CriticalPoint",
    "complexity",
    "deep_linear",
    "gnn",
    "information",
    "information_exact",
    "dntk_single_input",
    "delta_ntk_recursion",
    "evidence_grid",
    "evidence_optimal",
    "excess_kurtosis",
    "finite_angle_ntk",
    "finite_angle_recursion",
    "FiniteAngle",
    "four_point_vertex",
    "from_mean_field",
    "from_neural_tangents",
    "frozen_ntk",
    "gd_from_kernels",
    "gd_prediction",
    "GDPrediction",
    "helper_functions",
    "HelperFunctions",
    "kernel_and_ntk",
    "kernel_regression",
    "Kernels",
    "kernels",
    "last_layer_only",
    "log_evidence",
    "log_evidence_from_kernel",
    "max_stable_eta",
    "newton_step",
    "nngp_posterior",
    "phase",
    "Posterior",
    "posterior_from_kernels",
    "ridge_regression",
    "robustness",
    "single_input_recursion",
    "SingleInputRecursion",
    "star_polation",
    "to_neural_tangents",
    "vertex_flow",
    "RunningCouplings",
    "coupling_tensors",
    "running_couplings",
    "VertexFlow",
    "critical_xi",
    "residual_aspect_ratio",
    "residual_critical_point",
    "residual_gamma_for_aspect_ratio",
    "residual_nu",
    "residual_single_input",
    "residual_vertex_flow",
]
