"""How often does `atp+budget` hold the exact top cells? Replayed over fact sets that have both grids.

    python -m tools.atp_budget --exact docs/report/M/facts --atp docs/atp/M/atp --out docs/atp/M/budget.json

For every fact and kind in both runs (same facts, noise and seed): the cells `atp+budget` would run exactly
at each budget (the share of cells from the subject on that AtP ranks highest), and whether the exact grid's
top-5 and top-10 cells (from the subject on) are among them. Recall is the share of those top cells held.
The facts are split in file order: the first half is `dev`, where the budget is chosen (the smallest whose
top-5 recall reaches 0.95 for every kind), the second half `test`, where the chosen budget's recall is
reported. No model runs: this reads the two runs' saved grids.
"""
from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np

BUDGETS = (0.02, 0.05, 0.1, 0.15, 0.2, 0.3, 0.4, 0.5, 0.6, 0.8)


def _top(values: np.ndarray, eligible: np.ndarray, k: int) -> set:
    order = np.argsort(-np.where(eligible, values, -np.inf), axis=None)[:k]
    return {tuple(int(x) for x in np.unravel_index(i, values.shape)) for i in order}


def split(exact_dir, atp_dir, budgets=BUDGETS) -> dict:
    """Recall on the dev half and the test half, the budget chosen on dev, and its recall on test."""
    from factlocate.tracing.fidelity import _cases

    exact_run, atp_run = _cases(Path(exact_dir)), _cases(Path(atp_dir))
    shared = sorted(set(exact_run) & set(atp_run), key=lambda k: int(str(k).rsplit("_", 1)[-1]))
    half = len(shared) // 2
    dev = recall(exact_run, atp_run, shared[:half], budgets)
    test = recall(exact_run, atp_run, shared[half:], budgets)
    chosen = dev["smallest_budget_top5_095"]
    return {"dev": dev, "test": test, "chosen_on_dev": chosen,
            "test_at_chosen": None if chosen is None else {k: v[str(chosen)] for k, v in test["kinds"].items()}}


def recall(exact_run: dict, atp_run: dict, shared: list, budgets=BUDGETS) -> dict:
    from factlocate.tracing import verify
    from factlocate.tracing.result import TraceResult

    out = {"n_facts": len(shared), "facts": [str(k) for k in shared], "budgets": list(budgets), "kinds": {}}
    for kind in (atp_run[shared[0]]["traces"] if shared else []):
        held = {b: {5: 0, 10: 0} for b in budgets}
        for key in shared:
            e = TraceResult.from_dict(exact_run[key]["traces"][kind])
            a = TraceResult.from_dict(atp_run[key]["traces"][kind])
            eligible = np.ones(e.scores.shape, dtype=bool)
            eligible[a.before_subject, :] = False
            tops = {k: _top(e.scores, eligible, k) for k in (5, 10)}
            for b in budgets:
                cells = verify.budget_cells(a.scores, a.before_subject, b)
                for k in (5, 10):
                    held[b][k] += len(tops[k] & cells)
        out["kinds"][kind] = {str(b): {"top5": held[b][5] / (5 * len(shared)),
                                       "top10": held[b][10] / (10 * len(shared))} for b in budgets}
    reaching = [b for b in budgets if all(r[str(b)]["top5"] >= 0.95 for r in out["kinds"].values())]
    out["smallest_budget_top5_095"] = reaching[0] if reaching else None
    return out


def markdown(result: dict, label: str) -> str:
    kinds = list(result["kinds"])
    lines = [f"### {label}: recall of the exact top cells under `atp+budget` ({result['n_facts']} facts)", "",
             "| budget | " + " | ".join(f"{k} top-5 | {k} top-10" for k in kinds) + " |",
             "|---:|" + "---:|---:|" * len(kinds)]
    for b in result["budgets"]:
        cells = [f"{result['kinds'][k][str(b)][t]:.3f}" for k in kinds for t in ("top5", "top10")]
        lines.append(f"| {b:g} | " + " | ".join(cells) + " |")
    lines += ["", f"Smallest budget with top-5 recall >= 0.95 in every kind: {result['smallest_budget_top5_095']}."]
    return "\n".join(lines)


def main(argv=None) -> int:
    import tools
    from factlocate.io import write_json

    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--exact", required=True)
    p.add_argument("--atp", required=True)
    p.add_argument("--label", default="")
    p.add_argument("--out", default=None, help="also write the result as JSON here")
    args = p.parse_args(argv)
    result = split(args.exact, args.atp)
    result["command"] = tools.command("atp_budget", argv)
    label = args.label or str(args.atp)
    print(markdown(result["dev"], f"{label}, dev half") + "\n\n" + markdown(result["test"], f"{label}, test half"))
    print(f"\nchosen on dev: {result['chosen_on_dev']}; test recall there: {result['test_at_chosen']}")
    if args.out:
        write_json(args.out, result)
    return 0


if __name__ == "__main__":
    import tools

    tools.run("atp_budget", main)
