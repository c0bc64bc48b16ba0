"""CounterFact metrics (ROME's Table 2): ES/EM, PS/PM, NS/NM, and generation GE/RS.

`prompt_nlls` scores both targets after every rewrite, paraphrase and neighbourhood
prompt, teacher-forced and length-normalised (`factlocate.scoring`); each prompt
runs once and its KV cache serves both targets.
`case_scores` turns them into one case's success and magnitude scores:

    ES = [NLL_true > NLL_new] on the rewrite prompt, EM = exp(-NLL_new) - exp(-NLL_true)
    PS, PM: the same, averaged over the paraphrase prompts
    NS = [NLL_true < NLL_new], NM = exp(-NLL_true) - exp(-NLL_new) over the neighbourhood prompts
"""
from __future__ import annotations

import math

from factlocate import scoring
from factlocate.datasets.records import CounterFactRecord

GROUPS = ("rewrite_prompts", "paraphrase_prompts", "neighborhood_prompts")


def prompts_of(record: CounterFactRecord) -> dict[str, list[str]]:
    return {
        "rewrite_prompts": [record.rewrite_prompt],
        "paraphrase_prompts": list(record.paraphrase_prompts),
        "neighborhood_prompts": list(record.neighborhood_prompts),
    }


def prompt_nlls(model, record: CounterFactRecord) -> dict[str, list[dict]]:
    """{"<group>_probs": [{"target_new": NLL, "target_true": NLL} per prompt]} (ROME's key names)."""
    groups = prompts_of(record)
    prompts = [p for group in groups.values() for p in group]
    nll = iter(scoring.shared_prompt_nll(model, prompts, [[record.target_new, record.target_true]] * len(prompts)))
    return {
        f"{key}_probs": [dict(zip(("target_new", "target_true"), next(nll))) for _ in group]
        for key, group in groups.items()
    }


def _mean(xs: list[float]) -> float | None:
    return sum(xs) / len(xs) if xs else None


def case_scores(nlls: dict[str, list[dict]]) -> dict[str, float | None]:
    """ES, EM, PS, PM, NS, NM of one case, as fractions (None for a group without prompts)."""
    out = {}
    for key, s, m in (("rewrite_prompts", "ES", "EM"), ("paraphrase_prompts", "PS", "PM")):
        rows = nlls[f"{key}_probs"]
        out[s] = _mean([float(r["target_true"] > r["target_new"]) for r in rows])
        out[m] = _mean([math.exp(-r["target_new"]) - math.exp(-r["target_true"]) for r in rows])
    rows = nlls["neighborhood_prompts_probs"]
    out["NS"] = _mean([float(r["target_true"] < r["target_new"]) for r in rows])
    out["NM"] = _mean([math.exp(-r["target_true"]) - math.exp(-r["target_new"]) for r in rows])
    return out


def generate_texts(model, prompts: list[str], max_length: int, top_k: int, seed: int) -> list[str]:
    """Seeded top-k samples (prompt included), cleaned as ROME's generate_fast does."""
    from factlocate.generate import generate

    return generate(model, list(prompts), max_length=max_length, top_k=top_k, seed=seed)


def generation_metrics(
    model, record: CounterFactRecord, max_length: int = 100, top_k: int = 5, seed: int = 0, reference=None
) -> dict:
    """GE (n-gram entropy) and RS (TF-IDF reference score, None if unavailable) of one case."""
    from factlocate.metrics.fluency import n_gram_entropy

    texts = generate_texts(model, record.generation_prompts, max_length, top_k, seed)
    rs = reference.score(texts, record.relation_id, record.target_new_id) if reference else None
    return {"ngram_entropy": n_gram_entropy(texts), "reference_score": rs, "text": texts}
