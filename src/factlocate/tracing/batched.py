"""The batched exact engine: many restored sites per forward pass.

Same numbers as the naive engine (up to float rounding), much less work:

1. One clean pass and one corrupted pass (S rows, noise from a fresh
   `RandomState(seed)`) record the residual entering every block, and the MLP
   and attention outputs.
2. Every site (token t, layer l) becomes S rows of a big batch. A site's rows
   start at the first block its restoration can change (l + 1 for a hidden
   state, the window's first layer for mlp/attn). The batch grows as it goes
   up: rows join at their first block, entering with the cached corrupted
   residual there (`hooks.restoration.Replace`, then `Append`), so no row runs
   a block whose output is already known. Blocks below the chunk's first row
   are skipped (`hooks.skipping.skip_blocks`).
3. Per-row index assignments (`hooks.restoration.WriteAt`) write the clean
   values (and, for severed traces, the corrupted module outputs) into the
   right rows.
4. Positions before the restored token are the corrupted pass's in every
   layer, so a site's rows run only positions t.. and read the keys and values
   of positions 0..t-1 from the corrupted pass's KV cache (`prefix_cache`).
5. The forward stops after the last block; the final norm and unembedding run
   only at the last position.
6. Positions before the subject never see the noise, so restoring them changes
   nothing: their score is the corrupted score, without a forward pass.

Sites of all requested grids are pooled, grouped by token, sorted by their
first block and cut into chunks of at most `chunk_rows` rows, which bounds memory.
"""
from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field
from itertools import groupby

import numpy as np
import torch
from tqdm.auto import tqdm

from factlocate import arch
from factlocate.hooks.corruption import CorruptEmbedding
from factlocate.hooks.partial_forward import StopForward, final_logits
from factlocate.hooks.restoration import Append, Chain, Replace, WriteAt
from factlocate.hooks.severing import Record
from factlocate.hooks.skipping import block_returns_tuple, skip_blocks
from factlocate.tracing.core import Prepared, TraceParams, module_hook, window_layers
from factlocate.tracing.prefix_cache import prefix_cache


def resid_in(layer: int, n_layers: int) -> str:
    """The residual entering block `layer`; `layer == n_layers` is the last block's output."""
    return f"blocks.{layer}.hook_resid_pre" if layer < n_layers else arch.hook_resid(n_layers - 1)


@dataclass
class _Run:
    """Activations of one pass: {hook name: [rows, pos, d]}, the mean p(answer) and the HF KV cache."""

    acts: dict[str, torch.Tensor]
    score: float
    cache: object = None


@dataclass
class _Site:
    job: int
    cell: tuple[int, int]  # (position index, layer) in the job's grid
    position: int
    start: int  # first block that must run
    base: str  # "A" or "B": which corrupted pass the row continues
    clean: list[str] = field(default_factory=list)  # hooks restored from the clean run at `position`
    frozen: list[str] = field(default_factory=list)  # hooks held at corrupted pass A at `position`


@torch.no_grad()
def _record(model, ids: torch.Tensor, names: list[str], hooks: list, answer: int) -> _Run:
    records = {n: Record() for n in names}
    with model.hooks(fwd_hooks=hooks + [(n, records[n]) for n in names]):
        logits, cache = model(ids, return_type="logits_and_cache", use_cache=True)
    score = torch.softmax(logits[:, -1, :].float(), dim=1).mean(dim=0)[answer]
    return _Run({n: r.value for n, r in records.items()}, float(score), cache)


def _full_length(cache, n_tokens: int) -> bool:
    """Whether every cached layer holds all positions (a sliding window may have dropped some)."""
    return all(layer.keys.shape[-2] == n_tokens for layer in cache.layers if layer.is_initialized)


def _sites(job: int, params: TraceParams, prep: Prepared, positions: list[int]) -> tuple[list[_Site], dict]:
    """The sites one grid needs, and the cells whose score is known without a forward."""
    n_layers, (b, _) = prep.n_layers, prep.subject_range
    reference = params.sever is not None and params.noise_draws == "reference"
    sites, known = [], {}
    for i, t in enumerate(positions):
        for l in range(n_layers):
            if t < b:  # the noise cannot reach position t: restoring it is a no-op
                known[(i, l)] = "B" if reference else "A"
                continue
            if params.kind == "hidden":
                site = _Site(job, (i, l), t, l + 1, "A", clean=[resid_in(l + 1, n_layers)])
                if params.sever:
                    # Pass A equals this run below l + 1, so freezing there is a no-op;
                    # with reference draws the run differs from pass A from the start.
                    frozen_from = 0 if reference else l + 1
                    site.frozen = [module_hook(params.sever, j) for j in range(frozen_from, n_layers)]
                    if reference:
                        site.start, site.base = 0, "B"
            else:
                layers = window_layers(l, params.window, n_layers)
                site = _Site(job, (i, l), t, layers[0], "A",
                             clean=[module_hook(params.kind, j) for j in layers])
            sites.append(site)
    return sites, known


@dataclass
class _Rows:
    """The rows of one chunk, ordered by first block: rows 0..n_k-1 are the ones running block k."""

    sample: torch.Tensor  # [n_rows] noise sample each row continues
    from_b: torch.Tensor  # [n_rows] whether it continues corrupted pass B (reference draws)
    start: torch.Tensor  # [n_rows] first block it runs

    @classmethod
    def of(cls, chunk: list[_Site], S: int) -> "_Rows":
        n_rows = len(chunk) * S
        return cls(torch.arange(n_rows) % S, torch.tensor([s.base == "B" for s in chunk for _ in range(S)]),
                   torch.tensor([s.start for s in chunk for _ in range(S)]))

    def running(self, block: int) -> int:
        """How many rows run block `block` (or have finished, for `block == n_layers`)."""
        return int((self.start <= block).sum())

    def corrupted(self, runs: dict[str, _Run], name: str, lo: int, hi: int, first: int) -> torch.Tensor:
        """Rows lo..hi-1 of corrupted activation `name`, positions first.., from pass A or B per row."""
        value = runs["A"].acts[name][self.sample[lo:hi], first:]
        b = self.from_b[lo:hi]
        if b.any():
            value[b] = runs["B"].acts[name][self.sample[lo:hi][b], first:]
        return value


def _chunk_hooks(prep: Prepared, chunk: list[_Site], rows: _Rows, first: int, clean: _Run,
                 runs: dict[str, _Run]) -> list:
    """Joining, restoration, freezing and stop hooks for one chunk of sites.

    The batch grows from block to block: rows join at their site's first block,
    entering with the corrupted residual there, so no row runs a block whose
    output is already known. The chunk's rows run positions `first`.. only:
    position t of the prompt is index t - first of the activations these hooks see.
    """
    S, n_layers = prep.samples, prep.n_layers
    per_hook: dict[str, list] = defaultdict(list)
    joined = 0
    for block in range(int(rows.start[0]), n_layers + 1):
        running = rows.running(block)
        if running > joined:
            name = resid_in(block, n_layers)
            value = rows.corrupted(runs, name, joined, running, first)
            per_hook[name].append(Replace(value) if joined == 0 else Append(value))
            joined = running
    writes = defaultdict(lambda: ([], [], [], []))  # hook -> clean rows, clean pos, frozen rows, frozen pos
    for k, site in enumerate(chunk):
        rows_k = range(k * S, (k + 1) * S)
        for name in site.clean:
            writes[name][0].extend(rows_k)
            writes[name][1].extend([site.position] * S)
        for name in site.frozen:
            writes[name][2].extend(rows_k)
            writes[name][3].extend([site.position] * S)
    for name, (cr, cp, fr, fp) in writes.items():
        if cr:
            pos = torch.tensor(cp)
            per_hook[name].append(WriteAt(torch.tensor(cr), pos - first, clean.acts[name][0, pos]))
        if fr:
            fr, pos = torch.tensor(fr), torch.tensor(fp)
            per_hook[name].append(WriteAt(fr, pos - first, runs["A"].acts[name][rows.sample[fr], pos]))

    def stop(h, hook):
        raise StopForward(h[:, -1].clone())

    per_hook[resid_in(n_layers, n_layers)].append(stop)
    return [(name, Chain(*fns)) for name, fns in per_hook.items()]


def _past(rows: _Rows, first: int, runs: dict[str, _Run], n_layers: int):
    """The corrupted passes' keys and values of positions 0..first-1 for the rows running each layer.

    A layer no row reaches gets one (unused) entry: HF reads the prefix length from layer 0.
    """
    if first == 0:
        return None
    per_layer = [rows.sample[: max(1, rows.running(k))] for k in range(n_layers)]
    past = prefix_cache(runs["A"].cache, per_layer, first)
    if rows.from_b.any():  # rows continuing pass B (reference draws) take its keys and values
        from_b = prefix_cache(runs["B"].cache, per_layer, first)
        for layer, other in zip(past.layers, from_b.layers):
            if layer.is_initialized:
                b = rows.from_b[: layer.keys.shape[0]]
                layer.keys[b], layer.values[b] = other.keys[b], other.values[b]
    return past


@torch.no_grad()
def run_jobs(model, prep: Prepared, jobs: list[TraceParams], positions: list[int],
             progress: bool = False) -> tuple[list[np.ndarray], float]:
    """Fill one [len(positions), n_layers] grid per job; also return the corrupted score."""
    S, n_layers, device = prep.samples, prep.n_layers, model.cfg.device
    b, e = prep.subject_range
    d_model = int(model.cfg.d_model)
    names = [resid_in(k, n_layers) for k in range(n_layers + 1)]
    names += [module_hook(kind, l) for kind in ("mlp", "attn") for l in range(n_layers)]

    clean = _record(model, prep.ids_tensor(1).to(device), names, [], prep.answer_id)
    rs = np.random.RandomState(prep.seed)
    runs = {}
    for base in ("A", "B"):
        if base == "B" and not any(j.sever and j.noise_draws == "reference" for j in jobs):
            break
        noise = prep.noise.draw(rs, S, e - b, d_model)  # B: the generator's next draws
        corrupt = CorruptEmbedding(noise, b, e, prep.noise.replace, first_row=0)
        runs[base] = _record(model, prep.ids_tensor(S).to(device), names, [(arch.HOOK_EMBED, corrupt)],
                             prep.answer_id)

    grids = [np.zeros((len(positions), n_layers)) for _ in jobs]
    sites = []
    for j, params in enumerate(jobs):
        job_sites, known = _sites(j, params, prep, positions)
        sites += job_sites
        for cell, base in known.items():
            grids[j][cell] = runs[base].score
    # Rows of one chunk share their first position, so group the sites by token.
    reuse = all(_full_length(run.cache, len(prep.ids)) for run in runs.values())
    sites.sort(key=lambda s: (s.position if reuse else 0, s.start))
    per_chunk = max(1, jobs[0].chunk_rows // S)
    chunks = []
    for _, group in groupby(sites, key=lambda s: s.position if reuse else 0):
        group = list(group)
        chunks += [group[i : i + per_chunk] for i in range(0, len(group), per_chunk)]
    tuple_output = block_returns_tuple(model) if chunks else False
    for chunk in tqdm(chunks, desc="trace (batched)", disable=not progress, leave=False):
        rows = _Rows.of(chunk, S)
        first = chunk[0].position if reuse else 0
        hooks = _chunk_hooks(prep, chunk, rows, first, clean, runs)
        past = _past(rows, first, runs, n_layers)
        try:  # one input row: the first joining hook replaces it by the chunk's first rows
            with skip_blocks(model, chunk[0].start, tuple_output), model.hooks(fwd_hooks=hooks):
                model(prep.ids_tensor(1)[:, first:].to(device), past_key_values=past)
        except StopForward as stop:
            last = stop.resid
        else:  # pragma: no cover - the last block's hook always fires
            raise RuntimeError("the forward pass did not reach the last block")
        probs = torch.softmax(final_logits(model, last).float(), dim=-1)[:, prep.answer_id]
        probs = probs.view(len(chunk), S).mean(1).cpu().numpy()
        for site, p in zip(chunk, probs):
            grids[site.job][site.cell] = p
    return grids, runs["A"].score
