"""Moved to :mod:`deepeft.plots.criticality` (all figures live in ``deepeft.plots``); this alias keeps old imports working."""

from ..plots.criticality import book_figures, plot_criticality_lines, plot_criticality_ratio

__all__ = ["book_figures", "plot_criticality_lines", "plot_criticality_ratio"]
