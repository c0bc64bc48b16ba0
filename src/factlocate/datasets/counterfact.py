"""CounterFact loaders: the original ROME format, and EasyEdit's flattened format.

ROME format (one dict per case):
    case_id, requested_rewrite{prompt, subject, target_new{str,id}, target_true{str,id},
    relation_id}, paraphrase_prompts, neighborhood_prompts, attribute_prompts, generation_prompts
EasyEdit format:
    case_id, prompt (filled), subject, target_new, ground_truth, rephrase_prompt,
    locality_prompt, locality_ground_truth
"""
from __future__ import annotations

from factlocate.datasets.records import CounterFactRecord, _where, check_template, field_of, subject_index
from factlocate.errors import FactlocateError


def is_easyedit(raw: dict) -> bool:
    return isinstance(raw, dict) and "requested_rewrite" not in raw and "ground_truth" in raw


def from_rome(raw: dict, index: int, source: str = "counterfact") -> CounterFactRecord:
    """One record in the original ROME format."""
    where = _where(source, index, raw.get("case_id") if isinstance(raw, dict) else None)
    if not isinstance(raw, dict):
        raise FactlocateError(f"{where}: expected an object, got {type(raw).__name__}")
    rw = "requested_rewrite"

    def optional_id(path):
        try:
            return str(field_of(raw, path, where, kind=None))
        except FactlocateError:
            return None

    return CounterFactRecord(
        case_id=field_of(raw, "case_id", where, int),
        prompt=check_template(field_of(raw, f"{rw}.prompt", where), where, f"{rw}.prompt"),
        subject=field_of(raw, f"{rw}.subject", where),
        target_new=field_of(raw, f"{rw}.target_new.str", where),
        target_true=field_of(raw, f"{rw}.target_true.str", where),
        relation_id=optional_id(f"{rw}.relation_id"),
        target_new_id=optional_id(f"{rw}.target_new.id"),
        target_true_id=optional_id(f"{rw}.target_true.id"),
        paraphrase_prompts=field_of(raw, "paraphrase_prompts", where, list),
        neighborhood_prompts=field_of(raw, "neighborhood_prompts", where, list),
        attribute_prompts=field_of(raw, "attribute_prompts", where, list) if "attribute_prompts" in raw else (),
        generation_prompts=field_of(raw, "generation_prompts", where, list) if "generation_prompts" in raw else (),
    )


def from_easyedit(raw: dict, index: int, source: str = "counterfact") -> CounterFactRecord:
    """One EasyEdit record: one paraphrase and one neighbourhood prompt, no generation prompts.

    The neighbourhood prompt's true answer is `locality_ground_truth`; in CounterFact it
    equals the case's `ground_truth` (neighbours share the true object), which is what the
    ROME-format metrics compare against.
    """
    where = _where(source, index, raw.get("case_id") if isinstance(raw, dict) else None)
    if not isinstance(raw, dict):
        raise FactlocateError(f"{where}: expected an object, got {type(raw).__name__}")
    filled = field_of(raw, "prompt", where)
    subject = field_of(raw, "subject", where)
    i = subject_index(filled, subject, "prompt", where)
    truth = field_of(raw, "ground_truth", where)
    loc_truth = raw.get("locality_ground_truth", truth)
    if loc_truth != truth:
        raise FactlocateError(
            f"{where}: field 'locality_ground_truth' ({loc_truth!r}) differs from 'ground_truth' "
            f"({truth!r}); the neighbourhood metric needs them equal"
        )
    return CounterFactRecord(
        case_id=field_of(raw, "case_id", where, int),
        prompt=filled[:i] + "{}" + filled[i + len(subject):],
        subject=subject,
        target_new=field_of(raw, "target_new", where),
        target_true=truth,
        paraphrase_prompts=(field_of(raw, "rephrase_prompt", where),),
        neighborhood_prompts=(field_of(raw, "locality_prompt", where),),
    )


def parse(raws: list, source: str = "counterfact") -> list[CounterFactRecord]:
    """Records of either format (detected per record)."""
    if not isinstance(raws, list):
        raise FactlocateError(f"{source}: expected a JSON list of records")
    out = [
        (from_easyedit if is_easyedit(r) else from_rome)(r, i, source) for i, r in enumerate(raws)
    ]
    seen = set()
    for i, r in enumerate(out):
        if r.case_id in seen:
            raise FactlocateError(f"{source} record {i}: duplicate case_id {r.case_id}")
        seen.add(r.case_id)
    return out
