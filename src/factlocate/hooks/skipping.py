"""Skip the lower blocks of a forward pass whose result is already known.

When every row of a batch starts from a cached residual at block k, blocks
0..k-1 need not run: `skip_blocks(model, k)` turns them into identities for
the duration of a `with` block (their hooks still fire on the passed-through
input). A hook on `blocks.k.hook_resid_pre` then injects the cached residual.
The bridge's own `start_at_layer` still runs the lower blocks, so it saves nothing.
"""
from __future__ import annotations

import contextlib

import torch


def block_returns_tuple(model) -> bool:
    """Whether the HF blocks return `(hidden_states, ...)` (GPT-J) rather than a tensor."""
    seen = {}

    def probe(module, args, out):
        seen["tuple"] = isinstance(out, tuple)

    handle = model.blocks[0].original_component.register_forward_hook(probe)
    try:
        with torch.no_grad():
            model(torch.zeros((1, 1), dtype=torch.long, device=model.cfg.device), stop_at_layer=1)
    finally:
        handle.remove()
    return seen["tuple"]


@contextlib.contextmanager
def skip_blocks(model, below: int, tuple_output: bool):
    """Make blocks 0..below-1 return their input unchanged."""

    def identity(*args, **kwargs):
        h = args[0] if args else kwargs["hidden_states"]
        return (h, None) if tuple_output else h

    modules = [b.original_component for b in model.blocks[:below]]
    for module in modules:
        module.forward = identity
    try:
        yield
    finally:
        for module in modules:
            del module.forward
