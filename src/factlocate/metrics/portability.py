"""Portability (KnowEdit, EasyEdit): can the edited model use the new fact one hop away?

    questions = one_hop(raws, "counterfact")        # from counterfact_portability_gpt4.json (or zsRE's file)
    score(model, questions[case_id])                # {"teacher_forced": 0.67, "generated": {...}, "answer": ...}

After Spike Hughes -> Philadelphia: "What famous food is associated with the city where Spike Hughes originates
from?" -> "Cheesesteaks". As KnowEdit defines it, the teacher-forced figure is the share of the answer's tokens
that are the argmax after the question and the answer's earlier tokens (`scoring.target_token_logprobs`, the
same token accuracy as zsRE's metrics). The generated figure is `metrics.generated`'s verdicts on the greedy
answer to the question. Scored on the edited model, and on the unedited one for reference.
"""
from __future__ import annotations

from dataclasses import dataclass

from factlocate import scoring
from factlocate.errors import FactlocateError
from factlocate.metrics import generated


@dataclass(frozen=True)
class OneHop:
    question: str
    answer: str
    recalled: str = ""  # the fact it hops through, e.g. "(Philadelphia, known for, cheesesteaks)"


def one_hop(raws: list[dict], kind: str) -> dict:
    """The one-hop question of each record that has one: by case id (CounterFact) or by question (zsRE)."""
    if kind not in ("counterfact", "zsre"):
        raise FactlocateError(f"portability files are counterfact or zsre, got {kind!r}")
    out = {}
    for raw in raws:
        port = raw.get("portability") or {}
        if not port.get("New Question") or not port.get("New Answer"):
            continue
        key = raw["case_id"] if kind == "counterfact" else raw["src"]
        out[key] = OneHop(port["New Question"], port["New Answer"], port.get("Recalled Relation", ""))
    return out


def score(model, hop: OneHop, max_new_tokens: int = 16) -> dict:
    """The teacher-forced token accuracy and the generated verdicts of one question (see the module docstring)."""
    (_, correct), = scoring.target_token_logprobs(model, [hop.question], [hop.answer])
    answer, = generated.greedy_answers(model, [hop.question], max_new_tokens)
    return {"teacher_forced": float(correct.float().mean()), "answer": answer,
            "generated": generated.judge(answer, hop.answer)}


def record_metric(hops: dict, kind: str):
    """A rescore metric (`evaluation.rescore`): a record's one-hop question scored, None for a record without one.
    CounterFact records are matched by case id, zsRE records by their question (the file's `src`)."""
    def metric(model, record):
        hop = hops.get(record.case_id if kind == "counterfact" else record.rewrite_prompt)
        return None if hop is None else score(model, hop)
    return metric
