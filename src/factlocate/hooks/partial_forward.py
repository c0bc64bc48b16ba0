"""Run only the part of a forward pass that a computation needs.

Two savings for loops that run the same prompts many times:

* `prefix(model, ids, mask, layer)` runs blocks 0..layer-1 once and keeps the
  residual entering block `layer`. `logits_at(..., prefix=...)` then turns the
  lower blocks into identities and injects that residual (the bridge's
  `start_at_layer`), so only blocks layer..n-1 run.
* `logits_at` stops after the last block and applies the final norm and the
  unembedding only at the (row, position) pairs asked for, instead of
  building the full [batch, pos, vocab] logits (262k columns for Gemma).

Both give the same numbers as a plain forward pass (up to float rounding).
"""
from __future__ import annotations

import contextlib
from dataclasses import dataclass

import torch
from jaxtyping import Float, Int

from factlocate import arch
from factlocate.hooks.skipping import block_returns_tuple, skip_blocks


class StopForward(Exception):
    """Raised from the last block's output hook to end the forward pass early."""

    def __init__(self, resid: torch.Tensor):
        super().__init__()
        self.resid = resid


@dataclass
class Prefix:
    """The residual entering block `layer` for a fixed batch of ids."""

    layer: int
    resid: Float[torch.Tensor, "batch pos d_model"]
    tuple_output: bool  # whether the HF blocks return (hidden_states, ...) rather than a tensor


@torch.no_grad()
def prefix(model, ids: Int[torch.Tensor, "batch pos"], mask: torch.Tensor | None, layer: int) -> Prefix:
    """Run blocks below `layer` once and keep the residual entering it."""
    arch.check_layer(model, layer)
    resid = model(ids, attention_mask=mask, stop_at_layer=layer)
    return Prefix(layer, resid.detach(), block_returns_tuple(model))


def final_logits(model, resid: Float[torch.Tensor, "n d_model"]) -> Float[torch.Tensor, "n vocab"]:
    """Final norm, unembedding and (Gemma) soft-capping of residual vectors after the last block."""
    logits = model.unembed(model.ln_final(resid.unsqueeze(0)))[0]
    cap = getattr(arch.hf_model(model).config, "final_logit_softcapping", None)
    if cap:
        logits = torch.tanh(logits / cap) * cap
    return logits


def logits_at(
    model,
    ids: Int[torch.Tensor, "batch pos"],
    mask: torch.Tensor | None,
    rows: Int[torch.Tensor, "n"],
    positions: Int[torch.Tensor, "n"],
    fwd_hooks: list | tuple = (),
    prefix: Prefix | None = None,
) -> Float[torch.Tensor, "n vocab"]:
    """Logits at (rows[i], positions[i]) only; blocks below `prefix.layer` are skipped if given."""
    last = arch.hook_resid(arch.n_layers(model) - 1)

    def stop(resid, hook):
        raise StopForward(resid)

    hooks = [*fwd_hooks, (last, stop)]
    skip = skip_blocks(model, prefix.layer, prefix.tuple_output) if prefix else contextlib.nullcontext()
    try:
        with skip, model.hooks(fwd_hooks=hooks):
            if prefix is None:
                model(ids, attention_mask=mask)
            else:
                model(prefix.resid, attention_mask=mask, start_at_layer=prefix.layer)
    except StopForward as s:
        resid = s.resid
    else:  # pragma: no cover - the hook always fires
        raise RuntimeError("the last block's output hook did not fire")
    return final_logits(model, resid[rows, positions])
