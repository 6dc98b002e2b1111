"""Simulation: random-network ensembles, one network's forward pass and empirical NTK, trained ensembles."""

from .ensemble import EnsembleResult, default_micro_batch, sample_ensemble
from .forward import network_key, preactivations, sample_params
from .ntk import empirical_ntk
from .training import TrainedEnsemble, train_ensemble

__all__ = [
    "EnsembleResult",
    "TrainedEnsemble",
    "default_micro_batch",
    "empirical_ntk",
    "network_key",
    "preactivations",
    "sample_ensemble",
    "sample_params",
    "train_ensemble",
]
