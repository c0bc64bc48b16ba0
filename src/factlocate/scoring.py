"""Teacher-forced target scoring, shared by editors and metrics.

NLL(p, o) = -(1/|o|) * sum_j log P(o_j | p, o_<j), with o tokenised as " " + o.
Many (prompt, target) pairs are scored in one right-padded batch.
"""
from __future__ import annotations

import torch
from jaxtyping import Float

from factlocate import tokens


def _rows(model, prompts: list[str], targets: list[str]):
    rows, spans = [], []
    for p, t in zip(prompts, targets, strict=True):
        prompt_ids = tokens.encode(model, p)
        target_ids = tokens.encode_target(model, t)
        rows.append(prompt_ids + target_ids)
        spans.append((len(prompt_ids), len(target_ids)))
    return rows, spans


def target_token_logprobs(model, prompts: list[str], targets: list[str], batch_size: int = 64):
    """Per pair, the log-probs of each target token and whether it was the argmax (teacher-forced)."""
    out = []
    for i in range(0, len(prompts), batch_size):
        rows, spans = _rows(model, prompts[i : i + batch_size], targets[i : i + batch_size])
        ids, mask = tokens.batch(model, rows)
        with torch.no_grad():
            logits = model(ids, attention_mask=mask).float()
        logp = logits.log_softmax(-1)
        for r, (start, n) in enumerate(spans):
            pos = torch.arange(start - 1, start - 1 + n, device=logp.device)
            tgt = ids[r, start : start + n]
            lp = logp[r, pos, tgt]
            correct = logp[r, pos].argmax(-1) == tgt
            out.append((lp.cpu(), correct.cpu()))
    return out


def target_nll(model, prompts: list[str], targets: list[str], batch_size: int = 64) -> Float[torch.Tensor, "n"]:
    """Length-normalised NLL of each target after its prompt."""
    return torch.stack(
        [-lp.mean() for lp, _ in target_token_logprobs(model, prompts, targets, batch_size)]
    )


def target_prob(model, prompt: str, target: str) -> float:
    """exp(-NLL): the per-token geometric-mean probability of `target` after `prompt`."""
    return float(torch.exp(-target_nll(model, [prompt], [target])[0]))
