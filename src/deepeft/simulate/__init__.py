"""What real networks do, independent of :mod:`deepeft.theory`: vectorised ensembles of random networks
(all layers, streamed in chunks), the forward pass and parameter sampling, and the empirical NTK.
See docs/ensembles.md.
"""

from .ensemble import EnsembleResult, sample_ensemble
from .estimators import covariance, mean_and_se, mean_vector_and_cov
from .forward import preactivations, sample_params
from .ntk import empirical_ntk, ntk_autodiff, ntk_forward

__all__ = [
    "EnsembleResult",
    "covariance",
    "empirical_ntk",
    "mean_and_se",
    "mean_vector_and_cov",
    "ntk_autodiff",
    "ntk_forward",
    "preactivations",
    "sample_ensemble",
    "sample_params",
]
