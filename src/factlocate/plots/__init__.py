"""Every figure factlocate draws, one module per kind of result; each function returns a plotly Figure.

    trace        causal traces: per-fact heatmaps, averaged heatmaps, AIE lines, severed-path bars
    fidelity     two fact-set runs' AIE curves (trace-compare)
    evaluation   per-case metric distributions; the layer sweep's heatmaps (Figure 5)
    sequential   damage curves as edits accumulate
    training     the trained editors' training curves
    common       panel sizes, the legend's place, `save_html` (standalone, offline HTML)

The names below are the package's public face for the figures most scripts use.
"""
from factlocate.plots.common import save_html
from factlocate.plots.trace import average_heatmaps, average_lines, severed_bars, trace_heatmap, trace_heatmaps
from factlocate.plots.training import training_curves

__all__ = ["average_heatmaps", "average_lines", "save_html", "severed_bars", "trace_heatmap", "trace_heatmaps",
           "training_curves"]
