"""Screen and verify: attribution patching ranks every site, the exact engine runs only the sites that matter.

Per grid:

1. AtP estimates every cell (`atp.estimate`).
2. The `top` cells with the largest estimated score are run exactly (the batched engine, on
   those cells only).
3. The bound. The largest |exact − estimate| seen on the verified cells is the margin; an
   unverified cell whose estimate plus the margin reaches the `top`-th largest exact score
   might belong in the top set, so it is verified too. With GradDrop, a cell's estimate is
   taken as the corrupted score plus the larger of its |Δm| and its GradDrop magnitude.
   Steps 2-3 repeat with the new margin until no cell qualifies. At the paper's noise (s3) AtP's
   errors are as large as the effects, so this margin covers nearly every cell and the method costs
   about what the exact trace does; `tools/atp_bounds.py` and `notes/atp.md` compare other rules.
4. The returned grid holds exact values in verified cells and estimates elsewhere, with a
   mask saying which is which. Cells before the subject are exact without a forward pass
   (the corrupted score), and are marked exact.

The budgeted mode (`atp+budget`) has no bound: the `budget` share of each grid's cells (from the subject
on) that AtP ranks highest is run exactly (a share per kind: AtP ranks attention far better than MLP
windows). With `refine` r > 0 it then climbs: the unrun cells within r layers (same token) of the `REFINE_TOP`
best exact cells are run, and again around the new best, until none is left. Exact effects are smooth along
the layers, so this finds the peak that AtP placed a layer or two off, for few extra cells. Its cost is
bounded by the budget plus the climb; how often it holds the exact top cells is measured, never assumed
(`tools/atp_budget.py` replays it over fact sets that have both an AtP and an exact grid, chooses the
shares and r on their first half, and `notes/atp.md` gives the recall on the second).
"""
from __future__ import annotations

import numpy as np

from factlocate.tracing import atp, batched
from factlocate.tracing.core import GridSpec, Prepared
from factlocate.tracing.result import rows_before_subject


REFINE_TOP = 10  # the climb looks around this many of the best exact cells per grid


def _candidates(upper: np.ndarray, exact_mask: np.ndarray, threshold: float) -> set:
    rows, cols = np.nonzero((upper >= threshold) & ~exact_mask)
    return {(int(i), int(l)) for i, l in zip(rows, cols)}


def verify_grid(est: np.ndarray, upper: np.ndarray, low: float, before_subject: np.ndarray, top: int,
                run_exact) -> tuple[np.ndarray, np.ndarray]:
    """Steps 2-4 on one grid: (values, mask of exact cells).

    `run_exact(cells)` returns {cell: exact score} for a set of (row, layer) cells; the live method
    runs the batched engine there, and `replay` reads a grid computed before.
    """
    mask = np.zeros(est.shape, dtype=bool)
    mask[before_subject, :] = True  # rows before the subject: the corrupted score
    values = np.where(mask, low, est)
    order = np.argsort(-np.where(mask, -np.inf, upper), axis=None)
    todo = {tuple(int(x) for x in np.unravel_index(k, est.shape)) for k in order[:top]}
    todo = {c for c in todo if not mask[c]}
    while todo:
        for c, v in run_exact(todo).items():
            values[c], mask[c] = v, True
        margin = float(np.max(np.abs(values[mask] - est[mask])))
        ranked = np.sort(values[mask])[::-1]
        threshold = ranked[min(top, len(ranked)) - 1] if len(ranked) else -np.inf
        todo = _candidates(upper + margin, mask, threshold)
    return values, mask


def budget_cells(upper: np.ndarray, before_subject: np.ndarray, budget: float) -> set:
    """The ceil(budget x cells from the subject on) cells with the largest `upper`: those run exactly."""
    eligible = np.ones(upper.shape, dtype=bool)
    eligible[before_subject, :] = False
    n = int(np.ceil(budget * eligible.sum()))
    order = np.argsort(-np.where(eligible, upper, -np.inf), axis=None)[:n]
    return {tuple(int(x) for x in np.unravel_index(k, upper.shape)) for k in order}


def climb_cells(values: np.ndarray, mask: np.ndarray, before_subject: np.ndarray, refine: int,
                top: int = REFINE_TOP) -> set:
    """Unrun cells within `refine` layers (same token) of the `top` best exact cells from the subject on."""
    run = mask.copy()
    run[before_subject, :] = False
    best = np.argsort(-np.where(run, values, -np.inf), axis=None)[:min(top, int(run.sum()))]
    n_layers = values.shape[1]
    out = set()
    for k in best:
        i, l = (int(x) for x in np.unravel_index(k, values.shape))
        out |= {(i, j) for j in range(max(0, l - refine), min(n_layers, l + refine + 1)) if not mask[i, j]}
    return out


def budget_grids(ests: list[np.ndarray], uppers: list[np.ndarray], low: float, before_subject: np.ndarray,
                 shares: list[float], refine: int, run_exact) -> tuple[list[np.ndarray], list[np.ndarray]]:
    """The budgeted mode on several grids of one prompt: (values, masks of exact cells).

    `run_exact(cells)` takes one set of cells per grid and returns one {cell: exact score} per grid, so each
    round of the climb runs every grid's cells together."""
    masks = [np.zeros(e.shape, dtype=bool) for e in ests]
    for m in masks:
        m[before_subject, :] = True
    values = [np.where(m, low, e) for m, e in zip(masks, ests)]
    todo = [budget_cells(u, before_subject, share) for u, share in zip(uppers, shares)]
    while any(todo):
        for v, m, got in zip(values, masks, run_exact(todo)):
            for c, x in got.items():
                v[c], m[c] = x, True
        todo = [climb_cells(v, m, before_subject, refine) if refine else set() for v, m in zip(values, masks)]
    return values, masks


def replay_budget(est: np.ndarray, exact: np.ndarray, low: float, before_subject: np.ndarray, budget: float,
                  refine: int = 0):
    """What `atp+budget` returns for one grid, given the AtP estimates and the full exact grid of the same draws."""
    values, masks = budget_grids([est], [est], low, before_subject, [budget], refine,
                                 lambda todo: [{c: exact[c] for c in todo[0]}])
    return values[0], masks[0]


def replay(est: np.ndarray, exact: np.ndarray, low: float, before_subject: np.ndarray, top: int):
    """What `atp+verify` returns, given the AtP estimates and the full exact grid of the same noise draws
    (without GradDrop): the fidelity comparison uses it over fact sets that already have both grids."""
    return verify_grid(est, est, low, before_subject, top, lambda cells: {c: exact[c] for c in cells})


def screen_and_verify(model, prep: Prepared, grids: list[GridSpec], positions: list[int], top: int,
                      graddrop: bool = False, progress: bool = False, budget: bool = False):
    """(grids, masks of exact cells, corrupted score, AtP estimates, verified cell counts).

    With `budget`, the budgeted mode (`prep.run`'s shares per kind and climb, no bound) replaces the bound's loop."""
    estimates, low, magnitudes = atp.estimate(model, prep, grids, positions, graddrop)
    before = rows_before_subject(positions, prep.subject_range)
    uppers = [est if magnitudes is None else low + np.maximum(np.abs(est - low), magnitudes[j])
              for j, est in enumerate(estimates)]

    recorded = {}  # the clean and corrupted passes, made once for every round

    def run_exact(todo: list[set], chosen: list[GridSpec]) -> list[dict]:
        exact, _ = batched.run_jobs(model, prep, chosen, positions, progress=progress, cells=todo, recorded=recorded)
        return [{c: grid[c] for c in cells} for grid, cells in zip(exact, todo)]

    if budget:
        shares = [prep.run.share(g.kind) for g in grids]
        out, masks = budget_grids(estimates, uppers, low, before, shares, prep.run.refine,
                                  lambda todo: run_exact(todo, grids))
    else:
        out, masks = [], []
        for est, upper, grid in zip(estimates, uppers, grids):
            values, mask = verify_grid(est, upper, low, before, top, lambda cells, g=grid: run_exact([cells], [g])[0])
            out.append(values)
            masks.append(mask)
    return out, masks, low, estimates, [int(m.sum()) for m in masks]
