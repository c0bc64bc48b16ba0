"""Sequential editing: damage as edits accumulate (efficacy, specificity, perplexity, weight norm, retention,
generated efficacy, portability)."""
from __future__ import annotations

import plotly.graph_objects as go
from plotly.subplots import make_subplots

from factlocate.evaluation.sequential.report import norm_totals


def sequential_curves(runs: list[dict]) -> go.Figure:
    """Efficacy, specificity, perplexity, total edited-matrix norm, known-fact retention, generated efficacy and
    portability against the edits (a run logged before a measure existed has no points for it)."""
    panels = [("batch_efficacy", "efficacy of the latest batch"), ("first_batch_efficacy", "efficacy kept on batch 1"),
              ("neighbourhood", "neighbourhood success (probe)"), ("perplexity", "WikiText-2 perplexity"),
              ("norm", "Frobenius norm of the edited matrices"), ("retention", "known facts answered as before"),
              ("generated_batch_efficacy", "greedy answer = new target, latest batch"),
              ("portability", "one-hop questions of batch 1 (greedy)")]
    # Rows of three: one row of eight is wider than most screens.
    fig = make_subplots(rows=3, cols=3, subplot_titles=[t for _, t in panels], horizontal_spacing=0.08,
                        vertical_spacing=0.1)
    for j, run in enumerate(runs):
        logs = run["logs"]
        x = [log["edits"] for log in logs]
        color = f"hsl({(j * 97) % 360},60%,45%)"
        for i, (key, _) in enumerate(panels):
            row, col = divmod(i, 3)
            if key == "norm":
                y = norm_totals(logs)
            elif key == "portability":
                y = [(log.get("first_batch_portability") or {}).get("generated") for log in logs]
            else:
                y = [log.get(key) for log in logs]
            fig.add_trace(go.Scatter(x=x, y=y, mode="lines+markers", name=run["name"], legendgroup=run["name"],
                                     showlegend=i == 0, line=dict(color=color)), row=row + 1, col=col + 1)
            fig.update_xaxes(title_text="edits", row=row + 1, col=col + 1)
            if key not in ("perplexity", "norm"):  # rates on one scale, so that a 0.98-1.00 wobble looks like one
                fig.update_yaxes(range=[0, 1.05], row=row + 1, col=col + 1)
            else:  # logarithmic: a collapsed run (perplexity in the thousands) must not flatten the others
                fig.update_yaxes(type="log", row=row + 1, col=col + 1)
    fig.update_layout(title="Sequential editing: damage as edits accumulate", height=1080, width=1150,
                      legend=dict(orientation="h", x=0, y=-0.12, xanchor="left", yanchor="top"))
    return fig
