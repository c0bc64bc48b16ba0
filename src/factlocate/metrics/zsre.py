"""zsRE metrics (ROME's Table 1): per-token teacher-forced top-1 accuracy.

For target tokens t_1..t_n (of " " + answer), token i is correct when the argmax
after prompt + t_<i is t_i. Efficacy uses the question, paraphrase its rephrasing
(both against answers[0]); specificity uses `loc + "?"` against `loc_ans`.
Each case's score is the mean over its tokens.
"""
from __future__ import annotations

from factlocate import scoring
from factlocate.datasets.records import ZsreRecord


def token_correct(model, record: ZsreRecord) -> dict[str, list[bool]]:
    """{"<group>_correct": per-token correctness, concatenated over the group's prompts}."""
    groups = {
        "rewrite_prompts": ([record.rewrite_prompt], record.target_new),
        "paraphrase_prompts": (list(record.paraphrase_prompts), record.target_new),
        "neighborhood_prompts": ([record.loc_prompt], record.loc_answer),
    }
    prompts = [p for ps, _ in groups.values() for p in ps]
    targets = [t for ps, t in groups.values() for _ in ps]
    scored = iter(scoring.target_token_logprobs(model, prompts, targets))
    out = {}
    for key, (ps, _) in groups.items():
        out[f"{key}_correct"] = []
        for _ in ps:
            out[f"{key}_correct"] += [bool(c) for c in next(scored)[1].tolist()]
    return out

def case_scores(correct: dict[str, list[bool]]) -> dict[str, float | None]:
    def mean(xs):
        return sum(xs) / len(xs) if xs else None

    return {
        "Efficacy": mean(correct["rewrite_prompts_correct"]),
        "Paraphrase": mean(correct["paraphrase_prompts_correct"]),
        "Specificity": mean(correct["neighborhood_prompts_correct"]),
    }
