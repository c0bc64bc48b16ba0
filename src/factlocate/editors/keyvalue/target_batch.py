"""Optimise many requests' target vectors together: MEMIT's and AlphaEdit's z, batched.

Each request keeps everything it has in the one-at-a-time loop (`target_vector.optimise`):
its own δ, its own loss (NLL over its rewriting rows, KL over its essence rows, weight decay
against its own v_init), its own early stop at loss 5e-2, its own norm clamp, and its own Adam
state: every δ is a separate tensor of one torch Adam, and a request that has stopped gets no
gradient, so Adam leaves it untouched. One forward pass per step runs the rows of every request
still optimising, from the z layer up (`forward.control.Inject`), with logits only where a loss
reads them. Rows do not interact, so the z's equal the one-at-a-time z's up to float rounding:
the batch only changes how matrix products are blocked.

Two ways run those forwards; both start at block `layer` from its input, computed once:

* `_Whole`: every position of every active row, each step.
* `_Suffixes`: positions before a row's fact token cannot change (δ is added there and
  attention is causal), so one no-grad pass keeps their keys and values, and each step runs
  only positions from the fact token on. Rows are grouped by fact-token position and
  length (`_groups`); a group runs from its earliest fact token to its longest row and reads
  the positions before it from the cache (`forward.kv`). It is checked once per loaded model against `_Whole` on the
  first requests it meets (`suffix_verified`); where it does not match, `_Whole` runs.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F

from factlocate import arch, tokens
from factlocate.editors.keyvalue.target_vector import STOP_LOSS, Batch, TargetResult, read_positions, work_dtype
from factlocate.forward import Capture, Inject, control, kv
from factlocate.hooks.add_vector import AddVectors

GROUP_COST = 64  # a forward and backward pass's fixed cost, in positions (measured on CPU with SmolLM2-135M)


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
        rows, pos, labels, kl_rows, kl_pos = read_positions(b)  # rows local to this request
        reads.append(_Reads([offset + r for r in rows], pos, labels, b.n_rewrite, len(b.target_ids),
                            [offset + r for r in kl_rows], kl_pos))
    ids, mask = tokens.batch(model, [tokens.encode(model, t) for t in texts])
    return ids, mask, owner, lookup, reads


class _Whole:
    """Blocks `layer`.. on whole rows: the residual entering `layer` is injected each step."""

    def __init__(self, model, ids, mask, lookup, layer: int, hook: str, add: AddVectors):
        self.model, self.ids, self.layer, self.hook, self.add = model, ids, layer, hook, add
        with torch.no_grad():
            self.prefix = control.run(model, ids, stop_at=layer, mask=mask)

    def logits(self, rows: list[int], read_rows: list[int], read_pos: list[int]) -> torch.Tensor:
        """Logits at (read_rows[i], read_pos[i]) (global rows and positions) with the active `rows` run."""
        local = {g: k for k, g in enumerate(rows)}
        self.add.rows, self.add.shift = rows, 0
        return control.logits_at(self.model, self.ids[rows], [local[r] for r in read_rows], read_pos,
                                 hooks=[(self.hook, self.add)], inject=Inject(self.layer, self.prefix[rows]))


def _groups(lookup: list[int], lengths: list[int], group_cost: int = GROUP_COST) -> list[tuple[int, list[int]]]:
    """(start, rows) groups covering every row once, each running positions start..(its longest row).

    Rows sorted by fact-token position are cut into runs that minimise the positions run
    (rows x (longest end - first fact token)) plus `group_cost` per group (dynamic programming).
    """
    order = sorted(range(len(lookup)), key=lambda r: (lookup[r], lengths[r], r))
    n = len(order)
    best, cut = [0.0] + [float("inf")] * n, [0] * (n + 1)
    for j in range(1, n + 1):
        end = 0
        for i in range(j - 1, -1, -1):  # the run order[i:j]
            end = max(end, lengths[order[i]])
            cost = best[i] + group_cost + (j - i) * (end - lookup[order[i]])
            if cost < best[j]:
                best[j], cut[j] = cost, i
    groups, j = [], n
    while j > 0:
        i = cut[j]
        groups.append((lookup[order[i]], sorted(order[i:j])))
        j = i
    return groups[::-1]


class _Suffixes:
    """Blocks `layer`.. on positions from each group's start, positions before it from a KV cache."""

    def __init__(self, model, ids, mask, lookup, layer: int, hook: str, add: AddVectors):
        self.model, self.ids, self.layer, self.hook, self.add = model, ids, layer, hook, add
        cache, capture = kv.empty(model), Capture([arch.hook_resid_in(model, layer)])
        with torch.no_grad():
            control.run(model, ids, hooks=capture.hooks, past=cache, mask=mask)
        if not kv.holds_all(cache, ids.shape[1]):  # e.g. a sliding window shorter than the rows
            raise kv.CacheIncomplete("the forward pass left the KV cache without every position")
        self.kv = kv.layers(cache)
        self.resid = capture[arch.hook_resid_in(model, layer)]
        self.lengths = mask.sum(1).tolist()
        self.groups = _groups(lookup, self.lengths)

    def _run_group(self, start: int, rows: list[int]) -> torch.Tensor:
        """The residual after the last block at positions start..end-1 of `rows` (end: their longest row)."""
        idx = torch.tensor(rows)
        end = max(self.lengths[r] for r in rows)
        past = kv.injected_prefix(self.model, self.kv, idx, start, self.layer) if start > 0 else None
        self.add.rows, self.add.shift = rows, start
        inject = Inject(self.layer, self.resid[idx, start:end])
        return control.run(self.model, self.ids[idx[:1], start:end], hooks=[(self.hook, self.add)],
                           inject=inject, past=past)

    def logits(self, rows: list[int], read_rows: list[int], read_pos: list[int]) -> torch.Tensor:
        active = set(rows)
        parts, order = [], []
        for start, members in self.groups:
            members = [r for r in members if r in active]
            chosen = set(members)
            wanted = [k for k, r in enumerate(read_rows) if r in chosen]
            if not wanted:  # no loss reads these rows
                continue
            resid = self._run_group(start, members)
            local = {g: j for j, g in enumerate(members)}
            at_rows = torch.tensor([local[read_rows[k]] for k in wanted])
            at_pos = torch.tensor([read_pos[k] - start for k in wanted])
            parts.append(resid[at_rows, at_pos])
            order += wanted
        # One unembedding for every group: it reads the whole [d_model, vocab] matrix, which costs more than
        # its few rows (Gemma's is 671 MB in float32), so each extra call would read it again, and again backwards.
        resid = torch.cat(parts)
        return control.unembed(self.model, resid[torch.argsort(torch.tensor(order)).to(resid.device)])


def suffix_verified(model, ids, mask, lookup, layer: int, hook: str, n_vectors: int, owner: list[int]) -> bool:
    """Whether `_Suffixes` gives `_Whole`'s logits on these rows, with a random δ per request (checked once)."""
    def probe():
        reads = list(range(len(lookup)))
        positions = [max(lookup[r], min(n - 1, lookup[r] + 2)) for r, n in enumerate(mask.sum(1).tolist())]
        out = []
        for way in (_Suffixes, _Whole):
            gen = torch.Generator().manual_seed(0)
            vectors = [torch.randn(int(model.cfg.d_model), generator=gen).to(model.cfg.device)
                       for _ in range(n_vectors)]
            add = AddVectors([torch.zeros_like(v) for v in vectors], owner, lookup)
            runner = way(model, ids, mask, lookup, layer, hook, add)
            runner.logits(reads, reads, positions)  # records each request's v_init
            add.vectors = [v * 0.5 * f.norm() / v.norm() for v, f in zip(vectors, add.first)]
            out.append(runner.logits(reads, reads, positions).float().log_softmax(-1))
        return out[0], out[1]

    return kv.verified(model, "target optimisation", probe)


def optimise_many(model, batches: list[Batch], hook: str, layer: int, v_num_grad_steps: int = 25,
                  v_lr: float = 0.5, v_weight_decay: float = 0.5, clamp_norm_factor: float = 0.75,
                  kl_factor: float = 0.0625, reuse: bool | None = None, progress=None) -> list[TargetResult]:
    """One `TargetResult` per batch (request), as `target_vector.optimise(fast=True)` would give each.

    `reuse` forces the KV-cache suffix runs on or off (default: on where `suffix_verified`).
    `progress(step, losses of request 0)` is called after each step's losses, as in `optimise`.
    """
    device = model.cfg.device
    ids, mask, owner, lookup, reads = _layout(model, batches)
    if reuse is None:
        reuse = suffix_verified(model, ids, mask, lookup, layer, hook, len(batches), owner)
    work = work_dtype(model)
    deltas = [torch.zeros(int(model.cfg.d_model), device=device, dtype=work, requires_grad=True) for _ in batches]
    add = AddVectors(deltas, owner, lookup)
    runner = None
    if reuse:
        try:
            runner = _Suffixes(model, ids, mask, lookup, layer, hook, add)
        except kv.CacheIncomplete:
            pass
    runner = runner or _Whole(model, ids, mask, lookup, layer, hook, add)
    opt = torch.optim.Adam(deltas, lr=v_lr)
    kl_init: list[torch.Tensor | None] = [None] * len(batches)
    losses: list[list[dict]] = [[] for _ in batches]
    active = list(range(len(batches)))
    rows_of = [[g for g, o in enumerate(owner) if o == i] for i in range(len(batches))]
    for it in range(v_num_grad_steps):
        opt.zero_grad()
        rows = [g for i in active for g in rows_of[i]]
        read_rows, read_pos = [], []
        for i in active:
            read_rows += reads[i].rows + reads[i].kl_rows
            read_pos += reads[i].positions + reads[i].kl_positions
        logp = runner.logits(rows, read_rows, read_pos).to(work).log_softmax(-1)
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
            if progress is not None and i == 0:
                progress(it, losses[0][-1])
            if loss.item() < STOP_LOSS or it == v_num_grad_steps - 1:
                continue  # this request is done: no step, as in the one-at-a-time loop
            continuing.append(i)
            total = loss if total is None else total + loss
        if not continuing:
            break
        total.backward()
        stepping = set(continuing)
        for i in range(len(deltas)):
            if i not in stepping:
                # Every δ is in the graph (the hook stacks them all), so a stopped request's δ gets a zero
                # gradient, and Adam would keep moving it on its momentum. Adam skips tensors without one.
                deltas[i].grad = None
        opt.step()
        for i in continuing:
            max_norm = clamp_norm_factor * add.first[i].norm()
            if deltas[i].norm() > max_norm:
                with torch.no_grad():
                    deltas[i].mul_(max_norm / deltas[i].norm())
        active = continuing
    return [TargetResult(add.first[i].detach().clone(), deltas[i].detach().clone(), losses[i])
            for i in range(len(batches))]
