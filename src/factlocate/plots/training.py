"""Training curves of the trained editors (MEND, KE)."""
from __future__ import annotations

import numpy as np
import plotly.graph_objects as go
from plotly.subplots import make_subplots


def training_curves(logs: dict[str, dict], smooth: int = 25) -> go.Figure:
    """Edit loss, locality KL and validation loss against the step, one line per trained editor.

    `logs` maps a name to a `log.json` of `factlocate train-editor`; training curves are running means
    over `smooth` steps, validation points are as measured."""
    titles = ("edit loss (NLL of the target)", "locality KL", "validation loss")
    fig = make_subplots(rows=1, cols=3, subplot_titles=titles)
    palette = ["#1f77b4", "#d62728", "#2ca02c", "#9467bd", "#ff7f0e", "#8c564b"]
    for i, (name, log) in enumerate(logs.items()):
        color = palette[i % len(palette)]
        train = log["log"]["train"]
        steps = np.array([r["step"] for r in train])
        for col, key in ((1, "edit"), (2, "loc")):
            y = np.array([r[key] for r in train], dtype=float)
            mean = np.convolve(y, np.ones(smooth) / smooth, mode="valid") if len(y) >= smooth else y
            fig.add_trace(go.Scatter(x=steps[len(steps) - len(mean):], y=mean, name=name, legendgroup=name,
                                     line=dict(color=color), showlegend=col == 1), row=1, col=col)
        val = log["log"]["val"]
        fig.add_trace(go.Scatter(x=[r["step"] for r in val], y=[r["loss"] for r in val], name=name,
                                 legendgroup=name, mode="lines+markers", line=dict(color=color), showlegend=False),
                      row=1, col=3)
    for col in (1, 2, 3):
        fig.update_xaxes(title_text="step", row=1, col=col)
    fig.update_layout(title=f"Hypernetwork training (training curves: running mean over {smooth} steps)",
                      height=380, width=1300)
    return fig
