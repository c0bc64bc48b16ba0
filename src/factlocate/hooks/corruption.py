"""Corrupt the subject: add (or write) noise into the token embeddings.

The hook goes on `hook_embed` (token embeddings, before position embeddings).
Rows `rows` (default: all but row 0, the clean run) at positions [start, end)
receive the noise, written in place into the float32 activation exactly like
the original `x[1:, b:e] += noise_data`.
"""
from __future__ import annotations

from collections.abc import Callable

import torch
from jaxtyping import Float


class CorruptEmbedding:
    """`hook_embed` hook: `x[rows, start:end] += noise` (or `= noise` if `replace`).

    `noise` is a tensor [n_rows, end - start, d_model], or a callable
    `(n_rows, n_tokens, d_model) -> tensor` drawn when the hook fires (as the
    original draws inside its hook, so consecutive passes get consecutive draws).
    """

    def __init__(self, noise: torch.Tensor | Callable[[int, int, int], torch.Tensor],
                 start: int, end: int, replace: bool = False, first_row: int = 1):
        self.noise = noise
        self.start, self.end = start, end
        self.replace = replace
        self.first_row = first_row

    def __call__(self, x: Float[torch.Tensor, "batch pos d_model"], hook=None) -> torch.Tensor:
        rows = x.shape[0] - self.first_row
        noise = self.noise
        if callable(noise):
            noise = noise(rows, self.end - self.start, x.shape[2])
        noise = noise.to(x.device)
        if self.replace:
            x[self.first_row:, self.start:self.end] = noise
        else:
            x[self.first_row:, self.start:self.end] += noise
        return x
