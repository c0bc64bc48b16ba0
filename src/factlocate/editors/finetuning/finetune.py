"""The fine-tuning loop shared by FT, FT+L, FT-W and AttnEdit.

As in the original baselines (kmeng01/rome `baselines/ft/ft_main.py`):

    weights <- the chosen HF parameters (e.g. one layer's MLP output matrix and bias)
    for step in range(num_steps):
        for each batch of rewrite prompts:
            loss = mean over requests of -(1/|o|) sum_j log p(o_j | prompt)      (see below)
            if loss >= early_stop_loss: Adam step on loss + penalty
            if norm_constraint: clamp every weight to original +- eps           (FT+L, AttnEdit)
        stop when the mean loss of the step is below early_stop_loss
    deltas = weights - originals; weights restored

The default loss scores every target token at the LAST prompt position (the
original code's loss, not teacher-forced); `teacher_forced=True` scores token j
after the prompt and the target's first j tokens instead.

`weight_decay` is FT-W's regulariser: `weight_decay * sum ||W - W_orig||^2` over
the tuned parameters, added to the loss (the edit's delta decays towards zero).
`adam_weight_decay` is torch Adam's own L2 term (towards zero weights), as in the
original code's `Adam(weight_decay=...)`; it is 0 for every shipped config.
"""
from __future__ import annotations

import time
from dataclasses import dataclass

import torch
from jaxtyping import Float
from tqdm.auto import tqdm

from factlocate import arch, tokens
from factlocate.deltas import WeightDelta
from factlocate.editors.base import Computed, EditRequest, HParams, edit
from factlocate.errors import FactlocateError


@dataclass
class FinetuneHParams(HParams):
    """Hyperparameters of one fine-tuning baseline."""

    REQUIRED = ("layer",)

    layer: int | None = None  # model-specific: from configs/<editor>/<model>.yaml or --layer
    lr: float = 5e-4
    num_steps: int = 25
    batch_size: int = 64
    norm_constraint: float | None = None  # L-infinity clamp eps, or None
    weight_decay: float = 0.0  # penalty weight on ||W - W_orig||^2 (FT-W)
    adam_weight_decay: float = 0.0  # torch Adam's L2 towards zero (original code)
    early_stop_loss: float = 1e-2
    teacher_forced: bool = False
    seed: int = 0

    def __post_init__(self):
        if self.layer is not None and (not isinstance(self.layer, int) or self.layer < 0):
            raise FactlocateError(f"layer must be a non-negative integer, got {self.layer!r}")
        if not self.lr > 0:
            raise FactlocateError(f"lr must be positive, got {self.lr}")
        if not isinstance(self.num_steps, int) or self.num_steps < 1:
            raise FactlocateError(f"num_steps must be a positive integer, got {self.num_steps!r}")
        if not isinstance(self.batch_size, int) or self.batch_size < 1:
            raise FactlocateError(f"batch_size must be a positive integer, got {self.batch_size!r}")
        if self.norm_constraint is not None and not self.norm_constraint > 0:
            raise FactlocateError(
                f"norm_constraint (eps) must be positive, got {self.norm_constraint}; use null for none"
            )
        if self.weight_decay < 0 or self.adam_weight_decay < 0:
            raise FactlocateError("weight_decay and adam_weight_decay must be >= 0")
        if not self.early_stop_loss >= 0:
            raise FactlocateError(f"early_stop_loss must be >= 0, got {self.early_stop_loss}")


def last_position_loss(model, requests: list[EditRequest]) -> Float[torch.Tensor, ""]:
    """The original FT loss: all target tokens scored at the last prompt position."""
    ids, mask = tokens.batch(model, [tokens.encode(model, r.text) for r in requests])
    targets = [tokens.encode_target(model, r.target_new) for r in requests]
    tgt, tgt_mask = tokens.batch(model, targets)
    last = mask.sum(1) - 1
    logits = model(ids, attention_mask=mask)
    logp = logits[torch.arange(len(requests), device=logits.device), last].float().log_softmax(-1)
    picked = logp.gather(1, tgt) * tgt_mask
    return (-picked.sum(1) / tgt_mask.sum(1)).mean()


def teacher_forced_loss(model, requests: list[EditRequest]) -> Float[torch.Tensor, ""]:
    """Mean over requests of the length-normalised NLL of target_new after the prompt."""
    rows, spans = [], []
    for r in requests:
        p, t = tokens.encode(model, r.text), tokens.encode_target(model, r.target_new)
        rows.append(p + t)
        spans.append((len(p), len(t)))
    ids, mask = tokens.batch(model, rows)
    logp = model(ids, attention_mask=mask).float().log_softmax(-1)
    losses = []
    for i, (start, n) in enumerate(spans):
        pos = torch.arange(start - 1, start - 1 + n, device=logp.device)
        losses.append(-logp[i, pos, ids[i, start : start + n]].mean())
    return torch.stack(losses).mean()


def storage_aliases(model, params: dict[str, torch.nn.Parameter]) -> dict[str, list[torch.nn.Parameter]]:
    """Other bridge parameters that are views into each tuned HF parameter's storage.

    The bridge splits GPT-2's fused `c_attn` into q/k/v parameters that share its
    memory: the forward pass (and so autograd) sees those views, not `c_attn`.
    """
    out: dict[str, list[torch.nn.Parameter]] = {n: [] for n in params}
    seen = {id(p) for p in params.values()}
    for q in model.parameters():
        if id(q) in seen:
            continue
        for n, p in params.items():
            if q.untyped_storage().data_ptr() == p.untyped_storage().data_ptr():
                out[n].append(q)
                seen.add(id(q))
                break
    return out


def _gather_alias_grads(params, aliases) -> None:
    """Add the gradients of storage views into their HF parameter's .grad."""
    for n, p in params.items():
        views = [q for q in aliases[n] if q.grad is not None]
        if not views:
            continue
        g = torch.zeros_like(p, memory_format=torch.contiguous_format)
        for q in views:
            g.as_strided(q.size(), q.stride(), q.storage_offset() - p.storage_offset()).add_(q.grad)
            q.grad = None
        p.grad = g if p.grad is None else p.grad + g


def finetune(
    model,
    requests: list[EditRequest],
    names: list[str],
    hp: FinetuneHParams,
    progress: bool = True,
) -> tuple[list[WeightDelta], dict]:
    """Tune the HF parameters `names` towards the requests; return their deltas and a log.

    The parameters are restored bit-for-bit (and made frozen again) before returning.
    """
    if not names:
        raise FactlocateError("no parameters to fine-tune")
    torch.manual_seed(hp.seed)
    params = {n: arch.hf_parameter(model, n) for n in names}
    originals = {n: p.detach().clone() for n, p in params.items()}
    grad_flags = {n: p.requires_grad for n, p in params.items()}
    aliases = storage_aliases(model, params)
    alias_flags = [(q, q.requires_grad) for qs in aliases.values() for q in qs]
    loss_fn = teacher_forced_loss if hp.teacher_forced else last_position_loss
    eps = hp.norm_constraint
    log = {"loss": [], "penalty": [], "steps": 0}
    start = time.perf_counter()
    try:
        for p in params.values():
            p.requires_grad_(True)
        for q, _ in alias_flags:
            q.requires_grad_(True)
        opt = torch.optim.Adam(list(params.values()), lr=hp.lr, weight_decay=hp.adam_weight_decay)
        for _ in tqdm(range(hp.num_steps), desc="fine-tune", disable=not progress, leave=False):
            total, penalty_total = 0.0, 0.0
            for i in range(0, len(requests), hp.batch_size):
                chunk = requests[i : i + hp.batch_size]
                opt.zero_grad(set_to_none=True)
                loss = loss_fn(model, chunk)
                penalty = torch.zeros((), device=loss.device)
                if hp.weight_decay > 0:
                    penalty = hp.weight_decay * sum(
                        (p - originals[n]).float().pow(2).sum() for n, p in params.items()
                    )
                if loss.item() >= hp.early_stop_loss:
                    (loss + penalty).backward()
                    _gather_alias_grads(params, aliases)
                    opt.step()
                if eps is not None:
                    with torch.no_grad():
                        for n, p in params.items():
                            p.copy_(torch.clamp(p, originals[n] - eps, originals[n] + eps))
                total += loss.item() * len(chunk)
                penalty_total += penalty.item()
            log["loss"].append(total / len(requests))
            log["penalty"].append(penalty_total)
            log["steps"] += 1
            if log["loss"][-1] < hp.early_stop_loss:
                break
        deltas = [WeightDelta(n, (p.detach() - originals[n]).clone()) for n, p in params.items()]
    finally:
        with torch.no_grad():
            for n, p in params.items():
                p.copy_(originals[n])
                p.requires_grad_(grad_flags[n])
                p.grad = None
            for q, flag in alias_flags:
                q.requires_grad_(flag)
                q.grad = None
    log["seconds"] = time.perf_counter() - start
    return deltas, log


def mlp_out_names(model, layer: int) -> list[str]:
    """HF names of one layer's MLP output module: the matrix, and its bias where there is one."""
    bias = arch.mlp_out_bias_name(model, layer)
    return [arch.mlp_out_name(model, layer)] + ([bias] if bias else [])


def run(editor: str, model, requests, hp: FinetuneHParams, names_of, progress: bool = True, options=None):
    """Shared body of the FT-family `compute_edit`s: tune the parameters `names_of(model)` names."""
    def compute(requests: list[EditRequest]) -> Computed:
        names = names_of(model)
        deltas, log = finetune(model, requests, names, hp, progress=progress)
        return Computed(deltas, {"loss": log["loss"], "penalty": log["penalty"], "steps": log["steps"],
                                 "params": names})

    if hp.layer is not None:
        arch.check_layer(model, hp.layer)
    return edit(editor, model, requests, hp, compute, options)
