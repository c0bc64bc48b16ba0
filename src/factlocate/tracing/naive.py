"""The naive engine: one forward pass per restored site, exactly as the original code.

`trace_with_patch` and `trace_with_repatch` mirror the functions of the same
names in ROME's `experiments/causal_trace.py` and the severed-path notebook:
a batch of 1 + S copies of the prompt, row 0 clean, rows 1..S corrupted with
noise from a fresh `RandomState(seed)`, restored sites copied from row 0.
Kept for verification of the batched engine.
"""
from __future__ import annotations

from collections import defaultdict

import numpy as np
import torch
from tqdm.auto import tqdm

from factlocate import arch
from factlocate.forward import Capture
from factlocate.hooks.restoration import HoldFromCapture, RestoreFromRow0
from factlocate.tracing.core import GridSpec, Prepared, window_layers


@torch.no_grad()
def trace_with_patch(model, prep: Prepared, states_to_patch: list[tuple[int, str]]) -> float:
    """Mean p(answer) over corrupted rows with `states_to_patch` [(token, hook name)] restored."""
    return trace_with_repatch(model, prep, states_to_patch, [])


@torch.no_grad()
def trace_with_repatch(model, prep: Prepared, states_to_patch: list[tuple[int, str]],
                       states_to_unpatch: list[tuple[int, str]], noise_draws: str = "same") -> float:
    """Restore `states_to_patch` while holding `states_to_unpatch` at first-pass (corrupted) values.

    With unpatched states there are two passes. `noise_draws="reference"` keeps
    one generator for both, so the second pass adds the next draws (the
    original notebook); `"same"` re-seeds, so both passes add the same noise.
    """
    batch = prep.ids_tensor(prep.samples + 1).to(model.cfg.device)
    patch_spec, unpatch_spec = defaultdict(list), defaultdict(list)
    for t, name in states_to_patch:
        patch_spec[name].append(t)
    for t, name in states_to_unpatch:
        unpatch_spec[name].append(t)
    first = Capture(unpatch_spec, clone=True)
    rs = np.random.RandomState(prep.seed)
    logits = None
    for first_pass in [True, False] if states_to_unpatch else [False]:
        if not first_pass and noise_draws == "same":
            rs = np.random.RandomState(prep.seed)
        hooks = [prep.corruption.hook(prep, rs, first_row=1)]  # draws from this pass's generator as it fires
        if first_pass:
            hooks += first.hooks
        else:
            hooks += [(name, RestoreFromRow0(ts)) for name, ts in patch_spec.items()]
            hooks += [(name, HoldFromCapture(first, name, ts)) for name, ts in unpatch_spec.items()]
        logits = model.run_with_hooks(batch, fwd_hooks=hooks)
    return prep.readout.mean(logits[1:, -1, :], torch.arange(prep.samples))


def low_score(model, prep: Prepared) -> float:
    return trace_with_patch(model, prep, [])


def site_states(grid: GridSpec, position: int, layer: int, n_layers: int) -> tuple[list, list]:
    """(states_to_patch, states_to_unpatch) for one site, as the original builds them."""
    if grid.kind == "hidden":
        patch = [(position, arch.hook_resid(layer))]
    else:
        patch = [(position, arch.hook_for_kind(grid.kind, j)) for j in window_layers(layer, grid.window, n_layers)]
    unpatch = []
    if grid.sever:
        unpatch = [(position, arch.hook_for_kind(grid.sever, j)) for j in range(n_layers)]
    return patch, unpatch


def scores(model, prep: Prepared, grid: GridSpec, positions: list[int], progress: bool = False) -> np.ndarray:
    """The [len(positions), n_layers] grid, one forward (two if severed) per site."""
    out = np.zeros((len(positions), prep.n_layers))
    cells = [(i, t, l) for i, t in enumerate(positions) for l in range(prep.n_layers)]
    for i, t, l in tqdm(cells, desc=f"trace {grid.kind} (naive)", disable=not progress, leave=False):
        patch, unpatch = site_states(grid, t, l, prep.n_layers)
        out[i, l] = trace_with_repatch(model, prep, patch, unpatch, grid.noise_draws)
    return out
