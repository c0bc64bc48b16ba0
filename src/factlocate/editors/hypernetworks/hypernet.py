"""What MEND and KE share: the edited matrices, the fine-tuning gradient they transform, and how a
transformed update acts on the model while the hypernetwork trains.

Edited matrices (`inner_params`). As in the reference (`config/model/gpt2.yaml`: `c_fc` and `c_proj` of
the last three blocks), the MLP input and output matrices of the last `n_blocks` blocks, found through the
bridge (`arch.component_param`: `mlp.in` and `mlp.out`). For a gated MLP (Llama, Gemma) `mlp.in` is the
up projection: the gate is left alone, so the edited pair is the same as GPT-2's (the matrix the key is
multiplied by on the way in, and the output matrix), and the gate's nonlinearity is untouched.

Every matrix is handled in the orientation y = x M (M [d_in, d_out]): GPT-2's Conv1D stores M, nn.Linear
stores Mᵀ. For one edit example, the gradient of the loss is ∇M = Σ_i u_iᵀ δ_i, with u_i the matrix's input
at token i and δ_i the gradient at its output (`capture_factors`). While the hypernetwork trains, its
update ΔM acts through forward hooks that add x ΔM to the matrix's output (`added`), so gradients reach
the hypernetwork without touching the weights.
"""
from __future__ import annotations

import contextlib
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from jaxtyping import Float

from factlocate import arch, tokens
from factlocate.deltas import WeightDelta
from factlocate.errors import FactlocateError


@dataclass(frozen=True)
class Inner:
    """One edited matrix: its HF name, the module that holds it, its [d_in, d_out] shape and orientation."""

    name: str
    layer: int
    path: str  # bridge path, "mlp.in" or "mlp.out"
    d_in: int
    d_out: int
    linear: bool  # stored [d_out, d_in] (nn.Linear), else [d_in, d_out] (Conv1D)


def inner_params(model, n_blocks: int = 3) -> list[Inner]:
    """The MLP input and output matrices of the last `n_blocks` blocks."""
    n = arch.n_layers(model)
    if not 1 <= n_blocks <= n:
        raise FactlocateError(f"n_blocks must be between 1 and {n}, got {n_blocks}")
    out = []
    for layer in range(n - n_blocks, n):
        for path in ("mlp.in", "mlp.out"):
            name = arch.component_param(model, layer, path)
            w = arch.hf_parameter(model, name)
            linear = arch.stored_transposed(model, layer, path)
            d_in, d_out = (w.shape[1], w.shape[0]) if linear else (w.shape[0], w.shape[1])
            out.append(Inner(name, layer, path, int(d_in), int(d_out), linear))
    return out


def to_weight_delta(model, inner: Inner, m: Float[torch.Tensor, "d_in d_out"]) -> WeightDelta:
    """A [d_in, d_out] update as a WeightDelta in the HF storage orientation."""
    p = arch.hf_parameter(model, inner.name)
    return WeightDelta(inner.name, (m.T if inner.linear else m).detach().to(p.dtype).contiguous())


# ---------------------------------------------------------------- edit examples and losses


@dataclass(frozen=True)
class Example:
    """One training (or edit) example: the edit, its equivalence input, and an unrelated locality input."""

    prompt: str  # the edit input (filled)
    target: str
    rephrase: str  # same fact, other words (MEND's equivalence input)
    locality: str  # text whose next-token distributions must not move


def target_batch(model, prompts: list[str], targets: list[str]):
    """Right-padded prompt+target rows, and (row, position, label) of every target token."""
    rows, reads = [], []
    for r, (p, t) in enumerate(zip(prompts, targets)):
        prompt_ids, target_ids = tokens.encode(model, p), tokens.encode_target(model, t)
        rows.append(prompt_ids + target_ids)
        reads += [(r, len(prompt_ids) - 1 + j, target_ids[j]) for j in range(len(target_ids))]
    ids, mask = tokens.batch(model, rows)
    return ids, mask, reads


def nll(model, prompts: list[str], targets: list[str]) -> torch.Tensor:
    """Mean over examples of the length-normalised NLL of each target after its prompt (teacher-forced)."""
    ids, mask, reads = target_batch(model, prompts, targets)
    logp = model(ids, attention_mask=mask).float().log_softmax(-1)
    per_row: dict[int, list] = {}
    for r, pos, label in reads:
        per_row.setdefault(r, []).append(-logp[r, pos, label])
    return torch.stack([torch.stack(v).mean() for v in per_row.values()]).mean()


def locality_logp(model, texts: list[str]) -> tuple[torch.Tensor, torch.Tensor]:
    """Log-probabilities at every real position of `texts`, and the mask."""
    ids, mask = tokens.batch(model, [tokens.encode(model, t) for t in texts])
    return model(ids, attention_mask=mask).float().log_softmax(-1), mask


def kl_loc(base_logp: torch.Tensor, edited_logp: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """KL(base ‖ edited) per position, averaged over the real positions (the reference's kl_loc_loss)."""
    kl = (base_logp.exp() * (base_logp - edited_logp)).sum(-1)
    return (kl * mask).sum() / mask.sum()


# ---------------------------------------------------------------- gradients and updates


@contextlib.contextmanager
def capture_factors(model, inners: list[Inner]):
    """Record, for each matrix, its input u [tokens, d_in] and output gradient δ [tokens, d_out].

    Yields a dict filled after `loss.backward()`: {name: (u, δ)} with padded rows kept (δ is 0 there).
    """
    found: dict[str, list] = {i.name: [None, None] for i in inners}
    handles = []
    for inner in inners:
        module = arch.component(model, inner.layer, inner.path)

        def keep_grad(g, name):
            found[name][1] = g.detach().reshape(-1, g.shape[-1])

        def fwd(module, args, output, name=inner.name):
            found[name][0] = args[0].detach().reshape(-1, args[0].shape[-1])
            if output.requires_grad:
                output.register_hook(lambda g, name=name: keep_grad(g, name))

        handles.append(module.register_forward_hook(fwd))
    factors: dict = {}
    try:
        yield factors
    finally:
        for h in handles:
            h.remove()
        factors.update({n: (u, d) for n, (u, d) in found.items() if u is not None and d is not None})


@contextlib.contextmanager
def added(model, inners: list[Inner], updates: dict[str, torch.Tensor]):
    """While active, matrix M of each inner param acts as M + updates[name] (x ΔM is added to its output)."""
    handles = []
    for inner in inners:
        if inner.name not in updates:
            continue
        module = arch.component(model, inner.layer, inner.path)

        def fwd(module, args, output, delta=updates[inner.name]):
            return output + args[0] @ delta.to(output.dtype)

        handles.append(module.register_forward_hook(fwd))
    try:
        yield
    finally:
        for h in handles:
            h.remove()


def edit_gradient(model, inners: list[Inner], prompt: str, target: str) -> dict[str, tuple]:
    """(u, δ) factors of the edit loss's gradient for every inner matrix, on the current weights."""
    params = [arch.hf_parameter(model, i.name) for i in inners]
    flags = [p.requires_grad for p in params]
    try:
        for p in params:
            p.requires_grad_(True)
        with torch.enable_grad(), capture_factors(model, inners) as factors:
            loss = nll(model, [prompt], [target])
            loss.backward()
    finally:
        for p, flag in zip(params, flags):
            p.grad = None
            p.requires_grad_(flag)
    return factors


def full_gradient(factors: dict[str, tuple]) -> dict[str, torch.Tensor]:
    """∇M = Σ_i u_iᵀ δ_i, [d_in, d_out], from the factors."""
    return {n: u.float().T @ d.float() for n, (u, d) in factors.items()}


def softmax_rank1(rows: torch.Tensor, cols: torch.Tensor) -> torch.Tensor:
    """softmax(rows)ᵀ ⊗ cols: KE's rank-one factor (rows [m], cols [n] -> [m, n])."""
    return F.softmax(rows, -1)[:, None] * cols[None, :]
