"""Benchmark: seconds per case of the CounterFact evaluation, with and without generation.

    python -m tools.bench --only evaluation

Times `runner.evaluate` (the metrics of one case on the current weights; an edit's
own time is the editor's benchmark) on the embedded smollm2-135m, a cached pre-edit
read, and the scoring batch against scoring each prompt on its own.
"""
from __future__ import annotations

import os
import tempfile
import time
from pathlib import Path

MODEL = "smollm2-135m"
N_CASES = 3
N_GEN_CASES = 1


def _per_case(fn, records) -> float:
    t = time.perf_counter()
    for r in records:
        fn(r)
    return (time.perf_counter() - t) / len(records)


def _greedy_side_by_side(model, records) -> tuple[float, float, int, int]:
    """CounterFact's generated success per case and side, batched (`record_scores`) against the plain path (each
    prompt alone, full forwards), alternated case by case after a warm-up: (batched s, plain s, answers that
    differ, answers)."""
    from factlocate.metrics import counterfact as cf_metrics, generated

    def plain(r):
        return [generated.greedy_answer(model, p) for group in cf_metrics.prompts_of(r).values() for p in group]

    def batched(r):
        s = generated.record_scores(model, r)
        return [*s["rewrite"]["answers"], *s["paraphrase"]["answers"], *s["neighborhood"]["answers"]]

    batched(records[0])  # warm-up, and the reuse checks
    times = {"batched": 0.0, "plain": 0.0}
    differ = total = 0
    for i, r in enumerate(records):
        answers = {}
        order = (("batched", batched), ("plain", plain))
        for name, fn in order[::-1] if i % 2 else order:
            t = time.perf_counter()
            answers[name] = fn(r)
            times[name] += time.perf_counter() - t
        differ += sum(a != b for a, b in zip(answers["batched"], answers["plain"], strict=True))
        total += len(answers["plain"])
    return times["batched"] / len(records), times["plain"] / len(records), differ, total


def _columns(model, ds, records) -> tuple[list[tuple[str, float]], str]:
    """The columns past teacher forcing, per case and per side (a rescore pays each twice: unedited and edited),
    and a line on batched greedy decoding against the plain path."""
    from factlocate import datasets
    from factlocate.metrics import generated, portability

    zsre = datasets.load("zsre-sample").select(0, N_CASES)
    hops = [portability.OneHop("What famous food is associated with the city where Spike Hughes originates from?",
                               "Philly cheesesteak", "")] * N_CASES
    fast, slow, differ, total = _greedy_side_by_side(model, records)
    rows = [
        ("generated success, CounterFact (rewrite, paraphrases, neighbourhood; greedy, 16 tokens), one side",
         fast),
        ("the same, the plain path (each prompt alone, a full forward per token)", slow),
        ("generated success, zsRE (question, paraphrase, locality), one side",
         _per_case(lambda r: generated.record_scores(model, r), zsre)),
        ("portability (one one-hop question: teacher-forced + greedy), one side",
         _per_case(lambda h: portability.score(model, h), hops)),
    ]
    note = (f"Greedy decoding batched (one left-padded batch per case, the KV cache reused where checked) is "
            f"{slow / fast:.1f}x as fast as the plain path over {len(records)} cases, alternated after a warm-up; "
            f"{differ} of {total} answers differ.")
    return rows, note


def run() -> str:
    from factlocate import datasets, scoring
    from factlocate.evaluation import runner
    from factlocate.metrics import counterfact as cf_metrics
    from factlocate.models import load_model

    os.environ.setdefault("FACTLOCATE_OFFLINE", "1")
    model = load_model(MODEL)
    ds = datasets.load("counterfact-sample")
    records = ds.select(0, N_CASES)
    no_gen, gen = runner.EvalParams(generation=False), runner.EvalParams(generation=True)
    runner.evaluate(model, records[0], no_gen)  # warm-up

    def unbatched(r):  # every (prompt, target) pair in its own forward pass
        for group in cf_metrics.prompts_of(r).values():
            for p in group:
                for t in (r.target_new, r.target_true):
                    scoring.target_nll(model, [p], [t])

    def one_batch(r):
        groups = cf_metrics.prompts_of(r).values()
        prompts = [p for g in groups for p in g for _ in (0, 1)]
        return scoring.target_nll(model, prompts, [r.target_new, r.target_true] * (len(prompts) // 2))

    def difference(r) -> float:  # shared-prompt scoring against one padded batch of every pair
        shared = [d[k] for g in cf_metrics.prompt_nlls(model, r).values() for d in g
                  for k in ("target_new", "target_true")]
        return max(abs(a - b) for a, b in zip(shared, one_batch(r).tolist(), strict=True))

    generated = {}

    def with_generation(r):
        generated[r.case_id] = runner.evaluate(model, r, gen)

    rows = [
        ("probabilities (ES..NM), each prompt once, its KV cache shared by both targets",
         _per_case(lambda r: runner.evaluate(model, r, no_gen), records)),
        ("probabilities, one padded batch per case", _per_case(one_batch, records)),
        ("probabilities, one forward per prompt and target", _per_case(unbatched, records[:1])),
        ("probabilities + generation (GE, 10 x 100 tokens, batched)",
         _per_case(with_generation, records[:N_GEN_CASES])),
    ]
    columns, greedy_note = _columns(model, ds, records)
    rows += columns
    with tempfile.TemporaryDirectory() as tmp:
        cache = runner.PreCache(MODEL, ds, gen, root=Path(tmp))
        for r in records[:N_GEN_CASES]:
            cache.put(r, generated[r.case_id])
        rows.append(("pre-edit metrics from the cache", _per_case(cache.get, records[:N_GEN_CASES])))
    worst = max(difference(r) for r in records)
    lines = [
        f"## Evaluation ({MODEL}, CounterFact sample, seconds per case)",
        "",
        "| step | s/case |",
        "|---|---:|",
        *(f"| {name} | {sec:.3f} |" for name, sec in rows),
        "",
        "A full case costs edit + post + pre; the pre-edit metrics are computed once per model and "
        "dataset and then read from the cache. The columns past teacher forcing (generated success, portability) "
        "are paid on both sides of every case they score, unedited and edited.",
        "",
        f"Largest |NLL difference| between the shared-prompt scoring and one padded batch of every "
        f"(prompt, target) pair over these {len(records)} cases: {worst:.1e}.",
        "",
        greedy_note,
    ]
    return "\n".join(lines)
