"""The localisation-vs-editing figure (Hase et al.'s Figure 3 style): edit outcome against tracing effect."""
from __future__ import annotations

import plotly.graph_objects as go
from plotly.subplots import make_subplots


def scatter(rows: list[dict], effects: tuple[str, ...], outcomes: tuple[str, ...], title: str) -> go.Figure:
    """One panel per (outcome, tracing effect); one point per (fact, layer), coloured by layer."""
    fig = make_subplots(rows=len(outcomes), cols=len(effects),
                        subplot_titles=[f"{o} vs {e}" for o in outcomes for e in effects])
    layers = sorted({r["layer"] for r in rows})
    for i, o in enumerate(outcomes):
        for j, e in enumerate(effects):
            fig.add_trace(go.Scatter(
                x=[r[e] for r in rows], y=[r[o] for r in rows], mode="markers", showlegend=i == j == 0,
                marker=dict(color=[r["layer"] for r in rows], colorscale="Viridis", cmin=layers[0], cmax=layers[-1],
                            size=5, showscale=i == j == 0, colorbar=dict(title="layer")),
                text=[f"case {r['case_id']}, layer {r['layer']}" for r in rows], name="(fact, layer)"),
                row=i + 1, col=j + 1)
            fig.update_xaxes(title_text=f"tracing effect ({e})", row=i + 1, col=j + 1)
            fig.update_yaxes(title_text=o, row=i + 1, col=j + 1)
    fig.update_layout(title=title, height=260 * len(outcomes), width=330 * len(effects) + 120)
    return fig
