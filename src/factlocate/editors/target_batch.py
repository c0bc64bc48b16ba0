"""Optimise many requests' target vectors together: MEMIT's and AlphaEdit's z, batched.

Each request keeps everything it has in the one-at-a-time loop (`target_vector.optimise`):
its own δ, its own loss (NLL over its rewriting rows, KL over its essence rows, weight decay
against its own v_init), its own early stop at loss 5e-2, its own norm clamp, and its own Adam
state: every δ is a separate tensor of one torch Adam, and a request that has stopped gets no
gradient, so Adam leaves it untouched. One forward pass per step runs the rows of every request
still optimising, from the z layer up (`forward.control.Inject`), with logits only where a loss
reads them. Rows do not interact, so the z's equal the one-at-a-time z's up to float rounding:
the batch only changes how matrix products are blocked.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F

from factlocate import tokens
from factlocate.editors.target_vector import Batch, TargetResult
from factlocate.forward import Inject, control
from factlocate.hooks.add_vector import AddVectors

STOP_LOSS = 5e-2


@dataclass
class _Reads:
    """Where request i's losses read: global rows/positions/labels of its target tokens, then its essence rows."""

    rows: list[int]
    positions: list[int]
    labels: list[int]
    n_rewrite: int
    n_target: int
    kl_rows: list[int]
    kl_positions: list[int]


def _layout(model, batches: list[Batch]):
    """Pad every request's texts jointly; return ids, mask, row owners, lookup positions and each request's reads."""
    texts, owner, lookup, reads = [], [], [], []
    for i, b in enumerate(batches):
        offset = len(texts)
        texts += b.texts
        owner += [i] * len(b.texts)
        lookup += b.lookup
        n_t = len(b.target_ids)
        rows, pos, labels = [], [], []
        for r in range(b.n_rewrite):
            ex_len = int(b.mask[r].sum())
            for j in range(n_t):
                rows.append(offset + r)
                pos.append(ex_len - n_t + j)
                labels.append(b.target_ids[j])
        kl_rows = list(range(offset + b.n_rewrite, offset + len(b.texts)))
        reads.append(_Reads(rows, pos, labels, b.n_rewrite, n_t, kl_rows, [lookup[k] for k in kl_rows]))
    ids, mask = tokens.batch(model, [tokens.encode(model, t) for t in texts])
    return ids, mask, owner, lookup, reads


def optimise_many(model, batches: list[Batch], hook: str, layer: int, v_num_grad_steps: int = 25,
                  v_lr: float = 0.5, v_weight_decay: float = 0.5, clamp_norm_factor: float = 0.75,
                  kl_factor: float = 0.0625) -> list[TargetResult]:
    """One `TargetResult` per batch (request), as `target_vector.optimise(fast=True)` would give each."""
    device = model.cfg.device
    ids, mask, owner, lookup, reads = _layout(model, batches)
    with torch.no_grad():
        prefix = control.run(model, ids, stop_at=layer, mask=mask)
    deltas = [torch.zeros(int(model.cfg.d_model), device=device, requires_grad=True) for _ in batches]
    add = AddVectors(deltas, owner, lookup)
    opt = torch.optim.Adam(deltas, lr=v_lr)
    kl_init: list[torch.Tensor | None] = [None] * len(batches)
    losses: list[list[dict]] = [[] for _ in batches]
    active = list(range(len(batches)))
    owner_t = torch.tensor(owner)
    for it in range(v_num_grad_steps):
        opt.zero_grad()
        selected = torch.cat([torch.nonzero(owner_t == i)[:, 0] for i in active])
        local = {int(g): k for k, g in enumerate(selected)}
        add.rows = selected
        read_rows, read_pos = [], []
        for i in active:
            read_rows += [local[r] for r in reads[i].rows + reads[i].kl_rows]
            read_pos += reads[i].positions + reads[i].kl_positions
        logits = control.logits_at(model, ids[selected], read_rows, read_pos, hooks=[(hook, add)],
                                   inject=Inject(layer, prefix[selected]))
        logp = logits.float().log_softmax(-1)
        continuing, total, at = [], None, 0
        for i in active:
            r = reads[i]
            n_read, n_kl = len(r.rows), len(r.kl_rows)
            labels = torch.tensor(r.labels, device=logp.device)
            token_lp = logp[at : at + n_read].gather(1, labels[:, None])[:, 0].view(r.n_rewrite, r.n_target)
            nll = (-token_lp.sum(1) / r.n_target).mean()
            kl_logp = logp[at + n_read : at + n_read + n_kl]
            at += n_read + n_kl
            if kl_init[i] is None:
                kl_init[i] = kl_logp.detach().clone()
            kl = kl_factor * F.kl_div(kl_init[i], kl_logp, log_target=True, reduction="batchmean")
            v_init = add.first[i]
            weight_decay = v_weight_decay * (deltas[i].norm() / v_init.norm() ** 2)
            loss = nll + kl + weight_decay
            losses[i].append({"nll": nll.item(), "kl": kl.item(), "weight_decay": weight_decay.item(),
                              "loss": loss.item()})
            if loss.item() < STOP_LOSS or it == v_num_grad_steps - 1:
                continue  # this request is done: no step, as in the one-at-a-time loop
            continuing.append(i)
            total = loss if total is None else total + loss
        if not continuing:
            break
        total.backward()
        for i in set(active) - set(continuing):
            deltas[i].grad = None  # Adam steps only tensors with a gradient
        opt.step()
        for i in continuing:
            max_norm = clamp_norm_factor * add.first[i].norm()
            if deltas[i].norm() > max_norm:
                with torch.no_grad():
                    deltas[i].mul_(max_norm / deltas[i].norm())
        active = continuing
    return [TargetResult(add.first[i].detach().clone(), deltas[i].detach().clone(), losses[i])
            for i in range(len(batches))]
