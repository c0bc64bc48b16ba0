"""Reports of an output folder: summary.csv, summary.md and distributions.html.

One row per editor (its "post" metrics) plus one "unedited" row per model (the
"pre" metrics of every case any editor evaluated), with the columns of the
paper's Table 2 (CounterFact) or Table 1 (zsRE).
"""
from __future__ import annotations

import csv
import io
import statistics
from pathlib import Path

from factlocate.errors import FactlocateError
from factlocate.io import read_json, write_text
from factlocate.metrics import summary as summ
from factlocate.evaluation.runner import UNEDITED

GE_NOTE = (
    "GE is the n-gram entropy of top-k samples x100 (words from nltk.word_tokenize with "
    "preserve_line=True: no punkt sentence splitting)."
)


def load_run(folder: str | Path) -> dict | None:
    """One editor folder: {"name", "params", "cases": [case dicts by case id]}, None if empty."""
    folder = Path(folder)
    if not (folder / "params.json").exists():
        return None
    cases = sorted((read_json(p) for p in (folder / "cases").glob("*.json")), key=lambda c: c["case_id"])
    extra = {name: {c["case_id"]: c for c in (read_json(p) for p in (folder / f"extra-{name}").glob("*.json"))}
             for name in ("generated", "portability")}
    return ({"name": folder.name, "params": read_json(folder / "params.json"), "cases": cases, **extra}
            if cases else None)


def load_runs(out: str | Path) -> list[dict]:
    """Every editor folder under `out` that holds finished cases, by name."""
    runs = [load_run(p.parent) for p in sorted(Path(out).glob("*/params.json"))]
    return [r for r in runs if r is not None]


def rows(runs: list[dict]) -> tuple[str, list[tuple[str, str, dict]], dict[str, dict[str, list]]]:
    """(dataset kind, table rows, per-row per-metric case values for the figures)."""
    kinds = {r["params"]["dataset"]["kind"] for r in runs}
    if len(kinds) > 1:
        raise FactlocateError(f"the output folder mixes datasets {sorted(kinds)}: use one folder per dataset")
    kind = kinds.pop()
    pre: dict[str, dict[int, dict]] = {}  # model -> case_id -> pre scores
    for run in runs:
        for c in run["cases"]:
            pre.setdefault(run["params"]["model"], {})[c["case_id"]] = c["pre"]["scores"]
    table, values = [], {}
    for model, by_case in pre.items():
        scores = [by_case[k] for k in sorted(by_case)]
        table.append((model, UNEDITED, summ.summarize(scores, kind)))
        values[f"{model} {UNEDITED}"] = scores
    for run in runs:
        if run["params"]["editor"] == UNEDITED:
            continue
        scores = [c["post"]["scores"] for c in run["cases"]]
        table.append((run["params"]["model"], run["name"], summ.summarize(scores, kind)))
        values[f"{run['params']['model']} {run['name']}"] = scores
    return kind, table, values


def seconds_per_case(run: dict) -> float:
    """Median seconds per case (edit + post + pre): robust to one-time costs such as key statistics."""
    return float(statistics.median(sum(c.get("time", {}).values()) for c in run["cases"]))


def markdown(runs: list[dict], kind: str, table) -> str:
    datasets = sorted({f"{r['params']['dataset']['name']} ({r['params']['dataset']['digest']})" for r in runs})
    lines = [
        f"# {'CounterFact' if kind == 'counterfact' else 'zsRE'} evaluation",
        "",
        f"Dataset: {', '.join(datasets)}. Means x100 over cases, 95% CI (1.96 std/sqrt(n)) in parentheses; "
        "S is the harmonic mean of " + ", ".join(summ.SCORE_OF[kind]) + ".",
        "",
        summ.to_markdown(table, kind),
        "",
    ]
    if kind == "counterfact":
        gen = [r for r in runs if r["params"]["eval"]["generation"]]
        lines.append(GE_NOTE if gen else "GE and RS: not computed (run without --no-generation).")
        if any(s["RS"] is None for _, _, s in table) and gen:
            lines.append("RS is n/a: ROME's attribute snippets (attribute_snippets.json) are unavailable.")
        lines.append("")
    lines += generated_table(runs, kind)
    lines += portability_table(runs)
    lines += ["| run | model | cases | median seconds per case (edit + post + pre) |", "|---|---|---:|---:|"]
    for r in runs:
        lines.append(f"| {r['name']} | {r['params']['model']} | {len(r['cases'])} | {seconds_per_case(r):.2f} |")
    return "\n".join(lines) + "\n"


TEACHER_FORCED = {"counterfact": ("ES", "PS", "NS"), "zsre": ("Efficacy", "Paraphrase", "Specificity")}
GROUPS = ("rewrite", "paraphrase", "neighborhood")


def generated_table(runs: list[dict], kind: str) -> list[str]:
    """Teacher-forced success beside success judged on greedy generations (`eval-rescore --metric generated`),
    per run, on the cases it has both for; empty when no run has generated scores."""
    runs = [r for r in runs if r.get("generated")]
    if not runs:
        return []
    tf = TEACHER_FORCED[kind]
    lines = ["Success judged on generation (greedy, WILD's stop rule and normalisation; `prefix` verdict): each "
             "teacher-forced column beside its generated counterpart and the gap (generated minus teacher-forced), "
             "x100 with 95% CIs, over the cases that have both. Neighbourhood: the true answer must survive.", "",
             "| run | side | cases | " + " | ".join(f"{c} | {c} generated | gap" for c in tf) + " |",
             "|---|---|---:|" + "---:|---:|---:|" * len(tf)]
    for run in runs:
        cases = [c for c in run["cases"] if c["case_id"] in run["generated"]]
        sides = [("pre", "unedited")] + ([("post", "edited")] if run["params"]["editor"] != UNEDITED else [])
        for side, label in sides:
            cells = []
            for col, group in zip(tf, GROUPS):
                forced = [c[side]["scores"].get(col) for c in cases]
                gen = [run["generated"][c["case_id"]][side].get(group, {}).get("prefix") for c in cases]
                gaps = [g - f for f, g in zip(forced, gen) if f is not None and g is not None]
                cells += [summ.cell(summ.mean_ci(forced)), summ.cell(summ.mean_ci(gen)), summ.cell(summ.mean_ci(gaps))]
            lines.append(f"| {run['name']} | {label} | {len(cases)} | " + " | ".join(cells) + " |")
    return lines + [""]


def portability_table(runs: list[dict]) -> list[str]:
    """KnowEdit's portability per run (`eval-rescore --metric portability`): teacher-forced token accuracy and the
    generated answer's `prefix` verdict on the one-hop questions, unedited and edited; empty when no run has them."""
    runs = [r for r in runs if r.get("portability")]
    if not runs:
        return []
    lines = ["Portability (KnowEdit's one-hop questions; x100 with 95% CIs, over the cases that have one): "
             "teacher-forced token accuracy of the new answer, and the greedy answer beginning with it.", "",
             "| run | side | cases | teacher-forced | generated |", "|---|---|---:|---:|---:|"]
    for run in runs:
        scores = list(run["portability"].values())
        sides = [("pre", "unedited")] + ([("post", "edited")] if run["params"]["editor"] != UNEDITED else [])
        for side, label in sides:
            forced = [s[side]["teacher_forced"] for s in scores]
            gen = [float(s[side]["generated"]["prefix"]) for s in scores]
            lines.append(f"| {run['name']} | {label} | {len(scores)} | {summ.cell(summ.mean_ci(forced))} | "
                         f"{summ.cell(summ.mean_ci(gen))} |")
    return lines + [""]


def write_summary(out: str | Path, figures: bool = True, order: tuple[str, ...] = ()) -> str:
    """Write summary.csv, summary.md (and distributions.html); return the markdown.

    Rows follow `order` (editor names; those not in it come after, by name), else the names alone.
    """
    out = Path(out)
    runs = sorted(load_runs(out), key=lambda r: (order.index(r["name"]) if r["name"] in order else len(order)))
    if not runs:
        raise FactlocateError(f"{out} holds no finished cases")
    kind, table, values = rows(runs)
    md = markdown(runs, kind, table)
    write_text(out / "summary.md", md)
    buf = io.StringIO()
    flat = summ.to_csv_rows(table, kind)
    writer = csv.DictWriter(buf, fieldnames=list(flat[0]))
    writer.writeheader()
    writer.writerows(flat)
    write_text(out / "summary.csv", buf.getvalue())
    if figures:
        from factlocate.plots.evaluation import distributions

        html = distributions(kind, values).to_html(include_plotlyjs=True, full_html=True)
        write_text(out / "distributions.html", html)
    return md
