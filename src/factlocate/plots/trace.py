"""Causal traces: per-fact heatmaps, averaged heatmaps, lines with CI bands, and severed-path bars."""
from __future__ import annotations

import numpy as np
import plotly.graph_objects as go
from plotly.subplots import make_subplots

from factlocate.plots.common import LEGEND_BELOW, panels_width
from factlocate.tracing.facts import BUCKETS
from factlocate.tracing.result import TraceResult

COLORSCALES = {"hidden": "Purples", "mlp": "Greens", "attn": "Reds"}
TITLES = {"hidden": "single restored layer", "mlp": "restored MLP window", "attn": "restored attention window"}
BUCKET_LABELS = {
    "first_subject": "First subject token", "middle_subject": "Middle subject tokens",
    "last_subject": "Last subject token", "first_subsequent": "First subsequent token",
    "further": "Further tokens", "last": "Last token",
}


def _labels(r: TraceResult) -> list[str]:
    b, e = r.subject_range
    return [f"{r.input_tokens[t]!r}*" if b <= t < e else repr(r.input_tokens[t]) for t in r.positions]


def _metric_label(r: TraceResult) -> str:
    answer = r.answer.strip()
    return {"prob": f"p({answer})", "logprob": f"log p({answer})", "logit_diff": f"logit diff ({answer})"}[r.metric]


def _under(fig: go.Figure, panel: int, title: str = "") -> dict:
    """A horizontal colour bar under subplot `panel` (0-based), as wide as it: none overlaps a neighbour."""
    axis = fig.layout["xaxis" if panel == 0 else f"xaxis{panel + 1}"]
    lo, hi = axis.domain
    return dict(orientation="h", x=(lo + hi) / 2, xanchor="center", y=-0.3, yanchor="top", len=(hi - lo) * 0.9,
                thickness=12, title=dict(text=title, side="top"))


def _heatmap(r: TraceResult, showscale: bool = True, colorbar: dict | None = None) -> go.Heatmap:
    return go.Heatmap(
        z=np.asarray(r.scores), x=list(range(r.n_layers)), y=_labels(r),
        colorscale=COLORSCALES.get(r.kind, "Purples"), zmin=r.low_score,
        colorbar=(colorbar or dict(title=_metric_label(r), len=0.9)) if showscale else None,
        showscale=showscale,
        hovertemplate=(f"token %{{y}}<br>layer %{{x}}<br>{_metric_label(r)} = %{{z:.4f}}"
                       f"<br>low {r.low_score:.4f}, high {r.high_score:.4f}<extra></extra>"),
    )


def _exact_markers(r: TraceResult, showlegend: bool = True) -> go.Scatter | None:
    """Dots on the exactly computed cells of a grid that also holds AtP estimates (None if all exact)."""
    mask = r.exact_mask
    if mask.all():
        return None
    rows, cols = mask.nonzero()
    labels = _labels(r)
    return go.Scatter(x=cols.tolist(), y=[labels[i] for i in rows], mode="markers", name="exact (verified)",
                      marker=dict(symbol="circle-open", size=7, color="black"), showlegend=showlegend,
                      hoverinfo="skip")


def _method_note(r: TraceResult) -> str:
    if r.method == "exact":
        return ""
    return " — AtP estimates" + ("; circled cells exact" if r.method in ("atp+verify", "atp+budget") else "")


def trace_heatmap(r: TraceResult) -> go.Figure:
    """One trace: tokens (subject marked *) by layers, coloured by the readout after restoring."""
    title = f"Restoring {r.kind}" + (f" with {r.sever} severed" if r.sever else "") + _method_note(r)
    fig = go.Figure(_heatmap(r))
    markers = _exact_markers(r)
    if markers is not None:
        fig.add_trace(markers)
    fig.update_layout(title=f"{title} ({TITLES[r.kind]}); low {r.low_score:.3f}, high {r.high_score:.3f}",
                      xaxis_title=f"layer ({r.model})", yaxis_autorange="reversed", height=150 + 24 * len(r.positions))
    return fig


def trace_heatmaps(results: dict[str, TraceResult]) -> go.Figure:
    """Several kinds of one prompt side by side (the paper's Figure 1)."""
    kinds = list(results)
    fig = make_subplots(rows=1, cols=len(kinds), shared_yaxes=True, horizontal_spacing=0.08,
                        subplot_titles=[f"{k}: {TITLES[k]}" if k in TITLES else k for k in kinds])
    for i, k in enumerate(kinds):
        fig.add_trace(_heatmap(results[k], colorbar=_under(fig, i, _metric_label(results[k]))), row=1, col=i + 1)
        markers = _exact_markers(results[k], showlegend=i == 0)
        if markers is not None:
            fig.add_trace(markers, row=1, col=i + 1)
        fig.update_xaxes(title_text="layer", row=1, col=i + 1)
    r = results[kinds[0]]
    fig.update_yaxes(autorange="reversed")
    fig.update_layout(
        title=dict(text=f"{r.prompt!r} -> {r.answer!r}<br><sub>{r.metric} {r.high_score:.3f} clean, "
                        f"{r.low_score:.3f} corrupted; {r.model}{_method_note(r)}</sub>", font_size=15),
        height=290 + 26 * len(r.positions), width=panels_width(len(kinds)), margin=dict(b=140, t=120),
    )
    return fig


def average_heatmaps(summary: dict) -> go.Figure:
    """AIE by token bucket and layer for each kind (the paper's Figure 2, top)."""
    kinds = list(summary["kinds"])
    fig = make_subplots(rows=1, cols=len(kinds), shared_yaxes=True, horizontal_spacing=0.08,
                        subplot_titles=[f"AIE, {k} (n={summary['kinds'][k]['n']})" for k in kinds])
    for i, k in enumerate(kinds):
        buckets = summary["kinds"][k]["buckets"]
        names = [b for b in BUCKETS if b in buckets]
        z = np.stack([np.asarray(buckets[b]["aie"]) for b in names])
        fig.add_trace(go.Heatmap(z=z, y=[BUCKET_LABELS[b] for b in names], x=list(range(z.shape[1])),
                                 colorscale=COLORSCALES.get(k, "Purples"),
                                 colorbar=_under(fig, i, "AIE"),
                                 hovertemplate="%{y}<br>layer %{x}<br>AIE %{z:.4f}<extra></extra>"),
                      row=1, col=i + 1)
        fig.update_xaxes(title_text="layer", row=1, col=i + 1)
    fig.update_yaxes(autorange="reversed")
    fig.update_layout(title="Average indirect effect of restoring a state", height=470,
                      width=panels_width(len(kinds)),
                      margin=dict(b=140))
    return fig


def average_lines(summary: dict, buckets=("last_subject", "last")) -> go.Figure:
    """AIE over layers with 95% CI bands, one panel per kind (the paper's Figure 2, bottom)."""
    kinds = list(summary["kinds"])
    fig = make_subplots(rows=1, cols=len(kinds), subplot_titles=[f"{k} (ATE {summary['kinds'][k]['ate']:.3f})" for k in kinds])
    colors = {"first_subject": "#1f77b4", "middle_subject": "#9467bd", "last_subject": "#d62728",
              "first_subsequent": "#8c564b", "further": "#7f7f7f", "last": "#2ca02c"}
    for i, k in enumerate(kinds):
        for b in buckets:
            v = summary["kinds"][k]["buckets"].get(b)
            if v is None:
                continue
            aie, ci = np.asarray(v["aie"]), np.asarray(v["ci95"])
            x = list(range(len(aie)))
            fig.add_trace(go.Scatter(x=x + x[::-1], y=list(aie + ci) + list((aie - ci)[::-1]), fill="toself",
                                     line=dict(width=0), fillcolor=colors[b], opacity=0.2, showlegend=False,
                                     hoverinfo="skip"), row=1, col=i + 1)
            fig.add_trace(go.Scatter(x=x, y=aie, name=BUCKET_LABELS[b], line=dict(color=colors[b]),
                                     legendgroup=b, showlegend=i == 0), row=1, col=i + 1)
        fig.update_xaxes(title_text="layer", row=1, col=i + 1)
    fig.update_yaxes(title_text="AIE", row=1, col=1)
    fig.update_layout(title="Average indirect effect with 95% CI", height=420, width=panels_width(len(kinds)),
                      legend=LEGEND_BELOW)
    return fig


def severed_bars(summary: dict) -> go.Figure:
    """AIE of the hidden state at the last subject token, with and without the severed path (Figure 3)."""
    sev = summary["severed"]
    x = list(range(len(sev["aie_unsevered"])))

    def error(ci, color):  # thin whiskers in the bar's own colour, so 3 x n_layers of them stay readable
        return dict(type="data", array=ci, color=color, thickness=1, width=1)

    bars = [go.Bar(x=x, y=sev["aie_unsevered"], name="effect of single state",
                   error_y=error(sev["ci95_unsevered"], "#6a3d9a"), marker_color="#9467bd")]
    colors = {"mlp": "#2ca02c", "attn": "#d62728"}
    for kind, v in sev["by_kind"].items():
        bars.append(go.Bar(x=x, y=v["aie"], name=f"with {kind} severed", error_y=error(v["ci95"], colors.get(kind)),
                           marker_color=colors.get(kind)))
    severed = " and ".join(f"{k} severed" for k in sev["by_kind"])
    fig = go.Figure(bars)
    fig.update_layout(barmode="group", title=f"Last subject token: hidden state alone and with {severed} "
                      f"(n={sev['n']})", xaxis_title="layer", yaxis_title="AIE", height=400,
                      width=min(1300, 500 + 30 * len(x)), legend=LEGEND_BELOW)
    return fig
