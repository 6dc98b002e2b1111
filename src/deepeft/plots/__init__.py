"""Figures (matplotlib, object-oriented API with the Agg canvas: no pyplot state is touched)."""

from .activations import BOOK_FIG_2_2, plot_activations

__all__ = ["BOOK_FIG_2_2", "plot_activations"]
