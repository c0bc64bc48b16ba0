"""Does replaying `atp+verify` on saved grids give what the live method gave? A check for the fact-set runs.

    python -m tools.atp_replay_check --exact results/report/M/facts --atp results/tf/M/atp \
        --verify results/tf/M/verify --top 10

For every fact and kind in all three runs (same facts, noise and seed): the cells `verify.replay` marks
exact, from the AtP grid and the exact grid, against the cells the live `--method atp+verify` run marked
exact; and the largest difference between the two runs' values. Prints one line per kind.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np


def check(exact_dir, atp_dir, verify_dir, top: int) -> dict:
    from factlocate.tracing import verify
    from factlocate.tracing.fidelity import _cases
    from factlocate.tracing.result import TraceResult

    runs = [_cases(Path(d)) for d in (exact_dir, atp_dir, verify_dir)]
    shared = sorted(set(runs[0]) & set(runs[1]) & set(runs[2]))
    out = {"n_facts": len(shared), "top": top, "kinds": {}}
    for kind in runs[2][shared[0]]["traces"] if shared else []:
        same, cells, diff = 0, 0, 0.0
        for k in shared:
            e, a, v = (TraceResult.from_dict(r[k]["traces"][kind]) for r in runs)
            values, mask = verify.replay(a.scores, e.scores, a.low_score, a.before_subject, top)
            same += int(np.array_equal(mask, v.exact_mask))
            cells += int(v.exact_mask.sum())
            diff = max(diff, float(np.abs(values - v.scores).max()))
        out["kinds"][kind] = {"facts_same_cells": same, "cells_live": cells, "largest_value_difference": diff}
    return out


def main(argv=None) -> int:
    from factlocate.io import write_json

    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--exact", required=True)
    p.add_argument("--atp", required=True)
    p.add_argument("--verify", required=True)
    p.add_argument("--top", type=int, default=10)
    p.add_argument("--out", default=None, help="also write the result as JSON here")
    args = p.parse_args(argv)
    result = check(args.exact, args.atp, args.verify, args.top)
    for kind, r in result["kinds"].items():
        print(f"{kind}: {r['facts_same_cells']}/{result['n_facts']} facts with the same exact cells "
              f"({r['cells_live']} live); largest value difference {r['largest_value_difference']:.2e}")
    if args.out:
        write_json(args.out, result)
    return 0


if __name__ == "__main__":
    sys.exit(main())
