"""Next-token predictions and simple probability read-outs."""
from __future__ import annotations

import torch

from factlocate import tokens


@torch.no_grad()
def next_token_probs(model, prompt: str) -> torch.Tensor:
    """p(next token | prompt) over the vocabulary."""
    ids = tokens.to_tensor(model, tokens.encode(model, prompt))
    return model(ids)[0, -1].float().softmax(-1)


def predict(model, prompt: str, top_k: int = 5) -> list[dict]:
    """The `top_k` next tokens after `prompt`: [{"token", "id", "prob"}, ...]."""
    probs = next_token_probs(model, prompt)
    p, i = probs.topk(top_k)
    return [
        {"token": model.tokenizer.decode([int(t)]), "id": int(t), "prob": float(v)}
        for v, t in zip(p, i)
    ]
