"""Causal tracing: locate the states that carry a fact (Meng et al. 2022, Section 2).

    from factlocate.tracing import trace
    result = trace(model, prompt, subject, kind="hidden")   # -> TraceResult

Modules: `corruption` (the `Corruption` contract and registry), `noise` (noise specs, the
`noise` corruption), `swap` (STR, the `str` corruption), `core` (`RunSpec`, `GridSpec`, prompt
preparation), `naive` (one forward per site, the original algorithm), `batched` (the default
exact engine), `atp` and `verify` (attribution patching, screened or budgeted), `trace` (the
entry points), `result` (`TraceResult`), `facts` (fact-set runs, token buckets, AIE/ATE),
`fidelity` (two fact-set runs compared), `layer_range` (MEMIT's range from traces).
"""
from factlocate.tracing.core import KINDS, GridSpec, RunSpec, window_layers
from factlocate.tracing.noise import Noise, parse_noise, resolve_noise
from factlocate.tracing.result import TraceResult
from factlocate.tracing.trace import trace, trace_kinds

__all__ = ["KINDS", "GridSpec", "Noise", "RunSpec", "TraceResult", "parse_noise", "resolve_noise", "trace",
           "trace_kinds", "window_layers"]
