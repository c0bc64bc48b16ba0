"""Symmetric token replacement (STR): corrupt the subject by swapping in other subjects of the same token length.

Zhang & Nanda (2023) recommend it over Gaussian noise: the corrupted run stays on the
model's input distribution. For a prompt and its subject, a partner is another subject of
the fact set that, written into the prompt in the subject's place, gives exactly as many
tokens, with every token outside the subject unchanged. Partners with the same relation
are preferred when there are any. `samples` partners are drawn (with replacement) from a
`numpy.random.RandomState(seed)`, one per corrupted row.

`SubjectSwap` is the `str` corruption (`factlocate.tracing.corruption`): its `draw` returns the
partners' token embeddings at the subject positions, written over the subject's (replace mode),
which is the same as running the swapped prompts; its logit-difference contrast is, per row, the
answer the model gives to the swapped prompt.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import torch

from factlocate import tokens
from factlocate.errors import FactlocateError
from factlocate.tracing.corruption import Corruption, Setting
from factlocate.tracing.noise import NoiseSpec, _embed_ids


@dataclass
class SubjectSwap(Corruption):
    """The swapped-in subjects' token embeddings [samples, n_subject_tokens, d] (float64), one per row."""

    NAME = "str"

    embeddings: torch.Tensor = field(repr=False)
    partners: list[str]
    swapped_ids: list[list[int]] = field(repr=False)  # each swapped prompt's token ids
    same_relation: bool
    spec: NoiseSpec = NoiseSpec("str", "str")
    replace: bool = True
    level = None

    @classmethod
    def for_prompt(cls, setting: Setting) -> "SubjectSwap":
        """Partners from `setting.partners` (default: the shipped known facts), same relation where possible."""
        from factlocate.datasets.known_facts import load_facts

        run = setting.run
        return subject_swap(setting.model, setting.prompt, setting.subject, setting.partners or load_facts(),
                            run.samples, run.seed, setting.relation)

    def contrast(self, model, prep) -> torch.Tensor:
        """Per row, the swapped-in subject's own answer (the swapped prompt's top token)."""
        from factlocate.tracing.core import last_logits

        return last_logits(model, torch.tensor(self.swapped_ids, dtype=torch.long)).argmax(-1).cpu()

    def draw(self, rs, rows: int, n_tokens: int, d_model: int) -> torch.Tensor:
        if rows != len(self.partners) or n_tokens != self.embeddings.shape[1]:
            raise FactlocateError(f"STR has {len(self.partners)} partners of {self.embeddings.shape[1]} tokens, "
                                  f"asked for {rows} rows of {n_tokens}")
        return self.embeddings

    def describe(self) -> dict:
        return {"spec": "str", "family": "str", "level": None, "sigma": None, "replace": True,
                "partners": list(self.partners), "same_relation": self.same_relation}


def candidates(model, prompt: str, subject: str, subjects: list[str]) -> list[tuple[str, list[int]]]:
    """(partner, swapped prompt ids) for every subject that fits the prompt's subject span exactly."""
    ids = tokens.encode(model, prompt)
    b, e = tokens.subject_range(model, prompt, subject)
    start = prompt.rfind(subject)
    out = []
    for other in sorted(set(subjects)):
        if other == subject:
            continue
        swapped = prompt[:start] + other + prompt[start + len(subject):]
        new = tokens.encode(model, swapped)
        if len(new) == len(ids) and new[:b] == ids[:b] and new[e:] == ids[e:] and new[b:e] != ids[b:e]:
            out.append((other, new))
    return out


def subject_swap(model, prompt: str, subject: str, facts: list[dict], samples: int, seed: int,
                 relation: str | None = None) -> SubjectSwap:
    """Draw `samples` same-length partners (same relation where possible) and embed their tokens."""
    same = [f["subject"] for f in facts if relation is not None and f.get("relation_id") == relation]
    fits = candidates(model, prompt, subject, same) if same else []
    same_relation = bool(fits)
    if not fits:
        fits = candidates(model, prompt, subject, [f["subject"] for f in facts])
    if not fits:
        raise FactlocateError(f"no subject of the fact set has the token length of {subject!r} in this prompt: "
                              "STR cannot corrupt it (use --corrupt noise)")
    rs = np.random.RandomState(seed)
    chosen = [fits[i] for i in rs.randint(0, len(fits), size=samples)]
    b, e = tokens.subject_range(model, prompt, subject)
    flat = [i for _, ids in chosen for i in ids[b:e]]
    table = _embed_ids(model, sorted(set(flat)))
    index = {i: k for k, i in enumerate(sorted(set(flat)))}
    emb = table[torch.tensor([index[i] for i in flat], device=table.device)].view(samples, e - b, -1)
    return SubjectSwap(emb.double().cpu(), [p for p, _ in chosen], [ids for _, ids in chosen], same_relation)
