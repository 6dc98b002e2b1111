"""Diagnose your own model: weight spectra, per-layer tables and criticality verdicts, checkpoint series.

* :mod:`.diagnose` — :func:`diagnose`: one row per layer (xarray) with C_W, C_b, spectra, χ and the verdict.
* :mod:`.series` — :class:`SpectrumRecorder` (Zarr, resumable; PyTorch hook, JAX function), :func:`load_series`.
* :mod:`.series_dbm` — :func:`series_dbm`: drift/diffusion, S(t), time-averaged K_S, V_S, D_S, test (4.15).
* :mod:`.spectrum` — :func:`weight_spectrum`: Marchenko–Pastur fit, Tracy–Widom outliers, tail exponent α.
"""

from typing import TYPE_CHECKING

from .._lazy import attach

if TYPE_CHECKING:  # imported on first use (PEP 562, deepeft._lazy)
    from .diagnose import VERDICT_THRESHOLD, as_imported, diagnose, layer_verdict
    from .series import CheckpointSeries, SpectrumRecorder, load_series, record_jax
    from .series_dbm import SeriesDBM, SpacingFit, fit_spacing_sde, series_dbm
    from .spectrum import TW1_QUANTILES, WeightSpectrum, bbp_outlier, power_law_tail, spectrum_of_eigenvalues, weight_spectrum

__getattr__, __dir__ = attach(globals())

__all__ = [
    "CheckpointSeries",
    "SeriesDBM",
    "SpacingFit",
    "SpectrumRecorder",
    "fit_spacing_sde",
    "load_series",
    "record_jax",
    "series_dbm",
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
