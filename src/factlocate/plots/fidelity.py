"""Localisation methods compared: two fact-set runs' AIE curves (`factlocate trace-compare`)."""
from __future__ import annotations

import numpy as np
import plotly.graph_objects as go
from plotly.subplots import make_subplots

from factlocate.plots.common import LEGEND_BELOW, panels_width


def aie_curves(exact_summary: dict, other_summary: dict, labels=("exact", "other")) -> go.Figure:
    """AIE at the last subject token and the last token, both runs, one panel per kind."""
    kinds = [k for k in exact_summary["kinds"] if k in other_summary["kinds"]]
    fig = make_subplots(rows=1, cols=len(kinds), subplot_titles=kinds, horizontal_spacing=0.06)
    styles = {"last_subject": "#d62728", "last": "#2ca02c"}
    for i, kind in enumerate(kinds):
        for label, summary, dash in ((labels[0], exact_summary, "solid"), (labels[1], other_summary, "dot")):
            buckets = summary["kinds"].get(kind, {}).get("buckets", {})
            for b, color in styles.items():
                if b not in buckets:
                    continue
                y = np.asarray(buckets[b]["aie"])
                fig.add_trace(go.Scatter(x=list(range(len(y))), y=y, name=f"{label}: {b.replace('_', ' ')}",
                                         line=dict(color=color, dash=dash), legendgroup=f"{label}{b}",
                                         showlegend=i == 0), row=1, col=i + 1)
        fig.update_xaxes(title_text="layer", row=1, col=i + 1)
    fig.update_yaxes(title_text="AIE", row=1, col=1)
    fig.update_layout(title=f"AIE curves: {labels[0]} (solid) and {labels[1]} (dotted)", height=420,
                      width=panels_width(len(kinds)), legend=LEGEND_BELOW)
    return fig
