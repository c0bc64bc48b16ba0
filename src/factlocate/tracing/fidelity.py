"""How well one fact-set run (AtP, AtP+verify, another corruption) reproduces another (the exact grids).

    factlocate trace-compare --exact results/tf/exact --other results/tf/atp --out results/tf/fidelity

For every fact traced in both runs and every kind, with effects taken as score minus the
corrupted score:

* the Spearman rank correlation of the two grids, from the subject's first token on (before the
  subject both effects are zero by construction; ranking their float rounding would make the
  correlation depend on the machine);
* recall: how many of the exact grid's top-5 cells are in the other's top-10, and how many
  the other run holds as exact values (`atp+verify`);
* the largest false negative: the exact effect of a cell outside the other's top-10 that
  is in the exact top-5 (0 if none).

With `replay_top=K` and an `--method atp` run as the other (same facts, noise and seed, no GradDrop),
it also replays `atp+verify --top K` on the two grids (`verify.replay`): the share of cells that method
would run exactly, and how many exact top-5 cells it would hold exactly. That is what the live method
returns, without paying again for the exact cells the reference run has already computed.

The AIE curves (last subject token, last token) of both runs go into one figure.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np

from factlocate.errors import FactlocateError
from factlocate.io import read_json, write_json, write_text
from factlocate.tracing import verify
from factlocate.tracing.facts import summarize
from factlocate.tracing.result import TraceResult


def _cases(folder: Path) -> dict:
    cases = {}
    for p in (folder / "cases").glob("known_*.json"):
        c = read_json(p)
        if c.get("correct_prediction"):
            cases[c["known_id"]] = c
    return cases


def _spearman(a: np.ndarray, b: np.ndarray, before_subject) -> float:
    """Rank correlation of two [token, layer] grids over the rows from the subject on."""
    from scipy.stats import spearmanr

    keep = ~np.asarray(before_subject, dtype=bool)
    a, b = a[keep], b[keep]
    if a.size == 0 or np.all(a == a.flat[0]) or np.all(b == b.flat[0]):
        return float("nan")
    return float(spearmanr(a.reshape(-1), b.reshape(-1)).statistic)


def _replayed(e: TraceResult, o: TraceResult, top: int) -> np.ndarray:
    """The mask of cells `atp+verify --top top` holds exactly, replayed from the AtP and exact grids."""
    if o.method != "atp" or o.run.graddrop:
        raise FactlocateError("replaying atp+verify needs a --method atp run without --graddrop as the other run; "
                              f"this one has method {o.method}" + (" with GradDrop" if o.run.graddrop else ""))
    return verify.replay(o.scores, e.scores, o.low_score, o.before_subject, top)[1]


def compare(exact_dir: str | Path, other_dir: str | Path, replay_top: int | None = None) -> dict:
    """Per kind: mean Spearman, recall counts, the largest false negative, over the facts both runs traced."""
    exact, other = _cases(Path(exact_dir)), _cases(Path(other_dir))
    shared = sorted(set(exact) & set(other))
    if not shared:
        raise FactlocateError(f"{exact_dir} and {other_dir} have no traced fact in common")
    out = {"n_facts": len(shared), "kinds": {}}
    kinds = [k for k in exact[shared[0]]["traces"] if k in other[shared[0]]["traces"]]
    for kind in kinds:
        rhos, in_top10, held_exact, worst = [], 0, 0, 0.0
        replay_held, replay_cells, cells = 0, 0, 0
        for k in shared:
            e = TraceResult.from_dict(exact[k]["traces"][kind])
            o = TraceResult.from_dict(other[k]["traces"][kind])
            ge, go = e.scores - e.low_score, o.scores - o.low_score
            rhos.append(_spearman(ge, go, e.before_subject))
            top5 = set(np.argsort(-ge, axis=None)[:5].tolist())
            top10 = set(np.argsort(-go, axis=None)[:10].tolist())
            in_top10 += len(top5 & top10)
            held_exact += len(top5 & set(np.flatnonzero(o.exact_mask).tolist()))
            missed = [ge.reshape(-1)[i] for i in top5 - top10]
            worst = max([worst, *missed])
            if replay_top:
                mask = _replayed(e, o, replay_top)
                replay_held += len(top5 & set(np.flatnonzero(mask).tolist()))
                after = ~o.before_subject
                replay_cells, cells = replay_cells + int(mask[after].sum()), cells + int(mask[after].size)
        out["kinds"][kind] = {
            "spearman": float(np.nanmean(rhos)), "recall_top5_in_top10": in_top10 / (5 * len(shared)),
            "recall_top5_exact": held_exact / (5 * len(shared)), "largest_false_negative": float(worst),
        }
        if replay_top:
            out["kinds"][kind].update(replay_top=replay_top, replay_recall_top5_exact=replay_held / (5 * len(shared)),
                                      replay_cells_verified=replay_cells / cells)
    return out


def write(exact_dir: str | Path, other_dir: str | Path, out: str | Path, labels=("exact", "other"),
          replay_top: int | None = None) -> str:
    """fidelity.json, fidelity.md and curves.html in `out`; returns the markdown."""
    result = compare(exact_dir, other_dir, replay_top)
    ids = sorted(set(_cases(Path(exact_dir))) & set(_cases(Path(other_dir))))
    s_exact, s_other = summarize(exact_dir, ids, write=False), summarize(other_dir, ids, write=False)
    lines = [f"# {labels[1]} against {labels[0]} on {result['n_facts']} facts", "",
             "| kind | Spearman | exact top-5 in top-10 | exact top-5 held exactly | largest false negative |",
             "|---|---:|---:|---:|---:|"]
    n5 = 5 * result["n_facts"]

    def share(x: float) -> str:  # one decimal and the count, so 499 of 500 does not print as 100%
        return f"{100 * x:.1f}% ({round(x * n5)}/{n5})"

    for kind, r in result["kinds"].items():
        lines.append(f"| {kind} | {r['spearman']:.3f} | {share(r['recall_top5_in_top10'])} | "
                     f"{share(r['recall_top5_exact'])} | {r['largest_false_negative']:.4f} |")
    if replay_top:
        lines += ["", f"atp+verify --top {replay_top}, replayed on the two grids:", "",
                  "| kind | cells run exactly (from the subject on) | exact top-5 held exactly |", "|---|---:|---:|"]
        lines += [f"| {kind} | {100 * r['replay_cells_verified']:.1f}% | {share(r['replay_recall_top5_exact'])} |"
                  for kind, r in result["kinds"].items()]
        lines.append("")
    for b in ("last_subject", "last"):
        for kind in result["kinds"]:
            e, o = s_exact["kinds"][kind]["buckets"][b], s_other["kinds"][kind]["buckets"][b]
            lines.append(f"- {kind}, {b.replace('_', ' ')}: AIE peaks at layer {int(np.argmax(e['aie']))} "
                         f"({max(e['aie']):.4f}) {labels[0]}, layer {int(np.argmax(o['aie']))} ({max(o['aie']):.4f}) "
                         f"{labels[1]}")
    md = "\n".join(lines) + "\n"
    out = Path(out)
    write_json(out / "fidelity.json", result)
    write_text(out / "fidelity.md", md)
    from factlocate.plots.fidelity import aie_curves

    write_text(out / "curves.html", aie_curves(s_exact, s_other, labels).to_html(include_plotlyjs=True))
    return md

