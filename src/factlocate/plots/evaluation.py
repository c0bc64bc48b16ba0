"""Evaluation figures: per-case metric distributions (Appendix Figure 24 style) and the layer sweep's heatmaps
(Figure 5)."""
from __future__ import annotations

import plotly.graph_objects as go
from plotly.subplots import make_subplots

from factlocate.editors.keyvalue.keys import FACT_TOKENS
from factlocate.evaluation.sweep import METRICS as SWEEP_METRICS
from factlocate.metrics import summary as summ


def distributions(kind: str, values: dict[str, list[dict]]) -> go.Figure:
    """Histograms of every per-case metric, one trace per row (Appendix Figure 24 style)."""
    metrics = [c for c in summ.COLUMNS[kind] if c != "S"]
    metrics = [m for m in metrics if any(s.get(m) is not None for v in values.values() for s in v)]
    cols = 4
    nrows = (len(metrics) + cols - 1) // cols
    fig = make_subplots(rows=nrows, cols=cols, subplot_titles=metrics)
    for i, m in enumerate(metrics):
        for j, (label, scores) in enumerate(values.items()):
            xs = [s[m] * 100 for s in scores if s.get(m) is not None]
            fig.add_trace(
                go.Histogram(x=xs, name=label, legendgroup=label, showlegend=i == 0, opacity=0.6,
                             marker_color=f"hsl({(j * 67) % 360},60%,45%)"),
                row=i // cols + 1, col=i % cols + 1,
            )
    fig.update_layout(barmode="overlay", title="Per-case metric distributions (x100)", height=320 * nrows)
    return fig


def sweep_heatmaps(grid, tokens, layers, editor) -> go.Figure:
    """ES, PS, NS and S heatmaps, two by two (one colour scale, 0-100): key-token rule by edited layer."""
    fig = make_subplots(rows=2, cols=2, subplot_titles=SWEEP_METRICS, shared_yaxes=True,
                        horizontal_spacing=0.04, vertical_spacing=0.16)
    for i, m in enumerate(SWEEP_METRICS):
        row, col = divmod(i, 2)
        z = [[grid[m].get((t, layer)) for layer in layers] for t in tokens]  # a cell not run is blank
        fig.add_trace(
            go.Heatmap(z=z, x=layers, y=[FACT_TOKENS[t] for t in tokens], zmin=0, zmax=100,
                       colorscale="Purples", showscale=i == 0, colorbar=dict(title="x100", len=0.9),
                       hovertemplate="layer %{x}<br>%{y}<br>%{z:.1f}<extra></extra>"),
            row=row + 1, col=col + 1,
        )
        fig.update_xaxes(title_text="edited layer", row=row + 1, col=col + 1)
    panel = max(300, 20 * len(layers))
    fig.update_layout(title=f"{editor}: post-edit ES, PS, NS and S by edited layer and key token",
                      height=620, width=2 * panel + 300)
    return fig
