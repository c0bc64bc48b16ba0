"""What every figure shares: panel sizes, the legend's place, and writing standalone HTML."""
from __future__ import annotations

from pathlib import Path

import plotly.graph_objects as go

from factlocate.io import write_text

PANEL_WIDTH = 390  # px per panel of a multi-panel figure: three panels and a margin fit the report's 1,400-px column
LEGEND_BELOW = dict(orientation="h", x=0, y=-0.28)  # a horizontal legend under the x-axis titles


def panels_width(n: int) -> int:
    """Width in px of a figure with `n` panels side by side (PANEL_WIDTH each, plus the y-axis margin)."""
    return PANEL_WIDTH * n + 150


def save_html(fig: go.Figure | list[go.Figure], path: str | Path) -> Path:
    """Write one standalone HTML file (plotly.js inlined, works offline) with one or more figures."""
    figs = fig if isinstance(fig, list) else [fig]
    parts = [f.to_html(full_html=False, include_plotlyjs=(i == 0)) for i, f in enumerate(figs)]
    html = "<!DOCTYPE html><html><head><meta charset='utf-8'></head><body>\n" + "\n".join(parts) + "\n</body></html>\n"
    return write_text(path, html)
