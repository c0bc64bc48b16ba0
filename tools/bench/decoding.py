"""Benchmark: decoding with `control.head_logits` against the model's own head, on both embedded models.

    python -m tools.bench --only decoding

Each decoding step needs the logits of a few rows (10 sampled GE prompts, 13 greedy prompts of a case). The
model's head computes them as `h @ W^T`, for which MKL's sgemm takes a slow kernel at 8-16 rows against a large
vocabulary; the decoding head computes `W @ h^T`. Both sides decode the same CounterFact cases, alternated case
by case after a warm-up, and their texts are compared.
"""
from __future__ import annotations

import os
import time

MODELS = ("gemma-3-270m", "smollm2-135m")
N_CASES = 3


def _side_by_side(model, records, work) -> tuple[float, float, int, int]:
    """(seconds per case with the decoding head, with the model's head, outputs that differ, outputs)."""
    from factlocate.identity import state

    def run(head: bool, r):
        state(model).checks["decoding head"] = head
        return work(r)

    run(True, records[0]), run(False, records[0])  # warm-up
    times, differ, total = {True: 0.0, False: 0.0}, 0, 0
    for i, r in enumerate(records):
        out = {}
        for head in ((True, False) if i % 2 == 0 else (False, True)):
            t = time.perf_counter()
            out[head] = run(head, r)
            times[head] += time.perf_counter() - t
        differ += sum(a != b for a, b in zip(out[True], out[False], strict=True))
        total += len(out[False])
    return times[True] / len(records), times[False] / len(records), differ, total


def run() -> str:
    from factlocate import datasets
    from factlocate.generate import head_logits_verified
    from factlocate.metrics import counterfact as cf_metrics, generated
    from factlocate.models import load_model

    os.environ.setdefault("FACTLOCATE_OFFLINE", "1")
    records = datasets.load("counterfact-sample").select(0, N_CASES)

    def sampled(model):
        return lambda r: cf_metrics.generate_texts(model, r.generation_prompts, 100, 5, r.case_id)

    def greedy(model):
        def answers(r):
            s = generated.record_scores(model, r)
            return [*s["rewrite"]["answers"], *s["paraphrase"]["answers"], *s["neighborhood"]["answers"]]
        return answers

    lines = ["## Decoding: the decoding head against the model's own (seconds per case)", "",
             "| model | work | decoding head s | model's head s | ratio | outputs that differ |",
             "|---|---|---:|---:|---:|---:|"]
    for name in MODELS:
        model = load_model(name)
        verified = head_logits_verified(model)
        for label, work in (("GE generation (10 prompts x 100 tokens, top-5 sampled)", sampled),
                            ("generated success (13 prompts, greedy)", greedy)):
            fast, slow, differ, total = _side_by_side(model, records, work(model))
            lines.append(f"| {name} | {label} | {fast:.2f} | {slow:.2f} | {slow / fast:.2f}x | {differ} of {total} |")
        lines.append(f"| {name} | check (`head_logits_verified`) | {'passed' if verified else 'FAILED'} | | | |")
        del model
    lines += ["", f"{N_CASES} CounterFact sample cases per model, alternated case by case after a warm-up on the "
              "first. The two heads differ by float rounding only; a sampled text can differ where two tokens "
              "nearly tie."]
    return "\n".join(lines)
