"""What real networks do, independent of :mod:`deepeft.theory`: vectorised ensembles of random networks
(all layers, streamed in chunks), the forward pass and parameter sampling, the empirical NTK, its
derivatives (dNTK, ddNTKs) and their ensemble statistics, and ensembles of trained networks (GD, SGD,
gradient flow). See docs/ensembles.md, docs/training.md and docs/ntk_tensors.md.
"""

from typing import TYPE_CHECKING

from .._lazy import attach

if TYPE_CHECKING:  # imported on first use (PEP 562, deepeft._lazy)
    from .couplings import CouplingFit, EnsembleCouplings, ensemble_couplings, fit_couplings
    from .ensemble import EnsembleResult, default_micro_batch, sample_ensemble
    from .estimators import covariance, mean_and_se, mean_vector_and_cov
    from .forward import network_key, preactivations, sample_params
    from .gnn import GraphEnsembleResult, sample_graph_ensemble
    from .gnn_training import TrainedGCNEnsemble, train_gcn_ensemble
    from .metric_cumulants import (
        MetricCumulants,
        metric_cumulants,
        stochastic_metric,
        stochastic_metric_from_preactivations,
        stochastic_metric_samples,
    )
    from .ntk import empirical_ntk, ntk_autodiff, ntk_forward
    from .ntk_tensors import (
        DDNTKStatistics,
        DNTKStatistics,
        NTKTensors,
        OneStepPrediction,
        ddntk_statistics,
        dntk_statistics,
        empirical_ddntk,
        empirical_dntk,
        empirical_tensors,
        one_step_prediction,
    )
    from .posterior_sampling import ImportanceSample, importance_posterior, stochastic_output_metrics
    from .residual_block import BlockCorrelators, block_correlators, mlp_block
    from .susceptibility import empirical_chi_perp
    from .training import TrainedEnsemble, train_ensemble

__getattr__, __dir__ = attach(globals())

__all__ = [
    "GraphEnsembleResult",
    "sample_graph_ensemble",
    "TrainedGCNEnsemble",
    "train_gcn_ensemble",
    "BlockCorrelators",
    "block_correlators",
    "mlp_block",
    "CouplingFit",
    "EnsembleCouplings",
    "ensemble_couplings",
    "fit_couplings",
    "DDNTKStatistics",
    "DNTKStatistics",
    "EnsembleResult",
    "NTKTensors",
    "OneStepPrediction",
    "ImportanceSample",
    "importance_posterior",
    "stochastic_output_metrics",
    "TrainedEnsemble",
    "covariance",
    "ddntk_statistics",
    "default_micro_batch",
    "dntk_statistics",
    "empirical_chi_perp",
    "empirical_ddntk",
    "empirical_dntk",
    "empirical_ntk",
    "empirical_tensors",
    "mean_and_se",
    "metric_cumulants",
    "MetricCumulants",
    "stochastic_metric",
    "stochastic_metric_from_preactivations",
    "stochastic_metric_samples",
    "mean_vector_and_cov",
    "network_key",
    "ntk_autodiff",
    "ntk_forward",
    "one_step_prediction",
    "preactivations",
    "sample_ensemble",
    "sample_params",
    "train_ensemble",
]
