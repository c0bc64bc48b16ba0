"""Portability on CounterFact's one-hop file: a section of its own, on that file's own `test` split.

Table 2's cases rarely have a one-hop question (the shipped portability file covers few of them), so the page
edits the first `eval_cases` records of `test` of the portability file itself (`ReportSettings.portability_dataset`;
its split keeps out every text of the MEND/KE training file and of counterfact-sample's `dev`). Per editor and case:
the one-hop question scored unedited and after the edit (`metrics.portability.score`: KnowEdit's teacher-forced
token accuracy of the new answer, and the greedy answer judged by prefix), in DIR/portability/<editor>/cases/, so
the section resumes. Every editor is scored here, whatever the shape of its update: nothing is rescored later.
"""
from __future__ import annotations

import dataclasses
from pathlib import Path

import torch

from factlocate.errors import FactlocateError
from factlocate.io import read_json, write_json
from factlocate.paper.context import Context, md_cell, q
from factlocate.paper.settings import ReportSettings

FOLDER = "portability"


def params(s: ReportSettings) -> dict:
    return dict(model=s.model, dataset=s.portability_dataset, n=s.eval_cases, editors=s.portability_editors,
                overrides=s.overrides, tune=s.tune, split="test")


def _records(s: ReportSettings):
    from factlocate import datasets
    from factlocate.metrics import portability

    ds = datasets.load(s.portability_dataset, allow_download=False)
    hops = portability.one_hop(read_json(ds.source), "counterfact")
    records = [r for r in ds.split("test") if r.case_id in hops][: s.eval_cases]
    return ds, hops, records


def compute(ctx: Context) -> None:
    from factlocate.evaluation import runner
    from factlocate.identity import identity
    from factlocate.paper.editing import page_overrides
    from factlocate.runfolder import RunFolder

    s = ctx.settings
    if not s.portability_dataset:
        return
    ds, hops, records = _records(s)
    skipped = {}
    for name in s.portability_editors:
        try:
            module, hp = runner.editor_and_hparams(name, identity(ctx.model).spec, page_overrides(s, name, ctx.out))
        except FactlocateError as e:
            skipped[name] = str(e)
            continue
        folder = RunFolder(ctx.folder(FOLDER) / name).open({
            "model": identity(ctx.model).spec, "editor": name, "hparams": None if hp is None else dataclasses.asdict(hp),
            "dataset": {"name": ds.name, "digest": ds.digest, "split": "test"}})

        def one(record, module=module, hp=hp):
            return score_case(ctx.model, module, hp, record, hops[record.case_id], s.seed)

        items = [(r.case_id, r) for r in records if not folder.has(r.case_id)]
        for _ in folder.execute(items, one, desc=f"portability {name}", progress=ctx.progress):
            pass
    write_json(ctx.folder(FOLDER) / "skipped.json", skipped)


def score_case(model, module, hp, record, hop, seed: int) -> dict:
    """One case: its one-hop question scored unedited and after the edit (the weights left as found)."""
    from factlocate.metrics import portability

    pre = portability.score(model, hop)
    if module is None:
        return {"case_id": record.case_id, "pre": pre, "post": pre}
    torch.manual_seed(seed)
    result = module.compute_edit(model, [record.request()], hp, progress=False)
    with result.applied(model):
        post = portability.score(model, hop)
    return {"case_id": record.case_id, "pre": pre, "post": post}


def replay(model, s: ReportSettings, folder: Path, k: int, seed: int) -> dict:
    """`report --verify`: K random (editor, case) pairs scored again with the page's settings and compared."""
    from factlocate.evaluation import replay as rp
    from factlocate.evaluation import runner
    from factlocate.identity import identity
    from factlocate.paper.editing import page_overrides

    pairs = [(p.parent.parent.name, int(p.stem)) for p in folder.glob("*/cases/*.json")]
    if not pairs:
        return {"skipped": "no results"}
    _, hops, records = _records(s)
    by_id = {r.case_id: r for r in records}
    out = {"items": [], "max_diff": 0.0, "where": ""}
    for name, case in rp.sample(sorted(pairs), k, seed):
        module, hp = runner.editor_and_hparams(name, identity(model).spec, page_overrides(s, name, folder.parent))
        got = score_case(model, module, hp, by_id[case], hops[case], s.seed)
        stored = read_json(folder / name / "cases" / f"{case}.json")
        diff = max(abs(got[side]["teacher_forced"] - stored[side]["teacher_forced"]) +
                   abs(float(got[side]["generated"]["prefix"]) - float(stored[side]["generated"]["prefix"]))
                   for side in ("pre", "post"))
        out["items"].append(f"{name}/{case}")
        if diff >= out["max_diff"]:
            out["max_diff"], out["where"] = diff, f"{name}/{case}"
    return out


def render(ctx: Context) -> list:
    from factlocate.metrics import summary as summ

    s = ctx.settings
    if not s.portability_dataset:
        return ["No portability dataset is set for this page (`portability_dataset`)."]
    rows = ["| editor | cases | teacher-forced, unedited | teacher-forced, edited | generated, unedited | "
            "generated, edited |", "|---|---:|---:|---:|---:|---:|"]
    for name in s.portability_editors:
        cases = [read_json(p) for p in sorted((ctx.folder(FOLDER) / name / "cases").glob("*.json"))]
        if not cases:
            rows.append(f"| {name} | 0 | | | | |")
            continue
        cells = [summ.cell(summ.mean_ci([c[side]["teacher_forced"] for c in cases])) for side in ("pre", "post")]
        cells += [summ.cell(summ.mean_ci([float(c[side]["generated"]["prefix"]) for c in cases]))
                  for side in ("pre", "post")]
        rows.append(f"| {name} | {len(cases)} | " + " | ".join(cells) + " |")
    path = ctx.folder(FOLDER) / "skipped.json"
    skipped = read_json(path) if path.exists() else {}
    text = (f"KnowEdit's one-hop questions after each edit, on the first {s.eval_cases} `test` records of "
            f"`{s.portability_dataset}` (x100, 95% CIs over cases): the new answer's teacher-forced token accuracy, "
            "and the greedy answer beginning with it.")
    return [text, "\n".join(rows)] + (["Not run: " + "; ".join(f"{k} ({md_cell(v)})" for k, v in skipped.items())]
                                      if skipped else [])


def command(s: ReportSettings, out: Path) -> str:
    if not s.portability_dataset:
        return "(no portability dataset: `portability_dataset` is not set)"
    return (f"factlocate report --settings SETTINGS --out {out} --only portability   # editors "
            f"{','.join(s.portability_editors)} on the test split of {q(s.portability_dataset)}")
