"""Success rates over many CounterFact records at once: the damage curves' efficacy and specificity.

    success(model, records, "rewrite")       # ES: the share of rewrite prompts preferring target_new
    success(model, records, "neighborhood")  # NS: the share of neighbourhood prompts preferring target_true

Both read teacher-forced probabilities through the shared-prompt scorer (`factlocate.scoring`), so
a record's two targets share one pass over its prompt.
"""
from __future__ import annotations

from factlocate import scoring


def success(model, records, group: str) -> float | None:
    """Mean ES (group rewrite), or NS (group neighborhood) over records; None for no prompts."""
    if group == "rewrite":
        prompts = [r.rewrite_prompt for r in records]
        pairs = [[r.target_new, r.target_true] for r in records]
    else:
        prompts = [p for r in records for p in r.neighborhood_prompts]
        pairs = [[r.target_new, r.target_true] for r in records for _ in r.neighborhood_prompts]
    if not prompts:
        return None
    nll = scoring.shared_prompt_nll(model, prompts, pairs)
    wins = [(new < true) if group == "rewrite" else (true < new) for new, true in nll]
    return sum(wins) / len(wins)
