"""Benchmark: localisation by attribution patching against the exact batched engine.

    python -m tools.bench --only atp

Per embedded model, the Eiffel Tower prompt, 10 samples, s3 noise, window 10, every
token x layer of all three kinds: the exact batched trace, AtP, AtP with exact
verification of the top 10 sites per kind (`atp+verify`) and AtP with the default budget (a share of
cells per kind run exactly, then the climb around the best exact cells: `atp+budget`), timed in the order exact, atp, atp+verify, atp+budget,
atp+budget, atp+verify, atp, exact (the two runs of each averaged), after a warm-up.
Recall: how many of the exact top-5 cells per kind `atp` puts in its top 10, and how
many `atp+verify` and `atp+budget` return exactly. (This is one prompt; the recall of the
budgeted mode over fact sets is `tools/atp_budget.py`'s, in notes/atp.md.)
"""
from __future__ import annotations

import os
import time

import numpy as np

PROMPT, SUBJECT = "The Eiffel Tower is located in the city of", "The Eiffel Tower"
KINDS = ("hidden", "mlp", "attn")


def _timed(model, noise, **options):
    from factlocate.tracing import GridSpec, RunSpec, trace_kinds

    t = time.perf_counter()
    out = trace_kinds(model, PROMPT, SUBJECT, [GridSpec(k) for k in KINDS], RunSpec(**options), noise=noise)
    return time.perf_counter() - t, out


def _top(grid: np.ndarray, k: int) -> set:
    return set(np.argsort(-grid, axis=None)[:k].tolist())


def _bench_model(name: str) -> list[str]:
    from factlocate import load_model
    from factlocate.tracing import resolve_noise

    model = load_model(name)
    noise = resolve_noise(model, "s3")
    _timed(model, noise, method="atp")
    _timed(model, noise)  # warm-up
    times = {"exact": [], "atp": [], "atp+verify": [], "atp+budget": []}
    results = {}
    order = ("exact", "atp", "atp+verify", "atp+budget")
    for method in order + order[::-1]:
        seconds, results[method] = _timed(model, noise, method=method, top=10)
        times[method].append(seconds)
    exact_s, atp_s = np.mean(times["exact"]), np.mean(times["atp"])
    verify_s, budget_s = np.mean(times["atp+verify"]), np.mean(times["atp+budget"])
    recall_atp = recall_verify = recall_budget = 0
    for kind in KINDS:
        truth = _top(results["exact"][kind].scores, 5)
        recall_atp += len(truth & _top(results["atp"][kind].scores, 10))
        v, b = results["atp+verify"][kind], results["atp+budget"][kind]
        recall_verify += len(truth & set(np.flatnonzero(v.exact_mask).tolist()))
        recall_budget += len(truth & set(np.flatnonzero(b.exact_mask).tolist()))
    verified = sum(int(results["atp+verify"][k].exact_mask.sum()) for k in KINDS)
    budgeted = sum(int(results["atp+budget"][k].exact_mask.sum()) for k in KINDS)
    cells = sum(results["exact"][k].scores.size for k in KINDS)
    spec = results["atp+budget"][KINDS[0]].run
    share = ", ".join(f"{k} {spec.share(k):g}" for k in KINDS) + f"; climb {spec.refine}"
    diff = max(float(np.abs(results["atp+budget"][k].scores - results["exact"][k].scores)[
        results["atp+budget"][k].exact_mask].max()) for k in KINDS)
    return [
        f"| {name} | exact batched | {exact_s:.1f} | 1.0x | 15/15 | {cells}/{cells} |",
        f"| {name} | atp | {atp_s:.2f} | **{exact_s / atp_s:.0f}x** | {recall_atp}/15 in top 10 | 0/{cells} |",
        f"| {name} | atp+verify (K=10) | {verify_s:.1f} | **{exact_s / verify_s:.1f}x** | {recall_verify}/15 exact | "
        f"{verified}/{cells} |",
        f"| {name} | atp+budget ({share}) | {budget_s:.1f} | **{exact_s / budget_s:.1f}x** | {recall_budget}/15 "
        f"exact (max abs diff {diff:.1e}) | {budgeted}/{cells} |",
    ]


def run() -> str:
    models = os.environ.get("FACTLOCATE_BENCH_MODELS", "smollm2-135m,gemma-3-270m").split(",")
    lines = [
        "## Localisation: exact batched tracing against attribution patching",
        "",
        f"Prompt {PROMPT!r}, subject {SUBJECT!r}; 10 samples, noise s3, window 10; all three kinds; seconds per "
        "prompt (mean of two runs each, interleaved). Recall: the exact top-5 cells of each kind.",
        "",
        "| model | method | s/prompt | speed-up | exact top-5 recovered | cells run exactly |",
        "|---|---|---:|---:|---:|---:|",
    ]
    for name in models:
        lines += _bench_model(name.strip())
    return "\n".join(lines)
