"""The record types every loader produces, validated field by field.

A malformed record raises `FactlocateError` naming the record (its index and
case id) and the field, so a bad line in a 20,000-record file is easy to find.
"""
from __future__ import annotations

from dataclasses import dataclass

from factlocate.editors.base import EditRequest
from factlocate.errors import FactlocateError


def _where(source: str, index: int, case_id) -> str:
    return f"{source} record {index} (case_id {case_id})"


def subject_index(text: str, subject: str, field: str, where: str) -> int:
    """Where the last occurrence of `subject` starts in field `field`'s `text`, or a clear error."""
    i = text.rfind(subject)
    if i < 0:
        raise FactlocateError(f"{where}: field {field!r} does not contain the subject {subject!r}")
    return i


def field_of(raw, path: str, where: str, kind=str):
    """`raw[a][b]...` for path "a.b", checked to be of `kind` (non-empty for strings)."""
    value = raw
    for part in path.split("."):
        if not isinstance(value, dict) or part not in value:
            raise FactlocateError(f"{where}: missing field {path!r}")
        value = value[part]
    if kind is str:
        if not isinstance(value, str) or not value.strip():
            raise FactlocateError(f"{where}: field {path!r} must be a non-empty string, got {value!r}")
    elif kind is list:
        if not isinstance(value, list) or not all(isinstance(v, str) and v.strip() for v in value):
            raise FactlocateError(f"{where}: field {path!r} must be a list of non-empty strings")
        value = tuple(value)
    elif kind is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise FactlocateError(f"{where}: field {path!r} must be an integer, got {value!r}")
    return value


@dataclass(frozen=True)
class CounterFactRecord:
    """One CounterFact case: a counterfactual rewrite and the prompts that test it."""

    case_id: int
    prompt: str  # template with one "{}" for the subject
    subject: str
    target_new: str
    target_true: str
    relation_id: str | None = None
    target_new_id: str | None = None
    target_true_id: str | None = None
    paraphrase_prompts: tuple[str, ...] = ()
    neighborhood_prompts: tuple[str, ...] = ()
    attribute_prompts: tuple[str, ...] = ()
    generation_prompts: tuple[str, ...] = ()

    kind = "counterfact"

    @property
    def rewrite_prompt(self) -> str:
        return self.prompt.format(self.subject)

    def request(self) -> EditRequest:
        return EditRequest(
            prompt=self.prompt, subject=self.subject, target_new=self.target_new,
            target_true=self.target_true, relation_id=self.relation_id, case_id=self.case_id,
        )


@dataclass(frozen=True)
class ZsreRecord:
    """One zsRE question: rewrite the answer of `prompt`, keep `loc_prompt`'s answer."""

    case_id: int
    prompt: str  # the question with the subject replaced by "{}"
    subject: str
    target_new: str  # answers[0]
    paraphrase_prompts: tuple[str, ...]
    loc_prompt: str  # loc + "?"
    loc_answer: str

    kind = "zsre"

    @property
    def rewrite_prompt(self) -> str:
        return self.prompt.format(self.subject)

    def request(self) -> EditRequest:
        return EditRequest(
            prompt=self.prompt, subject=self.subject, target_new=self.target_new, case_id=self.case_id
        )


def check_template(prompt: str, where: str, path: str) -> str:
    if prompt.count("{}") != 1:
        raise FactlocateError(f"{where}: field {path!r} must contain '{{}}' exactly once, got {prompt!r}")
    return prompt
