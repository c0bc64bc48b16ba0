"""zsRE in the MEND format: src, answers, rephrase, loc, loc_ans, subject (as ROME evaluates it).

As in ROME's MENDQADataset, the request prompt is `src` with the subject replaced
by "{}", the new target is `answers[0]`, the paraphrase is `rephrase`, and the
neighbourhood prompt is `loc + "?"` scored against `loc_ans`. A record whose
`src` names its subject more than once has only the last mention replaced.
"""
from __future__ import annotations

from factlocate.datasets.records import ZsreRecord, _where, field_of, subject_index
from factlocate.errors import FactlocateError


def from_mend(raw: dict, index: int, source: str = "zsre") -> ZsreRecord:
    case_id = raw.get("case_id", index) if isinstance(raw, dict) else index
    where = _where(source, index, case_id)
    if not isinstance(raw, dict):
        raise FactlocateError(f"{where}: expected an object, got {type(raw).__name__}")
    src = field_of(raw, "src", where)
    subject = field_of(raw, "subject", where)
    i = subject_index(src, subject, "src", where)
    answers = field_of(raw, "answers", where, list)
    if not answers:
        raise FactlocateError(f"{where}: field 'answers' is empty")
    return ZsreRecord(
        case_id=int(case_id),
        prompt=src[:i] + "{}" + src[i + len(subject):],
        subject=subject,
        target_new=answers[0],
        paraphrase_prompts=(field_of(raw, "rephrase", where),),
        loc_prompt=field_of(raw, "loc", where) + "?",
        loc_answer=field_of(raw, "loc_ans", where),
    )


def parse(raws: list, source: str = "zsre") -> list[ZsreRecord]:
    """Records numbered by their position in the file (ROME's case ids)."""
    if not isinstance(raws, list):
        raise FactlocateError(f"{source}: expected a JSON list of records")
    return [from_mend(r, i, source) for i, r in enumerate(raws)]
