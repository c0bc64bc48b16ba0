"""How many cells must `atp+verify` run exactly? Verification rules compared on full exact grids.

    python -m tools.atp_bounds --model smollm2-135m --facts 3 --out results/atp-bounds/smollm2-135m.json

For the bench's Eiffel Tower prompt and the first `facts` known facts (10 samples, s3 noise, window 10,
all three kinds), the exact grid and the AtP estimates are computed once; each rule is then replayed on
them (a verified cell takes its exact value, as `atp+verify` gives it). Per rule: the share of cells from
the subject on that it verifies, and how many of each grid's exact top-5 cells it verifies.

* `margin` (what `atp+verify` does, `verify.replay`): top K by estimate, then every cell whose estimate plus the largest
  error seen on the verified cells reaches the K-th verified score, repeated until none is left;
* `taylor`: the same, with a per-cell margin c·‖Δa‖², c the largest error/‖Δa‖² on the verified cells
  (the second-order remainder of the expansion, its constant fitted on the worst verified cell);
* `conformal`: top K plus R cells drawn at random (seeded); the margin is the largest error on the random
  cells, so an unverified cell's error exceeds it with probability at most 1/(R+1);
* `rank`: cells in order of estimate, K at a time, until a chunk leaves the verified top 5 unchanged
  (a stopping rule, not a bound).
"""
from __future__ import annotations

import argparse
import sys

import numpy as np

from factlocate.tracing import verify

PROMPT, SUBJECT = "The Eiffel Tower is located in the city of", "The Eiffel Tower"
KINDS = ("hidden", "mlp", "attn")


def _patch_sq(model, prep, grids, positions) -> list[np.ndarray]:
    """Mean over corrupted rows of ‖a_clean − a_s‖² per cell (a window sums its layers)."""
    import torch

    from factlocate.forward import Capture, control
    from factlocate.tracing import atp

    names = atp._names(model)
    clean, corrupt = Capture(names, clone=True), Capture(names, clone=True)
    hook = prep.corruption.hook(prep, np.random.RandomState(prep.seed), rows=prep.samples)
    with torch.no_grad():
        control.run(model, prep.ids_tensor(1), hooks=clean.hooks)
        control.run(model, prep.ids_tensor(prep.samples), hooks=[hook] + corrupt.hooks)
    sq = {n: ((clean[n][0] - corrupt[n]) ** 2).sum(-1).mean(0).float().numpy() for n in names}
    return [atp._grid(sq, g, positions, prep.n_layers) for g in grids]  # a window sums its layers, as AtP does


def _replay(est, exact, first, margin_of, top):
    """Verify `first`, then every cell whose estimate plus its margin reaches the top-th verified score."""
    mask = first.copy()
    while True:
        ranked = np.sort(exact[mask])[::-1]
        threshold = ranked[min(top, len(ranked)) - 1]
        todo = (est + margin_of(mask) >= threshold) & ~mask
        if not todo.any():
            return mask
        mask |= todo


def rules(est, exact, sq, top: int, draws: int, seed: int) -> dict[str, np.ndarray]:
    """Each rule's mask of verified cells, on one grid from the subject on."""
    order = np.argsort(-est, axis=None)
    first = np.zeros(est.shape, bool)
    first.flat[order[:top]] = True
    err = np.abs(exact - est)
    out = {"margin": verify.replay(est, exact, 0.0, np.zeros(est.shape[0], bool), top)[1]}
    out["taylor"] = _replay(est, exact, first, lambda m: (err[m] / np.maximum(sq[m], 1e-12)).max() * sq, top)
    rest = np.flatnonzero(~first)
    picked = np.random.RandomState(seed).choice(rest, min(draws, rest.size), replace=False)
    calibrated = first.copy()
    calibrated.flat[picked] = True
    out["conformal"] = _replay(est, exact, calibrated, lambda m: err.flat[picked].max(), top)
    mask, best = np.zeros(est.shape, bool), None
    for i in range(0, order.size, top):
        mask.flat[order[i : i + top]] = True
        now = set(np.flatnonzero(mask)[np.argsort(-exact[mask])[:5]].tolist())
        if now == best:
            break
        best = now
    out["rank"] = mask
    return out


def main(argv=None) -> int:
    from factlocate import load_model
    from factlocate.io import write_json
    from factlocate.tracing import GridSpec, RunSpec, atp, batched, resolve_noise
    from factlocate.datasets.known_facts import load_facts
    from factlocate.tracing.trace import _positions, prepare

    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--model", required=True)
    p.add_argument("--facts", type=int, default=3, help="known facts after the Eiffel Tower prompt")
    p.add_argument("--top", type=int, default=10)
    p.add_argument("--window", type=int, default=10)
    p.add_argument("--draws", type=int, default=20, help="random cells for the conformal rule")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", required=True)
    args = p.parse_args(argv)
    model = load_model(args.model)
    noise = resolve_noise(model, "s3")
    grids = [GridSpec(k, args.window) for k in KINDS]
    prompts = [(PROMPT, SUBJECT)] + [(f["prompt"], f["subject"]) for f in load_facts(None)[: args.facts]]
    totals: dict[str, list[int]] = {}
    rows = []
    for prompt, subject in prompts:
        prep = prepare(model, prompt, subject, grids, RunSpec(), noise)
        positions = _positions(prep, None)
        est, low, _ = atp.estimate(model, prep, grids, positions)
        exact, _ = batched.run_jobs(model, prep, grids, positions)
        b = prep.subject_range[0]
        for g, e, x, sq in zip(grids, est, exact, _patch_sq(model, prep, grids, positions)):
            e, x, sq = e[b:], x[b:], sq[b:]
            truth = set(np.argsort(-x, axis=None)[:5].tolist())
            for name, mask in rules(e, x, sq, args.top, args.draws, args.seed).items():
                got = len(truth & set(np.flatnonzero(mask).tolist()))
                t = totals.setdefault(name, [0, 0, 0, 0])
                t[0], t[1], t[2], t[3] = t[0] + int(mask.sum()), t[1] + mask.size, t[2] + got, t[3] + 5
                rows.append({"prompt": prompt, "kind": g.kind, "rule": name, "verified": int(mask.sum()),
                             "cells": int(mask.size), "top5_verified": got, "low": float(low),
                             "largest_error": float(np.abs(e - x).max()), "largest_effect": float((x - low).max())})
    print(f"{args.model}: {len(prompts)} prompts x 3 kinds, K={args.top}")
    print("| rule | cells verified | exact top-5 verified |\n|---|---:|---:|")
    for name, (v, n, got, want) in totals.items():
        print(f"| {name} | {v}/{n} ({v / n:.0%}) | {got}/{want} |")
    write_json(args.out, {"settings": vars(args), "prompts": prompts, "totals": totals, "rows": rows})
    return 0


if __name__ == "__main__":
    sys.exit(main())
