"""Success judged on what the model generates, not on teacher-forced probabilities.

    answers = greedy_answers(model, ["The mother tongue of Danielle Darrieux is"])   # ["English"]
    judge(answers[0], "English")          # {"exact": True, "prefix": True, "contains": True}

The decoding follows WILD (Yang et al. 2025, "The Mirage of Model Editing", QAEdit's evaluation): greedy
(temperature 0), stopping at the first ".", newline or end-of-text token, or after `max_new_tokens`
tokens; the stop string is dropped and the answer stripped. The answer and the target are both normalised
as WILD (and SQuAD) do: lower case, punctuation removed, the articles a/an/the removed, white space
collapsed. Three verdicts:

    exact     the normalised answer equals the normalised target (WILD's `exact_match`)
    prefix    the normalised answer begins with the normalised target, on a word boundary (this
              issue's headline figure: "Paris, the capital" counts for Paris, which exact does not)
    contains  the normalised target occurs in the normalised answer as whole words (a second figure)

Deviations from WILD: no LLM judge (nothing leaves the machine), and no question template: CounterFact's
prompts are sentence prefixes, not questions, so they are decoded as they are.
"""
from __future__ import annotations

import re
import string

import torch

from factlocate import tokens

STOPS = (".", "\n")
_PUNCTUATION = set(string.punctuation)


def normalise(text: str) -> str:
    """Lower case, no punctuation, no articles (a, an, the), single spaces."""
    text = "".join(ch for ch in text.lower() if ch not in _PUNCTUATION)
    text = re.sub(r"\b(a|an|the)\b", " ", text)
    return " ".join(text.split())


def cut(continuation: str) -> str:
    """The continuation up to (not including) the first stop string, stripped."""
    end = min((i for i in (continuation.find(s) for s in STOPS) if i >= 0), default=len(continuation))
    return continuation[:end].strip()


def judge(answer: str, target: str) -> dict[str, bool]:
    a, t = normalise(answer), normalise(target)
    if not t:
        return {"exact": False, "prefix": False, "contains": False}
    return {"exact": a == t, "prefix": a == t or a.startswith(t + " "),
            "contains": f" {t} " in f" {a} "}


@torch.no_grad()
def greedy_answer(model, prompt: str, max_new_tokens: int = 16) -> str:
    """The greedy continuation of `prompt`, cut at the first stop (see the module docstring)."""
    ids = tokens.encode(model, prompt)
    eos = model.tokenizer.eos_token_id
    new: list[int] = []
    for _ in range(max_new_tokens):
        logits = model(torch.tensor([ids + new], device=model.cfg.device))[0, -1]
        token = int(logits.argmax())
        if token == eos:
            break
        new.append(token)
        text = model.tokenizer.decode(new)
        if any(s in text for s in STOPS):
            break
    return cut(model.tokenizer.decode(new))


def greedy_answers(model, prompts: list[str], max_new_tokens: int = 16) -> list[str]:
    return [greedy_answer(model, p, max_new_tokens) for p in prompts]


def success(model, prompts: list[str], target: str, max_new_tokens: int = 16) -> dict:
    """Per prompt its answer and verdicts, and the share of prompts each verdict holds for."""
    answers = greedy_answers(model, prompts, max_new_tokens)
    verdicts = [judge(a, target) for a in answers]
    rates = {k: sum(v[k] for v in verdicts) / len(verdicts) for k in ("exact", "prefix", "contains")} if verdicts \
        else {}
    return {"answers": answers, "verdicts": verdicts, **rates}


def record_scores(model, record, max_new_tokens: int = 16) -> dict:
    """One CounterFact or zsRE record's generated success: the share of rewrite prompts, paraphrases and
    neighbourhood prompts whose answer holds the right target under each verdict (the new target for the first
    two, the true answer, which must survive, for the neighbourhood), and the answers themselves."""
    if record.kind == "counterfact":
        groups = {"rewrite": ([record.rewrite_prompt], record.target_new),
                  "paraphrase": (list(record.paraphrase_prompts), record.target_new),
                  "neighborhood": (list(record.neighborhood_prompts), record.target_true)}
    else:
        groups = {"rewrite": ([record.rewrite_prompt], record.target_new),
                  "paraphrase": (list(record.paraphrase_prompts), record.target_new),
                  "neighborhood": ([record.loc_prompt], record.loc_answer)}
    out = {}
    for group, (prompts, target) in groups.items():
        if prompts:
            result = success(model, prompts, target, max_new_tokens)
            out[group] = {k: result[k] for k in ("exact", "prefix", "contains")}
            out[group]["answers"] = result["answers"]
    return out

