"""Perplexity on a fixed slice of WikiText-2: how much an edited model has drifted on ordinary text.

The slice is the first texts of the held-out end of the shipped WikiText-2 raw test split
(`datasets.corpus.PERPLEXITY_CORPUS`, text that key statistics never read, so AlphaEdit's C0 does not
protect the very text its damage is measured on), in order, each cut to at most `max_text_tokens`
tokens, until `n_tokens` tokens are collected. Perplexity is
exp(mean token NLL) over every predicted token of the slice (the first token of each text is
not predicted).
"""
from __future__ import annotations

import math

import torch

from factlocate import tokens


def wikitext_slice(model, n_tokens: int = 4096, max_text_tokens: int = 256) -> list[list[int]]:
    """Token rows of the fixed slice (the same for every call on the same tokenizer)."""
    from factlocate.datasets.corpus import PERPLEXITY_CORPUS, corpus_texts

    n_ctx = getattr(model.cfg, "n_ctx", None) or max_text_tokens
    rows, total = [], 0
    for text in corpus_texts(PERPLEXITY_CORPUS):
        ids = tokens.encode(model, text)[: min(max_text_tokens, int(n_ctx))]
        if len(ids) < 2:
            continue
        rows.append(ids)
        total += len(ids) - 1
        if total >= n_tokens:
            break
    return rows


@torch.no_grad()
def perplexity(model, rows: list[list[int]], batch_size: int = 16) -> float:
    """exp(mean NLL) of every token after the first of each row (right-padded batches)."""
    nll, count = 0.0, 0
    for i in range(0, len(rows), batch_size):
        ids, mask = tokens.batch(model, rows[i : i + batch_size])
        logp = model(ids, attention_mask=mask).float().log_softmax(-1)
        picked = logp[:, :-1].gather(2, ids[:, 1:, None])[..., 0]
        keep = mask[:, 1:].bool()
        nll -= float(picked[keep].sum())
        count += int(keep.sum())
    return math.exp(nll / max(count, 1))
