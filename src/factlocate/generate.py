"""Seeded top-k sampling, batched: the generations of the paper's Figure 6 and GE fluency.

    texts = generate(model, ["My favourite city is"], max_length=30, seed=0)

Rows are left-padded into one batch with an attention mask; each step samples
the next token of every row from the `top_k` most likely tokens (renormalised),
with a `torch.Generator` seeded by `seed`, so the same call gives the same texts.
`max_length` counts the prompt's tokens (and BOS), as in the original
`generate_fast`. Texts are returned with the prompt, NFKD-normalised, with
blank-line breaks turned into spaces and special tokens removed.
"""
from __future__ import annotations

import unicodedata

import torch
from tqdm.auto import tqdm

from factlocate import arch, tokens
from factlocate.errors import FactlocateError


def bos_id(model) -> int:
    """The token a generation from nothing starts with (BOS, else EOS, as GPT-2's <|endoftext|>)."""
    tok = model.tokenizer
    i = tok.bos_token_id if tok.bos_token_id is not None else tok.eos_token_id
    if i is None:
        raise FactlocateError("the tokenizer has neither a BOS nor an EOS token to start generation from")
    return int(i)


def clean(text: str) -> str:
    return unicodedata.normalize("NFKD", text).replace("\n\n", " ")


@torch.no_grad()
def generate(
    model,
    prompts: list[str],
    max_length: int = 50,
    top_k: int = 5,
    seed: int = 0,
    n_per_prompt: int = 1,
    batch_size: int = 32,
    bos: bool = False,
    progress: bool = False,
) -> list[str]:
    """`n_per_prompt` sampled continuations of each prompt (prompt-major order), as text.

    `bos=True` starts every row with BOS even where the architecture adds none
    (an empty prompt then samples from the model's unconditional distribution).
    """
    if top_k < 1:
        raise FactlocateError(f"top_k must be at least 1, got {top_k}")
    rows = []
    for p in prompts:
        ids = tokens.encode(model, p)
        if not ids or (bos and ids[0] != bos_id(model)):
            ids = [bos_id(model)] + ids
        rows += [ids] * n_per_prompt
    generator = torch.Generator(device="cpu").manual_seed(seed)
    out = []
    chunks = range(0, len(rows), batch_size)
    for start in tqdm(chunks, desc="generate", disable=not progress, leave=False):
        out += _sample(model, rows[start : start + batch_size], max_length, top_k, generator)
    tok = model.tokenizer
    return [clean(tok.decode(r, skip_special_tokens=True)) for r in out]


def _sample(model, rows: list[list[int]], max_length: int, top_k: int, generator) -> list[list[int]]:
    """Sample until every row has `max_length` tokens, with the HF key/value cache.

    Rows are left-padded; positions count real tokens only. The Hugging Face
    model inside the bridge is called directly (its modules are the bridge's, so
    edits and hooks apply) because it returns the cache and can compute logits
    for the last position only.
    """
    steps = max_length - min(len(r) for r in rows)
    if steps <= 0:
        return [r[:max(max_length, 1)] for r in rows]
    hf = arch.hf_model(model)
    ids, mask = tokens.batch(model, rows, pad_left=True)
    positions = (mask.cumsum(-1) - 1).clamp(min=0)
    cache, step_ids, step_pos = None, ids, positions
    new = []
    for _ in range(steps):
        out = hf(input_ids=step_ids, attention_mask=mask, position_ids=step_pos, past_key_values=cache,
                 use_cache=True, logits_to_keep=1)
        cache = out.past_key_values
        probs = out.logits[:, -1].float().softmax(-1)
        top_p, top_i = probs.topk(top_k, dim=-1)
        top_p = top_p / top_p.sum(-1, keepdim=True)
        pick = torch.multinomial(top_p.cpu(), 1, generator=generator).to(top_i.device)
        step_ids = top_i.gather(1, pick)
        new.append(step_ids)
        mask = torch.cat([mask, torch.ones_like(step_ids)], dim=1)
        step_pos = step_pos[:, -1:] + 1
    new = torch.cat(new, dim=1).tolist()
    return [(r + n)[:max_length] for r, n in zip(rows, new)]
