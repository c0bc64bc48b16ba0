"""Benchmark: causal tracing, naive (one forward per site) versus batched, on the embedded models.

    python -m tools.bench --only trace

For each model and kind: seconds per prompt for a full grid (every token x
every layer, 10 samples, s3 noise, window 10), the speed-up, and the largest
|score difference| between the two engines. The last row per model is the full
three-kind trace (the batched engine packs all three grids into shared batches),
timed after a full-size warm-up, once before and once after the naive runs
(both in parentheses; their mean is used).
Set FACTLOCATE_BENCH_MODELS to a comma-separated list to bench other models.
"""
from __future__ import annotations

import os
import time

import numpy as np

PROMPT, SUBJECT = "The Eiffel Tower is located in the city of", "The Eiffel Tower"
KINDS = ("hidden", "mlp", "attn")


def _bench_model(name: str) -> list[str]:
    from factlocate import load_model
    from factlocate.tracing import resolve_noise, trace

    model = load_model(name)
    noise = resolve_noise(model, "s3")
    _timed_all(model, noise)  # warm-up at full size: first-touch allocations are not the engine's cost
    # The full batched trace runs before and after the naive runs; their mean is compared with the naive
    # sum, so that a machine whose speed drifts during the minutes of naive runs biases neither side.
    before_s, _ = _timed_all(model, noise)
    rows, naive_total, naive_grids = [], 0.0, {}
    n_tokens = None
    for kind in KINDS:
        t0 = time.perf_counter()
        slow = trace(model, PROMPT, SUBJECT, kind=kind, noise=noise, engine="naive")
        t_naive = time.perf_counter() - t0
        t0 = time.perf_counter()
        fast = trace(model, PROMPT, SUBJECT, kind=kind, noise=noise)
        t_fast = time.perf_counter() - t0
        diff = float(np.abs(fast.scores - slow.scores).max())
        naive_total += t_naive
        naive_grids[kind] = slow.scores
        n_tokens = len(fast.input_ids)
        rows.append(f"| {name} | {kind} | {n_tokens} x {fast.n_layers} | {t_naive:.1f} | {t_fast:.1f} | "
                    f"{t_naive / t_fast:.1f}x | {diff:.1e} |")
    after_s, fast_all = _timed_all(model, noise)
    seconds = (before_s + after_s) / 2
    diff = max(float(np.abs(fast_all[k].scores - naive_grids[k]).max()) for k in KINDS)
    rows.append(f"| {name} | **all three** | {n_tokens} x {fast_all['hidden'].n_layers} x 3 | {naive_total:.1f} | "
                f"{seconds:.1f} ({before_s:.1f}, {after_s:.1f}) | **{naive_total / seconds:.1f}x** | "
                f"{diff:.1e} |")
    return rows


def _timed_all(model, noise):
    """(seconds, results) of one full three-kind batched trace."""
    from factlocate.tracing import RunSpec, trace_kinds

    t0 = time.perf_counter()
    result = trace_kinds(model, PROMPT, SUBJECT, KINDS, RunSpec(), noise=noise)
    return time.perf_counter() - t0, result


def run() -> str:
    models = os.environ.get("FACTLOCATE_BENCH_MODELS", "smollm2-135m,gemma-3-270m").split(",")
    lines = [
        "## Causal tracing: naive vs batched engine",
        "",
        f"Prompt {PROMPT!r}, subject {SUBJECT!r}; 10 samples, noise s3, window 10; seconds per prompt.",
        "",
        "| model | kind | grid | naive s | batched s | speed-up | max abs diff |",
        "|---|---|---|---:|---:|---:|---:|",
    ]
    for name in models:
        lines += _bench_model(name.strip())
    return "\n".join(lines)


if __name__ == "__main__":
    print(run())
