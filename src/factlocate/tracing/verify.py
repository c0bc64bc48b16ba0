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

The budgeted mode (`atp+budget`) has no bound and no loop: the `budget` share of each grid's cells
(from the subject on) that AtP ranks highest is run exactly, once. Its cost is fixed in advance; how
often it holds the exact top cells is measured, never assumed (`tools/atp_budget.py` replays it over
fact sets that have both an AtP and an exact grid, and `notes/atp.md` gives the recall).
"""
from __future__ import annotations

import numpy as np

from factlocate.tracing import atp, batched
from factlocate.tracing.core import GridSpec, Prepared
from factlocate.tracing.result import rows_before_subject


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


def budget_grid(est: np.ndarray, upper: np.ndarray, low: float, before_subject: np.ndarray, budget: float,
                run_exact) -> tuple[np.ndarray, np.ndarray]:
    """The budgeted mode on one grid: (values, mask of exact cells); `run_exact` as in `verify_grid`."""
    mask = np.zeros(est.shape, dtype=bool)
    mask[before_subject, :] = True
    values = np.where(mask, low, est)
    cells = budget_cells(upper, before_subject, budget)
    for c, v in (run_exact(cells) if cells else {}).items():
        values[c], mask[c] = v, True
    return values, mask


def replay_budget(est: np.ndarray, exact: np.ndarray, low: float, before_subject: np.ndarray, budget: float):
    """What `atp+budget` returns, given the AtP estimates and the full exact grid of the same draws."""
    return budget_grid(est, est, low, before_subject, budget, lambda cells: {c: exact[c] for c in cells})


def replay(est: np.ndarray, exact: np.ndarray, low: float, before_subject: np.ndarray, top: int):
    """What `atp+verify` returns, given the AtP estimates and the full exact grid of the same noise draws
    (without GradDrop): the fidelity comparison uses it over fact sets that already have both grids."""
    return verify_grid(est, est, low, before_subject, top, lambda cells: {c: exact[c] for c in cells})


def screen_and_verify(model, prep: Prepared, grids: list[GridSpec], positions: list[int], top: int,
                      graddrop: bool = False, progress: bool = False, budget: float | None = None):
    """(grids, masks of exact cells, corrupted score, AtP estimates, verified cell counts).

    With `budget`, the budgeted mode (a fixed share of cells, no bound) replaces the bound's loop."""
    estimates, low, magnitudes = atp.estimate(model, prep, grids, positions, graddrop)
    before = rows_before_subject(positions, prep.subject_range)
    out, masks, counts = [], [], []
    for j, grid in enumerate(grids):
        est = estimates[j]
        upper = est if magnitudes is None else low + np.maximum(np.abs(est - low), magnitudes[j])

        def run_exact(cells, grid=grid):
            exact, _ = batched.run_jobs(model, prep, [grid], positions, progress=progress, cells=[cells])
            return {c: exact[0][c] for c in cells}

        if budget is None:
            values, mask = verify_grid(est, upper, low, before, top, run_exact)
        else:
            values, mask = budget_grid(est, upper, low, before, budget, run_exact)
        out.append(values)
        masks.append(mask)
        counts.append(int(mask.sum()))
    return out, masks, low, estimates, counts
