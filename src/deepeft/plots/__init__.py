"""Figures (matplotlib, Agg canvas, no pyplot state): activations, criticality (Figs 5.1–5.3), weight spectra."""

from .activations import BOOK_FIG_2_2, plot_activations
from .criticality import book_figures, plot_criticality_lines, plot_criticality_ratio
from .spectrum import plot_weight_spectrum

__all__ = ["BOOK_FIG_2_2", "book_figures", "plot_activations", "plot_criticality_lines", "plot_criticality_ratio",
           "plot_weight_spectrum"]
