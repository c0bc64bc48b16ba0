"""The target vector v* (ROME) or z (MEMIT): optimise a vector added at one hook.

A vector δ is added to the activation at `hook` (ROME: the MLP output of layer
L, `arch.hook_mlp_value(L)`; MEMIT: the residual, `arch.hook_resid(L)`) at the
fact token of every prompt. The prompts are the context templates filled with
the request's prompt and subject, each followed by the target's tokens except
the last, plus the "essence" prompts (`"{} is a"`). δ minimises

    mean length-normalised NLL of the target tokens
    + kl_factor * KL(current ‖ original) of the next token at the essence prompts' fact token
    + weight_decay * |δ| / |v_init|²

with Adam, stopping once the loss is below 5e-2, taking no step on the last
iteration, and projecting δ to |δ| ≤ clamp_norm_factor·|v_init| after each step.
v_init is the activation at the fact token of the first prompt (the plain
prompt when the first template is "{}"), and the result is v_init + δ.

`fast=True` is `target_batch.optimise_many` with this one request: the blocks
below the hook's layer run once (they cannot change), each step runs only the
positions from the fact token on (the earlier ones' keys and values come from a
cache, where that is verified) and logits are computed only where the loss reads
them. `fast=False` runs full forward passes with full logits: the reference the
fast path is tested against (equal within float rounding).
"""
from __future__ import annotations

from dataclasses import dataclass, field

import torch
import torch.nn.functional as F
from jaxtyping import Float

from factlocate import arch, tokens
from factlocate.editors.keyvalue.keys import lookup_position
from factlocate.hooks.add_vector import AddVector


@dataclass
class Batch:
    """Right-padded prompts with where the loss reads and where δ is added."""

    ids: torch.Tensor
    mask: torch.Tensor
    lookup: list[int]  # fact-token position per row
    n_rewrite: int  # rows 0..n_rewrite-1 are rewriting prompts, the rest essence prompts
    target_ids: list[int]
    texts: list[str]


def build_batch(model, prompt: str, subject: str, target: str, templates: list[str],
                fact_token: str = "subject_last", kl_prompts=("{} is a",)) -> Batch:
    """The rewriting and essence prompts of one request, tokenised as in ROME's compute_v."""
    target_ids = tokens.encode_target(model, target)
    target_prefix = model.tokenizer.decode(target_ids[:-1])
    filled = [t.format(prompt).format(subject) for t in templates]
    essence = [k.format(subject) for k in kl_prompts]
    texts = [f + target_prefix for f in filled] + essence
    lookup = [lookup_position(model, f, subject, fact_token) for f in filled + essence]
    ids, mask = tokens.batch(model, [tokens.encode(model, t) for t in texts])
    return Batch(ids, mask, lookup, len(filled), target_ids, texts)


@dataclass
class TargetResult:
    v_init: Float[torch.Tensor, "d"]
    delta: Float[torch.Tensor, "d"]
    losses: list[dict] = field(default_factory=list)  # per step: nll, kl, weight_decay, loss

    @property
    def target(self) -> Float[torch.Tensor, "d"]:
        return self.v_init + self.delta


STOP_LOSS = 5e-2  # a request's optimisation stops once its loss is below this (the reference code's value)


def work_dtype(model) -> torch.dtype:
    """The dtype δ and the losses are kept in: the model's, but never below float32."""
    return torch.promote_types(next(arch.hf_model(model).parameters()).dtype, torch.float32)


def read_positions(batch: Batch):
    """(rows, positions, labels) of the target tokens, then (rows, positions) of the essence prompts."""
    n_t = len(batch.target_ids)
    rows, pos, labels = [], [], []
    for i in range(batch.n_rewrite):
        ex_len = int(batch.mask[i].sum())
        for j in range(n_t):
            rows.append(i)
            pos.append(ex_len - n_t + j)  # the input ends with target[:-1]: this position predicts target j
            labels.append(batch.target_ids[j])
    kl_rows = list(range(batch.n_rewrite, len(batch.texts)))
    kl_pos = [batch.lookup[i] for i in kl_rows]
    return rows, pos, labels, kl_rows, kl_pos


def optimise(
    model,
    batch: Batch,
    hook: str,
    layer: int,
    v_num_grad_steps: int = 20,
    v_lr: float = 0.5,
    v_weight_decay: float = 0.5,
    clamp_norm_factor: float = 4.0,
    kl_factor: float = 0.0625,
    fast: bool = True,
    progress=None,
) -> TargetResult:
    """Optimise δ at `hook`, which must belong to block `layer` (see the module docstring)."""
    if fast:
        from factlocate.editors.keyvalue.target_batch import optimise_many

        return optimise_many(model, [batch], hook, layer, v_num_grad_steps, v_lr, v_weight_decay,
                             clamp_norm_factor, kl_factor, progress=progress)[0]
    device = model.cfg.device
    rows, pos, labels, kl_rows, kl_pos = read_positions(batch)
    all_rows = torch.tensor(rows + kl_rows, device=device)
    all_pos = torch.tensor(pos + kl_pos, device=device)
    labels = torch.tensor(labels, device=device)
    n_t, n_read = len(batch.target_ids), len(rows)

    work = work_dtype(model)
    delta = torch.zeros(int(model.cfg.d_model), device=device, dtype=work, requires_grad=True)
    add = AddVector(delta, list(range(len(batch.texts))), batch.lookup)
    opt = torch.optim.Adam([delta], lr=v_lr)
    kl_init = None
    losses = []
    for it in range(v_num_grad_steps):
        opt.zero_grad()
        with model.hooks(fwd_hooks=[(hook, add)]):
            full = model(batch.ids, attention_mask=batch.mask)
        logits = full[all_rows, all_pos]
        logp = logits.to(work).log_softmax(-1)
        token_lp = logp[:n_read].gather(1, labels[:, None])[:, 0].view(batch.n_rewrite, n_t)
        nll = (-token_lp.sum(1) / n_t).mean()
        kl_logp = logp[n_read:]
        if kl_init is None:
            kl_init = kl_logp.detach().clone()
        kl = kl_factor * F.kl_div(kl_init, kl_logp, log_target=True, reduction="batchmean")
        v_init = add.first
        weight_decay = v_weight_decay * (delta.norm() / v_init.norm() ** 2)
        loss = nll + kl + weight_decay
        losses.append({"nll": nll.item(), "kl": kl.item(), "weight_decay": weight_decay.item(), "loss": loss.item()})
        if progress is not None:
            progress(it, losses[-1])
        if loss.item() < STOP_LOSS or it == v_num_grad_steps - 1:
            break
        loss.backward()
        opt.step()
        max_norm = clamp_norm_factor * v_init.norm()
        if delta.norm() > max_norm:
            with torch.no_grad():
                delta.mul_(max_norm / delta.norm())
    return TargetResult(add.first.detach().clone(), delta.detach().clone(), losses)

