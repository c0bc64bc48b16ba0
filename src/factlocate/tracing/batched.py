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
   run on a single placeholder row (`factlocate.forward.control`).
3. Per-row index assignments (`hooks.restoration.WriteAt`) write the clean
   values (and, for severed traces, the corrupted module outputs) into the
   right rows.
4. Positions before the restored token are the corrupted pass's in every
   layer, so a site's rows run only positions t.. and read the keys and values
   of positions 0..t-1 from the corrupted pass's KV cache (`forward.kv`). This
   reuse is checked once per loaded model against full rows on a probe prompt
   (`reuse_verified`); where it does not match, every chunk runs full rows.
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
from factlocate.forward import Capture, control, kv
from factlocate.hooks.restoration import Append, Chain, Replace, WriteAt
from factlocate.tracing.core import GridSpec, Prepared, RunSpec, clean_prediction, window_layers
from factlocate.tracing.noise import Noise, parse_noise


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
def _record(model, ids: torch.Tensor, names: list[str], hooks: list, readout, keep_cache: bool) -> _Run:
    """One full pass: the activations at `names`, the mean readout at the last position, and its KV cache."""
    capture = Capture(names, clone=True)
    cache = kv.empty(model) if keep_cache else None
    resid = control.run(model, ids, hooks=hooks + capture.hooks, past=cache)
    score = readout.mean(control.unembed(model, resid[:, -1]), torch.arange(len(ids)))
    return _Run(dict(capture.values), score, cache)


def _sites(model, job: int, grid: GridSpec, prep: Prepared, positions: list[int],
           cells: set | None = None) -> tuple[list[_Site], dict]:
    """The sites one grid needs (only `cells` when given), and the cells whose score is known without a forward."""
    n_layers, (b, _) = prep.n_layers, prep.subject_range
    reference = grid.sever is not None and grid.noise_draws == "reference"
    sites, known = [], {}
    for i, t in enumerate(positions):
        for l in range(n_layers):
            if cells is not None and (i, l) not in cells:
                continue
            if t < b:  # the noise cannot reach position t: restoring it is a no-op
                known[(i, l)] = "B" if reference else "A"
                continue
            if grid.kind == "hidden":
                site = _Site(job, (i, l), t, l + 1, "A", clean=[arch.hook_resid_in(model, l + 1)])
                if grid.sever:
                    # Pass A equals this run below l + 1, so freezing there is a no-op;
                    # with reference draws the run differs from pass A from the start.
                    frozen_from = 0 if reference else l + 1
                    site.frozen = [arch.hook_for_kind(grid.sever, j) for j in range(frozen_from, n_layers)]
                    if reference:
                        site.start, site.base = 0, "B"
            else:
                layers = window_layers(l, grid.window, n_layers)
                site = _Site(job, (i, l), t, layers[0], "A",
                             clean=[arch.hook_for_kind(grid.kind, j) for j in layers])
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


def _chunk_hooks(model, prep: Prepared, chunk: list[_Site], rows: _Rows, first: int, clean: _Run,
                 runs: dict[str, _Run]) -> list:
    """Joining, restoration, freezing and stop hooks for one chunk of sites.

    The batch grows from block to block: rows join at their site's first block,
    entering with the corrupted residual there, so no row runs a block whose
    output is already known. The chunk's rows run positions `first`.. only:
    position t of the prompt is index t - first of the activations these hooks see.
    The run stops after the last block (`control.run`).
    """
    S, n_layers = prep.samples, prep.n_layers
    per_hook: dict[str, list] = defaultdict(list)
    joined = 0
    for block in range(int(rows.start[0]), n_layers + 1):
        running = rows.running(block)
        if running > joined:
            name = arch.hook_resid_in(model, block)
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
    return [(name, Chain(*fns)) for name, fns in per_hook.items()]


def _past(model, rows: _Rows, first: int, runs: dict[str, _Run], n_layers: int):
    """The corrupted passes' keys and values of positions 0..first-1 for the rows running each layer.

    A layer no row reaches gets one (unused) entry: HF reads the prefix length from layer 0.
    Rows continuing pass B (reference draws) take its keys and values.
    """
    if first == 0:
        return None
    a = kv.layers(runs["A"].cache)
    b = kv.layers(runs["B"].cache) if rows.from_b.any() else None
    per_layer = []
    for k in range(n_layers):
        n = max(1, rows.running(k))
        index = rows.sample[:n]
        keys, values = a[k][0][index, :, :first], a[k][1][index, :, :first]
        from_b = rows.from_b[:n]
        if b is not None and from_b.any():
            keys[from_b], values[from_b] = b[k][0][index[from_b], :, :first], b[k][1][index[from_b], :, :first]
        per_layer.append((keys, values))
    return kv.from_layers(model, per_layer)


@torch.no_grad()
def run_jobs(model, prep: Prepared, grids: list[GridSpec], positions: list[int], progress: bool = False,
             reuse: bool | None = None, cells: list[set] | None = None,
             recorded: dict | None = None) -> tuple[list[np.ndarray], float]:
    """Fill one [len(positions), n_layers] grid per grid spec; also return the corrupted score.

    `cells` (one set of (position index, layer) per grid) limits the work to those cells; the
    others are NaN. `reuse` forces KV reuse on or off; by default it is on where `reuse_verified(model)`.
    `recorded`: a dict that keeps step 1's clean and corrupted passes between calls on the same prompt (the
    budgeted mode's rounds); the passes are seeded, so a kept one equals a recomputed one.
    """
    S, n_layers, device = prep.samples, prep.n_layers, model.cfg.device
    reuse = reuse_verified(model) if reuse is None else reuse
    names = [arch.hook_resid_in(model, k) for k in range(n_layers + 1)]
    names += [arch.hook_for_kind(kind, l) for kind in ("mlp", "attn") for l in range(n_layers)]
    bases = ("A", "B") if any(g.sever and g.noise_draws == "reference" for g in grids) else ("A",)
    key = (bases, reuse)
    if recorded is not None and key in recorded:
        clean, runs = recorded[key]
    else:
        clean = _record(model, prep.ids_tensor(1).to(device), names, [], prep.readout, False)
        rs = np.random.RandomState(prep.seed)
        runs = {}
        for base in bases:
            corrupt = prep.corruption.hook(prep, rs, rows=S)  # B: the generator's next draws
            runs[base] = _record(model, prep.ids_tensor(S).to(device), names, [corrupt], prep.readout, reuse)
        if recorded is not None:
            recorded[key] = (clean, runs)

    out = [np.zeros((len(positions), n_layers)) if cells is None else np.full((len(positions), n_layers), np.nan)
           for _ in grids]
    sites = []
    for j, grid in enumerate(grids):
        grid_sites, known = _sites(model, j, grid, prep, positions, None if cells is None else cells[j])
        sites += grid_sites
        for cell, base in known.items():
            out[j][cell] = runs[base].score
    # Rows of one chunk share their first position, so group the sites by token.
    reuse = reuse and all(kv.holds_all(run.cache, len(prep.ids)) for run in runs.values())
    sites.sort(key=lambda s: (s.position if reuse else 0, s.start))
    per_chunk = max(1, prep.run.chunk_rows // S)
    chunks = []
    for _, group in groupby(sites, key=lambda s: s.position if reuse else 0):
        group = list(group)
        chunks += [group[i : i + per_chunk] for i in range(0, len(group), per_chunk)]
    for chunk in tqdm(chunks, desc="trace (batched)", disable=not progress, leave=False):
        rows = _Rows.of(chunk, S)
        first = chunk[0].position if reuse else 0
        hooks = _chunk_hooks(model, prep, chunk, rows, first, clean, runs)
        past = _past(model, rows, first, runs, n_layers)
        # One input row: the first joining hook replaces it by the chunk's first rows.
        last = control.run(model, prep.ids_tensor(1)[:, first:].to(device), hooks=hooks, past=past)[:, -1]
        probs = prep.readout(control.unembed(model, last), rows.sample)
        probs = probs.view(len(chunk), S).mean(1).cpu().numpy()
        for site, p in zip(chunk, probs):
            out[site.job][site.cell] = p
    return out, runs["A"].score


def reuse_verified(model) -> bool:
    """Whether this model's KV-prefix reuse gives the full-row grid (checked once, on a probe prompt).

    The probe first checks that a forward pass fills the cache at all, then traces the
    last two tokens of a short prompt for a hidden grid, an attention window and a
    severed grid with reference draws, with and without reuse.
    """
    def probe():
        ids = kv.probe_ids(model)
        cache = kv.empty(model)
        control.run(model, torch.tensor([ids]), past=cache)
        if not kv.holds_all(cache, len(ids)):
            raise RuntimeError("a forward pass left the KV cache without the prompt's keys and values")
        answer, high = clean_prediction(model, ids)
        noise = Noise(parse_noise("1.0"), level=1.0)
        prep = Prepared(ids, (1, 3), answer, high, noise, RunSpec(samples=2, seed=0), arch.n_layers(model),
                        int(model.cfg.d_model))
        grids = [GridSpec("hidden"), GridSpec("attn", window=2),
                 GridSpec("hidden", sever="mlp", noise_draws="reference")]
        positions = [len(ids) - 2, len(ids) - 1]
        reused, _ = run_jobs(model, prep, grids, positions, reuse=True)
        plain, _ = run_jobs(model, prep, grids, positions, reuse=False)
        return torch.tensor(np.stack(reused)), torch.tensor(np.stack(plain))

    return kv.verified(model, "batched tracing", probe, tolerance=1e-5)

