"""Figures (matplotlib): activation curves (Agg canvas, no pyplot state) and the criticality figures (Figs 5.1–5.3)."""

from .activations import BOOK_FIG_2_2, plot_activations
from .criticality import book_figures, plot_criticality_lines, plot_criticality_ratio

__all__ = ["BOOK_FIG_2_2", "book_figures", "plot_activations", "plot_criticality_lines", "plot_criticality_ratio"]
