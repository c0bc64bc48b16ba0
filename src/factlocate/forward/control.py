"""Forward control: run part of a forward pass, on the rows that need it.

    resid = run(model, ids, hooks=[...], stop_at=k)                 # residual entering block k
    resid = run(model, ids, inject=Inject(k, resid_k))              # blocks k.. on resid_k's rows
    logits = unembed(model, resid[rows, positions])                 # only where a loss reads

Everything is done with TransformerLens hooks on the bridge, never by replacing
a module's `forward`:

* `stop_at=k` raises `StopForward` from the hook where block k's input (or, for
  k = n_layers, the last block's output) appears, so no later block runs.
* `inject=Inject(k, resid)` runs the model on the first row of `ids` only, and a
  hook on block k's input replaces that single row by `resid`: from block k on,
  the batch holds `resid`'s rows. Blocks below k run on one row, which costs
  next to nothing beside the batch above them. Without an attention mask HF
  builds a causal mask for that one row and it broadcasts over the grown batch;
  right-padded rows are exact at their real positions, since padding comes
  after them and attention is causal.
* `past` hands the model a Hugging Face KV cache (see `factlocate.forward.kv`).

`unembed` applies the final norm, the unembedding and Gemma's logit soft-capping
to residual vectors after the last block, so a caller that needs logits at a few
positions never builds the [batch, pos, vocab] tensor.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
from jaxtyping import Float, Int

from factlocate import arch


class StopForward(Exception):
    """Raised from a hook to end a forward pass early; carries the residual seen there."""

    def __init__(self, resid: torch.Tensor):
        super().__init__()
        self.resid = resid


@dataclass
class Inject:
    """Replace the residual entering block `layer` by `resid` (which sets the batch from there on)."""

    layer: int
    resid: Float[torch.Tensor, "rows pos d_model"]

    def __call__(self, h: torch.Tensor, hook=None) -> torch.Tensor:
        return self.resid.to(h.device, h.dtype).clone()


def _stop(h: torch.Tensor, hook=None):
    raise StopForward(h)


def run(
    model,
    ids: Int[torch.Tensor, "batch pos"],
    *,
    hooks: list | tuple = (),
    inject: Inject | None = None,
    stop_at: int | None = None,
    past=None,
    mask: torch.Tensor | None = None,
) -> Float[torch.Tensor, "rows pos d_model"]:
    """The residual entering block `stop_at` (default: after the last block), with `hooks` applied.

    `ids` may already be a single row when `inject` is given; `mask` is only for
    runs without `inject` (it is built for the rows of `ids`).
    """
    n_layers = arch.n_layers(model)
    stop_at = n_layers if stop_at is None else stop_at
    if not 0 <= stop_at <= n_layers:
        raise ValueError(f"stop_at={stop_at} is outside 0..{n_layers}")
    fwd_hooks = []
    if inject is not None:
        if mask is not None:
            raise ValueError("an injected run builds its own causal mask: pass no attention mask")
        if not 0 <= inject.layer < stop_at:
            raise ValueError(f"cannot inject at block {inject.layer} and stop at {stop_at}")
        ids = ids[:1]
        fwd_hooks.append((arch.hook_resid_in(model, inject.layer), inject))
    fwd_hooks += list(hooks)
    fwd_hooks.append((arch.hook_resid_in(model, stop_at), _stop))
    kwargs = {} if past is None else {"past_key_values": past}
    try:
        with model.hooks(fwd_hooks=fwd_hooks):
            model(ids.to(model.cfg.device), attention_mask=mask, **kwargs)
    except StopForward as stop:
        return stop.resid
    raise RuntimeError(f"the forward pass did not reach {arch.hook_resid_in(model, stop_at)}")  # pragma: no cover


def unembed(model, resid: Float[torch.Tensor, "n d_model"]) -> Float[torch.Tensor, "n vocab"]:
    """Final norm, unembedding and (Gemma) soft-capping of residual vectors after the last block."""
    return _soft_cap(model, model.unembed(model.ln_final(resid.unsqueeze(0)))[0])


def head_logits(model, normed: Float[torch.Tensor, "n d_model"]) -> Float[torch.Tensor, "n vocab"]:
    """The unembedding (with its hooks) and soft-capping of vectors already through the final norm, as
    `W @ normed^T`: the decoding path's logits (`generate.decoder`).

    The unembedding module computes `normed @ W^T`, for which MKL's sgemm on CPU takes a slow kernel when
    about 8-16 rows (a decoding step's) meet a large vocabulary; `W @ normed^T` does not (`make bench
    ONLY=decoding`). The two forms differ by float rounding; `generate.head_logits_verified` checks this one
    against the model's own head once per model.
    """
    unembed = model.unembed
    h = unembed.hook_in(normed.unsqueeze(1))[:, 0]
    logits = torch.mm(unembed.W_U.T, h.T).T + unembed.b_U  # W_U is a [d_model, vocab] view of HF's weight
    return _soft_cap(model, unembed.hook_out(logits.unsqueeze(1))[:, 0])


def _soft_cap(model, logits: torch.Tensor) -> torch.Tensor:
    cap = getattr(arch.hf_model(model).config, "final_logit_softcapping", None)
    return torch.tanh(logits / cap) * cap if cap else logits


def logits_at(model, ids, rows, positions, *, hooks=(), inject: Inject | None = None, mask=None):
    """Logits at (rows[i], positions[i]) only, after a run with `hooks` (and `inject`)."""
    resid = run(model, ids, hooks=hooks, inject=inject, mask=mask)
    rows = torch.as_tensor(rows, device=resid.device)
    positions = torch.as_tensor(positions, device=resid.device)
    return unembed(model, resid[rows, positions])
