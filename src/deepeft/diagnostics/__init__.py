"""Diagnose your own model: weight spectra, per-layer tables and criticality verdicts, checkpoint series.

* :mod:`.diagnose` — :func:`diagnose`: one row per layer (xarray) with C_W, C_b, spectra, χ and the verdict.
* :mod:`.spectrum` — :func:`weight_spectrum`: Marchenko–Pastur fit, Tracy–Widom outliers, tail exponent α.
"""

from .diagnose import VERDICT_THRESHOLD, as_imported, diagnose, layer_verdict
from .spectrum import TW1_QUANTILES, WeightSpectrum, bbp_outlier, power_law_tail, spectrum_of_eigenvalues, weight_spectrum

__all__ = [
    "VERDICT_THRESHOLD",
    "as_imported",
    "diagnose",
    "layer_verdict",
    "TW1_QUANTILES",
    "WeightSpectrum",
    "bbp_outlier",
    "power_law_tail",
    "spectrum_of_eigenvalues",
    "weight_spectrum",
]
