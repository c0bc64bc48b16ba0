"""Keys and values at the subject's token, and ROME's left vector u.

A key is the input to layer L's MLP output matrix at one token
(`arch.hook_mlp_key`); its value is that matrix's output (`arch.hook_mlp_value`,
including a bias where the model has one). Which token is "the subject's token"
is the `fact_token` rule:

    subject_first             first token of the subject
    subject_last              last token of the subject (the paper's default)
    subject_first_after_last  first token after the subject (its last token if nothing follows)
    last                      last token of the prompt
"""
from __future__ import annotations

import torch
from jaxtyping import Float

from factlocate import arch, tokens
from factlocate.errors import FactlocateError
from factlocate.forward import Capture, control

# Each fact-token rule and how reports name it.
FACT_TOKENS = {
    "subject_first": "first subject token",
    "subject_last": "last subject token",
    "subject_first_after_last": "first token after the subject",
    "last": "last token",
}


def lookup_position(model, text: str, subject: str, fact_token: str = "subject_last") -> int:
    """Position (counting BOS) of the fact token in `text`, a prompt filled with `subject`."""
    n = len(tokens.encode(model, text))
    if fact_token == "last":
        return n - 1
    start, end = tokens.subject_range(model, text, subject)
    if fact_token == "subject_first":
        return start
    if fact_token == "subject_last":
        return end - 1
    if fact_token == "subject_first_after_last":
        return end if end < n else end - 1
    raise FactlocateError(f"unknown fact_token {fact_token!r}; choose from {', '.join(FACT_TOKENS)}")


@torch.no_grad()
def keys_and_values(
    model, texts: list[str], positions: list[int], layer: int
) -> tuple[Float[torch.Tensor, "n d_mlp"], Float[torch.Tensor, "n d_model"]]:
    """Key and value of layer `layer`'s MLP at `positions[i]` of `texts[i]` (one right-padded batch)."""
    arch.check_layer(model, layer)
    ids, mask = tokens.batch(model, [tokens.encode(model, t) for t in texts])
    key, value = arch.hook_mlp_key(layer), arch.hook_mlp_value(layer)
    capture = Capture([key, value])
    control.run(model, ids, hooks=capture.hooks, stop_at=layer + 1, mask=mask)
    rows = torch.arange(len(texts), device=ids.device)
    pos = torch.tensor(positions, device=ids.device)
    return capture[key][rows, pos].float(), capture[value][rows, pos].float()


def mean_key(model, prompt: str, subject: str, templates: list[str], layer: int, fact_token: str):
    """k-bar: the mean key at the fact token over `templates` filled with the prompt and subject."""
    texts = [t.format(prompt).format(subject) for t in templates]
    positions = [lookup_position(model, t, subject, fact_token) for t in texts]
    return keys_and_values(model, texts, positions, layer)[0].mean(0)


def left_vector(
    k: Float[torch.Tensor, "d_mlp"], cov: Float[torch.Tensor, "d_mlp d_mlp"] | None
) -> Float[torch.Tensor, "d_mlp"]:
    """u = C^-1 k / |C^-1 k| (solved, not inverted); u = k / |k| without statistics."""
    if cov is not None:
        k = torch.linalg.solve(cov.to(torch.float64), k.to(torch.float64)).to(k.dtype)
    return k / k.norm()
