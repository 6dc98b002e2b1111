"""Diagnose your own model: weight spectra, per-layer tables and criticality verdicts, checkpoint series.

* :mod:`.spectrum` — :func:`weight_spectrum`: Marchenko–Pastur fit, Tracy–Widom outliers, tail exponent α.
"""

from .spectrum import TW1_QUANTILES, WeightSpectrum, bbp_outlier, power_law_tail, spectrum_of_eigenvalues, weight_spectrum

__all__ = [
    "TW1_QUANTILES",
    "WeightSpectrum",
    "bbp_outlier",
    "power_law_tail",
    "spectrum_of_eigenvalues",
    "weight_spectrum",
]
