"""Tokenisation with the architecture's BOS rule, and locating a subject in a prompt."""
from __future__ import annotations

import torch
from jaxtyping import Int

from factlocate import arch
from factlocate.errors import FactlocateError


def encode(model, text: str, bos: bool | None = None) -> list[int]:
    """Token ids of `text`, with BOS prepended when the architecture expects it."""
    tok = model.tokenizer
    ids = tok(text, add_special_tokens=False)["input_ids"]
    if bos is None:
        bos = arch.prepend_bos(model)
    if bos:
        ids = [tok.bos_token_id] + ids
    return ids


def encode_target(model, target: str) -> list[int]:
    """Token ids of an answer as it follows a prompt: `" " + target`, never with BOS."""
    if not target or not target.strip():
        raise FactlocateError("the target is empty")
    return model.tokenizer(" " + target.strip(), add_special_tokens=False)["input_ids"]


def to_tensor(model, ids: list[int]) -> Int[torch.Tensor, "1 pos"]:
    return torch.tensor([ids], dtype=torch.long, device=model.cfg.device)


def batch(model, rows: list[list[int]], pad_left: bool = False) -> tuple[torch.Tensor, torch.Tensor]:
    """Pad rows of ids into a [batch, pos] tensor and a matching attention mask."""
    pad = model.tokenizer.pad_token_id
    if pad is None:
        pad = model.tokenizer.eos_token_id or 0
    width = max(len(r) for r in rows)
    ids = torch.full((len(rows), width), pad, dtype=torch.long)
    mask = torch.zeros((len(rows), width), dtype=torch.long)
    for i, r in enumerate(rows):
        if pad_left:
            ids[i, width - len(r):] = torch.tensor(r)
            mask[i, width - len(r):] = 1
        else:
            ids[i, : len(r)] = torch.tensor(r)
            mask[i, : len(r)] = 1
    device = model.cfg.device
    return ids.to(device), mask.to(device)


def str_tokens(model, ids: list[int]) -> list[str]:
    return [model.tokenizer.decode([i]) for i in ids]


def subject_range(model, prompt: str, subject: str, bos: bool | None = None) -> tuple[int, int]:
    """Token range [start, end) of the last occurrence of `subject` in `prompt`.

    Positions count the BOS token when the architecture prepends one. A subject
    token is one whose characters overlap the subject's characters.
    """
    if not prompt or not prompt.strip():
        raise FactlocateError("the prompt is empty")
    if not subject or not subject.strip():
        raise FactlocateError("the subject is empty")
    start_char = prompt.rfind(subject)
    if start_char < 0:
        raise FactlocateError(f"subject {subject!r} does not occur in prompt {prompt!r}")
    end_char = start_char + len(subject)
    enc = model.tokenizer(prompt, add_special_tokens=False, return_offsets_mapping=True)
    offset = 1 if (arch.prepend_bos(model) if bos is None else bos) else 0
    hits = [
        i for i, (a, b) in enumerate(enc["offset_mapping"]) if a < end_char and b > start_char
    ]
    if not hits:
        raise FactlocateError(f"subject {subject!r} covers no token of prompt {prompt!r}")
    return hits[0] + offset, hits[-1] + 1 + offset
