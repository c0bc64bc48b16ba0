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

`greedy_answer` is the plain path: one prompt, a full forward per new token. `greedy_answers` decodes many
prompts in left-padded batches, reusing the KV cache where that was checked; it is checked once per model against
the plain path (`batched_greedy_verified`) and falls back to it.

Deviations from WILD: no LLM judge (nothing leaves the machine), and no question template: CounterFact's
prompts are sentence prefixes, not questions, so they are decoded as they are.
"""
from __future__ import annotations

import re
import string

import torch

from factlocate import tokens
from factlocate.forward import kv
from factlocate.generate import cached_decoding_verified, decoder

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
    """The greedy continuation of `prompt`, cut at the first stop (see the module docstring).

    The plain path: one prompt, a full forward of the whole sequence per new token. `greedy_answers` batches
    and is checked against it."""
    ids = tokens.encode(model, prompt)
    eos = model.tokenizer.eos_token_id
    new: list[int] = []
    for _ in range(max_new_tokens):
        logits = model(torch.tensor([ids + new], device=model.cfg.device))[0, -1]
        token = int(logits.argmax())
        if token == eos:
            break
        new.append(token)
        if _stopped(model, new):
            break
    return cut(model.tokenizer.decode(new))


def _stopped(model, new: list[int]) -> bool:
    return any(s in model.tokenizer.decode(new) for s in STOPS)


def greedy_answers(model, prompts: list[str], max_new_tokens: int = 16, batch_size: int = 32) -> list[str]:
    """`greedy_answer` of every prompt, decoded together: rows left-padded into batches of `batch_size`, the KV
    cache reused where it was verified for this model (`factlocate.generate.decoder`). Where `batched_greedy_verified`
    finds the batch's logits differ from the plain path's, each prompt is decoded on its own instead.
    (Two tokens whose logits differ by less than the check's tolerance may still be picked differently.)"""
    if not batched_greedy_verified(model):
        return [greedy_answer(model, p, max_new_tokens) for p in prompts]
    out: list[str] = []
    for start in range(0, len(prompts), batch_size):
        out += _greedy_batch(model, prompts[start : start + batch_size], max_new_tokens)
    return out


@torch.no_grad()
def _greedy_batch(model, prompts: list[str], max_new_tokens: int) -> list[str]:
    rows = [tokens.encode(model, p) for p in prompts]
    ids, mask = tokens.batch(model, rows, pad_left=True)
    step = decoder(model, ids, mask, cached_decoding_verified(model))
    eos = model.tokenizer.eos_token_id
    new: list[list[int]] = [[] for _ in rows]
    done = [False] * len(rows)
    last = None
    for _ in range(max_new_tokens):
        picks = step(last).argmax(-1)  # [rows]
        for i, token in enumerate(picks.tolist()):
            if done[i]:
                continue
            if token == eos:
                done[i] = True
                continue
            new[i].append(token)
            done[i] = _stopped(model, new[i])
        if all(done):
            break
        last = picks[:, None]
    return [cut(model.tokenizer.decode(n)) for n in new]


def batched_greedy_verified(model) -> bool:
    """Whether batched greedy decoding gives the plain path's logits on this model (checked once, on a probe):
    two rows of a real prompt (one left-padded) take three greedy steps in one batch, and each row alone takes
    them with full forwards of the bridge, as `greedy_answer` does."""
    def probe():
        prompt = kv.probe_ids(model, 5)
        rows = [prompt, prompt[1:]]
        alone = []
        for r in rows:
            ids, steps = list(r), []
            for _ in range(3):
                steps.append(model(torch.tensor([ids], device=model.cfg.device))[0, -1].float().log_softmax(-1))
                ids.append(int(steps[-1].argmax()))
            alone.append(torch.stack(steps))  # [steps, vocab]
        plain = torch.stack(alone, dim=1)  # [steps, rows, vocab]
        ids, mask = tokens.batch(model, rows, pad_left=True)
        step, batched, last = decoder(model, ids, mask, cached_decoding_verified(model)), [], None
        for i in range(3):
            batched.append(step(last).float().log_softmax(-1))
            last = plain[i].argmax(-1, keepdim=True)
        return torch.stack(batched), plain

    return kv.verified(model, "batched greedy decoding", probe)


def success(model, prompts: list[str], target: str, max_new_tokens: int = 16) -> dict:
    """Per prompt its answer and verdicts, and the share of prompts each verdict holds for."""
    return scored(greedy_answers(model, prompts, max_new_tokens), target)


def scored(answers: list[str], target: str) -> dict:
    """The answers, their verdicts, and the share of answers each verdict holds for."""
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
    groups = {g: v for g, v in groups.items() if v[0]}
    answers = iter(greedy_answers(model, [p for prompts, _ in groups.values() for p in prompts], max_new_tokens))
    out = {}
    for group, (prompts, target) in groups.items():
        result = scored([next(answers) for _ in prompts], target)
        out[group] = {k: result[k] for k in ("exact", "prefix", "contains", "answers")}
    return out
