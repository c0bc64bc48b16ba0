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
"""
from __future__ import annotations

import numpy as np

from factlocate.tracing import atp, batched
from factlocate.tracing.core import GridSpec, Prepared


def _candidates(upper: np.ndarray, exact_mask: np.ndarray, threshold: float) -> set:
    rows, cols = np.nonzero((upper >= threshold) & ~exact_mask)
    return {(int(i), int(l)) for i, l in zip(rows, cols)}


def screen_and_verify(model, prep: Prepared, grids: list[GridSpec], positions: list[int], top: int,
                      graddrop: bool = False, progress: bool = False):
    """(grids, masks of exact cells, corrupted score, AtP estimates, verified cell counts)."""
    estimates, low, magnitudes = atp.estimate(model, prep, grids, positions, graddrop)
    b = prep.subject_range[0]
    out, masks, counts = [], [], []
    for j, grid in enumerate(grids):
        est = estimates[j]
        upper_base = est if magnitudes is None else low + np.maximum(np.abs(est - low), magnitudes[j])
        mask = np.zeros(est.shape, dtype=bool)
        mask[[i for i, t in enumerate(positions) if t < b], :] = True  # before the subject: the corrupted score
        values = np.where(mask, low, est)
        order = np.argsort(-np.where(mask, -np.inf, upper_base), axis=None)
        todo = {tuple(int(x) for x in np.unravel_index(k, est.shape)) for k in order[:top]}
        todo = {c for c in todo if not mask[c]}
        while todo:
            exact, _ = batched.run_jobs(model, prep, [grid], positions, progress=progress, cells=[todo])
            for c in todo:
                values[c], mask[c] = exact[0][c], True
            margin = float(np.max(np.abs(values[mask] - est[mask])))
            ranked = np.sort(values[mask])[::-1]
            threshold = ranked[min(top, len(ranked)) - 1] if len(ranked) else -np.inf
            todo = _candidates(upper_base + margin, mask, threshold)
        out.append(values)
        masks.append(mask)
        counts.append(int(mask.sum()))
    return out, masks, low, estimates, counts
