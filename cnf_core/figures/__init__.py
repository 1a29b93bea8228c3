"""Plotly figure builders: pure functions from numbers to `go.Figure`, one module per page topic.

Nothing here calls Streamlit, so tests can inspect every figure the app shows.
"""

from .training import COLORS, density_figure, loss_figure, nfe_figure, scatter_figure

__all__ = ["COLORS", "scatter_figure", "loss_figure", "nfe_figure", "density_figure"]
