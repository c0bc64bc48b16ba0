"""Teacher-forced target scoring, shared by editors and metrics.

NLL(p, o) = -(1/|o|) * sum_j log P(o_j | p, o_<j), with o tokenised as " " + o.
Many (prompt, target) pairs are scored in one right-padded batch
(`target_nll`), or, when each prompt has several targets, each prompt runs once
and its KV cache serves every target (`shared_prompt_nll`).
"""
from __future__ import annotations

from collections import defaultdict

import torch
from jaxtyping import Float

from factlocate import tokens
from factlocate.forward import control, kv


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


@torch.no_grad()
def shared_prompt_nll(model, prompts: list[str], targets: list[list[str]]) -> list[list[float]]:
    """NLL of each of `targets[i]` after `prompts[i]`, running every prompt once.

    Prompts of the same token length run together without padding; their KV cache
    is repeated once per target, and the targets (all but their last token) run as
    right-padded continuations. Padding after a target's real tokens cannot reach
    them (attention is causal), so the numbers are `target_nll`'s up to float rounding.
    The cache reuse is checked once per model (`forward.kv.verified`); where it does
    not match, every (prompt, target) pair is scored by `target_nll` instead.
    """
    k = len(targets[0]) if targets else 0
    if any(len(ts) != k for ts in targets) or len(prompts) != len(targets):
        raise ValueError("shared_prompt_nll needs the same number of targets for every prompt")
    if not kv.verified(model, "shared-prompt scoring", lambda: _probe(model)):
        return _plain(model, prompts, targets)
    return _shared(model, prompts, targets)


def _plain(model, prompts: list[str], targets: list[list[str]]) -> list[list[float]]:
    pairs = [(p, t) for p, ts in zip(prompts, targets) for t in ts]
    nll = target_nll(model, [p for p, _ in pairs], [t for _, t in pairs]).tolist()
    k = len(targets[0]) if targets else 0
    return [nll[i * k : (i + 1) * k] for i in range(len(prompts))]


def _probe(model) -> tuple[torch.Tensor, torch.Tensor]:
    """Shared and plain NLLs of two prompts of one length, with two multi-token targets each."""
    ids = kv.probe_ids(model, 6)
    prompts = [model.tokenizer.decode(ids[-4:]), model.tokenizer.decode(ids[-5:-1])]
    targets = [["Paris France", "the city of Rome"]] * 2
    return torch.tensor(_shared(model, prompts, targets)), torch.tensor(_plain(model, prompts, targets))


def _shared(model, prompts: list[str], targets: list[list[str]]) -> list[list[float]]:
    if not prompts:
        return []
    k = len(targets[0])
    encoded = [tokens.encode(model, p) for p in prompts]
    target_ids = [[tokens.encode_target(model, t) for t in ts] for ts in targets]
    by_length = defaultdict(list)
    for i, ids in enumerate(encoded):
        by_length[len(ids)].append(i)
    device = model.cfg.device
    pad = model.tokenizer.pad_token_id if model.tokenizer.pad_token_id is not None else 0
    # Every group's residuals at the positions read are gathered, then unembedded in one call: the unembedding
    # reads its whole [d_model, vocab] matrix whatever the rows (Gemma's is 671 MB in float32).
    resids, reads = [], []  # reads: (prompt index, target index, token j) of each gathered row, in order
    for idx in by_length.values():
        ids = torch.tensor([encoded[i] for i in idx], device=device)
        cache = kv.empty(model)
        resid = control.run(model, ids, past=cache)
        resids.append(resid[:, -1])  # predicts every target's first token
        reads += [(i, None, 0) for i in idx]
        rows = [(i, j) for i in idx for j in range(k)]
        width = max(len(target_ids[i][j]) for i, j in rows) - 1
        if width > 0:
            cont = torch.full((len(rows), width), pad, dtype=torch.long)
            for r, (i, j) in enumerate(rows):
                cont[r, : len(target_ids[i][j]) - 1] = torch.tensor(target_ids[i][j][:-1])
            cache.batch_repeat_interleave(k)
            rest = control.run(model, cont.to(device), past=cache)
            at = [(r, t) for r, (i, j) in enumerate(rows) for t in range(1, len(target_ids[i][j]))]
            if at:
                resids.append(rest[[r for r, _ in at], [t - 1 for _, t in at]])
                reads += [(rows[r][0], rows[r][1], t) for r, t in at]
    logp = control.unembed(model, torch.cat(resids)).float().log_softmax(-1)
    first = {i: logp[n] for n, (i, j, _) in enumerate(reads) if j is None}
    total = [[first[i][target_ids[i][j][0]] for j in range(k)] for i in range(len(prompts))]
    for n, (i, j, t) in enumerate(reads):
        if j is not None:
            total[i][j] = total[i][j] + logp[n, target_ids[i][j][t]]
    return [[float(-total[i][j] / len(target_ids[i][j])) for j in range(k)] for i in range(len(prompts))]
