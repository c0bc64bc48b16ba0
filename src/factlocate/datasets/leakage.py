"""What must never cross: no text of a `test` record appears in tuning (`dev`) or training data.

    texts(record)                       every prompt a record holds, whatever its field
    all_texts(records)                  the union over records
    check_disjoint(test, others, what)  a one-line error naming the first shared text, else None
    outside(records, reserved)          the records that share no text with any reserved record

A record's texts are its rewrite prompt (filled with the subject), and for CounterFact its paraphrase,
neighbourhood, attribute and generation prompts; for zsRE its paraphrases and its locality question.
Training examples are compared the same way: `example_texts` reads the fields of EasyEdit-format
training files (prompt, rephrase and locality prompts). Texts are compared after stripping outer spaces.
"""
from __future__ import annotations

from collections.abc import Iterable

from factlocate.errors import FactlocateError


def _clean(items: Iterable[str]) -> set[str]:
    return {t.strip() for t in items if isinstance(t, str) and t.strip()}


def texts(record) -> set[str]:
    """Every text of a CounterFact or zsRE record."""
    out = [record.prompt.format(record.subject), *record.paraphrase_prompts]
    if record.kind == "counterfact":
        out += [*record.neighborhood_prompts, *record.attribute_prompts, *record.generation_prompts]
    else:
        out.append(record.loc_prompt)
    return _clean(out)


def all_texts(records) -> set[str]:
    """Every text of every record (an empty set for none)."""
    return set().union(*(texts(r) for r in records))


TRAINING_FIELDS = ("prompt", "rephrase_prompt", "locality_prompt", "src", "rephrase", "loc")


def example_texts(raw: dict) -> set[str]:
    """The texts of one training example in EasyEdit's or MEND's format (filled with its subject where templated)."""
    out = []
    for field in TRAINING_FIELDS:
        value = raw.get(field)
        values = value if isinstance(value, list) else [value]
        for v in values:
            if isinstance(v, str):
                out.append(v.format(raw.get("subject", "")) if "{}" in v else v)
    if isinstance(raw.get("loc"), str):  # MEND's zsRE rows keep the locality question without its "?"
        out.append(raw["loc"] + "?")
    return _clean(out)


def shared(test_texts: set[str], other_texts: Iterable[set[str]]) -> list[tuple[int, str]]:
    """(index of the other item, a text it shares with the test set), for every other item that shares one."""
    out = []
    for i, t in enumerate(other_texts):
        common = t & test_texts
        if common:
            out.append((i, sorted(common)[0]))
    return out


def check_disjoint(test_records, others: Iterable[set[str]], what: str) -> None:
    """Raise a one-line error if any of `others` (text sets) shares a text with a test record."""
    hits = shared(all_texts(test_records), others)
    if hits:
        i, text = hits[0]
        raise FactlocateError(f"{what}: {len(hits)} item(s) share text with the test split, the first (item {i}) "
                              f"{text!r}; test text must never be tuned or trained on")


def outside(records: list, reserved: list) -> tuple[list, int]:
    """The records (in order) that share no text with any of `reserved`, and how many were left out."""
    banned = all_texts(reserved)
    kept = [r for r in records if not texts(r) & banned]
    return kept, len(records) - len(kept)
