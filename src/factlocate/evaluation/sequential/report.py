"""The sequential runs' report: summary.md / summary.json and curves.html beside the editor folders.

`write_report(out)` puts a summary table (final metrics over every edited case, with the unedited
rows of the same cases) and plotly curves (efficacy, specificity, perplexity and weight norm
against the number of edits, one line per editor) beside the runs under `out`.
"""
from __future__ import annotations

from pathlib import Path

from factlocate.errors import FactlocateError
from factlocate.io import read_json, write_json, write_text
from factlocate.metrics import summary as summ


def load_runs(out: str | Path) -> list[dict]:
    runs = []
    for params_path in sorted(Path(out).glob("*/params.json")):
        params = read_json(params_path)
        if "sequential" not in params:
            continue
        folder = params_path.parent
        logs = [read_json(p) for p in sorted((folder / "batches").glob("*.json"))]
        logs.sort(key=lambda x: x["edits"])
        finals = [read_json(p)["scores"] for p in sorted((folder / "final").glob("*.json"))]
        unedited = [read_json(p)["scores"] for p in sorted((folder / "unedited").glob("*.json"))]
        runs.append({"name": folder.name, "params": params, "logs": logs, "final": finals, "unedited": unedited})
    return runs


def _baselines(runs: list[dict]) -> list[tuple[str, list[dict], dict | None]]:
    """One unedited row per distinct set of cases: (label, scores, start log)."""
    groups: dict[tuple, list[dict]] = {}
    for run in runs:
        if run["unedited"] and len(run["unedited"]) == len(run["params"]["case_ids"]):
            groups.setdefault(tuple(sorted(run["params"]["case_ids"])), []).append(run)
    out = []
    for group in groups.values():
        start = next((x for x in group[0]["logs"] if x["edits"] == 0), None)
        out.append((f"unedited ({', '.join(r['name'] for r in group)} cases)", group[0]["unedited"], start))
    return out


def write_report(out: str | Path) -> str:
    """summary.md / summary.json and curves.html for every sequential run under `out`."""
    runs = load_runs(out)
    if not runs:
        raise FactlocateError(f"{out} holds no sequential runs")
    lines = ["# Sequential editing", "",
             "Final metrics x100 over every edited case, on the weights after the last batch (95% CI); the "
             "unedited rows score the same cases on the weights as loaded.", "",
             "| editor | edits | batch | S | ES | PS | NS | EM | PM | NM | GE | perplexity (start -> end) | "
             "edit seconds |", "|---|---:|---:|" + "---:|" * 10]
    rows = []
    for run in runs:
        s = summ.summarize(run["final"], "counterfact")
        seq = run["params"]["sequential"]
        start = next((x for x in run["logs"] if x["edits"] == 0), None)
        end = run["logs"][-1] if run["logs"] else None
        ppl = f"{start['perplexity']:.2f} -> {end['perplexity']:.2f}" if start and end else "n/a"
        seconds = max((x.get("edit_seconds_total", 0.0) for x in run["logs"]), default=0.0)
        cells = [summ.cell(s[c]) for c in ("S", "ES", "PS", "NS", "EM", "PM", "NM", "GE")]
        lines.append(f"| {run['name']} | {len(run['final'])} | {seq['batch']} | " + " | ".join(cells) +
                     f" | {ppl} | {seconds:.0f} |")
        rows.append({"editor": run["name"], "edits": len(run["final"]), "batch": seq["batch"],
                     **{c: (None if s[c] is None else round(s[c][0], 4)) for c in ("S", "ES", "PS", "NS", "GE")}})
    for label, scores, start in _baselines(runs):
        s = summ.summarize(scores, "counterfact")
        cells = [summ.cell(s[c]) for c in ("S", "ES", "PS", "NS", "EM", "PM", "NM", "GE")]
        ppl = f"{start['perplexity']:.2f}" if start else "n/a"
        lines.append(f"| {label} | {len(scores)} | | " + " | ".join(cells) + f" | {ppl} | |")
        rows.append({"editor": label, "edits": 0, "cases": len(scores), "batch": None,
                     **{c: (None if s[c] is None else round(s[c][0], 4)) for c in ("S", "ES", "PS", "NS", "GE")}})
    for run in runs:
        lines += ["", *trajectory(run)]
    md = "\n".join(lines) + "\n"
    write_text(Path(out) / "summary.md", md)
    write_json(Path(out) / "summary.json", rows)
    from factlocate.plots.sequential import sequential_curves

    write_text(Path(out) / "curves.html", sequential_curves(runs).to_html(include_plotlyjs=True, full_html=True))
    return md


def norm_totals(logs: list[dict]) -> list[float | None]:
    """Sum of the edited matrices' Frobenius norms per log; the unedited log has none, so the originals stand in."""
    first = next((log["original_norms"] for log in logs if log.get("original_norms")), {})
    return [sum(n.values()) if n else None for n in (log.get("norms") or first for log in logs)]


def trajectory(run: dict) -> list[str]:
    """One run's logged batches as a markdown table: the damage curves' numbers, with each batch's edit time."""

    def fmt(value, spec):
        return "" if value is None else format(value, spec)

    lines = [f"## {run['name']}: after each logged batch", "",
             "| edits | edit s, latest batch | efficacy, latest batch | generated efficacy, latest batch | "
             "efficacy kept, batch 1 | portability, batch 1 (teacher-forced / generated) | neighbourhood (probe) | "
             "WikiText-2 ppl | known facts retained | sum of edited norms |", "|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|"]
    for log, norm in zip(run["logs"], norm_totals(run["logs"])):
        port = log.get("first_batch_portability")
        port = "" if not port else f"{port['teacher_forced']:.3f} / {port['generated']:.3f}"
        cells = [str(log["edits"]), fmt(log.get("seconds"), ".0f"), fmt(log.get("batch_efficacy"), ".3f"),
                 fmt(log.get("generated_batch_efficacy"), ".3f"), fmt(log.get("first_batch_efficacy"), ".3f"), port,
                 fmt(log.get("neighbourhood"), ".3f"), fmt(log.get("perplexity"), ".2f"), fmt(log.get("retention"), ".3f"),
                 fmt(norm, ".1f")]
        lines.append("| " + " | ".join(cells) + " |")
    return lines
