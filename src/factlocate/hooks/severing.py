"""Sever a path: hold module outputs at values recorded in an earlier pass.

The original notebook (`causal_trace_frozen_mlp_attn.ipynb`, `trace_with_repatch`)
runs a corrupted first pass that records the MLP (or attention) outputs, then a
second pass that restores a hidden state while writing the recorded values back
at token t in every layer: `h[1:, t] = first_pass[layer][1:, t]`.
`Record` is the first pass's hook, `FreezeFromRecord` the second's.
"""
from __future__ import annotations

import torch
from jaxtyping import Float


class Record:
    """Keep a copy of the activation (the first pass of a severed trace)."""

    def __init__(self):
        self.value: torch.Tensor | None = None

    def __call__(self, h: Float[torch.Tensor, "batch pos d"], hook=None) -> torch.Tensor:
        self.value = h.detach().clone()
        return h


class FreezeFromRecord:
    """`h[1:, t] = record.value[1:, t]` for each t in `positions`."""

    def __init__(self, record: Record, positions: list[int]):
        self.record, self.positions = record, list(positions)

    def __call__(self, h: Float[torch.Tensor, "batch pos d"], hook=None) -> torch.Tensor:
        for t in self.positions:
            h[1:, t] = self.record.value[1:, t].to(h.device, h.dtype)
        return h
