"""Known-fact retention: how many unrelated facts the model still answers as it did before editing.

    reference = RetentionCache(model).answers()           # the unedited model's answers, computed once, cached
    with result.applied(model):
        r = retention(model, reference, edited=[("Danielle Darrieux", "P103")])
    r["retained"]                                          # share of the kept facts answered as before

A fact's answer is the model's top-1 next token after its prompt (the shipped known facts, `known_1000.json`,
the same test that decides which facts are traced). The reference is the unedited model's answer to every fact,
whether right or wrong: retention asks whether the edit changed the model elsewhere, not whether it is right.
Facts about an edited subject are left out (an edit may rightly change them); `by_relation=True` also leaves
out every fact of an edited relation, which after a few hundred CounterFact edits (34 relations) leaves few.
Answers are read from right-padded batches at each row's last real token, which causal attention makes equal
to reading each prompt alone.
"""
from __future__ import annotations

import hashlib
import json
from pathlib import Path

import torch

from factlocate import tokens
from factlocate.datasets.known_facts import load_facts
from factlocate.identity import identity
from factlocate.io import read_json, write_json


@torch.no_grad()
def top_answers(model, facts: list[dict], batch_size: int = 64) -> dict[str, int]:
    """known_id -> the model's top-1 next token after the fact's prompt."""
    out = {}
    for i in range(0, len(facts), batch_size):
        chunk = facts[i : i + batch_size]
        rows = [tokens.encode(model, f["prompt"]) for f in chunk]
        ids, mask = tokens.batch(model, rows)
        logits = model(ids.to(model.cfg.device), attention_mask=mask.to(model.cfg.device))
        last = torch.tensor([len(r) - 1 for r in rows], device=logits.device)
        top = logits[torch.arange(len(rows), device=logits.device), last].argmax(-1)
        out.update({str(f["known_id"]): int(t) for f, t in zip(chunk, top)})
    return out


def facts_digest(facts: list[dict]) -> str:
    return hashlib.sha256(json.dumps([[f["known_id"], f["prompt"]] for f in facts]).encode()).hexdigest()[:16]


class RetentionCache:
    """The unedited model's answers, stored under the cache folder per model identity and fact set."""

    def __init__(self, model, facts: list[dict] | None = None, root: Path | None = None):
        from factlocate.models import cache_dir

        self.model, self.facts = model, facts if facts is not None else load_facts()
        self.path = (root or cache_dir() / "retention") / identity(model).key / f"{facts_digest(self.facts)}.json"

    def answers(self) -> dict[str, int]:
        """Read back if stored; else computed on the model as it is now (it must be unedited) and stored."""
        if self.path.exists():
            return read_json(self.path)["answers"]
        answers = top_answers(self.model, self.facts)
        write_json(self.path, {"model": identity(self.model).spec, "n_facts": len(self.facts), "answers": answers})
        return answers


def retention(model, reference: dict[str, int], edited: list[tuple[str, str | None]], facts: list[dict] | None = None,
              by_relation: bool = False) -> dict:
    """Share of the kept facts whose top-1 answer equals the reference's (see the module docstring)."""
    facts = facts if facts is not None else load_facts()
    subjects = {s.strip() for s, _ in edited}
    relations = {r for _, r in edited if r}
    kept = [f for f in facts if f["subject"].strip() not in subjects
            and not (by_relation and f.get("relation_id") in relations)]
    now = top_answers(model, kept)
    changed = [f["known_id"] for f in kept if now[str(f["known_id"])] != reference[str(f["known_id"])]]
    n = len(kept)
    return {"retained": (n - len(changed)) / n if n else None, "n_facts": n, "left_out": len(facts) - n,
            "changed": changed}
